//! Secrets end to end with the real binary: `windlass secrets set|get|list|delete`, the key
//! file, `get_secret` reaching an operation while its value appears nowhere else (events, every
//! command's output, `instances --json`, `outputs`, executions, the raw bytes of the state
//! file), missing secrets refused before anything runs, and a wrong key refused clearly.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

use common::{Sandbox, output_with_stdin, stderr, strings_at};

/// The value that must never show.
const SECRET: &str = "s3cr3t-Value-93f1";
/// A JSON secret's leaf, read with `get_secret: [creds, password]`.
const LEAF: &str = "leaf-Pass-7c2e";

/// A sandbox whose commands use a key file outside the blueprint's directory, and record
/// every output so a test can search them all.
struct Secrets {
    sb: Sandbox,
    key: PathBuf,
    outputs: std::cell::RefCell<Vec<String>>,
}

impl Secrets {
    fn new(name: &str) -> Secrets {
        let sb = Sandbox::new(name);
        std::fs::create_dir_all(sb.dir.join("bp/scripts")).unwrap();
        let key = sb.dir.join("keys/secrets.key");
        Secrets {
            sb,
            key,
            outputs: Default::default(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.sb.command(args);
        c.env("WINDLASS_SECRETS_KEY", &self.key);
        c
    }

    fn record(&self, out: &Output) {
        let mut all = self.outputs.borrow_mut();
        all.push(String::from_utf8_lossy(&out.stdout).into_owned());
        all.push(stderr(out));
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.record(&out);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        stderr(&out)
    }

    /// `secrets set NAME -` with `value` on standard input.
    fn set_stdin(&self, name: &str, value: &str) {
        let out = output_with_stdin(
            self.command(&["secrets", "set", name, "-"]),
            format!("{value}\n").as_bytes(),
        );
        self.record(&out);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Every event of a deployment, one JSON line each, as text.
    fn events(&self, id: &str) -> String {
        self.ok(&["events", id, "--json"])
    }

    /// No output of any command so far, and no byte of the state files, holds `value`.
    fn assert_hidden(&self, value: &str) {
        for (i, text) in self.outputs.borrow().iter().enumerate() {
            assert!(!text.contains(value), "output {i} shows the secret: {text}");
        }
        self.assert_not_stored(value);
    }

    /// No byte of the state files holds `value`.
    fn assert_not_stored(&self, value: &str) {
        for suffix in ["", "-wal", "-shm"] {
            let path = self.sb.dir.join(format!("state.db{suffix}"));
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                    "{} holds the secret in clear",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn set_get_list_delete_from_an_argument_a_file_and_standard_input() {
    let s = Secrets::new("secrets-cli");
    assert!(!s.key.exists());
    let made = stderr(&s.run(&["secrets", "set", "from_arg", "value one"]));
    assert!(made.contains("secret `from_arg` created"), "{made}");
    let mode = std::fs::metadata(&s.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is private");
    assert_eq!(std::fs::read(&s.key).unwrap().len(), 32);
    let key = std::fs::read(&s.key).unwrap();

    s.sb.file("value.pem", "-----BEGIN X-----\nline two\n");
    s.ok(&["secrets", "set", "from_file", "--file", "value.pem"]);
    s.set_stdin("from.stdin", "typed-in");
    assert_eq!(s.ok(&["secrets", "get", "from_arg"]), "value one");
    assert_eq!(
        s.ok(&["secrets", "get", "from_file"]),
        "-----BEGIN X-----\nline two\n",
        "a file's value is kept as it is"
    );
    assert_eq!(
        s.ok(&["secrets", "get", "from.stdin"]),
        "typed-in",
        "standard input loses its one trailing newline"
    );
    let updated = stderr(&s.run(&["secrets", "set", "from_arg", "value two"]));
    assert!(updated.contains("updated"), "{updated}");
    assert_eq!(s.ok(&["secrets", "get", "from_arg"]), "value two");
    assert_eq!(
        std::fs::read(&s.key).unwrap(),
        key,
        "the key is never replaced"
    );

    let listed = s.json(&["secrets", "list", "--json"]);
    assert_eq!(
        strings_at(&listed, "name"),
        ["from.stdin", "from_arg", "from_file"]
    );
    for row in listed.as_array().unwrap() {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "created_at", "updated_at"]);
    }
    let text = s.ok(&["secrets", "list"]);
    assert!(
        text.contains("from_arg") && !text.contains("value two"),
        "{text}"
    );

    for bad in ["", "a b", "a/b", "naïve"] {
        let e = s.fails(&["secrets", "set", bad, "x"]);
        assert!(e.contains("a secret name is"), "{bad:?}: {e}");
    }
    let e = s.fails(&["secrets", "set", "empty", ""]);
    assert!(e.contains("empty"), "{e}");

    s.ok(&["secrets", "delete", "from_file"]);
    let out = s.run(&["secrets", "delete", "from_file"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no secret is named `from_file`"));
    let e = s.fails(&["secrets", "get", "from_file"]);
    assert!(e.contains("no secret is named `from_file`"), "{e}");
    s.assert_not_stored("value two");
    s.assert_not_stored("typed-in");
}

/// `app` gets the secret as a script input, a node property and a JSON secret's key; its
/// script writes them where the test reads them, echoes them on stdout and stderr, logs them
/// through `ctx` and sets one into a runtime property. Outputs use it whole and in a concat.
const BLUEPRINT: &str = r#"
tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_types:
  App:
    derived_from: cloudify.nodes.Root
    properties:
      token: {}
node_templates:
  app:
    type: App
    properties:
      token: { get_secret: db_password }
    interfaces:
      cloudify.interfaces.lifecycle:
        create:
          implementation: scripts/create.sh
          inputs:
            PASSWORD: { get_secret: db_password }
            LEAF: { get_secret: [creds, password] }
            SEEN: SEEN_PATH
outputs:
  password:
    value: { get_secret: db_password }
  url:
    value: { concat: ['pg://app:', { get_secret: db_password }, '@db'] }
  copied:
    value: { get_attribute: [app, copied] }
"#;

const SCRIPT: &str = r#"#!/bin/bash
set -e
printf '%s\n%s\n%s\n' "$PASSWORD" "$(ctx node properties token)" "$LEAF" > "$SEEN"
echo "stdout has $PASSWORD and $LEAF"
echo "stderr has $PASSWORD" >&2
ctx logger info "logged $PASSWORD"
ctx instance runtime-properties copied "$PASSWORD"
ctx instance runtime-properties nested.leaf "x-$LEAF"
"#;

fn deployable(s: &Secrets) -> PathBuf {
    let seen = s.sb.dir.join("seen.txt");
    s.sb.file(
        "bp/blueprint.yaml",
        &BLUEPRINT.replace("SEEN_PATH", &seen.display().to_string()),
    );
    s.sb.file("bp/scripts/create.sh", SCRIPT);
    seen
}

#[test]
fn a_secret_reaches_its_operation_and_nothing_else() {
    let s = Secrets::new("secrets-deploy");
    let seen = deployable(&s);
    s.ok(&["secrets", "set", "db_password", SECRET]);
    s.set_stdin(
        "creds",
        &format!(r#"{{"user": "app", "password": "{LEAF}"}}"#),
    );
    s.ok(&["deploy", "bp/blueprint.yaml", "-d", "d", "-v"]);

    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{SECRET}\n{SECRET}\n{LEAF}\n"),
        "the input, the node property and the JSON key reach the script"
    );
    let events = s.events("d");
    assert!(events.contains("stdout has ****** and ******"), "{events}");
    assert!(events.contains("stderr has ******"), "{events}");
    assert!(events.contains("logged ******"), "{events}");
    let instances = s.json(&["instances", "d", "--json"]);
    let props = &instances[0]["runtime_properties"];
    assert_eq!(props["copied"], "******", "{instances}");
    assert_eq!(props["nested"]["leaf"], "x-******", "{instances}");
    let outputs = s.json(&["outputs", "d", "--json"]);
    assert_eq!(outputs["password"], "******");
    assert_eq!(outputs["url"], "pg://app:******@db");
    assert_eq!(outputs["copied"], "******");
    s.ok(&["outputs", "d"]);
    s.ok(&["instances", "d"]);
    s.ok(&["executions", "d", "--json"]);
    // A later workflow sees the secret too, and hides it the same way.
    s.ok(&[
        "run",
        "d",
        "execute_operation",
        "-p",
        r#"{"operation": "cloudify.interfaces.lifecycle.create"}"#,
        "-v",
    ]);
    s.events("d");
    // The REST API reads the same: outputs, instances, events, executions, the deployment.
    {
        let manager = common::manager::Manager::start(&s.sb, &[]);
        for path in ["outputs", "instances", "events", "executions", ""] {
            let (status, body) = manager.request(
                "GET",
                format!("/api/v1/deployments/d/{path}").trim_end_matches('/'),
                None,
            );
            assert_eq!(status, 200, "{path}: {body}");
            if path == "outputs" {
                assert_eq!(body["password"], "******", "{body}");
            }
            s.outputs.borrow_mut().push(body.to_string());
        }
    }
    s.assert_hidden(SECRET);
    s.assert_hidden(LEAF);

    // A failing operation whose error quotes the secret: the error is masked wherever shown.
    s.sb.file(
        "bp/scripts/create.sh",
        "#!/bin/bash\necho \"cannot log in with $PASSWORD\" >&2\nexit 1\n",
    );
    let e = s.fails(&["deploy", "bp/blueprint.yaml", "-d", "bad"]);
    assert!(e.contains("cannot log in with ******"), "{e}");
    s.ok(&["executions", "bad", "--json"]);
    s.events("bad");
    s.assert_hidden(SECRET);
}

#[test]
fn missing_secrets_are_named_at_once_and_nothing_runs() {
    let s = Secrets::new("secrets-missing");
    let seen = deployable(&s);
    s.ok(&["secrets", "set", "creds", r#"{"user": "app"}"#]);
    let out = s.run(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains("secrets that do not exist"), "{e}");
    assert!(
        e.contains("`db_password`: node app, property token; node app, operation cloudify.interfaces.lifecycle.create, input PASSWORD; output password; output url"),
        "{e}"
    );
    assert!(!seen.exists(), "nothing ran");
    assert_eq!(
        s.json(&["list", "--json"]),
        serde_json::json!([]),
        "nothing stored"
    );

    // A key the JSON secret lacks is refused the same way, before anything runs.
    s.ok(&["secrets", "set", "db_password", SECRET]);
    let e = s.fails(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
    assert!(
        e.contains("secret `creds` has no key `password` (node app, operation cloudify.interfaces.lifecycle.create, input LEAF)"),
        "{e}"
    );
    assert!(!seen.exists(), "nothing ran");

    // Deployed, then a secret goes: later workflows are refused before an execution exists,
    // and the outputs that use it say so.
    s.ok(&[
        "secrets",
        "set",
        "creds",
        &format!(r#"{{"password": "{LEAF}"}}"#),
    ]);
    s.ok(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
    std::fs::remove_file(&seen).unwrap();
    s.ok(&["secrets", "delete", "db_password"]);
    let before = s
        .json(&["executions", "d", "--json"])
        .as_array()
        .unwrap()
        .len();
    let e = s.fails(&[
        "run",
        "d",
        "execute_operation",
        "-p",
        r#"{"operation": "cloudify.interfaces.lifecycle.create"}"#,
    ]);
    assert!(e.contains("`db_password`"), "{e}");
    let after = s
        .json(&["executions", "d", "--json"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "no execution was recorded");
    assert!(!seen.exists(), "nothing ran");
    let outputs = s.json(&["outputs", "d", "--json"]);
    assert_eq!(
        outputs["password"],
        "<error: get_secret: secret `db_password` does not exist>"
    );
    s.assert_hidden(SECRET);
}

#[test]
fn a_wrong_or_exposed_key_is_a_clear_error() {
    let s = Secrets::new("secrets-key");
    s.ok(&["secrets", "set", "pw", SECRET]);
    let original = std::fs::read(&s.key).unwrap();

    // Another key: nothing decrypts, and the error names the key file.
    std::fs::write(&s.key, [9u8; 32]).unwrap();
    let e = s.fails(&["secrets", "get", "pw"]);
    assert!(
        e.contains(&format!(
            "cannot decrypt secret `pw` with the key file {}",
            s.key.display()
        )),
        "{e}"
    );
    s.sb.file(
        "bp/blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_types:\n  A: { derived_from: cloudify.nodes.Root, properties: { p: {} } }\nnode_templates:\n  a:\n    type: A\n    properties: { p: { get_secret: pw } }\n",
    );
    let e = s.fails(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
    assert!(e.contains("cannot decrypt secret `pw`"), "{e}");

    // Readable by others, or not a key at all: refused, with what to do.
    std::fs::write(&s.key, &original).unwrap();
    std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = s.fails(&["secrets", "get", "pw"]);
    assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
    let e = s.fails(&["secrets", "set", "other", "x"]);
    assert!(
        e.contains("mode 644"),
        "a set never replaces a refused key: {e}"
    );
    std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&s.key, b"too short").unwrap();
    let e = s.fails(&["secrets", "get", "pw"]);
    assert!(e.contains("holds 9 bytes"), "{e}");

    // No key file at all while the store holds secrets.
    std::fs::remove_file(&s.key).unwrap();
    let e = s.fails(&["secrets", "get", "pw"]);
    assert!(
        e.contains("does not exist") && e.contains("WINDLASS_SECRETS_KEY"),
        "{e}"
    );

    // The right key again: the value is back, unchanged.
    std::fs::write(&s.key, &original).unwrap();
    std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(s.ok(&["secrets", "get", "pw"]), SECRET);
}
