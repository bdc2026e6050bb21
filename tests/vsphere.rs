//! The `vsphere` plugin against the vSphere Automation API contract server
//! (`tests/support/vsphere`, loopback HTTPS with a throwaway CA, or plain HTTP), with the real
//! windlass binary: deploy and undeploy; `scale +N` taking pooled VMs first, then cloning
//! round-robin from after the node's last host (kept across commands), skipping a host that
//! went disconnected and refusing, before cloning anything, when every host is full; `-N`
//! powering pooled VMs off and deleting clones; a parallel scale-out that never picks one VM
//! twice or overfills a host; re-login after the session expires; 503 retried; TLS verified
//! unless `insecure`. The password is never in any event or CLI output.
//!
//! Follow-ups: credentials from `get_secret` through deploy, scale and undeploy, never in any
//! output nor in the state file's bytes; a process SIGKILLed while vCenter clones or powers on
//! (answers held by the server) or while the guest's IP is awaited, then `resume`: no second
//! clone, no pooled VM held twice, the store's allocations matching the instances; `cancel`
//! and `ip_timeout` ending the IP wait with a clear error, `undeploy` still cleaning up; a pool
//! found empty is not listed again by the same execution; a pool prefix matching the template
//! never hands the template out.

mod common;
mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Sandbox, stderr};
use serde_json::Value as Json;
use support::vsphere::{Options, VsphereApi};

/// Everything a test printed or could print, checked for the password at the end.
struct Seen<'a> {
    sb: &'a Sandbox,
    api: &'a VsphereApi,
    id: &'a str,
    texts: Vec<String>,
    /// `WINDLASS_SECRETS_KEY` for every command, when the test uses secrets.
    key: Option<PathBuf>,
}

impl<'a> Seen<'a> {
    fn new(sb: &'a Sandbox, api: &'a VsphereApi, id: &'a str) -> Self {
        Seen {
            sb,
            api,
            id,
            texts: Vec::new(),
            key: None,
        }
    }

