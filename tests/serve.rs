//! `windlass serve` end to end, with the real binary: a deployment with Cloudify threshold
//! policies, metrics through each intake, and the executions the policies start.

mod common;
#[path = "support/rabbitmq.rs"]
mod rabbitmq;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Sandbox;
use common::manager::{Manager, events, executions, finished, web_instances};
use serde_json::json;

/// Web tier of `instances` (min 1, max 4) with Cloudify's threshold policies: scale out by one
/// above 10 connections (at most once per 300 s), scale in by one below 5 (once a second).
fn blueprint(sb: &Sandbox, instances: u32) {
    sb.file(
        "blueprint.yaml",
        &format!(
            r#"tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_templates:
  web:
    type: cloudify.nodes.Root
    capabilities:
      scalable:
        properties: {{default_instances: {instances}, min_instances: 1, max_instances: 4}}
groups:
  web_group:
    members: [web]
    policies:
      scale_out:
        type: cloudify.policies.types.threshold
        properties:
          service: connections
          threshold: 10
          upper_bound: true
          stability_time: 0
          interval_between_workflows: 300
          policy_operates_on_group: true
        triggers:
          out:
            type: cloudify.policies.triggers.execute_workflow
            parameters:
              workflow: scale
              workflow_parameters: {{scalable_entity_name: web, delta: 1}}
      scale_in:
        type: cloudify.policies.types.threshold
        properties:
          service: connections
          threshold: 5
          upper_bound: false
          stability_time: 0
          interval_between_workflows: 1
          policy_operates_on_group: true
        triggers:
          in:
            type: cloudify.policies.triggers.execute_workflow
            parameters:
              workflow: scale
              workflow_parameters: {{scalable_entity_name: web, delta: -1}}
"#
        ),
    );
}

#[test]
fn threshold_policies_scale_out_once_hold_back_then_scale_in_to_min() {
    let sb = Sandbox::new("serve-threshold");
    blueprint(&sb, 2);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "web"]);
    let m = Manager::start(&sb, &[]);
    m.wait_live(&sb, 1);
    let first = web_instances(&sb, "web")[0].clone();

    // Above the threshold: exactly one scale out.
    m.post_metric("web", &first, "connections", 50.0);
    sb.wait_for(|| finished(&sb, "web", "scale", 1));
    assert_eq!(web_instances(&sb, "web").len(), 3);
    let started = events(&sb, "web", "policy_workflow_started");
    assert_eq!(started.len(), 1, "{started:?}");
    let execution = &executions(&sb, "web", "scale")[0];
    assert_eq!(execution["status"], "terminated");
    assert_eq!(started[0]["execution_id"], execution["id"]);

    // More breaches inside the interval: no execution, and an event says why.
    m.post_metric("web", &first, "connections", 60.0);
    m.post_metric("web", &first, "connections", 70.0);
    let held_out = || -> Vec<String> {
        events(&sb, "web", "policy_suppressed")
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .filter(|m| m.starts_with("policy web_group/scale_out"))
            .collect()
    };
    sb.wait_for(|| !held_out().is_empty());
    let held = held_out();
    assert!(held[0].contains("interval_between_workflows"), "{held:?}");
    assert!(held[0].contains("cooldown_left"), "{held:?}");
    assert_eq!(executions(&sb, "web", "scale").len(), 1);

    // Below the lower threshold: scale in, once a second, down to min and no further.
    let start = Instant::now();
    while web_instances(&sb, "web").len() > 1 || executions(&sb, "web", "scale").len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "did not scale in"
        );
        let alive = web_instances(&sb, "web");
        if let Some(i) = alive.first() {
            m.post_metric("web", i, "connections", 1.0);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    sb.wait_for(|| finished(&sb, "web", "scale", 3));
    // At min, the next scale in is refused, with an event saying so.
    let last = web_instances(&sb, "web")[0].clone();
    let start = Instant::now();
    while events(&sb, "web", "policy_workflow_refused").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no refusal at min"
        );
        m.post_metric("web", &last, "connections", 1.0);
        std::thread::sleep(Duration::from_millis(300));
    }
    let refused = events(&sb, "web", "policy_workflow_refused");
    assert!(
        refused[0]["message"].as_str().unwrap().contains("min"),
        "{refused:?}"
    );
    assert_eq!(web_instances(&sb, "web").len(), 1);
    assert_eq!(executions(&sb, "web", "scale").len(), 3);

    // `windlass policies` shows both policies, their state and their decisions.
    let p = sb.json(&["policies", "web", "--json"]);
    let names: Vec<&str> = p["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web_group/scale_out", "web_group/scale_in"]);
    assert!(
        !p["policies"][0]["last_decisions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let text = sb.ok(&["policies", "web"]);
    assert!(text.contains("fired"), "{text}");
}

#[test]
fn graphite_lines_feed_policies_over_one_long_connection() {
    let sb = Sandbox::new("serve-graphite");
    blueprint(&sb, 1);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "g"]);
    let m = Manager::start(&sb, &["--graphite", "127.0.0.1:0"]);
    m.wait_live(&sb, 1);
    let instance = web_instances(&sb, "g")[0].clone();
    let mut conn = TcpStream::connect(m.graphite.as_ref().unwrap()).unwrap();
    // A malformed line is counted, not fatal; the line after it still counts.
    writeln!(conn, "garbage").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    writeln!(conn, "g.{instance}.connections 42 {now}").unwrap();
    conn.flush().unwrap();
    sb.wait_for(|| finished(&sb, "g", "scale", 1));
    assert_eq!(web_instances(&sb, "g").len(), 2);
    let status = m.status();
    assert_eq!(status["intake"]["graphite"]["accepted"], 1, "{status}");
    assert_eq!(status["intake"]["graphite"]["malformed"], 1, "{status}");
    // The connection is still open and still counts.
    writeln!(conn, "g.{instance}.connections 43 {now}").unwrap();
    conn.flush().unwrap();
    sb.wait_for(|| m.status()["intake"]["graphite"]["accepted"] == 2);
    assert_eq!(
        executions(&sb, "g", "scale").len(),
        1,
        "inside the interval"
    );
}

