//! The scale workflow: add or remove instances of a node or scaling group.
//!
//! Before anything runs, the target and amount are checked against the entity's min and max
//! ([`plan_scale`]). Scale-out modifies the plan, stores it with the new instances, installs only
//! those and runs `establish` for existing instances related to them; if that fails and
//! `rollback_if_failed` (default true), the added instances are uninstalled and removed, leaving
//! the deployment exactly as before. Scale-in runs `unlink` on instances related to the chosen
//! ones, uninstalls them (with everything they contain) and removes them; with `ignore_failure`
//! failing operations do not stop it. The modification is recorded in the execution's
//! parameters, so `resume` continues it instead of applying it twice.
//!
//! A node of type `cloudify.kubernetes.resources.Deployment` (either spelling, or derived) is
//! not scaled by instances: [`kubernetes_deployment`] tells, and the workflow changes the
//! Deployment's replicas through the Kubernetes API instead (`scale_replicas`), with the amount
//! as the user wrote it (`3` is a replica count there).
//!
//! Every step reads only the instances it touches ([`scope`]) into a partial plan, and stores
//! only the rows that change, so a scale costs what it adds or removes, not what the
//! deployment holds.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::{Ended, EngineError, Session, graph, scope};
use crate::diag::did_you_mean;
use crate::dsl::compiled::Counts;
use crate::plan::modify::{Added, Removal};
use crate::plan::{Entity, IdMaker, Slot};
use crate::store::{DeploymentRecord, InstanceRecord, NewInstance, PlanChange, Store};

/// An amount as users write it: `+N`, `-N` (relative) or `N` (absolute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Relative(i64),
    Absolute(u32),
}

impl std::str::FromStr for Amount {
    type Err = String;
    fn from_str(text: &str) -> Result<Amount, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "`{text}` is not an amount: write +N to add, -N to remove, or N for an absolute count"
            )
        };
        if let Some(n) = t.strip_prefix('+') {
            n.parse::<u32>()
                .map(|n| Amount::Relative(i64::from(n)))
                .map_err(|_| bad())
        } else if let Some(n) = t.strip_prefix('-') {
            n.parse::<u32>()
                .map(|n| Amount::Relative(-i64::from(n)))
                .map_err(|_| bad())
        } else {
            t.parse::<u32>().map(Amount::Absolute).map_err(|_| bad())
        }
    }
}

/// A checked scale request.
#[derive(Debug, Clone)]
pub struct Spec {
    pub entity: Entity,
    pub name: String,
    pub current: u32,
    pub delta: i64,
    /// Said when a node was named but its scaling group is what scales.
    pub note: Option<String>,
}

/// The entity a target names: a node, or the scaling group a node is a member of (with a note
/// saying so), or a scaling group.
fn resolve_target(
    dep: &DeploymentRecord,
    target: &str,
) -> Result<(Entity, String, Option<String>), EngineError> {
    let (c, plan) = (&dep.compiled, &dep.plan);
    if let Some(&n) = c.node_index.get(target) {
        return Ok(match plan.tree.parent(Entity::Node(n)) {
            Some(Entity::Group(g)) => {
                let group = plan.tree.groups[g].name.clone();
                let note = format!(
                    "`{target}` is a member of the scaling group `{group}`: scaling the group"
                );
                (Entity::Group(g), group, Some(note))
            }
            _ => (Entity::Node(n), target.to_string(), None),
        });
    }
    if let Some(g) = plan.tree.groups.iter().position(|g| g.name == target) {
        return Ok((Entity::Group(g), target.to_string(), None));
    }
    let candidates = c
        .node_index
        .keys()
        .map(String::as_str)
        .chain(plan.tree.groups.iter().map(|g| g.name.as_str()));
    Err(EngineError::Workflow(format!(
        "deployment `{}` has no node or scaling group `{target}`{}",
        dep.id,
        did_you_mean(target, candidates)
            .map(|h| format!("; {h}"))
            .unwrap_or_default()
    )))
}

