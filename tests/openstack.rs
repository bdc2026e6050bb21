//! The `openstack` plugin against the OpenStack contract server (`tests/support/openstack`:
//! Keystone v3, Nova and Neutron on loopback HTTP), with the real windlass binary.
//!
//! Covered: a server with a key pair, a security group (with rules) and a floating IP deployed
//! and undeployed, every resource checked in the cloud after each step; `windlass scale` of a
//! server tier +2 and -2, with a script run over SSH on each new server (its address is
//! 127.0.0.1, where a real sshd listens); a token that expires mid-install (401, one new
//! token, the same request again); 503 answers retried; a server ending in ERROR failing with
//! Nova's fault message; the undeploy of a server someone deleted already; adoption of an
//! existing server by name with application-credential auth. No output of any command, and no
//! event, holds the password.

#[path = "support/sshd.rs"]
mod sshd;

mod common;
mod support;

use std::process::Output;

use common::{Sandbox, stderr};
use serde_json::{Value as Json, json};
use support::openstack::{IMAGE, OpenStack, Options};

const HEADER: &str = "tosca_definitions_version: cloudify_dsl_1_4
imports:
  - cloudify/types/types.yaml
  - plugin:cloudify-openstack-plugin?version= >=3.2
inputs:
  client_config: {}
dsl_definitions:
  # What every server node of these tests says: the cloud, no agent, and a poll every 50 ms
  # (the contract server's servers are ACTIVE, or gone, within a few reads).
  server: &server
    type: cloudify.nodes.openstack.Server
    interfaces:
      cloudify.interfaces.lifecycle:
        create: { inputs: { poll_interval: 0.05 } }
        delete: { inputs: { poll_interval: 0.05 } }
  server_properties: &server_properties
    client_config: { get_input: client_config }
    agent_config: { install_method: none }
";

/// A cloud started with `options`, and a sandbox named `name` holding `blueprint`.
fn start(options: Options, name: &str, blueprint: &str) -> (OpenStack, Sandbox) {
    let os = OpenStack::start(options);
    let sb = Sandbox::new(name);
    sb.file("blueprint.yaml", blueprint);
    (os, sb)
}

/// A blueprint of `HEADER` and `nodes`, with the contract server's image.
fn blueprint(nodes: &str) -> String {
    format!("{HEADER}{}", nodes.replace("IMAGE", IMAGE))
}

/// Every command's output, checked for the password as it is collected.
struct Run<'a> {
    sb: &'a Sandbox,
    secret: String,
    seen: std::cell::RefCell<Vec<String>>,
}

impl Run<'_> {
    fn new<'a>(sb: &'a Sandbox, os: &OpenStack) -> Run<'a> {
        Run {
            sb,
            secret: os.options().password.clone(),
            seen: Default::default(),
        }
    }

    fn output(&self, args: &[&str]) -> Output {
        let out = self.sb.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(&self.secret),
            "the password leaked into `windlass {}`:\n{text}",
            args.join(" ")
        );
        self.seen.borrow_mut().push(text);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "windlass {}: {}",
            args.join(" "),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "windlass {} succeeded",
            args.join(" ")
        );
        format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    }

    /// `windlass deploy blueprint.yaml -d ID -i INPUTS`, which must succeed.
    fn deploy(&self, id: &str, inputs: &str) -> String {
        self.ok(&["deploy", "blueprint.yaml", "-d", id, "-i", inputs])
    }

    /// The same, which must fail: what it said.
    fn deploy_fails(&self, id: &str, inputs: &str) -> String {
        self.fails(&["deploy", "blueprint.yaml", "-d", id, "-i", inputs])
    }

    /// Events and instances of the deployment, checked for the password too.
    fn inspect(&self, id: &str) -> (String, Vec<Json>) {
        let events = self.ok(&["events", id, "--json"]);
        let instances: Json = serde_json::from_str(&self.ok(&["instances", id, "--json"])).unwrap();
        (events, instances.as_array().cloned().unwrap_or_default())
    }
}

