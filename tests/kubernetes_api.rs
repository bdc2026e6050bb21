//! The `kubernetes` plugin against the Kubernetes API contract server (`tests/support/kube`,
//! real loopback HTTPS with a throwaway CA): blueprints deployed and undeployed with the real
//! windlass binary, what the server received and holds checked after each step.
//!
//! Covered: Deployment + Service + ConfigMap from `definition` through the master's
//! configuration; a FileDefinedResource rendered with `template_variables` through its own
//! `client_config` (a kubeconfig among the blueprint's files); 409 and 422 quoted from the API;
//! 429 and 503 retried; a Deployment that never becomes ready (timeout, then `undeploy`); TLS
//! verified by default and skipped only with `verify_ssl: false`; `windlass scale` of a
//! Deployment node changing replicas through the `scale` subresource, and refused below zero.

mod common;
mod support;

use common::{Sandbox, stderr};
use serde_json::{Value as Json, json};
use support::kube::{KubeApi, Options};

const HEADER: &str = "tosca_definitions_version: cloudify_dsl_1_4
imports:
  - cloudify/types/types.yaml
  - plugin:cloudify-kubernetes-plugin
";

/// A sandbox holding the server's CA as `ca.pem`.
fn sandbox(name: &str, api: &KubeApi) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.file("ca.pem", api.ca_pem());
    sb
}

/// A master node whose `api_options` reach `api` (its CA as a blueprint file, its token).
fn master(api: &KubeApi, extra: &str) -> String {
    format!(
        "  master:
    type: cloudify.kubernetes.nodes.Master
    properties:
      configuration:
        api_options:
          host: {}
          api_key: {}
{extra}",
        api.url(),
        api.token()
    )
}

const MANAGED: &str = "    relationships: [{ type: cloudify.kubernetes.relationships.managed_by_master, target: master }]\n";

fn deployment_node(node: &str, name: &str, replicas: u32, extra: &str) -> String {
    format!(
        "  {node}:
    type: cloudify.kubernetes.resources.Deployment
    properties:
      definition:
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{ name: {name}, labels: {{ app: {name} }} }}
        spec:
          replicas: {replicas}
          selector: {{ matchLabels: {{ app: {name} }} }}
          template:
            metadata: {{ labels: {{ app: {name} }} }}
            spec:
              containers: [{{ name: {name}, image: 'nginx:1.27' }}]
{extra}{MANAGED}"
    )
}

fn instance(sb: &Sandbox, id: &str, node: &str) -> Json {
    sb.instances(id)
        .into_iter()
        .find(|i| i["node_id"] == node)
        .unwrap_or_else(|| panic!("no instance of {node}"))
}

fn events(sb: &Sandbox, id: &str) -> String {
    sb.ok(&["events", id])
}

