//! Issue #12, items 2 and 6 through the binary: the built-in `start`, `stop`, `restart` and
//! `reinstall` workflows on a deployment whose scripts append to a ledger (order, filters,
//! states, resume), `update` refused; and data-based input and workflow-parameter types
//! checked against a real store.

mod common;

use common::Sandbox;

/// A script that appends `INSTANCE OPERATION` to `ops.log` and fails `app`'s start while the
/// file `BROKEN` exists in the sandbox.
fn ledger(sb: &Sandbox) {
    let dir = sb.dir.display();
    sb.file(
        "scripts/op.sh",
        &format!(
            "#!/bin/bash\nid=$(ctx instance id); op=$(ctx operation name)\necho \"$id $op\" >> '{dir}/ops.log'\nif [ -f '{dir}/BROKEN' ] && [[ $id == app_* ]] && [[ $op == *lifecycle.start ]]; then exit 1; fi\n"
        ),
    );
}

/// host ← app (contained in host, connected to db); db; app's type derives from `base`.
const BLUEPRINT: &str = r#"tosca_definitions_version: cloudify_dsl_1_5
imports: [cloudify/types/types.yaml]
node_types:
  base:
    derived_from: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle:
        create: scripts/op.sh
        start: scripts/op.sh
        stop: scripts/op.sh
        delete: scripts/op.sh
      cloudify.interfaces.monitoring:
        start: scripts/op.sh
        stop: scripts/op.sh
  web:
    derived_from: base
node_templates:
  host:
    type: base
    capabilities: { scalable: { properties: { default_instances: 2 } } }
  db:
    type: base
  app:
    type: web
    relationships:
      - type: cloudify.relationships.contained_in
        target: host
      - type: cloudify.relationships.connected_to
        target: db
        source_interfaces:
          cloudify.interfaces.relationship_lifecycle:
            establish: scripts/op.sh
            unlink: scripts/op.sh
"#;

fn deployed(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    ledger(&sb);
    sb.file("blueprint.yaml", BLUEPRINT);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    sb.clear_log();
    sb
}

