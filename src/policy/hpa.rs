//! `windlass.policies.types.hpa`: Kubernetes' Horizontal Pod Autoscaler rule.
//!
//! Every `sync_period` seconds (15, as the HPA controller) the metric is the mean over the
//! reporting sources of their window means (`window` seconds); with the target's current size
//! from the caller, `desired = ceil(current × metric / target_value)`, unless the ratio
//! `metric / target_value` is within `tolerance` (0.1) of 1, when the size stays. Scale-down is
//! stabilized as HPA does: every evaluation's recommendation is kept for
//! `scale_down_stabilization` seconds (300) and the size may only go down to the highest of them,
//! so a short dip does not remove instances. The result is clamped to
//! `[min_replicas, max_replicas]`; a decision fires when it differs from the current size, with
//! `desired` and `delta` among its numbers for the trigger's parameters
//! (`{{ desired }}`, `{{ delta }}`).

use std::collections::VecDeque;

use regex::Regex;
use serde_json::{Value as Json, json};

use super::sample::Sources;
use super::{Outcome, Policy, Sample, Timestamp, Verdict, View, round};

#[derive(Debug, Clone)]
pub struct HpaSpec {
    pub policy: String,
    pub service: Regex,
    pub target_value: f64,
    pub min_replicas: u64,
    pub max_replicas: u64,
    pub tolerance: f64,
    pub scale_down_stabilization: f64,
    pub window: f64,
    pub sync_period: f64,
    pub max_points: usize,
    pub max_sources: usize,
}

#[derive(Debug)]
pub struct Hpa {
    spec: HpaSpec,
    sources: Sources,
    /// (when, recommended size) of the evaluations within the stabilization window. One per
    /// evaluation, so at most `scale_down_stabilization / sync_period + 1` entries.
    recommendations: VecDeque<(Timestamp, u64)>,
    last_eval: Option<Timestamp>,
}

impl Hpa {
    pub fn new(spec: HpaSpec) -> Self {
        Hpa {
            sources: Sources::new(spec.window, spec.max_points, spec.max_sources),
            recommendations: VecDeque::new(),
            last_eval: None,
            spec,
        }
    }

    fn evaluate(&mut self, now: Timestamp, view: &dyn View) -> Verdict {
        let s = &self.spec;
        let Some((metric, reporting)) = self.sources.mean_of_means() else {
            return Verdict::new(Outcome::NoData, "no source has a sample within the window");
        };
        let Some(current) = view.target_size(&s.policy) else {
            return Verdict::new(Outcome::SizeUnknown, "the target's current size is unknown")
                .num("metric", round(metric));
        };
        let ratio = metric / s.target_value;
        // A hair of slack so that 55 / 50 counts as the 1.1 it is meant to be.
        let within = (ratio - 1.0).abs() <= s.tolerance + 1e-9;
        let raw = if within {
            current
        } else {
            (current as f64 * ratio).ceil().max(0.0) as u64
        };
        let raw = raw.clamp(s.min_replicas, s.max_replicas);
        let edge = now.0 - s.scale_down_stabilization;
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| t.0 <= edge)
        {
            self.recommendations.pop_front();
        }
        self.recommendations.push_back((now, raw));
        // Scale-down only to the highest recommendation of the window; scale-up at once.
        let highest = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(raw);
        let desired = if raw < current {
            highest.min(current).max(raw)
        } else {
            raw
        };
        let desired = desired.clamp(s.min_replicas, s.max_replicas);
        let verdict = |outcome, reason: String| {
            Verdict::new(outcome, reason)
                .num("metric", round(metric))
                .num("target_value", s.target_value)
                .num("ratio", round(ratio))
                .num("tolerance", s.tolerance)
                .num("current", current)
                .num("recommended", raw)
                .num("desired", desired)
                .num("delta", desired as i64 - current as i64)
                .num("sources_reporting", reporting)
        };
        let m = round(metric);
        if desired != current {
            return verdict(
                Outcome::Fired,
                format!(
                    "metric {m} against target {}: {current} → {desired} (min {}, max {})",
                    s.target_value, s.min_replicas, s.max_replicas
                ),
            );
        }
        if within && raw == current {
            return verdict(
                Outcome::WithinTolerance,
                format!(
                    "metric {m} is within {} of target {}: staying at {current}",
                    s.tolerance, s.target_value
                ),
            );
        }
        if raw < current {
            return verdict(
                Outcome::Stabilized,
                format!(
                    "metric {m} recommends {raw}, but a recommendation of {highest} within the last {}s holds the size at {current}",
                    s.scale_down_stabilization
                ),
            );
        }
        let which = if raw == s.max_replicas && current == s.max_replicas {
            (
                Outcome::Limit,
                format!("metric {m} wants more, but {current} is max_replicas"),
            )
        } else if raw == s.min_replicas && current == s.min_replicas {
            (
                Outcome::Limit,
                format!("metric {m} wants fewer, but {current} is min_replicas"),
            )
        } else {
            (
                Outcome::AtDesired,
                format!("metric {m}: {current} is the desired size"),
            )
        };
        verdict(which.0, which.1)
    }
}