    /// Commands use the secrets key file `key` (it need not exist yet).
    fn with_key(mut self, key: PathBuf) -> Self {
        self.key = Some(key);
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.sb.command(args);
        if let Some(key) = &self.key {
            c.env("WINDLASS_SECRETS_KEY", key);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `secrets set NAME -` with `value` on standard input (never on a command line).
    fn set_secret(&mut self, name: &str, value: &str) {
        let out = common::output_with_stdin(
            self.command(&["secrets", "set", name, "-"]),
            value.as_bytes(),
        );
        let (ok, _, e) = self.keep(&out);
        assert!(ok, "secrets set {name}: {e}");
    }

    fn keep(&mut self, out: &Output) -> (bool, String, String) {
        let o = String::from_utf8_lossy(&out.stdout).into_owned();
        let e = stderr(out);
        self.texts.push(o.clone());
        self.texts.push(e.clone());
        (out.status.success(), o, e)
    }

    /// Run; it must succeed.
    fn ok(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        let (ok, o, e) = self.keep(&out);
        assert!(ok, "{args:?}: {e}");
        o
    }

    /// Run; it must fail. Returns stderr.
    fn fails(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        let (ok, _, e) = self.keep(&out);
        assert!(!ok, "{args:?} should fail");
        e
    }

    fn instances(&mut self) -> Vec<Json> {
        let text = self.ok(&["instances", self.id, "--json"]);
        serde_json::from_str::<Json>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Keep what the deployment shows now: its events, outputs, executions and instances.
    fn collect(&mut self) {
        let id = self.id;
        for args in [
            vec!["events", id, "--json"],
            vec!["events", id],
            vec!["outputs", id, "--json"],
            vec!["outputs", id],
            vec!["executions", id, "--json"],
            vec!["instances", id, "--json"],
        ] {
            let out = self.run(&args);
            self.keep(&out);
        }
    }

    /// The password appears nowhere: every output so far, the events, instances and outputs.
    fn check(mut self) {
        self.collect();
        let password = self.api.password();
        for t in &self.texts {
            assert!(!t.contains(password), "the password was shown: {t}");
        }
    }
}

fn inputs(sb: &Sandbox, api: &VsphereApi) {
    sb.file(
        "inputs.yaml",
        &format!(
            "vcenter: '{}'\nusername: '{}'\npassword: '{}'\n",
            api.host(),
            api.username(),
            api.password()
        ),
    );
    sb.file("ca.pem", api.ca_pem());
}

/// A blueprint with one `dea` node; `extra` adds properties (8 spaces in).
fn blueprint(sb: &Sandbox, connection_extra: &str, extra: &str, instances: u32) {
    sb.file(
        "bp.yaml",
        &format!(
            "tosca_definitions_version: cloudify_dsl_1_4
imports:
  - cloudify/types/types.yaml
  - plugin:vsphere
inputs:
  vcenter: {{ type: string }}
  username: {{ type: string }}
  password: {{ type: string }}
node_templates:
  dea:
    type: windlass.nodes.vsphere.Server
    properties:
      connection_config:
        host: {{ get_input: vcenter }}
        username: {{ get_input: username }}
        password: {{ get_input: password }}
{connection_extra}      template: dea-template
      name_prefix: dea-
{extra}    capabilities:
      scalable:
        properties: {{ default_instances: {instances}, max_instances: 50 }}
outputs:
  ips:
    value: {{ get_attribute: [dea, ip] }}
"
        ),
    );
}

const CA: &str = "        ca_cert: ca.pem\n";

/// Hosts `esx-a`, `esx-b`, `esx-c` and the template on `esx-a`.
fn inventory(api: &VsphereApi) {
    for h in ["esx-a", "esx-b", "esx-c"] {
        api.add_host(h);
    }
    api.add_vm("dea-template", "esx-a", false, true);
}

/// A contract server over plain HTTP whose guests show their IP after `ip_after` polls.
fn plain(ip_after: u32) -> Options {
    Options {
        tls: false,
        ip_after,
        ..Options::default()
    }
}

/// A contract server with the [`inventory`] and the powered-off VMs `pooled` (name, host).
fn vcenter(options: Options, pooled: &[(&str, &str)]) -> VsphereApi {
    let api = VsphereApi::start(options);
    inventory(&api);
    for (name, host) in pooled {
        api.add_vm(name, host, false, false);
    }
    api
}

/// A sandbox holding the server's `inputs.yaml` and CA.
fn sandbox(name: &str, api: &VsphereApi) -> Sandbox {
    let sb = Sandbox::new(name);
    inputs(&sb, api);
    sb
}

/// `deploy bp.yaml -d ID -i inputs.yaml`.
fn deploy(id: &str) -> [&str; 6] {
    ["deploy", "bp.yaml", "-d", id, "-i", "inputs.yaml"]
}

/// Guest identity polls so far.
fn identity_polls(api: &VsphereApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.path.ends_with("/guest/identity"))
        .count()
}

/// The instances' `(vm_name, vm_host, pooled)`.
fn held(instances: &[Json]) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = instances
        .iter()
        .map(|i| {
            let rp = &i["runtime_properties"];
            (
                rp["vm_name"].as_str().unwrap_or("").to_string(),
                rp["vm_host"].as_str().unwrap_or("").to_string(),
                rp["pooled"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    v.sort();
    v
}

fn clones(api: &VsphereApi) -> Vec<support::vsphere::Vm> {
    api.vms()
        .into_iter()
        .filter(|v| v.name.starts_with("dea-dea_"))
        .collect()
}

fn clone_requests(api: &VsphereApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/vcenter/vm")
        .count()
}

#[test]
fn deploy_clones_waits_for_the_ip_and_undeploy_deletes() {
    let api = vcenter(Options::default(), &[]);
    let sb = sandbox("vsphere-deploy", &api);
    blueprint(&sb, CA, "", 2);
    let mut seen = Seen::new(&sb, &api, "v");
    seen.ok(&deploy("v"));

    let made = clones(&api);
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made.iter().all(|v| v.power_state == "POWERED_ON"));
    let hosts: HashSet<_> = made.iter().map(|v| v.host.as_str()).collect();
    assert_eq!(hosts.len(), 2, "round-robin over hosts: {made:?}");
    for i in seen.instances() {
        let rp = &i["runtime_properties"];
        let vm = api
            .vm(rp["vm_name"].as_str().unwrap())
            .expect("the VM exists");
        assert_eq!(rp["vm_id"], Json::String(vm.id.clone()));
        assert_eq!(rp["vm_host"], Json::String(vm.host.clone()));
        assert_eq!(rp["pooled"], Json::Bool(false));
        assert!(rp["ip"].as_str().unwrap().starts_with("10.30."), "{rp}");
        assert_eq!(i["state"], "started");
    }
    // The clone asked for the host it was placed on, the template's id as source.
    let template = api.vm("dea-template").unwrap().id;
    for r in api
        .requests()
        .iter()
        .filter(|r| r.path == "/api/vcenter/vm" && r.method == "POST")
    {
        let body = r.body.as_ref().unwrap();
        assert_eq!(body["source"], Json::String(template.clone()));
        assert_eq!(body["power_on"], Json::Bool(true));
        assert!(
            body["placement"]["host"]
                .as_str()
                .unwrap()
                .starts_with("host-")
        );
    }
    // Guest identity was polled until the IP showed.
    let polls = identity_polls(&api);
    assert!(polls >= 2 * 3, "{polls} polls");
    assert_eq!(api.open_sessions(), 0, "the batch's session was deleted");

    seen.ok(&["undeploy", "v"]);
    assert!(clones(&api).is_empty(), "clones deleted");
    assert!(api.vm("dea-template").is_some(), "the template stays");
    assert_eq!(api.open_sessions(), 0);
    seen.check();
}

#[test]
fn scale_takes_pooled_vms_first_then_clones_round_robin_and_scale_in_returns_them() {
    let api = vcenter(
        Options::default(),
        &[("dea-node-1", "esx-b"), ("dea-node-2", "esx-c")],
    );
    api.add_vm("dea-node-3", "esx-c", true, false); // running: not free
    let sb = sandbox("vsphere-scale", &api);
    blueprint(&sb, CA, "      pool: dea-node-\n", 1);
    let mut seen = Seen::new(&sb, &api, "s");
    seen.ok(&deploy("s"));
    assert_eq!(
        held(&seen.instances()),
        vec![("dea-node-1".into(), "esx-b".into(), true)]
    );
    assert_eq!(api.vm("dea-node-1").unwrap().power_state, "POWERED_ON");
    assert_eq!(clone_requests(&api), 0);

    // +2: the last free pooled VM, then a clone onto the first host (no last host yet).
    seen.ok(&["scale", "s", "dea", "+2"]);
    let now = held(&seen.instances());
    assert_eq!(now.len(), 3);
    assert!(now.contains(&("dea-node-2".into(), "esx-c".into(), true)));
    let made = clones(&api);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].host, "esx-a");

    // Separate commands continue after the last host.
    seen.ok(&["scale", "s", "dea", "+1"]);
    let mut hosts: Vec<_> = clones(&api).into_iter().map(|v| v.host).collect();
    hosts.sort();
    assert_eq!(hosts, ["esx-a", "esx-b"]);
    seen.ok(&["scale", "s", "dea", "+1"]);
    seen.ok(&["scale", "s", "dea", "+1"]);
    let mut hosts: Vec<_> = clones(&api).into_iter().map(|v| v.host).collect();
    hosts.sort();
    assert_eq!(
        hosts,
        ["esx-a", "esx-a", "esx-b", "esx-c"],
        "wrapped around"
    );

    // -3 removes the newest three: clones, deleted.
    seen.ok(&["scale", "s", "dea", "-3"]);
    assert_eq!(clones(&api).len(), 1);
    // -2 removes the pair the +2 added: the clone is deleted, the pooled VM powered off and
    // left in place.
    seen.ok(&["scale", "s", "dea", "-2"]);
    assert!(clones(&api).is_empty());
    assert_eq!(
        held(&seen.instances()),
        vec![("dea-node-1".into(), "esx-b".into(), true)]
    );
    let back = api.vm("dea-node-2").expect("pooled VMs are never deleted");
    assert_eq!(back.power_state, "POWERED_OFF");
    // A freed pooled VM is used again before cloning.
    seen.ok(&["scale", "s", "dea", "+1"]);
    assert!(clones(&api).is_empty());
    assert_eq!(held(&seen.instances()).len(), 2);
    assert_eq!(api.vm("dea-node-2").unwrap().power_state, "POWERED_ON");

    seen.ok(&["undeploy", "s"]);
    for n in ["dea-node-1", "dea-node-2"] {
        assert_eq!(api.vm(n).unwrap().power_state, "POWERED_OFF");
    }
    assert_eq!(
        api.vm("dea-node-3").unwrap().power_state,
        "POWERED_ON",
        "never ours"
    );
    seen.check();
}

#[test]
fn a_disconnected_host_is_skipped_and_every_host_full_clones_nothing() {
    let api = vcenter(plain(1), &[("dea-node-1", "esx-a")]);
    let sb = sandbox("vsphere-full", &api);
    blueprint(
        &sb,
        "",
        "      pool: [dea-node-1]\n      max_vms_per_host: 1\n",
        1,
    );
    let mut seen = Seen::new(&sb, &api, "f");
    seen.ok(&deploy("f"));
    // esx-a holds the pooled VM: the first clone skips it (full), goes to esx-b.
    seen.ok(&["scale", "f", "dea", "+1"]);
    assert_eq!(clones(&api)[0].host, "esx-b");
    // esx-c goes away between scales: nothing left.
    api.set_host_state("esx-c", "DISCONNECTED", "POWERED_ON");
    let before = clone_requests(&api);
    let err = seen.fails(&["scale", "f", "dea", "+1"]);
    assert!(
        err.contains("no host can take another VM of node `dea`"),
        "{err}"
    );
    assert!(err.contains("esx-a is full (1/1 VMs)"), "{err}");
    assert!(err.contains("esx-c is DISCONNECTED"), "{err}");
    assert!(err.contains("nothing was cloned"), "{err}");
    assert_eq!(clone_requests(&api), before, "no clone was asked for");
    assert_eq!(clones(&api).len(), 1);
    assert_eq!(
        seen.instances().len(),
        2,
        "the failed scale-out rolled back"
    );

    // esx-c back: it is the next host after esx-b.
    api.set_host_state("esx-c", "CONNECTED", "POWERED_ON");
    seen.ok(&["scale", "f", "dea", "+1"]);
    let hosts: HashSet<_> = clones(&api).into_iter().map(|v| v.host).collect();
    assert_eq!(hosts, HashSet::from(["esx-b".to_string(), "esx-c".into()]));
    // esx-b disconnected: the next scale skips it and, all others full, fails.
    api.set_host_state("esx-b", "DISCONNECTED", "POWERED_ON");
    seen.fails(&["scale", "f", "dea", "+1"]);
    api.set_host_state("esx-b", "CONNECTED", "POWERED_ON");
    seen.ok(&["undeploy", "f"]);
    assert!(clones(&api).is_empty());
    seen.check();
}

#[test]
fn a_parallel_scale_out_never_picks_a_vm_twice_or_overfills_a_host() {
    let api = vcenter(plain(2), &[]);
    for (i, host) in ["esx-a", "esx-b", "esx-a", "esx-c", "esx-b"]
        .iter()
        .enumerate()
    {
        api.add_vm(&format!("dea-node-{i}"), host, false, false);
    }
    let sb = sandbox("vsphere-parallel", &api);
    blueprint(
        &sb,
        "",
        "      pool: dea-node-\n      max_vms_per_host: 4\n",
        1,
    );
    let mut seen = Seen::new(&sb, &api, "p");
    seen.ok(&deploy("p"));
    seen.ok(&["scale", "p", "dea", "+10", "--parallelism", "8"]);
    let now = held(&seen.instances());
    assert_eq!(now.len(), 11);
    let names: HashSet<_> = now.iter().map(|(n, _, _)| n.clone()).collect();
    assert_eq!(names.len(), 11, "no VM picked twice: {now:?}");
    assert_eq!(
        now.iter().filter(|(_, _, p)| *p).count(),
        5,
        "the pool first"
    );
    let mut per_host: HashMap<String, usize> = HashMap::new();
    for (_, h, _) in &now {
        *per_host.entry(h.clone()).or_default() += 1;
    }
    assert!(per_host.values().all(|&n| n <= 4), "{per_host:?}");
    assert_eq!(per_host.values().sum::<usize>(), 11);
    // What vCenter holds agrees with what the instances say.
    let on: Vec<_> = api
        .vms()
        .into_iter()
        .filter(|v| v.power_state == "POWERED_ON")
        .collect();
    assert_eq!(on.len(), 11);
    // 12 would need a 13th slot: 3 hosts × 4 = 12 holds, 13 does not.
    seen.ok(&["scale", "p", "dea", "+1"]);
    let err = seen.fails(&["scale", "p", "dea", "+1"]);
    assert!(err.contains("is full (4/4 VMs)"), "{err}");
    seen.ok(&["undeploy", "p"]);
    assert!(clones(&api).is_empty());
    seen.check();
}

#[test]
fn an_expired_session_logs_in_again_and_503_is_retried() {
    let api = vcenter(
        Options {
            ip_after: 6,
            ..Options::default()
        },
        &[],
    );
    let sb = sandbox("vsphere-session", &api);
    blueprint(&sb, CA, "", 1);
    let mut seen = Seen::new(&sb, &api, "e");
    api.fail_next(2, 503);
    let child = sb.spawn(&deploy("e"));
    // Expire the session while start polls the guest identity.
    sb.wait_for(|| identity_polls(&api) >= 2);
    api.expire_sessions();
    let out = child.wait_with_output().unwrap();
    let (ok, _, e) = seen.keep(&out);
    assert!(ok, "{e}");
    let log = api.requests();
    // The call answered 401 is followed by a login and then sent again, successfully.
    let denied = log
        .iter()
        .position(|r| r.status == 401)
        .expect("a 401 was answered");
    let (again, retried) = (&log[denied + 1], &log[denied + 2]);
    assert_eq!(
        (again.method.as_str(), again.path.as_str(), again.status),
        ("POST", "/api/session", 201)
    );
    assert_eq!(retried.path, log[denied].path);
    assert!(
        retried.status == 200 || retried.status == 503,
        "{retried:?}"
    );
    // Each operation (create, then start) had a session of its own, deleted at its end.
    assert_eq!(api.open_sessions(), 0);
    assert_eq!(
        log.iter()
            .filter(|r| r.status == 503 && !r.path.ends_with("/identity"))
            .count(),
        2,
        "two injected 503s"
    );
    let i = &seen.instances()[0];
    assert!(i["runtime_properties"]["ip"].as_str().is_some());
    seen.ok(&["undeploy", "e"]);
    seen.check();
}

#[test]
fn tls_is_verified_unless_insecure_and_a_refused_login_never_shows_the_password() {
    let api = vcenter(Options::default(), &[]);
    let sb = sandbox("vsphere-tls", &api);
    // No CA: the throwaway CA is not trusted.
    blueprint(&sb, "", "", 1);
    let mut seen = Seen::new(&sb, &api, "t");
    let err = seen.fails(&deploy("t"));
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(clones(&api).is_empty());
    seen.ok(&["undeploy", "t"]);

    // insecure: true works, and an event says TLS is not verified.
    blueprint(&sb, "        insecure: true\n", "", 1);
    seen.ok(&deploy("t"));
    let events = seen.ok(&["events", "t"]);
    assert!(events.contains("TLS verification of vCenter"), "{events}");
    seen.ok(&["undeploy", "t"]);
    seen.check();

    // A wrong password: refused, and neither it nor the right one is shown.
    let mut seen = Seen::new(&sb, &api, "w");
    blueprint(&sb, CA, "", 1);
    let wrong = "Wr0ng-pa55word-xyz";
    let err = seen.fails(&[
        "deploy",
        "bp.yaml",
        "-d",
        "w",
        "-i",
        "inputs.yaml",
        "-i",
        &format!("password={wrong}"),
    ]);
    assert!(err.contains("refused the login"), "{err}");
    assert!(!err.contains(wrong));
    let events = seen.ok(&["events", "w", "--json"]);
    assert!(!events.contains(wrong), "{events}");
    seen.check();
}

#[test]
fn the_vsphere_pool_example_validates() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args([
            "validate",
            "blueprints/vsphere-pool/blueprint.yaml",
            "-i",
            "vcenter=vc.example:443",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The benchmark (`cargo test --release --test vsphere -- --ignored --nocapture
/// scale_out_50`): `scale +50` with `--parallelism 25` against the contract server with the
/// latencies below — 20 staged pooled VMs, then 30 clones over 4 hosts. Prints the wall time
/// and the requests made per VM; the time is bound by the API's latencies (clone, power-on,
/// the guest's IP), not by windlass.
#[test]
#[ignore = "benchmark: run on demand"]
fn scale_out_50() {
    use std::time::{Duration, Instant};
    let latency = support::vsphere::Latency {
        session: Duration::from_millis(150),
        read: Duration::from_millis(40),
        clone: Duration::from_secs(5),
        power: Duration::from_millis(1500),
        delete: Duration::from_secs(1),
    };
    let api = VsphereApi::start(Options {
        ip_after: 6,
        latency,
        ..Options::default()
    });
    for h in ["esx-a", "esx-b", "esx-c", "esx-d"] {
        api.add_host(h);
    }
    api.add_vm("dea-template", "esx-a", false, true);
    for i in 0..20 {
        let host = ["esx-a", "esx-b", "esx-c", "esx-d"][i % 4];
        api.add_vm(&format!("dea-node-{i:02}"), host, false, false);
    }
    let sb = sandbox("vsphere-bench", &api);
    blueprint(
        &sb,
        CA,
        "      pool: dea-node-\n      max_vms_per_host: 20\n",
        0,
    );
    let mut seen = Seen::new(&sb, &api, "b");
    seen.ok(&deploy("b"));
    api.clear_requests();
    let began = Instant::now();
    seen.ok(&["scale", "b", "dea", "+50", "--parallelism", "25"]);
    let wall = began.elapsed();
    let log = api.requests();
    let held = held(&seen.instances());
    assert_eq!(held.len(), 50);
    assert_eq!(held.iter().filter(|(_, _, p)| *p).count(), 20);
    let count =
        |f: &dyn Fn(&support::vsphere::Request) -> bool| log.iter().filter(|r| f(r)).count();
    println!(
        "scale +50 (20 pooled, 30 clones, parallelism 25): {:.1} s wall, {} requests ({:.1} per VM): \
         {} logins, {} host lists, {} VM lists, {} clones, {} power calls, {} identity polls",
        wall.as_secs_f64(),
        log.len(),
        log.len() as f64 / 50.0,
        count(&|r| r.path == "/api/session" && r.method == "POST"),
        count(&|r| r.path == "/api/vcenter/host"),
        count(&|r| r.path == "/api/vcenter/vm" && r.method == "GET"),
        count(&|r| r.path == "/api/vcenter/vm" && r.method == "POST"),
        count(&|r| r.path.ends_with("/power")),
        count(&|r| r.path.ends_with("/identity")),
    );
}

/// Whether the state file or its WAL (or shared-memory index) holds `needle` anywhere.
fn state_files_hold(sb: &Sandbox, needle: &str) -> Vec<String> {
    ["state.db", "state.db-wal", "state.db-shm"]
        .into_iter()
        .filter(|f| {
            std::fs::read(sb.dir.join(f))
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .map(str::to_string)
        .collect()
}

/// What the store holds for each instance: `(instance, vm_name, host, pooled)`.
fn allocations(sb: &Sandbox, id: &str, instances: &[Json]) -> Vec<(String, String, String, bool)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = windlass::store::Store::open(sb.dir.join("state.db").to_str().unwrap())
            .await
            .unwrap();
        let mut found = Vec::new();
        for i in instances {
            let instance = i["id"].as_str().unwrap();
            let a = store
                .vsphere_allocation(id, instance)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{instance} holds no allocation"));
            found.push((a.instance_id, a.vm_name, a.host, a.pooled));
        }
        store.close().await;
        found.sort();
        found
    })
}

/// Every instance's runtime properties agree with vCenter and with the store, and no VM is
/// held twice.
fn consistent(sb: &Sandbox, api: &VsphereApi, id: &str, instances: &[Json]) {
    let mut expected = Vec::new();
    for i in instances {
        let rp = &i["runtime_properties"];
        assert_eq!(i["state"], "started", "{i}");
        let name = rp["vm_name"].as_str().unwrap();
        let vm = api
            .vm(name)
            .unwrap_or_else(|| panic!("{name} does not exist"));
        assert_eq!(rp["vm_id"], Json::String(vm.id.clone()), "{i}");
        assert_eq!(rp["vm_host"], Json::String(vm.host.clone()), "{i}");
        assert_eq!(vm.power_state, "POWERED_ON", "{name}");
        assert!(rp["ip"].as_str().is_some_and(|ip| !ip.is_empty()), "{i}");
        expected.push((
            i["id"].as_str().unwrap().to_string(),
            name.to_string(),
            vm.host.clone(),
            rp["pooled"].as_bool().unwrap(),
        ));
    }
    expected.sort();
    let names: HashSet<_> = expected.iter().map(|(_, n, _, _)| n.clone()).collect();
    assert_eq!(names.len(), expected.len(), "a VM held twice: {expected:?}");
    assert_eq!(allocations(sb, id, instances), expected);
}

#[test]
fn credentials_from_secrets_never_show_and_never_reach_the_state_file() {
    let api = vcenter(plain(1), &[("dea-node-1", "esx-b")]);
    let sb = Sandbox::new("vsphere-secrets");
    // No file of the blueprint's directory holds a credential: only the secrets do.
    sb.file(
        "bp.yaml",
        "tosca_definitions_version: cloudify_dsl_1_4
imports:
  - cloudify/types/types.yaml
  - plugin:vsphere
inputs:
  vcenter: { type: string }
node_templates:
  dea:
    type: windlass.nodes.vsphere.Server
    properties:
      connection_config:
        host: { get_input: vcenter }
        username: { get_secret: [vcenter, user] }
        password: { get_secret: vcenter_password }
      template: dea-template
      name_prefix: dea-
      pool: [dea-node-1]
    capabilities:
      scalable:
        properties: { default_instances: 1, max_instances: 10 }
outputs:
  ips:
    value: { get_attribute: [dea, ip] }
  login:
    value: { concat: [{ get_secret: [vcenter, user] }, ':', { get_secret: vcenter_password }] }
",
    );
    let key = sb.dir.join("keys/secrets.key");
    let mut seen = Seen::new(&sb, &api, "sec").with_key(key.clone());
    let user = serde_json::json!({ "user": api.username() }).to_string();
    seen.set_secret("vcenter", &user);
    seen.set_secret("vcenter_password", api.password());
    assert!(key.exists(), "the key is where WINDLASS_SECRETS_KEY says");

    let vcenter = format!("vcenter={}", api.host());
    seen.ok(&["deploy", "bp.yaml", "-d", "sec", "-i", &vcenter]);
    seen.ok(&["scale", "sec", "dea", "+2"]);
    assert_eq!(clones(&api).len(), 2, "logged in with the secrets");
    let now = seen.instances();
    assert_eq!(now.len(), 3);
    consistent(&sb, &api, "sec", &now);
    let outputs = seen.ok(&["outputs", "sec", "--json"]);
    assert!(outputs.contains("******:******"), "{outputs}");
    seen.ok(&["scale", "sec", "dea", "-2"]);
    assert!(clones(&api).is_empty());
    seen.collect();
    assert_eq!(
        state_files_hold(&sb, api.password()),
        Vec::<String>::new(),
        "the password is in the state file's bytes"
    );

    seen.ok(&["undeploy", "sec"]);
    assert_eq!(api.vm("dea-node-1").unwrap().power_state, "POWERED_OFF");
    assert_eq!(api.open_sessions(), 0);
    assert_eq!(state_files_hold(&sb, api.password()), Vec::<String>::new());
    seen.check();
}

#[test]
fn a_create_killed_while_vcenter_works_resumes_without_a_second_clone_or_pooled_vm() {
    let api = vcenter(
        plain(2),
        &[("dea-node-1", "esx-b"), ("dea-node-2", "esx-c")],
    );
    let sb = sandbox("vsphere-crash", &api);
    blueprint(&sb, "", "      pool: dea-node-\n", 1);
    let mut seen = Seen::new(&sb, &api, "k");
    seen.ok(&deploy("k"));

    // Killed once vCenter has powered the last pooled VM on and made two clones, before it
    // answered: nothing of it has an id in the instances yet.
    api.clear_requests();
    api.hold_changes(true);
    let mut child = sb.spawn(&["scale", "k", "dea", "+3", "--parallelism", "3"]);
    sb.wait_for(|| {
        let log = api.requests();
        let power = log
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/power"))
            .count();
        power >= 1 && clone_requests(&api) >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    api.hold_changes(false);
    assert_eq!(clones(&api).len(), 2);
    assert_eq!(api.vm("dea-node-2").unwrap().power_state, "POWERED_ON");
    seen.ok(&["resume", "k"]);
    let now = seen.instances();
    assert_eq!(now.len(), 4);
    consistent(&sb, &api, "k", &now);
    assert_eq!(clone_requests(&api), 2, "no VM cloned twice");
    assert_eq!(clones(&api).len(), 2);
    let pooled: HashSet<_> = held(&now)
        .into_iter()
        .filter(|(_, _, p)| *p)
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(
        pooled,
        HashSet::from(["dea-node-1".to_string(), "dea-node-2".into()])
    );

    // Killed while start waits for the guest's IP.
    api.clear_requests();
    api.set_ip_after(u32::MAX);
    let mut child = sb.spawn(&["scale", "k", "dea", "+1"]);
    sb.wait_for(|| identity_polls(&api) > 0);
    child.kill().unwrap();
    child.wait().unwrap();
    api.set_ip_after(2);
    seen.ok(&["resume", "k"]);
    let now = seen.instances();
    assert_eq!(now.len(), 5);
    consistent(&sb, &api, "k", &now);
    assert_eq!(
        clone_requests(&api),
        1,
        "the waiting clone is not made again"
    );
    assert_eq!(clones(&api).len(), 3);

    seen.ok(&["undeploy", "k"]);
    let mut left: Vec<_> = api
        .vms()
        .into_iter()
        .map(|v| (v.name, v.power_state))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ("dea-node-1".to_string(), "POWERED_OFF".to_string()),
            ("dea-node-2".into(), "POWERED_OFF".into()),
            ("dea-template".into(), "POWERED_OFF".into()),
        ]
    );
    seen.check();
}

#[test]
fn cancel_or_ip_timeout_ends_the_ip_wait_clearly_and_undeploy_still_cleans_up() {
    let api = vcenter(plain(u32::MAX), &[]);
    let sb = sandbox("vsphere-cancel", &api);
    blueprint(&sb, "", "", 1);
    let mut seen = Seen::new(&sb, &api, "c");
    let child = sb.spawn(&deploy("c"));
    sb.wait_for(|| identity_polls(&api) > 0);
    seen.ok(&["cancel", "c"]);
    let out = child.wait_with_output().unwrap();
    let (ok, _, err) = seen.keep(&out);
    assert!(!ok, "a cancelled deploy fails");
    assert!(err.contains("cancelled"), "{err}");
    let executions: Json = serde_json::from_str(&seen.ok(&["executions", "c", "--json"])).unwrap();
    assert!(
        executions
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["status"] == "cancelled"),
        "{executions}"
    );
    assert_eq!(clones(&api).len(), 1);
    seen.ok(&["undeploy", "c"]);
    assert!(clones(&api).is_empty(), "the clone is deleted");
    assert!(api.vm("dea-template").is_some());
    seen.check();

    // ip_timeout: the operation fails naming the VM and the setting; undeploy deletes it.
    blueprint(&sb, "", "      ip_timeout: 1\n", 1);
    let mut seen = Seen::new(&sb, &api, "t");
    let err = seen.fails(&deploy("t"));
    let made = clones(&api);
    assert_eq!(made.len(), 1);
    assert!(
        err.contains(&format!(
            "the guest of VM `{}` reported no IP within 1s (ip_timeout)",
            made[0].name
        )),
        "{err}"
    );
    seen.ok(&["undeploy", "t"]);
    assert!(clones(&api).is_empty());
    seen.check();
}

#[test]
fn a_pool_found_empty_is_not_listed_again_by_the_same_execution() {
    let api = vcenter(
        plain(1),
        &[("dea-node-1", "esx-b"), ("dea-node-2", "esx-c")],
    );
    let sb = sandbox("vsphere-pool-empty", &api);
    blueprint(&sb, "", "      pool: dea-node-\n", 1);
    let mut seen = Seen::new(&sb, &api, "m");
    seen.ok(&deploy("m"));
    let pool_listings = |api: &VsphereApi| {
        api.requests()
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && r.path == "/api/vcenter/vm"
                    && r.query.iter().any(|(k, _)| k == "hosts")
            })
            .count()
    };
    api.clear_requests();
    // One at a time: the first create takes dea-node-2, the second finds the pool empty and
    // clones; the three after it do not list the pool (3 healthy hosts, one call each).
    seen.ok(&["scale", "m", "dea", "+5", "--parallelism", "1"]);
    assert_eq!(held(&seen.instances()).len(), 6);
    assert_eq!(clones(&api).len(), 4);
    assert_eq!(pool_listings(&api), 2 * 3);
    // Scale-in frees dea-node-2 (the +5's first); a new execution lists the pool again.
    seen.ok(&["scale", "m", "dea", "-5"]);
    assert_eq!(api.vm("dea-node-2").unwrap().power_state, "POWERED_OFF");
    api.clear_requests();
    seen.ok(&["scale", "m", "dea", "+1"]);
    assert!(clones(&api).is_empty());
    assert_eq!(api.vm("dea-node-2").unwrap().power_state, "POWERED_ON");
    assert_eq!(pool_listings(&api), 3);
    seen.ok(&["undeploy", "m"]);
    seen.check();
}