#[test]
fn deployments_installed_while_serving_go_live_and_uninstalled_ones_stop() {
    let sb = Sandbox::new("serve-follow");
    blueprint(&sb, 1);
    let m = Manager::start(&sb, &[]);
    assert_eq!(m.status()["policies"]["live_deployments"], 0);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "late"]);
    m.wait_live(&sb, 1);
    sb.ok(&["undeploy", "late"]);
    m.wait_live(&sb, 0);
    // Metrics for it are now counted as unrouted, and start nothing.
    m.post_metric("late", "web_abcdef", "connections", 99.0);
    sb.wait_for(|| m.status()["policies"]["unrouted_samples"] == 1);
}

#[test]
fn malformed_metrics_are_refused_and_counted() {
    let sb = Sandbox::new("serve-malformed");
    let m = Manager::start(&sb, &[]);
    let (code, body) = m.request("POST", "/api/v1/metrics", Some(&json!({"not": "a list"})));
    assert_eq!(code, 400);
    assert_eq!(body["error"]["code"], "bad_metrics");
    let (code, body) = m.request(
        "POST",
        "/api/v1/metrics",
        Some(&json!([{"deployment": "d", "node_instance": "i", "name": "x", "value": "high"}, {"deployment": "d", "node_instance": "i", "name": "x", "value": 1}])),
    );
    assert_eq!(code, 202);
    assert_eq!(
        (body["accepted"].clone(), body["rejected"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("value")
    );
    assert_eq!(m.status()["intake"]["http"]["malformed"], 2);
}

#[test]
fn amqp_messages_from_a_real_broker_feed_policies() {
    let broker = rabbitmq::RabbitMq::start("serve");
    let sb = Sandbox::new("serve-amqp");
    blueprint(&sb, 1);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "a"]);
    let url = broker.url();
    let m = Manager::start(&sb, &["--amqp", &url]);
    m.wait_live(&sb, 1);
    let instance = web_instances(&sb, "a")[0].clone();
    // Diamond's Cloudify handler: one JSON message per metric, routed by deployment id.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let good = json!({"deployment_id": "a", "node_id": instance, "node_name": "web", "host": "vm",
        "service": format!("a.web.{instance}.connections"), "metric": 77, "time": now});
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use lapin::options::BasicPublishOptions;
        let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        for body in [b"not json".to_vec(), good.to_string().into_bytes()] {
            channel
                .basic_publish(
                    "cloudify-monitoring".into(),
                    "a".into(),
                    BasicPublishOptions::default(),
                    &body,
                    lapin::BasicProperties::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    sb.wait_for(|| finished(&sb, "a", "scale", 1));
    assert_eq!(web_instances(&sb, "a").len(), 2);
    let status = m.status();
    assert_eq!(status["intake"]["amqp"]["accepted"], 1, "{status}");
    assert_eq!(status["intake"]["amqp"]["malformed"], 1, "{status}");
    // The decision names the metric as the policy saw it: the handler's prefix is gone.
    let fired = events(&sb, "a", "policy_fired");
    assert!(
        fired[0]["message"]
            .as_str()
            .unwrap()
            .contains(r#""metric":"connections""#),
        "{fired:?}"
    );
}
