-- Today's schema in one piece, for a new store (`fresh.rs`): what running every migration
-- of `schema.rs` on an empty file makes, as SQLite records it. Generated; the test
-- `store::fresh::tests::the_fresh_schema_is_what_the_migrations_make` prints it anew
-- when a migration changes it.
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    inputs TEXT NOT NULL,
    compiled TEXT NOT NULL,
    plan TEXT NOT NULL
, installed INTEGER NOT NULL DEFAULT 0, deleting INTEGER NOT NULL DEFAULT 0);
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
    version INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 0, node INTEGER NOT NULL DEFAULT 0, parent TEXT, parent_is_group INTEGER NOT NULL DEFAULT 0, contained_in TEXT, host TEXT, groups TEXT NOT NULL DEFAULT '', idx INTEGER NOT NULL DEFAULT 0,
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
, pid_started INTEGER);
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
CREATE INDEX events_by_deployment ON events(deployment_id, seq);
CREATE INDEX node_instances_by_node ON node_instances(deployment_id, node, seq);
CREATE INDEX node_instances_by_parent ON node_instances(deployment_id, parent);
CREATE TABLE group_instances (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    id TEXT NOT NULL,
    grp INTEGER NOT NULL,
    parent TEXT,
    parent_is_group INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, id)
);
CREATE INDEX group_instances_by_group ON group_instances(deployment_id, grp, seq);
CREATE INDEX group_instances_by_parent ON group_instances(deployment_id, parent);
CREATE TABLE link_runs (
    seq INTEGER PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    source TEXT NOT NULL,
    relationship INTEGER NOT NULL,
    target_node INTEGER NOT NULL,
    target TEXT,
    targets TEXT
);
CREATE INDEX link_runs_by_source ON link_runs(deployment_id, source);
CREATE INDEX link_runs_by_target ON link_runs(deployment_id, target);
CREATE INDEX link_runs_by_target_node ON link_runs(deployment_id, target_node) WHERE targets IS NOT NULL;
CREATE TABLE contents (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE content_chunks (
    hash TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (hash, seq)
);
CREATE TABLE snapshot_files (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    path TEXT NOT NULL,
    hash TEXT NOT NULL REFERENCES contents(hash),
    mode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, path)
);
CREATE INDEX snapshot_files_by_hash ON snapshot_files(hash);
CREATE TABLE processes (
    pgid INTEGER NOT NULL,
    started INTEGER NOT NULL,
    deployment_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    node_instance_id TEXT,
    operation TEXT NOT NULL,
    engine_pid INTEGER NOT NULL,
    engine_started INTEGER NOT NULL,
    PRIMARY KEY (pgid, started)
);
CREATE INDEX processes_by_deployment ON processes(deployment_id);
CREATE TABLE policy_state (
    deployment_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE TABLE rules (
    name TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    scale_out_above REAL NOT NULL,
    scale_in_below REAL,
    "window" REAL NOT NULL,
    min INTEGER NOT NULL,
    max INTEGER NOT NULL,
    step INTEGER NOT NULL,
    cooldown REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX rules_by_deployment ON rules(deployment_id);
CREATE TABLE vsphere_allocations (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    vm_name TEXT NOT NULL,
    host TEXT NOT NULL,
    host_id TEXT NOT NULL,
    pooled INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, instance_id)
);
CREATE UNIQUE INDEX vsphere_allocations_by_vm ON vsphere_allocations(endpoint, vm_name);
CREATE TABLE vsphere_last_hosts (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (deployment_id, node_id)
);
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
