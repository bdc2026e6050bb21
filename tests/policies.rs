//! From blueprint to decisions: a blueprint's group policies compile, build into a
//! `PolicySet`, and turn samples and clock readings into the decisions and workflow actions
//! Cloudify's would (auto-heal of the silent instance, a scale when the aggregate crosses).
//! The clock is driven by hand; nothing sleeps.

use std::path::Path;

use serde_json::json;
use windlass::blueprint::{self, Error};
use windlass::policy::{Outcome, PolicySet, Sample, Settings, Timestamp, View};

struct Deployment {
    replicas: u64,
}

impl View for Deployment {
    fn target_size(&self, _policy: &str) -> Option<u64> {
        Some(self.replicas)
    }
    fn is_started(&self, _instance: &str) -> bool {
        true
    }
}

fn sample(instance: &str, name: &str, value: f64, at: f64) -> Sample {
    Sample {
        deployment: "d1".into(),
        node_instance: instance.into(),
        name: name.into(),
        value,
        at: Timestamp(at),
    }
}

fn policy_set() -> PolicySet {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid/v26_group_policies.yaml");
    let bp = blueprint::open(&path, &Default::default()).unwrap();
    let (set, errors) = PolicySet::from_compiled("d1", &bp.compiled, &Settings::default());
    assert!(errors.is_empty(), "{errors:?}");
    set
}

#[test]
fn group_policies_compile_into_a_policy_set() {
    let set = policy_set();
    assert_eq!(
        set.names().collect::<Vec<_>>(),
        ["vms/autoheal", "services/scale_up", "services/busy"]
    );
}

#[test]
fn a_silent_instance_is_healed_by_name() {
    let mut set = policy_set();
    let view = Deployment { replicas: 1 };
    set.observe(
        &sample("vm_aaaaaa", "vm.cpu.total.system", 3.0, 0.0),
        Timestamp(0.0),
        &view,
    );
    set.observe(
        &sample("vm_bbbbbb", "vm.cpu.total.system", 3.0, 0.0),
        Timestamp(0.0),
        &view,
    );
    set.observe(
        &sample("vm_bbbbbb", "vm.cpu.total.system", 3.0, 30.0),
        Timestamp(30.0),
        &view,
    );
    assert!(set.tick(Timestamp(59.0), &view).is_empty());
    let decisions = set.tick(Timestamp(60.0), &view);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let d = &decisions[0];
    assert_eq!(
        (d.outcome, d.instance.as_deref()),
        (Outcome::Fired, Some("vm_aaaaaa"))
    );
    let actions = set.actions(d);
    let action = actions[0].as_ref().unwrap();
    assert_eq!(action.workflow, "heal");
    assert_eq!(
        json!(action.parameters),
        json!({"node_instance_id": "vm_aaaaaa", "diagnose_value": "heart-beat-failure"})
    );
}

#[test]
fn the_seed_scaler_fires_once_then_says_why_it_holds_back() {
    let mut set = policy_set();
    let mut view = Deployment { replicas: 1 };
    let mut outcomes = Vec::new();
    let mut actions = Vec::new();
    for (t, v) in [
        (0.0, 2.0),
        (1.0, 9.0),
        (2.0, 12.0),
        (3.0, 12.0),
        (4.0, 12.0),
    ] {
        for d in set.observe(
            &sample("ms_cccccc", "connections", v, t),
            Timestamp(t),
            &view,
        ) {
            outcomes.push(d.outcome);
            actions.extend(set.actions(&d));
        }
        view.replicas = 2;
    }
    assert_eq!(
        outcomes,
        [Outcome::NotBreached, Outcome::Fired, Outcome::Cooldown]
    );
    let a = actions[0].as_ref().unwrap();
    assert_eq!(
        (a.workflow.as_str(), &a.parameters["amount"]),
        ("kube_scale", &json!("+1"))
    );
    // The limit comes from an input (4): at 4 replicas, after the cooldown, it holds back.
    view.replicas = 4;
    let d = set.observe(
        &sample("ms_cccccc", "connections", 50.0, 70.0),
        Timestamp(70.0),
        &view,
    );
    assert_eq!(d[0].outcome, Outcome::Limit, "{}", d[0].reason);
}

#[test]
fn unknown_types_and_properties_suggest_the_right_name() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/invalid/i38_policy_types_and_properties.yaml");
    let Err(Error::Invalid(report)) = blueprint::open(&path, &Default::default()) else {
        panic!("i38 should be invalid");
    };
    let help: Vec<Option<&str>> = report
        .diagnostics
        .iter()
        .map(|d| d.help.as_deref())
        .collect();
    assert!(
        help.contains(&Some(
            "did you mean `cloudify.policies.types.host_failure`?"
        )),
        "{help:?}"
    );
    assert!(
        help.contains(&Some("did you mean `tolerance`?")),
        "{help:?}"
    );
    assert!(
        help.contains(&Some("did you mean `workflow_parameters`?")),
        "{help:?}"
    );
    assert!(
        help.contains(&Some(
            "did you mean `cloudify.policies.triggers.execute_workflow`?"
        )),
        "{help:?}"
    );
}

#[test]
fn the_seed_riemann_policy_type_validates_but_is_refused_with_the_port() {
    let text = "tosca_definitions_version: cloudify_dsl_1_3
node_types: { ms: {} }
node_templates: { nodecellar: { type: ms } }
policy_types:
  scale_policy_type:
    source: scale.clj
    properties:
      service: { default: '.*' }
      scale_threshold: {}
groups:
  scale_group:
    members: [nodecellar]
    policies:
      up: { type: scale_policy_type, properties: { scale_threshold: 3 } }
";
    let bp = blueprint::open_str(Path::new("seed.yaml"), text, &Default::default()).unwrap();
    let (set, errors) = PolicySet::from_compiled("d1", &bp.compiled, &Settings::default());
    assert!(set.is_empty());
    let message = errors[0].to_string();
    assert!(message.contains("scale.clj"), "{message}");
    assert!(
        message.contains("windlass.policies.types.sliding_window"),
        "{message}"
    );
}
