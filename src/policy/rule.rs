//! Autoscaling rules: scaling without editing a blueprint (`windlass rules`, `/api/v1/rules`).
//!
//! A [`Rule`] says "scale TARGET of DEPLOYMENT out by `step` while METRIC is above
//! `scale_out_above`, in by `step` while it is below `scale_in_below`, keeping it between `min`
//! and `max`". It is evaluated by the policy engine like a blueprint policy: [`Rule::add_to`]
//! turns it into `windlass.policies.types.sliding_window` policies of the deployment's
//! [`PolicySet`], so windows, cooldowns, limits, decisions and events are the engine's own:
//!
//! | policy | `scale_direction` | `scale_threshold` | `scale_limit` | trigger |
//! |---|---|---|---|---|
//! | `rule:NAME/out` | `<` | `scale_out_above` | `max` | `scale`, `delta: '{{ delta }}'` |
//! | `rule:NAME/in` (with `scale_in_below`) | `>` | `scale_in_below` | `min` | the same |
//!
//! Both read the metric named exactly `metric` (not a pattern) over `window` seconds, with
//! `cooldown_time: cooldown` and `scale_step: step`; the decision's `delta` is the step towards
//! the limit, never past it, so the target stays within `[min, max]` whatever the step. The
//! size checked is the target's instance count in the deployment (the scaling group's, when the
//! target is a node of one: scaling the node scales its group).
//!
//! What a rule needs to be valid is checked here, once, for the API and the CLI alike
//! ([`Rule::check`] for the rule alone, [`Rule::resolve`] against its deployment). Nothing here
//! reads the store: the caller passes the deployment's compiled blueprint and plan tree.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::config::{PolicyError, SLIDING_WINDOW, Settings};
use super::set::{PolicySet, group_nodes};
use super::trigger::{EXECUTE_WORKFLOW, TriggerSpec};
use crate::dsl::Compiled;
use crate::plan::tree::{Entity, Tree};

/// `cooldown` when a rule does not say (seconds): Cloudify's `interval_between_workflows`.
pub const DEFAULT_COOLDOWN: f64 = 300.0;
/// `step` when a rule does not say.
pub const DEFAULT_STEP: u64 = 1;

fn default_cooldown() -> f64 {
    DEFAULT_COOLDOWN
}

fn default_step() -> u64 {
    DEFAULT_STEP
}

/// An autoscaling rule as the API takes it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub deployment: String,
    /// A node or a scaling group of the deployment.
    pub target: String,
    /// The metric's name, matched exactly.
    pub metric: String,
    pub scale_out_above: f64,
    #[serde(default)]
    pub scale_in_below: Option<f64>,
    /// Seconds of samples each source's mean is taken over.
    pub window: f64,
    pub min: u64,
    pub max: u64,
    #[serde(default = "default_step")]
    pub step: u64,
    /// Seconds after a scale before the same direction scales again.
    #[serde(default = "default_cooldown")]
    pub cooldown: f64,
}

/// Why a rule is refused. Each names the field and what it should be.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("rule name {0:?}: a rule name is 1 to 64 letters, digits, `.`, `_` or `-`")]
    Name(String),
    #[error(
        "metric {0:?}: a metric name is 1 to 255 letters, digits, `.`, `_`, `-`, `:` or `/`, not starting or ending with `.`"
    )]
    Metric(String),
    #[error("deployment `{deployment}` has no node or scaling group `{target}`{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Target {
        deployment: String,
        target: String,
        hint: Option<String>,
    },
    #[error("`{field}` must be a finite number, found {value}")]
    NotFinite { field: &'static str, value: f64 },
    #[error("`{field}` must be greater than 0, found {value}")]
    NotPositive { field: &'static str, value: f64 },
    #[error("`min` ({min}) must not be greater than `max` ({max})")]
    Bounds { min: u64, max: u64 },
    #[error(
        "`scale_in_below` ({scale_in_below}) must be less than `scale_out_above` ({scale_out_above}), or the rule would scale out and in on the same value"
    )]
    Thresholds {
        scale_in_below: f64,
        scale_out_above: f64,
    },
}

/// What a rule's target is in its deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The node or scaling group whose instance count is the size checked against min and max:
    /// the target, or the scaling group of a node that is a member of one.
    pub scaled: String,
    /// The nodes whose instances' metrics feed the rule.
    pub members: HashSet<String>,
}

/// A rule name: what the API's paths and the policies' names can carry as they are.
fn valid_name(name: &str) -> bool {
    crate::store::is_plain_name(name, 64)
}

