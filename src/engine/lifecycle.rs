//! The built-in workflows `start`, `stop`, `restart` and `reinstall`, as Cloudify 7 runs them.
//!
//! All four work on the instances that pass the filters `node_ids`, `node_instance_ids` and
//! `type_names` (every instance when none is given). Each filter must name things the
//! deployment has: an unknown node, instance or type is refused before an execution is
//! recorded ([`check_filters`]), naming the parameter, the value and what is close to it.
//!
//! - `stop` runs `cloudify.interfaces.lifecycle.stop` and `start` runs
//!   `cloudify.interfaces.lifecycle.start` on each chosen instance, with `operation_parms` as
//!   the operation's extra inputs. With `run_by_dependency_order` (the default) an instance
//!   waits for the instances it has relationships to — for both, as Cloudify orders them.
//!   Like Cloudify's (which runs them as `execute_operation`), they change no instance state:
//!   an instance stays `started` after `stop`.
//! - `restart` is `stop` over the whole selection, then `start` (`stop_parms`, `start_parms`);
//!   the start half runs only when every stop succeeded.
//! - `reinstall` uninstalls the chosen instances (dependants first) and installs them again
//!   (targets first), as Cloudify's `reinstall_node_instances`: only the chosen instances, not
//!   what they contain; instances outside the selection that have relationships to it run
//!   `unlink` before and `establish` after. `ignore_failure` lets the uninstall half go on.
//!
//! Resume: each operation is recorded as done under its own key (`stop` and `start`, the
//! uninstall and the install operations, have different names), so a resumed execution runs
//! every phase again and skips exactly the operations that finished.

use std::collections::HashSet;

use serde_json::{Map, Value as Json};

use super::{Ended, EngineError, Session, graph};
use crate::store::DeploymentRecord;

const START: &str = "cloudify.interfaces.lifecycle.start";
const STOP: &str = "cloudify.interfaces.lifecycle.stop";

/// The workflows of this module, by the built-in kind `engine::builtin` names them.
pub(crate) const KINDS: [&str; 4] = ["start", "stop", "restart", "reinstall"];

/// A list parameter of strings (absent or null: empty).
fn strings(params: &Map<String, Json>, key: &str) -> Result<Vec<String>, EngineError> {
    match params.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    EngineError::Workflow(format!(
                        "parameter `{key}` must be a list of strings, found the item {v}"
                    ))
                })
            })
            .collect(),
        Some(other) => Err(EngineError::Workflow(format!(
            "parameter `{key}` must be a list of strings, found {other}"
        ))),
    }
}

/// Refuse filters that name nothing of the deployment: every node id, instance id (`instances`:
/// the deployment's instance ids) and type name must exist, else the error names the
/// parameter, the value and the closest valid one.
pub(crate) fn check_filters(
    dep: &DeploymentRecord,
    instances: &[String],
    params: &Map<String, Json>,
) -> Result<(), EngineError> {
    let nodes: Vec<&str> = dep.compiled.nodes.iter().map(|n| n.id.0.as_str()).collect();
    let mut types: Vec<&str> = dep
        .compiled
        .nodes
        .iter()
        .flat_map(|n| n.type_hierarchy.iter().map(String::as_str))
        .collect();
    types.sort_unstable();
    types.dedup();
    let mut problems = Vec::new();
    let mut check = |key: &str, what: &str, known: &[&str]| -> Result<(), EngineError> {
        for value in strings(params, key)? {
            if !known.contains(&value.as_str()) {
                let hint = crate::diag::did_you_mean(&value, known.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                problems.push(format!(
                    "parameter `{key}`: deployment `{}` has no {what} `{value}`{hint}",
                    dep.id
                ));
            }
        }
        Ok(())
    };
    check("node_ids", "node", &nodes)?;
    let ids: Vec<&str> = instances.iter().map(String::as_str).collect();
    check("node_instance_ids", "node instance", &ids)?;
    check("type_names", "node of type", &types)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Workflow(problems.join("; ")))
    }
}

/// The instances the filters choose, in plan order (Cloudify's `_filter_node_instances`: a
/// node passes when it is named (or no node is) and one of its types is named (or none is);
/// an instance when it is named (or none is)).
pub(crate) fn select(
    dep: &DeploymentRecord,
    params: &Map<String, Json>,
) -> Result<Vec<u32>, EngineError> {
    Ok(filtered(
        dep,
        &strings(params, "node_ids")?,
        &strings(params, "node_instance_ids")?,
        &strings(params, "type_names")?,
    ))
}

