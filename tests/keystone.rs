//! The `openstack` plugin's Keystone v3 client against a real Keystone: Debian's `keystone`
//! package, its database in SQLite and its public API under uWSGI on a loopback port, set up
//! by the test (`db_sync`, Fernet keys, `bootstrap` of an `admin` user, project and the
//! identity endpoint in `RegionOne`). Skipped, with the reason printed, when `keystone-manage`
//! or uWSGI's Python 3 plugin is not installed (`.ci/run` installs them).
//!
//! Covered: a wrong password is refused with Keystone's 401 quoted and the password nowhere
//! in the output; the right one gets a token (Keystone's log shows the 201) and its catalog,
//! in which the plugin then finds no compute endpoint (the bootstrap registers only
//! identity), so the operation fails saying exactly that. Nova and Neutron are the contract
//! server's business (`tests/openstack.rs`), as a real Keystone cannot vouch for its tokens.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use serde_json::json;

const KEYSTONE_MANAGE: &str = "/usr/bin/keystone-manage";
const WSGI_SCRIPT: &str = "/usr/bin/keystone-wsgi-public";
const UWSGI: &str = "/usr/bin/uwsgi";
const UWSGI_PYTHON: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";
const PASSWORD: &str = "Keyst0ne-admin-Pw";

/// A Keystone serving on `127.0.0.1:port`; dropping it stops uWSGI.
struct Keystone {
    port: u16,
    uwsgi: Child,
    dir: PathBuf,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.uwsgi.kill();
        let _ = self.uwsgi.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    [KEYSTONE_MANAGE, WSGI_SCRIPT, UWSGI, UWSGI_PYTHON]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| {
            format!(
                "{p} is not installed (apt-get install keystone uwsgi-core uwsgi-plugin-python3)"
            )
        })
}

fn manage(dir: &Path, args: &[&str]) {
    let out = Command::new(KEYSTONE_MANAGE)
        .arg("--config-file")
        .arg(dir.join("keystone.conf"))
        .args(args)
        .output()
        .expect("run keystone-manage");
    assert!(
        out.status.success(),
        "keystone-manage {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Keystone {
    fn start(dir: &Path) -> Keystone {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let d = dir.display();
        std::fs::write(
            dir.join("keystone.conf"),
            format!(
                "[DEFAULT]\nlog_dir = {d}\n\
                 [database]\nconnection = sqlite:///{d}/keystone.db\n\
                 [token]\nprovider = fernet\n\
                 [fernet_tokens]\nkey_repository = {d}/fernet-keys\n\
                 [fernet_receipts]\nkey_repository = {d}/fernet-receipts\n\
                 [credential]\nkey_repository = {d}/credential-keys\n"
            ),
        )
        .unwrap();
        let (user, group) = (id("-un"), id("-gn"));
        let owner = ["--keystone-user", &user, "--keystone-group", &group];
        manage(dir, &["db_sync"]);
        manage(dir, &[&["fernet_setup"][..], &owner].concat());
        manage(dir, &[&["credential_setup"][..], &owner].concat());
        let url = format!("http://127.0.0.1:{port}/v3");
        manage(
            dir,
            &[
                "bootstrap",
                "--bootstrap-password",
                PASSWORD,
                "--bootstrap-public-url",
                &url,
                "--bootstrap-region-id",
                "RegionOne",
            ],
        );
        let log = std::fs::File::create(dir.join("uwsgi.log")).unwrap();
        let uwsgi = Command::new(UWSGI)
            .args(["--plugin", "python3", "--http-socket"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "--wsgi-file",
                WSGI_SCRIPT,
                "--processes",
                "1",
                "--threads",
                "2",
            ])
            .env("OS_KEYSTONE_CONFIG_FILES", dir.join("keystone.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start uwsgi");
        let keystone = Keystone {
            port,
            uwsgi,
            dir: dir.to_path_buf(),
        };
        keystone.wait_ready();
        keystone
    }

    /// Until `GET /v3` answers (a bounded wait for a process starting, not a timing claim).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "GET /v3 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                );
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                if text.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Keystone did not answer: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("uwsgi.log")).unwrap_or_default()
    }
}

/// `id FLAG` of this process (`-un`, `-gn`): who owns the key repositories.
fn id(flag: &str) -> String {
    Command::new("id")
        .arg(flag)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

const BLUEPRINT: &str = "tosca_definitions_version: cloudify_dsl_1_4
imports:
  - cloudify/types/types.yaml
  - plugin:cloudify-openstack-plugin
inputs:
  client_config: {}
node_templates:
  key:
    type: cloudify.nodes.openstack.KeyPair
    properties:
      client_config: { get_input: client_config }
      resource_config: { name: ks-key, public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOb7yFjzZhXbRlq3Df1b t@w }
";

#[test]
fn the_plugin_authenticates_to_a_real_keystone() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let keystone = Keystone::start(
        &std::env::temp_dir().join(format!("windlass-keystone-{}", std::process::id())),
    );
    let sb = Sandbox::new("keystone");
    sb.file("blueprint.yaml", BLUEPRINT);
    let deploy = |id: &str, password: &str| {
        let inputs = json!({ "client_config": {
            "auth_url": format!("http://127.0.0.1:{}/v3", keystone.port),
            "username": "admin", "password": password,
            "project_name": "admin", "user_domain_name": "Default",
            "project_domain_name": "Default", "region_name": "RegionOne" } });
        let out = sb.run(&[
            "deploy",
            "blueprint.yaml",
            "-d",
            id,
            "-i",
            &inputs.to_string(),
            "--task-retries",
            "0",
        ]);
        assert!(
            !out.status.success(),
            "there is no Nova behind this Keystone"
        );
        let events = sb.run(&["events", id, "--json"]);
        let text = format!(
            "{}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&events.stdout)
        );
        assert!(!text.contains(password), "the password leaked: {text}");
        text
    };

    let refused = deploy("wrong", "not-the-Passw0rd");
    assert!(
        refused.contains("refused to authenticate") && refused.contains("(401)"),
        "Keystone's 401 quoted: {refused}"
    );

    let accepted = deploy("right", PASSWORD);
    assert!(
        !accepted.contains("refused to authenticate"),
        "the right password is accepted: {accepted}"
    );
    assert!(
        accepted.contains("no compute endpoint for region RegionOne"),
        "the token's catalog was read: {accepted}"
    );
    let log = keystone.log();
    assert!(
        log.contains("POST /v3/auth/tokens") && log.contains("(HTTP/1.1 201)"),
        "Keystone issued a token: {log}"
    );
}
