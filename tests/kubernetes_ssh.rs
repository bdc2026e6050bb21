//! The 2016 Kubernetes plugin end to end: `windlass deploy` of a seed-like blueprint (a
//! `cloudify.kubernetes.Master` and `cloudify.kubernetes.MicroService`s) runs the real kubectl on
//! the "master" — Debian's OpenSSH server on 127.0.0.1 (`support/sshd.rs`) — against the
//! Kubernetes API contract server (`support/kube/`). The master's kubectl finds the contract
//! server the way kubectl on a real master finds its cluster, through its environment: the test
//! server's `sshd_config` sets `KUBECONFIG` (and `KUBECACHEDIR`) for the commands it runs.
//!
//! Covered: overrides putting `%{management_ip}` and `%{deployment.id}` into the collector's
//! environment (seen in the API's stored object), runtime properties of what was applied,
//! `kube_scale` `+1`, `-1`, `3` and below zero (by node and by Deployment name, with the
//! workflow's SSH parameters and with the master's), override errors at deploy, unknown and
//! changed host keys, a key the server refuses, and undeploy deleting the objects.

#[path = "support/sshd.rs"]
mod sshd;

mod common;
mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use common::Sandbox;
use sshd::Sshd;
use support::kube::{KubeApi, Options};

const BLUEPRINT: &str = r#"
tosca_definitions_version: cloudify_dsl_1_3
imports:
  - http://www.getcloudify.org/spec/cloudify/4.5/types.yaml
  - plugin:cloudify-kubernetes-plugin
inputs:
  port: { type: integer }
  user: { type: string }
  key: { type: string, default: '' }
  keyfile: { type: string, default: '' }
  known_hosts: { type: string }
  overrides:
    default:
      - "['spec']['template']['spec']['containers'][1]['env'][0]['value'] = '%{management_ip}'"
      - "['spec']['template']['spec']['containers'][1]['env'][2]['value'] = '%{deployment.id}'"
node_templates:
  kube_master:
    type: cloudify.kubernetes.Master
    properties:
      ip: 127.0.0.1
      ssh_port: { get_input: port }
      ssh_user: { get_input: user }
      ssh_key: { get_input: key }
      ssh_keyfilename: { get_input: keyfile }
      known_hosts_file: { get_input: known_hosts }
  nodejs_app:
    type: cloudify.kubernetes.MicroService
    properties:
      name: nodejs
      config_files:
        - file: resources/nodejs.yaml
          overrides: { get_input: overrides }
    relationships:
      - { type: cloudify.kubernetes.relationships.connected_to_master, target: kube_master }
  nodejs_service:
    type: cloudify.kubernetes.MicroService
    properties:
      name: nodejs
      config:
        apiVersion: v1
        kind: Service
        metadata: { name: nodejs }
        spec:
          selector: { app: nodejs }
          ports: [{ port: 3000, targetPort: 3000 }]
    relationships:
      - { type: cloudify.kubernetes.relationships.connected_to_master, target: kube_master }
      - { type: cloudify.relationships.depends_on, target: nodejs_app }
"#;

/// A master (sshd whose commands reach the contract server) and a sandbox with the blueprint.
struct Fixture {
    api: KubeApi,
    server: Sshd,
    sb: Sandbox,
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("windlass-kssh-{name}-{}", std::process::id()))
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let api = KubeApi::start(Options {
            ready_after: 0,
            ..Options::default()
        });
        let cache = api.kubeconfig_path().with_file_name("cache");
        let server = Sshd::start_with(
            &scratch(name),
            &format!(
                "SetEnv KUBECONFIG={} KUBECACHEDIR={}",
                api.kubeconfig_path().display(),
                cache.display()
            ),
        );
        let sb = Sandbox::new(&format!("kssh-{name}"));
        sb.file("blueprint.yaml", BLUEPRINT);
        std::fs::create_dir_all(sb.dir.join("resources")).unwrap();
        let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("blueprints/kubernetes-autoscale/resources/nodejs.yaml");
        std::fs::copy(seed, sb.dir.join("resources/nodejs.yaml")).unwrap();
        Fixture { api, server, sb }
    }

    /// Inputs that log in with the ed25519 key's text and a known_hosts file that knows the
    /// server, with `extra` laid over them.
    fn inputs(&self, extra: Json) -> String {
        let mut inputs = json!({
            "port": self.server.port,
            "user": self.server.user,
            "key": self.server.client_key("ed25519").private_text(),
            "known_hosts": self.server.known_hosts().display().to_string(),
        });
        for (k, v) in extra.as_object().unwrap() {
            inputs[k] = v.clone();
        }
        inputs.to_string()
    }

    fn deploy(&self, id: &str, inputs: &str) -> std::process::Output {
        self.sb.run(&[
            "deploy",
            "blueprint.yaml",
            "-d",
            id,
            "-i",
            inputs,
            "--management-ip",
            "192.0.2.7",
        ])
    }

    fn replicas(&self) -> i64 {
        self.api
            .object("Deployment", "default", "nodejs")
            .expect("the Deployment exists")["spec"]["replicas"]
            .as_i64()
            .unwrap()
    }

    fn instance(&self, id: &str, node: &str) -> Json {
        self.sb
            .instances(id)
            .into_iter()
            .find(|i| i["node_id"] == node)
            .unwrap()
    }
}

