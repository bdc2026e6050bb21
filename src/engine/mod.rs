//! Engine: runs workflows on deployments, durably.
//!
//! # Overview
//! A deployment is created from a compiled blueprint, its plan and a snapshot of the blueprint's
//! files ([`create_deployment`], [`snapshot`]); a workflow
//! (install, uninstall, execute_operation, or a blueprint workflow mapped to one of them) is
//! turned into a task graph ([`graph`]) and walked in parallel ([`walker`]). Operations are run by
//! plugins ([`crate::plugins`]); their inputs' runtime functions are resolved just before they run
//! ([`attributes`]). Every state change, task record and event goes through the recorder
//! ([`events`]) to the store, so a killed process loses at most the operations in flight and
//! [`resume`] skips what was done.
//!
//! # Rough outline
//! `create_deployment` → `run` → `start_execution` (refused while another runs) → build the
//! graph → walk → mark the execution terminated, failed or cancelled.
//!
//! # Process lifetime
//! Scripts run under a guard that dies with this process and takes their process group with it
//! (`plugins::guard`); each execution first stops what a dead engine's groups left running
//! ([`orphans`]), and so does `cancel` of an interrupted execution.
//!
//! # Cancellation
//! `cancel` marks the execution `cancelling` in the store; the running engine polls for it,
//! stops starting jobs and signals running operations (scripts are killed).
//!
//! # Secrets
//! Before an execution is recorded (and before `deploy` stores anything, and before `resume`
//! adopts one), every secret the blueprint uses is loaded and decrypted (`secrets::reveal`);
//! one missing or undecryptable secret refuses the command with one error naming them all.
//! The session's recorder masks their values in everything it writes, and the execution's
//! error is masked before it is stored or returned.

pub mod attributes;
pub mod events;
pub mod graph;
pub mod heal;
pub mod ignore;
pub mod lifecycle;
pub mod lookups;
pub mod orphans;
pub mod rules;
pub mod scale;
pub mod scope;
pub mod snapshot;
pub mod state;
pub mod walker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::maps::IndexMap;
use serde_json::{Map, Value as Json};

use crate::blueprint;
use crate::dsl::GivenInputs;
use crate::dsl::compiled::Parameter;
use crate::plugins::Registry;
use crate::secrets::Revealed;
use crate::store::{DeploymentRecord, ExecutionRecord, Store, StoreError, Write};
use events::{Display, Recorder};

/// How to run: parallelism, default retries, how to show progress.
#[derive(Clone)]
pub struct Options {
    pub parallelism: usize,
    /// Retries of a failing operation when it sets no `max_retries` (-1: unlimited).
    pub task_retries: i64,
    pub retry_interval: Duration,
    pub display: Display,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: 10,
            task_retries: 0,
            retry_interval: Duration::from_secs(1),
            display: Display::Quiet,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Blueprint(#[from] blueprint::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// An autoscaling rule that cannot be stored as given (`rules`).
    #[error(transparent)]
    Rule(#[from] crate::policy::RuleError),
    /// A secret that is missing, cannot be decrypted, or a `windlass secrets` request refused.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretError),
    #[error("the blueprint uses operations windlass cannot run:\n  {}", .0.join("\n  "))]
    Plugins(Vec<String>),
    #[error("{0}")]
    Workflow(String),
    /// A workflow other than install or uninstall asked of a deployment that is not installed.
    #[error("{0}")]
    NotInstalled(String),
    #[error("{0}")]
    Io(String),
    #[error(
        "workflow `{workflow}` of deployment `{deployment}` failed (execution {execution}): {error}"
    )]
    Failed {
        deployment: String,
        execution: String,
        workflow: String,
        error: String,
    },
    #[error(
        "workflow `{workflow}` of deployment `{deployment}` was cancelled (execution {execution})"
    )]
    Cancelled {
        deployment: String,
        execution: String,
        workflow: String,
    },
}

/// Create a deployment from a blueprint: validate it, check its operations, snapshot the files
/// of its directory and store it all. Returns what the snapshot held and stored, and the
/// deployment for [`install`], the caller's next step.
pub async fn create_deployment(
    store: &Store,
    blueprint_path: &Path,
    id: &str,
    given: &GivenInputs,
) -> Result<(snapshot::Report, Created), EngineError> {
    let label = blueprint_path.display().to_string();
    create_deployment_as(store, blueprint_path, &label, id, given).await
}

/// [`create_deployment`], recording the blueprint as `label` (an uploaded archive's file,
/// whose unpacked path is gone once the snapshot is stored).
pub async fn create_deployment_as(
    store: &Store,
    blueprint_path: &Path,
    label: &str,
    id: &str,
    given: &GivenInputs,
) -> Result<(snapshot::Report, Created), EngineError> {
    let bp = blueprint::open(blueprint_path, given)?;
    let skip = snapshot_skip(store);
    let files = snapshot_dir(blueprint_path, &skip);
    create_opened(store, label, id, bp, files, &skip).await
}

/// The snapshot of the files of the blueprint's directory, as [`create_opened`] stores them,
/// but for those in `skip` ([`snapshot_skip`]). It needs nothing of the blueprint: `deploy`
/// takes it while the blueprint is being opened.
pub fn snapshot_dir(
    blueprint_path: &Path,
    skip: &[std::path::PathBuf],
) -> Result<snapshot::Snapshot, EngineError> {
    let root = blueprint_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Absolute, so that messages name the directory whatever the current one is.
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    Ok(snapshot::walk(&root, skip)?)
}

/// What no snapshot holds: the store's files and the secrets' key, wherever its owner keeps it.
pub fn snapshot_skip(store: &Store) -> Vec<std::path::PathBuf> {
    let mut skip = store.files();
    if let Some(key) = crate::secrets::key_path()
        .ok()
        .and_then(|k| std::fs::canonicalize(k).ok())
    {
        skip.push(key);
    }
    skip
}

