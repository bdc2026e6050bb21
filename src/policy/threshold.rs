//! `cloudify.policies.types.threshold`: fire when a metric has been past a threshold for
//! `stability_time` seconds.
//!
//! Cloudify's Riemann policy, natively: samples whose metric name matches `service` (a regular
//! expression over the whole name) are compared with `threshold` — above it when `upper_bound`
//! (the default), below it otherwise. The breach must hold, sample after sample, for
//! `stability_time` seconds (0: the first breaching sample fires), as Riemann's `stable` stream
//! does; a sample on the quiet side starts the count again. State is kept per node instance, or
//! once for the whole group with `policy_operates_on_group`. Then the restraints: at most one
//! firing per `interval_between_workflows` (300 s) per key, and with
//! `is_node_started_before_workflow` (the default) only for a started instance.
//!
//! `ewma_stabilized` ([`super::ewma`]) is this state machine over an exponentially weighted
//! moving average instead of the raw value.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Value as Json, json};

use super::restraints::Restraints;
use super::{Outcome, Policy, Sample, Timestamp, Verdict, View, round};

/// Settings shared by `threshold` and `ewma_stabilized`.
#[derive(Debug, Clone)]
pub struct ThresholdSpec {
    pub service: Regex,
    pub threshold: f64,
    pub upper_bound: bool,
    pub stability_time: f64,
    pub on_group: bool,
    pub interval_between_workflows: f64,
    pub is_node_started_before_workflow: bool,
    /// `Some(r)` for `ewma_stabilized`: the weight of the newest sample.
    pub ewma_r: Option<f64>,
    /// Keys (instances) tracked at most.
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
struct KeyState {
    last: f64,
    /// The EWMA, for `ewma_stabilized`.
    smoothed: Option<f64>,
    /// Sample time since which the breach has held.
    since: Option<Timestamp>,
}

#[derive(Debug)]
pub struct Threshold {
    spec: ThresholdSpec,
    keys: HashMap<Option<String>, KeyState>,
    restraints: Restraints,
    dropped: u64,
}

impl Threshold {
    pub fn new(spec: ThresholdSpec) -> Self {
        let restraints = Restraints::new(
            spec.interval_between_workflows,
            spec.is_node_started_before_workflow,
            "interval_between_workflows",
        );
        Threshold {
            spec,
            keys: HashMap::new(),
            restraints,
            dropped: 0,
        }
    }
}

impl Policy for Threshold {
    fn observe(&mut self, sample: &Sample, now: Timestamp, view: &dyn View) -> Vec<Verdict> {
        if !self.spec.service.is_match(&sample.name) {
            return Vec::new();
        }
        let key = (!self.spec.on_group).then(|| sample.node_instance.clone());
        if !self.keys.contains_key(&key) && self.keys.len() >= self.spec.max_keys {
            self.dropped += 1;
            return Vec::new();
        }
        let state = self.keys.entry(key.clone()).or_default();
        state.last = sample.value;
        let value = match self.spec.ewma_r {
            Some(r) => {
                let m = super::ewma::next(state.smoothed, r, sample.value);
                state.smoothed = Some(m);
                m
            }
            None => sample.value,
        };
        let (breach, side) = if self.spec.upper_bound {
            (value > self.spec.threshold, "above")
        } else {
            (value < self.spec.threshold, "below")
        };
        let what = if self.spec.ewma_r.is_some() {
            "the moving average"
        } else {
            "the value"
        };
        let base = |v: Verdict| {
            let v = v
                .num("value", round(sample.value))
                .num("threshold", self.spec.threshold)
                .from_sample(sample)
                .instance(Some(&sample.node_instance));
            match self.spec.ewma_r {
                Some(r) => v.num("ewma", round(value)).num("ewma_timeless_r", r),
                None => v,
            }
        };
        if !breach {
            state.since = None;
            return vec![base(Verdict::new(
                Outcome::NotBreached,
                format!(
                    "{what} {} is not {side} the threshold {}",
                    round(value),
                    self.spec.threshold
                ),
            ))];
        }
        let since = *state.since.get_or_insert(sample.at);
        let held = sample.at.since(since);
        if held < self.spec.stability_time {
            return vec![base(
                Verdict::new(
                    Outcome::StabilityNotReached,
                    format!(
                        "{what} {} is {side} the threshold {} for {}s of the {}s stability_time",
                        round(value),
                        self.spec.threshold,
                        round(held),
                        self.spec.stability_time
                    ),
                )
                .num("breached_for", round(held))
                .num("stability_time", self.spec.stability_time),
            )];
        }
        if let Some(held_back) = self.restraints.hold(key.as_deref(), now, view) {
            let mut v = base(held_back);
            v.reason = format!(
                "{what} {} is {side} the threshold {}, but {}",
                round(value),
                self.spec.threshold,
                v.reason
            );
            return vec![v];
        }
        self.restraints.fire(key.as_deref(), now);
        vec![base(
            Verdict::new(
                Outcome::Fired,
                format!(
                    "{what} {} is {side} the threshold {} (for {}s; stability_time {}s)",
                    round(value),
                    self.spec.threshold,
                    round(held),
                    self.spec.stability_time
                ),
            )
            .num("breached_for", round(held)),
        )]
    }

    fn tick(&mut self, _now: Timestamp, _view: &dyn View) -> Vec<Verdict> {
        // Like Riemann's `stable`, the policy decides when a sample arrives.
        Vec::new()
    }