/// The instances that pass Cloudify's three filters, in plan order (an empty filter passes
/// everything): shared by these workflows and `execute_operation`, which reads its filter
/// parameters more leniently.
pub(crate) fn filtered(
    dep: &DeploymentRecord,
    node_ids: &[String],
    instance_ids: &[String],
    type_names: &[String],
) -> Vec<u32> {
    (0..dep.plan.instances.len() as u32)
        .filter(|&i| {
            let inst = &dep.plan.instances[i as usize];
            let node = &dep.compiled.nodes[inst.node];
            (node_ids.is_empty() || node_ids.contains(&node.id.0))
                && (instance_ids.is_empty() || instance_ids.contains(&inst.id.0))
                && (type_names.is_empty()
                    || node.type_hierarchy.iter().any(|t| type_names.contains(t)))
        })
        .collect()
}

/// A mapping parameter (absent or null: empty).
fn mapping(params: &Map<String, Json>, key: &str) -> Result<Map<String, Json>, EngineError> {
    match params.get(key) {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(m)) => Ok(m.clone()),
        Some(other) => Err(EngineError::Workflow(format!(
            "parameter `{key}` must be a mapping of operation inputs, found {other}"
        ))),
    }
}

fn flag(params: &Map<String, Json>, key: &str, default: bool) -> bool {
    params.get(key).and_then(Json::as_bool).unwrap_or(default)
}

/// Run `kind` (one of [`KINDS`]) on the deployment.
pub(crate) async fn run(
    kind: &str,
    dep: &DeploymentRecord,
    params: &Map<String, Json>,
    session: &Session,
    done: HashSet<String>,
) -> Result<Ended, EngineError> {
    let selected = select(dep, params)?;
    let by_order = flag(params, "run_by_dependency_order", true);
    let one = |operation: &str, kwargs: Map<String, Json>| {
        graph::execute_operation(&dep.plan, &selected, operation, &kwargs, by_order)
    };
    match kind {
        "start" => {
            let g = one(START, mapping(params, "operation_parms")?);
            let outcome = session.walk(dep, g, done, false).await;
            Ok(Ended::from_outcome(&outcome, false))
        }
        "stop" => {
            let g = one(STOP, mapping(params, "operation_parms")?);
            let outcome = session.walk(dep, g, done, false).await;
            Ok(Ended::from_outcome(&outcome, false))
        }
        "restart" => {
            let (stop_parms, start_parms) = (
                mapping(params, "stop_parms")?,
                mapping(params, "start_parms")?,
            );
            let outcome = session
                .walk(dep, one(STOP, stop_parms), done.clone(), false)
                .await;
            if outcome.cancelled || !outcome.failures.is_empty() {
                return Ok(Ended::from_outcome(&outcome, false));
            }
            let outcome = session
                .walk(dep, one(START, start_parms), done, false)
                .await;
            Ok(Ended::from_outcome(&outcome, false))
        }
        "reinstall" => {
            let ignore_failure = flag(params, "ignore_failure", false);
            session.event(
                "reinstall",
                format!("reinstalling {} node instances", selected.len()),
            );
            reinstall(
                dep,
                &selected,
                session,
                (done.clone(), done),
                ignore_failure,
            )
            .await
        }
        other => Err(EngineError::Workflow(format!(
            "`{other}` is not one of {}",
            KINDS.join(", ")
        ))),
    }
}

/// Uninstall `set` and install it again. Instances outside `set` with relationships to it run
/// `unlink` before the uninstall and `establish` after the install. `done` holds what each half
/// skips (the uninstall's and the install's); `ignore_failure` lets the uninstall half go on
/// past failing operations.
pub(crate) async fn reinstall(
    dep: &DeploymentRecord,
    set: &[u32],
    session: &Session,
    done: (HashSet<String>, HashSet<String>),
    ignore_failure: bool,
) -> Result<Ended, EngineError> {
    let members: HashSet<u32> = set.iter().copied().collect();
    let links: Vec<(u32, usize)> = dep
        .plan
        .instances
        .iter()
        .enumerate()
        .filter(|(s, _)| !members.contains(&(*s as u32)))
        .flat_map(|(s, inst)| {
            inst.relationships
                .iter()
                .enumerate()
                .filter(|(_, r)| members.contains(&r.target))
                .map(move |(k, _)| (s as u32, k))
        })
        .collect();
    let mut down = graph::uninstall_subset(&dep.plan, set, |x| {
        session.instances.state(&dep.plan.instance_id(x).0)
    });
    graph::add_link_jobs(&mut down, &dep.plan, &dep.compiled, &links, "unlink", false);
    let outcome = session.walk(dep, down, done.0, ignore_failure).await;
    if outcome.cancelled || (!ignore_failure && !outcome.failures.is_empty()) {
        return Ok(Ended::from_outcome(&outcome, ignore_failure));
    }
    let ignored = outcome.failures;
    let mut up = graph::install_subset(&dep.plan, set);
    graph::add_link_jobs(&mut up, &dep.plan, &dep.compiled, &links, "establish", true);
    let outcome = session.walk(dep, up, done.1, false).await;
    let mut ended = Ended::from_outcome(&outcome, false);
    if ended.status == "terminated" {
        ended.ignored = ignored;
    }
    Ok(ended)
}
