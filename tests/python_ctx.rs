//! Python operation scripts with `from cloudify import ctx`, run by the real binary with the real
//! `python3`: what they leave in runtime properties and outputs must be what Cloudify 7.0.5's
//! script plugin left for the same blueprint (recorded from the peer under
//! `tests/fixtures/python_ctx/`, see its RECORDED.md), and their failures end the way
//! Cloudify's do (a NonRecoverableError once, anything else retried).

use std::path::Path;

use serde_json::Value as Json;

mod common;

use common::{Sandbox, stderr};

const FIXTURE_FILES: &[&str] = &[
    "blueprint.yaml",
    "fail.yaml",
    "resources/motd.txt",
    "scripts/create.py",
    "scripts/flaky.py",
    "scripts/nested.py",
    "scripts/returns.py",
    "scripts/link.py",
    "scripts/fail.py",
    "exit.yaml",
    "scripts/exit_zero.py",
    "scripts/exit_three.py",
];

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_ctx"
    ))
}

/// A sandbox holding the fixture's blueprints and scripts.
fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    std::fs::create_dir_all(sb.dir.join("resources")).unwrap();
    for f in FIXTURE_FILES {
        sb.file(f, &std::fs::read_to_string(fixture().join(f)).unwrap());
    }
    sb
}

/// What the peer recorded in `file`.
fn recorded(file: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture().join(file)).unwrap()).unwrap()
}

/// Runtime properties by node (each node of these blueprints has one instance).
fn runtime_properties(sb: &Sandbox, id: &str) -> Json {
    let mut by_node = serde_json::Map::new();
    for i in sb.instances(id) {
        by_node.insert(
            i["node_id"].as_str().unwrap().to_string(),
            i["runtime_properties"].clone(),
        );
    }
    Json::Object(by_node)
}

