//! Autoscaling rules end to end, with the real binary: a deployment without policies, a rule
//! created over the API while `windlass serve` runs, metrics that scale it out to the rule's
//! max and in to its min, and a deleted rule that no longer acts; `windlass rules` on the CLI;
//! every refusal of the API with its status and reason.

mod common;

use std::time::{Duration, Instant};

use common::Sandbox;
use common::manager::{Manager, events, executions, finished, web_instances};
use serde_json::{Value as Json, json};

/// One `web` node without policies. Its own limits (0 to 5) are wider than the rules', so only
/// a rule's min and max can stop a scale.
fn blueprint(sb: &Sandbox) {
    sb.file(
        "blueprint.yaml",
        r#"tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_templates:
  web:
    type: cloudify.nodes.Root
    capabilities:
      scalable:
        properties: {default_instances: 1, min_instances: 0, max_instances: 5}
"#,
    );
}

fn rule(name: &str, deployment: &str) -> Json {
    json!({
        "name": name, "deployment": deployment, "target": "web", "metric": "connections",
        "scale_out_above": 10, "scale_in_below": 5, "window": 1, "min": 1, "max": 2,
        "step": 1, "cooldown": 1
    })
}

/// The names of the policies the manager last saved for a deployment.
fn live_policies(m: &Manager, deployment: &str) -> Vec<String> {
    let (code, body) = m.request(
        "GET",
        &format!("/api/v1/deployments/{deployment}/policies"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The messages of a deployment's events of one type that concern one policy.
fn messages(sb: &Sandbox, id: &str, event_type: &str, policy: &str) -> Vec<String> {
    events(sb, id, event_type)
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .filter(|m| m.starts_with(&format!("policy {policy}")))
        .collect()
}

/// Post `value` from the first started instance every 200 ms until `done`.
fn feed_until(m: &Manager, sb: &Sandbox, value: f64, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        if let Some(i) = web_instances(sb, "web").first() {
            m.post_metric("web", i, "connections", value);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_rule_made_while_serving_scales_out_to_max_in_to_min_and_stops_when_deleted() {
    let sb = Sandbox::new("rules-scale");
    blueprint(&sb);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "web"]);
    let m = Manager::start(&sb, &[]);
    m.wait_live(&sb, 1);
    assert!(live_policies(&m, "web").is_empty());

    let (code, body) = m.request("POST", "/api/v1/rules", Some(&rule("load", "web")));
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["policies"], json!(["rule:load/out", "rule:load/in"]));
    sb.wait_for(|| live_policies(&m, "web") == ["rule:load/out", "rule:load/in"]);

    // Above: exactly one scale out, started by the rule's policy.
    let first = web_instances(&sb, "web")[0].clone();
    m.post_metric("web", &first, "connections", 50.0);
    sb.wait_for(|| finished(&sb, "web", "scale", 1));
    assert_eq!(web_instances(&sb, "web").len(), 2);
    let started = events(&sb, "web", "policy_workflow_started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        started[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("policy rule:load/out started `scale`"),
        "{started:?}"
    );
    assert_eq!(executions(&sb, "web", "scale")[0]["status"], "terminated");

    // At max (2), more breaches scale nothing, and an event says why.
    let at_max = || {
        messages(&sb, "web", "policy_suppressed", "rule:load/out")
            .iter()
            .any(|m| m.contains("is at or above scale_limit 2"))
    };
    feed_until(&m, &sb, 50.0, at_max);
    assert_eq!(executions(&sb, "web", "scale").len(), 1);
    assert_eq!(web_instances(&sb, "web").len(), 2);

    // Below: scale in to min (1), then no further, and an event says why.
    let at_min = || {
        messages(&sb, "web", "policy_suppressed", "rule:load/in")
            .iter()
            .any(|m| m.contains("is at or below scale_limit 1"))
    };
    feed_until(&m, &sb, 1.0, at_min);
    sb.wait_for(|| finished(&sb, "web", "scale", 2));
    assert_eq!(web_instances(&sb, "web").len(), 1);
    assert_eq!(
        executions(&sb, "web", "scale")[1]["parameters"]["delta"],
        json!(-1)
    );

    // `windlass policies` shows the rule's policies with their decisions.
    let p = sb.json(&["policies", "web", "--json"]);
    assert_eq!(p["policies"][0]["name"], "rule:load/out");
    assert_eq!(
        p["policies"][0]["type"],
        "windlass.policies.types.sliding_window"
    );
    assert!(
        !p["policies"][0]["last_decisions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Deleted: its policies go, and a breach no longer decides anything.
    let (code, _) = m.request("DELETE", "/api/v1/rules/load", None);
    assert_eq!(code, 204);
    sb.wait_for(|| live_policies(&m, "web").is_empty());
    let before = m.status()["policies"].clone();
    let decided =
        events(&sb, "web", "policy_suppressed").len() + events(&sb, "web", "policy_fired").len();
    m.post_metric("web", &web_instances(&sb, "web")[0], "connections", 50.0);
    // The runtime takes batches in order: once this one is counted, the one before was seen.
    m.post_metric("nobody", "web_aaaaaa", "connections", 50.0);
    let unrouted = before["unrouted_samples"].as_u64().unwrap();
    sb.wait_for(|| m.status()["policies"]["unrouted_samples"] == unrouted + 1);
    assert_eq!(m.status()["policies"]["decisions"], before["decisions"]);
    assert_eq!(
        events(&sb, "web", "policy_suppressed").len() + events(&sb, "web", "policy_fired").len(),
        decided
    );
    assert_eq!(executions(&sb, "web", "scale").len(), 2);
}

#[test]
fn the_cli_creates_lists_and_deletes_rules_with_the_api_s_checks() {
    let sb = Sandbox::new("rules-cli");
    blueprint(&sb);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "web"]);
    let create = |name: &str, target: &str, extra: &[&str]| {
        let mut args = vec![
            "rules",
            "create",
            name,
            "--deployment",
            "web",
            "--target",
            target,
            "--metric",
            "cpu.total",
            "--scale-out-above",
            "80",
            "--window",
            "30",
            "--min",
            "1",
            "--max",
            "3",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let out = run(create(
        "cpu",
        "web",
        &["--scale-in-below", "20", "--step", "2"],
    ));
    assert!(out.status.success(), "{}", common::stderr(&out));
    let list = sb.json(&["rules", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = &list[0];
    assert_eq!(
        (r["name"].clone(), r["target"].clone(), r["metric"].clone()),
        (json!("cpu"), json!("web"), json!("cpu.total"))
    );
    assert_eq!(
        (r["step"].clone(), r["cooldown"].clone()),
        (json!(2), json!(300.0))
    );
    assert_eq!(r["scale_in_below"], json!(20.0));
    assert_eq!(r["policies"], json!(["rule:cpu/out", "rule:cpu/in"]));
    assert!(
        sb.ok(&["rules", "list"])
            .starts_with("cpu\tweb\tweb\tcpu.total")
    );
    assert_eq!(sb.json(&["rules", "list", "-d", "web", "--json"]), list);
    assert!(
        sb.refused(&["rules", "list", "-d", "nope"])
            .contains("`nope` does not exist")
    );

    // The same checks as the API, with the same reasons.
    let out = run(create("cpu", "web", &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("a rule named `cpu` already exists"));
    let out = run(create("typo", "wbe", &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("has no node or scaling group `wbe`; did you mean `web`?"),
        "{}",
        common::stderr(&out)
    );
    let out = run(create("bounds", "web", &["--scale-in-below", "90"]));
    assert!(common::stderr(&out).contains("`scale_in_below` (90) must be less than"));
    assert_eq!(
        sb.json(&["rules", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    sb.ok(&["rules", "delete", "cpu"]);
    assert_eq!(sb.json(&["rules", "list", "--json"]), json!([]));
    assert!(
        sb.refused(&["rules", "delete", "cpu"])
            .contains("no rule is named `cpu`")
    );

    // A rule goes with its deployment.
    let out = run(create("again", "web", &[]));
    assert!(out.status.success(), "{}", common::stderr(&out));
    sb.ok(&["undeploy", "web"]);
    assert_eq!(sb.json(&["rules", "list", "--json"]), json!([]));
}

#[test]
fn the_api_refuses_bad_rules_with_the_reason() {
    let sb = Sandbox::new("rules-api");
    blueprint(&sb);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "web"]);
    let m = Manager::start(&sb, &[]);
    let post = |body: Json| m.request("POST", "/api/v1/rules", Some(&body));
    let with = |changes: Json| {
        let mut r = rule("r", "web");
        for (k, v) in changes.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let refused = |body: Json, status: u16, code: &str, reason: &str| {
        let (s, b) = post(body.clone());
        assert_eq!(s, status, "{body} → {b}");
        assert_eq!(b["error"]["code"], code, "{b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{body}: {message}");
    };
    refused(
        with(json!({"deployment": "nope"})),
        404,
        "not_found",
        "deployment `nope` does not exist",
    );
    refused(
        with(json!({"target": "wbe"})),
        400,
        "bad_request",
        "deployment `web` has no node or scaling group `wbe`; did you mean `web`?",
    );
    refused(
        with(json!({"metric": ""})),
        400,
        "bad_request",
        "metric \"\"",
    );
    refused(
        with(json!({"metric": "cpu load"})),
        400,
        "bad_request",
        "a metric name is",
    );
    refused(
        with(json!({"min": 3, "max": 2})),
        400,
        "bad_request",
        "`min` (3) must not be greater than `max` (2)",
    );
    refused(
        with(json!({"scale_in_below": 10})),
        400,
        "bad_request",
        "`scale_in_below` (10) must be less than `scale_out_above` (10)",
    );
    for field in ["window", "cooldown", "step"] {
        refused(
            with(json!({ field: 0 })),
            400,
            "bad_request",
            &format!("`{field}` must be greater than 0"),
        );
    }
    refused(
        with(json!({"name": "a/b"})),
        400,
        "bad_request",
        "a rule name is",
    );
    refused(
        with(json!({"treshold": 3})),
        400,
        "bad_request",
        "unknown field `treshold`",
    );
    refused(
        with(json!({"max": -1})),
        400,
        "bad_request",
        "the body is not a rule",
    );
    let (code, _) = post(rule("r", "web"));
    assert_eq!(code, 201);
    refused(
        rule("r", "web"),
        409,
        "conflict",
        "a rule named `r` already exists",
    );

    // Read, change (checked the same way), delete.
    let (code, body) = m.request("GET", "/api/v1/rules/r", None);
    assert_eq!((code, body["max"].clone()), (200, json!(2)));
    let (code, body) = m.request("GET", "/api/v1/rules?deployment=web", None);
    assert_eq!((code, body.as_array().unwrap().len()), (200, 1));
    let (code, body) = m.request("GET", "/api/v1/rules?deployment=nope", None);
    assert_eq!(
        (code, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let mut changed = rule("r", "web");
    changed.as_object_mut().unwrap().remove("name");
    changed["max"] = json!(4);
    let (code, body) = m.request("PUT", "/api/v1/rules/r", Some(&changed));
    assert_eq!((code, body["max"].clone()), (200, json!(4)), "{body}");
    assert_eq!(m.request("GET", "/api/v1/rules/r", None).1["max"], json!(4));
    changed["min"] = json!(9);
    let (code, body) = m.request("PUT", "/api/v1/rules/r", Some(&changed));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`min` (9)")
    );
    let (code, body) = m.request("PUT", "/api/v1/rules/other", Some(&rule("r", "web")));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be renamed")
    );
    let (code, body) = m.request("PUT", "/api/v1/rules/ghost", Some(&rule("ghost", "web")));
    assert_eq!(
        (code, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (code, _) = m.request("DELETE", "/api/v1/rules/r", None);
    assert_eq!(code, 204);
    let (code, body) = m.request("DELETE", "/api/v1/rules/r", None);
    assert_eq!(
        (code, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (code, body) = m.request("GET", "/api/v1/rules/r", None);
    assert_eq!(
        (code, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );

    // Rules need a token like everything else.
    for (method, path) in [
        ("GET", "/api/v1/rules"),
        ("POST", "/api/v1/rules"),
        ("GET", "/api/v1/rules/r"),
        ("PUT", "/api/v1/rules/r"),
        ("DELETE", "/api/v1/rules/r"),
    ] {
        let r = common::http::request(&m.http, method, path, None, None, b"");
        assert_eq!(r.status, 401, "{method} {path}");
    }
}
