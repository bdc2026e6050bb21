//! The `script` plugin: runs a blueprint script (any executable; `.py` with python3, `.sh`
//! with bash) for one operation.
//!
//! Inputs become environment variables (strings as they are, other values as JSON); a `ctx`
//! command bound to this operation only is first on PATH (see [`super::ctx`]). Standard output
//! and error lines become events; a non-zero exit fails the operation with the last lines of
//! standard error; `timeout` kills the script. `ctx operation retry` and `ctx abort-operation`
//! decide how a failure is treated.
//!
//! A `.py` script runs as Cloudify runs one, with `from cloudify import ctx` (see
//! [`super::python`]): the `cloudify` package's runner reports how it ended over the ctx socket
//! (abort, retry with its `retry_after`, a recoverable error, the returned value).
//!
//! [`run_guarded`] is the part every operation process shares (external plugins run through it
//! too, `super::external`): the script runs under a guard ([`super::guard`]) that leads its
//! process group and kills it when the engine dies; a script ended by a signal therefore shows
//! as exit code 128 + signal.
//! The group is recorded in the store while the operation runs (so a later command can stop
//! what survives a dead engine) and killed here when its guard dies of a signal.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::ctx::{self, SOCKET_ENV};
use super::guard;
use super::python;
use super::{OpError, OpFuture, OperationContext, Plugin};
use crate::store::{ProcessRecord, ProcessWrite, Write};

pub struct ScriptPlugin;

/// Last lines of standard error kept for the failure message.
const STDERR_TAIL: usize = 5;

impl Plugin for ScriptPlugin {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(run(ctx))
    }

    fn has_function(&self, function: &str) -> bool {
        function == "script_runner.tasks.run" || function == "script_runner.tasks.execute_workflow"
    }
}

impl ScriptPlugin {
    /// Run a workflow script (no node instance; `ctx` at deployment level).
    pub async fn run_workflow(&self, ctx: OperationContext) -> Result<Option<Json>, OpError> {
        run(ctx).await
    }
}

/// The directories an engine prepares next to the materialised resources.
pub fn bin_dir(resources: &Path) -> PathBuf {
    resources.parent().unwrap_or(resources).join("bin")
}

/// PATH for an operation's process: the engine's `bin` directory (with `ctx`) first.
fn path_env(resources: &Path) -> std::ffi::OsString {
    match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin_dir(resources)];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).unwrap_or(p)
        }
        None => bin_dir(resources).into_os_string(),
    }
}

pub fn socket_dir(resources: &Path) -> PathBuf {
    resources.parent().unwrap_or(resources).join("sockets")
}

async fn run(ctx: OperationContext) -> Result<Option<Json>, OpError> {
    let (script, path) = match ctx.inputs.get("script_source").and_then(Json::as_str) {
        Some(source) => ("inline script", write_inline(&ctx, source).await?),
        None => {
            let Some(script) = ctx.inputs.get("script_path").and_then(Json::as_str) else {
                return Err(OpError::NonRecoverable(
                    "the script plugin needs the input `script_path` or `script_source`"
                        .to_string(),
                ));
            };
            (script, ctx.resources.join(script))
        }
    };
    if !path.is_file() {
        return Err(OpError::NonRecoverable(format!(
            "script `{script}` is not in the deployment's blueprint files"
        )));
    }
    let Some(exe) = guard::windlass_exe() else {
        return Err(OpError::NonRecoverable(
            "cannot find the windlass binary to run the script under".to_string(),
        ));
    };
    let path_env = path_env(&ctx.resources);
    let is_python = path.extension().is_some_and(|e| e == "py");
    let python = if is_python {
        let interpreter = python::interpreter(Some(&path_env), script)
            .map_err(|e| OpError::NonRecoverable(e.to_string()))?;
        let dir = python::package_dir(&ctx.resources);
        python::write_package(&dir).map_err(|e| OpError::Failed(e.to_string()))?;
        Some((interpreter, dir))
    } else {
        None
    };
    let lifeline = guard::Lifeline::new()
        .map_err(|e| OpError::Failed(format!("cannot make the script's lifeline: {e}")))?;
    let mut command = match path.extension().and_then(|e| e.to_str()) {
        Some("py") if let Some((interpreter, dir)) = &python => {
            let mut c = lifeline.command(&exe, interpreter.as_os_str());
            c.args(["-u", "-m", python::RUNNER_MODULE])
                .arg(&path)
                .env("PYTHONPATH", python::python_path(dir));
            c
        }
        Some("sh") => {
            let mut c = lifeline.command(&exe, OsStr::new("bash"));
            c.arg(&path);
            c
        }
        _ => {
            // The guard runs it, so a refusal would come back as an exit code: check here that
            // it can be run at all, which is never worth retrying.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode());
            if mode & 0o111 == 0 {
                return Err(OpError::NonRecoverable(format!(
                    "cannot run `{script}`: it is not executable (name it .sh or .py, or make it executable)"
                )));
            }
            lifeline.command(&exe, path.as_os_str())
        }
    };
    for (k, v) in &ctx.inputs {
        if k == "script_path" || k == "script_source" || !is_env_name(k) {
            continue;
        }
        command.env(
            k,
            match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            },
        );
    }
    let label = format!("script `{script}`");
    run_guarded(ctx, &label, lifeline, command, None)
        .await
        .map(|finished| finished.returns)
}

