//! [`PolicySet`]: the live policies of one deployment.
//!
//! Built from the compiled blueprint's policies (group policies, keyed `GROUP/POLICY`, with
//! their triggers; top-level non-scaling policies, which have none), or one by one with
//! [`PolicySet::add`] (rules made through the API). A sample reaches a policy when it is of
//! this deployment and its node instance belongs to a node of the policy's target groups
//! (nested groups included); a policy without targets takes every sample of the deployment.
//!
//! Reporting: every fired decision is reported. A decision that did not fire is reported when its
//! outcome differs from the previous one reported for the same policy and instance — the first
//! breach held back by a cooldown says so once, instead of once per sample — so the event log
//! reads as the story of each policy and stays bounded by changes, not by the metric rate. A
//! `dry_run` policy's fired decisions are reported with `acting: false` (its cooldown runs as if
//! it had acted, so a dry run shows what would have happened). The last decisions of each policy
//! are kept (at most [`RECENT`]) for [`PolicySet::snapshot`].

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::config::{PolicyError, Settings, build};
use super::sample::node_of;
use super::trigger::{TriggerSpec, render_parameters};
use super::{Decision, Outcome, Policy, Sample, Timestamp, Verdict, View};
use crate::dsl::compiled::Compiled;

/// Decisions kept per policy for snapshots.
pub const RECENT: usize = 20;

/// A workflow to run for an acting decision: one per trigger of its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub policy: String,
    pub trigger: String,
    pub workflow: String,
    pub parameters: Map<String, Json>,
    pub allow_custom_parameters: bool,
    pub force: bool,
}

struct Entry {
    name: String,
    ty: String,
    dry_run: bool,
    /// Nodes whose instances feed the policy; `None`: every instance.
    members: Option<HashSet<String>>,
    policy: Box<dyn Policy>,
    triggers: Vec<TriggerSpec>,
    last_reported: HashMap<Option<String>, Outcome>,
    recent: VecDeque<Decision>,
}

