//! `windlass.policies.types.sliding_window`: the seed scenario's Riemann scaling policy.
//!
//! Each source (node instance) whose metric name matches `service` keeps a window of its
//! samples from the last `moving_window_size` seconds. The aggregate is the sum of the
//! reporting sources' window means divided by their number. It is evaluated on every sample,
//! so the policy acts as soon as the aggregate crosses (a full window is not awaited):
//! `scale_direction: '<'` fires when `scale_threshold < aggregate`, `'>'` when
//! `scale_threshold > aggregate`. It then holds back for `cooldown_time` seconds from the decision
//! that fired, and while the target's current size (from the caller's [`View`]) is at the
//! `scale_limit`: at or above it with `<`, at or below it with `>`. An unknown size holds back
//! too, since the limit cannot be checked.
//!
//! A fired decision carries `delta`: `scale_step` towards the limit, never past it
//! (`+min(scale_step, scale_limit - size)` with `<`, `-min(scale_step, size - scale_limit)` with
//! `>`), so a trigger written `delta: '{{ delta }}'` keeps the target within its limit whatever
//! the step. Triggers that write their own amount (`amount: '+1'`) are unaffected.

use regex::Regex;
use serde_json::{Value as Json, json};

use super::restraints::Restraints;
use super::sample::Sources;
use super::{Outcome, Policy, Sample, Timestamp, Verdict, View, round};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: fire when the threshold is below the aggregate (scale out).
    Up,
    /// `>`: fire when the threshold is above the aggregate (scale in).
    Down,
}

#[derive(Debug, Clone)]
pub struct SlidingWindowSpec {
    /// The policy's name, for [`View::target_size`].
    pub policy: String,
    pub service: Regex,
    pub moving_window_size: f64,
    pub scale_threshold: f64,
    pub scale_limit: u64,
    pub scale_direction: Direction,
    /// How far one decision moves the target at most (its `delta`).
    pub scale_step: u64,
    pub cooldown_time: f64,
    pub max_points: usize,
    pub max_sources: usize,
}

#[derive(Debug)]
pub struct SlidingWindow {
    spec: SlidingWindowSpec,
    sources: Sources,
    cooldown: Restraints,
    last_aggregate: Option<f64>,
}

impl SlidingWindow {
    pub fn new(spec: SlidingWindowSpec) -> Self {
        SlidingWindow {
            sources: Sources::new(spec.moving_window_size, spec.max_points, spec.max_sources),
            cooldown: Restraints::new(spec.cooldown_time, false, "cooldown_time"),
            last_aggregate: None,
            spec,
        }
    }
}

impl Policy for SlidingWindow {
    fn observe(&mut self, sample: &Sample, now: Timestamp, view: &dyn View) -> Vec<Verdict> {
        if !self.spec.service.is_match(&sample.name) {
            return Vec::new();
        }
        self.sources.push(sample);
        self.sources.expire(now);
        let Some((aggregate, reporting)) = self.sources.mean_of_means() else {
            // The sample was older than the window (or dropped): nothing to evaluate.
            self.last_aggregate = None;
            return vec![
                Verdict::new(Outcome::NoData, "no source has a sample within the window")
                    .from_sample(sample),
            ];
        };
        self.last_aggregate = Some(aggregate);
        let (op, crossed) = match self.spec.scale_direction {
            Direction::Up => ("<", self.spec.scale_threshold < aggregate),
            Direction::Down => (">", self.spec.scale_threshold > aggregate),
        };
        let threshold = self.spec.scale_threshold;
        let agg = round(aggregate);
        let base = |v: Verdict| {
            v.num("aggregate", agg)
                .num("sources_reporting", reporting)
                .num("scale_threshold", threshold)
                .num("scale_direction", op)
                .from_sample(sample)
        };
        if !crossed {
            return vec![base(Verdict::new(
                Outcome::NotBreached,
                format!("scale_threshold {threshold} {op} aggregate {agg} does not hold"),
            ))];
        }
        if let Some(mut held) = self.cooldown.hold(None, now, view) {
            held.reason = format!("{threshold} {op} {agg}, but {}", held.reason);
            return vec![base(held)];
        }
        let limit = self.spec.scale_limit;
        let Some(size) = view.target_size(&self.spec.policy) else {
            return vec![base(Verdict::new(
                Outcome::SizeUnknown,
                format!(
                    "{threshold} {op} {agg}, but the target's current size is unknown, so scale_limit {limit} cannot be checked"
                ),
            ))];
        };
        let at_limit = match self.spec.scale_direction {
            Direction::Up => size >= limit,
            Direction::Down => size <= limit,
        };
        if at_limit {
            let side = if self.spec.scale_direction == Direction::Up {
                "at or above"
            } else {
                "at or below"
            };
            return vec![base(
                Verdict::new(
                    Outcome::Limit,
                    format!("{threshold} {op} {agg}, but the target's size {size} is {side} scale_limit {limit}"),
                )
                .num("size", size)
                .num("scale_limit", limit),
            )];
        }
        self.cooldown.fire(None, now);
        let delta = match self.spec.scale_direction {
            Direction::Up => self.spec.scale_step.min(limit - size) as i64,
            Direction::Down => -(self.spec.scale_step.min(size - limit) as i64),
        };
        vec![base(
            Verdict::new(
                Outcome::Fired,
                format!(
                    "scale_threshold {threshold} {op} aggregate {agg} ({reporting} sources reporting; size {size}, scale_limit {limit})"
                ),
            )
            .num("size", size)
            .num("scale_limit", limit)
            .num("delta", delta),
        )]
    }