#[test]
fn deploys_scales_and_undeploys_the_seed_microservice() {
    let f = Fixture::new("seed");
    let deployed = f.deploy("demo", &f.inputs(json!({})));
    assert!(
        deployed.status.success(),
        "deploy: {}\nsshd: {}",
        common::stderr(&deployed),
        f.server.log()
    );

    // The overrides reached the API: the collector's environment has the management IP and
    // the deployment id.
    let d = f.api.object("Deployment", "default", "nodejs").unwrap();
    let env = &d["spec"]["template"]["spec"]["containers"][1]["env"];
    assert_eq!(
        env[0],
        json!({"name": "MANAGEMENT_IP", "value": "192.0.2.7"})
    );
    assert_eq!(env[2], json!({"name": "DEPLOYMENT_ID", "value": "demo"}));
    assert!(f.api.object("Service", "default", "nodejs").is_some());

    // What was applied is in the runtime properties.
    let app = f.instance("demo", "nodejs_app");
    assert_eq!(
        app["runtime_properties"]["applied"],
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "nodejs",
                "namespace": "default", "replicas": 1}])
    );
    assert_eq!(app["runtime_properties"]["replicas"], 1);
    let service = f.instance("demo", "nodejs_service");
    assert_eq!(
        service["runtime_properties"]["applied"][0]["kind"],
        "Service"
    );
    let events = f.sb.ok(&["events", "demo", "--json"]);
    let key = f.server.client_key("ed25519").private_text();
    assert!(
        !events.contains(key.lines().nth(1).unwrap()),
        "a line of the key leaked into events"
    );
    assert!(events.contains("kubectl apply -f - -o json"), "{events}");

    // kube_scale by node, with the workflow's own SSH parameters (the seed's form).
    let keyfile = f.server.client_key("rsa").path.display().to_string();
    let user = f.server.user.clone();
    let scale_with = |name: &str, amount: &str, key: Option<&str>| {
        let mut args = vec!["run", "demo", "kube_scale", "-p"];
        let name = format!("name={name}");
        let amount = format!("amount={amount}");
        let user = format!("ssh_user={user}");
        let key = key.map(|k| format!("ssh_keyfilename={k}"));
        args.extend([name.as_str(), "-p", amount.as_str()]);
        if let Some(key) = &key {
            args.extend(["-p", "master=kube_master", "-p", &user, "-p", key]);
        }
        f.sb.run(&args)
    };
    let scale = |name: &str, amount: &str, with_ssh: bool| {
        scale_with(name, amount, with_ssh.then_some(keyfile.as_str()))
    };
    // The workflow's key is the one used: one the server does not know is refused.
    let stranger = sshd::keygen("ed25519", &f.sb.dir.join("stranger"));
    let out = scale_with(
        "nodejs_app",
        "+1",
        Some(&stranger.path.display().to_string()),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("refused the private key"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(f.replicas(), 1);
    let out = scale("nodejs_app", "+1", true);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(f.replicas(), 2);
    assert_eq!(
        f.instance("demo", "nodejs_app")["runtime_properties"]["replicas"],
        2
    );
    let events = f.sb.ok(&["events", "demo"]);
    assert!(events.contains("nodejs_app: replicas 1 → 2"), "{events}");

    // By the Deployment's name, with the master's own login.
    let out = scale("nodejs", "-1", false);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(f.replicas(), 1);
    // The microservice that applied it keeps the count.
    assert_eq!(
        f.instance("demo", "nodejs_app")["runtime_properties"]["replicas"],
        1
    );
    let out = scale("nodejs_app", "3", false);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(f.replicas(), 3);
    assert!(
        f.sb.ok(&["events", "demo"])
            .contains("nodejs_app: replicas 1 → 3")
    );

    // Below zero: refused, nothing changes.
    let out = scale("nodejs_app", "-5", true);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        err.contains(
            "nodejs_app: replicas 3 -5 would be -2: a Deployment cannot have fewer than 0 replicas"
        ),
        "{err}"
    );
    assert_eq!(f.replicas(), 3);
    assert_eq!(
        f.instance("demo", "nodejs_app")["runtime_properties"]["replicas"],
        3
    );

    // A Deployment kubectl does not find: its stderr is quoted.
    let out = scale("nosuch", "+1", false);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.contains(r#"Error from server (NotFound): deployments.apps "nosuch" not found"#),
        "{err}"
    );

    let undeployed = f.sb.run(&["undeploy", "demo"]);
    assert!(
        undeployed.status.success(),
        "undeploy: {}",
        common::stderr(&undeployed)
    );
    assert!(f.api.object("Deployment", "default", "nodejs").is_none());
    assert!(f.api.object("Service", "default", "nodejs").is_none());
}

