//! Schema migrations, applied in order; `PRAGMA user_version` records how many ran.

pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    inputs TEXT NOT NULL,
    compiled TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE TABLE resources (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    path TEXT NOT NULL,
    content BLOB NOT NULL,
    mode INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, path)
);
CREATE TABLE node_instances (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    state TEXT NOT NULL,
    runtime_properties TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, id)
);
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    workflow TEXT NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    pid INTEGER
);
CREATE UNIQUE INDEX one_active_execution ON executions(deployment_id) WHERE status IN ('pending', 'started', 'cancelling');
CREATE TABLE tasks (
    execution_id TEXT NOT NULL REFERENCES executions(id),
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    PRIMARY KEY (execution_id, key)
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    event_type TEXT NOT NULL,
    node_instance_id TEXT,
    operation TEXT,
    message TEXT NOT NULL
);
CREATE INDEX events_by_deployment ON events(deployment_id, seq)
"#];