fn inputs(os: &OpenStack, extra: Json) -> String {
    let mut i = json!({ "client_config": os.client_config() });
    if let (Some(m), Json::Object(e)) = (i.as_object_mut(), extra) {
        m.extend(e);
    }
    i.to_string()
}

fn instance<'a>(instances: &'a [Json], node: &str) -> &'a Json {
    instances
        .iter()
        .find(|i| i["node_id"] == node)
        .unwrap_or_else(|| panic!("no instance of {node}"))
}

/// A key pair node, `web-key`.
const KEY: &str = "  key:
    type: cloudify.nodes.openstack.KeyPair
    properties:
      client_config: { get_input: client_config }
      resource_config:
        name: web-key
        public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOb7yFjzZhXbRlq3Df1b test@windlass
";

/// The nodes of the web tier besides [`KEY`].
const WEB: &str = "  web_sg:
    type: cloudify.nodes.openstack.SecurityGroup
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: web, description: web servers }
      security_group_rules:
        - { protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 0.0.0.0/0 }
        - { protocol: tcp, port_range_min: 80, port_range_max: 80, remote_ip_prefix: 0.0.0.0/0 }
  ip:
    type: cloudify.nodes.openstack.FloatingIP
    properties:
      client_config: { get_input: client_config }
      resource_config: { floating_network_name: public }
  web:
    <<: *server
    properties:
      <<: *server_properties
      resource_config:
        name: web
        image_id: IMAGE
        flavor_id: '2'
        user_data: '#cloud-config'
        metadata: { role: web }
    relationships:
      - { type: cloudify.relationships.openstack.server_connected_to_keypair, target: key }
      - { type: cloudify.relationships.openstack.server_connected_to_security_group, target: web_sg }
      - { type: cloudify.relationships.openstack.server_connected_to_floating_ip, target: ip }
outputs:
  address: { value: { get_attribute: [web, public_ip_address] } }
";

fn web_blueprint() -> String {
    blueprint(&format!("node_templates:\n{KEY}{WEB}"))
}

#[test]
fn deploy_and_undeploy_a_server_with_key_pair_security_group_and_floating_ip() {
    let (os, sb) = start(Options::default(), "openstack-web", &web_blueprint());
    let run = Run::new(&sb, &os);
    let inputs = inputs(&os, json!({}));
    run.deploy("web", &inputs);

    let servers = os.servers();
    assert_eq!(servers.len(), 1, "{servers:#?}");
    let server = &servers[0];
    assert_eq!(server["status"], "ACTIVE");
    assert_eq!(server["key_name"], "web-key");
    assert_eq!(server["security_groups"], json!([{ "name": "web" }]));
    let fips = os.neutron("floatingips");
    assert_eq!(fips.len(), 1);
    let fip = &fips[0];
    assert!(
        fip["port_id"].is_string(),
        "the floating IP is associated: {fip}"
    );
    let groups = os.neutron("security-groups");
    assert_eq!(groups.len(), 1);
    let rules = os.neutron("security-group-rules");
    assert_eq!(
        rules.len(),
        4,
        "two default egress rules and the two written: {rules:#?}"
    );
    assert_eq!(os.keypairs(), ["web-key"]);

    // What was sent: the server from resource_config and the relationships, user_data in base64.
    let requests = os.requests();
    let create = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/servers"))
        .expect("a server create");
    assert_eq!(create.status, 202);
    let body = &create.body.as_ref().unwrap()["server"];
    assert_eq!(body["flavorRef"], "2");
    assert_eq!(body["imageRef"], IMAGE);
    assert_eq!(body["user_data"], "I2Nsb3VkLWNvbmZpZw==");
    assert_eq!(body["metadata"], json!({ "role": "web" }));
    let polls = requests
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path
                    .ends_with(&format!("/servers/{}", server["id"].as_str().unwrap()))
        })
        .count();
    assert_eq!(polls, 4, "BUILD for three reads, then ACTIVE");
    let auths = requests
        .iter()
        .filter(|r| r.path.ends_with("/auth/tokens"))
        .count();
    assert_eq!(auths, 1, "one token for the whole install");

    let (events, instances) = run.inspect("web");
    let web = instance(&instances, "web");
    let rp = &web["runtime_properties"];
    assert_eq!(rp["id"], server["id"]);
    assert_eq!(rp["type"], "server");
    assert!(rp["ip"].as_str().unwrap().starts_with("10.0."), "{rp}");
    assert_eq!(rp["ip"], rp["ipv4_address"]);
    assert_eq!(rp["public_ip_address"], fip["floating_ip_address"]);
    assert_eq!(rp["networks"]["private"][0], rp["ip"]);
    assert!(events.contains("is ACTIVE"), "{events}");
    let outputs = run.ok(&["outputs", "web", "--json"]);
    assert!(
        outputs.contains(fip["floating_ip_address"].as_str().unwrap()),
        "{outputs}"
    );

    run.ok(&["undeploy", "web"]);
    assert!(os.servers().is_empty(), "{:#?}", os.servers());
    assert!(os.neutron("floatingips").is_empty());
    assert!(os.neutron("security-groups").is_empty());
    assert!(os.keypairs().is_empty());
    let requests = os.requests();
    let unlink = requests
        .iter()
        .position(|r| {
            r.method == "PUT"
                && r.path.contains("/floatingips/")
                && r.body
                    .as_ref()
                    .is_some_and(|b| b["floatingip"]["port_id"].is_null())
        })
        .expect("the floating IP disassociated");
    let delete = requests
        .iter()
        .position(|r| r.method == "DELETE" && r.path.contains("/servers/"))
        .expect("the server deleted");
    assert!(unlink < delete, "unlink runs before the server goes");
    assert!(
        requests
            .iter()
            .all(|r| !format!("{:?}", r.body).contains(&os.options().password))
    );
}

