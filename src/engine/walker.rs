//! The walker: runs a task graph's jobs in parallel, bounded by `parallelism`.
//!
//! Contract: a job starts only when every job it depends on succeeded; what can run at once
//! does. A failed job stops its dependants (they are skipped and not reported, so the user sees
//! the cause once, not a cascade) while independent jobs finish. One coordinator owns the
//! graph's state; jobs report back when they end. Cancellation stops new jobs and signals
//! running operations.

use crate::maps::{HashMap, HashMapExt, HashSet};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio::task::JoinSet;

use super::attributes::{Resolver, Scope};
use super::events::Recorder;
use super::graph::{self, Job, Step, TaskGraph};
use super::state::Instances;
use crate::dsl::Compiled;
use crate::dsl::compiled::Operation;
use crate::plan::Plan;
use crate::plugins::{OpError, OperationContext, Registry, RelationshipContext, Side, Topology};
use crate::store::Write;

/// Everything jobs share during one execution.
pub struct Run {
    pub deployment: String,
    pub execution: String,
    pub compiled: Arc<Compiled>,
    pub plan: Arc<Plan>,
    pub instances: Instances,
    pub recorder: Recorder,
    pub registry: Registry,
    /// The execution's working directory, made by the first operation that runs.
    pub(crate) workdir: Arc<super::Workdir>,
    pub cancel: tokio::sync::watch::Receiver<bool>,
    pub task_retries: i64,
    pub retry_interval: Duration,
    pub done: std::collections::HashSet<String>,
    /// Per node, what its operations see of it: made when the first operation runs
    /// ([`Run::node_properties`], [`Run::related`]); a walk whose jobs are all trivial makes none.
    pub contexts: std::sync::OnceLock<NodeContexts>,
    /// Per node: the relationship operations any of its relationships implements (either side).
    pub relationship_operations: Vec<HashSet<String>>,
    /// Per node whose instances skipped operations: which ones (its first instance's list),
    /// reported once the walk ends ([`report_noops`]).
    pub noops: std::sync::Mutex<std::collections::BTreeMap<usize, String>>,
    pub progress: Option<indicatif::ProgressBar>,
    /// The execution's secrets (`get_secret` in inputs; `node_properties` has them resolved).
    pub secrets: Arc<crate::secrets::Revealed>,
}

/// Per node: its properties, `get_secret` resolved for this execution only, in memory (the
/// store keeps the calls, never the values), and its relationships as operations see them.
pub struct NodeContexts {
    properties: Vec<Arc<Map<String, Json>>>,
    related: Vec<Arc<[crate::plugins::Related]>>,
}

