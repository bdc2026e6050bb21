//! The Kubernetes API contract server (`tests/support/kube`) proven with the real kubectl.

mod support;

use std::process::{Command, Output};

use support::kube::{KubeApi, Options};

fn kubectl(api: &KubeApi, args: &[&str]) -> Output {
    let cache = api.kubeconfig_path().with_file_name("cache");
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(api.kubeconfig_path())
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("kubectl runs")
}

#[test]
fn explore() {
    let api = KubeApi::start(Options::default());
    let dir = api.kubeconfig_path().parent().unwrap().to_path_buf();
    std::fs::write(dir.join("web.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n").unwrap();
    let f = dir.join("web.yaml"); let f = f.to_str().unwrap();
    for args in [
        vec!["apply", "-f", f],
        vec!["apply", "-f", f],
        vec!["apply", "--server-side", "-f", f],
        vec!["get", "deployment", "web", "-o", "json"],
        vec!["get", "deployments"],
        vec!["scale", "deployment/web", "--replicas=3"],
        vec!["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"],
        vec!["wait", "--for=condition=Available", "deployment/web", "--timeout=10s"],
        vec!["delete", "deployment", "web"],
        vec!["get", "deployment", "web"],
    ] {
        let n = api.requests().len();
        let out = kubectl(&api, &args);
        eprintln!("=== {:?} -> {:?}\nSTDOUT {}\nSTDERR {}", args, out.status.code(), String::from_utf8_lossy(&out.stdout).chars().take(1500).collect::<String>(), String::from_utf8_lossy(&out.stderr));
        for r in &api.requests()[n..] { eprintln!("  {} {} {:?} {:?} {}", r.method, r.path, r.query, r.content_type, r.status); }
    }
}