    fn snapshot(&self, now: Timestamp) -> Json {
        let mut keys: Vec<&Option<String>> = self.keys.keys().collect();
        keys.sort();
        let states: serde_json::Map<String, Json> = keys
            .into_iter()
            .map(|k| {
                let s = &self.keys[k];
                (
                    k.clone().unwrap_or_else(|| "*".into()),
                    json!({
                        "last_value": s.last,
                        "ewma": s.smoothed.map(round),
                        "breached_since": s.since,
                    }),
                )
            })
            .collect();
        json!({
            "keys": states,
            "cooldown_left": self.restraints.to_json(now),
            "dropped_samples": self.dropped,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A view where every instance is started (or none) and sizes are fixed.
    pub struct Fixed {
        pub started: bool,
        pub size: Option<u64>,
    }

    impl View for Fixed {
        fn target_size(&self, _: &str) -> Option<u64> {
            self.size
        }
        fn is_started(&self, _: &str) -> bool {
            self.started
        }
    }

    pub const STARTED: Fixed = Fixed {
        started: true,
        size: Some(1),
    };

    pub fn sample(instance: &str, name: &str, value: f64, at: f64) -> Sample {
        Sample {
            deployment: "d".into(),
            node_instance: instance.into(),
            name: name.into(),
            value,
            at: Timestamp(at),
        }
    }

    pub fn spec() -> ThresholdSpec {
        ThresholdSpec {
            service: Regex::new("^(?:cpu)$").unwrap(),
            threshold: 80.0,
            upper_bound: true,
            stability_time: 0.0,
            on_group: false,
            interval_between_workflows: 300.0,
            is_node_started_before_workflow: true,
            ewma_r: None,
            max_keys: 100,
        }
    }

    fn outcomes(p: &mut Threshold, samples: &[(&str, f64, f64)], view: &dyn View) -> Vec<Outcome> {
        samples
            .iter()
            .flat_map(|(i, v, t)| p.observe(&sample(i, "cpu", *v, *t), Timestamp(*t), view))
            .map(|v| v.outcome)
            .collect()
    }

    #[test]
    fn fires_above_the_threshold_and_not_at_it() {
        let mut p = Threshold::new(spec());
        let got = outcomes(&mut p, &[("a", 80.0, 0.0), ("a", 80.5, 1.0)], &STARTED);
        assert_eq!(got, [Outcome::NotBreached, Outcome::Fired]);
    }

    #[test]
    fn lower_bound_fires_below() {
        let mut p = Threshold::new(ThresholdSpec {
            upper_bound: false,
            ..spec()
        });
        let got = outcomes(&mut p, &[("a", 90.0, 0.0), ("a", 10.0, 1.0)], &STARTED);
        assert_eq!(got, [Outcome::NotBreached, Outcome::Fired]);
    }

    #[test]
    fn the_whole_metric_name_must_match_the_service() {
        let mut p = Threshold::new(spec());
        let v = p.observe(
            &sample("a", "cpu.total", 99.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        assert!(v.is_empty());
    }

    #[test]
    fn stability_time_needs_an_unbroken_breach() {
        let mut p = Threshold::new(ThresholdSpec {
            stability_time: 10.0,
            ..spec()
        });
        let got = outcomes(
            &mut p,
            &[
                ("a", 90.0, 0.0),
                ("a", 90.0, 9.0),
                ("a", 50.0, 9.5), // the breach is broken: the count restarts
                ("a", 90.0, 10.0),
                ("a", 90.0, 19.9),
                ("a", 90.0, 20.0),
            ],
            &STARTED,
        );
        use Outcome::*;
        assert_eq!(
            got,
            [
                StabilityNotReached,
                StabilityNotReached,
                NotBreached,
                StabilityNotReached,
                StabilityNotReached,
                Fired
            ]
        );
    }

    #[test]
    fn interval_between_workflows_holds_back_per_instance() {
        let mut p = Threshold::new(spec());
        let got = outcomes(
            &mut p,
            &[
                ("a", 90.0, 0.0),
                ("a", 90.0, 299.0),
                ("b", 90.0, 299.0), // another instance has its own interval
                ("a", 90.0, 300.0),
            ],
            &STARTED,
        );
        use Outcome::*;
        assert_eq!(got, [Fired, Cooldown, Fired, Fired]);
        let held = p.observe(&sample("a", "cpu", 95.0, 301.0), Timestamp(301.0), &STARTED);
        assert_eq!(held[0].numbers["cooldown_left"], json!(299.0));
    }

    #[test]
    fn on_group_one_interval_for_all_instances() {
        let mut p = Threshold::new(ThresholdSpec {
            on_group: true,
            ..spec()
        });
        let got = outcomes(&mut p, &[("a", 90.0, 0.0), ("b", 90.0, 1.0)], &STARTED);
        assert_eq!(got, [Outcome::Fired, Outcome::Cooldown]);
    }

    #[test]
    fn a_negative_interval_never_holds_back() {
        let mut p = Threshold::new(ThresholdSpec {
            interval_between_workflows: -1.0,
            ..spec()
        });
        let got = outcomes(&mut p, &[("a", 90.0, 0.0), ("a", 90.0, 0.1)], &STARTED);
        assert_eq!(got, [Outcome::Fired, Outcome::Fired]);
    }

    #[test]
    fn an_instance_that_is_not_started_does_not_fire_unless_told() {
        let stopped = Fixed {
            started: false,
            size: None,
        };
        let mut p = Threshold::new(spec());
        assert_eq!(
            outcomes(&mut p, &[("a", 90.0, 0.0)], &stopped),
            [Outcome::NotStarted]
        );
        let mut p = Threshold::new(ThresholdSpec {
            is_node_started_before_workflow: false,
            ..spec()
        });
        assert_eq!(
            outcomes(&mut p, &[("a", 90.0, 0.0)], &stopped),
            [Outcome::Fired]
        );
    }
}
