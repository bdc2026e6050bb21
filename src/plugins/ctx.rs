//! The `ctx` command scripts call, and the per-operation server that answers it.
//!
//! Every script operation gets its own Unix socket, served only while that operation runs and
//! bound to that one operation's context; the script finds it through `WINDLASS_CTX_SOCKET`
//! and a `ctx` on its PATH (the windlass binary itself, run under that name). So two scripts
//! running at once never see each other's context. One request per connection: a JSON line
//! `{"args": [...]}` answered by `{"ok": true, "value": …}` or `{"ok": false, "error": "…"}`.
//! The commands are those of Cloudify's script plugin (`ctx logger info MSG`, `ctx instance
//! runtime-properties KEY [VALUE]`, `ctx node properties KEY`, `ctx source|target …`,
//! `ctx operation retry MSG`, `ctx abort-operation MSG`, `ctx returns VALUE`, …).
//!
//! The `cloudify` Python package ([`super::python`]) speaks the same protocol with a few more
//! commands: `operation-context` (everything a script's `ctx` shows, as one JSON document),
//! `instance replace-runtime-properties JSON` (a script's dict saved whole, deletions included),
//! `operation retry-after SECONDS MSG` and `operation recoverable-error SECONDS|- MSG` (an
//! `OperationRetry` / `RecoverableError` with its `retry_after`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::{OperationContext, Side};

pub const SOCKET_ENV: &str = "WINDLASS_CTX_SOCKET";

/// What a script asked for besides reading and writing properties.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub retry: Option<String>,
    /// When the retry asked for should run (else the operation's retry interval).
    pub retry_after: Option<Duration>,
    pub abort: Option<String>,
    /// A recoverable failure the script reported itself, with its `retry_after`.
    pub recoverable: Option<(String, Option<Duration>)>,
    pub returns: Option<Json>,
}