/// [`create_deployment_as`] for a blueprint the caller opened (`blueprint::open`), with the
/// snapshot of its directory ([`snapshot_dir`]), whose error, if any, is reported after what
/// is wrong with the blueprint's inputs, plugins and secrets. `skip` is what the snapshot was
/// taken without ([`snapshot_skip`]); the external plugins added to it leave out the same.
pub async fn create_opened(
    store: &Store,
    label: &str,
    id: &str,
    bp: blueprint::Blueprint,
    files: Result<snapshot::Snapshot, EngineError>,
    skip: &[PathBuf],
) -> Result<(snapshot::Report, Created), EngineError> {
    let compiled = Arc::new(bp.compiled);
    // The compiled blueprint as stored (JSON: 147 KB for 200 nodes), made on another thread
    // while the checks below run and the plan's rows are made.
    let making = tokio::task::spawn_blocking({
        let compiled = compiled.clone();
        // Its maps have text keys: nothing in it can fail to serialize.
        move || serde_json::to_string(&*compiled).expect("a compiled blueprint serializes")
    });
    let compiled_json = async {
        match making.await {
            Ok(json) => json,
            // A panic there is one here.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    lookups::check_inputs(store, &compiled).await?;
    let registry = Registry::for_blueprint(&compiled);
    check_plugins(&compiled, &registry)?;
    // Before anything is stored: a deploy that cannot run leaves nothing behind.
    let secrets = Arc::new(crate::secrets::reveal(store, &compiled).await?);
    let mut files = files?;
    // The external plugins the deployment runs travel with it (`plugins::external`).
    for plugin in compiled.external_plugins.values().filter(|p| p.runnable) {
        snapshot::add_plugin(&mut files, &plugin.source, &plugin.dir_name, skip)?;
    }
    let inputs = Json::Object(compiled.inputs.clone().into_iter().collect());
    // The install comes next: an instance whose install has nothing to run, here or in what it
    // depends on, is stored as it will end, `started`, and the install writes nothing for it.
    let started = graph::nothing_to_install(&compiled);
    let stored = store
        .create_deployment(
            id,
            label,
            &inputs,
            &compiled,
            compiled_json,
            &bp.plan,
            &files.files,
            &started,
        )
        .await?;
    let records = bp
        .plan
        .instances
        .iter()
        .map(|i| crate::store::InstanceRecord {
            id: i.id.0.clone(),
            node_id: compiled.nodes[i.node].id.0.clone(),
            state: crate::store::initial_state(started[i.node]).to_string(),
            runtime_properties: Map::new(),
            version: 0,
        })
        .collect();
    let dep = DeploymentRecord {
        id: id.to_string(),
        blueprint: label.to_string(),
        created_at: crate::store::now(),
        inputs,
        compiled,
        plan: Arc::new(bp.plan),
        installed: false,
        deleting: false,
    };
    Ok((
        snapshot::Report::new(&files, stored),
        Created {
            dep,
            records,
            secrets,
        },
    ))
}

/// A deployment just created, with its whole plan in memory: [`install`] runs on it without
/// reading anything back.
pub struct Created {
    dep: DeploymentRecord,
    records: Vec<crate::store::InstanceRecord>,
    secrets: Arc<Revealed>,
}

/// Run `install` on a deployment [`create_deployment`] just stored. Returns the execution id.
pub async fn install(
    store: &Store,
    created: Created,
    options: &Options,
) -> Result<String, EngineError> {
    start_install(store, created)
        .await?
        .run(store, options)
        .await
}

/// Run a workflow on a deployment. Returns the execution id.
pub async fn run(
    store: &Store,
    id: &str,
    workflow: &str,
    params: Map<String, Json>,
    allow_custom_parameters: bool,
    options: &Options,
) -> Result<String, EngineError> {
    start(store, id, workflow, params, allow_custom_parameters)
        .await?
        .run(store, options)
        .await
}

/// A workflow to start, as asked for.
struct Request<'a> {
    workflow: &'a str,
    params: Map<String, Json>,
    allow_custom_parameters: bool,
    /// Delete the deployment when the workflow (an uninstall) finishes: `undeploy`.
    then_delete: bool,
    /// Parameters windlass derives itself, added after `params` are checked against the
    /// workflow's declaration (a Kubernetes replica count, which no `delta` can say).
    derived: Map<String, Json>,
}

/// [`run`] on a deployment already read from the store.
async fn run_loaded(
    store: &Store,
    dep: DeploymentRecord,
    request: Request<'_>,
    options: &Options,
) -> Result<String, EngineError> {
    start_loaded(store, dep, request, None)
        .await?
        .run(store, options)
        .await
}

/// A workflow checked and recorded as an execution, not walked yet: what a manager starts in
/// the background ([`Started::run`]) after answering with its id.
pub struct Started {
    dep: DeploymentRecord,
    execution: ExecutionRecord,
    /// A fresh deployment's instance states ([`start_install`]): nothing is read back.
    whole: Option<Vec<crate::store::InstanceRecord>>,
    secrets: Arc<Revealed>,
}

impl Started {
    /// The execution's id.
    pub fn execution(&self) -> &str {
        &self.execution.id
    }

    /// Walk the workflow to its end. Returns the execution id.
    pub async fn run(self, store: &Store, options: &Options) -> Result<String, EngineError> {
        execute(
            store,
            self.dep,
            self.execution,
            Attempt::First,
            self.whole,
            self.secrets,
            options,
        )
        .await
    }
}

/// [`install`] without walking: the execution is recorded, [`Started::run`] walks it.
pub async fn start_install(store: &Store, created: Created) -> Result<Started, EngineError> {
    let request = Request {
        workflow: "install",
        params: Map::new(),
        allow_custom_parameters: false,
        then_delete: false,
        derived: Map::new(),
    };
    let mut started = start_loaded(store, created.dep, request, Some(created.secrets)).await?;
    started.whole = Some(created.records);
    Ok(started)
}

/// [`undeploy`] without walking: the execution and the deployment's `deleting` mark are
/// recorded, [`Started::run`] walks the uninstall and deletes the deployment.
pub async fn start_undeploy(
    store: &Store,
    id: &str,
    ignore_failure: bool,
) -> Result<Started, EngineError> {
    let mut params = Map::new();
    params.insert("ignore_failure".to_string(), Json::Bool(ignore_failure));
    let dep = store.deployment_frame(id).await?;
    let request = Request {
        workflow: "uninstall",
        params,
        allow_custom_parameters: false,
        then_delete: true,
        derived: Map::new(),
    };
    start_loaded(store, dep, request, None).await
}

/// Check a workflow and record its execution (refused while another runs), without walking it.
pub async fn start(
    store: &Store,
    id: &str,
    workflow: &str,
    params: Map<String, Json>,
    allow_custom_parameters: bool,
) -> Result<Started, EngineError> {
    let dep = store.deployment_frame(id).await?;
    let request = Request {
        workflow,
        params,
        allow_custom_parameters,
        then_delete: false,
        derived: Map::new(),
    };
    start_loaded(store, dep, request, None).await
}

/// `secrets`: already revealed (a deploy's), else revealed here, before the execution exists.
async fn start_loaded(
    store: &Store,
    mut dep: DeploymentRecord,
    request: Request<'_>,
    secrets: Option<Arc<Revealed>>,
) -> Result<Started, EngineError> {
    let Request {
        workflow,
        params,
        allow_custom_parameters,
        then_delete,
        derived,
    } = request;
    let id = dep.id.clone();
    let id = id.as_str();
    let Some(declared) = dep.compiled.workflows.get(workflow) else {
        if workflow == "update" {
            // Cloudify 7 declares no `update` workflow either; users look for one anyway.
            return Err(no_update(workflow));
        }
        let names: Vec<&str> = dep.compiled.workflows.keys().map(String::as_str).collect();
        return Err(EngineError::Workflow(format!(
            "deployment `{id}` has no workflow `{workflow}`{}",
            crate::diag::did_you_mean(workflow, names.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_default()
        )));
    };
    let mut params = check_parameters(
        workflow,
        &declared.parameters,
        params,
        allow_custom_parameters,
    )?;
    params.extend(derived);
    if dep.compiled.external_plugins.contains_key(&declared.plugin) {
        return Err(EngineError::Workflow(format!(
            "workflow `{workflow}` maps to {}.{}, a workflow of the external plugin `{}`: windlass runs external plugins' operations, not their workflows",
            declared.plugin, declared.operation, declared.plugin
        )));
    }
    let kind = builtin(workflow, &declared.plugin, &declared.operation)?;
    lookups::check_parameters(store, &dep, &declared.parameters, &params).await?;
    if !dep.installed && kind != "install" && kind != "uninstall" {
        return Err(not_installed(store, &dep, workflow).await?);
    }
    if kind == "scale" {
        // Checked before an execution exists: a refused scale leaves no trace.
        let target = scale::target_param(&params)?;
        if scale::kubernetes_deployment(&dep, &target).is_some() {
            scale::replicas_amount(&params)?;
        } else {
            let delta = scale::delta_param(params.get("delta"))?;
            scale::plan_scale(&dep, &target, scale::Amount::Relative(delta))?;
        }
    }
    if lifecycle::KINDS.contains(&kind) {
        // Filters that name nothing are refused before an execution exists.
        let ids: Vec<String> = store
            .instances(id)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        lifecycle::check_filters(&dep, &ids, &params)?;
    }
    let secrets = match secrets {
        Some(s) => s,
        None => Arc::new(crate::secrets::reveal(store, &dep.compiled).await?),
    };
    let execution = store
        .start_execution(id, workflow, &Json::Object(params), then_delete)
        .await?;
    // However it is interrupted, `resume` finishes an undeploy with the deployment deleted (see
    // `execute`).
    dep.deleting |= then_delete;
    Ok(Started {
        dep,
        execution,
        whole: None,
        secrets,
    })
}

/// Why a workflow other than install or uninstall cannot run on a deployment that is not
/// installed, and what to do instead.
async fn not_installed(
    store: &Store,
    dep: &DeploymentRecord,
    workflow: &str,
) -> Result<EngineError, EngineError> {
    let id = &dep.id;
    let why = if dep.deleting {
        format!(
            "it is being undeployed: `windlass resume {id}` or `windlass undeploy {id}` finishes that"
        )
    } else {
        let ran_uninstall = store
            .executions(id)
            .await?
            .iter()
            .any(|e| e.workflow == "uninstall" && e.status == "terminated");
        if ran_uninstall {
            format!(
                "it was uninstalled: `windlass run {id} install` installs it again, `windlass undeploy {id}` removes it"
            )
        } else {
            format!(
                "its install has not finished: `windlass resume {id}` continues it, `windlass undeploy {id}` removes it"
            )
        }
    };
    Ok(EngineError::NotInstalled(format!(
        "cannot run `{workflow}` on deployment `{id}`, which is not installed: {why}"
    )))
}

/// Continue the deployment's interrupted, failed or cancelled execution, skipping what is done.
/// An interrupted `undeploy` ends as it would have: with the deployment deleted.
pub async fn resume(store: &Store, id: &str, options: &Options) -> Result<String, EngineError> {
    let dep = store.deployment_frame(id).await?;
    // Before an execution is adopted: a resume that cannot run changes nothing.
    let secrets = Arc::new(crate::secrets::reveal(store, &dep.compiled).await?);
    let execution = match store.adopt_execution(id).await? {
        Some(e) => e,
        None => {
            let last = store.latest_execution(id).await?;
            match last {
                // Killed after its uninstall finished but before the deployment went.
                Some(e)
                    if dep.deleting && e.workflow == "uninstall" && e.status == "terminated" =>
                {
                    store.delete_deployment(id).await?;
                    return Ok(e.id);
                }
                // Killed after its install finished but before the deployment was marked
                // installed: only the mark is left to do.
                Some(e)
                    if !dep.installed
                        && e.status == "terminated"
                        && dep.compiled.workflows.get(&e.workflow).is_some_and(|w| {
                            builtin(&e.workflow, &w.plugin, &w.operation).ok() == Some("install")
                        }) =>
                {
                    store.set_installed(id, true).await?;
                    return Ok(e.id);
                }
                Some(e)
                    if (e.status == "failed" || e.status == "cancelled")
                        && store.reopen_execution(&e.id).await? =>
                {
                    e
                }
                Some(e) => {
                    return Err(EngineError::Workflow(format!(
                        "deployment `{id}` has nothing to resume: its last execution {} ({}) is {}",
                        e.id, e.workflow, e.status
                    )));
                }
                // Killed after the deployment was stored and before its install started:
                // start it.
                None if !dep.installed => {
                    let request = Request {
                        workflow: "install",
                        params: Map::new(),
                        allow_custom_parameters: false,
                        then_delete: false,
                        derived: Map::new(),
                    };
                    return start_loaded(store, dep, request, Some(secrets))
                        .await?
                        .run(store, options)
                        .await;
                }
                None => {
                    return Err(EngineError::Workflow(format!(
                        "deployment `{id}` has no execution to resume"
                    )));
                }
            }
        }
    };
    execute(
        store,
        dep,
        execution,
        Attempt::Resumed,
        None,
        secrets,
        options,
    )
    .await
}

/// `windlass scale ID TARGET AMOUNT`: the scale workflow with an amount as users write it.
pub async fn scale(
    store: &Store,
    id: &str,
    target: &str,
    amount: scale::Amount,
    mut extra: Map<String, Json>,
    options: &Options,
) -> Result<String, EngineError> {
    let dep = store.deployment_frame(id).await?;
    if !dep.installed {
        return Err(not_installed(store, &dep, "scale").await?);
    }
    // A Kubernetes Deployment scales its replicas by the amount as written (`3` is a count,
    // which `delta`, a change, cannot say).
    let mut derived = Map::new();
    let delta = match amount {
        _ if scale::kubernetes_deployment(&dep, target).is_none() => {
            scale::plan_scale(&dep, target, amount)?.delta
        }
        scale::Amount::Relative(d) => d,
        scale::Amount::Absolute(n) => {
            derived.insert(scale::REPLICAS.to_string(), Json::from(n));
            0
        }
    };
    let delta = Json::from(delta);
    extra.insert(
        "scalable_entity_name".to_string(),
        Json::String(target.to_string()),
    );
    extra.insert("delta".to_string(), delta);
    let request = Request {
        workflow: "scale",
        params: extra,
        allow_custom_parameters: false,
        then_delete: false,
        derived,
    };
    run_loaded(store, dep, request, options).await
}

/// Run `uninstall` and delete the deployment. With `ignore_failure`, failing operations are
/// reported and the deployment is deleted all the same.
pub async fn undeploy(
    store: &Store,
    id: &str,
    ignore_failure: bool,
    options: &Options,
) -> Result<String, EngineError> {
    start_undeploy(store, id, ignore_failure)
        .await?
        .run(store, options)
        .await
}

/// Ask the deployment's running execution to stop; an interrupted one is marked cancelled.
pub async fn cancel(store: &Store, id: &str) -> Result<String, EngineError> {
    store.deployment_frame(id).await?;
    let Some(active) = store.active_execution(id).await? else {
        return Err(EngineError::Workflow(format!(
            "deployment `{id}` has no running execution"
        )));
    };
    let alive = active.running();
    let status = if alive { "cancelling" } else { "cancelled" };
    store.set_execution_status(&active.id, status, None).await?;
    if !alive {
        // Dropping an interrupted execution: stop what its dead engine left running.
        let (recorder, writer) = Recorder::spawn(store.clone(), id, Display::Quiet);
        orphans::stop(store, id, &recorder, &active.id).await?;
        recorder.flush().await.map_err(EngineError::Io)?;
        drop(recorder);
        let _ = writer.await;
    }
    if let Some(pid) = active.pid.filter(|_| alive) {
        // SAFETY: sends SIGUSR1 to the process that runs the execution; it listens for it.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGUSR1);
        }
    }
    Ok(active.id)
}

/// A deployment's node instances as `windlass instances --json` and the API show them:
/// `[{"id", "node_id", "host_id", "state", "runtime_properties", "relationships": [{"type",
/// "target_name", "target_id"}]}]`, in plan order.
pub async fn instances_json(store: &Store, id: &str) -> Result<Vec<Json>, EngineError> {
    let dep = store.deployment(id).await?;
    let records = store.instances(id).await?;
    let by_id: std::collections::HashMap<&str, &crate::store::InstanceRecord> =
        records.iter().map(|r| (r.id.as_str(), r)).collect();
    Ok(dep
        .plan
        .instances
        .iter()
        .map(|inst| {
            let node = &dep.compiled.nodes[inst.node];
            let rec = by_id.get(inst.id.0.as_str());
            serde_json::json!({
                "id": inst.id,
                "node_id": node.id,
                "host_id": inst.host.map(|h| dep.plan.instance_id(h)),
                "state": rec.map_or("uninitialized", |r| r.state.as_str()),
                "runtime_properties": rec.map(|r| Json::Object(r.runtime_properties.clone())).unwrap_or(serde_json::json!({})),
                "relationships": inst.relationships.iter().map(|r| {
                    let rel = &node.relationships[r.relationship];
                    serde_json::json!({"type": rel.type_name, "target_name": dep.compiled.nodes[rel.target].id, "target_id": dep.plan.instance_id(r.target)})
                }).collect::<Vec<_>>(),
            })
        })
        .collect())
}

/// Outputs with runtime functions resolved; an unresolvable one shows its error as a string.
pub async fn outputs(store: &Store, id: &str) -> Result<Map<String, Json>, EngineError> {
    resolved(store, id, |c| &c.outputs).await
}

/// Capabilities, resolved as [`outputs`] are (what a `capability_value` names).
pub async fn capabilities(store: &Store, id: &str) -> Result<Map<String, Json>, EngineError> {
    resolved(store, id, |c| &c.capabilities).await
}

async fn resolved(
    store: &Store,
    id: &str,
    pick: impl Fn(&crate::dsl::Compiled) -> &IndexMap<String, Json>,
) -> Result<Map<String, Json>, EngineError> {
    let dep = store.deployment(id).await?;
    let (recorder, _task) = Recorder::spawn(store.clone(), id, Display::Quiet);
    let instances = state::Instances::new(store.instances(id).await?, recorder, None);
    // Outputs never decrypt: a secret reads `******`, a missing one is the output's error.
    let secrets = crate::secrets::hidden(store).await?;
    let resolver = attributes::Resolver {
        compiled: &dep.compiled,
        plan: &dep.plan,
        instances: &instances,
        deployment: id,
        secrets: &secrets,
    };
    Ok(pick(&dep.compiled)
        .iter()
        .map(|(k, v)| {
            let value = resolver
                .resolve(v, attributes::Scope::default())
                .unwrap_or_else(|e| Json::String(format!("<error: {e}>")));
            (k.clone(), value)
        })
        .collect())
}

/// Why there is no deployment update, and what to do instead.
fn no_update(workflow: &str) -> EngineError {
    EngineError::Workflow(format!(
        "workflow `{workflow}` (Cloudify's deployment update) is not something windlass does: a deployment keeps the blueprint and inputs it was created with. To change them, `windlass undeploy ID` then `windlass deploy BLUEPRINT -d ID -i …`; to change how many instances a node has, `windlass scale ID NODE AMOUNT`; to redo some instances, `windlass run ID reinstall -p node_ids=…`"
    ))
}

/// The built-in workflow a mapping names, or an error for those this version cannot run.
fn builtin(workflow: &str, plugin: &str, operation: &str) -> Result<&'static str, EngineError> {
    let name = operation.rsplit('.').next().unwrap_or(operation);
    match (plugin, name) {
        ("default_workflows", "install") => Ok("install"),
        ("default_workflows", "uninstall") => Ok("uninstall"),
        ("default_workflows", "execute_operation") => Ok("execute_operation"),
        ("default_workflows", "scale" | "scale_entity") => Ok("scale"),
        ("default_workflows", "auto_heal_reinstall_node_subgraph" | "heal") => Ok("heal"),
        ("default_workflows", "start") => Ok("start"),
        ("default_workflows", "stop") => Ok("stop"),
        ("default_workflows", "restart") => Ok("restart"),
        ("default_workflows", "reinstall") => Ok("reinstall"),
        ("default_workflows", "update") => Err(no_update(workflow)),
        ("script", _) => Ok("script"),
        _ if Registry::default()
            .get(plugin)
            .is_some_and(|p| p.has_workflow(operation)) =>
        {
            Ok("plugin")
        }
        _ => Err(EngineError::Workflow(format!(
            "workflow `{workflow}` maps to {plugin}.{operation}, which this version of windlass cannot run yet (it runs install, uninstall, reinstall, start, stop, restart, execute_operation, scale and heal)"
        ))),
    }
}

