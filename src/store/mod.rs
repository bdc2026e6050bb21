//! Store: durable state in SQLite (the default, one file) behind one interface.
//!
//! Owns the schema and every query. Deployments keep their compiled blueprint and their plan's
//! frame as JSON (so later commands never re-read a blueprint the user may have edited) and a
//! snapshot of the blueprint's files (a file list over content-addressed chunks shared between
//! deployments, `blobs.rs`); the plan's instances, group instances and links are rows
//! (`plan_rows.rs`), so a command can read just the ones it needs; node instances also keep their
//! state, runtime properties and a version for optimistic concurrency; executions, per-task
//! records (for resume) and events complete it.
//! At most one execution per deployment is active: a partial unique index enforces it across
//! processes, and the execution records the pid that runs it so an interrupted one is told
//! from a running one. Queries are built at runtime (no compile-time database); a PostgreSQL
//! backend can implement the same methods.

mod blobs;
mod bulk;
mod conn;
mod fresh;
mod operation_sets;
mod pages;
mod plan_rows;
mod policies;
mod processes;
mod rules;
mod schema;
mod secrets;
mod tokens;
mod vsphere;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use crate::dsl::Compiled;
use crate::plan::{Frame, Plan};
pub use blobs::{CHUNK, SnapshotFile, Stored, StoredFile, content_hash};
pub use pages::EventFilter;
pub use plan_rows::{NewInstance, PlanChange, Select, initial_state};
pub use policies::{DeploymentState, PolicyState};
pub use processes::{ProcessRecord, ProcessWrite};
pub use rules::RuleRecord;
pub use secrets::{SecretListing, SecretRow};
pub use tokens::{NewToken, TokenRecord};
pub use vsphere::{Placements, VmAllocation};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("state store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("state store: {message} (SQLite code {code})")]
    Bulk { code: i32, message: String },
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the state store {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the PostgreSQL backend is not available in this version; use a SQLite file path for --state"
    )]
    Unsupported,
    #[error("deployment `{0}` already exists")]
    Exists(String),
    #[error("deployment `{0}` does not exist")]
    NoDeployment(String),
    #[error(
        "deployment '{deployment}' is busy with execution {execution} ({workflow}, {status} {since})"
    )]
    Busy {
        deployment: String,
        execution: String,
        workflow: String,
        status: String,
        since: String,
    },
    #[error(
        "deployment `{deployment}` has an interrupted execution {execution} ({workflow}); run `windlass resume {deployment}` to finish it or `windlass cancel {deployment}` to drop it"
    )]
    Interrupted {
        deployment: String,
        execution: String,
        workflow: String,
    },
    #[error("stored data of deployment `{0}` is unreadable: {1}")]
    Corrupt(String, String),
    #[error("cannot read {path}: {source}")]
    Source {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} changed while it was being stored; deploy again")]
    Changed(PathBuf),
    #[error("a token named `{0}` already exists (revoke it first to replace it)")]
    TokenExists(String),
    #[error("no token is named `{0}`")]
    NoToken(String),
    #[error("a rule named `{0}` already exists")]
    RuleExists(String),
    #[error("no rule is named `{0}`")]
    NoRule(String),
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(std::io::Error),
}

/// Whether `name` is 1 to `max_len` ASCII letters, digits, `.`, `_` or `-`: the names the
/// store keys secrets, tokens, deployments and rules by, which command lines and the API's
/// paths carry as they are. Each caller picks its own length and words its own refusal.
pub fn is_plain_name(name: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The default state file: `$XDG_DATA_HOME/windlass/state.db` (`~/.local/share/windlass/state.db`).
pub fn default_location() -> String {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("windlass/state.db").display().to_string()
}

#[derive(Debug, Clone)]
pub struct Store {
    db: conn::Connections,
    path: PathBuf,
}

/// A deployment as stored.
#[derive(Debug, Clone)]
pub struct DeploymentRecord {
    pub id: String,
    pub blueprint: String,
    pub created_at: String,
    pub inputs: Json,
    /// Shared with running walks without copying (a 10,000-instance plan is megabytes).
    pub compiled: std::sync::Arc<Compiled>,
    pub plan: std::sync::Arc<Plan>,
    /// Its last finished install or uninstall was an install.
    pub installed: bool,
    /// `undeploy` was asked for: the deployment is deleted once its uninstall finishes.
    pub deleting: bool,
}

/// A node instance's mutable state.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub id: String,
    pub node_id: String,
    pub state: String,
    pub runtime_properties: Map<String, Json>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub id: String,
    pub deployment_id: String,
    pub workflow: String,
    pub parameters: Json,
    pub status: String,
    pub created_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    pub pid: Option<i64>,
    /// That process's start time (none in executions stored before windlass recorded it).
    pub pid_started: Option<i64>,
}