/// A running ctx server for one operation.
pub struct Server {
    pub socket: PathBuf,
    pub outcome: Arc<Mutex<Outcome>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn start(ctx: OperationContext, dir: &Path) -> std::io::Result<Server> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = dir.join(format!("ctx-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let shared = outcome.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReaderAsync::new(read)
                    .read_line(&mut line)
                    .await
                    .is_err()
                {
                    continue;
                }
                let reply = match serde_json::from_str::<Json>(&line) {
                    Ok(req) => {
                        let args: Vec<String> = req["args"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|v| v.as_str().unwrap_or_default().to_string())
                                    .collect()
                            })
                            .unwrap_or_default();
                        // Deployment-level reads may name instances a scale does not track.
                        let words: Vec<&str> = args
                            .iter()
                            .map(String::as_str)
                            .filter(|a| !matches!(*a, "-j" | "--json-arg" | "--json-output"))
                            .collect();
                        let loaded = match words[..] {
                            ["node-instances", ..] => ctx.instances.load_all().await,
                            ["node-instance", id, ..] => ctx.instances.load(id).await,
                            _ => Ok(()),
                        };
                        match loaded
                            .map_err(|e| e.to_string())
                            .and_then(|()| handle(&ctx, &shared, &args))
                        {
                            Ok(value) => json!({"ok": true, "value": value}),
                            Err(e) => json!({"ok": false, "error": e}),
                        }
                    }
                    Err(e) => json!({"ok": false, "error": format!("malformed request: {e}")}),
                };
                let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
            }
        });
        Ok(Server {
            socket,
            outcome,
            task,
        })
    }

    pub fn stop(self) -> Outcome {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
        self.outcome.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

type BufReaderAsync<R> = tokio::io::BufReader<R>;

/// Answer one ctx command.
fn handle(
    ctx: &OperationContext,
    outcome: &Mutex<Outcome>,
    args: &[String],
) -> Result<Json, String> {
    let mut json_args = false;
    let mut rest: Vec<&str> = Vec::new();
    for a in args {
        match a.as_str() {
            "-j" | "--json-arg" => json_args = true,
            "--json-output" => {}
            other => rest.push(other),
        }
    }
    let value_of = |words: &[&str]| -> Result<Json, String> {
        let text = words.join(" ");
        if json_args {
            serde_json::from_str(&text).map_err(|e| format!("-j: the value is not JSON: {e}"))
        } else {
            Ok(Json::String(text))
        }
    };
    match rest.as_slice() {
        [] => Err("usage: ctx <logger|deployment|node|instance|source|target|operation|abort-operation|returns> …".to_string()),
        ["logger", level, msg @ ..] => {
            ctx.log(level, msg.join(" "));
            Ok(Json::Null)
        }
        ["deployment", "id"] => Ok(json!(ctx.deployment_id)),
        ["operation", "name"] => Ok(json!(ctx.operation)),
        ["operation", "retry", msg @ ..] => {
            set(outcome, |o| o.retry = Some(msg.join(" ")));
            Ok(Json::Null)
        }
        ["operation", "retry-after", after, msg @ ..] => {
            let after = seconds(after)?;
            set(outcome, |o| {
                o.retry = Some(msg.join(" "));
                o.retry_after = after;
            });
            Ok(Json::Null)
        }
        ["operation", "recoverable-error", after, msg @ ..] => {
            let after = seconds(after)?;
            set(outcome, |o| o.recoverable = Some((msg.join(" "), after)));
            Ok(Json::Null)
        }
        ["operation", "retry-number"] => Ok(json!(ctx.retry_number)),
        ["operation", "max-retries"] => Ok(json!(ctx.max_retries)),
        ["operation-context"] => Ok(snapshot(ctx)),
        ["abort-operation", msg @ ..] => {
            set(outcome, |o| o.abort = Some(msg.join(" ")));
            Ok(Json::Null)
        }
        ["returns", value @ ..] => {
            let v = value_of(value)?;
            set(outcome, |o| o.returns = Some(v));
            Ok(Json::Null)
        }
        ["node", rest @ ..] => node(rest, &ctx.node_id, &ctx.node_properties),
        // Deployment-level access, for workflow scripts (and any operation).
        ["node-instances", filter @ ..] => Ok(Json::Array(
            ctx.instances
                .all()
                .into_iter()
                .filter(|(_, node, _, _)| filter.is_empty() || filter.contains(&node.as_str()))
                .map(|(id, node, state, props)| json!({"id": id, "node_id": node, "state": state, "runtime_properties": props}))
                .collect(),
        )),
        ["node-instance", id, rest @ ..] => {
            if !ctx.instances.all().iter().any(|(i, ..)| i == id) {
                return Err(format!("no node instance `{id}`"));
            }
            instance(ctx, id, rest, value_of)
        }
        ["instance", rest @ ..] => instance(ctx, &ctx.instance_id, rest, value_of),
        [side @ ("source" | "target"), what, rest @ ..] => {
            let Some(rel) = &ctx.relationship else {
                return Err(format!("`ctx {side}` is only available in relationship operations"));
            };
            let (inst, node_id, props) = if *side == "source" {
                (&rel.source_instance, &rel.source_node, &rel.source_properties)
            } else {
                (&rel.target_instance, &rel.target_node, &rel.target_properties)
            };
            match *what {
                "node" => node(rest, node_id, props),
                "instance" => instance(ctx, inst, rest, value_of),
                other => Err(format!("unknown ctx command `{side} {other}`; use `{side} node …` or `{side} instance …`")),
            }
        }
        other => Err(format!("unknown ctx command `{}`", other.join(" "))),
    }
}

/// `SECONDS` (a non-negative number) or `-` for none.
fn seconds(text: &str) -> Result<Option<Duration>, String> {
    if text == "-" {
        return Ok(None);
    }
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(Some)
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))
}

/// Everything a Python script's `ctx` shows, read once when the script starts: the operation,
/// the deployment, the inputs, and the node and instance (or both ends of a relationship) with
/// their types, properties, runtime properties and host address.
pub fn snapshot(ctx: &OperationContext) -> Json {
    let topology = ctx.topology.as_ref();
    let end = |node_id: &str, properties: &Map<String, Json>, instance_id: &str| {
        let node = topology.and_then(|t| t.compiled.nodes.iter().find(|n| n.id.0 == node_id));
        json!({
            "node": {
                "id": node_id,
                "type": node.map(|n| n.type_name.clone()),
                "type_hierarchy": node.map(|n| n.type_hierarchy.clone()),
                "properties": properties,
            },
            "instance": {
                "id": instance_id,
                "runtime_properties": ctx.instances.runtime_properties(instance_id),
                "host_ip": host_ip(ctx, instance_id),
            },
        })
    };
    let mut out = json!({
        "deployment_id": ctx.deployment_id,
        // Cloudify's local mode names the blueprint as the deployment; windlass does too.
        "blueprint_id": ctx.deployment_id,
        "execution_id": ctx.execution_id,
        "operation": {
            "name": ctx.operation,
            "retry_number": ctx.retry_number,
            "max_retries": ctx.max_retries,
        },
        "inputs": ctx.inputs,
        "resources": ctx.resources,
    });
    if let Some(rel) = &ctx.relationship {
        out["source"] = end(
            &rel.source_node,
            &rel.source_properties,
            &rel.source_instance,
        );
        out["target"] = end(
            &rel.target_node,
            &rel.target_properties,
            &rel.target_instance,
        );
    } else if !ctx.instance_id.is_empty() {
        let this = end(&ctx.node_id, &ctx.node_properties, &ctx.instance_id);
        out["node"] = this["node"].clone();
        out["instance"] = this["instance"].clone();
    }
    out
}