/// Whether an execution runs for the first time or continues an earlier attempt.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Just recorded by this process: no earlier attempt left anything behind.
    First,
    /// `resume`: an earlier attempt may have been killed.
    Resumed,
}

/// Run an execution to its end. `whole`: `dep` already holds the whole plan, and these are
/// its instances' states (a fresh deployment), so nothing is read back.
async fn execute(
    store: &Store,
    mut dep: DeploymentRecord,
    execution: ExecutionRecord,
    attempt: Attempt,
    whole: Option<Vec<crate::store::InstanceRecord>>,
    secrets: Arc<Revealed>,
    options: &Options,
) -> Result<String, EngineError> {
    let declared = dep.compiled.workflows.get(&execution.workflow);
    let kind = match declared {
        Some(w) => builtin(&execution.workflow, &w.plugin, &w.operation)?,
        None => builtin(
            &execution.workflow,
            "default_workflows",
            &execution.workflow,
        )?,
    };
    let params = execution
        .parameters
        .as_object()
        .cloned()
        .unwrap_or_default();
    // A scale reads the instances it touches as it goes; everything else needs them all.
    let records = if kind == "scale" {
        None
    } else if let Some(records) = whole {
        Some(records)
    } else {
        let (plan, records) = store
            .whole_plan(&dep.id, dep.plan.frame(), &dep.compiled)
            .await?;
        dep.plan = Arc::new(plan);
        Some(records)
    };
    match kind {
        "install" if dep.deleting => store.set_deleting(&dep.id, false).await?,
        "uninstall" if dep.installed => store.set_installed(&dep.id, false).await?,
        _ => {}
    }
    let session = Session::open(store, &dep.id, &execution, records, secrets, options).await?;
    // Before anything runs: no operation may start while an earlier attempt of it is alive.
    orphans::stop(store, &dep.id, &session.recorder, &execution.id).await?;
    // With them gone, so can their working directories (named after the execution: only an
    // earlier attempt of it has any, and looking costs a scan of the temporary directory).
    if attempt == Attempt::Resumed {
        session.workdir.remove_stale(&execution.id);
    }
    // A first attempt has done nothing yet.
    let done = match attempt {
        Attempt::First => Default::default(),
        Attempt::Resumed => store.done_tasks(&execution.id).await?,
    };
    let resumed = !done.is_empty();
    session.event(
        "workflow_started",
        format!(
            "{} {}{}",
            if resumed { "resuming" } else { "starting" },
            execution.workflow,
            if resumed {
                format!(" ({} tasks already done)", done.len())
            } else {
                String::new()
            }
        ),
    );
    if kind == "install" && !resumed {
        let agents: Vec<String> = dep
            .compiled
            .nodes
            .iter()
            .filter_map(|n| n.wants_agent().map(|m| format!("{} ({m})", n.id)))
            .collect();
        if !agents.is_empty() {
            session.event(
                "warning",
                format!(
                    "windlass installs no Cloudify agent; asked for by {}: their operations run from this machine (agent_config.install_method: none says so)",
                    agents.join(", ")
                ),
            );
        }
    }
    let ended = match kind {
        "scale" => scale::run(store, &mut dep, &params, &session, done).await,
        "heal" => heal::run(&dep, &params, &session, done).await,
        "start" | "stop" | "restart" | "reinstall" => {
            lifecycle::run(kind, &dep, &params, &session, done).await
        }
        "script" => script_workflow(&dep, &execution, &params, &session).await,
        "plugin" => plugin_workflow(&dep, &execution, params.clone(), &session, done).await,
        _ => {
            let ignore_failure = params
                .get("ignore_failure")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            let graph = match kind {
                "install" => graph::install(&dep.plan),
                "uninstall" => graph::uninstall(&dep.plan, |i| {
                    session.instances.state(&dep.plan.instance_id(i).0)
                }),
                _ => execute_operation_graph(&dep, &params)?,
            };
            let outcome = session.walk(&dep, graph, done, ignore_failure).await;
            Ok(Ended::from_outcome(&outcome, ignore_failure))
        }
    };
    let ended = match ended {
        Ok(e) => e,
        Err(e) => Ended {
            status: "failed",
            error: Some(e.to_string()),
            ignored: Vec::new(),
        },
    };
    let id = session
        .close(store, &dep.id, &execution, ended, kind == "install")
        .await?;
    if kind == "uninstall" && dep.deleting {
        store.delete_deployment(&dep.id).await?;
    }
    drop_aside(dep);
    Ok(id)
}