    fn tick(&mut self, now: Timestamp, _view: &dyn View) -> Vec<Verdict> {
        self.sources.expire(now);
        Vec::new()
    }

    fn snapshot(&self, now: Timestamp) -> Json {
        let mut s = self.sources.to_json();
        s["aggregate"] = json!(self.last_aggregate.map(round));
        s["cooldown_left"] = json!(round(self.cooldown.left(None, now)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{Fixed, sample};
    use super::*;

    fn spec(direction: Direction) -> SlidingWindowSpec {
        SlidingWindowSpec {
            policy: "scale_up".into(),
            service: Regex::new("^(?:connections)$").unwrap(),
            moving_window_size: 10.0,
            scale_threshold: 10.0,
            scale_limit: 5,
            scale_direction: direction,
            scale_step: 1,
            cooldown_time: 30.0,
            max_points: 100,
            max_sources: 100,
        }
    }

    const SIZE_2: Fixed = Fixed {
        started: true,
        size: Some(2),
    };

    fn feed(
        p: &mut SlidingWindow,
        instance: &str,
        value: f64,
        at: f64,
        view: &dyn View,
    ) -> Verdict {
        p.observe(
            &sample(instance, "connections", value, at),
            Timestamp(at),
            view,
        )
        .pop()
        .expect("a verdict")
    }

    #[test]
    fn the_aggregate_is_the_mean_of_the_sources_window_means() {
        let mut p = SlidingWindow::new(spec(Direction::Up));
        // a: mean(4, 8) = 6; b: 9 → (6 + 9) / 2 = 7.5: not above 10.
        feed(&mut p, "a", 4.0, 0.0, &SIZE_2);
        feed(&mut p, "a", 8.0, 1.0, &SIZE_2);
        let v = feed(&mut p, "b", 9.0, 2.0, &SIZE_2);
        assert_eq!(v.outcome, Outcome::NotBreached);
        assert_eq!(v.numbers["aggregate"], json!(7.5));
        assert_eq!(v.numbers["sources_reporting"], json!(2));
        // b: mean(9, 21) = 15 → (6 + 15) / 2 = 10.5: fires at once, no full window needed.
        let v = feed(&mut p, "b", 21.0, 3.0, &SIZE_2);
        assert_eq!(v.outcome, Outcome::Fired, "{}", v.reason);
        assert_eq!(v.numbers["aggregate"], json!(10.5));
    }

    #[test]
    fn samples_leave_the_window_at_its_edge() {
        let mut p = SlidingWindow::new(spec(Direction::Up));
        feed(&mut p, "a", 100.0, 0.0, &SIZE_2);
        // At 10.0 the first point is exactly window-old and out: only 1.0 remains.
        let v = feed(&mut p, "a", 1.0, 10.0, &SIZE_2);
        assert_eq!(v.numbers["aggregate"], json!(1.0));
        // A source whose window emptied no longer counts as reporting.
        let v = feed(&mut p, "b", 3.0, 20.5, &SIZE_2);
        assert_eq!(v.numbers["sources_reporting"], json!(1));
    }

    #[test]
    fn cooldown_counts_from_the_decision_that_fired() {
        let mut p = SlidingWindow::new(spec(Direction::Up));
        assert_eq!(
            feed(&mut p, "a", 50.0, 0.0, &SIZE_2).outcome,
            Outcome::Fired
        );
        let v = feed(&mut p, "a", 50.0, 29.0, &SIZE_2);
        assert_eq!(v.outcome, Outcome::Cooldown);
        assert_eq!(v.numbers["cooldown_left"], json!(1.0));
        assert_eq!(
            feed(&mut p, "a", 50.0, 30.0, &SIZE_2).outcome,
            Outcome::Fired
        );
    }

    #[test]
    fn scale_limit_bounds_the_current_size_in_the_policy_direction() {
        let mut up = SlidingWindow::new(spec(Direction::Up));
        let at = |n| Fixed {
            started: true,
            size: Some(n),
        };
        assert_eq!(
            feed(&mut up, "a", 50.0, 0.0, &at(5)).outcome,
            Outcome::Limit
        );
        assert_eq!(
            feed(&mut up, "a", 50.0, 1.0, &at(6)).outcome,
            Outcome::Limit
        );
        assert_eq!(
            feed(&mut up, "a", 50.0, 2.0, &at(4)).outcome,
            Outcome::Fired
        );

        let mut down = SlidingWindow::new(SlidingWindowSpec {
            scale_limit: 1,
            ..spec(Direction::Down)
        });
        assert_eq!(
            feed(&mut down, "a", 1.0, 0.0, &at(1)).outcome,
            Outcome::Limit
        );
        assert_eq!(
            feed(&mut down, "a", 1.0, 1.0, &at(2)).outcome,
            Outcome::Fired
        );
        let unknown = Fixed {
            started: true,
            size: None,
        };
        assert_eq!(
            feed(&mut down, "a", 1.0, 100.0, &unknown).outcome,
            Outcome::SizeUnknown
        );
    }

    #[test]
    fn delta_is_the_step_towards_the_limit_never_past_it() {
        let at = |n| Fixed {
            started: true,
            size: Some(n),
        };
        let delta = |direction, limit, size| {
            let mut p = SlidingWindow::new(SlidingWindowSpec {
                scale_limit: limit,
                scale_step: 3,
                ..spec(direction)
            });
            let value = if direction == Direction::Up {
                50.0
            } else {
                1.0
            };
            let v = feed(&mut p, "a", value, 0.0, &at(size));
            assert_eq!(v.outcome, Outcome::Fired, "{}", v.reason);
            v.numbers["delta"].clone()
        };
        assert_eq!(delta(Direction::Up, 10, 2), json!(3));
        assert_eq!(delta(Direction::Up, 5, 4), json!(1));
        assert_eq!(delta(Direction::Down, 1, 9), json!(-3));
        assert_eq!(delta(Direction::Down, 2, 4), json!(-2));
    }

    #[test]
    fn direction_greater_fires_when_the_threshold_is_above_the_aggregate() {
        let down = || {
            SlidingWindow::new(SlidingWindowSpec {
                scale_limit: 1,
                ..spec(Direction::Down)
            })
        };
        let mut p = down();
        assert_eq!(
            feed(&mut p, "a", 10.0, 0.0, &SIZE_2).outcome,
            Outcome::NotBreached
        );
        let mut p = down();
        assert_eq!(feed(&mut p, "a", 9.0, 0.0, &SIZE_2).outcome, Outcome::Fired);
        let mut p = SlidingWindow::new(spec(Direction::Up));
        assert_eq!(
            feed(&mut p, "a", 9.0, 0.0, &SIZE_2).outcome,
            Outcome::NotBreached
        );
    }
}