/// Resolve the target and check the new count against min and max. Needs only the plan's
/// frame.
pub fn plan_scale(
    dep: &DeploymentRecord,
    target: &str,
    amount: Amount,
) -> Result<Spec, EngineError> {
    let (c, plan) = (&dep.compiled, &dep.plan);
    let (entity, name, note) = resolve_target(dep, target)?;
    let current = plan.count(entity);
    let delta = match amount {
        Amount::Relative(d) => d,
        Amount::Absolute(n) => i64::from(n) - i64::from(current),
    };
    let counts: Counts = match entity {
        Entity::Node(n) => c.nodes[n].counts,
        Entity::Group(g) => plan.tree.groups[g].counts,
    };
    let new = i64::from(current) + delta;
    let sum = format!(
        "{current} {} {} = {new}",
        if delta < 0 { '-' } else { '+' },
        delta.abs()
    );
    if new < 0 {
        return Err(EngineError::Workflow(format!(
            "{name} has {current} instances; {sum}"
        )));
    }
    if new < i64::from(counts.min) {
        return Err(EngineError::Workflow(format!(
            "{name} has min_instances {}; {sum}",
            counts.min
        )));
    }
    if let Some(max) = counts.max
        && new > i64::from(max)
    {
        return Err(EngineError::Workflow(format!(
            "{name} has max_instances {max}; {sum}"
        )));
    }
    Ok(Spec {
        entity,
        name,
        current,
        delta,
        note,
    })
}

/// `delta` as the scale workflow takes it: an integer or a string `+N`, `-N`, `N` (relative).
pub fn delta_param(value: Option<&Json>) -> Result<i64, EngineError> {
    match value {
        None | Some(Json::Null) => Ok(1),
        Some(Json::Number(n)) => n
            .as_i64()
            .ok_or_else(|| EngineError::Workflow(format!("delta `{n}` is not an integer"))),
        Some(Json::String(s)) => match s.parse::<Amount>().map_err(EngineError::Workflow)? {
            Amount::Relative(d) => Ok(d),
            Amount::Absolute(n) => Ok(i64::from(n)),
        },
        Some(other) => Err(EngineError::Workflow(format!(
            "delta must be an integer or +N/-N, got {other}"
        ))),
    }
}

/// The scale target named in workflow parameters (`scalable_entity_name`, or legacy `node_id`).
pub fn target_param(params: &Map<String, Json>) -> Result<String, EngineError> {
    ["scalable_entity_name", "node_id"]
        .iter()
        .find_map(|k| {
            params
                .get(*k)
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string)
        .ok_or_else(|| {
            EngineError::Workflow(
                "scale needs `scalable_entity_name` (a node or scaling group)".to_string(),
            )
        })
}

fn strings(params: &Map<String, Json>, key: &str) -> Vec<String> {
    match params.get(key) {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Json::String(s)) if !s.is_empty() => {
            s.split(',').map(|x| x.trim().to_string()).collect()
        }
        _ => Vec::new(),
    }
}

/// Node instances by id (those in the loaded plan), in the order given.
fn index_of(dep: &DeploymentRecord, ids: &[String]) -> Vec<u32> {
    let by_id = dep.plan.slots_by_id();
    ids.iter()
        .filter_map(|id| match by_id.get(id.as_str()) {
            Some(Slot::Node(i)) => Some(*i),
            _ => None,
        })
        .collect()
}

fn links_json(dep: &DeploymentRecord, links: &[(u32, usize)]) -> Json {
    Json::Array(
        links
            .iter()
            .map(|(s, k)| {
                let target = dep.plan.instances[*s as usize].relationships[*k].target;
                json!([dep.plan.instance_id(*s), dep.plan.instance_id(target)])
            })
            .collect(),
    )
}

