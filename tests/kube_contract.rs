//! The Kubernetes API contract server (`tests/support/kube`) proven with the real kubectl: what
//! kubectl does against it — client-side and server-side apply, get, scale through the `scale`
//! subresource, wait on conditions through a watch, delete with a propagation policy — works,
//! and the API's failures (401, 404, 409, 422, 429, 503) reach kubectl's stderr with the API's
//! message. kubectl sends bearer tokens only over HTTPS, hence the throwaway CA.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value as Json, json};
use support::kube::{KubeApi, Options, Request};

/// kubectl's exit status, stdout and stderr.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn kubectl_with(api: &KubeApi, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    let cache = api.kubeconfig_path().with_file_name("cache");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl is on PATH");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kubectl(api: &KubeApi, args: &[&str]) -> Run {
    kubectl_with(api, api.kubeconfig_path(), args)
}

/// Run kubectl and require success.
fn ok(api: &KubeApi, args: &[&str]) -> String {
    let run = kubectl(api, args);
    assert!(run.ok, "kubectl {args:?} failed:\n{}", run.stderr);
    run.stdout
}

/// Run kubectl and require failure; its stderr.
fn fails(api: &KubeApi, args: &[&str]) -> String {
    let run = kubectl(api, args);
    assert!(
        !run.ok,
        "kubectl {args:?} should have failed; it printed:\n{}",
        run.stdout
    );
    run.stderr
}

fn manifest(api: &KubeApi, name: &str, text: &str) -> String {
    let path: PathBuf = api.kubeconfig_path().with_file_name(name);
    std::fs::write(&path, text).expect("write a manifest");
    path.to_string_lossy().into_owned()
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: {name}
        image: nginx:1.27
"
    )
}

fn requests_since(api: &KubeApi, n: usize) -> Vec<Request> {
    api.requests().split_off(n)
}

fn get_json(api: &KubeApi, args: &[&str]) -> Json {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(api, &all)).expect("kubectl prints JSON")
}

#[test]
fn apply_get_scale_wait_and_delete_a_deployment() {
    let api = KubeApi::start(Options::default());
    let file = manifest(&api, "web.yaml", &deployment("web", 2));

    assert_eq!(
        ok(&api, &["apply", "-f", &file]).trim(),
        "deployment.apps/web created"
    );
    let web = get_json(&api, &["deployment", "web"]);
    assert_eq!(web["metadata"]["generation"], json!(1));
    assert_eq!(web["metadata"]["uid"].as_str().map(str::len), Some(36));
    assert!(web["metadata"]["resourceVersion"].as_str().is_some());
    assert_eq!(web["spec"]["replicas"], json!(2));
    // kubectl hides managedFields unless asked to show them.
    let shown = get_json(&api, &["deployment", "web", "--show-managed-fields"]);
    assert_eq!(
        shown["metadata"]["managedFields"][0]["manager"],
        json!("kubectl-client-side-apply")
    );
    assert_eq!(
        ok(&api, &["apply", "-f", &file]).trim(),
        "deployment.apps/web unchanged"
    );

    // kubectl scale writes through the `scale` subresource.
    let before = api.requests().len();
    assert_eq!(
        ok(&api, &["scale", "deployment/web", "--replicas=3"]).trim(),
        "deployment.apps/web scaled"
    );
    let scale = requests_since(&api, before)
        .into_iter()
        .find(|r| r.path.ends_with("/deployments/web/scale"))
        .expect("kubectl scale uses the scale subresource");
    assert_eq!(scale.method, "PATCH");
    assert_eq!(scale.body, Some(json!({"spec": {"replicas": 3}})));
    assert_eq!(
        ok(
            &api,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "3"
    );
    assert_eq!(
        api.object("Deployment", "default", "web").unwrap()["metadata"]["generation"],
        json!(2)
    );

    // The scale subresource as the API reference shapes it.
    let raw = ok(
        &api,
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ],
    );
    let scale: Json = serde_json::from_str(&raw).unwrap();
    assert_eq!(scale["kind"], json!("Scale"));
    assert_eq!(scale["apiVersion"], json!("autoscaling/v1"));
    assert_eq!(scale["spec"]["replicas"], json!(3));
    assert_eq!(scale["status"]["selector"], json!("app=web"));

    assert_eq!(
        ok(
            &api,
            &[
                "wait",
                "--for=condition=Available",
                "deployment/web",
                "--timeout=30s"
            ]
        )
        .trim(),
        "deployment.apps/web condition met"
    );
    assert_eq!(
        ok(
            &api,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}"
            ]
        ),
        "3"
    );

    let before = api.requests().len();
    assert_eq!(
        ok(&api, &["delete", "deployment", "web"]).trim(),
        "deployment.apps \"web\" deleted"
    );
    let delete = requests_since(&api, before)
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(
        delete
            .body
            .as_ref()
            .and_then(|b| b.get("propagationPolicy")),
        Some(&json!("Background"))
    );
    assert!(api.object("Deployment", "default", "web").is_none());
    let stderr = fails(&api, &["get", "deployment", "web"]);
    assert!(
        stderr.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{stderr}"
    );
}