#[test]
fn deploy_and_undeploy_definitions_through_the_masters_configuration() {
    let api = KubeApi::start(Options::default());
    let sb = sandbox("kubeapi-deploy", &api);
    let bp = format!(
        "{HEADER}node_templates:
{}{}  svc:
    type: cloudify.kubernetes.resources.Service
    properties:
      definition:
        apiVersion: v1
        kind: Service
        metadata: {{ name: web }}
        spec: {{ selector: {{ app: web }}, ports: [{{ port: 80 }}] }}
{MANAGED}  settings:
    type: cloudify.kubernetes.resources.ConfigMap
    properties:
      definition:
        apiVersion: v1
        kind: ConfigMap
        metadata: {{ name: settings }}
        data: {{ colour: blue }}
      options: {{ namespace: default }}
{MANAGED}",
        master(&api, "          ssl_ca_cert: ca.pem\n"),
        deployment_node("web", "web", 2, ""),
    );
    sb.file("bp.yaml", &bp);
    sb.ok(&["deploy", "bp.yaml", "-d", "k"]);

    let web = api
        .object("Deployment", "default", "web")
        .expect("web applied");
    assert_eq!(web["spec"]["replicas"], json!(2));
    assert_eq!(
        api.object("ConfigMap", "default", "settings").unwrap()["data"],
        json!({"colour": "blue"})
    );
    assert!(api.object("Service", "default", "web").is_some());
    let applies: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(applies.len(), 3, "one apply per object");
    for a in &applies {
        assert_eq!(
            a.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(a.param("fieldManager"), Some("windlass"));
        assert_eq!(a.param("force"), Some("true"));
    }
    // The object as the API returned it, read again once ready.
    let recorded = &instance(&sb, "k", "web")["runtime_properties"]["kubernetes"];
    assert_eq!(recorded["metadata"]["uid"], web["metadata"]["uid"]);
    assert!(recorded["metadata"]["resourceVersion"].is_string());
    assert_eq!(recorded["status"]["availableReplicas"], json!(2));
    assert!(recorded["metadata"].get("managedFields").is_none());
    // Readiness took several reads of the Deployment.
    let reads = api
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && r.path == "/apis/apps/v1/namespaces/default/deployments/web"
        })
        .count();
    assert!(reads >= 2, "{reads}");
    let all_events = events(&sb, "k");
    assert!(!all_events.contains(api.token()), "the token is in events");

    sb.ok(&["undeploy", "k"]);
    for (kind, name) in [
        ("Deployment", "web"),
        ("Service", "web"),
        ("ConfigMap", "settings"),
    ] {
        assert!(
            api.object(kind, "default", name).is_none(),
            "{kind} {name} left"
        );
    }
    let deletes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 3);
    assert!(
        deletes
            .iter()
            .all(|d| d.param("propagationPolicy") == Some("Background")
                || d.body.as_ref().and_then(|b| b.get("propagationPolicy"))
                    == Some(&json!("Background")))
    );
}

#[test]
fn a_file_defined_resource_renders_its_template_variables_with_its_own_kubeconfig() {
    let api = KubeApi::start(Options {
        ready_after: 0,
        ..Options::default()
    });
    let sb = sandbox("kubeapi-file", &api);
    sb.file(
        "kubeconfig",
        &std::fs::read_to_string(api.kubeconfig_path()).unwrap(),
    );
    sb.file(
        "app.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: { name: '{{ name }}', labels: { app: '{{ name }}' } }
spec:
  replicas: {{ replicas }}
  selector: { matchLabels: { app: '{{ name }}' } }
  template:
    metadata: { labels: { app: '{{ name }}' } }
    spec:
      containers:
{% for c in containers %}      - { name: '{{ c }}', image: 'busybox:1.36' }
{% endfor %}---
apiVersion: v1
kind: ConfigMap
metadata: { name: '{{ name }}-config' }
data: { greeting: '{{ greeting }}' }
",
    );
    sb.file(
        "bp.yaml",
        &format!(
            "{HEADER}node_templates:
  app:
    type: cloudify.kubernetes.resources.FileDefinedResource
    properties:
      client_config: {{ configuration: {{ blueprint_file_name: kubeconfig }} }}
      validate_resource_status: true
      file:
        resource_path: app.yaml
        template_variables: {{ name: api, replicas: 3, containers: [main, sidecar], greeting: hello }}
"
        ),
    );
    sb.ok(&["deploy", "bp.yaml", "-d", "f"]);
    let d = api
        .object("Deployment", "default", "api")
        .expect("rendered and applied");
    assert_eq!(d["spec"]["replicas"], json!(3));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["name"],
        json!("sidecar")
    );
    assert_eq!(
        api.object("ConfigMap", "default", "api-config").unwrap()["data"]["greeting"],
        json!("hello")
    );
    // Several objects: the runtime property is their list, in the file's order.
    let kept = &instance(&sb, "f", "app")["runtime_properties"]["kubernetes"];
    let kinds: Vec<&str> = kept
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Deployment", "ConfigMap"]);
    assert!(kept[0]["metadata"]["uid"].is_string());

    sb.ok(&["undeploy", "f"]);
    assert!(api.object("Deployment", "default", "api").is_none());
    assert!(api.object("ConfigMap", "default", "api-config").is_none());

    // An unknown variable names the file, the line and what was available; nothing is sent.
    sb.file(
        "bp2.yaml",
        &format!(
            "{HEADER}node_templates:
  app:
    type: cloudify.kubernetes.resources.FileDefinedResource
    properties:
      client_config: {{ configuration: {{ blueprint_file_name: kubeconfig }} }}
      file: {{ resource_path: app.yaml, template_variables: {{ name: api }} }}
"
        ),
    );
    let before = api.requests().len();
    let err = sb.err(&["deploy", "bp2.yaml", "-d", "g"]);
    assert!(
        err.contains("app.yaml:5: undefined variable `replicas` (variables available: name)"),
        "{err}"
    );
    assert!(err.contains("replicas"), "{err}");
    assert!(
        !api.requests()[before..].iter().any(|r| r.method == "PATCH"),
        "nothing is applied"
    );
}