const DEA: &str = "inputs:
  client_config: {}
  ssh_port: { type: integer }
  ssh_user: { type: string }
  ssh_key: { type: string }
  out: { type: string }
  known_hosts: { type: string }
node_templates:
  dea_vm:
    <<: *server
    properties:
      <<: *server_properties
      resource_config: { image_id: IMAGE, flavor_id: '1' }
  dea:
    type: cloudify.nodes.SoftwareComponent
    interfaces:
      cloudify.interfaces.lifecycle:
        configure:
          implementation: ssh.run
          inputs: &ssh
            host: { get_attribute: [dea_vm, ip] }
            port: { get_input: ssh_port }
            user: { get_input: ssh_user }
            key: { get_input: ssh_key }
            accept_new_host_keys: true
            known_hosts_file: { get_input: known_hosts }
            command: { concat: ['mkdir -p ', { get_input: out }, ' && echo attached > ', { get_input: out }, '/', { get_attribute: [dea_vm, id] }] }
        delete:
          implementation: ssh.run
          inputs:
            <<: *ssh
            command: { concat: ['rm -f ', { get_input: out }, '/', { get_attribute: [dea_vm, id] }] }
    relationships:
      - { type: cloudify.relationships.contained_in, target: dea_vm }
";

#[test]
fn scale_a_server_tier_and_run_a_script_on_each_server_over_ssh() {
    let sshd = sshd::Sshd::start(
        &std::env::temp_dir().join(format!("windlass-os-sshd-{}", std::process::id())),
    );
    // DEA declares its inputs, client_config among them.
    let dea = blueprint(DEA).replacen("inputs:\n  client_config: {}\n", "  - plugin:ssh\n", 1);
    let options = Options {
        fixed_ip: Some("127.0.0.1".into()),
        ..Options::default()
    };
    let (os, sb) = start(options, "openstack-scale", &dea);
    let run = Run::new(&sb, &os);
    let out = sb.dir.join("attached");
    let inputs = inputs(
        &os,
        json!({ "ssh_port": sshd.port, "ssh_user": sshd.user,
                "ssh_key": sshd.client_key("ed25519").private_text(),
                "out": out.display().to_string(),
                "known_hosts": sb.dir.join("known_hosts").display().to_string() }),
    );
    run.deploy("paas", &inputs);
    let attached = || std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(os.servers().len(), 1);
    assert_eq!(attached(), 1, "the script ran on the first server");

    run.ok(&["scale", "paas", "dea_vm", "+2"]);
    let servers = os.servers();
    assert_eq!(servers.len(), 3);
    assert!(servers.iter().all(|s| s["status"] == "ACTIVE"));
    assert_eq!(attached(), 3, "the script ran on each new server");
    for s in &servers {
        let id = s["id"].as_str().unwrap();
        assert_eq!(std::fs::read_to_string(out.join(id)).unwrap(), "attached\n");
    }

    run.ok(&["scale", "paas", "dea_vm", "-2"]);
    assert_eq!(os.servers().len(), 1);
    assert_eq!(attached(), 1, "delete ran on the removed servers");
    let (_, instances) = run.inspect("paas");
    let vm = instance(&instances, "dea_vm");
    assert_eq!(vm["runtime_properties"]["id"], os.servers()[0]["id"]);

    run.ok(&["undeploy", "paas"]);
    assert!(os.servers().is_empty());
    assert_eq!(attached(), 0);
}

