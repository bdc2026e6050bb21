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

use std::collections::HashSet;

use serde_json::{Map, Value as Json, json};

use super::{Ended, EngineError, Session, graph};
use crate::diag::did_you_mean;
use crate::dsl::compiled::Counts;
use crate::plan::{Entity, IdMaker, Slot};
use crate::store::{DeploymentRecord, InstanceRecord, Store};

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

/// Resolve the target and check the new count against min and max.
pub fn plan_scale(
    dep: &DeploymentRecord,
    target: &str,
    amount: Amount,
) -> Result<Spec, EngineError> {
    let (c, plan) = (&dep.compiled, &dep.plan);
    let (entity, name, note) = if let Some(&n) = c.node_index.get(target) {
        match plan.tree.parent(Entity::Node(n)) {
            Some(Entity::Group(g)) => {
                let group = plan.tree.groups[g].name.clone();
                let note = format!(
                    "`{target}` is a member of the scaling group `{group}`: scaling the group"
                );
                (Entity::Group(g), group, Some(note))
            }
            _ => (Entity::Node(n), target.to_string(), None),
        }
    } else if let Some(g) = plan.tree.groups.iter().position(|g| g.name == target) {
        (Entity::Group(g), target.to_string(), None)
    } else {
        let candidates = c
            .node_index
            .keys()
            .map(String::as_str)
            .chain(plan.tree.groups.iter().map(|g| g.name.as_str()));
        return Err(EngineError::Workflow(format!(
            "deployment `{}` has no node or scaling group `{target}`{}",
            dep.id,
            did_you_mean(target, candidates)
                .map(|h| format!("; {h}"))
                .unwrap_or_default()
        )));
    };
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

fn index_of(dep: &DeploymentRecord, ids: &[String]) -> Vec<u32> {
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    (0..dep.plan.instances.len() as u32)
        .filter(|i| wanted.contains(dep.plan.instance_id(*i).0.as_str()))
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
    items
        .iter()
        .filter_map(|pair| {
            let (s, t) = (pair.get(0)?.as_str()?, pair.get(1)?.as_str()?);
            let si = dep.plan.instances.iter().position(|i| i.id.0 == s)? as u32;
            let ti = dep.plan.instances.iter().position(|i| i.id.0 == t)? as u32;
            let k = dep.plan.instances[si as usize]
                .relationships
                .iter()
                .rposition(|r| r.target == ti)?;
            Some((si, k))
        })
        .collect()
}

pub(crate) async fn run(
    store: &Store,
    dep: &mut DeploymentRecord,
    params: &Map<String, Json>,
    session: &Session,
    done: HashSet<String>,
) -> Result<Ended, EngineError> {
    let ignore_failure = params
        .get("ignore_failure")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let rollback = params
        .get("rollback_if_failed")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    let mut recorded = params.clone();
    let spec;
    let (added, links, removal_ids, removal_links);
    if let Some(Json::Array(ids)) = params.get("_added") {
        // Resuming a scale-out whose modification is already stored.
        let ids: Vec<String> = ids
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        added = index_of(dep, &ids);
        links = links_from(dep, params.get("_links"));
        removal_ids = Vec::new();
        removal_links = Vec::new();
        spec = None;
    } else if let Some(Json::Array(ids)) = params.get("_removed") {
        let ids: Vec<String> = ids
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        removal_ids = ids;
        removal_links = links_from(dep, params.get("_links"));
        added = Vec::new();
        links = Vec::new();
        spec = None;
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
        if s.delta > 0 {
            let compiled = dep.compiled.clone();
            let m = std::sync::Arc::make_mut(&mut dep.plan).scale_out(
                &compiled,
                s.entity,
                s.delta as u32,
                &mut IdMaker::new(),
            );
            let records: Vec<InstanceRecord> = m
                .instances
                .iter()
                .map(|i| InstanceRecord {
                    id: dep.plan.instance_id(*i).0.clone(),
                    node_id: dep.compiled.nodes[dep.plan.instances[*i as usize].node]
                        .id
                        .0
                        .clone(),
                    state: "uninitialized".to_string(),
                    runtime_properties: Map::new(),
                    version: 0,
                })
                .collect();
            store.update_plan(&dep.id, &dep.plan, &records, &[]).await?;
            session.instances.insert(records);
            let ids = m
                .instances
                .iter()
                .map(|i| dep.plan.instance_id(*i).0.clone())
                .collect();
            let message = format!(
                "{} {} -> {}: adding {} node instances",
                s.name,
                s.current,
                i64::from(s.current) + s.delta,
                m.instances.len()
            );
            record(
                store,
                session,
                &mut recorded,
                "_added",
                ids,
                links_json(dep, &m.links),
                message,
            )
            .await?;
            added = m.instances;
            links = m.links;
            removal_ids = Vec::new();
            removal_links = Vec::new();
        } else {
            let per_parent = (-s.delta) as u32;
            let count = per_parent as usize * dep.plan.parent_slots(s.entity).len();
            let victims = dep
                .plan
                .pick_for_removal(
                    s.entity,
                    count,
                    &strings(params, "include_instances"),
                    &strings(params, "exclude_instances"),
                )
                .map_err(EngineError::Workflow)?;
            let removal = dep.plan.removal(&victims);
            removal_ids = removal
                .instances
                .iter()
                .map(|i| dep.plan.instance_id(*i).0.clone())
                .collect();
            let message = format!(
                "{} {} -> {}: removing {} node instances",
                s.name,
                s.current,
                i64::from(s.current) + s.delta,
                removal.instances.len()
            );
            record(
                store,
                session,
                &mut recorded,
                "_removed",
                removal_ids.clone(),
                links_json(dep, &removal.links),
                message,
            )
            .await?;
            removal_links = removal.links;
            added = Vec::new();
            links = Vec::new();
        }
        spec = Some(s);
    }

    if !added.is_empty() || removal_ids.is_empty() {
        // Scale-out: install the new instances, then establish existing ones' new links.
        let mut g = graph::install_subset(&dep.plan, &added);
        graph::add_link_jobs(&mut g, &dep.plan, &links, "establish", true);
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
        graph::add_link_jobs(&mut g, &dep.plan, &links, "unlink", false);
        let rolled = session.walk(dep, g, HashSet::new(), true).await;
        let entity_and_delta = spec.as_ref().map(|s| (s.entity, s.delta as u32));
        remove(store, dep, &added, entity_and_delta).await?;
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
    }

    // Scale-in: unlink what points at the removed instances, then uninstall them.
    let removed = index_of(dep, &removal_ids);
    let mut g = graph::uninstall_subset(&dep.plan, &removed, |i| {
        session.instances.state(&dep.plan.instance_id(i).0)
    });
    graph::add_link_jobs(&mut g, &dep.plan, &removal_links, "unlink", false);
    let outcome = session.walk(dep, g, done, ignore_failure).await;
    let ended = Ended::from_outcome(&outcome, ignore_failure);
    if ended.status == "terminated" {
        let entity_and_delta = spec.as_ref().map(|s| (s.entity, (-s.delta) as u32));
        remove(store, dep, &removed, entity_and_delta).await?;
    }
    Ok(ended)
}

/// Record the modification in the execution (so resume does not apply it twice) and say it.
async fn record(
    store: &Store,
    session: &Session,
    recorded: &mut Map<String, Json>,
    key: &str,
    ids: Vec<String>,
    links: Json,
    message: String,
) -> Result<(), EngineError> {
    recorded.insert(key.to_string(), json!(ids));
    recorded.insert("_links".to_string(), links);
    store
        .set_execution_parameters(&session.execution, &Json::Object(recorded.clone()))
        .await?;
    session.event("scale", message);
    Ok(())
}

/// Remove instances (with their group instances and links) from the plan and the store.
async fn remove(
    store: &Store,
    dep: &mut DeploymentRecord,
    instances: &[u32],
    entity_and_delta: Option<(Entity, u32)>,
) -> Result<(), EngineError> {
    // The top-level instances: those whose parent is not removed too.
    let set: HashSet<u32> = instances.iter().copied().collect();
    let victims: Vec<Slot> = instances
        .iter()
        .filter_map(|i| {
            let inst = &dep.plan.instances[*i as usize];
            match inst.parent {
                Some(Slot::Node(p)) if set.contains(&p) => None,
                Some(Slot::Group(g)) => Some(Slot::Group(g)),
                _ => Some(Slot::Node(*i)),
            }
        })
        .collect();
    let mut removal = dep.plan.removal(&victims);
    removal.instances.retain(|i| set.contains(i));
    let ids: Vec<String> = removal
        .instances
        .iter()
        .map(|i| dep.plan.instance_id(*i).0.clone())
        .collect();
    let (entity, per_parent) = entity_and_delta.unwrap_or((Entity::Node(0), 0));
    std::sync::Arc::make_mut(&mut dep.plan).remove(&removal, entity, per_parent);
    store.update_plan(&dep.id, &dep.plan, &[], &ids).await?;
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