#[test]
fn conflicts_and_invalid_objects_fail_quoting_the_api() {
    let api = KubeApi::start(Options::default());
    let sb = sandbox("kubeapi-errors", &api);
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "taken"}, "data": {"owner": "someone"}}));
    sb.file(
        "conflict.yaml",
        &format!(
            "{HEADER}node_templates:
{}  cm:
    type: cloudify.kubernetes.resources.ConfigMap
    properties:
      use_if_exists: false
      definition: {{ apiVersion: v1, kind: ConfigMap, metadata: {{ name: taken }}, data: {{ owner: me }} }}
{MANAGED}",
            master(&api, "          ssl_ca_cert: ca.pem\n")
        ),
    );
    let err = sb.err(&["deploy", "conflict.yaml", "-d", "c"]);
    assert!(
        err.contains("configmaps \"taken\" already exists") && err.contains("409 AlreadyExists"),
        "{err}"
    );
    assert_eq!(
        api.object("ConfigMap", "default", "taken").unwrap()["data"]["owner"],
        json!("someone"),
        "the existing object is untouched"
    );

    sb.file(
        "invalid.yaml",
        &format!(
            "{HEADER}node_templates:
{}  bad:
    type: cloudify.kubernetes.resources.Deployment
    properties:
      definition:
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{ name: bad }}
        spec:
          template:
            metadata: {{ labels: {{ app: bad }} }}
            spec: {{ containers: [{{ name: c, image: 'nginx:1.27' }}] }}
{MANAGED}",
            master(&api, "          ssl_ca_cert: ca.pem\n")
        ),
    );
    let before = api.requests().len();
    let err = sb.err(&["deploy", "invalid.yaml", "-d", "i"]);
    assert!(
        err.contains("Deployment.apps \"bad\" is invalid: spec.selector: Required value")
            && err.contains("422 Invalid"),
        "{err}"
    );
    // A 4xx is never retried.
    let applies = api.requests()[before..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(applies, 1);
}

#[test]
fn throttling_and_unavailability_are_retried() {
    let api = KubeApi::start(Options {
        ready_after: 0,
        ..Options::default()
    });
    let sb = sandbox("kubeapi-retry", &api);
    sb.file(
        "bp.yaml",
        &format!(
            "{HEADER}node_templates:
{}  cm:
    type: cloudify.kubernetes.resources.ConfigMap
    properties:
      definition: {{ apiVersion: v1, kind: ConfigMap, metadata: {{ name: cm }}, data: {{ a: '1' }} }}
{MANAGED}",
            master(&api, "          ssl_ca_cert: ca.pem\n")
        ),
    );
    api.fail_next(2, 429);
    api.fail_next(1, 503);
    sb.ok(&["deploy", "bp.yaml", "-d", "r"]);
    assert!(api.object("ConfigMap", "default", "cm").is_some());
    let codes: Vec<u16> = api.requests().iter().map(|r| r.status).collect();
    assert_eq!(&codes[..3], &[429, 429, 503], "{codes:?}");
    assert!(codes[3..].iter().all(|c| *c < 300), "{codes:?}");
}