#[test]
fn an_expired_token_is_renewed_once_and_the_request_sent_again() {
    // Each token authenticates five requests: the install needs more, so it meets a 401.
    let (os, sb) = start(
        Options {
            token_uses: Some(5),
            ..Options::default()
        },
        "openstack-token",
        &web_blueprint(),
    );
    let run = Run::new(&sb, &os);
    run.deploy("tok", &inputs(&os, json!({})));
    let requests = os.requests();
    let refused = requests.iter().filter(|r| r.status == 401).count();
    assert!(refused >= 1, "some request met an expired token");
    // Operations running at once may meet the same expired token: one new token at most per
    // refusal, and never one per request.
    assert!(
        os.tokens_issued() >= 2 && os.tokens_issued() <= 1 + refused,
        "{} tokens for {refused} refusals",
        os.tokens_issued()
    );
    // Every refused request was sent again and answered.
    for (i, r) in requests.iter().enumerate().filter(|(_, r)| r.status == 401) {
        let again = requests[i + 1..]
            .iter()
            .filter(|n| !n.path.ends_with("/auth/tokens"))
            .find(|n| n.method == r.method && n.path == r.path)
            .expect("the refused request sent again");
        assert_ne!(again.status, 401);
    }
    assert_eq!(os.servers()[0]["status"], "ACTIVE");
    run.inspect("tok");
}

#[test]
fn service_unavailable_is_retried() {
    let (os, sb) = start(Options::default(), "openstack-503", &web_blueprint());
    let run = Run::new(&sb, &os);
    os.fail_next(2, 503);
    run.deploy("busy", &inputs(&os, json!({})));
    let statuses: Vec<u16> = os
        .requests()
        .iter()
        .filter(|r| !r.path.ends_with("/auth/tokens"))
        .map(|r| r.status)
        .collect();
    assert_eq!(&statuses[..2], &[503, 503], "{statuses:?}");
    assert!(statuses[2..].iter().all(|s| *s < 300), "{statuses:?}");
    assert_eq!(os.servers().len(), 1);
    os.fail_next(1, 500);
    run.ok(&["undeploy", "busy"]);
    assert!(os.servers().is_empty());
}

#[test]
fn a_server_in_error_fails_with_its_fault_and_is_still_deleted() {
    let (os, sb) = start(Options::default(), "openstack-error", &web_blueprint());
    let run = Run::new(&sb, &os);
    let fault = "No valid host was found. There are not enough hosts available.";
    os.fail_build("web", fault);
    let err = run.deploy_fails("doomed", &inputs(&os, json!({})));
    let (events, instances) = run.inspect("doomed");
    assert!(
        err.contains(fault) || events.contains(fault),
        "{err}\n{events}"
    );
    let posts = os
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/servers"))
        .count();
    assert_eq!(posts, 1, "an ERROR is not retried");
    let web = instance(&instances, "web");
    let id = web["runtime_properties"]["id"]
        .as_str()
        .expect("the id was recorded");
    assert_eq!(os.servers()[0]["id"], id);
    assert_eq!(os.servers()[0]["status"], "ERROR");

    run.ok(&["undeploy", "doomed"]);
    assert!(os.servers().is_empty(), "the failed server was deleted");
}

