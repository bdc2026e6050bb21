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