/// Drop what is left of a deployment (its compiled blueprint and plan: 1.1 M instructions for
/// 1,000 instances) on a blocking thread, off the path to the command's answer; a one-shot
/// command ends without waiting for it (`cli::with_store_connections`).
fn drop_aside(dep: DeploymentRecord) {
    drop(tokio::task::spawn_blocking(move || drop(dep)));
}

/// A workflow implemented by a script in the blueprint: it runs once, with the workflow's
/// parameters as environment variables and a `ctx` with deployment-level access
/// (`ctx node-instances [NODE]`, `ctx node-instance ID runtime-properties …`, `ctx logger …`).
async fn script_workflow(
    dep: &DeploymentRecord,
    execution: &ExecutionRecord,
    params: &Map<String, Json>,
    session: &Session,
) -> Result<Ended, EngineError> {
    let Some(w) = dep.compiled.workflows.get(&execution.workflow) else {
        return Err(EngineError::Workflow(format!(
            "no workflow `{}`",
            execution.workflow
        )));
    };
    let mut inputs = params.clone();
    inputs.insert("script_path".to_string(), Json::String(w.operation.clone()));
    let ctx = crate::plugins::OperationContext {
        inputs,
        ..crate::plugins::OperationContext::standalone(
            &dep.id,
            &execution.id,
            &execution.workflow,
            "script_runner.tasks.execute_workflow",
            session.instances.clone(),
            session.recorder.clone(),
            session.cancel.clone(),
            session.workdir.ready().await?.to_path_buf(),
        )
    };
    let ctx = crate::plugins::OperationContext {
        secrets: session.secrets.clone(),
        ..ctx
    };
    let result = crate::plugins::script::ScriptPlugin.run_workflow(ctx).await;
    Ok(match result {
        Ok(_) => Ended {
            status: "terminated",
            error: None,
            ignored: Vec::new(),
        },
        Err(e) if *session.cancel.borrow() => Ended {
            status: "cancelled",
            error: Some(e.to_string()),
            ignored: Vec::new(),
        },
        Err(e) => Ended {
            status: "failed",
            error: Some(e.to_string()),
            ignored: Vec::new(),
        },
    })
}

