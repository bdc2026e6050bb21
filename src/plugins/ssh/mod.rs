//! The `ssh` plugin: runs commands on a remote host over SSH (RFC 4251–4254, through russh),
//! like Cloudify's fabric plugin's `run_commands`.
//!
//! Operation `ssh.run` (blueprints declare the plugin with `imports: [plugin:ssh]`):
//! - what to run: `command` (one string), `commands` (a list, run in order on one connection,
//!   stopping at the first that fails) or `script` (a file of the blueprint, sent on stdin to
//!   `bash -s`, with `args` after `--`); `stdin` (text) goes to each command's standard input.
//! - where: [`host_spec`] reads the connection from, in order of precedence, the input
//!   `fabric_env` (a mapping, Fabric's names), the operation's inputs, the node's properties, the
//!   node's `agent_config` property (a Compute node's login) and, for the host only, the
//!   instance's runtime property `ip`.
//!
//! Each stdout/stderr line becomes a `log` event as it arrives, with secret values (key text,
//! passphrases, inputs named `*password`, `*secret`, `*token`) replaced by `******`. A non-zero
//! exit fails the operation with the status and the last stderr lines (retried up to
//! `max_retries`); host-key, key and authentication problems are never retried; a command
//! timeout is retried only with `timeout_recoverable`, like a script's.
//!
//! Other plugins call [`run_on`] with a [`HostSpec`] (built by [`host_spec`] from their own
//! properties, which accept the Kubernetes master's `ssh_user`/`ssh_keyfilename`/`ssh_port`
//! spellings too). The client itself is [`client`].

pub mod client;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value as Json};

pub use client::{HostSpec, KeySource, Output, SshError, Stream, run_on};

use super::{OpError, OpFuture, OperationContext, Plugin};

pub struct SshPlugin;

impl Plugin for SshPlugin {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(async move {
            tokio::select! {
                r = run(&ctx) => r,
                _ = super::cancelled(ctx.cancel.clone()) => {
                    Err(OpError::NonRecoverable("cancelled".to_string()))
                }
            }
        })
    }

    fn has_function(&self, function: &str) -> bool {
        function == "run"
    }
}

/// Why a host spec or a command could not be made from an operation's inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no host to connect to: set `host` (or `ip`) as an input or a node property")]
    NoHost,
    #[error("no user to log in as: set `user` as an input or a node property")]
    NoUser,
    #[error("no private key: set `key_filename` (a file) or `key` (the key text)")]
    NoKey,
    #[error("`{name}` must be {expected}, not {found}")]
    Type {
        name: String,
        expected: &'static str,
        found: String,
    },
    #[error("give exactly one of `command`, `commands` and `script` (found {found})")]
    What { found: String },
    #[error("`stdin` cannot be used with `script`, which is itself sent on stdin")]
    StdinWithScript,
    #[error("script `{0}` is not in the deployment's blueprint files")]
    NoScript(String),
}