/// Instance ids of a node.
fn ids(sb: &Sandbox, node: &str) -> Vec<String> {
    sb.instances("d")
        .iter()
        .filter(|i| i["node_id"] == node)
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Position of the line `INSTANCE …OP` in the ledger.
fn at(log: &[String], who: &str, op: &str) -> usize {
    log.iter()
        .position(|l| l.starts_with(who) && l.ends_with(op))
        .unwrap_or_else(|| panic!("no {who} {op} in {log:#?}"))
}

fn states(sb: &Sandbox) -> Vec<String> {
    sb.instances("d")
        .iter()
        .map(|i| i["state"].as_str().unwrap().to_string())
        .collect()
}

fn executions(sb: &Sandbox) -> usize {
    sb.json(&["executions", "d", "--json"])
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn stop_and_start_run_their_operation_in_dependency_order_and_keep_states() {
    let sb = deployed("wf12-stopstart");
    let (hosts, db, apps) = (ids(&sb, "host"), ids(&sb, "db"), ids(&sb, "app"));
    sb.ok(&["run", "d", "stop"]);
    let log = sb.log();
    assert_eq!(log.len(), 5, "one stop per instance: {log:#?}");
    assert!(
        log.iter().all(|l| l.ends_with("lifecycle.stop")),
        "{log:#?}"
    );
    // As Cloudify orders them: an instance after the instances it has relationships to.
    for app in &apps {
        assert!(at(&log, &db[0], "stop") < at(&log, app, "stop"), "{log:#?}");
    }
    assert!(
        hosts
            .iter()
            .all(|h| log.iter().any(|l| l.starts_with(h.as_str())))
    );
    // Cloudify's stop changes no state.
    assert!(
        states(&sb).iter().all(|s| s == "started"),
        "{:?}",
        states(&sb)
    );

    sb.clear_log();
    sb.ok(&["run", "d", "start", "-p", r#"{"node_ids": ["app"]}"#]);
    let log = sb.log();
    assert_eq!(log.len(), apps.len(), "{log:#?}");
    assert!(
        log.iter()
            .all(|l| l.starts_with("app_") && l.ends_with("lifecycle.start"))
    );

    sb.clear_log();
    let one = &hosts[1];
    sb.ok(&[
        "run",
        "d",
        "stop",
        "-p",
        &format!(r#"{{"node_instance_ids": ["{one}"]}}"#),
    ]);
    assert_eq!(
        sb.log(),
        vec![format!("{one} cloudify.interfaces.lifecycle.stop")]
    );

    // `web` is app's type; `base` is everyone's.
    sb.clear_log();
    sb.ok(&["run", "d", "start", "-p", r#"{"type_names": ["web"]}"#]);
    assert!(
        sb.log().iter().all(|l| l.starts_with("app_")),
        "{:#?}",
        sb.log()
    );
    assert_eq!(sb.log().len(), apps.len());
    sb.clear_log();
    sb.ok(&["run", "d", "start", "-p", r#"{"type_names": ["base"]}"#]);
    assert_eq!(sb.log().len(), 5);
}

#[test]
fn restart_stops_everything_before_starting_anything() {
    let sb = deployed("wf12-restart");
    sb.ok(&["run", "d", "restart"]);
    let log = sb.log();
    assert_eq!(log.len(), 10, "{log:#?}");
    let last_stop = log.iter().rposition(|l| l.ends_with("stop")).unwrap();
    let first_start = log.iter().position(|l| l.ends_with("start")).unwrap();
    assert!(last_stop < first_start, "{log:#?}");
    assert!(states(&sb).iter().all(|s| s == "started"));
}

#[test]
fn a_failed_restart_resumes_without_stopping_twice() {
    let sb = deployed("wf12-resume");
    std::fs::write(sb.dir.join("BROKEN"), "").unwrap();
    let err = sb.err(&["run", "d", "restart"]);
    assert!(err.contains("restart"), "{err}");
    let stops = |log: &[String]| log.iter().filter(|l| l.ends_with("stop")).count();
    assert_eq!(stops(&sb.log()), 5);
    std::fs::remove_file(sb.dir.join("BROKEN")).unwrap();
    sb.clear_log();
    sb.ok(&["resume", "d"]);
    let log = sb.log();
    assert_eq!(stops(&log), 0, "stops were done: {log:#?}");
    // The apps' starts failed and run now; what started before is not started again.
    assert!(
        log.iter()
            .all(|l| l.starts_with("app_") && l.ends_with("lifecycle.start")),
        "{log:#?}"
    );
    assert_eq!(log.len(), 2, "{log:#?}");
}

#[test]
fn reinstall_redoes_the_chosen_instances_and_relinks_their_sources() {
    let sb = deployed("wf12-reinstall");
    let (db, apps) = (ids(&sb, "db"), ids(&sb, "app"));
    sb.ok(&["run", "d", "reinstall", "-p", r#"{"node_ids": ["db"]}"#]);
    let log = sb.log();
    let db = db[0].as_str();
    // Cloudify's uninstall and install sequences, monitoring included, on db only.
    let order = [
        "monitoring.stop",
        "lifecycle.stop",
        "lifecycle.delete",
        "lifecycle.create",
        "lifecycle.start",
        "monitoring.start",
    ];
    let mine: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with(db))
        .map(|l| l.split_once(".interfaces.").unwrap().1)
        .collect();
    assert_eq!(mine, order, "{log:#?}");
    for app in &apps {
        assert!(at(&log, app, "unlink") < at(&log, db, "delete"), "{log:#?}");
        assert!(
            at(&log, db, "lifecycle.start") < at(&log, app, "establish"),
            "{log:#?}"
        );
    }
    assert!(!log.iter().any(|l| l.starts_with("host_")), "{log:#?}");
    assert!(states(&sb).iter().all(|s| s == "started"));
}

#[test]
fn filters_that_name_nothing_and_update_are_refused_before_anything_runs() {
    let sb = deployed("wf12-refused");
    let before = executions(&sb);
    let err = sb.err(&["run", "d", "stop", "-p", r#"{"node_ids": ["ap"]}"#]);
    assert!(
        err.contains("node_ids") && err.contains("`ap`") && err.contains("did you mean `app`"),
        "{err}"
    );
    let err = sb.err(&[
        "run",
        "d",
        "restart",
        "-p",
        r#"{"node_instance_ids": ["db_zzzzzz"]}"#,
    ]);
    assert!(
        err.contains("node_instance_ids") && err.contains("db_zzzzzz"),
        "{err}"
    );
    let err = sb.err(&["run", "d", "reinstall", "-p", r#"{"type_names": ["webb"]}"#]);
    assert!(
        err.contains("type_names") && err.contains("did you mean `web`"),
        "{err}"
    );
    let err = sb.err(&["run", "d", "update"]);
    assert!(err.contains("undeploy") && err.contains("scale"), "{err}");
    assert_eq!(executions(&sb), before, "nothing was recorded");
    assert!(sb.log().is_empty());
}

/// types.yaml types the filters of `start`/`stop`/`reinstall` with `item_type: node_id` and co
/// (DSL 1_4); a 1_3 blueprint gets them untyped, as Cloudify's types_1_3.yaml declares them, so
/// it validates, plans, deploys and runs them with `node_ids`, which are still checked against
/// the deployment. Its own data-based input stays refused (tests/corpus/invalid/i60).
#[test]
fn a_dsl_1_3_blueprint_runs_the_filtered_lifecycle_workflows() {
    let sb = Sandbox::new("wf12-dsl13");
    ledger(&sb);
    let blueprint = BLUEPRINT.replace("cloudify_dsl_1_5", "cloudify_dsl_1_3");
    assert!(blueprint.starts_with("tosca_definitions_version: cloudify_dsl_1_3\n"));
    sb.file("blueprint.yaml", &blueprint);
    sb.ok(&["validate", "blueprint.yaml"]);
    let plan = sb.json(&["plan", "blueprint.yaml", "--format", "json"]);
    assert_eq!(plan["node_instances"].as_array().unwrap().len(), 5);
    assert!(plan["workflows"]["reinstall"].is_object(), "{plan:#}");
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    sb.clear_log();
    let db = ids(&sb, "db").remove(0);
    let ops = |sb: &Sandbox| -> Vec<String> {
        sb.log()
            .iter()
            .map(|l| l.split_once(".interfaces.").unwrap().1.to_string())
            .collect()
    };
    sb.ok(&["run", "d", "stop", "-p", r#"{"node_ids": ["db"]}"#]);
    assert_eq!(ops(&sb), ["lifecycle.stop"]);
    assert!(
        sb.log().iter().all(|l| l.starts_with(&db)),
        "{:#?}",
        sb.log()
    );
    sb.clear_log();
    sb.ok(&["run", "d", "start", "-p", r#"{"node_ids": ["db"]}"#]);
    assert_eq!(ops(&sb), ["lifecycle.start"]);
    sb.clear_log();
    sb.ok(&["run", "d", "reinstall", "-p", r#"{"node_ids": ["db"]}"#]);
    let log = sb.log();
    assert!(at(&log, &db, "lifecycle.delete") < at(&log, &db, "lifecycle.create"));
    assert!(states(&sb).iter().all(|s| s == "started"));
    let err = sb.err(&["run", "d", "stop", "-p", r#"{"node_ids": ["dbb"]}"#]);
    assert!(err.contains("node_ids") && err.contains("`dbb`"), "{err}");
}

// ----- data-based types against a real store ------------------------------------------------

/// The deployment `staging` that the other blueprints' names point into: two `web` instances in
/// the scaling group `tier`, a `db`, a capability, a label, and a workflow with data-based
/// parameters.
const TARGET: &str = r#"tosca_definitions_version: cloudify_dsl_1_5
imports: [cloudify/types/types.yaml]
labels:
  tier: { values: [backend] }
node_templates:
  web:
    type: cloudify.nodes.Root
    capabilities: { scalable: { properties: { default_instances: 2 } } }
    interfaces:
      cloudify.interfaces.lifecycle:
        start: scripts/ok.sh
  db:
    type: cloudify.nodes.Root
groups:
  tier: { members: [web] }
policies:
  tier_scaling: { type: cloudify.policies.scaling, targets: [tier] }
capabilities:
  endpoint: { value: "http://web:80" }
workflows:
  probe:
    mapping: default_workflows.cloudify.plugins.workflows.execute_operation
    parameters:
      operation: { type: operation_name, default: cloudify.interfaces.lifecycle.start }
      node_ids: { type: list, item_type: node_id, default: [] }
      node_instance_ids: { type: list, item_type: node_instance, default: [] }
      type_names: { type: list, item_type: node_type, default: [] }
      group: { type: scaling_group, required: false }
      other: { type: deployment_id, required: false }
      key: { type: secret_key, required: false }
"#;

/// Inputs naming things of `staging` (or of itself, for `here`).
const CONSUMER: &str = r#"tosca_definitions_version: cloudify_dsl_1_5
imports: [cloudify/types/types.yaml]
inputs:
  env:
    type: deployment_id
    constraints:
      - name_pattern: { starts_with: stag }
      - labels: [{ tier: backend }]
  nodes:
    type: list
    item_type: node_id
    default: []
    constraints: [{ deployment_id: staging }]
  inst:
    type: node_instance
    required: false
    constraints: [{ deployment_id: staging }]
  token:
    type: secret_key
    required: false
  source:
    type: blueprint_id
    required: false
    constraints: [{ name_pattern: { equals_to: hello } }]
  cap:
    type: capability_value
    required: false
    constraints: [{ deployment_id: staging }, { name_pattern: { contains: endpoint } }]
  here:
    type: node_id
    required: false
node_templates:
  n:
    type: cloudify.nodes.Root
"#;

fn store_with_target(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.file("scripts/ok.sh", "#!/bin/bash\ntrue\n");
    sb.file("target.yaml", TARGET);
    sb.file("consumer.yaml", CONSUMER);
    sb.file(
        "plain.yaml",
        "tosca_definitions_version: cloudify_dsl_1_5\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  n: { type: cloudify.nodes.Root }\n",
    );
    sb.ok(&["deploy", "target.yaml", "-d", "staging"]);
    sb.ok(&["deploy", "plain.yaml", "-d", "stage_plain"]);
    sb
}

/// Deploy the consumer with these inputs; it must be refused with every `expected` fragment in
/// its message, and leave no deployment behind.
fn refused_inputs(sb: &Sandbox, inputs: &str, expected: &[&str]) {
    let before = sb.deployment_ids();
    let err = sb.err(&["deploy", "consumer.yaml", "-d", "c", "-i", inputs]);
    for e in expected {
        assert!(err.contains(e), "{inputs}: `{e}` not in {err}");
    }
    assert_eq!(sb.deployment_ids(), before, "{inputs}: nothing stored");
}

#[test]
fn deployment_inputs_of_data_based_types_are_checked_against_the_store() {
    let sb = store_with_target("wf12-inputs");
    let web = sb
        .instances("staging")
        .iter()
        .find(|i| i["node_id"] == "web")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // deployment_id: exists, matches name_pattern, has the labels.
    refused_inputs(
        &sb,
        "env=stagign",
        &[
            "input `env`",
            "no deployment `stagign`",
            "did you mean `staging`",
        ],
    );
    refused_inputs(
        &sb,
        "env=stage_plain",
        &[
            "input `env`",
            "`stage_plain` does not have the label tier: backend",
        ],
    );
    sb.ok(&["deploy", "plain.yaml", "-d", "prod"]);
    refused_inputs(
        &sb,
        "env=prod",
        &["input `env`", "name_pattern", "starts_with \"stag\""],
    );
    // node_id list and node_instance in the deployment the constraint names.
    refused_inputs(
        &sb,
        r#"{"env": "staging", "nodes": ["web", "wbe"]}"#,
        &[
            "input `nodes`",
            "deployment `staging` has no node `wbe`",
            "did you mean `web`",
        ],
    );
    refused_inputs(
        &sb,
        "env=staging;inst=web_zzzzzz",
        &["input `inst`", "no node instance `web_zzzzzz`"],
    );
    // A node_id without deployment_id names a node of the blueprint being deployed.
    refused_inputs(
        &sb,
        "env=staging;here=web",
        &["input `here`", "this blueprint has no node `web`"],
    );
    // secret_key: there is no secret in this store.
    refused_inputs(
        &sb,
        "env=staging;token=db_password",
        &["input `token`", "no secret `db_password`"],
    );
    // blueprint_id: any name, within its name_pattern.
    refused_inputs(
        &sb,
        "env=staging;source=other",
        &["input `source`", "blueprint `other`"],
    );
    // capability_value: the value of a capability whose key matches.
    refused_inputs(
        &sb,
        "env=staging;cap=http://db:80",
        &["input `cap`", "capability value `http://db:80`"],
    );
    // Several problems are all reported.
    refused_inputs(&sb, "env=stagign;inst=x_1", &["`stagign`", "`x_1`"]);

    let good = format!(
        r#"{{"env": "staging", "nodes": ["web", "db"], "inst": "{web}", "source": "hello", "cap": "http://web:80", "here": "n"}}"#
    );
    sb.ok(&["deploy", "consumer.yaml", "-d", "c", "-i", &good]);

    // With the secret stored (the `secrets` table as the secrets store keeps it), it is accepted.
    let db = sb.dir.join("state.db");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL); INSERT INTO secrets VALUES ('db_password', x'00', x'00', 'now', 'now');")
        .status()
        .expect("sqlite3");
    assert!(made.success());
    sb.ok(&[
        "deploy",
        "consumer.yaml",
        "-d",
        "c2",
        "-i",
        "env=staging;token=db_password",
    ]);
}

#[test]
fn workflow_parameters_of_data_based_types_name_things_of_the_deployment() {
    let sb = store_with_target("wf12-params");
    let instances = sb.instances("staging");
    let web = instances.iter().find(|i| i["node_id"] == "web").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = executions_of(&sb, "staging");
    let refused = |params: &str, expected: &[&str]| {
        let err = sb.err(&["run", "staging", "probe", "-p", params]);
        for e in expected {
            assert!(err.contains(e), "{params}: `{e}` not in {err}");
        }
    };
    refused(
        r#"{"node_ids": ["wbe"]}"#,
        &[
            "parameter `node_ids`",
            "deployment `staging` has no node `wbe`",
            "did you mean `web`",
        ],
    );
    refused(
        r#"{"node_instance_ids": ["web_zzzzzz"]}"#,
        &[
            "parameter `node_instance_ids`",
            "no node instance `web_zzzzzz`",
        ],
    );
    refused(
        r#"{"type_names": ["cloudify.nodes.Compute"]}"#,
        &[
            "parameter `type_names`",
            "no node type `cloudify.nodes.Compute`",
        ],
    );
    refused(
        r#"{"group": "db"}"#,
        &["parameter `group`", "no scaling group `db`", "tier"],
    );
    refused(
        "operation=cloudify.interfaces.lifecycle.strat",
        &[
            "parameter `operation`",
            "did you mean `cloudify.interfaces.lifecycle.start`",
        ],
    );
    refused(
        "other=nowhere",
        &["parameter `other`", "no deployment `nowhere`"],
    );
    refused("key=k", &["parameter `key`", "no secret `k`"]);
    assert_eq!(executions_of(&sb, "staging"), before, "nothing recorded");

    let good = format!(
        r#"{{"node_ids": ["web"], "node_instance_ids": ["{web}"], "type_names": ["cloudify.nodes.Root"], "group": "tier", "other": "stage_plain"}}"#
    );
    sb.ok(&["run", "staging", "probe", "-p", &good]);
    sb.ok(&[
        "run",
        "staging",
        "probe",
        "-p",
        "operation=cloudify.interfaces.lifecycle.start",
    ]);
    assert_eq!(executions_of(&sb, "staging"), before + 2);
}

fn executions_of(sb: &Sandbox, id: &str) -> usize {
    sb.json(&["executions", id, "--json"])
        .as_array()
        .unwrap()
        .len()
}