#[test]
fn server_side_apply_records_managers_and_reports_conflicts() {
    let api = KubeApi::start(Options::default());
    let two = manifest(&api, "two.yaml", &deployment("api", 2));
    let four = manifest(&api, "four.yaml", &deployment("api", 4));

    let out = ok(
        &api,
        &[
            "apply",
            "--server-side",
            "--field-manager=alice",
            "-f",
            &two,
        ],
    );
    assert_eq!(out.trim(), "deployment.apps/api serverside-applied");
    let apply = api
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(apply.param("fieldManager"), Some("alice"));
    assert_eq!(apply.status, 201, "an apply of a new object creates it");
    let object = api.object("Deployment", "default", "api").unwrap();
    let managers = &object["metadata"]["managedFields"];
    assert_eq!(managers[0]["manager"], json!("alice"));
    assert_eq!(managers[0]["operation"], json!("Apply"));
    assert_eq!(managers[0]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

    let stderr = fails(
        &api,
        &["apply", "--server-side", "--field-manager=bob", "-f", &four],
    );
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"alice\""),
        "{stderr}"
    );
    assert!(stderr.contains(".spec.replicas"), "{stderr}");
    assert_eq!(
        api.object("Deployment", "default", "api").unwrap()["spec"]["replicas"],
        json!(2)
    );

    ok(
        &api,
        &[
            "apply",
            "--server-side",
            "--field-manager=bob",
            "--force-conflicts",
            "-f",
            &four,
        ],
    );
    let object = api.object("Deployment", "default", "api").unwrap();
    assert_eq!(object["spec"]["replicas"], json!(4));
    let bob = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == json!("bob"))
        .cloned()
        .unwrap();
    assert_eq!(bob["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
}

#[test]
fn api_errors_reach_kubectl_with_the_api_message() {
    let api = KubeApi::start(Options::default());
    let web = manifest(&api, "web.yaml", &deployment("web", 1));
    ok(&api, &["create", "-f", &web]);

    let stderr = fails(&api, &["create", "-f", &web]);
    assert!(
        stderr.contains("(AlreadyExists)")
            && stderr.contains("deployments.apps \"web\" already exists"),
        "{stderr}"
    );

    let stderr = fails(&api, &["get", "configmap", "nope"]);
    assert!(
        stderr.contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{stderr}"
    );

    let no_selector = manifest(
        &api,
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: x, image: nginx}]}\n",
    );
    let stderr = fails(&api, &["create", "-f", &no_selector]);
    assert!(
        stderr.contains("The Deployment \"bad\" is invalid: spec.selector: Required value"),
        "{stderr}"
    );

    let no_name = manifest(
        &api,
        "noname.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\ndata: {a: b}\n",
    );
    let stderr = fails(&api, &["create", "-f", &no_name]);
    assert!(
        stderr.contains("metadata.name: Required value: name or generateName is required"),
        "{stderr}"
    );
    let invalid = api
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(invalid.status, 422);

    // A write with a stale resourceVersion is a 409 Conflict.
    let mut stale = get_json(&api, &["deployment", "web"]);
    ok(&api, &["scale", "deployment/web", "--replicas=2"]);
    stale["spec"]["replicas"] = json!(5);
    let stale_file = manifest(&api, "stale.json", &stale.to_string());
    let stderr = fails(&api, &["replace", "-f", &stale_file]);
    assert!(stderr.contains("(Conflict)"), "{stderr}");
    assert!(stderr.contains("Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified"), "{stderr}");

    let stderr = fails(&api, &["create", "-n", "missing", "-f", &web]);
    assert!(
        stderr.contains("namespaces \"missing\" not found"),
        "{stderr}"
    );
}

#[test]
fn a_request_without_the_token_is_unauthorized() {
    let api = KubeApi::start(Options {
        token: Some("right-token".into()),
        ..Options::default()
    });
    let text = std::fs::read_to_string(api.kubeconfig_path()).unwrap();
    assert!(text.contains("token: right-token"));
    let wrong = api.kubeconfig_path().with_file_name("wrong-kubeconfig");
    std::fs::write(&wrong, text.replace("right-token", "wrong-token")).unwrap();

    let run = kubectl_with(&api, &wrong, &["get", "namespaces"]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("You must be logged in to the server"),
        "{}",
        run.stderr
    );
    assert!(api.requests().iter().all(|r| r.status == 401));
    assert!(ok(&api, &["get", "namespaces", "-o", "name"]).contains("namespace/default"));
}