impl ExecutionRecord {
    /// True while the process that runs this execution lives (the same process: a pid that was
    /// reused by another one does not count).
    pub fn running(&self) -> bool {
        self.pid
            .is_some_and(|pid| crate::procs::alive(pid, self.pid_started))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    #[serde(skip)]
    pub seq: i64,
    pub timestamp: String,
    pub execution_id: String,
    pub event_type: String,
    pub node_instance_id: Option<String>,
    pub operation: Option<String>,
    pub message: String,
}

impl EventRecord {
    /// From a row of `SELECT seq, timestamp, execution_id, event_type, node_instance_id,
    /// operation, message FROM events`.
    fn from_row(r: &sqlx::sqlite::SqliteRow) -> EventRecord {
        EventRecord {
            seq: r.get(0),
            timestamp: r.get(1),
            execution_id: r.get(2),
            event_type: r.get(3),
            node_instance_id: r.get(4),
            operation: r.get(5),
            message: r.get(6),
        }
    }
}

/// One write of a batch applied in a single transaction.
#[derive(Debug, Clone)]
pub enum Write {
    Task {
        execution: String,
        key: String,
        state: String,
        result: Option<Json>,
    },
    Instance {
        deployment: String,
        record: InstanceRecord,
    },
    Event {
        deployment: String,
        event: EventRecord,
    },
    /// An operation's process group started or ended (`processes.rs`).
    Process(ProcessWrite),
    /// The execution ended: its last state and events are committed with its status (and,
    /// for a finished install, the deployment's `installed` mark), not before.
    Ended {
        deployment: String,
        execution: String,
        status: String,
        error: Option<String>,
        installed: bool,
    },
}

pub const ACTIVE: [&str; 3] = ["pending", "started", "cancelling"];

/// How many SQLite connections a [`Store`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// Several: reads go on while a write transaction (perhaps waiting for another process's
    /// lock) holds one. For the manager and for library users.
    Shared,
    /// One, for one command of the command line, held for the store's life instead of taken
    /// from the pool for each statement (see `conn.rs`). Nothing in the store asks for a
    /// connection while holding a transaction, so the one connection cannot wait on itself.
    Single,
}

