//! What holds a policy back once its condition holds: the interval since it last fired
//! (Cloudify's `interval_between_workflows`, the seed's `cooldown_time`) and, for Cloudify's
//! types, whether the instance is started (`is_node_started_before_workflow`).
//!
//! The interval is kept per key: per node instance for a policy that keeps its state per
//! instance (so healing one host does not hold back healing another), one key for a policy that
//! operates on its group. A negative interval never holds back (Cloudify: "workflows can run
//! concurrently"). Keys whose interval has passed are forgotten, so memory stays bounded by the
//! instances that fired within the interval.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use super::{Outcome, Timestamp, Verdict, View, round};

#[derive(Debug, Clone)]
pub struct Restraints {
    interval: f64,
    check_started: bool,
    /// What the interval is called in messages (`interval_between_workflows`, `cooldown_time`).
    name: &'static str,
    last_fired: HashMap<Option<String>, Timestamp>,
}

impl Restraints {
    pub fn new(interval: f64, check_started: bool, name: &'static str) -> Self {
        Restraints {
            interval,
            check_started,
            name,
            last_fired: HashMap::new(),
        }
    }

    /// Seconds before `key` may fire again (0 when it may).
    pub fn left(&self, key: Option<&str>, now: Timestamp) -> f64 {
        if self.interval < 0.0 {
            return 0.0;
        }
        match self.last_fired.get(&key.map(str::to_string)) {
            Some(t) => (self.interval - now.since(*t)).max(0.0),
            None => 0.0,
        }
    }

    /// The verdict that holds `key` back now, if any.
    pub fn hold(&mut self, key: Option<&str>, now: Timestamp, view: &dyn View) -> Option<Verdict> {
        let interval = self.interval;
        self.last_fired
            .retain(|_, t| interval >= 0.0 && now.since(*t) < interval);
        let left = self.left(key, now);
        if left > 0.0 {
            return Some(
                Verdict::new(
                    Outcome::Cooldown,
                    format!(
                        "fired {}s ago; {} is {}s, {}s left",
                        round(self.interval - left),
                        self.name,
                        self.interval,
                        round(left)
                    ),
                )
                .num("cooldown_left", round(left))
                .num(self.name, self.interval),
            );
        }
        if self.check_started
            && let Some(instance) = key
            && !view.is_started(instance)
        {
            return Some(Verdict::new(
                Outcome::NotStarted,
                format!("`{instance}` is not started (is_node_started_before_workflow)"),
            ));
        }
        None
    }

    /// Records that `key` fired now.
    pub fn fire(&mut self, key: Option<&str>, now: Timestamp) {
        self.last_fired.insert(key.map(str::to_string), now);
    }

    /// `{"KEY": seconds left, …}` (`"*"` for the group key) for snapshots.
    pub fn to_json(&self, now: Timestamp) -> Json {
        let mut keys: Vec<&Option<String>> = self.last_fired.keys().collect();
        keys.sort();
        let left: serde_json::Map<String, Json> = keys
            .into_iter()
            .map(|k| {
                (
                    k.clone().unwrap_or_else(|| "*".to_string()),
                    json!(round(self.left(k.as_deref(), now))),
                )
            })
            .filter(|(_, v)| v.as_f64().is_some_and(|x| x > 0.0))
            .collect();
        Json::Object(left)
    }
}
