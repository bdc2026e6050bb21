//! Orphans: operations a dead engine left running, stopped before anything runs again.
//!
//! Every script operation runs under a guard that kills its process group when the engine dies
//! (`plugins::guard`), so normally nothing survives a crash. What can survive is a group whose
//! guard was itself killed or frozen. The engine records each operation's group while it runs
//! (`store::processes`); [`stop`] reads a deployment's records, leaves those of a running
//! engine alone (checked by pid and start time), stops every other group that still has live
//! processes (`plugins::guard::stop_group`, which never touches a reused pid), emits one
//! `orphans_stopped` event per stopped group naming its instance and operation, and forgets the
//! records. It runs at the start of every execution (so `resume` never starts an operation
//! while an earlier attempt of it is alive) and when `cancel` drops an interrupted execution.

use super::EngineError;
use super::events::Recorder;
use crate::plugins::guard::{self, GroupFate};
use crate::store::Store;

/// Stop what the dead engines of a deployment left running; events go to `execution`.
/// Returns how many groups were stopped.
pub async fn stop(
    store: &Store,
    deployment: &str,
    recorder: &Recorder,
    execution: &str,
) -> Result<usize, EngineError> {
    let mut forgotten = Vec::new();
    let mut stopped = 0;
    for p in store.processes(deployment).await? {
        if guard::is_running(p.engine_pid, p.engine_started) {
            continue;
        }
        if let GroupFate::Stopped(n) = guard::stop_group(p.pgid, p.started).await {
            stopped += 1;
            recorder.event(
                execution,
                "orphans_stopped",
                p.instance.as_deref(),
                Some(&p.operation),
                format!(
                    "stopped {n} process{} still running from an interrupted attempt (execution {}, process group {})",
                    if n == 1 { "" } else { "es" },
                    p.execution,
                    p.pgid
                ),
            );
        }
        forgotten.push((p.pgid, p.started));
    }
    if !forgotten.is_empty() {
        store.forget_processes(&forgotten).await?;
    }
    Ok(stopped)
}