/// Links recorded as `[source id, target id]` back to `(source, index)`.
fn links_from(dep: &DeploymentRecord, value: Option<&Json>) -> Vec<(u32, usize)> {
    let Some(Json::Array(items)) = value else {
        return Vec::new();
    };
    let by_id = dep.plan.slots_by_id();
    let node = |v: &Json| match by_id.get(v.as_str()?) {
        Some(Slot::Node(i)) => Some(*i),
        _ => None,
    };
    items
        .iter()
        .filter_map(|pair| {
            let s = node(pair.get(0)?)?;
            let t = node(pair.get(1)?)?;
            let k = dep.plan.instances[s as usize]
                .relationships
                .iter()
                .rposition(|r| r.target == t)?;
            Some((s, k))
        })
        .collect()
}

fn recorded_ids(params: &Map<String, Json>, key: &str) -> Option<Vec<String>> {
    match params.get(key) {
        Some(Json::Array(ids)) => Some(
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// What one step of a scale reads.
enum Scope<'a> {
    Out(Entity),
    Candidates(Entity, usize, &'a [String]),
    Around(&'a [String], bool),
}

/// Read what a step needs into `dep.plan` and track the state of its instances. A blueprint
/// that names nodes at runtime (`get_attribute: [NODE, …]`) gets the whole plan instead.
async fn load(
    store: &Store,
    dep: &mut DeploymentRecord,
    session: &Session,
    what: Scope<'_>,
) -> Result<(), EngineError> {
    let (plan, records) = if dep.compiled.names_nodes_at_runtime() {
        store
            .whole_plan(&dep.id, dep.plan.frame(), &dep.compiled)
            .await?
    } else {
        match what {
            Scope::Out(e) => scope::scale_out(store, dep, e).await?,
            Scope::Candidates(e, count, named) => {
                scope::candidates(store, dep, e, count, named).await?
            }
            Scope::Around(ids, subtrees) => scope::around(store, dep, ids, subtrees).await?,
        }
    };
    session.instances.insert(records);
    dep.plan = Arc::new(plan);
    Ok(())
}

/// Give new instances that happen to share an id with a stored one (ids are random) another.
async fn make_ids_unique(
    store: &Store,
    dep: &mut DeploymentRecord,
    added: &Added,
    ids: &mut IdMaker,
) -> Result<(), EngineError> {
    loop {
        let plan = &dep.plan;
        let new: Vec<String> = added
            .instances
            .iter()
            .map(|i| plan.instance_id(*i).0.clone())
            .chain(
                added
                    .groups
                    .iter()
                    .map(|g| plan.group_instances[*g as usize].id.0.clone()),
            )
            .collect();
        let taken = store.existing_ids(&dep.id, &new).await?;
        if taken.is_empty() {
            return Ok(());
        }
        let compiled = dep.compiled.clone();
        let plan = Arc::make_mut(&mut dep.plan);
        for &i in &added.instances {
            let inst = &mut plan.instances[i as usize];
            if taken.contains(&inst.id.0) {
                inst.id = ids.make(&compiled.nodes[inst.node].id.0);
            }
        }
        for &g in &added.groups {
            let name = plan.tree.groups[plan.group_instances[g as usize].group]
                .name
                .clone();
            let gi = &mut plan.group_instances[g as usize];
            if taken.contains(&gi.id.0) {
                gi.id = ids.make(&name);
            }
        }
    }
}

/// Add `delta` instances of the entity (per parent instance) to the plan, with their links and
/// those of existing instances to them; returns the change that stores them ([`record`]).
async fn add(
    store: &Store,
    dep: &mut DeploymentRecord,
    session: &Session,
    s: &Spec,
) -> Result<(Added, PlanChange), EngineError> {
    load(store, dep, session, Scope::Out(s.entity)).await?;
    let compiled = dep.compiled.clone();
    let mut ids = IdMaker::new();
    let m = Arc::make_mut(&mut dep.plan).scale_out(&compiled, s.entity, s.delta as u32, &mut ids);
    make_ids_unique(store, dep, &m, &mut ids).await?;
    let plan = &dep.plan;
    let containment = crate::plan::rows::Containment::new(&compiled);
    let change = PlanChange {
        instances: m
            .instances
            .iter()
            .map(|i| {
                let row = plan.instance_row(*i);
                NewInstance {
                    node: compiled.nodes[row.node].id.0.clone(),
                    started: false,
                    row,
                }
            })
            .collect(),
        groups: m.groups.iter().map(|g| plan.group_row(*g)).collect(),
        links: crate::plan::rows::runs(
            m.instances
                .iter()
                .flat_map(|i| plan.stored_link_rows(&containment, *i))
                .chain(by_source(&m.links).map(|(s, k)| plan.link_row(s, k))),
        ),
        removed: Vec::new(),
        execution_parameters: None,
    };
    Ok((m, change))
}

/// Existing instances' new links, grouped by source and in order within each: the links a
/// scale-out gives to a fan-in (every load balancer to each new web) come target by target, and
/// stored as they come they would be one run per link.
fn by_source(links: &[(u32, usize)]) -> impl Iterator<Item = (u32, usize)> {
    let mut sorted = links.to_vec();
    sorted.sort_by_key(|(s, k)| (*s, *k));
    sorted.into_iter()
}

/// Pick what a scale-in removes and read it with everything it touches. Returns the ids of
/// the picked instances (node or group instances; what they contain goes with them).
async fn pick(
    store: &Store,
    dep: &mut DeploymentRecord,
    session: &Session,
    s: &Spec,
    params: &Map<String, Json>,
) -> Result<Vec<String>, EngineError> {
    let per_parent = (-s.delta) as usize;
    let include = strings(params, "include_instances");
    let exclude = strings(params, "exclude_instances");
    let named: Vec<String> = include.iter().chain(&exclude).cloned().collect();
    load(
        store,
        dep,
        session,
        Scope::Candidates(s.entity, per_parent, &named),
    )
    .await?;
    let victims = dep
        .plan
        .pick_for_removal(s.entity, per_parent, &include, &exclude)
        .map_err(EngineError::Workflow)?;
    Ok(victims.iter().map(|v| dep.plan.slot_id(*v)).collect())
}

/// Read the picked instances with everything inside them and what links to them; what goes.
async fn removal_of(
    store: &Store,
    dep: &mut DeploymentRecord,
    session: &Session,
    victim_ids: &[String],
) -> Result<Removal, EngineError> {
    load(store, dep, session, Scope::Around(victim_ids, true)).await?;
    let by_id = dep.plan.slots_by_id();
    let victims: Vec<Slot> = victim_ids
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    Ok(dep.plan.removal(&victims))
}

/// Node types whose scale changes a Kubernetes Deployment's replicas (the base spelling is in
/// every derived type's hierarchy; the other is checked all the same).
const KUBERNETES_DEPLOYMENT: [&str; 2] = [
    "cloudify.nodes.kubernetes.resources.Deployment",
    "cloudify.kubernetes.resources.Deployment",
];

/// The node `target` names when it is a Kubernetes Deployment resource, whose scale changes
/// replicas rather than node instances.
pub fn kubernetes_deployment(dep: &DeploymentRecord, target: &str) -> Option<usize> {
    let &n = dep.compiled.node_index.get(target)?;
    dep.compiled.nodes[n]
        .type_hierarchy
        .iter()
        .any(|t| KUBERNETES_DEPLOYMENT.contains(&t.as_str()))
        .then_some(n)
}

/// The parameter `windlass scale ID NODE N` adds for a Kubernetes Deployment: the replica count
/// `N` (absolute), which `delta` (a change) cannot say.
pub const REPLICAS: &str = "replicas";

/// The amount of a replica scale: the count [`REPLICAS`] when given, else `delta` — text taken
/// as it is (`+1`, `-1`, or `3`, a count), a number as a change.
pub fn replicas_amount(params: &Map<String, Json>) -> Result<String, EngineError> {
    if let Some(n) = params.get(REPLICAS).and_then(Json::as_u64) {
        return Ok(n.to_string());
    }
    let text = match params.get("delta") {
        None | Some(Json::Null) => "+1".to_string(),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(d) => format!("{d:+}"),
            None => {
                return Err(EngineError::Workflow(format!(
                    "delta `{n}` is not an integer"
                )));
            }
        },
        Some(Json::String(s)) => s.clone(),
        Some(other) => {
            return Err(EngineError::Workflow(format!(
                "delta must be an integer or +N/-N/N, got {other}"
            )));
        }
    };
    crate::plugins::kubernetes::scale::Amount::parse(&text)
        .map_err(|e| EngineError::Workflow(e.to_string()))?;
    Ok(text)
}

/// Scale the Deployment of Kubernetes resource node `node` through the API, and record it in
/// its instances' runtime property `kubernetes`.
async fn scale_replicas(
    store: &Store,
    dep: &DeploymentRecord,
    node: usize,
    params: &Map<String, Json>,
    session: &Session,
) -> Result<Ended, EngineError> {
    let amount = replicas_amount(params)?;
    let n = &dep.compiled.nodes[node];
    let records: Vec<InstanceRecord> = store
        .instance_rows(&dep.id, crate::store::Select::All(node))
        .await?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    session.instances.insert(records);
    let Some(first) = ids.first() else {
        return Err(EngineError::Workflow(format!(
            "{} has no node instances to scale",
            n.id.0
        )));
    };
    session.event(
        "scale",
        format!(
            "{} is a Kubernetes Deployment: scaling its replicas by {amount} through the Kubernetes API, not its node instances",
            n.id.0
        ),
    );
    let ctx = crate::plugins::OperationContext {
        secrets: session.secrets.clone(),
        ..crate::plugins::OperationContext::standalone(
            &dep.id,
            &session.execution,
            "scale",
            "scale",
            session.instances.clone(),
            session.recorder.clone(),
            session.cancel.clone(),
            session.workdir.ready().await?.to_path_buf(),
        )
    }
    .on_node(&dep.compiled, node, first);
    let result = tokio::select! {
        r = crate::plugins::kubernetes::scale::scale_node(&ctx, &amount) => r,
        _ = crate::plugins::cancelled(session.cancel.clone()) => {
            return Ok(Ended {
                status: "cancelled",
                error: Some("cancelled".to_string()),
                ignored: Vec::new(),
            });
        }
    };
    match result {
        Ok(scaled) => {
            // Every instance of the node describes the same Deployment.
            for id in &ids[1..] {
                let _ =
                    session
                        .instances
                        .set_runtime_property(id, "kubernetes", scaled.object.clone());
            }
            session.event(
                "scale",
                format!(
                    "scaled Deployment {}: replicas {} → {}",
                    scaled.name, scaled.before, scaled.after
                ),
            );
            Ok(Ended {
                status: "terminated",
                error: None,
                ignored: Vec::new(),
            })
        }
        Err(e) => Ok(Ended {
            status: "failed",
            error: Some(format!("{}: {e}", n.id.0)),
            ignored: Vec::new(),
        }),
    }
}

pub(crate) async fn run(
    store: &Store,
    dep: &mut DeploymentRecord,
    params: &Map<String, Json>,
    session: &Session,
    done: HashSet<String>,
) -> Result<Ended, EngineError> {
    if let Ok(target) = target_param(params)
        && let Some(node) = kubernetes_deployment(dep, &target)
    {
        return scale_replicas(store, dep, node, params, session).await;
    }
    let ignore_failure = params
        .get("ignore_failure")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let rollback = params
        .get("rollback_if_failed")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    let mut recorded = params.clone();
    // The entity and how many instances per parent; known again when resuming.
    let entity_and_delta = match target_param(params) {
        Ok(target) => Some((
            resolve_target(dep, &target)?.0,
            delta_param(params.get("delta"))?.unsigned_abs() as u32,
        )),
        Err(_) => None,
    };
    // A scale-out (what was added, and existing instances' new links) or a scale-in.
    let (added, links, removal): (Vec<u32>, Vec<(u32, usize)>, Option<Removal>);
    if let Some(ids) = recorded_ids(params, "_added") {
        // Resuming a scale-out whose modification is already stored.
        load(store, dep, session, Scope::Around(&ids, false)).await?;
        added = index_of(dep, &ids);
        links = links_from(dep, params.get("_links"));
        removal = None;
    } else if let Some(ids) = recorded_ids(params, "_removed") {
        // Resuming a scale-in: the same instances go (nothing is removed before the end).
        removal = Some(removal_of(store, dep, session, &ids).await?);
        added = Vec::new();
        links = Vec::new();
    } else {
        let target = target_param(params)?;
        let delta = delta_param(params.get("delta"))?;
        let s = plan_scale(dep, &target, Amount::Relative(delta))?;
        if let Some(note) = &s.note {
            session.event("scale", note.clone());
        }
        if s.delta == 0 {
            session.event(
                "scale",
                format!("{} stays at {} instances: nothing to do", s.name, s.current),
            );
            return Ok(Ended {
                status: "terminated",
                error: None,
                ignored: Vec::new(),
            });
        }
        let new_count = i64::from(s.current) + s.delta;
        let mut change = None;
        let (key, ids, links_value, verb, count) = if s.delta > 0 {
            let (m, added_rows) = add(store, dep, session, &s).await?;
            change = Some(added_rows);
            let ids = m
                .instances
                .iter()
                .map(|i| dep.plan.instance_id(*i).0.clone())
                .collect();
            let links_value = links_json(dep, &m.links);
            let count = m.instances.len();
            added = m.instances;
            links = m.links;
            removal = None;
            ("_added", ids, links_value, "adding", count)
        } else {
            let victims = pick(store, dep, session, &s, params).await?;
            let r = removal_of(store, dep, session, &victims).await?;
            let links_value = links_json(dep, &r.links);
            let count = r.instances.len();
            removal = Some(r);
            added = Vec::new();
            links = Vec::new();
            ("_removed", victims, links_value, "removing", count)
        };
        let message = format!(
            "{} {} -> {new_count}: {verb} {count} node instances",
            s.name, s.current
        );
        recorded.insert(key.to_string(), json!(ids));
        recorded.insert("_links".to_string(), links_value);
        record(store, dep, session, &recorded, change).await?;
        session.event("scale", message);
    }

    let Some(removal) = removal else {
        // Scale-out: install the new instances, then establish existing ones' new links.
        let mut g = graph::install_subset(&dep.plan, &added);
        graph::add_link_jobs(&mut g, &dep.plan, &dep.compiled, &links, "establish", true);
        let outcome = session.walk(dep, g, done, false).await;
        let ended = Ended::from_outcome(&outcome, false);
        if ended.status != "failed" || !rollback {
            return Ok(ended);
        }
        session.event(
            "scale",
            "scale-out failed: rolling back the added instances",
        );
        let mut g = graph::uninstall_subset(&dep.plan, &added, |i| {
            session.instances.state(&dep.plan.instance_id(i).0)
        });
        graph::add_link_jobs(&mut g, &dep.plan, &dep.compiled, &links, "unlink", false);
        let rolled = session.walk(dep, g, HashSet::new(), true).await;
        let removal = added_removal(dep, &added);
        apply_removal(store, dep, &removal, entity_and_delta).await?;
        let mut error = ended.error.unwrap_or_default();
        error.push_str(if rolled.failures.is_empty() {
            "; the added instances were rolled back"
        } else {
            "; the added instances were removed, but some rollback operations failed (see events)"
        });
        return Ok(Ended {
            status: "failed",
            error: Some(error),
            ignored: Vec::new(),
        });
    };

    // Scale-in: unlink what points at the removed instances, then uninstall them.
    let mut g = graph::uninstall_subset(&dep.plan, &removal.instances, |i| {
        session.instances.state(&dep.plan.instance_id(i).0)
    });
    graph::add_link_jobs(
        &mut g,
        &dep.plan,
        &dep.compiled,
        &removal.links,
        "unlink",
        false,
    );
    let outcome = session.walk(dep, g, done, ignore_failure).await;
    let ended = Ended::from_outcome(&outcome, ignore_failure);
    if ended.status == "terminated" {
        apply_removal(store, dep, &removal, entity_and_delta).await?;
    }
    Ok(ended)
}

/// Record the modification in the execution (so that `resume` continues it instead of
/// applying it again) and, for a scale-out, store the added rows in the same transaction: a
/// kill can never leave added instances that the execution does not know about.
async fn record(
    store: &Store,
    dep: &DeploymentRecord,
    session: &Session,
    recorded: &Map<String, Json>,
    change: Option<PlanChange>,
) -> Result<(), EngineError> {
    let parameters = Json::Object(recorded.clone());
    let Some(mut change) = change else {
        store
            .set_execution_parameters(&session.execution, &parameters)
            .await?;
        return Ok(());
    };
    change.execution_parameters = Some((session.execution.clone(), parameters));
    store
        .change_plan(&dep.id, &dep.plan.frame(), &change)
        .await?;
    session.instances.insert(
        change
            .instances
            .into_iter()
            .map(|new| InstanceRecord {
                id: new.row.id,
                node_id: new.node,
                state: crate::store::initial_state(new.started).to_string(),
                runtime_properties: Map::new(),
                version: 0,
            })
            .collect(),
    );
    Ok(())
}

/// What rolling back a scale-out removes: the added instances, their group instances and links.
fn added_removal(dep: &DeploymentRecord, added: &[u32]) -> Removal {
    // The top-level instances: those whose parent is not added too.
    let set: HashSet<u32> = added.iter().copied().collect();
    let victims: Vec<Slot> = added
        .iter()
        .filter_map(|i| match dep.plan.instances[*i as usize].parent {
            Some(Slot::Node(p)) if set.contains(&p) => None,
            Some(Slot::Group(g)) => Some(Slot::Group(g)),
            _ => Some(Slot::Node(*i)),
        })
        .collect();
    let mut removal = dep.plan.removal(&victims);
    removal.instances.retain(|i| set.contains(i));
    removal
}

/// Remove instances, group instances and their links from the plan and the store, and lower
/// the entity's count.
async fn apply_removal(
    store: &Store,
    dep: &mut DeploymentRecord,
    removal: &Removal,
    entity_and_delta: Option<(Entity, u32)>,
) -> Result<(), EngineError> {
    let removed: Vec<String> = removal
        .instances
        .iter()
        .map(|i| dep.plan.instance_id(*i).0.clone())
        .chain(
            removal
                .groups
                .iter()
                .map(|g| dep.plan.group_instances[*g as usize].id.0.clone()),
        )
        .collect();
    let (entity, per_parent) = entity_and_delta.unwrap_or((Entity::Node(0), 0));
    let plan = Arc::make_mut(&mut dep.plan);
    plan.remove(removal, entity, per_parent);
    let change = PlanChange {
        removed,
        ..PlanChange::default()
    };
    store.change_plan(&dep.id, &plan.frame(), &change).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!("+2".parse::<Amount>(), Ok(Amount::Relative(2)));
        assert_eq!("-1".parse::<Amount>(), Ok(Amount::Relative(-1)));
        assert_eq!("5".parse::<Amount>(), Ok(Amount::Absolute(5)));
        assert!("x".parse::<Amount>().is_err());
        assert_eq!(delta_param(Some(&json!("+3"))).unwrap(), 3);
        assert_eq!(delta_param(Some(&json!(-2))).unwrap(), -2);
        assert_eq!(delta_param(None).unwrap(), 1);
    }
}