#[test]
fn injected_failures_are_retried_or_reported_as_the_api_would() {
    let api = KubeApi::start(Options::default());
    ok(&api, &["get", "namespaces"]); // discovery, so the counts below are the requests of one get

    // 429 carries Retry-After: kubectl (client-go) waits and tries again.
    api.fail_next(1, 429);
    let before = api.requests().len();
    ok(&api, &["get", "configmaps"]);
    let statuses: Vec<u16> = requests_since(&api, before)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);

    // A 503 without Retry-After is reported.
    api.fail_next(1, 503);
    let stderr = fails(&api, &["get", "configmaps"]);
    assert!(
        stderr
            .contains("(ServiceUnavailable): the server is currently unable to handle the request"),
        "{stderr}"
    );
    ok(&api, &["get", "configmaps"]);
}

#[test]
fn status_becomes_ready_after_reads_and_never_when_told() {
    let api = KubeApi::start(Options {
        ready_after: 2,
        ..Options::default()
    });
    ok(
        &api,
        &[
            "apply",
            "-f",
            &manifest(&api, "web.yaml", &deployment("web", 2)),
        ],
    );
    let available = || {
        ok(
            &api,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
        )
    };
    assert_eq!(available(), "", "first read");
    assert_eq!(available(), "", "second read");
    assert_eq!(available(), "2", "third read");

    let pod = manifest(
        &api,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    ok(&api, &["apply", "-f", &pod]);
    let ready = || {
        ok(
            &api,
            &[
                "get",
                "pod",
                "one",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        )
    };
    assert_eq!(ready(), "False");
    assert_eq!(ready(), "False");
    assert_eq!(ready(), "True");

    api.never_ready("Deployment", "default", "stuck");
    ok(
        &api,
        &[
            "apply",
            "-f",
            &manifest(&api, "stuck.yaml", &deployment("stuck", 1)),
        ],
    );
    for _ in 0..4 {
        assert_eq!(
            ok(
                &api,
                &[
                    "get",
                    "deployment",
                    "stuck",
                    "-o",
                    "jsonpath={.status.availableReplicas}"
                ]
            ),
            ""
        );
    }
    let stderr = fails(
        &api,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/stuck",
            "--timeout=1s",
        ],
    );
    assert!(
        stderr.contains("timed out waiting for the condition"),
        "{stderr}"
    );
}

#[test]
fn a_deleted_object_goes_after_its_reads_with_the_policy_recorded() {
    let api = KubeApi::start(Options {
        delete_after: 2,
        ..Options::default()
    });
    ok(
        &api,
        &[
            "apply",
            "-f",
            &manifest(&api, "web.yaml", &deployment("web", 1)),
        ],
    );
    ok(
        &api,
        &[
            "delete",
            "deployment",
            "web",
            "--cascade=foreground",
            "--wait=false",
        ],
    );
    let deleting = api
        .object("Deployment", "default", "web")
        .expect("still there");
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    let delete = api
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(
        delete.body.unwrap()["propagationPolicy"],
        json!("Foreground")
    );

    assert_eq!(
        ok(&api, &["get", "deployment", "web", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        ok(&api, &["get", "deployment", "web", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    let stderr = fails(&api, &["get", "deployment", "web", "-o", "name"]);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

#[test]
fn patches_merge_as_kubectl_expects() {
    let api = KubeApi::start(Options::default());
    ok(
        &api,
        &[
            "apply",
            "-f",
            &manifest(&api, "web.yaml", &deployment("web", 1)),
        ],
    );

    // Strategic merge: containers merge by name.
    let sidecar =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"collector","image":"busybox"}]}}}}"#;
    ok(&api, &["patch", "deployment", "web", "-p", sidecar]);
    let names = ok(
        &api,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}",
        ],
    );
    assert_eq!(names, "web collector");

    ok(
        &api,
        &[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"front"}}}"#,
        ],
    );
    ok(
        &api,
        &[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ],
    );
    let web = get_json(&api, &["deployment", "web"]);
    assert_eq!(web["metadata"]["labels"]["tier"], json!("front"));
    assert_eq!(web["spec"]["replicas"], json!(4));

    let discovered = ok(&api, &["api-resources", "--api-group=apps", "-o", "name"]);
    for name in [
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "daemonsets.apps",
    ] {
        assert!(discovered.lines().any(|l| l == name), "{discovered}");
    }
}
