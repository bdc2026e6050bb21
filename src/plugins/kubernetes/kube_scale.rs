//! The 2016 plugin's `kube_scale` workflow (`kubernetes.kube_plugin.workflows.kube_scale`):
//! change a Kubernetes Deployment's replica count with kubectl on the master, over SSH.
//!
//! Parameters: `name` — a node of the blueprint (a `cloudify.kubernetes.MicroService`: the
//! Deployment its install applied, from its runtime property `applied`), or else the name of a
//! Deployment in the master's current namespace (microservices that applied a Deployment of
//! that name keep its count too); `amount` — a count (`3`) or a change (`"+1"`,
//! `"-1"`), `"+0"` by default; `master` — the master node ('' is the one `name` is connected to,
//! or the blueprint's only master); `ssh_user`, `ssh_keyfilename` — '' is the master's own.
//!
//! Flow: read `spec.replicas` with `kubectl get deployment NAME -o json`, compute the new count
//! (below zero is refused before anything changes), record the step durably (`kube_scale:
//! FROM->TO` in the execution's task records), `kubectl scale deployment NAME --replicas=N`,
//! then set the microservice instances' runtime property `replicas` and report
//! `nodejs: replicas 2 → 3`. A resumed execution finds the recorded step and sets the same
//! count again instead of adding the change twice.
//!
//! A modern `cloudify.kubernetes.resources.Deployment` node without `ssh_user` is scaled through
//! the Kubernetes API instead: its client from its `client_config` or its master's, the
//! Deployment's `scale` subresource ([`super::scale::scale_node`], as `windlass scale` does).

use serde_json::{Map, Value as Json};

use super::kubectl::{self, Applied};
use super::microservice::{
    CONNECTED_TO_MASTER, MASTER_TYPE, MICROSERVICE_TYPE, Master, MicroserviceError,
    resolved_properties,
};
use crate::dsl::compiled::CompiledNode;
use crate::engine::attributes::Resolver;
use crate::plugins::OperationContext;
use crate::plugins::{OpError, WorkflowContext};

/// The modern plugin's Deployment node types (both spellings).
const API_DEPLOYMENT_TYPES: &[&str] = &[
    "cloudify.kubernetes.resources.Deployment",
    "cloudify.nodes.kubernetes.resources.Deployment",
];

/// Prefix of the task record of a scale step: `kube_scale:FROM->TO`.
const STEP: &str = "kube_scale:";

/// How the replica count changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Set to this count.
    Absolute(i64),
    /// Add this (negative: remove).
    Change(i64),
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Absolute(n) => write!(f, "{n}"),
            Amount::Change(n) => write!(f, "{n:+}"),
        }
    }
}

/// Why `kube_scale` cannot do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum KubeScaleError {
    #[error(
        "kube_scale needs the parameter `name`: a node of the blueprint or a Deployment's name"
    )]
    NoName,
    #[error(
        "`amount` {given} is neither a count (`3`) nor a change (`\"+1\"`, `\"-1\"`; quote it in YAML)"
    )]
    Amount { given: String },
    #[error(
        "{name}: replicas {current} {amount} would be {result}: a Deployment cannot have fewer than 0 replicas"
    )]
    BelowZero {
        name: String,
        current: i64,
        amount: Amount,
        result: i64,
    },
    #[error(
        "node `{node}` has not applied a Deployment (its runtime property `applied` lists {found}): is it installed?"
    )]
    NoDeployment { node: String, found: String },
    #[error("node `{node}` is a {ty}: kube_scale scales a {MICROSERVICE_TYPE} or a Deployment")]
    NotScalable { node: String, ty: String },
    #[error("`master` `{master}` is not a node of the blueprint{hint}")]
    UnknownMaster { master: String, hint: String },
    #[error(
        "no master to run kubectl on: pass `master` (the blueprint has {count} {MASTER_TYPE} nodes{names})"
    )]
    NoMaster { count: usize, names: String },
    #[error(transparent)]
    Microservice(#[from] MicroserviceError),
    #[error(transparent)]
    Kubectl(#[from] kubectl::KubectlError),
    #[error("cannot record the scale step: {0}")]
    Record(String),
}

/// `amount` as given: a number is a count; text is a count or, signed, a change; absent or ''
/// is no change.
pub fn parse_amount(v: Option<&Json>) -> Result<Amount, KubeScaleError> {
    let bad = |given: String| KubeScaleError::Amount { given };
    match v {
        None | Some(Json::Null) => Ok(Amount::Change(0)),
        Some(Json::Number(n)) => n
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Amount::Absolute)
            .ok_or_else(|| bad(n.to_string())),
        Some(Json::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(Amount::Change(0));
            }
            let digits = t.trim_start_matches(['+', '-']);
            let number = (t.len() - digits.len() <= 1
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<i64>().ok())
            .flatten()
            .ok_or_else(|| bad(format!("{s:?}")))?;
            Ok(if t.starts_with(['+', '-']) {
                Amount::Change(number)
            } else {
                Amount::Absolute(number)
            })
        }
        Some(other) => Err(bad(other.to_string())),
    }
}