/// The connection described by `layers` (earlier layers win), with relative file names
/// resolved against `base` (the blueprint's directory).
pub fn host_spec(layers: &[&Map<String, Json>], base: &Path) -> Result<HostSpec, SpecError> {
    let get = |names: &[&str]| -> Option<(String, &Json)> {
        layers.iter().find_map(|layer| {
            names.iter().find_map(|n| {
                layer
                    .get(*n)
                    .filter(|v| !v.is_null() && v.as_str() != Some(""))
                    .map(|v| (n.to_string(), v))
            })
        })
    };
    let text = |names: &[&str]| -> Result<Option<String>, SpecError> {
        match get(names) {
            None => Ok(None),
            Some((_, Json::String(s))) => Ok(Some(s.clone())),
            Some((_, Json::Number(n))) => Ok(Some(n.to_string())),
            Some((name, other)) => Err(type_error(name, "a string", other)),
        }
    };
    let seconds = |names: &[&str]| -> Result<Option<Duration>, SpecError> {
        match get(names) {
            None => Ok(None),
            Some((name, v)) => number(v)
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(|s| Some(Duration::from_secs_f64(s)))
                .ok_or_else(|| type_error(name, "a positive number of seconds", v)),
        }
    };
    let host = text(&["host_string", "host", "ip"])?.ok_or(SpecError::NoHost)?;
    let port = match get(&["ssh_port", "port"]) {
        None => 22,
        Some((name, v)) => number(v)
            .filter(|p| *p >= 1.0 && *p <= 65535.0 && p.fract() == 0.0)
            .map(|p| p as u16)
            .ok_or_else(|| type_error(name, "a port number", v))?,
    };
    let user = text(&["user", "ssh_user"])?.ok_or(SpecError::NoUser)?;
    let key = match (text(&["key"])?, text(&["key_filename", "ssh_keyfilename"])?) {
        (Some(k), _) => KeySource::Text(k),
        (None, Some(f)) => KeySource::File(file_path(&f, base)),
        (None, None) => return Err(SpecError::NoKey),
    };
    let accept_new_host_keys = match get(&["accept_new_host_keys"]) {
        None => false,
        Some((_, Json::Bool(b))) => *b,
        Some((_, Json::String(s))) if s == "true" || s == "false" => s == "true",
        Some((name, other)) => return Err(type_error(name, "true or false", other)),
    };
    Ok(HostSpec {
        host,
        port,
        user,
        key,
        key_passphrase: text(&["key_passphrase"])?,
        known_hosts: text(&["known_hosts_file"])?.map(|f| file_path(&f, base)),
        accept_new_host_keys,
        connect_timeout: seconds(&["timeout", "connect_timeout"])?
            .unwrap_or(client::DEFAULT_CONNECT_TIMEOUT),
        command_timeout: seconds(&["command_timeout"])?,
    })
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn type_error(name: String, expected: &'static str, found: &Json) -> SpecError {
    SpecError::Type {
        name,
        expected,
        found: match found {
            Json::String(_) | Json::Number(_) | Json::Bool(_) => found.to_string(),
            Json::Array(_) => "a list".to_string(),
            Json::Object(_) => "a mapping".to_string(),
            Json::Null => "null".to_string(),
        },
    }
}

/// `~/…` from the home directory, relative paths from `base`.
fn file_path(name: &str, base: &Path) -> PathBuf {
    if let Some(rest) = name.strip_prefix("~/")
        && let Some(home) = std::env::home_dir()
    {
        return home.join(rest);
    }
    base.join(name)
}

/// What one `ssh.run` runs: commands, each with its standard input.
#[derive(Debug, PartialEq, Eq)]
struct Work {
    commands: Vec<String>,
    stdin: Option<Vec<u8>>,
}

fn work(inputs: &Map<String, Json>, resources: &Path) -> Result<Work, SpecError> {
    let given: Vec<&str> = ["command", "commands", "script"]
        .into_iter()
        .filter(|k| inputs.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if given.len() != 1 {
        return Err(SpecError::What {
            found: if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            },
        });
    }
    let stdin = match inputs.get("stdin") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => return Err(type_error("stdin".to_string(), "a string", other)),
    };
    match given[0] {
        "command" => match &inputs["command"] {
            Json::String(c) => Ok(Work {
                commands: vec![c.clone()],
                stdin,
            }),
            other => Err(type_error("command".to_string(), "a string", other)),
        },
        "commands" => {
            let list = inputs["commands"]
                .as_array()
                .filter(|l| !l.is_empty() && l.iter().all(Json::is_string));
            match list {
                Some(l) => Ok(Work {
                    commands: l
                        .iter()
                        .filter_map(Json::as_str)
                        .map(String::from)
                        .collect(),
                    stdin,
                }),
                None => Err(type_error(
                    "commands".to_string(),
                    "a non-empty list of strings",
                    &inputs["commands"],
                )),
            }
        }
        _ => {
            if stdin.is_some() {
                return Err(SpecError::StdinWithScript);
            }
            let Json::String(script) = &inputs["script"] else {
                return Err(type_error(
                    "script".to_string(),
                    "a file name",
                    &inputs["script"],
                ));
            };
            let body = std::fs::read(resources.join(script))
                .map_err(|_| SpecError::NoScript(script.clone()))?;
            let mut command = "bash -s".to_string();
            match inputs.get("args") {
                None | Some(Json::Null) => {}
                Some(Json::Array(args)) => {
                    command.push_str(" --");
                    for a in args {
                        let a = match a {
                            Json::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        command.push(' ');
                        command.push_str(&shell_quote(&a));
                    }
                }
                Some(other) => return Err(type_error("args".to_string(), "a list", other)),
            }
            Ok(Work {
                commands: vec![command],
                stdin: Some(body),
            })
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub use crate::secrets::Mask;

/// The mask of a host: the key text and its lines, the passphrase, and values in `layers`
/// named `*password`, `*secret` or `*token`, plus every secret of the execution
/// (`get_secret`), so that what the plugin prints and returns is masked before it reaches the
/// recorder (which masks the execution's secrets again).
pub fn mask(
    spec: &HostSpec,
    layers: &[&Map<String, Json>],
    execution: &crate::secrets::Revealed,
) -> Mask {
    let mut mask = execution.mask().clone();
    if let KeySource::Text(k) = &spec.key {
        mask.add_text(k.trim());
        // A line of the key may show on its own (an echoed file, an error quoting a line).
        for line in k
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= 8 && !l.starts_with("-----"))
        {
            mask.add_text(line);
        }
    }
    if let Some(p) = &spec.key_passphrase {
        mask.add_text(p);
    }
    for layer in layers {
        for (name, value) in layer.iter() {
            let name = name.to_ascii_lowercase();
            if ["password", "secret", "token"]
                .iter()
                .any(|s| name.ends_with(s))
                && let Some(v) = value.as_str()
            {
                mask.add_text(v);
            }
        }
    }
    mask
}

async fn run(ctx: &OperationContext) -> Result<Option<Json>, OpError> {
    let runtime = ctx.instances.runtime_properties(&ctx.instance_id);
    let fabric_env = match ctx.inputs.get("fabric_env") {
        Some(Json::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let host_only: Map<String, Json> = runtime
        .get("ip")
        .map(|ip| [("ip".to_string(), ip.clone())].into_iter().collect())
        .unwrap_or_default();
    // Cloudify's Compute nodes keep the agent's login in `agent_config` (user, key, port).
    let agent_config = match ctx.node_properties.get("agent_config") {
        Some(Json::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let layers = [
        &fabric_env,
        &ctx.inputs,
        &*ctx.node_properties,
        &agent_config,
        &host_only,
    ];
    let mut spec =
        host_spec(&layers, &ctx.resources).map_err(|e| OpError::NonRecoverable(e.to_string()))?;
    let mask = mask(&spec, &layers, &ctx.secrets);
    let work = work(&ctx.inputs, &ctx.resources)
        .map_err(|e| OpError::NonRecoverable(mask.apply(&e.to_string())))?;
    // The operation's own `timeout` bounds each command too.
    spec.command_timeout = match (spec.command_timeout, ctx.timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let conn = client::Connection::open(&spec)
        .await
        .map_err(|e| op_error(&e, &mask, ctx.timeout_recoverable))?;
    let mut result = Ok(None);
    for command in &work.commands {
        ctx.log(
            "info",
            format!(
                "running `{}` on {}@{}:{}",
                mask.apply(command),
                spec.user,
                spec.host,
                spec.port
            ),
        );
        let mut on_line = |stream: Stream, line: &str| {
            let level = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            ctx.log(level, mask.apply(line));
        };
        let out = conn
            .run(command, work.stdin.as_deref(), &mut on_line)
            .await
            .and_then(|o| o.checked(&spec, command));
        if let Err(e) = out {
            result = Err(op_error(&e, &mask, ctx.timeout_recoverable));
            break;
        }
    }
    conn.close().await;
    result
}

/// How the engine treats an SSH failure: what retrying cannot fix is not retried.
pub fn op_error(e: &SshError, mask: &Mask, timeout_recoverable: bool) -> OpError {
    let message = mask.apply(&e.to_string());
    match e {
        SshError::Connect { .. }
        | SshError::ConnectTimeout { .. }
        | SshError::Protocol { .. }
        | SshError::Exit { .. } => OpError::Failed(message),
        SshError::CommandTimeout { .. } if timeout_recoverable => OpError::Failed(message),
        _ => OpError::NonRecoverable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn inputs_win_over_properties_and_fabric_env_over_both() {
        let fabric = map(json!({"host_string": "10.0.0.9"}));
        let inputs = map(json!({"host": "10.0.0.2", "user": "me", "key_filename": "k"}));
        let props = map(json!({"ip": "10.0.0.1", "port": "2222", "user": "them",
                               "accept_new_host_keys": true, "timeout": 3}));
        let spec = host_spec(&[&fabric, &inputs, &props], Path::new("/bp")).unwrap();
        assert_eq!(spec.host, "10.0.0.9");
        assert_eq!(spec.user, "me");
        assert_eq!(spec.port, 2222);
        assert!(spec.accept_new_host_keys);
        assert_eq!(spec.connect_timeout, Duration::from_secs(3));
        assert!(matches!(spec.key, KeySource::File(ref p) if p == Path::new("/bp/k")));
        assert_eq!(spec.known_hosts, None);
    }

    #[test]
    fn kubernetes_master_spellings() {
        let props = map(json!({"ip": "m", "ssh_user": "ubuntu", "ssh_port": 2200,
                               "ssh_keyfilename": "/keys/id", "master_port": 6443}));
        let spec = host_spec(&[&props], Path::new("/bp")).unwrap();
        assert_eq!((spec.user.as_str(), spec.port), ("ubuntu", 2200));
        assert!(matches!(spec.key, KeySource::File(ref p) if p == Path::new("/keys/id")));
    }

    #[test]
    fn missing_or_wrong_connection_values_are_named() {
        let none = Map::new();
        assert_eq!(
            host_spec(&[&none], Path::new("/")).unwrap_err(),
            SpecError::NoHost
        );
        let no_key = map(json!({"host": "h", "user": "u"}));
        assert_eq!(
            host_spec(&[&no_key], Path::new("/")).unwrap_err(),
            SpecError::NoKey
        );
        let bad_port = map(json!({"host": "h", "user": "u", "key": "k", "port": 70000}));
        assert!(matches!(
            host_spec(&[&bad_port], Path::new("/")).unwrap_err(),
            SpecError::Type { ref name, .. } if name == "port"
        ));
    }

    #[test]
    fn exactly_one_of_command_commands_script() {
        let dir = Path::new("/nonexistent");
        assert!(matches!(
            work(&Map::new(), dir),
            Err(SpecError::What { .. })
        ));
        let two = map(json!({"command": "a", "commands": ["b"]}));
        assert!(matches!(work(&two, dir), Err(SpecError::What { .. })));
        let list = map(json!({"commands": ["a", "b"], "stdin": "x"}));
        assert_eq!(
            work(&list, dir).unwrap(),
            Work {
                commands: vec!["a".into(), "b".into()],
                stdin: Some(b"x".to_vec())
            }
        );
        let missing = map(json!({"script": "s.sh"}));
        assert_eq!(
            work(&missing, dir).unwrap_err(),
            SpecError::NoScript("s.sh".into())
        );
    }

    #[test]
    fn script_args_are_quoted() {
        let dir = std::env::temp_dir().join(format!("windlass-ssh-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.sh"), "echo hi\n").unwrap();
        let w = work(
            &map(json!({"script": "s.sh", "args": ["a b", "it's", 3]})),
            &dir,
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(w.commands, [r"bash -s -- 'a b' 'it'\''s' '3'"]);
        assert_eq!(w.stdin.as_deref(), Some(&b"echo hi\n"[..]));
    }

    #[test]
    fn secrets_are_masked() {
        let layers = map(json!({"host": "h", "user": "u",
            "key": "-----BEGIN KEY-----\nAAAAsecretline1\nBBBBsecretline2\n-----END KEY-----\n",
            "db_password": "hunter22"}));
        let spec = host_spec(&[&layers], Path::new("/")).unwrap();
        let mask = mask(&spec, &[&layers], &crate::secrets::Revealed::none());
        assert_eq!(
            mask.apply("x AAAAsecretline1 y hunter22 z"),
            "x ****** y ****** z"
        );
        assert_eq!(mask.apply("nothing here"), "nothing here");
    }
}
