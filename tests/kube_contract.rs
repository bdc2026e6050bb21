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
    let out = kubectl(&api, &["version", "-o", "json"]);
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for r in api.requests() {
        eprintln!("{} {} {:?} {}", r.method, r.path, r.query, r.status);
    }
}