/// The new count for `current` replicas; below zero is refused.
pub fn new_count(name: &str, current: i64, amount: Amount) -> Result<i64, KubeScaleError> {
    let result = match amount {
        Amount::Absolute(n) => n,
        Amount::Change(d) => current.saturating_add(d),
    };
    if result < 0 {
        return Err(KubeScaleError::BelowZero {
            name: name.to_string(),
            current,
            amount,
            result,
        });
    }
    Ok(result)
}

/// What is scaled: the Deployment, and the microservice instances that keep its count.
struct Target {
    /// What events call it: the node, or the Deployment's name.
    label: String,
    deployment: String,
    namespace: Option<String>,
    /// The node whose `connected_to_master` gives the default master.
    node: Option<usize>,
    instances: Vec<String>,
}

fn text_param<'a>(ctx: &'a WorkflowContext, name: &str) -> &'a str {
    ctx.parameters
        .get(name)
        .and_then(Json::as_str)
        .map(str::trim)
        .unwrap_or("")
}

fn has_type(node: &CompiledNode, types: &[&str]) -> bool {
    node.type_hierarchy
        .iter()
        .any(|t| types.contains(&t.as_str()))
}

fn target(ctx: &WorkflowContext, name: &str) -> Result<Target, KubeScaleError> {
    let instances_of = |idx: usize| -> Vec<String> {
        ctx.plan
            .by_node
            .get(idx)
            .map(|is| {
                is.iter()
                    .map(|&i| ctx.plan.instance_id(i).0.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let applied_by = |instance: &str| -> Vec<Applied> {
        ctx.instances
            .runtime_properties(instance)
            .get("applied")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Applied::from_json).collect())
            .unwrap_or_default()
    };
    let Some(&idx) = ctx.compiled.node_index.get(name) else {
        // A Deployment's name: the microservices that applied it keep its count, and the
        // first of them gives the default master.
        let mut node = None;
        let mut instances = Vec::new();
        for (i, n) in ctx.compiled.nodes.iter().enumerate() {
            if !has_type(n, &[MICROSERVICE_TYPE]) {
                continue;
            }
            for instance in instances_of(i) {
                let applied = applied_by(&instance);
                if applied
                    .iter()
                    .any(|a| a.kind == "Deployment" && a.name == name)
                {
                    node.get_or_insert(i);
                    instances.push(instance);
                }
            }
        }
        return Ok(Target {
            label: name.to_string(),
            deployment: name.to_string(),
            namespace: None,
            node,
            instances,
        });
    };
    let node = &ctx.compiled.nodes[idx];
    let instances = instances_of(idx);
    if has_type(node, &[MICROSERVICE_TYPE]) {
        let applied = instances.first().map(|i| applied_by(i)).unwrap_or_default();
        let Some(d) = applied.iter().find(|a| a.kind == "Deployment") else {
            return Err(KubeScaleError::NoDeployment {
                node: name.to_string(),
                found: if applied.is_empty() {
                    "nothing".to_string()
                } else {
                    applied
                        .iter()
                        .map(Applied::label)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        };
        return Ok(Target {
            label: name.to_string(),
            deployment: d.name.clone(),
            namespace: d.namespace.clone(),
            node: Some(idx),
            instances,
        });
    }
    if has_type(node, API_DEPLOYMENT_TYPES) {
        let deployment = node
            .properties
            .get("definition")
            .and_then(|d| d.pointer("/metadata/name"))
            .and_then(Json::as_str)
            .unwrap_or(name)
            .to_string();
        let namespace = node
            .properties
            .get("options")
            .and_then(|o| o.get("namespace"))
            .and_then(Json::as_str)
            .map(str::to_string);
        return Ok(Target {
            label: name.to_string(),
            deployment,
            namespace,
            node: None,
            instances: Vec::new(),
        });
    }
    Err(KubeScaleError::NotScalable {
        node: name.to_string(),
        ty: node.type_name.clone(),
    })
}

/// The master node: named, else the target's `connected_to_master`, else the only master.
fn master_node(
    ctx: &WorkflowContext,
    named: &str,
    target: &Target,
) -> Result<usize, KubeScaleError> {
    let compiled = &ctx.compiled;
    if !named.is_empty() {
        let Some(&idx) = compiled.node_index.get(named) else {
            return Err(KubeScaleError::UnknownMaster {
                master: named.to_string(),
                hint: crate::diag::did_you_mean(
                    named,
                    compiled.node_index.keys().map(String::as_str),
                )
                .map(|h| format!("; {h}"))
                .unwrap_or_default(),
            });
        };
        return Ok(idx);
    }
    if let Some(node) = target.node {
        let connected = compiled.nodes[node]
            .relationships
            .iter()
            .find(|r| r.type_hierarchy.iter().any(|t| t == CONNECTED_TO_MASTER));
        if let Some(r) = connected {
            return Ok(r.target);
        }
    }
    let masters: Vec<usize> = (0..compiled.nodes.len())
        .filter(|&i| has_type(&compiled.nodes[i], &[MASTER_TYPE]))
        .collect();
    match masters.as_slice() {
        [one] => Ok(*one),
        several => Err(KubeScaleError::NoMaster {
            count: several.len(),
            names: if several.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    several
                        .iter()
                        .map(|&i| compiled.nodes[i].id.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        }),
    }
}

/// The master to run kubectl on, with the workflow's `ssh_user` / `ssh_keyfilename` winning
/// over its properties.
fn master(ctx: &WorkflowContext, idx: usize, ssh_user: &str) -> Result<Master, KubeScaleError> {
    let node = &ctx.compiled.nodes[idx];
    if !has_type(node, &[MASTER_TYPE]) {
        return Err(MicroserviceError::NotAMaster {
            master: node.id.0.clone(),
            ty: node.type_name.clone(),
        }
        .into());
    }
    let resolver = Resolver {
        compiled: &ctx.compiled,
        plan: &ctx.plan,
        instances: &ctx.instances,
        deployment: &ctx.deployment_id,
        secrets: &ctx.secrets,
    };
    let properties = match ctx.plan.by_node.get(idx).and_then(|is| is.first()) {
        Some(&instance) => resolved_properties(&resolver, &node.id.0, &node.properties, instance)?,
        None => node.properties.clone(),
    };
    let mut overrides = Map::new();
    if !ssh_user.is_empty() {
        overrides.insert("user".into(), Json::String(ssh_user.to_string()));
    }
    let key = text_param(ctx, "ssh_keyfilename");
    if !key.is_empty() {
        overrides.insert("key_filename".into(), Json::String(key.to_string()));
    }
    Ok(Master::new(
        &node.id.0,
        &properties,
        &overrides,
        &ctx.resources,
    )?)
}

/// The step an earlier attempt of this execution recorded: `(from, to)`.
fn recorded_step(done: &std::collections::HashSet<String>) -> Option<(i64, i64)> {
    done.iter().find_map(|k| {
        let (from, to) = k.strip_prefix(STEP)?.split_once("->")?;
        Some((from.parse().ok()?, to.parse().ok()?))
    })
}

/// An error for the workflow's end: SSH failures masked, the rest as they are.
fn fail(e: KubeScaleError) -> OpError {
    OpError::NonRecoverable(e.to_string())
}

/// `kubernetes.kube_plugin.workflows.kube_scale`.
pub async fn run(ctx: &WorkflowContext) -> Result<Option<Json>, OpError> {
    let name = text_param(ctx, "name");
    if name.is_empty() {
        return Err(fail(KubeScaleError::NoName));
    }
    let amount = parse_amount(ctx.parameters.get("amount")).map_err(fail)?;
    let ssh_user = text_param(ctx, "ssh_user");
    if let Some(&idx) = ctx.compiled.node_index.get(name)
        && ssh_user.is_empty()
        && has_type(&ctx.compiled.nodes[idx], API_DEPLOYMENT_TYPES)
    {
        return scale_through_api(ctx, idx, amount).await;
    }
    let target = target(ctx, name).map_err(fail)?;
    let master_idx = master_node(ctx, text_param(ctx, "master"), &target).map_err(fail)?;
    let master = master(ctx, master_idx, ssh_user).map_err(fail)?;
    let log = |level: &str, message: String| ctx.event("log", None, format!("{level}: {message}"));
    let ns = target.namespace.as_deref();
    let (from, to) = match recorded_step(&ctx.done) {
        Some(step) => {
            log(
                "info",
                format!("resuming: setting {} to {} replicas", target.label, step.1),
            );
            step
        }
        None => {
            let get = kubectl::get_deployment(&target.deployment, ns);
            let out = master
                .kubectl(&get, None, false, &log)
                .await
                .map_err(|e| master.op_error(&e, false))?;
            let current =
                kubectl::replicas(&get, &out.stdout.join("\n")).map_err(|e| fail(e.into()))?;
            let to = new_count(&target.label, current, amount).map_err(fail)?;
            ctx.record(&format!("{STEP}{current}->{to}"))
                .await
                .map_err(|e| fail(KubeScaleError::Record(e)))?;
            (current, to)
        }
    };
    master
        .kubectl(
            &kubectl::scale_deployment(&target.deployment, ns, to),
            None,
            true,
            &log,
        )
        .await
        .map_err(|e| master.op_error(&e, false))?;
    for instance in &target.instances {
        let set = ctx
            .instances
            .set_runtime_property(instance, "replicas", Json::from(to));
        if let Err(e) = set {
            log("warning", format!("{instance}: {e}"));
        }
    }
    ctx.event(
        "kube_scale",
        target.instances.first().map(String::as_str),
        format!("{}: replicas {from} → {to}", target.label),
    );
    Ok(None)
}

/// Scale a modern Deployment node through the Kubernetes API, as its first instance (every
/// instance of the node describes the same Deployment).
async fn scale_through_api(
    ctx: &WorkflowContext,
    idx: usize,
    amount: Amount,
) -> Result<Option<Json>, OpError> {
    let node = &ctx.compiled.nodes[idx];
    let Some(&first) = ctx.plan.by_node.get(idx).and_then(|is| is.first()) else {
        return Err(OpError::NonRecoverable(format!(
            "node `{}` has no instances to scale",
            node.id.0
        )));
    };
    let instance = ctx.plan.instance_id(first).0.clone();
    let op = OperationContext {
        secrets: ctx.secrets.clone(),
        ..OperationContext::standalone(
            &ctx.deployment_id,
            &ctx.execution_id,
            &ctx.workflow,
            &ctx.function,
            ctx.instances.clone(),
            ctx.recorder.clone(),
            ctx.cancel.clone(),
            ctx.resources.clone(),
        )
    }
    .on_node(&ctx.compiled, idx, &instance);
    let scaled = super::scale::scale_node(&op, &amount.to_string()).await?;
    ctx.event(
        "kube_scale",
        Some(&instance),
        format!(
            "{}: replicas {} → {} (Deployment {}/{} through the Kubernetes API)",
            node.id.0, scaled.before, scaled.after, scaled.namespace, scaled.name
        ),
    );
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_as_written() {
        assert_eq!(parse_amount(None).unwrap(), Amount::Change(0));
        assert_eq!(parse_amount(Some(&json!("+0"))).unwrap(), Amount::Change(0));
        assert_eq!(parse_amount(Some(&json!("+2"))).unwrap(), Amount::Change(2));
        assert_eq!(
            parse_amount(Some(&json!(" -1"))).unwrap(),
            Amount::Change(-1)
        );
        assert_eq!(
            parse_amount(Some(&json!("3"))).unwrap(),
            Amount::Absolute(3)
        );
        assert_eq!(parse_amount(Some(&json!(3))).unwrap(), Amount::Absolute(3));
        assert_eq!(parse_amount(Some(&json!(""))).unwrap(), Amount::Change(0));
        for bad in [
            json!("+-1"),
            json!("two"),
            json!("1.5"),
            json!(-1),
            json!([1]),
            json!("+"),
        ] {
            assert!(parse_amount(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_recorded_step_is_found_again() {
        let done: std::collections::HashSet<String> =
            ["other".to_string(), format!("{STEP}2->3")].into();
        assert_eq!(recorded_step(&done), Some((2, 3)));
        assert_eq!(recorded_step(&["x".to_string()].into()), None);
    }

    #[test]
    fn counts_and_below_zero() {
        assert_eq!(new_count("n", 2, Amount::Change(1)).unwrap(), 3);
        assert_eq!(new_count("n", 2, Amount::Change(-2)).unwrap(), 0);
        assert_eq!(new_count("n", 2, Amount::Absolute(5)).unwrap(), 5);
        assert_eq!(
            new_count("nodejs", 1, Amount::Change(-2))
                .unwrap_err()
                .to_string(),
            "nodejs: replicas 1 -2 would be -1: a Deployment cannot have fewer than 0 replicas"
        );
    }
}