impl NodeContexts {
    fn of(compiled: &Compiled, secrets: &crate::secrets::Revealed) -> NodeContexts {
        let properties: Vec<Arc<Map<String, Json>>> = compiled
            .nodes
            .iter()
            .map(|n| {
                if !n.properties.values().any(crate::secrets::Revealed::used_in) {
                    return Arc::new(n.properties.clone());
                }
                Arc::new(
                    n.properties
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                secrets.substitute(v).unwrap_or_else(|_| v.clone()),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let related = (0..compiled.nodes.len())
            .map(|n| {
                let mut related = crate::plugins::Related::of(compiled, n).to_vec();
                for r in &mut related {
                    if let Some(&t) = compiled.node_index.get(&r.target_node) {
                        r.target_properties = properties[t].clone();
                    }
                }
                related.into()
            })
            .collect();
        NodeContexts {
            properties,
            related,
        }
    }
}

impl Run {
    fn contexts(&self) -> &NodeContexts {
        self.contexts
            .get_or_init(|| NodeContexts::of(&self.compiled, &self.secrets))
    }

    /// A node's properties as its operations see them.
    pub fn node_properties(&self, node: usize) -> Arc<Map<String, Json>> {
        self.contexts().properties[node].clone()
    }

    /// A node's relationships as its operations see them.
    pub fn related(&self, node: usize) -> Arc<[crate::plugins::Related]> {
        self.contexts().related[node].clone()
    }
}

/// How a walk ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The first failure of each failed job, in the order they failed.
    pub failures: Vec<String>,
    pub skipped: usize,
    pub cancelled: bool,
}

/// With `ignore_failure`, a failed job is reported but releases its dependants like a success.
pub async fn walk(
    run: Arc<Run>,
    graph: TaskGraph,
    parallelism: usize,
    ignore_failure: bool,
) -> Outcome {
    let n = graph.jobs.len();
    let mut waiting: Vec<usize> = graph.jobs.iter().map(|j| j.deps.len()).collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (j, job) in graph.jobs.iter().enumerate() {
        for &d in &job.deps {
            dependants[d].push(j);
        }
    }
    let jobs: Arc<Vec<Job>> = Arc::new(graph.jobs);
    // Whether a job is trivial depends on its node and its steps only (unless a step names
    // one relationship instance): asked once per node and list of steps, not once per
    // instance (each asks a handful of map lookups: 0.7 ms for 1,000 instances).
    let mut trivial_of: HashMap<(usize, usize), Option<Vec<&str>>> = HashMap::new();
    let mut ready: VecDeque<usize> = (0..n).filter(|j| waiting[*j] == 0).collect();
    let mut blocked = vec![false; n];
    let mut running = JoinSet::new();
    let mut outcome = Outcome::default();
    // A finished job (or, with `ignore_failure`, a failed one) lets its dependants go.
    let release =
        |j: usize, waiting: &mut Vec<usize>, ready: &mut VecDeque<usize>, blocked: &[bool]| {
            for &d in &dependants[j] {
                waiting[d] -= 1;
                if waiting[d] == 0 && !blocked[d] {
                    ready.push_back(d);
                }
            }
        };
    loop {
        while let Some(&j) = ready.front() {
            if outcome.cancelled {
                ready.clear();
                break;
            }
            // A job with nothing to run finishes here and now: no task, no parallelism slot.
            let job = &jobs[j];
            let node = run.plan.instances[job.instance as usize].node;
            let noops = if job
                .steps
                .iter()
                .any(|s| matches!(s, Step::Relationship { .. }))
            {
                &trivial(&run, job)
            } else {
                trivial_of
                    .entry((node, job.steps.as_ptr() as usize))
                    .or_insert_with(|| trivial(&run, job))
            };
            if let Some(noops) = noops {
                ready.pop_front();
                finish_trivial(&run, job, noops);
                if let Some(bar) = &run.progress {
                    bar.inc(1);
                }
                release(j, &mut waiting, &mut ready, &blocked);
                continue;
            }
            if running.len() >= parallelism.max(1) {
                break;
            }
            ready.pop_front();
            let (run, jobs) = (run.clone(), jobs.clone());
            running.spawn(async move { (j, run_job(&run, &jobs[j]).await) });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let (j, result) = match joined {
                    Ok(r) => r,
                    Err(e) => {
                        outcome.failures.push(format!("a job crashed: {e}"));
                        continue;
                    }
                };
                if let Some(bar) = &run.progress {
                    bar.inc(1);
                }
                match result {
                    Err(e) if ignore_failure => {
                        outcome.failures.push(e);
                        release(j, &mut waiting, &mut ready, &blocked);
                    }
                    Ok(()) => release(j, &mut waiting, &mut ready, &blocked),
                    Err(e) => {
                        outcome.failures.push(e);
                        // Everything downstream is skipped, silently: the cause was reported.
                        let mut stack = dependants[j].clone();
                        while let Some(d) = stack.pop() {
                            if !blocked[d] {
                                blocked[d] = true;
                                outcome.skipped += 1;
                                stack.extend(dependants[d].iter().copied());
                            }
                        }
                    }
                }
            }
            _ = crate::plugins::cancelled(run.cancel.clone()), if !outcome.cancelled => {
                outcome.cancelled = true;
                ready.clear();
            }
        }
    }
    // A job that stopped because of the cancellation may have ended before the signal was seen here.
    if *run.cancel.borrow() {
        outcome.cancelled = true;
    }
    report_noops(&run);
    outcome
}

/// One instance's steps, in order; each operation recorded when done.
async fn run_job(run: &Run, job: &Job) -> Result<(), String> {
    let inst = &run.plan.instances[job.instance as usize];
    let id = inst.id.0.as_str();
    let mut noops: Vec<&str> = Vec::new();
    for step in job.steps.iter() {
        if *run.cancel.borrow() {
            return Err("cancelled".to_string());
        }
        match step {
            // State changes and no-ops are not recorded: repeating them on resume is harmless.
            Step::State(s) => run.instances.set_state(id, s),
            Step::Operation { name, extra_inputs } => {
                let Some(op) = run.compiled.node_operations(inst.node).get(name.as_ref()) else {
                    noops.push(short(name));
                    continue;
                };
                let key = graph::operation_key(&run.plan, job.instance, name);
                if run.done.contains(&key) {
                    continue;
                }
                let scope = Scope {
                    this: Some(job.instance),
                    ..Scope::default()
                };
                let durable =
                    execute(run, job.instance, name, op, extra_inputs, scope, None).await?;
                record(run, key, durable).await?;
            }
            Step::Relationships { name } => {
                // Most relationships have no operations: then this costs nothing per link.
                if !run.relationship_operations[inst.node].contains(*name) {
                    noops.push(short(name));
                    continue;
                }
                for rel in 0..inst.relationships.len() {
                    run_relationship(run, job.instance, name, rel, &mut noops).await?;
                }
            }
            Step::Relationship { name, rel } => {
                run_relationship(run, job.instance, name, *rel, &mut noops).await?;
            }
        }
    }
    note_noops(run, job.instance, &noops);
    Ok(())
}

/// Remember which operations an instance skipped, once per node.
fn note_noops(run: &Run, instance: u32, noops: &[&str]) {
    if noops.is_empty() {
        return;
    }
    let node = run.plan.instances[instance as usize].node;
    if let Ok(mut seen) = run.noops.lock() {
        seen.entry(node).or_insert_with(|| {
            let mut noops = noops.to_vec();
            noops.dedup();
            noops.join(", ")
        });
    }
}

/// Nodes named in a noop event; the rest are counted.
const NOOP_NODES_NAMED: usize = 8;

/// Say which operations had no implementation: one event per distinct list of operations,
/// naming its nodes (an event per node would be 2,000 alike on a 2,000-node blueprint, and
/// one per instance 10,000 on a 10,000-instance tier).
fn report_noops(run: &Run) {
    let Ok(noops) = run.noops.lock() else {
        return;
    };
    let mut lists: Vec<(&str, Vec<usize>)> = Vec::new();
    for (&node, ops) in noops.iter() {
        match lists.iter_mut().find(|(l, _)| *l == ops.as_str()) {
            Some((_, nodes)) => nodes.push(node),
            None => lists.push((ops, vec![node])),
        }
    }
    for (ops, nodes) in lists {
        let mut named: Vec<String> = nodes
            .iter()
            .take(NOOP_NODES_NAMED)
            .map(|&n| format!("`{}`", run.compiled.nodes[n].id.0))
            .collect();
        if nodes.len() > NOOP_NODES_NAMED {
            named.push(format!("and {} more", nodes.len() - NOOP_NODES_NAMED));
        }
        let which = if nodes.len() == 1 {
            format!("node {}", named[0])
        } else {
            format!("{} nodes ({})", nodes.len(), named.join(", "))
        };
        run.recorder.event(
            &run.execution,
            "noops_skipped",
            None,
            None,
            format!("{which}: no implementation for {ops} (skipped on every instance)"),
        );
    }
}

/// When no step of a job has an implementation, the names of its operations (all no-ops): the
/// job is then only state changes, and the walker finishes it at once ([`finish_trivial`]).
fn trivial<'a>(run: &'a Run, job: &'a Job) -> Option<Vec<&'a str>> {
    let inst = &run.plan.instances[job.instance as usize];
    let node = &run.compiled.nodes[inst.node];
    let mut noops = Vec::new();
    for step in job.steps.iter() {
        let name: &str = match step {
            Step::State(_) => continue,
            Step::Operation { name, .. }
                if !run
                    .compiled
                    .operations(node.operations)
                    .contains_key(name.as_ref()) =>
            {
                name
            }
            Step::Relationships { name }
                if !run.relationship_operations[inst.node].contains(*name) =>
            {
                name
            }
            Step::Relationship { name, rel } => {
                let r = &node.relationships[inst.relationships[*rel].relationship];
                if run.compiled.implements(r, name) {
                    return None;
                }
                name
            }
            _ => return None,
        };
        noops.push(short(name));
    }
    Some(noops)
}

/// A job whose operations are all no-ops: its instance goes straight to the job's last state
/// (the states in between are never seen by anything, and resume repeats the job whole).
fn finish_trivial(run: &Run, job: &Job, noops: &[&str]) {
    let id = run.plan.instance_id(job.instance).0.as_str();
    let last = job.steps.iter().rev().find_map(|s| match s {
        Step::State(s) => Some(*s),
        _ => None,
    });
    if let Some(state) = last {
        run.instances.set_state(id, state);
    }
    note_noops(run, job.instance, noops);
}

/// An operation's name as the noop event shows it: a lifecycle operation by its own name
/// (`create`, `establish`), any other by interface and name (`monitoring.start`, which would
/// otherwise read as a second `start`).
fn short(name: &str) -> &str {
    let name = name.strip_prefix("cloudify.interfaces.").unwrap_or(name);
    name.strip_prefix("lifecycle.")
        .or_else(|| name.strip_prefix("relationship_lifecycle."))
        .unwrap_or(name)
}

/// A relationship operation on the source side, then the target side, of one relationship
/// instance of `source`.
async fn run_relationship<'a>(
    run: &'a Run,
    source: u32,
    name: &'a str,
    rel: usize,
    noops: &mut Vec<&'a str>,
) -> Result<(), String> {
    let inst = &run.plan.instances[source as usize];
    let r = inst.relationships[rel];
    let compiled_rel = &run.compiled.nodes[inst.node].relationships[r.relationship];
    for side in [Side::Source, Side::Target] {
        let ops = match side {
            Side::Source => run.compiled.operations(compiled_rel.source_operations),
            Side::Target => run.compiled.operations(compiled_rel.target_operations),
        };
        let Some(op) = ops.get(name) else {
            noops.push(short(name));
            continue;
        };
        let key = graph::relationship_key(&run.plan, source, name, rel, side);
        if run.done.contains(&key) {
            continue;
        }
        let target = &run.plan.instances[r.target as usize];
        let rel_ctx = RelationshipContext {
            side,
            source_instance: inst.id.0.clone(),
            source_node: run.compiled.nodes[inst.node].id.0.clone(),
            source_properties: run.node_properties(inst.node),
            target_instance: target.id.0.clone(),
            target_node: run.compiled.nodes[target.node].id.0.clone(),
            target_properties: run.node_properties(target.node),
        };
        let this = if side == Side::Source {
            source
        } else {
            r.target
        };
        let scope = Scope {
            this: None,
            source: Some(source),
            target: Some(r.target),
        };
        let durable = execute(run, this, name, op, &Map::new(), scope, Some(rel_ctx)).await?;
        record(run, key, durable).await?;
    }
    Ok(())
}