/// Cloudify's `host_ip`: the `ip` runtime property of the instance's host, else its node's `ip`
/// property; `{"error": …}` when there is no host or no address (raised only when read).
fn host_ip(ctx: &OperationContext, instance_id: &str) -> Json {
    let Some(t) = &ctx.topology else {
        return json!({"error": "host_id missing"});
    };
    let host = t
        .plan
        .instances
        .iter()
        .find(|i| i.id.0 == instance_id)
        .and_then(|i| i.host)
        .and_then(|h| t.plan.instances.get(h as usize));
    let Some(host) = host else {
        return json!({"error": "host_id missing"});
    };
    let nonempty = |v: Option<&Json>| v.filter(|v| !v.is_null() && **v != json!("")).cloned();
    let runtime = ctx.instances.runtime_properties(&host.id.0);
    nonempty(runtime.get("ip"))
        .or_else(|| nonempty(t.compiled.nodes.get(host.node)?.properties.get("ip")))
        .map_or_else(
            || json!({"error": format!("could not find ip for host node instance: {}", host.id.0)}),
            |ip| json!({"ip": ip}),
        )
}

fn set(outcome: &Mutex<Outcome>, f: impl FnOnce(&mut Outcome)) {
    if let Ok(mut o) = outcome.lock() {
        f(&mut o);
    }
}

fn node(args: &[&str], id: &str, properties: &Map<String, Json>) -> Result<Json, String> {
    match args {
        ["id"] | ["name"] => Ok(json!(id)),
        ["properties"] => Ok(Json::Object(properties.clone())),
        ["properties", key] => Ok(lookup(&Json::Object(properties.clone()), key)),
        other => Err(format!("unknown ctx command `node {}`", other.join(" "))),
    }
}

fn instance(
    ctx: &OperationContext,
    id: &str,
    args: &[&str],
    value_of: impl Fn(&[&str]) -> Result<Json, String>,
) -> Result<Json, String> {
    match args {
        ["id"] => Ok(json!(id)),
        ["runtime-properties"] | ["runtime_properties"] => {
            Ok(Json::Object(ctx.instances.runtime_properties(id)))
        }
        ["runtime-properties" | "runtime_properties", key] => Ok(lookup(
            &Json::Object(ctx.instances.runtime_properties(id)),
            key,
        )),
        ["replace-runtime-properties", value @ ..] => match value_of(value)? {
            Json::Object(properties) => {
                ctx.instances.replace_runtime_properties(id, properties);
                Ok(Json::Null)
            }
            _ => Err("replace-runtime-properties takes a JSON object (use -j)".to_string()),
        },
        ["runtime-properties" | "runtime_properties", key, value @ ..] => {
            let v = value_of(value)?;
            ctx.instances.set_runtime_property(id, key, v)?;
            Ok(Json::Null)
        }
        other => Err(format!(
            "unknown ctx command `instance {}`",
            other.join(" ")
        )),
    }
}

/// `a.b.0.c` into a value; missing → null.
pub fn lookup(value: &Json, dotted: &str) -> Json {
    let mut cur = value;
    for part in dotted.split('.') {
        cur = match cur {
            Json::Object(m) => match m.get(part) {
                Some(v) => v,
                None => return Json::Null,
            },
            Json::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => return Json::Null,
            },
            _ => return Json::Null,
        };
    }
    cur.clone()
}

/// `ctx` as a command: send the arguments to the operation's server and print the answer.
pub fn client_main(args: Vec<String>) -> std::process::ExitCode {
    let Some(socket) = std::env::var_os(SOCKET_ENV) else {
        eprintln!("ctx: not running inside a windlass operation ({SOCKET_ENV} is not set)");
        return std::process::ExitCode::from(2);
    };
    let result = (|| -> std::io::Result<Json> {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)?;
        stream.write_all(format!("{}\n", json!({ "args": args })).as_bytes())?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        serde_json::from_str(&line).map_err(std::io::Error::other)
    })();
    match result {
        Ok(reply) if reply["ok"] == true => {
            match &reply["value"] {
                Json::Null => {}
                Json::String(s) => println!("{s}"),
                other => println!("{other}"),
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!("ctx: {}", reply["error"].as_str().unwrap_or("failed"));
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("ctx: cannot reach the operation's context: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Which end an operation is on, for messages.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Source => "source",
        Side::Target => "target",
    }
}
