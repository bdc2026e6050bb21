//! `cloudify.policies.types.host_failure`: fire when a node instance stops reporting.
//!
//! Cloudify indexes each instance's monitoring events in Riemann with a time to live and fires
//! when one expires. Natively: every sample whose metric name matches one of the `service`
//! regular expressions (a list, or one string; each matched against the whole name) records when
//! its instance was last heard from — at the caller's "now", so a collector's clock does not
//! matter. A [`Policy::tick`] at which an instance has been silent for the TTL (60 s by default,
//! `windlass serve --host-failure-ttl`) decides once about it, naming it in the decision; the
//! instance is then forgotten until it reports again (an expired event does not expire twice).
//! The restraints are Cloudify's: `interval_between_workflows` per instance (or per group with
//! `policy_operates_on_group`) and `is_node_started_before_workflow`.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Value as Json, json};

use super::restraints::Restraints;
use super::{Outcome, Policy, Sample, Timestamp, Verdict, View, round};

#[derive(Debug, Clone)]
pub struct HostFailureSpec {
    pub services: Vec<Regex>,
    pub ttl: f64,
    pub on_group: bool,
    pub interval_between_workflows: f64,
    pub is_node_started_before_workflow: bool,
    pub max_keys: usize,
}

#[derive(Debug)]
pub struct HostFailure {
    spec: HostFailureSpec,
    /// Instance → (last heard from, the metric it sent last).
    seen: HashMap<String, (Timestamp, String)>,
    restraints: Restraints,
    dropped: u64,
}

impl HostFailure {
    pub fn new(spec: HostFailureSpec) -> Self {
        let restraints = Restraints::new(
            spec.interval_between_workflows,
            spec.is_node_started_before_workflow,
            "interval_between_workflows",
        );
        HostFailure {
            spec,
            seen: HashMap::new(),
            restraints,
            dropped: 0,
        }
    }
}

impl Policy for HostFailure {
    fn observe(&mut self, sample: &Sample, now: Timestamp, _view: &dyn View) -> Vec<Verdict> {
        if !self.spec.services.iter().any(|r| r.is_match(&sample.name)) {
            return Vec::new();
        }
        if !self.seen.contains_key(&sample.node_instance) && self.seen.len() >= self.spec.max_keys {
            self.dropped += 1;
            return Vec::new();
        }
        self.seen
            .insert(sample.node_instance.clone(), (now, sample.name.clone()));
        Vec::new()
    }

    fn tick(&mut self, now: Timestamp, view: &dyn View) -> Vec<Verdict> {
        let ttl = self.spec.ttl;
        let mut expired: Vec<(String, Timestamp, String)> = self
            .seen
            .iter()
            .filter(|(_, (t, _))| now.since(*t) >= ttl)
            .map(|(i, (t, m))| (i.clone(), *t, m.clone()))
            .collect();
        expired.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (instance, last, metric) in expired {
            self.seen.remove(&instance);
            let silent = round(now.since(last));
            let key = (!self.spec.on_group).then_some(instance.as_str());
            let mut v = match self.restraints.hold(key, now, view) {
                Some(mut held) => {
                    held.reason = format!(
                        "`{instance}` sent nothing for {silent}s (TTL {ttl}s), but {}",
                        held.reason
                    );
                    held
                }
                None => {
                    self.restraints.fire(key, now);
                    Verdict::new(
                        Outcome::Fired,
                        format!(
                            "`{instance}` sent nothing for {silent}s (TTL {ttl}s): heart-beat failure"
                        ),
                    )
                }
            };
            v = v
                .num("last_seen", last.0)
                .num("silent_for", silent)
                .num("ttl", ttl)
                .num("diagnose", "heart-beat-failure")
                .instance(Some(&instance));
            v.metric = Some(metric);
            out.push(v);
        }
        out
    }

    fn snapshot(&self, now: Timestamp) -> Json {
        let mut names: Vec<&String> = self.seen.keys().collect();
        names.sort();
        let seen: serde_json::Map<String, Json> = names
            .into_iter()
            .map(|n| {
                let (t, m) = &self.seen[n];
                (
                    n.clone(),
                    json!({"last_seen": t.0, "metric": m, "expires_in": round((self.spec.ttl - now.since(*t)).max(0.0))}),
                )
            })
            .collect();
        json!({
            "instances": seen,
            "ttl": self.spec.ttl,
            "cooldown_left": self.restraints.to_json(now),
            "dropped_samples": self.dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{Fixed, STARTED, sample};
    use super::*;

    fn spec() -> HostFailureSpec {
        HostFailureSpec {
            services: vec![Regex::new("^(?:cpu\\..*)$").unwrap()],
            ttl: 60.0,
            on_group: false,
            interval_between_workflows: 300.0,
            is_node_started_before_workflow: true,
            max_keys: 100,
        }
    }

    #[test]
    fn an_instance_silent_for_the_ttl_fires_once_naming_it() {
        let mut p = HostFailure::new(spec());
        p.observe(
            &sample("vm_a", "cpu.total", 1.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        p.observe(
            &sample("vm_b", "cpu.total", 1.0, 30.0),
            Timestamp(30.0),
            &STARTED,
        );
        assert!(p.tick(Timestamp(59.9), &STARTED).is_empty());
        let v = p.tick(Timestamp(60.0), &STARTED);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].outcome, Outcome::Fired);
        assert_eq!(v[0].instance.as_deref(), Some("vm_a"));
        assert_eq!(v[0].numbers["silent_for"], json!(60.0));
        // Expired once: no second decision until it reports again.
        assert!(p.tick(Timestamp(61.0), &STARTED).is_empty());
        let v = p.tick(Timestamp(90.0), &STARTED);
        assert_eq!(v[0].instance.as_deref(), Some("vm_b"));
    }

    #[test]
    fn reporting_keeps_an_instance_alive_and_unmatched_metrics_do_not_count() {
        let mut p = HostFailure::new(spec());
        p.observe(
            &sample("vm_a", "cpu.total", 1.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        p.observe(
            &sample("vm_a", "cpu.total", 1.0, 50.0),
            Timestamp(50.0),
            &STARTED,
        );
        p.observe(
            &sample("vm_a", "memory", 1.0, 100.0),
            Timestamp(100.0),
            &STARTED,
        );
        assert!(p.tick(Timestamp(109.0), &STARTED).is_empty());
        assert_eq!(p.tick(Timestamp(110.0), &STARTED).len(), 1);
    }

    #[test]
    fn a_second_failure_within_the_interval_is_held_back_and_says_why() {
        let mut p = HostFailure::new(spec());
        p.observe(
            &sample("vm_a", "cpu.total", 1.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        assert_eq!(p.tick(Timestamp(60.0), &STARTED)[0].outcome, Outcome::Fired);
        p.observe(
            &sample("vm_a", "cpu.total", 1.0, 70.0),
            Timestamp(70.0),
            &STARTED,
        );
        let v = p.tick(Timestamp(130.0), &STARTED);
        assert_eq!(v[0].outcome, Outcome::Cooldown);
        assert_eq!(v[0].numbers["cooldown_left"], json!(230.0));
        let stopped = Fixed {
            started: false,
            size: None,
        };
        p.observe(
            &sample("vm_c", "cpu.total", 1.0, 0.0),
            Timestamp(0.0),
            &stopped,
        );
        assert_eq!(
            p.tick(Timestamp(200.0), &stopped)[0].outcome,
            Outcome::NotStarted
        );
    }
}
