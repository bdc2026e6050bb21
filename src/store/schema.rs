//! Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
//!
//! 1: deployments, resources, node instances, executions, tasks, events (the plan as JSON).
//! 2: the plan as rows: plan columns on node instances, group instances, links.
//! 3: where a deployment is in its life: `installed` (its last finished install/uninstall was an
//!    install) and `deleting` (undeploy asked for; the deployment goes once uninstall finishes).
//! 4: links as runs: one row per run of relationship instances from one source through one
//!    relationship (`target` when the run has one target, else `targets`, a JSON list), so a
//!    fan-out of N links is one row, not N.
//! 5: blueprint files content-addressed: contents in chunks, a file list per deployment
//!    (`resources` rows are converted, and the table is left empty).
//! 6: the process groups of running operations (`processes.rs`).
//! 7: the start time of the process that runs an execution (`pid_started`), so that a reused
//!    pid never makes a dead execution look busy.
//! 8: the live state of each deployment's policies, saved by `windlass serve` (`policies.rs`).
//! 9: the REST API's bearer tokens, by name, as SHA-256 hashes (`tokens.rs`).
//! 10: autoscaling rules, by name, each of one deployment and deleted with it (`rules.rs`).
//! 11: the vSphere plugin's placement: one row per VM a deployment's instance holds (pooled or
//!     cloned, on which host), unique per vCenter and VM name, and the last host each node
//!     cloned onto (`vsphere.rs`).
//! 12: secrets, by name: AES-256-GCM ciphertext and its nonce, never the value (`secrets.rs`).
//! 13: compiled blueprints hold each distinct operation set once (no statement: the stored
//!     JSON of older deployments is converted by `operation_sets.rs`).

pub const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
ALTER TABLE node_instances ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE node_instances ADD COLUMN node INTEGER NOT NULL DEFAULT 0;
ALTER TABLE node_instances ADD COLUMN parent TEXT;
ALTER TABLE node_instances ADD COLUMN parent_is_group INTEGER NOT NULL DEFAULT 0;
ALTER TABLE node_instances ADD COLUMN contained_in TEXT;
ALTER TABLE node_instances ADD COLUMN host TEXT;
ALTER TABLE node_instances ADD COLUMN groups TEXT NOT NULL DEFAULT '';
ALTER TABLE node_instances ADD COLUMN idx INTEGER NOT NULL DEFAULT 0;
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
CREATE TABLE links (
    seq INTEGER PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    source TEXT NOT NULL,
    relationship INTEGER NOT NULL,
    target TEXT NOT NULL
);
CREATE INDEX links_by_source ON links(deployment_id, source);
CREATE INDEX links_by_target ON links(deployment_id, target)
"#,
    r#"
ALTER TABLE deployments ADD COLUMN installed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
UPDATE deployments SET installed = COALESCE((SELECT e.workflow = 'install' FROM executions e
    WHERE e.deployment_id = deployments.id AND e.status = 'terminated'
    AND e.workflow IN ('install', 'uninstall') ORDER BY e.created_at DESC LIMIT 1), 0)
"#,
    r#"
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
INSERT INTO link_runs (seq, deployment_id, source, relationship, target_node, target)
    SELECT l.seq, l.deployment_id, l.source, l.relationship, COALESCE(n.node, 0), l.target
    FROM links l LEFT JOIN node_instances n ON n.deployment_id = l.deployment_id AND n.id = l.target;
DROP TABLE links
"#,
    r#"
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
CREATE INDEX snapshot_files_by_hash ON snapshot_files(hash)
"#,
    r#"
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
CREATE INDEX processes_by_deployment ON processes(deployment_id)
"#,
    r#"
ALTER TABLE executions ADD COLUMN pid_started INTEGER
"#,
    r#"
CREATE TABLE policy_state (
    deployment_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"#,
    r#"
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
)
"#,
    r#"
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
CREATE INDEX rules_by_deployment ON rules(deployment_id)
"#,
    r#"
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
)
"#,
    r#"
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"#,
    "",
];

/// The migration after which plans are stored as rows (older deployments are converted).
pub const PLAN_ROWS: usize = 2;

/// The migration after which blueprint files are content-addressed (`resources` rows are
/// converted).
pub const SNAPSHOT_CONTENTS: usize = 5;

/// The migration after which a compiled blueprint keeps its operation sets apart from its
/// nodes (older `deployments.compiled` values are converted).
pub const OPERATION_SETS: usize = 13;