#[test]
fn undeploy_succeeds_when_the_server_is_already_gone() {
    let (os, sb) = start(Options::default(), "openstack-gone", &web_blueprint());
    let run = Run::new(&sb, &os);
    run.deploy("gone", &inputs(&os, json!({})));
    let id = os.servers()[0]["id"].as_str().unwrap().to_string();
    os.vanish(&id);
    run.ok(&["undeploy", "gone"]);
    let delete = os
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE" && r.path.ends_with(&id))
        .expect("a delete of the server");
    assert_eq!(delete.status, 404);
    assert!(os.neutron("floatingips").is_empty());
}

#[test]
fn adopt_an_existing_server_by_name_with_an_application_credential() {
    let options = Options {
        application_credential: Some(("appcred-7f3a".into(), "app-S3cret-value".into())),
        ..Options::default()
    };
    let legacy = "node_templates:
  legacy:
    <<: *server
    properties:
      <<: *server_properties
      use_external_resource: true
      resource_config: { name: legacy }
";
    let (os, sb) = start(options, "openstack-adopt", &blueprint(legacy));
    let existing = os.seed_server("legacy");
    let run = Run {
        secret: "app-S3cret-value".into(),
        ..Run::new(&sb, &os)
    };
    let config = json!({ "client_config": {
        "auth_url": os.auth_url(), "region_name": "RegionOne",
        "application_credential_id": "appcred-7f3a",
        "application_credential_secret": "app-S3cret-value" } });
    run.deploy("adopt", &config.to_string());
    let (_, instances) = run.inspect("adopt");
    let legacy = instance(&instances, "legacy");
    assert_eq!(legacy["runtime_properties"]["id"], existing);
    assert_eq!(legacy["runtime_properties"]["external_resource"], true);
    run.ok(&["undeploy", "adopt"]);
    assert_eq!(os.servers().len(), 1, "an adopted server is left alone");
    assert!(!os.requests().iter().any(|r| r.method == "DELETE"));
}

/// The example of the seed scenario validates with the plugin's types.
#[test]
fn the_openstack_paas_example_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(["validate", "blueprints/openstack-paas/blueprint.yaml"])
        .args([
            "-i",
            "image_id=stackato-img",
            "-i",
            "public_key=ssh-ed25519 AAAA test",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("7 nodes"));
}

/// A blueprint of the key pair alone.
fn key_only() -> String {
    blueprint(&format!("node_templates:\n{KEY}"))
}

/// A cloud that speaks HTTPS, with a CA of its own.
fn tls() -> Options {
    Options {
        tls: true,
        ..Options::default()
    }
}

/// A `client_config` for a TLS cloud with `ca_cert` taken out and `extra` laid over it.
fn tls_inputs(os: &OpenStack, extra: Json) -> String {
    let mut config = os.client_config();
    let map = config.as_object_mut().unwrap();
    map.remove("ca_cert");
    if let Json::Object(e) = extra {
        map.extend(e);
    }
    json!({ "client_config": config }).to_string()
}

#[test]
fn tls_is_verified_and_a_cloud_whose_ca_is_not_given_is_refused() {
    let (os, sb) = start(tls(), "openstack-tls-refused", &key_only());
    let run = Run::new(&sb, &os);
    let inputs = tls_inputs(&os, json!({}));
    let err = run.deploy_fails("tls", &inputs);
    let (events, _) = run.inspect("tls");
    let said = format!("{err}\n{events}");
    assert!(
        said.contains("certificate") && said.contains("UnknownIssuer"),
        "the failure says the certificate is not trusted: {said}"
    );
    assert!(
        !said.contains("not verified"),
        "verification was on: {said}"
    );
    assert!(
        os.requests().is_empty(),
        "no request passed the handshake: {:?}",
        os.requests()
    );
    assert!(os.keypairs().is_empty(), "nothing was created");
}

