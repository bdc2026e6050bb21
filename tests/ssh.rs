//! The SSH plugin against a real OpenSSH server (`support/sshd.rs`): commands, stdin, exit
//! status, host-key checking (unknown, accepted, changed), authentication with each key type and
//! with a key the server does not know, command timeouts, and a blueprint deployed end to end.

#[path = "support/sshd.rs"]
mod sshd;

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use windlass::plugins::ssh::{self, HostSpec, KeySource, SshError, Stream};

use common::Sandbox;
use sshd::Sshd;

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("windlass-ssh-{name}-{}", std::process::id()))
}

fn spec(server: &Sshd, key: KeySource, known_hosts: &Path) -> HostSpec {
    HostSpec {
        host: "127.0.0.1".to_string(),
        port: server.port,
        user: server.user.clone(),
        key,
        key_passphrase: None,
        known_hosts: Some(known_hosts.to_path_buf()),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(20),
        command_timeout: None,
    }
}

fn ed25519(server: &Sshd) -> KeySource {
    KeySource::File(server.client_key("ed25519").path)
}

#[tokio::test]
async fn runs_a_command_with_each_key_type() {
    let server = Sshd::start(&scratch("keys"));
    let known = server.known_hosts();
    for (kind, key) in [
        ("ed25519", ed25519(&server)),
        ("rsa", KeySource::File(server.client_key("rsa").path)),
        (
            "ecdsa",
            KeySource::Text(server.client_key("ecdsa").private_text()),
        ),
    ] {
        let out = ssh::run_on(
            &spec(&server, key, &known),
            "echo hello; echo warn >&2; id -un",
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}\n{}", server.log()));
        assert_eq!(out.stdout, ["hello", server.user.as_str()], "{kind}");
        assert_eq!(out.stderr, ["warn"], "{kind}");
        assert_eq!(out.exit_status, Some(0));
    }
}

#[tokio::test]
async fn sends_stdin_and_reports_lines_as_they_come() {
    let server = Sshd::start(&scratch("stdin"));
    let spec = spec(&server, ed25519(&server), &server.known_hosts());
    let conn = ssh::client::Connection::open(&spec).await.unwrap();
    let mut seen = Vec::new();
    let out = conn
        .run(
            "tr a-z A-Z; echo done >&2",
            Some(b"first\nsecond"),
            &mut |stream, line| seen.push((stream, line.to_string())),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, ["FIRST", "SECOND"]);
    assert!(seen.contains(&(Stream::Stdout, "FIRST".to_string())));
    assert!(seen.contains(&(Stream::Stderr, "done".to_string())));
    // A large input is written while output is read (no deadlock on flow control).
    let big: Vec<u8> = "0123456789abcdef\n".repeat(200_000).into_bytes();
    let out = conn.run("cat", Some(&big), &mut |_, _| {}).await.unwrap();
    assert_eq!(out.stdout.len(), 200_000);
    conn.close().await;
}

#[tokio::test]
async fn non_zero_exit_is_an_error_with_status_and_stderr() {
    let server = Sshd::start(&scratch("exit"));
    let spec = spec(&server, ed25519(&server), &server.known_hosts());
    let command = "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3";
    let out = ssh::run_on(&spec, command, None).await.unwrap();
    assert_eq!(out.exit_status, Some(3));
    let err = out.checked(&spec, command).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::Exit { .. }), "{err:?}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(
        text.contains("line3 | line4 | line5 | line6 | line7"),
        "{text}"
    );
    assert!(!text.contains("line2"), "only the last lines: {text}");
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_its_fingerprint() {
    let server = Sshd::start(&scratch("unknown"));
    let known = server.dir.join("empty_known_hosts");
    std::fs::write(&known, "# nothing known yet\n").unwrap();
    let err = ssh::run_on(&spec(&server, ed25519(&server), &known), "true", None)
        .await
        .unwrap_err();
    let SshError::UnknownHostKey {
        ref host,
        port,
        ref fingerprint,
        ref file,
        ..
    } = err
    else {
        panic!("expected an unknown host key, got {err:?}");
    };
    assert_eq!((host.as_str(), port), ("127.0.0.1", server.port));
    assert_eq!(fingerprint, &server.host_key().fingerprint());
    assert_eq!(file, &known);
    let text = err.to_string();
    assert!(text.contains("accept_new_host_keys"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        "# nothing known yet\n",
        "a refused key is not recorded"
    );
}

#[tokio::test]
async fn accept_new_host_keys_records_the_key() {
    let server = Sshd::start(&scratch("accept"));
    let known = server.dir.join("new/known_hosts");
    let mut s = spec(&server, ed25519(&server), &known);
    s.accept_new_host_keys = true;
    let out = ssh::run_on(&s, "echo ok", None).await.unwrap();
    assert_eq!(out.stdout, ["ok"]);
    let recorded = std::fs::read_to_string(&known).unwrap();
    let host_key = server.host_key().public_line();
    let blob = host_key.split_whitespace().nth(1).unwrap();
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{} ssh-ed25519 {blob}", server.port)),
        "{recorded}"
    );
    // Known now: accepted without the flag, and OpenSSH's own client agrees with the file.
    s.accept_new_host_keys = false;
    ssh::run_on(&s, "true", None).await.unwrap();
    let keygen = std::process::Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", server.port))
        .arg("-f")
        .arg(&known)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "ssh-keygen -F does not find it");
}