/// The messages of the execution's events of `event_type` for `operation`.
fn events(sb: &Sandbox, id: &str, event_type: &str, operation: &str) -> Vec<String> {
    sb.ok(&["events", id, "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|e| e["event_type"] == event_type && e["operation"] == operation)
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn install_leaves_the_runtime_properties_and_outputs_cloudify_leaves() {
    let sb = sandbox("pyctx-install");
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "py"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let peer = recorded("peer-install.json");
    assert_eq!(peer["ok"], true);
    // Every field of ctx the scripts read (node, type hierarchy, properties, operation, inputs,
    // get_resource, download_resource), the relationship's two ends, the retries' record, a
    // change deep inside a dict, a deletion, update(), host_ip.
    assert_eq!(runtime_properties(&sb, "py"), peer["runtime_properties"]);
    assert_eq!(sb.json(&["outputs", "py", "--json"]), peer["outputs"]);
}

#[test]
fn retry_and_recoverable_error_run_the_operation_again_with_their_retry_after() {
    let sb = sandbox("pyctx-retry");
    sb.ok(&["deploy", "blueprint.yaml", "-d", "py"]);
    let configure = "cloudify.interfaces.lifecycle.configure";
    // ctx.operation.retry('not ready yet', retry_after=0): a retry, at once.
    let rescheduled = events(&sb, "py", "task_rescheduled", configure);
    assert_eq!(rescheduled.len(), 1, "{rescheduled:?}");
    assert!(
        rescheduled[0].contains("not ready yet [retry_after=0]") && rescheduled[0].contains("0ns"),
        "{rescheduled:?}"
    );
    // RecoverableError('flaky', retry_after=0): a failure that is retried, at once.
    let failed = events(&sb, "py", "task_failed", configure);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("flaky [retry_after=0]; retry 1 in 0ns"),
        "{failed:?}"
    );
}

#[test]
fn ctx_returns_gives_the_operations_result() {
    let sb = sandbox("pyctx-returns");
    sb.ok(&["deploy", "blueprint.yaml", "-d", "py"]);
    let succeeded = events(
        &sb,
        "py",
        "task_succeeded",
        "cloudify.interfaces.lifecycle.create",
    );
    assert!(
        succeeded
            .iter()
            .any(|m| m == r#"succeeded, returned {"answer":42}"#),
        "{succeeded:?}"
    );
}

#[test]
fn a_non_recoverable_error_fails_at_once_with_its_message() {
    let sb = sandbox("pyctx-nonrecoverable");
    let out = sb.run(&[
        "deploy",
        "fail.yaml",
        "-d",
        "f",
        "-i",
        "mode=nonrecoverable",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let peer = recorded("peer-fail-nonrecoverable.json");
    // One attempt despite max_retries 2, its runtime properties saved all the same.
    assert_eq!(runtime_properties(&sb, "f"), peer["runtime_properties"]);
    let failed = events(
        &sb,
        "f",
        "task_failed",
        "cloudify.interfaces.lifecycle.create",
    );
    assert_eq!(
        failed,
        vec!["broken on purpose (not recoverable)".to_string()]
    );
}

#[test]
fn an_uncaught_exception_is_retried_and_reported_with_its_traceback() {
    let sb = sandbox("pyctx-uncaught");
    let out = sb.run(&["deploy", "fail.yaml", "-d", "f", "-i", "mode=uncaught"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let peer = recorded("peer-fail-uncaught.json");
    assert_eq!(runtime_properties(&sb, "f"), peer["runtime_properties"]);
    let create = "cloudify.interfaces.lifecycle.create";
    let failed = events(&sb, "f", "task_failed", create);
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|m| m.starts_with("ValueError: no such thing")),
        "{failed:?}"
    );
    let logs = events(&sb, "f", "log", create);
    assert!(
        logs.iter()
            .any(|m| m.contains("Traceback (most recent call last)")),
        "{logs:?}"
    );
}

#[test]
fn sys_exit_ends_the_operation_as_cloudify_ends_it() {
    let sb = sandbox("pyctx-exit");
    let out = sb.run(&["deploy", "exit.yaml", "-d", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        runtime_properties(&sb, "x"),
        recorded("peer-exit.json")["runtime_properties"]
    );
    let failed = events(
        &sb,
        "x",
        "task_failed",
        "cloudify.interfaces.lifecycle.configure",
    );
    assert!(
        failed[0].contains("`scripts/exit_three.py` exited with code 3"),
        "{failed:?}"
    );
}

#[test]
fn the_manager_client_and_abort_operation_fail_without_retry_and_ctx_source_outside_a_relationship_says_why()
 {
    let sb = Sandbox::new("pyctx-manager");
    sb.file(
        "scripts/rest.py",
        "from cloudify.manager import get_rest_client\nget_rest_client().nodes.list()\n",
    );
    sb.file(
        "scripts/source.py",
        "from cloudify import ctx\nctx.logger.warning('about to read %s', 'source')\nctx.source.node.id\n",
    );
    let bp = |script: &str| {
        format!(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  a:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: {{ implementation: {script}, max_retries: 3, retry_interval: 0 }}\n"
        )
    };
    sb.file(
        "scripts/abort.py",
        "from cloudify import ctx\nctx.abort_operation('stop here')\n",
    );
    sb.file("rest.yaml", &bp("scripts/rest.py"));
    sb.file("abort.yaml", &bp("scripts/abort.py"));
    sb.file("source.yaml", &bp("scripts/source.py"));
    let create = "cloudify.interfaces.lifecycle.create";

    assert_eq!(
        sb.run(&["deploy", "rest.yaml", "-d", "r"]).status.code(),
        Some(1)
    );
    let failed = events(&sb, "r", "task_failed", create);
    assert_eq!(failed.len(), 1, "not retried: {failed:?}");
    assert!(
        failed[0].contains("cloudify.manager.get_rest_client: windlass has no Cloudify manager"),
        "{failed:?}"
    );

    assert_eq!(
        sb.run(&["deploy", "source.yaml", "-d", "s"]).status.code(),
        Some(1)
    );
    let failed = events(&sb, "s", "task_failed", create);
    assert_eq!(
        failed,
        vec![
            "ctx.source/ctx.target can only be used in a relationship-instance context but used in a node-instance context. (not recoverable)"
                .to_string()
        ]
    );
    let logs = events(&sb, "s", "log", create);
    assert!(
        logs.contains(&"warning: about to read source".to_string()),
        "{logs:?}"
    );
}

#[test]
fn without_python3_on_path_a_python_script_fails_saying_so() {
    let sb = sandbox("pyctx-nopython");
    let empty = sb.dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = sb
        .command(&["deploy", "fail.yaml", "-d", "n"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = events(
        &sb,
        "n",
        "task_failed",
        "cloudify.interfaces.lifecycle.create",
    );
    assert_eq!(failed.len(), 1, "not retried: {failed:?}");
    assert!(
        failed[0]
            .contains("`scripts/fail.py` is a Python script and there is no `python3` on PATH"),
        "{failed:?}"
    );
}