/// A workflow a plugin implements (`kubernetes.kube_plugin.workflows.kube_scale`): it runs
/// once, as the whole execution, with the deployment and the steps a previous attempt recorded.
async fn plugin_workflow(
    dep: &DeploymentRecord,
    execution: &ExecutionRecord,
    params: Map<String, Json>,
    session: &Session,
    done: std::collections::HashSet<String>,
) -> Result<Ended, EngineError> {
    let registry = Registry::default();
    let (plugin, w) = dep
        .compiled
        .workflows
        .get(&execution.workflow)
        .and_then(|w| Some((registry.get(&w.plugin)?, w)))
        .ok_or_else(|| {
            EngineError::Workflow(format!("no plugin workflow `{}`", execution.workflow))
        })?;
    let ctx = crate::plugins::WorkflowContext {
        deployment_id: dep.id.clone(),
        execution_id: execution.id.clone(),
        workflow: execution.workflow.clone(),
        function: w.operation.clone(),
        parameters: params,
        compiled: dep.compiled.clone(),
        plan: dep.plan.clone(),
        instances: session.instances.clone(),
        recorder: session.recorder.clone(),
        cancel: session.cancel.clone(),
        resources: session.workdir.ready().await?.to_path_buf(),
        done,
        secrets: session.secrets.clone(),
    };
    let result = plugin.workflow(ctx).await;
    let (status, error) = match result {
        Ok(_) => ("terminated", None),
        Err(e) if *session.cancel.borrow() => ("cancelled", Some(e.to_string())),
        Err(e) => ("failed", Some(e.to_string())),
    };
    Ok(Ended {
        status,
        error,
        ignored: Vec::new(),
    })
}