#[tokio::test]
async fn changed_host_key_is_refused_even_with_accept_new() {
    let server = Sshd::start(&scratch("changed"));
    let other = sshd::keygen("ed25519", &server.dir.join("other_host"));
    let known = server.dir.join("known_hosts_changed");
    let before = server.known_hosts_line(&other);
    std::fs::write(&known, &before).unwrap();
    let mut s = spec(&server, ed25519(&server), &known);
    s.accept_new_host_keys = true;
    let err = ssh::run_on(&s, "true", None).await.unwrap_err();
    let SshError::ChangedHostKey {
        ref fingerprint, ..
    } = err
    else {
        panic!("expected a changed host key, got {err:?}");
    };
    assert_eq!(fingerprint, &server.host_key().fingerprint());
    assert!(err.to_string().contains("HOST KEY CHANGED"));
    assert_eq!(std::fs::read_to_string(&known).unwrap(), before);

    // A recorded key of another type: the server is not asked for a key of a type the file
    // does not know, so it cannot slip past as "new".
    let rsa = sshd::keygen("rsa", &server.dir.join("other_rsa"));
    std::fs::write(&known, server.known_hosts_line(&rsa)).unwrap();
    let err = ssh::run_on(&s, "true", None).await.unwrap_err();
    assert!(
        matches!(err, SshError::HostKeyTypeChanged { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_revoked_host_key_is_refused_even_when_recorded_and_accept_new() {
    let server = Sshd::start(&scratch("revoked"));
    let known = server.dir.join("known_hosts_revoked");
    let line = server.known_hosts_line(&server.host_key());
    let blob = line
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&known, format!("@revoked * {blob}\n{line}")).unwrap();
    let mut s = spec(&server, ed25519(&server), &known);
    s.accept_new_host_keys = true;
    let err = ssh::run_on(&s, "true", None).await.unwrap_err();
    assert!(matches!(err, SshError::RevokedHostKey { .. }), "{err:?}");
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_refused() {
    let server = Sshd::start(&scratch("wrongkey"));
    let stranger = sshd::keygen("ed25519", &server.dir.join("stranger"));
    let err = ssh::run_on(
        &spec(
            &server,
            KeySource::File(stranger.path),
            &server.known_hosts(),
        ),
        "true",
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("refused the private key"));

    let garbage = server.dir.join("garbage_key");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let err = ssh::run_on(
        &spec(&server, KeySource::File(garbage), &server.known_hosts()),
        "true",
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SshError::Key { .. }), "{err:?}");
}

#[tokio::test]
async fn a_command_that_runs_too_long_times_out() {
    let server = Sshd::start(&scratch("timeout"));
    let mut s = spec(&server, ed25519(&server), &server.known_hosts());
    s.command_timeout = Some(Duration::from_millis(500));
    // A command that never ends but writes: once its channel is closed it dies of SIGPIPE even
    // where sshd ignores the KILL request (root logins), so the test leaves nothing behind.
    let endless = "while true; do echo tick; sleep 0.2; done";
    // The outer bound only turns a missing timeout into a failure instead of a hang.
    let err = tokio::time::timeout(Duration::from_secs(120), ssh::run_on(&s, endless, None))
        .await
        .expect("the command timeout was not enforced")
        .unwrap_err();
    assert!(matches!(err, SshError::CommandTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let server = Sshd::start(&scratch("refused"));
    let known = server.dir.with_extension("known_hosts");
    std::fs::copy(server.known_hosts(), &known).unwrap();
    let key = server.dir.with_extension("key");
    std::fs::copy(server.client_key("ed25519").path, &key).unwrap();
    let s = spec(&server, KeySource::File(key.clone()), &known);
    drop(server);
    // The killed server's port: nothing listens on it now.
    let err = ssh::run_on(&s, "true", None).await.unwrap_err();
    let _ = std::fs::remove_file(&known);
    let _ = std::fs::remove_file(&key);
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
}

const BLUEPRINT: &str = r#"
tosca_definitions_version: cloudify_dsl_1_4
imports:
  - cloudify/types/types.yaml
  - plugin:ssh
inputs:
  port: { type: integer }
  user: { type: string }
  key: { type: string }
  out: { type: string }
  accept: { type: boolean, default: true }
  key_copy: { type: string, default: /dev/null }
node_types:
  test.Remote:
    derived_from: cloudify.nodes.Compute
    properties:
      port: { type: integer }
      user: { type: string }
      accept_new_host_keys: { type: boolean }
node_templates:
  remote:
    type: test.Remote
    properties:
      ip: 127.0.0.1
      port: { get_input: port }
      user: { get_input: user }
      accept_new_host_keys: { get_input: accept }
    interfaces:
      cloudify.interfaces.lifecycle:
        create:
          implementation: ssh.run
          inputs:
            key: { get_input: key }
            commands:
              - { concat: ['mkdir -p ', { get_input: out }] }
              - { concat: ['echo created-by-ssh > ', { get_input: out }, '/created'] }
              - { concat: ['sed -n 2p ', { get_input: key_copy }] }
        configure:
          implementation: ssh.run
          inputs:
            key: { get_input: key }
            script: scripts/configure.sh
            args: [{ get_input: out }, "two words"]
        delete:
          implementation: ssh.run
          inputs:
            key: { get_input: key }
            command: { concat: ['rm -rf ', { get_input: out }] }
"#;

const CONFIGURE: &str = r#"set -e
echo "args: $# [$2]" > "$1/configured"
echo configured "$1"
"#;

/// `windlass deploy` of a blueprint whose node runs `ssh.run` against the test server, with
/// `$HOME` pointed at a scratch directory (so `~/.ssh/known_hosts` is the default file).
#[test]
fn deploy_and_undeploy_a_blueprint_over_ssh() {
    let server = Sshd::start(&scratch("e2e"));
    let sb = Sandbox::new("ssh-e2e");
    let home = sb.dir.join("home");
    let out = sb.dir.join("remote-out");
    let key = server.client_key("ed25519").private_text();
    sb.file("blueprint.yaml", BLUEPRINT);
    sb.file("scripts/configure.sh", CONFIGURE);
    // The command that prints a line of the key reads it from here: the event must mask it.
    let key_copy = sb.dir.join("key-copy");
    std::fs::write(&key_copy, &key).unwrap();
    let inputs = serde_json::json!({
        "port": server.port, "user": server.user, "key": key,
        "out": out.display().to_string(), "key_copy": key_copy.display().to_string(),
    })
    .to_string();
    let run = |args: &[&str]| sb.command(args).env("HOME", &home).output().unwrap();

    let deployed = run(&["deploy", "blueprint.yaml", "-d", "viassh", "-i", &inputs]);
    assert!(
        deployed.status.success(),
        "deploy: {}\nsshd: {}",
        common::stderr(&deployed),
        server.log()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("created")).unwrap(),
        "created-by-ssh\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("configured")).unwrap(),
        "args: 2 [two words]\n"
    );
    let known = std::fs::read_to_string(home.join(".ssh/known_hosts")).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", server.port)),
        "{known}"
    );

    let events = sb.ok(&["events", "viassh", "--json"]);
    assert!(events.contains("stdout: configured"), "{events}");
    let key_line = key.lines().nth(1).unwrap();
    assert!(
        !events.contains(key_line),
        "a line of the key leaked into events"
    );
    assert!(events.contains("stdout: ******"), "{events}");

    let undeployed = run(&["undeploy", "viassh"]);
    assert!(
        undeployed.status.success(),
        "undeploy: {}",
        common::stderr(&undeployed)
    );
    assert!(!out.exists(), "delete ran `rm -rf` on the host");
}

/// The same blueprint refused when the host is unknown and new keys are not accepted: the
/// deploy fails with the host-key error, and nothing ran.
#[test]
fn deploy_refuses_an_unknown_host() {
    let server = Sshd::start(&scratch("e2e-unknown"));
    let sb = Sandbox::new("ssh-e2e-unknown");
    let out = sb.dir.join("remote-out");
    sb.file("blueprint.yaml", BLUEPRINT);
    sb.file("scripts/configure.sh", CONFIGURE);
    let inputs = serde_json::json!({
        "port": server.port, "user": server.user,
        "key": server.client_key("ed25519").private_text(),
        "out": out.display().to_string(), "accept": false,
    })
    .to_string();
    let failed = sb
        .command(&["deploy", "blueprint.yaml", "-d", "refused", "-i", &inputs])
        .env("HOME", sb.dir.join("home"))
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", common::stderr(&failed));
    let err = common::stderr(&failed);
    assert!(err.contains("is not in"), "{err}");
    assert!(err.contains(&server.host_key().fingerprint()), "{err}");
    assert!(!out.exists());
}