#[test]
fn a_deployment_that_never_becomes_ready_times_out_and_undeploy_still_works() {
    let api = KubeApi::start(Options::default());
    let sb = sandbox("kubeapi-stuck", &api);
    api.never_ready("Deployment", "default", "stuck");
    let start = "    interfaces:
      cloudify.interfaces.lifecycle:
        start: { implementation: kubernetes.resource.wait_ready, timeout: 2 }
";
    sb.file(
        "bp.yaml",
        &format!(
            "{HEADER}node_templates:
{}{}",
            master(&api, "          ssl_ca_cert: ca.pem\n"),
            deployment_node("web", "stuck", 1, start)
        ),
    );
    let err = sb.err(&["deploy", "bp.yaml", "-d", "s"]);
    assert!(
        err.contains("Deployment default/stuck was not ready after 2s: 0 of 1 replicas available"),
        "{err}"
    );
    // Recorded before waiting: undeploy knows what to delete.
    let kept = &instance(&sb, "s", "web")["runtime_properties"]["kubernetes"];
    assert_eq!(kept["metadata"]["name"], json!("stuck"));

    sb.ok(&["undeploy", "s"]);
    assert!(api.object("Deployment", "default", "stuck").is_none());
}

#[test]
fn tls_is_verified_unless_verify_ssl_is_false() {
    let api = KubeApi::start(Options {
        ready_after: 0,
        ..Options::default()
    });
    let sb = sandbox("kubeapi-tls", &api);
    let cm = format!(
        "  cm:
    type: cloudify.kubernetes.resources.ConfigMap
    properties:
      definition: {{ apiVersion: v1, kind: ConfigMap, metadata: {{ name: cm }} }}
{MANAGED}"
    );
    // No CA given: the server's certificate is signed by one nobody trusts.
    sb.file(
        "strict.yaml",
        &format!("{HEADER}node_templates:\n{}{cm}", master(&api, "")),
    );
    let err = sb.err(&["deploy", "strict.yaml", "-d", "strict"]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(api.token()), "{err}");
    assert!(api.object("ConfigMap", "default", "cm").is_none());
    assert!(api.requests().is_empty(), "no request got through TLS");

    sb.file(
        "lax.yaml",
        &format!(
            "{HEADER}node_templates:\n{}{cm}",
            master(&api, "          verify_ssl: false\n")
        ),
    );
    sb.ok(&["deploy", "lax.yaml", "-d", "lax"]);
    assert!(api.object("ConfigMap", "default", "cm").is_some());
    let log = events(&sb, "lax");
    assert!(log.contains("TLS verification is off"), "{log}");
}

#[test]
fn scale_changes_a_deployment_nodes_replicas_through_the_api() {
    let api = KubeApi::start(Options {
        ready_after: 0,
        ..Options::default()
    });
    let sb = sandbox("kubeapi-scale", &api);
    sb.file(
        "bp.yaml",
        &format!(
            "{HEADER}node_templates:\n{}{}",
            master(&api, "          ssl_ca_cert: ca.pem\n"),
            deployment_node("web", "web", 2, "")
        ),
    );
    sb.ok(&["deploy", "bp.yaml", "-d", "demo"]);

    let before = api.requests().len();
    let out = sb.run(&["scale", "demo", "web", "+1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        api.object("Deployment", "default", "web").unwrap()["spec"]["replicas"],
        json!(3)
    );
    let patch = api.requests()[before..]
        .iter()
        .find(|r| r.method == "PATCH")
        .cloned()
        .expect("a PATCH");
    assert_eq!(
        patch.path,
        "/apis/apps/v1/namespaces/default/deployments/web/scale"
    );
    assert_eq!(patch.body, Some(json!({"spec": {"replicas": 3}})));
    let said = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out),
        events(&sb, "demo")
    );
    assert!(
        said.contains("scaled Deployment web: replicas 2 → 3"),
        "{said}"
    );
    // Replicas, not node instances.
    let webs: Vec<Json> = sb
        .instances("demo")
        .into_iter()
        .filter(|i| i["node_id"] == "web")
        .collect();
    assert_eq!(webs.len(), 1);
    assert_eq!(
        webs[0]["runtime_properties"]["kubernetes"]["spec"]["replicas"],
        json!(3)
    );

    // Below zero: refused before anything is written.
    let before = api.requests().len();
    let err = sb.err(&["scale", "demo", "web", "-5"]);
    assert!(
        err.contains("has 3 replicas; 3 - 5 = -2: replicas cannot go below zero"),
        "{err}"
    );
    assert!(
        !api.requests()[before..].iter().any(|r| r.method == "PATCH"),
        "nothing written"
    );
    assert_eq!(
        api.object("Deployment", "default", "web").unwrap()["spec"]["replicas"],
        json!(3)
    );

    // An absolute amount is a replica count.
    sb.ok(&["scale", "demo", "web", "1"]);
    assert_eq!(
        api.object("Deployment", "default", "web").unwrap()["spec"]["replicas"],
        json!(1)
    );

    // The seed's kube_scale workflow, without an SSH user, goes through the API too.
    sb.ok(&[
        "run",
        "demo",
        "kube_scale",
        "-p",
        "name=web",
        "-p",
        "amount=+2",
    ]);
    assert_eq!(
        api.object("Deployment", "default", "web").unwrap()["spec"]["replicas"],
        json!(3)
    );
    let log = events(&sb, "demo");
    assert!(log.contains("web: replicas 1 → 3"), "{log}");
    let err = sb.err(&[
        "run",
        "demo",
        "kube_scale",
        "-p",
        "name=web",
        "-p",
        "amount=-4",
    ]);
    assert!(err.contains("below zero"), "{err}");
    assert_eq!(
        api.object("Deployment", "default", "web").unwrap()["spec"]["replicas"],
        json!(3)
    );
}