impl Policy for Hpa {
    fn observe(&mut self, sample: &Sample, now: Timestamp, _view: &dyn View) -> Vec<Verdict> {
        if self.spec.service.is_match(&sample.name) {
            self.sources.push(sample);
            self.sources.expire(now);
        }
        Vec::new()
    }

    fn tick(&mut self, now: Timestamp, view: &dyn View) -> Vec<Verdict> {
        if self
            .last_eval
            .is_some_and(|t| now.since(t) < self.spec.sync_period)
        {
            return Vec::new();
        }
        self.last_eval = Some(now);
        self.sources.expire(now);
        vec![self.evaluate(now, view)]
    }

    fn snapshot(&self, now: Timestamp) -> Json {
        let mut s = self.sources.to_json();
        s["metric"] = json!(self.sources.mean_of_means().map(|(m, _)| round(m)));
        s["recommendations"] = json!(
            self.recommendations
                .iter()
                .map(|(t, r)| json!([t.0, r]))
                .collect::<Vec<_>>()
        );
        s["next_evaluation_in"] = json!(
            self.last_eval
                .map(|t| round((self.spec.sync_period - now.since(t)).max(0.0)))
                .unwrap_or(0.0)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{Fixed, sample};
    use super::*;

    fn spec() -> HpaSpec {
        HpaSpec {
            policy: "hpa".into(),
            service: Regex::new("^(?:cpu)$").unwrap(),
            target_value: 50.0,
            min_replicas: 1,
            max_replicas: 10,
            tolerance: 0.1,
            scale_down_stabilization: 300.0,
            window: 60.0,
            sync_period: 15.0,
            max_points: 100,
            max_sources: 100,
        }
    }

    fn size(n: u64) -> Fixed {
        Fixed {
            started: true,
            size: Some(n),
        }
    }

    /// Feeds one sample of `value` at `at` and evaluates at `at`.
    fn eval(p: &mut Hpa, value: f64, at: f64, current: u64) -> Verdict {
        p.observe(
            &sample("a", "cpu", value, at),
            Timestamp(at),
            &size(current),
        );
        p.tick(Timestamp(at), &size(current))
            .pop()
            .expect("evaluated")
    }

    #[test]
    fn desired_is_the_ceiling_of_current_times_the_ratio() {
        let mut p = Hpa::new(spec());
        // 3 × 90 / 50 = 5.4 → 6
        let v = eval(&mut p, 90.0, 0.0, 3);
        assert_eq!(v.outcome, Outcome::Fired);
        assert_eq!(v.numbers["desired"], json!(6));
        assert_eq!(v.numbers["delta"], json!(3));
    }

    #[test]
    fn a_ratio_within_the_tolerance_changes_nothing() {
        let mut p = Hpa::new(spec());
        // 55 / 50 = 1.1: within 0.1 (ceil(4 × 1.1) = 5 would otherwise add one).
        assert_eq!(eval(&mut p, 55.0, 0.0, 4).outcome, Outcome::WithinTolerance);
        let mut p = Hpa::new(spec());
        // 56 / 50 = 1.12: beyond.
        assert_eq!(eval(&mut p, 56.0, 0.0, 4).outcome, Outcome::Fired);
    }

    #[test]
    fn evaluations_come_once_per_sync_period() {
        let mut p = Hpa::new(spec());
        eval(&mut p, 90.0, 0.0, 3);
        assert!(p.tick(Timestamp(14.9), &size(3)).is_empty());
        assert_eq!(p.tick(Timestamp(15.0), &size(3)).len(), 1);
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let mut p = Hpa::new(spec());
        // At 8 instances and 50: stay, a recommendation of 8 is recorded.
        assert_eq!(eval(&mut p, 50.0, 0.0, 8).outcome, Outcome::WithinTolerance);
        // The load halves 100 s later (the earlier samples have left the 60 s window):
        // recommended 4, but 8 is within 300 s.
        let v = eval(&mut p, 25.0, 100.0, 8);
        assert_eq!(v.outcome, Outcome::Stabilized, "{}", v.reason);
        assert_eq!(v.numbers["recommended"], json!(4));
        // Once the recommendation of 8 is 300 s old it no longer holds the size.
        let v = eval(&mut p, 25.0, 300.0, 8);
        assert_eq!(v.outcome, Outcome::Fired, "{}", v.reason);
        assert_eq!(v.numbers["desired"], json!(4));
    }

    #[test]
    fn scale_up_is_not_stabilized_and_min_max_clamp() {
        let mut p = Hpa::new(spec());
        eval(&mut p, 10.0, 0.0, 2);
        // 2 × 500 / 50 = 20, clamped to 10.
        let v = eval(&mut p, 500.0, 100.0, 2);
        assert_eq!(v.numbers["desired"], json!(10));
        let v = eval(&mut p, 500.0, 200.0, 10);
        assert_eq!(v.outcome, Outcome::Limit);
        let mut p = Hpa::new(spec());
        assert_eq!(eval(&mut p, 1.0, 0.0, 1).outcome, Outcome::Limit);
    }
}