/// A metric name as the intakes produce them (Graphite paths, Diamond's names).
fn valid_metric(metric: &str) -> bool {
    (1..=255).contains(&metric.len())
        && !metric.starts_with('.')
        && !metric.ends_with('.')
        && metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'))
}

impl Rule {
    /// The names of the policies a rule becomes.
    pub fn policy_names(&self) -> Vec<String> {
        let mut names = vec![format!("rule:{}/out", self.name)];
        if self.scale_in_below.is_some() {
            names.push(format!("rule:{}/in", self.name));
        }
        names
    }

    /// Everything that can be checked without the deployment: name, metric, numbers.
    pub fn check(&self) -> Result<(), RuleError> {
        if !valid_name(&self.name) {
            return Err(RuleError::Name(self.name.clone()));
        }
        if !valid_metric(&self.metric) {
            return Err(RuleError::Metric(self.metric.clone()));
        }
        let finite = |field, value: f64| {
            if value.is_finite() {
                Ok(())
            } else {
                Err(RuleError::NotFinite { field, value })
            }
        };
        finite("scale_out_above", self.scale_out_above)?;
        if let Some(below) = self.scale_in_below {
            finite("scale_in_below", below)?;
        }
        for (field, value) in [
            ("window", self.window),
            ("cooldown", self.cooldown),
            ("step", self.step as f64),
        ] {
            finite(field, value)?;
            if value <= 0.0 {
                return Err(RuleError::NotPositive { field, value });
            }
        }
        if self.min > self.max {
            return Err(RuleError::Bounds {
                min: self.min,
                max: self.max,
            });
        }
        if let Some(below) = self.scale_in_below
            && below >= self.scale_out_above
        {
            return Err(RuleError::Thresholds {
                scale_in_below: below,
                scale_out_above: self.scale_out_above,
            });
        }
        Ok(())
    }

    /// The rule's target in its deployment (checked with [`Rule::check`] first).
    pub fn resolve(&self, compiled: &Compiled, tree: &Tree) -> Result<Resolved, RuleError> {
        self.check()?;
        let target = self.target.as_str();
        if let Some(&n) = compiled.node_index.get(target) {
            let scaled = match tree.parent(Entity::Node(n)) {
                Some(Entity::Group(g)) => tree.groups[g].name.clone(),
                _ => target.to_string(),
            };
            return Ok(Resolved {
                scaled,
                members: HashSet::from([target.to_string()]),
            });
        }
        if tree.groups.iter().any(|g| g.name == target) {
            let mut members = HashSet::new();
            group_nodes(compiled, target, &mut members, &mut HashSet::new());
            return Ok(Resolved {
                scaled: target.to_string(),
                members,
            });
        }
        let candidates = compiled
            .node_index
            .keys()
            .map(String::as_str)
            .chain(tree.groups.iter().map(|g| g.name.as_str()));
        Err(RuleError::Target {
            deployment: self.deployment.clone(),
            target: target.to_string(),
            hint: crate::diag::did_you_mean(target, candidates),
        })
    }

