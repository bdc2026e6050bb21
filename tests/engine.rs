//! The engine end to end, through the real binary: real scripts, real `ctx` calls, a real
//! SQLite state file, real SIGKILL.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

mod common;

use common::{Sandbox, stderr};

/// Appends "<instance> <operation>" to ops.log, through ctx.
const RECORD: &str =
    "#!/bin/bash\nset -e\necho \"$(ctx instance id) $(ctx operation name)\" >> \"$LOG\"\n";

fn ordering_blueprint(sb: &Sandbox) {
    sb.file("scripts/record.sh", RECORD);
    sb.file(
        "blueprint.yaml",
        &format!(
            r#"
tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
dsl_definitions:
  ops: &ops
    cloudify.interfaces.lifecycle:
      create: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
      configure: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
      start: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
      stop: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
      delete: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
node_templates:
  host:
    type: cloudify.nodes.Compute
    instances: {{ deploy: 2 }}
    interfaces: *ops
  db:
    type: cloudify.nodes.Root
    interfaces: *ops
  app:
    type: cloudify.nodes.Root
    interfaces: *ops
    relationships:
      - type: cloudify.relationships.contained_in
        target: host
      - type: cloudify.relationships.connected_to
        target: db
        source_interfaces:
          cloudify.interfaces.relationship_lifecycle:
            preconfigure: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
            unlink: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}
"#,
            log = sb.dir.join("ops.log").display()
        ),
    );
}

fn position(log: &[String], instance_prefix: &str, op: &str) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(instance_prefix) && l.ends_with(op))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn install_and_uninstall_run_real_scripts_in_dependency_order() {
    let sb = Sandbox::new("order");
    ordering_blueprint(&sb);
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = sb.log();
    assert_eq!(log.len(), 5 * 3 + 2, "{log:#?}");
    // Every app is created only after every host it could sit on... its own host started.
    let instances = Json::Array(sb.instances("demo"));
    for app in instances
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["node_id"] == "app")
    {
        let id = app["id"].as_str().unwrap();
        let host = app["host_id"].as_str().unwrap();
        let host_started = position(&log, host, "lifecycle.start")[0];
        assert!(
            position(&log, id, "lifecycle.create")[0] > host_started,
            "{log:#?}"
        );
        // The connected_to target is started before the source's preconfigure.
        let db_started = position(&log, "db_", "lifecycle.start")[0];
        assert!(
            position(&log, id, "relationship_lifecycle.preconfigure")[0] > db_started,
            "{log:#?}"
        );
        assert_eq!(app["state"], "started");
    }
    let out = sb.run(&["undeploy", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = sb.log();
    let tail = &log[17..];
    // Uninstall reverses it: apps stop before their host and before the db they connect to.
    let last_app_delete = *position(tail, "app_", "lifecycle.delete")
        .iter()
        .max()
        .unwrap();
    assert!(
        position(tail, "db_", "lifecycle.stop")[0]
            > position(tail, "app_", "relationship_lifecycle.unlink")[0]
    );
    for host_stop in position(tail, "host_", "lifecycle.stop") {
        assert!(host_stop > position(tail, "app_", "lifecycle.stop")[0]);
    }
    assert!(
        last_app_delete
            < *position(tail, "host_", "lifecycle.delete")
                .iter()
                .max()
                .unwrap()
    );
    let list = sb.json(&["list", "--json"]);
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn runtime_properties_set_through_ctx_reach_outputs_and_other_instances() {
    let sb = Sandbox::new("props");
    sb.file("scripts/create.sh", "#!/bin/bash\nset -e\nctx instance runtime-properties endpoint.host \"$(ctx node id).local\"\nctx -j instance runtime-properties endpoint.port 8080\nctx logger info \"created $(ctx instance id) in $(ctx deployment id)\"\n");
    sb.file("scripts/link.sh", "#!/bin/bash\nset -e\nctx source instance runtime-properties peer \"$(ctx target instance runtime-properties endpoint.host)\"\nctx target instance runtime-properties seen_by \"$(ctx source instance id)\"\n");
    sb.file("scripts/configure.py", "import os, subprocess\nsubprocess.run(['ctx', 'instance', 'runtime-properties', 'greeting', os.environ['GREETING'] + ' ' + os.environ['PEER']], check=True)\n");
    sb.file(
        "blueprint.yaml",
        r#"
tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_templates:
  db:
    type: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle:
        create: scripts/create.sh
  web:
    type: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle:
        create: scripts/create.sh
        configure:
          implementation: scripts/configure.py
          inputs:
            GREETING: hello
            PEER: { get_attribute: [db, endpoint, host] }
    relationships:
      - type: cloudify.relationships.connected_to
        target: db
        source_interfaces:
          cloudify.interfaces.relationship_lifecycle:
            preconfigure: scripts/link.sh
outputs:
  db_port:
    value: { get_attribute: [db, endpoint, port] }
  url:
    value: { concat: ['http://', { get_attribute: [web, peer] }, ':', { get_attribute: [db, endpoint, port] }] }
"#,
    );
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let outputs = sb.json(&["outputs", "p", "--json"]);
    assert_eq!(outputs["db_port"], 8080);
    assert_eq!(outputs["url"], "http://db.local:8080");
    let instances = sb.json(&["instances", "p", "--json"]);
    let by_node = |n: &str| {
        instances
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["node_id"] == n)
            .unwrap()
            .clone()
    };
    let (db, web) = (by_node("db"), by_node("web"));
    assert_eq!(web["runtime_properties"]["greeting"], "hello db.local");
    assert_eq!(db["runtime_properties"]["seen_by"], web["id"]);
    assert_eq!(
        db["runtime_properties"]["endpoint"],
        serde_json::json!({"host": "db.local", "port": 8080})
    );
    let events = sb.run(&["events", "p", "--json"]);
    let lines: Vec<Json> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(
        |e| e["event_type"] == "log" && e["message"].as_str().unwrap().contains("created db_")
    ));
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "execution_id",
            "event_type",
            "node_instance_id",
            "operation",
            "message"
        ]
    );
}