/// How a process run by [`run_guarded`] ended well: what `ctx returns` set, and its last line
/// of standard output.
pub(crate) struct Finished {
    pub returns: Option<Json>,
    pub last_stdout: Option<String>,
}

/// Run `command` (made by `lifeline`, so under a guard) as the operation `ctx`: its own ctx
/// socket and `ctx` first on PATH, `stdin` written to it (else none), output lines as events,
/// its process group recorded while it runs, timeout and cancellation killing the group, and
/// `ctx operation retry` / `ctx abort-operation` deciding how it ended. `label` names it in
/// messages ("script `x.sh`").
pub(crate) async fn run_guarded(
    ctx: OperationContext,
    label: &str,
    mut lifeline: guard::Lifeline,
    mut command: tokio::process::Command,
    stdin: Option<Vec<u8>>,
) -> Result<Finished, OpError> {
    let server = ctx::Server::start(ctx.clone(), &socket_dir(&ctx.resources))
        .map_err(|e| OpError::Failed(format!("cannot open the ctx socket: {e}")))?;
    command
        .current_dir(&ctx.resources)
        .env("PATH", path_env(&ctx.resources))
        .env(SOCKET_ENV, &server.socket)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // No `kill_on_drop`: it would SIGKILL the guard alone and leave the script running
    // unguarded. If this future is dropped mid-run, dropping `lifeline` makes the guard kill
    // its whole group instead.
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            server.stop();
            return Err(OpError::NonRecoverable(format!("cannot run {label}: {e}")));
        }
    };
    lifeline.spawned();
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Written while the process runs (it may read only part, or nothing): a task of its
        // own, and the pipe closed at the end so the process sees end of input.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let group = RecordedGroup::start(&ctx, &child).await;
    lifeline.go();
    let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
    let stderr = child.stderr.take().map(|s| BufReader::new(s).lines());
    let out_ctx = ctx.clone();
    let out_task = tokio::spawn(async move {
        let mut last = None;
        if let Some(mut lines) = stdout {
            while let Ok(Some(line)) = lines.next_line().await {
                if !line.trim().is_empty() {
                    last = Some(line.clone());
                }
                out_ctx.log("stdout", line);
            }
        }
        last
    });
    let err_ctx = ctx.clone();
    let err_task = tokio::spawn(async move {
        let mut tail = VecDeque::new();
        if let Some(mut lines) = stderr {
            while let Ok(Some(line)) = lines.next_line().await {
                err_ctx.log("stderr", line.clone());
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        tail
    });
    let waited = tokio::select! {
        status = child.wait() => {
            if let Ok(s) = &status
                && s.signal().is_some()
            {
                // The guard never dies of a signal on its own: whoever killed it left its
                // script running without a guard. Stop the rest of the group.
                if let Some(g) = &group {
                    g.kill_survivors();
                }
            }
            Some(status)
        }
        _ = sleep_or_forever(ctx.timeout) => None,
        _ = super::cancelled(ctx.cancel.clone()) => {
            kill_group(&mut child).await;
            out_task.abort();
            err_task.abort();
            server.stop();
            return Err(OpError::NonRecoverable("cancelled".to_string()));
        }
    };
    let status = match waited {
        Some(s) => s,
        None => {
            kill_group(&mut child).await;
            out_task.abort();
            err_task.abort();
            server.stop();
            let message = format!(
                "{label} timed out after {:?}",
                ctx.timeout.unwrap_or_default()
            );
            return Err(if ctx.timeout_recoverable {
                OpError::Failed(message)
            } else {
                OpError::NonRecoverable(message)
            });
        }
    };
    let last_stdout = out_task.await.unwrap_or_default();
    let tail = err_task.await.unwrap_or_default();
    let outcome = server.stop();
    if let Some(message) = outcome.abort {
        return Err(OpError::NonRecoverable(message));
    }
    if let Some(message) = outcome.retry {
        return Err(OpError::Retry {
            message,
            after: outcome.retry_after,
        });
    }
    if let Some((message, after)) = outcome.recoverable {
        return Err(match after {
            Some(after) => OpError::Recoverable { message, after },
            None => OpError::Failed(message),
        });
    }
    match status {
        Ok(s) if s.success() => Ok(Finished {
            returns: outcome.returns,
            last_stdout,
        }),
        Ok(s) => {
            let code = s
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("code {c}"));
            let tail: Vec<String> = tail.into_iter().collect();
            Err(OpError::Failed(if tail.is_empty() {
                format!("{label} exited with {code}")
            } else {
                format!("{label} exited with {code}: {}", tail.join(" | "))
            }))
        }
        Err(e) => Err(OpError::Failed(format!("{label}: {e}"))),
    }
}

