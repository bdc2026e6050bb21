//! The process groups of running operations, so that a later command can stop what a dead
//! engine left running.
//!
//! The engine records each script operation's process group (its guard's pid, which is the
//! group id, and the guard's start time) through the recorder as soon as it is spawned
//! ([`ProcessWrite::Started`]) and forgets it when the operation ends ([`ProcessWrite::Ended`]);
//! both go through [`super::Store::apply`], in the order they were written. Rows that remain
//! belong to an engine that is running or died: [`super::Store::processes`] lists them per
//! deployment for `engine::orphans`, which stops the dead engines' groups and then
//! [`super::Store::forget_processes`]. The start times make a recorded pid comparable with the
//! process that has that pid now, so a reused pid is never mistaken for an operation.

use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::{Store, StoreError};

/// One operation's process group, as recorded while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    pub deployment: String,
    pub execution: String,
    /// The node instance (`None` for a workflow script).
    pub instance: Option<String>,
    pub operation: String,
    /// The process group id: the pid of the guard that leads it.
    pub pgid: i64,
    /// The guard's start time (clock ticks since boot, `/proc/PID/stat` field 22).
    pub started: i64,
    /// The engine that spawned it, and that engine's start time.
    pub engine_pid: i64,
    pub engine_started: i64,
}

/// A change to the recorded process groups, applied with the recorder's other writes.
#[derive(Debug, Clone)]
pub enum ProcessWrite {
    Started(ProcessRecord),
    /// The operation ended: forget the group `(pgid, started)`.
    Ended {
        pgid: i64,
        started: i64,
    },
}

/// Apply process writes in order (a short operation may start and end in one batch).
pub(super) async fn apply(
    tx: &mut SqliteConnection,
    writes: &[&ProcessWrite],
) -> Result<(), StoreError> {
    for w in writes {
        match w {
            ProcessWrite::Started(p) => {
                sqlx::query(
                    "INSERT OR REPLACE INTO processes (pgid, started, deployment_id, execution_id, node_instance_id, operation, engine_pid, engine_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(p.pgid)
                .bind(p.started)
                .bind(&p.deployment)
                .bind(&p.execution)
                .bind(&p.instance)
                .bind(&p.operation)
                .bind(p.engine_pid)
                .bind(p.engine_started)
                .execute(&mut *tx)
                .await?;
            }
            ProcessWrite::Ended { pgid, started } => {
                sqlx::query("DELETE FROM processes WHERE pgid = ? AND started = ?")
                    .bind(pgid)
                    .bind(started)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// The process groups recorded for a deployment's operations, oldest first.
    pub async fn processes(&self, deployment: &str) -> Result<Vec<ProcessRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT deployment_id, execution_id, node_instance_id, operation, pgid, started, engine_pid, engine_started FROM processes WHERE deployment_id = ? ORDER BY rowid",
        )
        .bind(deployment)
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ProcessRecord {
                deployment: r.get(0),
                execution: r.get(1),
                instance: r.get(2),
                operation: r.get(3),
                pgid: r.get(4),
                started: r.get(5),
                engine_pid: r.get(6),
                engine_started: r.get(7),
            })
            .collect())
    }

    /// Forget process groups that were stopped or found gone.
    pub async fn forget_processes(&self, groups: &[(i64, i64)]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (pgid, started) in groups {
            sqlx::query("DELETE FROM processes WHERE pgid = ? AND started = ?")
                .bind(pgid)
                .bind(started)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