/// How an execution ended.
pub(crate) struct Ended {
    status: &'static str,
    error: Option<String>,
    /// Failures that `ignore_failure` let pass.
    ignored: Vec<String>,
}

impl Ended {
    fn from_outcome(outcome: &walker::Outcome, ignore_failure: bool) -> Ended {
        if outcome.cancelled {
            Ended {
                status: "cancelled",
                error: None,
                ignored: Vec::new(),
            }
        } else if !outcome.failures.is_empty() && !ignore_failure {
            let skipped = if outcome.skipped > 0 {
                format!(" ({} dependent instances not started)", outcome.skipped)
            } else {
                String::new()
            };
            Ended {
                status: "failed",
                error: Some(format!("{}{skipped}", outcome.failures.join("; "))),
                ignored: Vec::new(),
            }
        } else {
            Ended {
                status: "terminated",
                error: None,
                ignored: outcome.failures.clone(),
            }
        }
    }
}

/// What one execution holds while it runs: the recorder, live instance state, the working
/// directory, the cancellation signal and the progress bar.
pub(crate) struct Session {
    execution: String,
    recorder: Recorder,
    writer: tokio::task::JoinHandle<()>,
    instances: state::Instances,
    workdir: Arc<Workdir>,
    cancel: tokio::sync::watch::Receiver<bool>,
    _cancel_tx: Arc<tokio::sync::watch::Sender<bool>>,
    poller: tokio::task::JoinHandle<()>,
    progress: Option<indicatif::ProgressBar>,
    parallelism: usize,
    task_retries: i64,
    retry_interval: Duration,
    /// The execution's secrets; the recorder hides their values.
    secrets: Arc<Revealed>,
}