#[test]
fn a_tls_cloud_is_reached_with_its_ca_cert_as_a_file() {
    let (os, sb) = start(tls(), "openstack-tls-ca", &key_only());
    let run = Run::new(&sb, &os);
    sb.file("cloud-ca.pem", os.ca_pem());
    // A path relative to the blueprint.
    let inputs = tls_inputs(&os, json!({ "ca_cert": "cloud-ca.pem" }));
    run.deploy("tls", &inputs);
    assert_eq!(os.keypairs(), ["web-key"]);
    assert!(os.auth_url().starts_with("https://"));
    let (events, _) = run.inspect("tls");
    assert!(!events.contains("not verified"), "{events}");
    run.ok(&["undeploy", "tls"]);
    assert!(os.keypairs().is_empty());
}

#[test]
fn insecure_reaches_a_tls_cloud_without_its_ca_and_says_verification_is_off() {
    let (os, sb) = start(tls(), "openstack-tls-insecure", &key_only());
    let run = Run::new(&sb, &os);
    let inputs = tls_inputs(&os, json!({ "insecure": true }));
    run.deploy("tls", &inputs);
    assert_eq!(os.keypairs(), ["web-key"]);
    let (events, _) = run.inspect("tls");
    assert!(
        events.contains("are not verified (`insecure: true`)"),
        "an event says TLS is not verified: {events}"
    );
    run.ok(&["undeploy", "tls"]);
    assert!(os.keypairs().is_empty());
}

const NETWORK: &str = "node_templates:
  net:
    type: cloudify.nodes.openstack.Network
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: app-net, admin_state_up: true }
  subnet:
    type: cloudify.nodes.openstack.Subnet
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: app-subnet, cidr: 192.168.50.0/24, enable_dhcp: true, dns_nameservers: [192.168.50.2] }
    relationships:
      - { type: cloudify.relationships.contained_in, target: net }
  sg:
    type: cloudify.nodes.openstack.SecurityGroup
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: app-sg, description: app servers }
      disable_default_egress_rules: true
      security_group_rules:
        - { direction: ingress, protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 10.0.0.0/8 }
        - { direction: egress, protocol: tcp, port_range_min: 443, port_range_max: 443, remote_ip_prefix: 0.0.0.0/0 }
  port:
    type: cloudify.nodes.openstack.Port
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: app-port }
    relationships:
      - { type: cloudify.relationships.contained_in, target: net }
      - { type: cloudify.relationships.depends_on, target: subnet }
      - { type: cloudify.relationships.openstack.port_connected_to_security_group, target: sg }
  on_port:
    <<: *server
    properties:
      <<: *server_properties
      resource_config: { name: on-port, image_id: IMAGE, flavor_id: '1' }
    relationships:
      - { type: cloudify.relationships.openstack.server_connected_to_port, target: port }
  on_net:
    <<: *server
    properties:
      <<: *server_properties
      resource_config: { name: on-net, image_id: IMAGE, flavor_id: '1' }
    relationships:
      - { type: cloudify.relationships.connected_to, target: net }
      - { type: cloudify.relationships.depends_on, target: subnet }
";

/// The body of the one `POST` to a path ending in `suffix`.
fn posted(requests: &[support::openstack::Request], suffix: &str) -> Json {
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
        .collect();
    assert_eq!(posts.len(), 1, "one POST {suffix}: {posts:#?}");
    assert!(posts[0].status < 300, "{:?}", posts[0]);
    posts[0].body.clone().expect("a body")
}