/// Record an operation as done; durably (before the job goes on) when it had side effects.
async fn record(run: &Run, key: String, durable: bool) -> Result<(), String> {
    run.recorder.write(Write::Task {
        execution: run.execution.clone(),
        key,
        state: "succeeded".to_string(),
        result: None,
    });
    if durable {
        run.recorder
            .flush()
            .await
            .map_err(|e| format!("cannot record progress: {e}"))?;
    }
    Ok(())
}

/// Run one operation with retries. Returns whether its completion must be made durable.
#[allow(clippy::too_many_arguments)]
async fn execute(
    run: &Run,
    instance: u32,
    name: &str,
    op: &Operation,
    extra_inputs: &Map<String, Json>,
    scope: Scope,
    relationship: Option<RelationshipContext>,
) -> Result<bool, String> {
    let inst = &run.plan.instances[instance as usize];
    let id = inst.id.0.clone();
    let Some(plugin) = run.registry.get(&op.plugin) else {
        return Err(format!(
            "{id} {name}: plugin `{}` is not available",
            op.plugin
        ));
    };
    let resolver = Resolver {
        compiled: &run.compiled,
        plan: &run.plan,
        instances: &run.instances,
        deployment: &run.deployment,
        secrets: &run.secrets,
    };
    let mut inputs = Map::new();
    for (k, v) in op.inputs.iter().chain(extra_inputs.iter()) {
        let value = resolver
            .resolve(v, scope)
            .map_err(|e| format!("{id} {name}: input `{k}`: {e}"))?;
        inputs.insert(k.clone(), value);
    }
    let ctx = OperationContext {
        deployment_id: run.deployment.clone(),
        execution_id: run.execution.clone(),
        node_id: run.compiled.nodes[inst.node].id.0.clone(),
        node_properties: run.node_properties(inst.node),
        instance_id: id.clone(),
        operation: name.to_string(),
        function: op.implementation.clone(),
        relationship,
        related: run.related(inst.node),
        inputs,
        instances: run.instances.clone(),
        recorder: run.recorder.clone(),
        cancel: run.cancel.clone(),
        resources: run
            .workdir
            .ready()
            .await
            .map_err(|e| format!("{id} {name}: {e}"))?
            .to_path_buf(),
        timeout: op.timeout.filter(|t| *t > 0.0).map(Duration::from_secs_f64),
        timeout_recoverable: op.timeout_recoverable.unwrap_or(false),
        topology: Some(Topology {
            compiled: run.compiled.clone(),
            plan: run.plan.clone(),
            instance,
        }),
        retry_number: 0,
        max_retries: op.max_retries.unwrap_or(run.task_retries),
        secrets: run.secrets.clone(),
    };
    let side_effect_free = plugin.side_effect_free();
    let max_retries = ctx.max_retries;
    let interval = op
        .retry_interval
        .map_or(run.retry_interval, Duration::from_secs_f64);
    let mut attempt: i64 = 0;
    if !side_effect_free {
        run.recorder.event(
            &run.execution,
            "task_started",
            Some(&id),
            Some(name),
            format!("{}.{}", op.plugin, op.implementation),
        );
    }
    let mut retry_number: u32 = 0;
    loop {
        let attempt_ctx = OperationContext {
            retry_number,
            ..ctx.clone()
        };
        retry_number += 1;
        match plugin.run(attempt_ctx).await {
            Ok(returned) => {
                let message = match returned {
                    Some(v) => format!("succeeded, returned {v}"),
                    None => "succeeded".to_string(),
                };
                run.recorder.event(
                    &run.execution,
                    "task_succeeded",
                    Some(&id),
                    Some(name),
                    message,
                );
                return Ok(!side_effect_free);
            }
            Err(OpError::Retry { message, after }) => {
                let wait = after.unwrap_or(interval);
                run.recorder.event(
                    &run.execution,
                    "task_rescheduled",
                    Some(&id),
                    Some(name),
                    format!("retry requested ({message}); again in {wait:?}"),
                );
                sleep_unless_cancelled(run, wait).await?;
            }
            Err(e @ (OpError::Failed(_) | OpError::Recoverable { .. }))
                if max_retries < 0 || attempt < max_retries =>
            {
                // Both display as their message; a recoverable error names its own wait.
                let wait = match e {
                    OpError::Recoverable { after, .. } => after,
                    _ => interval,
                };
                attempt += 1;
                run.recorder.event(
                    &run.execution,
                    "task_failed",
                    Some(&id),
                    Some(name),
                    format!("{e}; retry {attempt} in {wait:?}"),
                );
                sleep_unless_cancelled(run, wait).await?;
            }
            Err(e) => {
                let kind = if matches!(e, OpError::NonRecoverable(_)) {
                    " (not recoverable)"
                } else {
                    ""
                };
                run.recorder.event(
                    &run.execution,
                    "task_failed",
                    Some(&id),
                    Some(name),
                    format!("{e}{kind}"),
                );
                return Err(format!("{id} {name}: {e}"));
            }
        }
    }
}

async fn sleep_unless_cancelled(run: &Run, wait: Duration) -> Result<(), String> {
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = crate::plugins::cancelled(run.cancel.clone()) => Err("cancelled".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn noop_names_keep_their_interface_unless_it_is_a_lifecycle() {
        assert_eq!(short("cloudify.interfaces.lifecycle.start"), "start");
        assert_eq!(
            short("cloudify.interfaces.monitoring.start"),
            "monitoring.start"
        );
        assert_eq!(
            short("cloudify.interfaces.relationship_lifecycle.establish"),
            "establish"
        );
        assert_eq!(short("custom.op"), "custom.op");
    }
}