impl Session {
    /// A session tracking the state of `records`, or (`None`) of the instances it is told
    /// about and those operations ask for (a scale).
    async fn open(
        store: &Store,
        deployment: &str,
        execution: &ExecutionRecord,
        records: Option<Vec<crate::store::InstanceRecord>>,
        secrets: Arc<Revealed>,
        options: &Options,
    ) -> Result<Session, EngineError> {
        let (recorder, writer) =
            Recorder::spawn(store.clone(), deployment, options.display.clone());
        // Before anything is written: every event and runtime property of this execution.
        recorder.hide(secrets.mask());
        let instances = match records {
            Some(all) => state::Instances::new(all, recorder.clone(), None),
            None => state::Instances::new(Vec::new(), recorder.clone(), Some(store.clone())),
        };
        let workdir = Arc::new(Workdir::new(store, deployment, &execution.id));
        let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
        // The sender lives as long as the session: receivers never see it closed.
        let cancel_tx = Arc::new(cancel_tx);
        let poller = {
            let (store, id, cancel_tx) = (store.clone(), execution.id.clone(), cancel_tx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Ok(Some(s)) = store.execution_status(&id).await
                        && s == "cancelling"
                    {
                        let _ = cancel_tx.send(true);
                        break;
                    }
                }
            })
        };
        // `windlass cancel` also signals this process (SIGUSR1): the store poll above is the
        // fallback when the signal cannot be sent. A process may run several executions (the
        // manager): a signal cancels only one the store marks `cancelling`.
        if let Ok(mut signals) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        {
            let (store, id, cancel_tx) = (store.clone(), execution.id.clone(), cancel_tx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        signal = signals.recv() => if signal.is_none() { break },
                        // The session is over (every receiver dropped): stop listening.
                        _ = cancel_tx.closed() => break,
                    }
                    if let Ok(Some(s)) = store.execution_status(&id).await
                        && s == "cancelling"
                    {
                        let _ = cancel_tx.send(true);
                        break;
                    }
                }
            });
        }
        let progress = match &options.display {
            Display::Progress(bar) => Some(bar.clone()),
            _ => None,
        };
        Ok(Session {
            execution: execution.id.clone(),
            recorder,
            writer,
            instances,
            workdir,
            cancel,
            _cancel_tx: cancel_tx,
            poller,
            progress,
            parallelism: options.parallelism,
            task_retries: options.task_retries,
            retry_interval: options.retry_interval,
            secrets,
        })
    }

    pub(crate) fn event(&self, event_type: &str, message: impl Into<String>) {
        self.recorder
            .event(&self.execution, event_type, None, None, message);
    }

    /// Walk a graph over the deployment as it is now.
    pub(crate) async fn walk(
        &self,
        dep: &DeploymentRecord,
        graph: graph::TaskGraph,
        done: std::collections::HashSet<String>,
        ignore_failure: bool,
    ) -> walker::Outcome {
        if let Some(bar) = &self.progress {
            bar.set_length(graph.jobs.len() as u64);
            bar.set_position(0);
        }
        let run = Arc::new(walker::Run {
            deployment: dep.id.clone(),
            execution: self.execution.clone(),
            compiled: dep.compiled.clone(),
            plan: dep.plan.clone(),
            instances: self.instances.clone(),
            recorder: self.recorder.clone(),
            registry: Registry::for_blueprint(&dep.compiled),
            workdir: self.workdir.clone(),
            cancel: self.cancel.clone(),
            task_retries: self.task_retries,
            retry_interval: self.retry_interval,
            done,
            contexts: Default::default(),
            relationship_operations: dep
                .compiled
                .nodes
                .iter()
                .map(|n| {
                    n.relationships
                        .iter()
                        .flat_map(|r| {
                            let ops = |set| dep.compiled.operations(set).keys();
                            ops(r.source_operations).chain(ops(r.target_operations))
                        })
                        .cloned()
                        .collect()
                })
                .collect(),
            noops: Default::default(),
            progress: self.progress.clone(),
            secrets: self.secrets.clone(),
        });
        walker::walk(run, graph, self.parallelism, ignore_failure).await
    }

    /// Record the execution's end with everything still queued, in one transaction: its
    /// status and, when `installs` and it finished, the deployment's `installed` mark.
    async fn close(
        self,
        store: &Store,
        deployment: &str,
        execution: &ExecutionRecord,
        mut ended: Ended,
        installs: bool,
    ) -> Result<String, EngineError> {
        self.poller.abort();
        // An operation's error may quote what it printed: stored and returned masked.
        ended.error = ended.error.map(|e| self.recorder.masked(&e));
        for e in &mut ended.ignored {
            *e = self.recorder.masked(e);
        }
        let message = match (&ended.error, ended.ignored.is_empty()) {
            (Some(e), _) => format!("{} failed: {e}", execution.workflow),
            (None, false) => format!(
                "{} finished; failures ignored: {}",
                execution.workflow,
                ended.ignored.join("; ")
            ),
            (None, true) => format!("{} {}", execution.workflow, ended.status),
        };
        let event = if ended.status == "terminated" {
            "workflow_succeeded"
        } else {
            "workflow_failed"
        };
        self.recorder
            .event(&self.execution, event, None, None, message);
        self.recorder.write(Write::Ended {
            deployment: deployment.to_string(),
            execution: execution.id.clone(),
            status: ended.status.to_string(),
            error: ended.error.clone(),
            installed: installs && ended.status == "terminated",
        });
        let flushed = self.recorder.flush().await;
        drop(self.recorder);
        drop(self.instances);
        let _ = self.writer.await;
        if let Some(bar) = self.progress {
            bar.finish_and_clear();
        }
        self.workdir.remove();
        if let Err(e) = flushed {
            let _ = store
                .set_execution_status(&execution.id, "failed", Some(&e))
                .await;
            return Err(EngineError::Io(format!("cannot record progress: {e}")));
        }
        match ended.status {
            "terminated" => Ok(execution.id.clone()),
            "cancelled" => Err(EngineError::Cancelled {
                deployment: deployment.to_string(),
                execution: execution.id.clone(),
                workflow: execution.workflow.clone(),
            }),
            _ => Err(EngineError::Failed {
                deployment: deployment.to_string(),
                execution: execution.id.clone(),
                workflow: execution.workflow.clone(),
                error: ended.error.unwrap_or_default(),
            }),
        }
    }
}