#[test]
fn override_errors_fail_the_deploy_before_anything_is_applied() {
    let f = Fixture::new("overrides");
    let missing = f.deploy(
        "missing",
        &f.inputs(json!({"overrides": [
            "['spec']['template']['spec']['containers'][5]['env'][0]['value'] = 'x'"]})),
    );
    assert_eq!(missing.status.code(), Some(1));
    let err = common::stderr(&missing);
    assert!(
        err.contains(
            "resources/nodejs.yaml: override `['spec']['template']['spec']['containers'][5]"
        ),
        "{err}"
    );
    assert!(
        err.contains("spec.template.spec.containers[5]: the list has 2 items"),
        "{err}"
    );

    let malformed = f.deploy(
        "malformed",
        &f.inputs(json!({"overrides": ["['spec']['replicas' = 2"]})),
    );
    // A malformed override is the blueprint's error: refused before a deployment exists, at
    // the node, naming the override.
    assert_eq!(malformed.status.code(), Some(1));
    let err = common::stderr(&malformed);
    assert!(err.contains("config_files[0].overrides[0]"), "{err}");
    assert!(err.contains("override `['spec']['replicas' = 2`"), "{err}");
    assert!(f.api.object("Deployment", "default", "nodejs").is_none());
    assert!(!f.sb.ok(&["list"]).contains("malformed"));

    // The failed deployment undeploys: nothing was applied, so there is nothing to delete.
    let out = f.sb.run(&["undeploy", "missing"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
fn unknown_and_changed_host_keys_and_a_refused_key_stop_the_deploy() {
    let f = Fixture::new("keys");
    let empty = f.sb.dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = f.deploy(
        "unknown",
        &f.inputs(json!({"known_hosts": empty.display().to_string()})),
    );
    assert_eq!(unknown.status.code(), Some(1));
    let err = common::stderr(&unknown);
    assert!(err.contains("is not in"), "{err}");
    assert!(err.contains(&f.server.host_key().fingerprint()), "{err}");

    let other = sshd::keygen("ed25519", &f.sb.dir.join("other_host"));
    let changed_file = f.sb.dir.join("changed_known_hosts");
    std::fs::write(&changed_file, f.server.known_hosts_line(&other)).unwrap();
    let changed = f.deploy(
        "changed",
        &f.inputs(json!({"known_hosts": changed_file.display().to_string()})),
    );
    assert_eq!(changed.status.code(), Some(1));
    assert!(
        common::stderr(&changed).contains("HOST KEY CHANGED"),
        "{}",
        common::stderr(&changed)
    );

    let stranger = sshd::keygen("ed25519", &f.sb.dir.join("stranger"));
    let refused = f.deploy(
        "refused",
        &f.inputs(json!({"key": "", "keyfile": stranger.path.display().to_string()})),
    );
    assert_eq!(refused.status.code(), Some(1));
    let err = common::stderr(&refused);
    assert!(err.contains("refused the private key"), "{err}");
    assert!(f.api.object("Deployment", "default", "nodejs").is_none());
}

#[test]
fn the_example_blueprint_still_validates() {
    let sb = Sandbox::new("kssh-example");
    let bp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("blueprints/kubernetes-autoscale/blueprint.yaml");
    sb.ok(&["validate", bp.to_str().unwrap()]);
}
