//! The heal workflow: bring a failing node instance back.
//!
//! When the node defines `cloudify.interfaces.lifecycle.heal`, that runs (with `preheal` and
//! `postheal`). Otherwise, when it defines `cloudify.interfaces.validation.check_status` and the
//! check passes, there is nothing to do. Otherwise the failing instance's host subtree (its
//! Compute host, or the instance itself when it has none, with everything contained in it) is
//! reinstalled: instances related to the subtree run `unlink`, the subtree is uninstalled
//! (failures ignored, as it is broken already) and installed again, and the related instances
//! `establish` again.

use std::collections::HashSet;

use serde_json::{Map, Value as Json};

use super::{Ended, EngineError, Session, graph};
use crate::store::DeploymentRecord;

const HEAL: &str = "cloudify.interfaces.lifecycle.heal";
const CHECK: &str = "cloudify.interfaces.validation.check_status";

pub(crate) async fn run(
    dep: &DeploymentRecord,
    params: &Map<String, Json>,
    session: &Session,
    done: HashSet<String>,
) -> Result<Ended, EngineError> {
    let wanted = params
        .get("node_instance_id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            EngineError::Workflow("heal needs the parameter `node_instance_id`".to_string())
        })?;
    let Some(i) = dep
        .plan
        .instances
        .iter()
        .position(|x| x.id.0 == wanted)
        .map(|i| i as u32)
    else {
        return Err(EngineError::Workflow(format!(
            "deployment `{}` has no node instance `{wanted}`",
            dep.id
        )));
    };
    let operations = dep
        .compiled
        .node_operations(dep.plan.instances[i as usize].node);
    let defined: Vec<&str> = [
        "cloudify.interfaces.lifecycle.preheal",
        HEAL,
        "cloudify.interfaces.lifecycle.postheal",
    ]
    .into_iter()
    .filter(|op| operations.contains_key(*op))
    .collect();
    if operations.contains_key(HEAL) {
        session.event("heal", format!("{wanted}: running its heal operations"));
        let outcome = session
            .walk(dep, graph::operations(i, &defined), done, false)
            .await;
        return Ok(Ended::from_outcome(&outcome, false));
    }
    if operations.contains_key(CHECK) {
        let outcome = session
            .walk(dep, graph::operations(i, &[CHECK]), HashSet::new(), false)
            .await;
        if outcome.failures.is_empty() && !outcome.cancelled {
            session.event(
                "heal",
                format!("{wanted}: check_status passed, nothing to heal"),
            );
            return Ok(Ended::from_outcome(&outcome, false));
        }
    }
    // Reinstall the host subtree.
    let host = dep.plan.instances[i as usize].host.unwrap_or(i);
    let subtree: Vec<u32> = (0..dep.plan.instances.len() as u32)
        .filter(|&x| {
            let mut cur = Some(x);
            while let Some(c) = cur {
                if c == host {
                    return true;
                }
                cur = dep.plan.instances[c as usize].contained_in;
            }
            false
        })
        .collect();
    session.event(
        "heal",
        format!(
            "{wanted}: reinstalling {} ({} node instances)",
            dep.plan.instance_id(host),
            subtree.len()
        ),
    );
    // Broken already: the uninstall half goes on past failures. The install steps must run
    // even if an earlier attempt of this heal recorded them.
    super::lifecycle::reinstall(dep, &subtree, session, (done, HashSet::new()), true).await
}