/// The seed's autoscaling loop, with a 2.x Deployment node: `windlass serve` takes a metric
/// over HTTP, the seed's sliding-window policy fires `kube_scale` `+1`, the Deployment gets one
/// more replica through the API, and at `scale_limit` the policy holds back, saying why.
#[test]
fn a_policy_scales_a_deployment_through_kube_scale_up_to_its_limit() {
    let api = KubeApi::start(Options {
        ready_after: 0,
        ..Options::default()
    });
    let sb = sandbox("kubeapi-policy", &api);
    sb.file(
        "bp.yaml",
        &format!(
            "{HEADER}node_templates:\n{}{}groups:
  web_group:
    members: [web]
    policies:
      scale_up:
        type: windlass.policies.types.sliding_window
        properties:
          service: connections
          moving_window_size: 60
          scale_threshold: 10
          scale_direction: '<'
          scale_limit: 3
          cooldown_time: 0
        triggers:
          up:
            type: cloudify.policies.triggers.execute_workflow
            parameters:
              workflow: kube_scale
              workflow_parameters: {{ name: web, amount: '+1' }}
",
            master(&api, "          ssl_ca_cert: ca.pem\n"),
            deployment_node("web", "web", 2, "")
        ),
    );
    sb.ok(&["deploy", "bp.yaml", "-d", "demo"]);
    let m = common::manager::Manager::start(&sb, &[]);
    m.wait_live(&sb, 1);
    let web = instance(&sb, "demo", "web")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let replicas =
        || api.object("Deployment", "default", "web").unwrap()["spec"]["replicas"].clone();

    m.post_metric("demo", &web, "connections", 50.0);
    sb.wait_for(|| common::manager::finished(&sb, "demo", "kube_scale", 1));
    assert_eq!(replicas(), json!(3));
    let runs = common::manager::executions(&sb, "demo", "kube_scale");
    assert_eq!(runs[0]["status"], "terminated", "{runs:?}");
    assert!(events(&sb, "demo").contains("web: replicas 2 → 3"));

    // At the limit (the Deployment's replicas, as the API last returned them) it holds back.
    let held = || {
        common::manager::events(&sb, "demo", "policy_suppressed")
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("scale_limit"))
    };
    let start = std::time::Instant::now();
    while !held() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "never held back"
        );
        m.post_metric("demo", &web, "connections", 50.0);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_eq!(
        common::manager::executions(&sb, "demo", "kube_scale").len(),
        1
    );
    assert_eq!(replicas(), json!(3));
}