/// The policies of one deployment. See the module documentation.
pub struct PolicySet {
    deployment: String,
    inputs: Map<String, Json>,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("deployment", &self.deployment)
            .field("policies", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// The nodes of `group`, through nested groups.
pub(crate) fn group_nodes(
    compiled: &Compiled,
    group: &str,
    out: &mut HashSet<String>,
    seen: &mut HashSet<String>,
) {
    if !seen.insert(group.to_string()) {
        return;
    }
    let Some(g) = compiled.groups.get(group) else {
        return;
    };
    for (member, _) in &g.members {
        if compiled.groups.contains_key(member) {
            group_nodes(compiled, member, out, seen);
        } else {
            out.insert(member.clone());
        }
    }
}

impl PolicySet {
    /// An empty set for `deployment`, whose `inputs` triggers may read with `get_input`.
    pub fn new(deployment: &str, inputs: Map<String, Json>) -> Self {
        PolicySet {
            deployment: deployment.into(),
            inputs,
            entries: Vec::new(),
        }
    }

    /// The policies of a compiled blueprint. A policy that cannot be built is left out and its
    /// error returned, so one bad policy does not stop the others.
    pub fn from_compiled(
        deployment: &str,
        compiled: &Compiled,
        settings: &Settings,
    ) -> (Self, Vec<PolicyError>) {
        let inputs: Map<String, Json> = compiled
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut set = PolicySet::new(deployment, inputs);
        let mut errors = Vec::new();
        for (name, p) in &compiled.policies {
            let Some(obj) = p.as_object() else {
                errors.push(PolicyError::Malformed {
                    policy: name.clone(),
                });
                continue;
            };
            let ty = obj.get("type").and_then(Json::as_str).unwrap_or_default();
            let source = obj.get("source").and_then(Json::as_str);
            let empty = Map::new();
            let properties = obj
                .get("properties")
                .and_then(Json::as_object)
                .unwrap_or(&empty);
            let targets: Vec<&str> = obj
                .get("targets")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let members = (!targets.is_empty()).then(|| {
                let mut nodes = HashSet::new();
                let mut seen = HashSet::new();
                for t in &targets {
                    group_nodes(compiled, t, &mut nodes, &mut seen);
                }
                nodes
            });
            let triggers = match obj.get("triggers") {
                Some(Json::Object(ts)) => ts
                    .iter()
                    .map(|(tname, t)| {
                        TriggerSpec::parse(
                            name,
                            tname,
                            t.get("type").and_then(Json::as_str).unwrap_or_default(),
                            t.get("parameters").unwrap_or(&Json::Null),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>(),
                _ => Ok(Vec::new()),
            };
            let added = triggers.and_then(|triggers| {
                set.add(name, ty, source, properties, members, triggers, settings)
            });
            if let Err(e) = added {
                errors.push(e);
            }
        }
        (set, errors)
    }

    /// Adds a policy. `members`: the nodes whose instances feed it (`None`: all).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        name: &str,
        ty: &str,
        source: Option<&str>,
        properties: &Map<String, Json>,
        members: Option<HashSet<String>>,
        triggers: Vec<TriggerSpec>,
        settings: &Settings,
    ) -> Result<(), PolicyError> {
        let built = build(name, ty, source, properties, settings)?;
        self.entries.push(Entry {
            name: name.into(),
            ty: ty.into(),
            dry_run: built.dry_run,
            members,
            policy: built.policy,
            triggers,
            last_reported: HashMap::new(),
            recent: VecDeque::new(),
        });
        Ok(())
    }

    /// Removes a policy (a rule deleted or changed); false when there is none of that name.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        self.entries.len() != before
    }

    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Feeds one sample to the policies it concerns; returns the decisions to report.
    pub fn observe(&mut self, sample: &Sample, now: Timestamp, view: &dyn View) -> Vec<Decision> {
        // NaN or infinite readings would poison every mean they enter; the intake counts them
        // as malformed, and here they are simply not seen.
        if sample.deployment != self.deployment
            || !sample.value.is_finite()
            || !sample.at.0.is_finite()
        {
            return Vec::new();
        }
        let node = node_of(&sample.node_instance);
        let mut out = Vec::new();
        for e in &mut self.entries {
            if e.members.as_ref().is_some_and(|m| !m.contains(node)) {
                continue;
            }
            let verdicts = e.policy.observe(sample, now, view);
            e.report(verdicts, now, &mut out);
        }
        out
    }

    /// Lets time pass for every policy (call at least once a second); returns the decisions to
    /// report.
    pub fn tick(&mut self, now: Timestamp, view: &dyn View) -> Vec<Decision> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            let verdicts = e.policy.tick(now, view);
            e.report(verdicts, now, &mut out);
        }
        out
    }

    /// The workflows an acting decision runs, one per trigger of its policy, parameters
    /// rendered; a trigger whose parameters cannot be rendered gives its error instead.
    pub fn actions(&self, decision: &Decision) -> Vec<Result<Action, PolicyError>> {
        if !decision.acting {
            return Vec::new();
        }
        let Some(e) = self.entries.iter().find(|e| e.name == decision.policy) else {
            return Vec::new();
        };
        e.triggers
            .iter()
            .map(|t| {
                Ok(Action {
                    policy: e.name.clone(),
                    trigger: t.name.clone(),
                    workflow: t.workflow.clone(),
                    parameters: render_parameters(t, decision, &self.deployment, &self.inputs)?,
                    allow_custom_parameters: t.allow_custom_parameters,
                    force: t.force,
                })
            })
            .collect()
    }

    /// Every policy's live state and last decisions, for `windlass policies ID`:
    /// `[{"name", "type", "dry_run", "triggers": [{"name", "workflow"}], "state": {…},
    /// "last_decisions": [Decision, …]}]`.
    pub fn snapshot(&self, now: Timestamp) -> Json {
        Json::Array(
            self.entries
                .iter()
                .map(|e| {
                    json!({
                        "name": e.name,
                        "type": e.ty,
                        "dry_run": e.dry_run,
                        "triggers": e.triggers.iter().map(|t| json!({"name": t.name, "workflow": t.workflow})).collect::<Vec<_>>(),
                        "state": e.policy.snapshot(now),
                        "last_decisions": e.recent,
                    })
                })
                .collect(),
        )
    }
}

impl Entry {
    fn report(&mut self, verdicts: Vec<Verdict>, now: Timestamp, out: &mut Vec<Decision>) {
        for v in verdicts {
            let fired = v.fired();
            let key = v.instance.clone();
            if !fired && self.last_reported.get(&key) == Some(&v.outcome) {
                continue;
            }
            self.last_reported.insert(key, v.outcome);
            let reason = if fired && self.dry_run {
                format!("{} (dry run: not acting)", v.reason)
            } else {
                v.reason
            };
            let d = Decision {
                policy: self.name.clone(),
                fired,
                acting: fired && !self.dry_run,
                outcome: v.outcome,
                reason,
                numbers: v.numbers,
                instance: v.instance,
                metric: v.metric,
                value: v.value,
                at: now,
            };
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(d.clone());
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{Fixed, STARTED, sample};
    use super::*;

    fn compiled(text: &str) -> Compiled {
        crate::blueprint::open_str(std::path::Path::new("bp.yaml"), text, &Default::default())
            .unwrap()
            .compiled
    }

    fn set(extra: Json) -> PolicySet {
        let mut compiled = compiled(
            "tosca_definitions_version: cloudify_dsl_1_3\n\
             imports: [cloudify/types/types.yaml]\n\
             node_templates:\n  web: { type: cloudify.nodes.Root }\n  db: { type: cloudify.nodes.Root }\n\
             groups:\n  webs: { members: [web] }\n  outer: { members: [webs] }\n",
        );
        for (k, v) in extra.as_object().unwrap() {
            compiled.policies.insert(k.clone(), v.clone());
        }
        let (set, errors) = PolicySet::from_compiled("d", &compiled, &Settings::default());
        assert!(errors.is_empty(), "{errors:?}");
        set
    }

    fn heal_policy(dry_run: bool) -> Json {
        json!({"outer/heal": {
            "type": "cloudify.policies.types.threshold",
            "properties": {"service": "cpu", "threshold": 90, "dry_run": dry_run},
            "targets": ["outer"],
            "triggers": {"t": {"type": "cloudify.policies.triggers.execute_workflow",
                "parameters": {"workflow": "heal",
                    "workflow_parameters": {"node_instance_id": {"get_property": ["SELF", "node_id"]}}}}}
        }})
    }

    #[test]
    fn samples_reach_policies_of_their_nodes_groups_only() {
        let mut s = set(heal_policy(false));
        let other_node = s.observe(
            &sample("db_aaaaaa", "cpu", 99.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        assert!(other_node.is_empty());
        let nan = sample("web_aaaaaa", "cpu", f64::NAN, 0.0);
        assert!(s.observe(&nan, Timestamp(0.0), &STARTED).is_empty());
        let mut foreign = sample("web_aaaaaa", "cpu", 99.0, 0.0);
        foreign.deployment = "other".into();
        assert!(s.observe(&foreign, Timestamp(0.0), &STARTED).is_empty());
        let d = s.observe(
            &sample("web_aaaaaa", "cpu", 99.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        assert_eq!(d.len(), 1);
        assert!(d[0].acting);
        let actions = s.actions(&d[0]);
        assert_eq!(
            actions[0].as_ref().unwrap().parameters["node_instance_id"],
            json!("web_aaaaaa")
        );
    }

    #[test]
    fn a_repeated_suppression_is_reported_once_and_fired_decisions_always() {
        let mut s = set(heal_policy(false));
        let mut reported = Vec::new();
        for (i, v) in [50.0, 60.0, 99.0, 99.0, 99.0, 50.0, 99.0]
            .iter()
            .enumerate()
        {
            let t = i as f64;
            for d in s.observe(&sample("web_aaaaaa", "cpu", *v, t), Timestamp(t), &STARTED) {
                reported.push(d.outcome);
            }
        }
        use Outcome::*;
        assert_eq!(
            reported,
            [NotBreached, Fired, Cooldown, NotBreached, Cooldown]
        );
    }

    #[test]
    fn dry_run_reports_a_fired_decision_that_does_not_act() {
        let mut s = set(heal_policy(true));
        let d = s.observe(
            &sample("web_aaaaaa", "cpu", 99.0, 0.0),
            Timestamp(0.0),
            &STARTED,
        );
        assert!(d[0].fired && !d[0].acting, "{:?}", d[0]);
        assert!(d[0].reason.contains("dry run"));
        assert!(s.actions(&d[0]).is_empty());
    }

    #[test]
    fn the_snapshot_shows_state_and_last_decisions() {
        let mut s = set(json!({"scale": {
            "type": "windlass.policies.types.sliding_window",
            "properties": {"service": "connections", "scale_threshold": 10},
            "targets": ["webs"],
        }}));
        let view = Fixed {
            started: true,
            size: Some(1),
        };
        s.observe(
            &sample("web_aaaaaa", "connections", 30.0, 0.0),
            Timestamp(0.0),
            &view,
        );
        let snap = s.snapshot(Timestamp(5.0));
        let p = &snap[0];
        assert_eq!(p["name"], json!("scale"));
        assert_eq!(p["state"]["sources"]["web_aaaaaa"]["last"], json!(30.0));
        assert_eq!(p["state"]["cooldown_left"], json!(25.0));
        assert_eq!(p["last_decisions"][0]["outcome"], json!("fired"));
    }

    #[test]
    fn a_policy_that_cannot_be_built_is_reported_and_the_others_run() {
        let mut compiled = compiled(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  web: { type: cloudify.nodes.Root }\n",
        );
        compiled.policies.insert(
            "riemann".into(),
            json!({"type": "my.scale", "source": "scale.clj", "properties": {}, "targets": []}),
        );
        compiled.policies.insert("ok".into(), json!({"type": "cloudify.policies.types.threshold", "properties": {"threshold": 1}, "targets": []}));
        let (set, errors) = PolicySet::from_compiled("d", &compiled, &Settings::default());
        assert_eq!(set.names().collect::<Vec<_>>(), ["ok"]);
        assert!(
            matches!(errors[..], [PolicyError::Clojure { .. }]),
            "{errors:?}"
        );
    }
}