#[test]
fn network_subnet_port_and_security_group_nodes_are_created_used_and_deleted_in_reverse() {
    let (os, sb) = start(Options::default(), "openstack-network", &blueprint(NETWORK));
    let seeded = |kind: &str| os.neutron(kind).len();
    let (networks, subnets) = (seeded("networks"), seeded("subnets"));
    let run = Run::new(&sb, &os);
    run.deploy("net", &inputs(&os, json!({})));

    let requests = os.requests();
    let (_, instances) = run.inspect("net");
    let id = |node: &str| {
        instance(&instances, node)["runtime_properties"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{node} has an id"))
            .to_string()
    };
    let (net, subnet, sg, port) = (id("net"), id("subnet"), id("sg"), id("port"));

    // What was sent: resource_config, and what the relationships say.
    assert_eq!(
        posted(&requests, "/networks"),
        json!({ "network": { "name": "app-net", "admin_state_up": true } })
    );
    assert_eq!(
        posted(&requests, "/subnets"),
        json!({ "subnet": { "name": "app-subnet", "cidr": "192.168.50.0/24", "enable_dhcp": true,
            "dns_nameservers": ["192.168.50.2"], "network_id": net, "ip_version": 4 } })
    );
    assert_eq!(
        posted(&requests, "/security-groups"),
        json!({ "security_group": { "name": "app-sg", "description": "app servers" } })
    );
    assert_eq!(
        posted(&requests, "/ports"),
        json!({ "port": { "name": "app-port", "network_id": net, "security_groups": [sg] } })
    );
    let rule_posts: Vec<Json> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/security-group-rules"))
        .map(|r| r.body.clone().unwrap())
        .collect();
    assert_eq!(
        rule_posts,
        [
            json!({ "security_group_rule": { "security_group_id": sg, "direction": "ingress",
                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8" } }),
            json!({ "security_group_rule": { "security_group_id": sg, "direction": "egress",
                "protocol": "tcp", "port_range_min": 443, "port_range_max": 443, "remote_ip_prefix": "0.0.0.0/0" } }),
        ]
    );
    // disable_default_egress_rules: the group keeps only the rules written.
    let rules: Vec<Json> = os
        .neutron("security-group-rules")
        .into_iter()
        .filter(|r| r["security_group_id"] == sg.as_str())
        .collect();
    assert_eq!(rules.len(), 2, "{rules:#?}");
    assert!(
        rules.iter().all(|r| r["protocol"] == "tcp"),
        "the default egress rules are gone: {rules:#?}"
    );
    let rule_deletes = requests
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/security-group-rules/"))
        .count();
    assert_eq!(rule_deletes, 2, "the two default egress rules deleted");

    // The servers: one on the port, one on the network.
    let servers: Vec<Json> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/servers"))
        .map(|r| r.body.clone().unwrap()["server"].clone())
        .collect();
    let sent = |name: &str| {
        servers
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} created: {servers:#?}"))
            .clone()
    };
    assert_eq!(sent("on-port")["networks"], json!([{ "port": port }]));
    assert_eq!(sent("on-net")["networks"], json!([{ "uuid": net }]));
    let on_port = os
        .neutron("ports")
        .into_iter()
        .find(|p| p["id"] == port.as_str())
        .expect("the port");
    assert_eq!(
        on_port["device_id"],
        instance(&instances, "on_port")["runtime_properties"]["id"],
        "the port is the server's"
    );
    assert_eq!(
        instance(&instances, "port")["runtime_properties"]["network_id"],
        net.as_str()
    );
    assert_eq!(
        instance(&instances, "subnet")["runtime_properties"]["cidr"],
        "192.168.50.0/24"
    );

    run.ok(&["undeploy", "net"]);
    let requests = os.requests();
    let deleted = |path: &str, id: &str| {
        requests
            .iter()
            .position(|r| {
                r.method == "DELETE" && r.path.ends_with(&format!("/{path}/{id}")) && r.status < 300
            })
            .unwrap_or_else(|| panic!("{path}/{id} deleted: {requests:#?}"))
    };
    let server_gone = |name: &str| {
        let id = instance(&instances, name)["runtime_properties"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        deleted("servers", &id)
    };
    let (port_del, sg_del) = (deleted("ports", &port), deleted("security-groups", &sg));
    let (subnet_del, net_del) = (deleted("subnets", &subnet), deleted("networks", &net));
    assert!(
        server_gone("on_port") < port_del,
        "the server before its port"
    );
    assert!(port_del < sg_del, "the port before its security group");
    assert!(port_del < subnet_del, "the port before the subnet");
    assert!(
        server_gone("on_net") < subnet_del,
        "the server before the subnet"
    );
    assert!(subnet_del < net_del, "the subnet before the network");
    assert!(
        requests.iter().all(|r| r.status != 409),
        "nothing was deleted while in use: {:#?}",
        requests
            .iter()
            .filter(|r| r.status == 409)
            .collect::<Vec<_>>()
    );

    // The cloud is as it was.
    assert!(os.servers().is_empty(), "{:#?}", os.servers());
    assert!(os.neutron("ports").is_empty(), "{:#?}", os.neutron("ports"));
    assert!(os.neutron("security-groups").is_empty());
    assert!(os.neutron("security-group-rules").is_empty());
    assert_eq!(seeded("networks"), networks);
    assert_eq!(seeded("subnets"), subnets);
}

/// `(method, path, status)` of every compute and network request.
fn service_requests(os: &OpenStack) -> Vec<(String, String, u16)> {
    os.requests()
        .into_iter()
        .filter(|r| !r.path.contains("/identity/"))
        .map(|r| (r.method, r.path, r.status))
        .collect()
}

#[test]
fn a_neutron_conflict_and_a_nova_server_error_are_retried() {
    let (os, sb) = start(Options::default(), "openstack-retry", &web_blueprint());
    let run = Run::new(&sb, &os);
    os.fail_next_on(
        "network",
        1,
        409,
        "Request conflicts with the state of the resource",
    );
    os.fail_next_on("compute", 1, 500, "Unexpected API Error.");
    run.deploy("retry", &inputs(&os, json!({})));
    let requests = service_requests(&os);
    for (service, status) in [("/network/", 409), ("/compute/", 500)] {
        let first = requests
            .iter()
            .position(|(_, p, _)| p.starts_with(service))
            .expect("a request to the service");
        let (method, path, got) = &requests[first];
        assert_eq!(*got, status, "{requests:#?}");
        let again = requests[first + 1..]
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .unwrap_or_else(|| panic!("{method} {path} sent again: {requests:#?}"));
        assert!(again.2 < 300, "and answered: {again:?}");
    }
    assert_eq!(os.servers().len(), 1);
    assert_eq!(os.servers()[0]["status"], "ACTIVE");
    assert_eq!(os.neutron("security-groups").len(), 1);
}

const SOLO: &str = "node_templates:
  solo:
    type: cloudify.nodes.openstack.Server
    properties:
      client_config: { get_input: client_config }
      agent_config: { install_method: none }
      resource_config: { name: solo, image_id: IMAGE, flavor_id: '1' }
  sg:
    type: cloudify.nodes.openstack.SecurityGroup
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: solo-sg }
";

#[test]
fn a_bad_request_or_a_forbidden_one_is_sent_once_and_its_message_quoted() {
    for (service, status, message, path) in [
        (
            "compute",
            400,
            "Invalid input for field/attribute flavorRef. Value: 1.",
            "/servers",
        ),
        (
            "network",
            403,
            "Policy doesn't allow create_security_group to be performed.",
            "/security-groups",
        ),
    ] {
        let (os, sb) = start(
            Options::default(),
            &format!("openstack-{status}"),
            &blueprint(SOLO),
        );
        let run = Run::new(&sb, &os);
        os.fail_next_on(service, 1, status, message);
        let err = run.deploy_fails("refused", &inputs(&os, json!({})));
        let (events, _) = run.inspect("refused");
        let said = format!("{err}\n{events}");
        assert!(
            said.contains(message) && said.contains(&format!("({status})")),
            "the service's message is quoted: {said}"
        );
        let sent: Vec<_> = service_requests(&os)
            .into_iter()
            .filter(|(m, p, _)| m == "POST" && p.ends_with(path))
            .collect();
        assert_eq!(sent.len(), 1, "{status} is not retried: {sent:?}");
        assert_eq!(sent[0].2, status);
    }
}