/// A running operation's process group as recorded in the store, forgotten when dropped (the
/// operation ended, however). A group of a dead engine stays recorded for `engine::orphans`.
struct RecordedGroup {
    recorder: crate::engine::events::Recorder,
    pgid: i64,
    started: i64,
}

impl RecordedGroup {
    async fn start(ctx: &OperationContext, child: &tokio::process::Child) -> Option<RecordedGroup> {
        let pgid = i64::from(child.id()?);
        // The guard cannot have been reaped yet: its /proc entry is there, zombie or not.
        let started = guard::start_time(pgid)?;
        ctx.recorder
            .write(Write::Process(ProcessWrite::Started(ProcessRecord {
                deployment: ctx.deployment_id.clone(),
                execution: ctx.execution_id.clone(),
                instance: Some(ctx.instance_id.clone()).filter(|i| !i.is_empty()),
                operation: ctx.operation.clone(),
                pgid,
                started,
                engine_pid: i64::from(std::process::id()),
                engine_started: guard::own_start_time(),
            })));
        // Durable before the script starts (the guard waits for `go`): a later command must find
        // it if this engine dies and the group survives. A failed write is reported by the
        // operation's own flush.
        let _ = ctx.recorder.flush().await;
        Some(RecordedGroup {
            recorder: ctx.recorder.clone(),
            pgid,
            started,
        })
    }

    /// Kill whatever remains in the group once its guard died.
    fn kill_survivors(&self) {
        // The group id stays ours while the group has members (its end is not recorded yet).
        if !guard::group_members(self.pgid).is_empty() {
            // SAFETY: killpg only sends a signal, to this operation's group.
            unsafe {
                libc::killpg(self.pgid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Drop for RecordedGroup {
    fn drop(&mut self) {
        self.recorder.write(Write::Process(ProcessWrite::Ended {
            pgid: self.pgid,
            started: self.started,
        }));
    }
}

/// Write a script given in the blueprint (`script_source`) to a file beside the execution's
/// resources, as Cloudify's script runner does: with a `#!` line it runs as written; otherwise
/// it is Python when python3 parses it, else a shell script.
async fn write_inline(ctx: &OperationContext, source: &str) -> Result<PathBuf, OpError> {
    let dir = ctx
        .resources
        .parent()
        .unwrap_or(&ctx.resources)
        .join("inline");
    let io =
        |e: std::io::Error| OpError::NonRecoverable(format!("cannot write the inline script: {e}"));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let source = dedent(source);
    let ext = if source.starts_with("#!") {
        ""
    } else if parses_as_python(&source).await {
        ".py"
    } else {
        ".sh"
    };
    let name: String = format!("{}-{}", ctx.instance_id, ctx.operation)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}{ext}"));
    tokio::fs::write(&path, &source).await.map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(io)?;
    Ok(path)
}

/// Remove the indentation every non-blank line shares (Python's `textwrap.dedent`).
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|l| l.get(indent..).unwrap_or("").to_string() + "\n")
        .collect()
}

async fn parses_as_python(source: &str) -> bool {
    let child = tokio::process::Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        if stdin.write_all(source.as_bytes()).await.is_err() {
            return false;
        }
    }
    child.wait().await.is_ok_and(|s| s.success())
}

/// Kill the script and everything in its process group.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: killpg only sends a signal; the group id is the child's pid (process_group(0)).
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

async fn sleep_or_forever(timeout: Option<std::time::Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}

fn is_env_name(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}