    /// The sliding-window policies the rule becomes, `(name, properties)`, each with the
    /// trigger [`Rule::trigger`].
    pub fn policies(&self) -> Vec<(String, Map<String, Json>)> {
        let names = self.policy_names();
        let mut directions = vec![("<", self.scale_out_above, self.max)];
        if let Some(below) = self.scale_in_below {
            directions.push((">", below, self.min));
        }
        names
            .into_iter()
            .zip(directions)
            .map(|(name, (direction, threshold, limit))| {
                let properties: Map<String, Json> = [
                    ("service", json!(regex::escape(&self.metric))),
                    ("moving_window_size", json!(self.window)),
                    ("scale_threshold", json!(threshold)),
                    ("scale_limit", json!(limit)),
                    ("scale_direction", json!(direction)),
                    ("scale_step", json!(self.step)),
                    ("cooldown_time", json!(self.cooldown)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                (name, properties)
            })
            .collect()
    }

    /// The trigger of each of the rule's policies: `scale` of the target by the decision's
    /// `delta` (the step, cut at the limit).
    pub fn trigger(&self, policy: &str) -> Result<TriggerSpec, PolicyError> {
        TriggerSpec::parse(
            policy,
            "scale",
            EXECUTE_WORKFLOW,
            &json!({
                "workflow": "scale",
                "workflow_parameters": {
                    "scalable_entity_name": self.target,
                    "delta": "{{ delta }}",
                },
            }),
        )
    }

    /// Adds the rule's policies to its deployment's set; `members` from [`Rule::resolve`].
    /// Either all of them are added or none.
    pub fn add_to(
        &self,
        set: &mut PolicySet,
        resolved: &Resolved,
        settings: &Settings,
    ) -> Result<(), PolicyError> {
        let mut added: Vec<String> = Vec::new();
        for (name, properties) in self.policies() {
            let result = self.trigger(&name).and_then(|trigger| {
                set.add(
                    &name,
                    SLIDING_WINDOW,
                    None,
                    &properties,
                    Some(resolved.members.clone()),
                    vec![trigger],
                    settings,
                )
            });
            if let Err(e) = result {
                for name in &added {
                    set.remove(name);
                }
                return Err(e);
            }
            added.push(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{Fixed, sample};
    use super::super::{Outcome, Timestamp, View};
    use super::*;

    fn rule() -> Rule {
        Rule {
            name: "web-cpu".into(),
            deployment: "d".into(),
            target: "web".into(),
            metric: "cpu.total".into(),
            scale_out_above: 80.0,
            scale_in_below: Some(20.0),
            window: 10.0,
            min: 1,
            max: 3,
            step: 1,
            cooldown: 60.0,
        }
    }

    fn deployment() -> (Compiled, Tree) {
        let bp = crate::blueprint::open_str(
            std::path::Path::new("bp.yaml"),
            "tosca_definitions_version: cloudify_dsl_1_3\n\
             imports: [cloudify/types/types.yaml]\n\
             node_templates:\n  web: { type: cloudify.nodes.Root }\n  app: { type: cloudify.nodes.Root }\n  db: { type: cloudify.nodes.Root }\n\
             groups:\n  pair: { members: [app, db] }\n\
             policies:\n  pair_scaling: { type: cloudify.policies.scaling, targets: [pair] }\n",
            &Default::default(),
        )
        .unwrap();
        (bp.compiled, bp.plan.tree)
    }

    fn size(n: u64) -> Fixed {
        Fixed {
            started: true,
            size: Some(n),
        }
    }

    fn set_of(rule: &Rule) -> PolicySet {
        let (compiled, tree) = deployment();
        let resolved = rule.resolve(&compiled, &tree).unwrap();
        let mut set = PolicySet::new("d", Map::new());
        rule.add_to(&mut set, &resolved, &Settings::default())
            .unwrap();
        set
    }

    #[test]
    fn a_rule_becomes_an_out_and_an_in_sliding_window_policy() {
        let r = rule();
        let policies = r.policies();
        assert_eq!(policies.len(), 2);
        let (out, out_props) = &policies[0];
        assert_eq!(out, "rule:web-cpu/out");
        assert_eq!(out_props["scale_direction"], json!("<"));
        assert_eq!(out_props["scale_threshold"], json!(80.0));
        assert_eq!(out_props["scale_limit"], json!(3));
        assert_eq!(out_props["service"], json!("cpu\\.total"));
        let (inn, in_props) = &policies[1];
        assert_eq!(inn, "rule:web-cpu/in");
        assert_eq!(in_props["scale_direction"], json!(">"));
        assert_eq!(in_props["scale_threshold"], json!(20.0));
        assert_eq!(in_props["scale_limit"], json!(1));
        let without_in = Rule {
            scale_in_below: None,
            ..rule()
        };
        assert_eq!(without_in.policy_names(), ["rule:web-cpu/out"]);
        assert_eq!(set_of(&without_in).names().count(), 1);
    }

    /// Drives the set the rule becomes: above → scale out by the step (cut at max), at max →
    /// held back; below → scale in (cut at min), at min → held back.
    #[test]
    fn decisions_scale_by_the_step_within_min_and_max() {
        let r = Rule {
            step: 2,
            cooldown: 1.0,
            max: 4,
            ..rule()
        };
        let mut set = set_of(&r);
        let feed = |set: &mut PolicySet, value: f64, at: f64, view: &dyn View| {
            set.observe(
                &sample("web_aaaaaa", "cpu.total", value, at),
                Timestamp(at),
                view,
            )
        };
        let d = feed(&mut set, 95.0, 0.0, &size(3));
        let out: Vec<_> = d.iter().filter(|d| d.policy.ends_with("/out")).collect();
        assert_eq!(out[0].outcome, Outcome::Fired);
        let action = set.actions(out[0]).pop().unwrap().unwrap();
        assert_eq!(action.workflow, "scale");
        assert_eq!(action.parameters["scalable_entity_name"], json!("web"));
        // 3 of at most 4: a step of 2 is cut to 1.
        assert_eq!(action.parameters["delta"], json!(1));

        let d = feed(&mut set, 95.0, 100.0, &size(4));
        let out = d.iter().find(|d| d.policy.ends_with("/out")).unwrap();
        assert_eq!(out.outcome, Outcome::Limit, "{}", out.reason);
        assert!(out.reason.contains("scale_limit 4"), "{}", out.reason);

        // 100 s later the window holds only the new sample.
        let d = feed(&mut set, 5.0, 200.0, &size(4));
        let inn = d.iter().find(|d| d.policy.ends_with("/in")).unwrap();
        assert_eq!(inn.outcome, Outcome::Fired, "{}", inn.reason);
        let action = set.actions(inn).pop().unwrap().unwrap();
        assert_eq!(action.parameters["delta"], json!(-2));
        let d = feed(&mut set, 5.0, 300.0, &size(1));
        let inn = d.iter().find(|d| d.policy.ends_with("/in")).unwrap();
        assert_eq!(inn.outcome, Outcome::Limit, "{}", inn.reason);
        // Another metric, or another node's instances, never reach the rule.
        assert!(
            set.observe(
                &sample("web_aaaaaa", "cpuXtotal", 99.0, 400.0),
                Timestamp(400.0),
                &size(1)
            )
            .is_empty()
        );
        assert!(
            set.observe(
                &sample("db_aaaaaa", "cpu.total", 99.0, 400.0),
                Timestamp(400.0),
                &size(1)
            )
            .is_empty()
        );
    }

    #[test]
    fn targets_resolve_to_what_scales_and_what_feeds() {
        let (compiled, tree) = deployment();
        let r = rule().resolve(&compiled, &tree).unwrap();
        assert_eq!(r.scaled, "web");
        assert_eq!(r.members, HashSet::from(["web".to_string()]));
        let member = Rule {
            target: "app".into(),
            ..rule()
        };
        let r = member.resolve(&compiled, &tree).unwrap();
        assert_eq!(r.scaled, "pair", "a member's group is what scales");
        let group = Rule {
            target: "pair".into(),
            ..rule()
        };
        let r = group.resolve(&compiled, &tree).unwrap();
        assert_eq!(
            r.members,
            HashSet::from(["app".to_string(), "db".to_string()])
        );
        let typo = Rule {
            target: "wbe".into(),
            ..rule()
        };
        let e = typo.resolve(&compiled, &tree).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deployment `d` has no node or scaling group `wbe`; did you mean `web`?"
        );
    }

    #[test]
    fn invalid_rules_say_what_is_wrong() {
        let err = |r: Rule| r.check().unwrap_err().to_string();
        let e = err(Rule {
            name: "a b".into(),
            ..rule()
        });
        assert!(e.contains("rule name"), "{e}");
        let e = err(Rule {
            metric: "".into(),
            ..rule()
        });
        assert!(e.contains("metric \"\""), "{e}");
        let e = err(Rule {
            metric: "cpu total".into(),
            ..rule()
        });
        assert!(e.contains("metric"), "{e}");
        assert_eq!(
            err(Rule {
                min: 5,
                max: 2,
                ..rule()
            }),
            "`min` (5) must not be greater than `max` (2)"
        );
        let e = err(Rule {
            scale_in_below: Some(80.0),
            ..rule()
        });
        assert!(
            e.starts_with("`scale_in_below` (80) must be less than"),
            "{e}"
        );
        for (r, field) in [
            (
                Rule {
                    window: 0.0,
                    ..rule()
                },
                "window",
            ),
            (
                Rule {
                    cooldown: -1.0,
                    ..rule()
                },
                "cooldown",
            ),
            (Rule { step: 0, ..rule() }, "step"),
        ] {
            let e = err(r);
            assert!(
                e.starts_with(&format!("`{field}` must be greater than 0")),
                "{e}"
            );
        }
        let e = err(Rule {
            scale_out_above: f64::INFINITY,
            ..rule()
        });
        assert!(e.contains("finite"), "{e}");
        rule().check().unwrap();
    }

    #[test]
    fn a_rule_reads_as_json_with_defaults_and_nothing_unknown() {
        let r: Rule = serde_json::from_value(json!({
            "name": "r", "deployment": "d", "target": "web", "metric": "cpu",
            "scale_out_above": 80, "window": 30, "min": 1, "max": 5
        }))
        .unwrap();
        assert_eq!((r.step, r.cooldown, r.scale_in_below), (1, 300.0, None));
        let e = serde_json::from_value::<Rule>(json!({
            "name": "r", "deployment": "d", "target": "web", "metric": "cpu",
            "scale_out_above": 80, "window": 30, "min": 1, "max": 5, "stpe": 2
        }))
        .unwrap_err();
        assert!(e.to_string().contains("stpe"), "{e}");
    }
}