impl Store {
    /// Open (creating if needed) the store at a file path, with [`Connections::Shared`].
    /// `postgres://` URLs are refused.
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        Store::open_with(location, Connections::Shared).await
    }

    /// [`Store::open`] with the given number of connections.
    pub async fn open_with(location: &str, connections: Connections) -> Result<Store, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Err(StoreError::Unsupported);
        }
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        fresh::create_if_missing(Path::new(path)).await?;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|source| StoreError::Open {
                location: location.to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // A large deploy grows the write-ahead log to its transaction's size; truncate it
            // back after checkpoints instead of leaving hundreds of MB on disk.
            .pragma("journal_size_limit", (16 << 20).to_string())
            // Statement journals (of a statement that changes many rows inside a transaction,
            // as `DELETE … IN (…)` does) and sorts stay in memory, not in files in /var/tmp.
            .pragma("temp_store", "memory")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(match connections {
                Connections::Shared => 4,
                Connections::Single => 1,
            })
            // Longer than the busy timeout: a statement waiting for another process's lock
            // fails with SQLite's own "database is locked" before anything waiting for its
            // connection gives up.
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: location.to_string(),
                source,
            })?;
        let db = match connections {
            Connections::Shared => conn::Connections::pooled(pool),
            Connections::Single => conn::Connections::own(pool).await?,
        };
        migrate(&mut *db.get().await?).await?;
        Ok(Store {
            db,
            path: std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path)),
        })
    }

    /// Close every connection and wait for it: SQLite folds the write-ahead log back into the
    /// file when the last one closes. (A command does not wait: its exit may cut the fold
    /// short, which is safe, as the next open replays the log.)
    pub async fn close(self) {
        self.db.close().await;
    }

    /// The location this store was opened at (a file path).
    pub fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// The files of the state store (database, WAL, shared memory, journal). Nothing else in
    /// this process may open them: closing any descriptor of a file drops the process's POSIX
    /// locks on it, and SQLite would then let another process delete the WAL under us.
    pub fn files(&self) -> Vec<PathBuf> {
        ["", "-wal", "-shm", "-journal"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", self.path.display())))
            .collect()
    }

    /// Restart the write-ahead log now if the next write would: when the log has been folded
    /// into the database whole (as the last command to close the store does), the first write
    /// after starts it anew and syncs its header to disk first (0.3–3.3 ms on this project's
    /// machine). `deploy` calls this while its blueprint is being opened, so that the sync is
    /// not in the way later. The write sets the schema version to what it is; a log that has
    /// frames gets one more, of the database's first page.
    pub async fn prime_log(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let version = schema_version(&mut tx).await?;
        sqlx::query(&format!("PRAGMA user_version = {version}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A write transaction that takes SQLite's write lock up front (`BEGIN IMMEDIATE`).
    ///
    /// A deferred transaction that reads first and writes later cannot wait for the lock: when
    /// another process committed in between, SQLite answers `database is locked` at once,
    /// without calling the busy handler (its snapshot is stale). Taking the lock at `BEGIN`
    /// makes a busy store a wait of at most the busy timeout, for any number of processes.
    /// Callers keep such transactions short: nothing but store statements runs inside them.
    pub(crate) async fn write(&self) -> Result<conn::Tx, StoreError> {
        self.db.write().await
    }

    // ----- deployments ----------------------------------------------------------------------

    /// Store a new deployment with its plan and the snapshot of its blueprint's files, in one
    /// transaction; returns what the snapshot added to the store. The transaction takes the
    /// write lock at once, so the contents it finds stored cannot be deleted before it commits.
    /// The instances of the nodes `started` names are stored `started` (their install has
    /// nothing to run), the others `uninitialized`. `compiled_json` yields `compiled` as stored
    /// (`serde_json::to_string`); it is awaited once the plan's rows are made, so that the
    /// caller can have it made meanwhile on another thread (`engine::create_opened`).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_deployment(
        &self,
        id: &str,
        blueprint: &str,
        inputs: &Json,
        compiled: &Compiled,
        compiled_json: impl std::future::Future<Output = String>,
        plan: &Plan,
        files: &[SnapshotFile],
        started: &[bool],
    ) -> Result<Stored, StoreError> {
        let change = plan_rows::change_adding(plan, compiled, started);
        let compiled_json = compiled_json.await;
        let mut tx = self.write().await?;
        let exists = sqlx::query("SELECT 1 FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next();
        if exists.is_some() {
            return Err(StoreError::Exists(id.to_string()));
        }
        sqlx::query("INSERT INTO deployments (id, blueprint, created_at, inputs, compiled, plan) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(id)
            .bind(blueprint)
            .bind(now())
            .bind(inputs.to_string())
            .bind(&compiled_json)
            .bind(serde_json::to_string(&plan.frame()).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        let stored = blobs::insert_files(&mut tx, id, files).await?;
        plan_rows::insert_rows(&mut tx, id, &change).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// [`Store::create_deployment`] of an opened blueprint as `t.yaml`, nothing `started`.
    #[cfg(test)]
    pub(crate) async fn create_blueprint(
        &self,
        id: &str,
        inputs: &Json,
        bp: &crate::blueprint::Blueprint,
        files: &[SnapshotFile],
    ) -> Result<Stored, StoreError> {
        let json = serde_json::to_string(&bp.compiled).expect("a compiled blueprint serializes");
        self.create_deployment(
            id,
            "t.yaml",
            inputs,
            &bp.compiled,
            std::future::ready(json),
            &bp.plan,
            files,
            &[],
        )
        .await
    }

    /// A deployment with its whole plan.
    pub async fn deployment(&self, id: &str) -> Result<DeploymentRecord, StoreError> {
        let mut dep = self.deployment_frame(id).await?;
        let (plan, _) = self.whole_plan(id, dep.plan.frame(), &dep.compiled).await?;
        dep.plan = std::sync::Arc::new(plan);
        Ok(dep)
    }

    /// A deployment with only the frame of its plan (no instances): enough to check a request
    /// and to decide which instances to read.
    pub async fn deployment_frame(&self, id: &str) -> Result<DeploymentRecord, StoreError> {
        let row = sqlx::query("SELECT id, blueprint, created_at, inputs, compiled, plan, installed, deleting FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_all(&mut *self.db.get().await?)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NoDeployment(id.to_string()))?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(id.to_string(), e.to_string());
        let frame: Frame = serde_json::from_str(row.get::<&str, _>(5)).map_err(corrupt)?;
        let compiled: Compiled = serde_json::from_str(row.get::<&str, _>(4)).map_err(corrupt)?;
        compiled
            .check_operation_sets()
            .map_err(|e| StoreError::Corrupt(id.to_string(), e))?;
        Ok(DeploymentRecord {
            id: row.get(0),
            blueprint: row.get(1),
            created_at: row.get(2),
            inputs: serde_json::from_str(row.get::<&str, _>(3)).map_err(corrupt)?,
            compiled: std::sync::Arc::new(compiled),
            plan: std::sync::Arc::new(Plan::from_frame(frame)),
            installed: row.get(6),
            deleting: row.get(7),
        })
    }

    /// Record whether the deployment is installed (an install finished; an uninstall began).
    pub async fn set_installed(&self, id: &str, installed: bool) -> Result<(), StoreError> {
        mark_installed(&mut *self.db.get().await?, id, installed).await
    }

    /// Mark (or unmark) the deployment for deletion once its uninstall finishes.
    pub async fn set_deleting(&self, id: &str, deleting: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET deleting = ? WHERE id = ?")
            .bind(deleting)
            .bind(id)
            .execute(&mut *self.db.get().await?)
            .await?;
        Ok(())
    }

    /// `(id, blueprint, created_at)` of every deployment, oldest first.
    pub async fn deployments(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, blueprint, created_at FROM deployments ORDER BY created_at, id",
        )
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    pub async fn delete_deployment(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        blobs::delete_files(&mut tx, id).await?;
        for table in [
            "processes",
            "policy_state",
            "events",
            "link_runs",
            "group_instances",
            "node_instances",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE deployment_id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM tasks WHERE execution_id IN (SELECT id FROM executions WHERE deployment_id = ?)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM executions WHERE deployment_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM deployments WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_execution_parameters(
        &self,
        id: &str,
        parameters: &Json,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE executions SET parameters = ? WHERE id = ?")
            .bind(parameters.to_string())
            .bind(id)
            .execute(&mut *self.db.get().await?)
            .await?;
        Ok(())
    }

    // ----- node instances -------------------------------------------------------------------

    pub async fn instances(&self, deployment: &str) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, node_id, state, runtime_properties, version FROM node_instances WHERE deployment_id = ? ORDER BY seq")
            .bind(deployment)
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceRecord {
                    id: r.get(0),
                    node_id: r.get(1),
                    state: r.get(2),
                    runtime_properties: serde_json::from_str(r.get::<&str, _>(3))
                        .map_err(|e| StoreError::Corrupt(deployment.to_string(), e.to_string()))?,
                    version: r.get(4),
                })
            })
            .collect()
    }

    /// Apply writes in one transaction (the engine's group commit), stepped on the connection's
    /// own handle ([`bulk`]); of several writes to one instance only the newest is kept.
    pub async fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut tasks = Vec::new();
        let mut events = Vec::new();
        let mut processes = Vec::new();
        let mut ended = Vec::new();
        let mut instances: Vec<(&str, &InstanceRecord)> = Vec::new();
        let mut latest: std::collections::HashMap<(&str, &str), usize> =
            std::collections::HashMap::new();
        for w in writes {
            match w {
                Write::Task {
                    execution,
                    key,
                    state,
                    result,
                } => tasks.push((execution, key, state, result)),
                Write::Event { deployment, event } => events.push((deployment, event)),
                Write::Process(p) => processes.push(p),
                Write::Ended {
                    deployment,
                    execution,
                    status,
                    error,
                    installed,
                } => ended.push((deployment, execution, status, error, *installed)),
                Write::Instance { deployment, record } => {
                    match latest.get(&(deployment.as_str(), record.id.as_str())) {
                        Some(&i) if instances[i].1.version >= record.version => {}
                        Some(&i) => instances[i] = (deployment, record),
                        None => {
                            latest.insert((deployment, &record.id), instances.len());
                            instances.push((deployment, record));
                        }
                    }
                }
            }
        }
        let mut tx = self.write().await?;
        {
            let mut bulk = bulk::Bulk::lock(&mut tx).await?;
            bulk.each(
                "INSERT INTO tasks (execution_id, key, state, result) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (execution_id, key) DO UPDATE SET state = excluded.state, result = excluded.result",
                &tasks,
                |rows, (execution, key, state, result)| {
                    let result = result.as_ref().map(Json::to_string);
                    rows.put(&[
                        (*execution).into(),
                        (*key).into(),
                        (*state).into(),
                        result.as_deref().into(),
                    ])
                },
            )?;
            // Only ever an update: a write that arrives after its instance was removed (a
            // rolled back scale-out) must not bring the row back.
            bulk.each(
                "UPDATE node_instances SET state = ?3, runtime_properties = ?4, version = ?5 \
                 WHERE deployment_id = ?1 AND id = ?2 AND ?5 > version",
                &instances,
                |rows, (deployment, r)| {
                    // A map of strings to JSON values always serializes.
                    let properties =
                        serde_json::to_string(&r.runtime_properties).unwrap_or_default();
                    rows.put(&[
                        (*deployment).into(),
                        (&r.id).into(),
                        (&r.state).into(),
                        properties.as_str().into(),
                        r.version.into(),
                    ])
                },
            )?;
            bulk.insert(
                "INSERT INTO events (deployment_id, execution_id, timestamp, event_type, node_instance_id, operation, message) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                &events,
                |rows, (deployment, event)| {
                    rows.put(&[
                        (*deployment).into(),
                        (&event.execution_id).into(),
                        (&event.timestamp).into(),
                        (&event.event_type).into(),
                        (&event.node_instance_id).into(),
                        (&event.operation).into(),
                        (&event.message).into(),
                    ])
                },
            )?;
        }
        processes::apply(&mut tx, &processes).await?;
        for (deployment, execution, status, error, installed) in ended {
            end_execution(&mut tx, execution, status, error.as_deref()).await?;
            if installed {
                mark_installed(&mut tx, deployment, true).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // ----- executions -----------------------------------------------------------------------

    /// Start a new execution, unless another one is active. An active execution whose process is
    /// gone is reported as interrupted. With `then_delete` (undeploy), the deployment is marked
    /// to be deleted when the execution finishes, in the same transaction: however the command
    /// is killed, the execution and that intent are stored together or not at all.
    pub async fn start_execution(
        &self,
        deployment: &str,
        workflow: &str,
        parameters: &Json,
        then_delete: bool,
    ) -> Result<ExecutionRecord, StoreError> {
        let id = new_execution_id();
        let now = now();
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO executions (id, deployment_id, workflow, parameters, status, created_at, pid, pid_started) VALUES (?, ?, ?, ?, 'started', ?, ?, ?)",
        )
        .bind(&id)
        .bind(deployment)
        .bind(workflow)
        .bind(parameters.to_string())
        .bind(&now)
        .bind(i64::from(std::process::id()))
        .bind(crate::procs::own_start_time())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                drop(tx);
                return Err(self.busy(deployment).await?);
            }
            Err(e) => return Err(e.into()),
        }
        if then_delete {
            sqlx::query("UPDATE deployments SET deleting = 1 WHERE id = ?")
                .bind(deployment)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ExecutionRecord {
            id,
            deployment_id: deployment.to_string(),
            workflow: workflow.to_string(),
            parameters: parameters.clone(),
            status: "started".to_string(),
            created_at: now,
            ended_at: None,
            error: None,
            pid: Some(i64::from(std::process::id())),
            pid_started: Some(crate::procs::own_start_time()),
        })
    }

    /// The error that explains why a deployment is busy.
    async fn busy(&self, deployment: &str) -> Result<StoreError, StoreError> {
        let Some(active) = self.active_execution(deployment).await? else {
            return Ok(StoreError::Busy {
                deployment: deployment.to_string(),
                execution: "?".to_string(),
                workflow: "?".to_string(),
                status: "finishing".to_string(),
                since: String::new(),
            });
        };
        Ok(if active.running() {
            StoreError::Busy {
                deployment: deployment.to_string(),
                execution: active.id,
                workflow: active.workflow,
                status: active.status,
                since: active.created_at,
            }
        } else {
            StoreError::Interrupted {
                deployment: deployment.to_string(),
                execution: active.id,
                workflow: active.workflow,
            }
        })
    }

    pub async fn active_execution(
        &self,
        deployment: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self
            .executions(deployment)
            .await?
            .into_iter()
            .find(|e| ACTIVE.contains(&e.status.as_str())))
    }

    /// Take over an interrupted execution for this process (resume). Refused while its process lives.
    pub async fn adopt_execution(
        &self,
        deployment: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let Some(mut active) = self.active_execution(deployment).await? else {
            return Ok(None);
        };
        if active.running() && active.pid != Some(i64::from(std::process::id())) {
            return Err(self.busy(deployment).await?);
        }
        let pid = i64::from(std::process::id());
        let updated = sqlx::query("UPDATE executions SET pid = ?, pid_started = ?, status = 'started' WHERE id = ? AND (pid IS ? OR pid = ?)")
            .bind(pid)
            .bind(crate::procs::own_start_time())
            .bind(&active.id)
            .bind(active.pid)
            .bind(active.pid)
            .execute(&mut *self.db.get().await?)
            .await?;
        if updated.rows_affected() != 1 {
            return Err(self.busy(deployment).await?);
        }
        active.pid = Some(pid);
        active.pid_started = Some(crate::procs::own_start_time());
        active.status = "started".to_string();
        Ok(Some(active))
    }

    /// The last failed or cancelled execution of a deployment, if it is the latest one.
    pub async fn latest_execution(
        &self,
        deployment: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.executions(deployment).await?.into_iter().last())
    }

    pub async fn executions(&self, deployment: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, deployment_id, workflow, parameters, status, created_at, ended_at, error, pid, pid_started FROM executions WHERE deployment_id = ? ORDER BY created_at, rowid",
        )
        .bind(deployment)
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ExecutionRecord {
                id: r.get(0),
                deployment_id: r.get(1),
                workflow: r.get(2),
                parameters: serde_json::from_str(r.get::<&str, _>(3)).unwrap_or(Json::Null),
                status: r.get(4),
                created_at: r.get(5),
                ended_at: r.get(6),
                error: r.get(7),
                pid: r.get(8),
                pid_started: r.get(9),
            })
            .collect())
    }

    pub async fn execution_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        let rows = sqlx::query("SELECT status FROM executions WHERE id = ?")
            .bind(id)
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        Ok(rows.into_iter().next().map(|r| r.get(0)))
    }

    pub async fn set_execution_status(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        end_execution(&mut *self.db.get().await?, id, status, error).await
    }

    /// Mark an interrupted execution as resumed again by a new `started`/failed cycle: reopen a
    /// failed or cancelled execution for resume.
    pub async fn reopen_execution(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE executions SET status = 'started', error = NULL, ended_at = NULL, pid = ?, pid_started = ? WHERE id = ? AND status IN ('failed', 'cancelled')")
            .bind(i64::from(std::process::id()))
            .bind(crate::procs::own_start_time())
            .bind(id)
            .execute(&mut *self.db.get().await?)
            .await;
        match r {
            Ok(r) => Ok(r.rows_affected() == 1),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn done_tasks(
        &self,
        execution: &str,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows =
            sqlx::query("SELECT key FROM tasks WHERE execution_id = ? AND state = 'succeeded'")
                .bind(execution)
                .fetch_all(&mut *self.db.get().await?)
                .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    // ----- events ---------------------------------------------------------------------------

    pub async fn events(
        &self,
        deployment: &str,
        after: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, timestamp, execution_id, event_type, node_instance_id, operation, message FROM events WHERE deployment_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(deployment)
        .bind(after)
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows.iter().map(EventRecord::from_row).collect())
    }
}

/// Rows (or ids of an `IN` list) per multi-row statement, well under SQLite's limit of bound
/// variables. Bulk writes of many rows go through [`bulk`] instead.
const ROWS_PER_STATEMENT: usize = 200;

/// `(?, ?), (?, ?)` for `rows` rows of `columns` columns.
/// Set an execution's status (with its end time once it is no longer active).
async fn end_execution(
    conn: &mut SqliteConnection,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let ended = (!ACTIVE.contains(&status)).then(now);
    sqlx::query("UPDATE executions SET status = ?, error = ?, ended_at = ? WHERE id = ?")
        .bind(status)
        .bind(error)
        .bind(ended)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn mark_installed(
    conn: &mut SqliteConnection,
    id: &str,
    installed: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET installed = ? WHERE id = ?")
        .bind(installed)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn placeholders(rows: usize, columns: usize) -> String {
    vec![format!("({})", vec!["?"; columns].join(", ")); rows].join(", ")
}

// Reads use `fetch_all`, never `fetch_optional`: a statement left unfinished keeps SQLite's
// read snapshot open on its pooled connection, and later reads on that connection (the
// cancellation poll) would not see other processes' commits.

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm). Public for the contract servers of the tests, which write timestamps too.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn new_execution_id() -> String {
    let mut ids = crate::plan::IdMaker::new();
    let id = ids.make("x").0;
    format!(
        "{}-{}",
        &now()[..19].replace([':', '-'], "").replace('T', "-"),
        &id[2..]
    )
}

/// The schema version a store is at.
async fn schema_version(conn: &mut SqliteConnection) -> Result<usize, StoreError> {
    let version: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(conn)
        .await?
        .get(0);
    Ok(usize::try_from(version).unwrap_or(0))
}

/// Bring the schema up to date, in one write transaction; a store already up to date is only
/// read (no command waits for another's write lock just to start).
async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    if schema_version(conn).await? >= schema::MIGRATIONS.len() {
        return Ok(());
    }
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await?;
    // Read again under the lock: another process may have migrated meanwhile.
    let version = schema_version(&mut tx).await?;
    for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        for statement in step.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query(&format!("PRAGMA user_version = {}", i + 1))
            .execute(&mut *tx)
            .await?;
    }
    // Conversions write with today's schema, so they run after every migration.
    // First this one: the others read compiled blueprints in today's form.
    if version < schema::OPERATION_SETS {
        operation_sets::convert(&mut tx).await?;
    }
    if version < schema::PLAN_ROWS {
        plan_rows::convert_plan_blobs(&mut tx).await?;
    }
    if version < schema::SNAPSHOT_CONTENTS {
        blobs::convert_resources(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a new file of the temporary directory.
    async fn temp_store(name: &str) -> Store {
        let path = std::env::temp_dir().join(format!("windlass-{name}-{}.db", std::process::id()));
        Store::open(path.to_str().unwrap()).await.unwrap()
    }

    /// Close a store and remove its files.
    async fn remove(store: Store) {
        let files = store.files();
        store.close().await;
        for file in files {
            let _ = std::fs::remove_file(file);
        }
    }

    /// An execution's end is one write of the recorder's last batch: its status and end time,
    /// and the deployment's `installed` mark only when asked.
    #[tokio::test]
    async fn an_ended_write_sets_the_status_and_the_installed_mark_together() {
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: { type: cloudify.nodes.Root }\n";
        let bp =
            crate::blueprint::open_str(std::path::Path::new("t.yaml"), text, &Default::default())
                .unwrap();
        let store = temp_store("ended").await;
        let mut seen = Vec::new();
        for (id, status, installed) in [("a", "terminated", true), ("b", "failed", false)] {
            store
                .create_blueprint(id, &Json::Null, &bp, &[])
                .await
                .unwrap();
            let e = store
                .start_execution(id, "install", &Json::Null, false)
                .await
                .unwrap();
            let ended = Write::Ended {
                deployment: id.to_string(),
                execution: e.id.clone(),
                status: status.to_string(),
                error: (status == "failed").then(|| "boom".to_string()),
                installed,
            };
            store.apply(&[ended]).await.unwrap();
            let last = store.latest_execution(id).await.unwrap().unwrap();
            let dep = store.deployment_frame(id).await.unwrap();
            seen.push((
                last.status,
                last.ended_at.is_some(),
                last.error,
                dep.installed,
            ));
        }
        remove(store).await;
        assert_eq!(
            seen,
            [
                ("terminated".to_string(), true, None, true),
                ("failed".to_string(), true, Some("boom".to_string()), false),
            ]
        );
    }

    /// Priming the log writes nothing a reader sees: the schema version stays, and so does
    /// what was stored before, however many times it runs.
    #[tokio::test]
    async fn priming_the_log_changes_nothing_stored() {
        let store = temp_store("prime").await;
        let before = schema_version(&mut store.db.get().await.unwrap())
            .await
            .unwrap();
        let token = store.create_token("ci").await.unwrap();
        for _ in 0..2 {
            store.prime_log().await.unwrap();
        }
        let after = schema_version(&mut store.db.get().await.unwrap())
            .await
            .unwrap();
        let names: Vec<String> = store
            .tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        remove(store).await;
        assert_eq!(token.name, "ci");
        let current = schema::MIGRATIONS.len();
        assert_eq!((before, after), (current, current));
        assert_eq!(names, ["ci"]);
    }

    #[test]
    fn dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