#[test]
fn a_pool_prefix_matching_the_template_never_hands_the_template_out() {
    let api = VsphereApi::start(plain(1));
    for h in ["esx-a", "esx-b", "esx-c"] {
        api.add_host(h);
    }
    // A powered-off VM as the template, named with the pool's prefix: vCenter would power it on.
    api.add_vm("dea-template", "esx-a", false, false);
    api.add_vm("dea-node-1", "esx-b", false, false);
    let sb = sandbox("vsphere-pool-template", &api);
    blueprint(&sb, "", "      pool: dea-\n", 1);
    let mut seen = Seen::new(&sb, &api, "x");
    seen.ok(&deploy("x"));
    seen.ok(&["scale", "x", "dea", "+2"]);
    let now = held(&seen.instances());
    assert_eq!(now.len(), 3);
    assert!(
        now.iter().all(|(n, _, _)| n != "dea-template"),
        "the template was taken: {now:?}"
    );
    assert_eq!(now.iter().filter(|(_, _, p)| *p).count(), 1, "{now:?}");
    assert_eq!(clones(&api).len(), 2);
    assert_eq!(api.vm("dea-template").unwrap().power_state, "POWERED_OFF");
    seen.ok(&["undeploy", "x"]);
    assert!(clones(&api).is_empty());
    assert!(api.vm("dea-template").is_some());
    seen.check();

    // A pool that lists the template by name is refused before anything is taken.
    blueprint(&sb, "", "      pool: [dea-node-1, dea-template]\n", 1);
    let mut seen = Seen::new(&sb, &api, "y");
    let err = seen.fails(&deploy("y"));
    assert!(
        err.contains("`pool` names the template `dea-template`"),
        "{err}"
    );
    assert_eq!(api.vm("dea-node-1").unwrap().power_state, "POWERED_OFF");
    seen.ok(&["undeploy", "y"]);
    seen.check();
}