#[test]
fn parallel_scripts_each_see_only_their_own_context() {
    let sb = Sandbox::new("isolation");
    sb.file("scripts/me.sh", "#!/bin/bash\nset -e\nme=$(ctx instance id)\nsleep 0.2\nctx instance runtime-properties me \"$me\"\nctx instance runtime-properties again \"$(ctx instance id)\"\n");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  n:\n    type: cloudify.nodes.Root\n    instances: { deploy: 8 }\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/me.sh\n",
    );
    let started = Instant::now();
    let out = sb.run(&[
        "deploy",
        "blueprint.yaml",
        "-d",
        "iso",
        "--parallelism",
        "8",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let _ = started;
    for inst in sb.json(&["instances", "iso", "--json"]).as_array().unwrap() {
        assert_eq!(inst["runtime_properties"]["me"], inst["id"]);
        assert_eq!(inst["runtime_properties"]["again"], inst["id"]);
    }
}

#[test]
fn retries_requested_retries_and_aborts() {
    let sb = Sandbox::new("retry");
    // Fails twice, then succeeds.
    sb.script("scripts/flaky.sh", "n=$(cat flaky.count 2>/dev/null || echo 0); echo $((n+1)) > flaky.count\n[ $n -ge 2 ] || { echo \"not yet ($n)\" >&2; exit 3; }\n");
    // Asks for a retry once.
    sb.script("scripts/later.sh", "if [ ! -f later.done ]; then touch later.done; ctx operation retry 'waiting for the service'; exit 0; fi\n");
    // Aborts: never retried even with retries left.
    sb.script(
        "scripts/abort.sh",
        "echo x >> abort.count\nctx abort-operation 'the image does not exist'\nexit 1\n",
    );
    let bp = |extra: &str| {
        format!(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  a:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: {{ implementation: scripts/flaky.sh, max_retries: 3, retry_interval: 0 }}\n        configure: {{ implementation: scripts/later.sh, retry_interval: 0 }}\n{extra}"
        )
    };
    sb.file("blueprint.yaml", &bp(""));
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "r"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(sb.dir.join("flaky.count"))
            .unwrap()
            .trim(),
        "3"
    );
    let events = String::from_utf8_lossy(&sb.run(&["events", "r"]).stdout).into_owned();
    assert!(
        events.contains("not yet (0)") && events.contains("retry 2"),
        "{events}"
    );
    assert!(
        events.contains("retry requested (waiting for the service)"),
        "{events}"
    );

    sb.file("blueprint.yaml", &bp("        start: { implementation: scripts/abort.sh, max_retries: 5, retry_interval: 0 }\n"));
    let _ = std::fs::remove_file(sb.dir.join("flaky.count"));
    let _ = std::fs::remove_file(sb.dir.join("later.done"));
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "r2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the image does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(sb.dir.join("abort.count"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn a_failed_create_can_be_undeployed_and_cleans_up() {
    let sb = Sandbox::new("failed-create");
    sb.script(
        "scripts/create.sh",
        "echo half > \"$(ctx instance id).created\"\necho 'quota exceeded' >&2\nexit 1\n",
    );
    sb.script(
        "scripts/delete.sh",
        "rm \"$(ctx instance id).created\"\necho deleted >> deletes.log\n",
    );
    sb.script("scripts/ok.sh", "echo ok >> ok.log\n");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/create.sh\n        delete: scripts/delete.sh\n  app:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.depends_on, target: vm }]\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/ok.sh\n  other:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/ok.sh\n",
    );
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "f"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("quota exceeded") && err.contains("exited with code 1"),
        "{err}"
    );
    // The cause once, not a cascade: app was skipped, not reported as failed.
    assert!(!err.contains("app_"), "{err}");
    // The independent branch finished.
    assert_eq!(
        std::fs::read_to_string(sb.dir.join("ok.log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let out = sb.run(&["undeploy", "f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(sb.dir.join("deletes.log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert!(std::fs::read_dir(&sb.dir).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".created")
    }));
}

#[test]
fn sigkill_then_resume_finishes_without_rerunning_completed_operations() {
    let sb = Sandbox::new("resume");
    sb.script("scripts/step.sh", "set -e\necho \"$(ctx instance id) $(ctx operation name)\" >> ops.log\nif [ \"$(ctx node id)\" = slow ] && [ ! -f slow.once ]; then touch slow.once; sleep 30; fi\n");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\ndsl_definitions:\n  ops: &ops\n    cloudify.interfaces.lifecycle:\n      create: scripts/step.sh\n      configure: scripts/step.sh\n      start: scripts/step.sh\nnode_templates:\n  first:\n    type: cloudify.nodes.Root\n    instances: { deploy: 3 }\n    interfaces: *ops\n  slow:\n    type: cloudify.nodes.Root\n    interfaces: *ops\n    relationships: [{ type: cloudify.relationships.depends_on, target: first }]\n  last:\n    type: cloudify.nodes.Root\n    interfaces: *ops\n    relationships: [{ type: cloudify.relationships.depends_on, target: slow }]\n",
    );
    let mut child = sb.spawn(&["deploy", "blueprint.yaml", "-d", "k"]);
    sb.wait_for(|| sb.dir.join("slow.once").exists());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = sb.log();
    assert_eq!(before.len(), 3 * 3 + 1, "{before:#?}");
    // Another command sees an interrupted execution, not a busy one.
    let out = sb.run(&["undeploy", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("interrupted execution"),
        "{}",
        stderr(&out)
    );
    let out = sb.run(&["resume", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = sb.log();
    // Completed operations ran once; only the one in flight (slow's create) ran again.
    let mut counts = std::collections::BTreeMap::new();
    for l in &after {
        *counts.entry(l.clone()).or_insert(0) += 1;
    }
    for (line, n) in &counts {
        let expected = if line.starts_with("slow_") && line.ends_with("create") {
            2
        } else {
            1
        };
        assert_eq!(*n, expected, "{line}: {after:#?}");
    }
    assert_eq!(counts.len(), 5 * 3);
    for inst in sb.json(&["instances", "k", "--json"]).as_array().unwrap() {
        assert_eq!(inst["state"], "started");
    }
    let execs = sb.json(&["executions", "k", "--json"]);
    assert_eq!(execs.as_array().unwrap().len(), 1);
    assert_eq!(execs[0]["status"], "terminated");
}

#[test]
fn a_second_command_on_a_busy_deployment_is_refused_and_cancel_stops_it() {
    let sb = Sandbox::new("busy");
    sb.script("scripts/slow.sh", "touch started\nsleep 30\n");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  a:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/slow.sh\n",
    );
    let mut child = sb.spawn(&["deploy", "blueprint.yaml", "-d", "b"]);
    sb.wait_for(|| sb.dir.join("started").exists());
    for args in [
        &["undeploy", "b"][..],
        &["run", "b", "install"],
        &["resume", "b"],
    ] {
        let out = sb.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("deployment 'b' is busy with execution")
                && err.contains("(install, started"),
            "{err}"
        );
    }
    let out = sb.run(&["cancel", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let execs = sb.json(&["executions", "b", "--json"]);
    assert_eq!(execs[0]["status"], "cancelled");
    // The state file is intact and usable: tear down.
    let out = sb.run(&["undeploy", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn execute_operation_runs_on_filtered_instances() {
    let sb = Sandbox::new("exec-op");
    sb.file("scripts/record.sh", RECORD);
    sb.file(
        "blueprint.yaml",
        &format!(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  a:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: 2 }}\n    interfaces:\n      maintenance:\n        backup: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}\n  b:\n    type: cloudify.nodes.Root\n    interfaces:\n      maintenance:\n        backup: {{ implementation: scripts/record.sh, inputs: {{ LOG: {log} }} }}\n",
            log = sb.dir.join("ops.log").display()
        ),
    );
    assert!(
        sb.run(&["deploy", "blueprint.yaml", "-d", "e"])
            .status
            .success()
    );
    let out = sb.run(&[
        "run",
        "e",
        "execute_operation",
        "-p",
        r#"{"operation": "maintenance.backup", "node_ids": ["a"]}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = sb.log();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|l| l.starts_with("a_") && l.ends_with("maintenance.backup"))
    );
    let out = sb.run(&["run", "e", "execute_operation", "-p", "operaton=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `operation`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn deploy_refuses_operations_no_plugin_can_run() {
    let sb = Sandbox::new("plugins");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nplugins:\n  azure: { executor: central_deployment_agent, source: x }\nnode_templates:\n  a:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: azure.compute.create\n",
    );
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("uses the plugin `azure`, which windlass does not ship"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sb.json(&["list", "--json"]), serde_json::json!([]));
    let _ = Path::new("");
}

#[test]
fn cloudify_script_blueprint_gives_the_same_properties_and_outputs_as_cloudify() {
    let sb = Sandbox::new("cloudify-ctx");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudify-ctx");
    for f in ["blueprint.yaml", "scripts/create.sh", "scripts/link.sh"] {
        sb.file(f, &std::fs::read_to_string(fixture.join(f)).unwrap());
    }
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // What Cloudify 7.0.5's local engine produced for this blueprint.
    assert_eq!(
        sb.json(&["outputs", "c", "--json"]),
        serde_json::json!({"db_host": "db.local", "web_peer": "db.local", "combo": "web@db"})
    );
    let instances = sb.json(&["instances", "c", "--json"]);
    let props = |n: &str| {
        instances
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["node_id"] == n)
            .unwrap()["runtime_properties"]
            .clone()
    };
    assert_eq!(
        props("db"),
        serde_json::json!({"endpoint": {"host": "db.local"}, "greeting": "hi", "name": "db", "seen_by": "web"})
    );
    assert_eq!(
        props("web"),
        serde_json::json!({"endpoint": {"host": "web.local"}, "greeting": "db.local", "name": "web", "peer": "db.local"})
    );
}

#[test]
fn a_script_past_its_timeout_is_killed_and_fails() {
    let sb = Sandbox::new("timeout");
    sb.script("scripts/hang.sh", "echo $$ > hang.pid\nsleep 30 &\nwait\n");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  a:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: { implementation: scripts/hang.sh, timeout: 1 }\n",
    );
    let started = Instant::now();
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "t"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("timed out after 1s"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the script and its children were killed"
    );
}

#[test]
fn skipped_operations_are_reported_once_per_distinct_list_naming_the_nodes() {
    let sb = Sandbox::new("noops");
    sb.file("scripts/record.sh", RECORD);
    let mut bp = String::from(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n",
    );
    for n in 0..10 {
        bp.push_str(&format!(
            "  n{n}:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: 3 }}\n"
        ));
    }
    bp.push_str(&format!(
        "  s:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: {{ implementation: scripts/record.sh, inputs: {{ LOG: {} }} }}\n",
        sb.dir.join("ops.log").display()
    ));
    sb.file("blueprint.yaml", &bp);
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "e"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sb.run(&["events", "e"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let noops: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("noops_skipped"))
        .collect();
    assert_eq!(noops.len(), 2, "{text}");
    assert!(
        noops.iter().any(|l| l.contains(
            "10 nodes (`n0`, `n1`, `n2`, `n3`, `n4`, `n5`, `n6`, `n7`, and 2 more): no implementation for precreate, create, "
        )),
        "{text}"
    );
    let s = noops.iter().find(|l| l.contains("node `s`:")).expect(&text);
    assert!(
        s.contains("no implementation for precreate, preconfigure, configure,"),
        "{s}"
    );
}