fn execute_operation_graph(
    dep: &DeploymentRecord,
    params: &Map<String, Json>,
) -> Result<graph::TaskGraph, EngineError> {
    let operation = params.get("operation").and_then(Json::as_str).filter(|s| !s.is_empty()).ok_or_else(|| {
        EngineError::Workflow("execute_operation needs the parameter `operation` (e.g. cloudify.interfaces.lifecycle.start)".to_string())
    })?;
    let list = |k: &str| -> Vec<String> {
        params
            .get(k)
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let selected = lifecycle::filtered(
        dep,
        &list("node_ids"),
        &list("node_instance_ids"),
        &list("type_names"),
    );
    let kwargs = params
        .get("operation_kwargs")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let by_order = params
        .get("run_by_dependency_order")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    Ok(graph::execute_operation(
        &dep.plan, &selected, operation, &kwargs, by_order,
    ))
}

/// Validate workflow parameters: undeclared ones (unless allowed), all missing mandatory ones,
/// and types, converting `key=value` text to the declared type; defaults fill the rest.
pub fn check_parameters(
    workflow: &str,
    declared: &IndexMap<String, Parameter>,
    mut given: Map<String, Json>,
    allow_custom: bool,
) -> Result<Map<String, Json>, EngineError> {
    let mut problems = Vec::new();
    if !allow_custom {
        for k in given.keys() {
            if !declared.contains_key(k) {
                let hint = crate::diag::did_you_mean(k, declared.keys().map(String::as_str))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                problems.push(format!(
                    "`{k}` is not a parameter of workflow `{workflow}`{hint}"
                ));
            }
        }
    }
    let mut out = Map::new();
    let mut missing = Vec::new();
    for (k, p) in declared {
        let value = match given.remove(k) {
            Some(Json::String(s)) if p.ty.as_deref().is_some_and(|t| t != "string") => {
                match crate::dsl::inputs::parse_as(&s, p.ty.as_deref().unwrap_or("string")) {
                    Some(v) => v,
                    None => {
                        problems.push(format!(
                            "parameter `{k}` must be of type {}, got {s:?}",
                            p.ty.as_deref().unwrap_or("string")
                        ));
                        continue;
                    }
                }
            }
            Some(v) => {
                if let Some(ty) = &p.ty
                    && let Err(e) =
                        crate::dsl::values::check_type(ty, None, &v, &Default::default())
                {
                    problems.push(format!("parameter `{k}`: {e}"));
                }
                v
            }
            None => match &p.default {
                Some(d) => d.clone(),
                None if p.required => {
                    missing.push(k.as_str());
                    continue;
                }
                None => Json::Null,
            },
        };
        out.insert(k.clone(), value);
    }
    out.extend(given);
    if !missing.is_empty() {
        problems.push(format!(
            "workflow `{workflow}` needs the parameter{} {}",
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(EngineError::Workflow(problems.join("; ")))
    }
}

/// Every operation must name a plugin windlass has, and a function it offers.
pub fn check_plugins(c: &crate::dsl::Compiled, registry: &Registry) -> Result<(), EngineError> {
    let mut problems = Vec::new();
    // The owner is named only when something is wrong with one of its operations (a
    // chain of 200 nodes, 100 of them Compute, has 1,200 operations, all fine).
    let mut check = |owner: &dyn Fn() -> String,
                     name: &str,
                     op: &crate::dsl::compiled::Operation| {
        match registry.get(&op.plugin) {
        // Agent installation (Compute's cloudify_agent interface): no workflow of windlass
        // runs it; an install that would want an agent says so in one warning instead.
        None if op.plugin == "agent" => {}
        None if c.external_plugins.contains_key(&op.plugin) => {
            let dir = &c.external_plugins[&op.plugin].source;
            problems.push(format!(
                "{}: operation `{name}` uses the plugin `{}` from {}, which has no executable `{}` to run it (validate and plan work without one)",
                owner(),
                op.plugin,
                dir.display(),
                crate::plugins::external::EXECUTABLE
            ))
        }
        None => problems.push(format!(
            "{}: operation `{name}` uses the plugin `{}`, which windlass does not ship (available: {})",
            owner(),
            op.plugin,
            registry.names().join(", ")
        )),
        Some(p) if !p.has_function(&op.implementation) => {
            problems.push(format!("{}: operation `{name}`: plugin `{}` has no function `{}`", owner(), op.plugin, op.implementation))
        }
        Some(_) => {}
    }
    };
    for n in &c.nodes {
        for (name, op) in c.operations(n.operations) {
            check(&|| format!("node `{}`", n.id), name, op);
        }
        for r in &n.relationships {
            let ops = c.operations(r.source_operations).iter();
            for (name, op) in ops.chain(c.operations(r.target_operations)) {
                check(
                    &|| format!("relationship {} -> {}", n.id, c.nodes[r.target].id),
                    name,
                    op,
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Plugins(problems))
    }
}

/// A private directory for one execution: the blueprint files, a `ctx` command, sockets.
/// Made when the first operation needs it ([`Workdir::ready`]): an execution none of whose
/// operations has an implementation never writes the blueprint's files out.
pub(crate) struct Workdir {
    root: PathBuf,
    resources: PathBuf,
    store: Store,
    deployment: String,
    made: tokio::sync::OnceCell<()>,
}

impl Workdir {
    /// Named after the execution, so that a later attempt finds what a killed one left
    /// ([`Workdir::remove_stale`]), and after this process, whose pid may be a dead one's.
    fn new(store: &Store, deployment: &str, execution: &str) -> Workdir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!(
            "{}{}-{n}",
            Self::prefix(execution),
            std::process::id()
        ));
        Workdir {
            resources: root.join("resources"),
            root,
            store: store.clone(),
            deployment: deployment.to_string(),
            made: tokio::sync::OnceCell::new(),
        }
    }

    /// The blueprint's files (`resources`), written out on the first call.
    pub(crate) async fn ready(&self) -> Result<&Path, EngineError> {
        self.made.get_or_try_init(|| self.make()).await?;
        Ok(&self.resources)
    }

    async fn make(&self) -> Result<(), EngineError> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let (root, resources, store) = (&self.root, &self.resources, &self.store);
        // Left by a killed process that had this pid: nothing uses it any more.
        let _ = std::fs::remove_dir_all(root);
        let io =
            |e: std::io::Error| EngineError::Io(format!("cannot prepare {}: {e}", root.display()));
        for dir in [
            resources,
            &crate::plugins::script::bin_dir(resources),
            &crate::plugins::script::socket_dir(resources),
        ] {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // One chunk in memory at a time, whatever the file's size.
        for file in store.snapshot_files(&self.deployment).await? {
            let target = resources.join(&file.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut out = std::fs::File::create(&target).map_err(io)?;
            for seq in 0..file.chunks {
                let chunk = store.content_chunk(&self.deployment, &file, seq).await?;
                out.write_all(&chunk).map_err(io)?;
            }
            out.set_permissions(std::fs::Permissions::from_mode(file.mode & 0o777))
                .map_err(io)?;
        }
        if let Some(exe) = crate::plugins::guard::windlass_exe() {
            std::os::unix::fs::symlink(exe, crate::plugins::script::bin_dir(resources).join("ctx"))
                .map_err(io)?;
        }
        Ok(())
    }

    fn prefix(execution: &str) -> String {
        format!("windlass-{execution}-")
    }

    /// Remove the working directories that killed attempts of this execution left behind (call
    /// once their operations are stopped: one process runs an execution at a time).
    fn remove_stale(&self, execution: &str) {
        let prefix = Self::prefix(execution);
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path != self.root && entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    fn remove(&self) {
        if self.made.initialized() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a killed process with this process's pid left in the temporary directory (found by
    /// the chaos test: pids are reused, SIGKILLed runs leave their working directories).
    #[tokio::test]
    async fn a_dead_process_s_working_directory_with_our_pid_is_not_in_the_way() {
        let tmp = std::env::temp_dir();
        let pid = std::process::id();
        let left: Vec<PathBuf> = (0..256)
            .map(|n| tmp.join(format!("{}{pid}-{n}", Workdir::prefix("e1"))))
            .collect();
        for dir in &left {
            let bin = crate::plugins::script::bin_dir(&dir.join("resources"));
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("ctx"), "").unwrap();
        }
        let state = tmp.join(format!("windlass-workdir-test-{pid}.db"));
        let store = Store::open(state.to_str().unwrap()).await.unwrap();
        let workdir = Workdir::new(&store, "d", "e1");
        let made = workdir.ready().await.map(Path::to_path_buf);
        let fresh = made.as_ref().map(|resources| {
            let ctx = crate::plugins::script::bin_dir(resources).join("ctx");
            resources.is_dir() && ctx.is_symlink()
        });
        for dir in &left {
            let _ = std::fs::remove_dir_all(dir);
        }
        for file in store.files() {
            let _ = std::fs::remove_file(file);
        }
        assert!(
            fresh.unwrap(),
            "a fresh working directory, not the dead one's"
        );
    }

    #[tokio::test]
    async fn the_working_directory_is_made_once_when_first_asked_for() {
        let tmp = std::env::temp_dir();
        let state = tmp.join(format!("windlass-lazy-workdir-{}.db", std::process::id()));
        let store = Store::open(state.to_str().unwrap()).await.unwrap();
        let workdir = Workdir::new(&store, "d", "lazy");
        let before = workdir.root.exists();
        let (a, b) = tokio::join!(workdir.ready(), workdir.ready());
        let made = (a.map(Path::to_path_buf).ok(), b.map(Path::to_path_buf).ok());
        let ctx = crate::plugins::script::bin_dir(&workdir.resources).join("ctx");
        let after = workdir.resources.is_dir() && ctx.is_symlink();
        workdir.remove();
        let removed = !workdir.root.exists();
        for file in store.files() {
            let _ = std::fs::remove_file(file);
        }
        assert!(!before, "nothing is written before an operation needs it");
        assert_eq!(made.0.as_ref(), Some(&workdir.resources));
        assert_eq!(made.0, made.1);
        assert!(after && removed);
    }
}
