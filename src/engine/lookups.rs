//! Data-based values (`dsl::data_based`) checked against the store: deployment inputs when a
//! deployment is created ([`check_inputs`]), workflow parameters when an execution is asked
//! for ([`check_parameters`]), both before anything is recorded.
//!
//! What each type must name:
//! - `deployment_id`: a deployment of the store (its `labels` constraint: the blueprint's
//!   `labels` of that deployment hold each pair; `name_pattern`: on the id).
//! - `blueprint_id`: windlass keeps no blueprint catalogue (a blueprint is a file given to
//!   `deploy`), so any non-empty name is accepted, `name_pattern` is checked on it, and the
//!   catalogue constraints (`labels`, `filter_id`, `tenants`) are refused as uncheckable.
//! - `secret_key`: a stored secret (`Store::secret_exists`).
//! - `node_id`, `node_type` (any type in a node's hierarchy), `node_instance`,
//!   `scaling_group` (a group a scaling policy targets), `operation_name` (an operation of a
//!   node, by its full name), `capability_value` (the resolved value of a capability, chosen
//!   by key with `name_pattern`): of the deployment its `deployment_id` constraint names, else
//!   of the deployment the workflow runs on; for a deployment input without that constraint,
//!   of the blueprint being deployed (`node_instance` and `capability_value` inputs need the
//!   constraint: `dsl::data_based::check_declaration`).
//!
//! `valid_values` narrows the names further. Every problem is reported at once, each naming the
//! input or parameter, the value and what would be valid.

use std::collections::HashMap;

use crate::maps::IndexMap;
use serde_json::{Map, Value as Json};

use super::EngineError;
use crate::diag::did_you_mean;
use crate::dsl::Compiled;
use crate::dsl::compiled::Parameter;
use crate::dsl::data_based::{Kind, Lookup};
use crate::store::{DeploymentRecord, Store};

/// What "this deployment" is for a lookup without a `deployment_id` constraint.
enum Here<'a> {
    /// Deployment inputs: the blueprint being deployed.
    Blueprint(&'a Compiled),
    /// Workflow parameters: the deployment the workflow runs on.
    Deployment(&'a DeploymentRecord),
}

/// Check a new deployment's data-based inputs.
pub async fn check_inputs(store: &Store, compiled: &Compiled) -> Result<(), EngineError> {
    let mut problems = Vec::new();
    let mut lookups = Vec::new();
    for (name, typed) in &compiled.input_types {
        let owner = format!("input `{name}`");
        match compiled.inputs.get(name) {
            None | Some(Json::Null) => {}
            Some(value) => match typed.lookups(&owner, value) {
                Ok(l) => lookups.extend(l),
                Err(e) => problems.push(format!("{owner}: {e}")),
            },
        }
    }
    problems.extend(check(store, &lookups, Here::Blueprint(compiled)).await?);
    finish(problems)
}

/// Check a workflow's data-based parameters (`params`: as `check_parameters` completed them).
pub async fn check_parameters(
    store: &Store,
    dep: &DeploymentRecord,
    declared: &IndexMap<String, Parameter>,
    params: &Map<String, Json>,
) -> Result<(), EngineError> {
    let mut problems = Vec::new();
    let mut lookups = Vec::new();
    for (name, p) in declared {
        let Some(typed) = &p.data_based else { continue };
        let owner = format!("parameter `{name}`");
        match params.get(name) {
            None | Some(Json::Null) => {}
            Some(value) => match typed.lookups(&owner, value) {
                Ok(l) => lookups.extend(l),
                Err(e) => problems.push(format!("{owner}: {e}")),
            },
        }
    }
    if lookups.is_empty() && problems.is_empty() {
        return Ok(());
    }
    problems.extend(check(store, &lookups, Here::Deployment(dep)).await?);
    finish(problems)
}

fn finish(problems: Vec<String>) -> Result<(), EngineError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Workflow(problems.join("\n")))
    }
}

/// What one deployment offers for lookups, read once per check.
struct Facts {
    compiled: std::sync::Arc<Compiled>,
    instances: Option<Vec<String>>,
    capabilities: Option<Map<String, Json>>,
}

/// Answer every lookup; returns the problems found.
async fn check(
    store: &Store,
    lookups: &[Lookup<'_>],
    here: Here<'_>,
) -> Result<Vec<String>, EngineError> {
    let mut problems = Vec::new();
    // Instances and capabilities are read only when a lookup names one.
    let need = (
        lookups.iter().any(|l| l.kind == Kind::NodeInstance),
        lookups.iter().any(|l| l.kind == Kind::CapabilityValue),
    );
    let mut deployments: Option<Vec<String>> = None;
    let mut facts: HashMap<String, Option<Facts>> = HashMap::new();
    for l in lookups {
        let (owner, value, f) = (&l.owner, l.value.as_str(), l.filters);
        if let Some(c) = f.unsupported.first() {
            problems.push(format!(
                "{owner}: windlass cannot check the `{c}` constraint (it has no {})",
                if c == "tenants" {
                    "tenants"
                } else {
                    "saved filters"
                }
            ));
            continue;
        }
        if let Some(valid) = &f.valid_values
            && !valid.iter().any(|v| v.as_str() == Some(value))
        {
            problems.push(format!(
                "{owner}: `{value}` is not one of the valid values {}",
                Json::Array(valid.clone())
            ));
            continue;
        }
        let pattern_fails = |name: &str| f.name_pattern.as_ref().is_some_and(|p| !p.matches(name));
        match l.kind {
            Kind::DeploymentId => {
                if deployments.is_none() {
                    deployments = Some(
                        store
                            .deployments()
                            .await?
                            .into_iter()
                            .map(|(id, _, _)| id)
                            .collect(),
                    );
                }
                let ids = deployments.as_deref().unwrap_or_default();
                if !ids.iter().any(|d| d == value) {
                    problems.push(format!(
                        "{owner}: there is no deployment `{value}`{}",
                        hint(value, ids.iter().map(String::as_str), "deployments")
                    ));
                } else if pattern_fails(value) {
                    problems.push(pattern_problem(l));
                } else if !f.labels.is_empty() {
                    let dep = store.deployment_frame(value).await?;
                    let missing: Vec<String> = f
                        .labels
                        .iter()
                        .filter(|(k, v)| !has_label(&dep.compiled.labels, k, v))
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect();
                    if !missing.is_empty() {
                        problems.push(format!(
                            "{owner}: deployment `{value}` does not have the label{} {}",
                            if missing.len() > 1 { "s" } else { "" },
                            missing.join(", ")
                        ));
                    }
                }
            }
            Kind::BlueprintId => {
                if !f.labels.is_empty() {
                    problems.push(format!("{owner}: windlass cannot check the `labels` constraint of a blueprint_id (it keeps no blueprint catalogue)"));
                } else if pattern_fails(value) {
                    problems.push(pattern_problem(l));
                }
            }
            Kind::SecretKey => {
                if !store.secret_exists(value).await? {
                    problems.push(format!("{owner}: there is no secret `{value}`"));
                } else if pattern_fails(value) {
                    problems.push(pattern_problem(l));
                }
            }
            kind => {
                let (scope, facts) = match (&f.deployment_id, &here) {
                    (Some(d), _) => {
                        if !facts.contains_key(d) {
                            let found = read_facts(store, d, need).await?;
                            facts.insert(d.clone(), found);
                        }
                        match facts.get(d).and_then(Option::as_ref) {
                            Some(x) => (format!("deployment `{d}`"), x),
                            None => {
                                let ids: Vec<String> = store
                                    .deployments()
                                    .await?
                                    .into_iter()
                                    .map(|(id, _, _)| id)
                                    .collect();
                                problems.push(format!(
                                    "{owner}: its `deployment_id` constraint names `{d}`, which is not a deployment{}",
                                    hint(d, ids.iter().map(String::as_str), "deployments")
                                ));
                                continue;
                            }
                        }
                    }
                    (None, Here::Deployment(dep)) => {
                        if !facts.contains_key(&dep.id) {
                            let found = read_facts(store, &dep.id, need).await?;
                            facts.insert(dep.id.clone(), found);
                        }
                        match facts.get(&dep.id).and_then(Option::as_ref) {
                            Some(x) => (format!("deployment `{}`", dep.id), x),
                            None => continue,
                        }
                    }
                    (None, Here::Blueprint(compiled)) => {
                        let key = String::new();
                        facts.entry(key.clone()).or_insert_with(|| {
                            Some(Facts {
                                compiled: std::sync::Arc::new((*compiled).clone()),
                                instances: None,
                                capabilities: None,
                            })
                        });
                        match facts.get(&key).and_then(Option::as_ref) {
                            Some(x) => ("this blueprint".to_string(), x),
                            None => continue,
                        }
                    }
                };
                let names = match kind {
                    Kind::NodeInstance | Kind::CapabilityValue if facts.instances.is_none() => {
                        // An input of these types always names a deployment (checked when
                        // the blueprint is read); nothing to look in otherwise.
                        problems.push(format!(
                            "{owner}: a {} needs a `deployment_id` constraint",
                            kind.what()
                        ));
                        continue;
                    }
                    _ => candidates(kind, facts),
                };
                let values: Vec<&str> = names.iter().map(|(_, v)| v.as_str()).collect();
                if !values.contains(&value) {
                    problems.push(format!(
                        "{owner}: {scope} has no {} `{value}`{}",
                        kind.what(),
                        hint(value, values.iter().copied(), &format!("{}s", kind.what()))
                    ));
                } else if !names
                    .iter()
                    .any(|(key, v)| v == value && !pattern_fails(key))
                {
                    problems.push(pattern_problem(l));
                }
            }
        }
    }
    Ok(problems)
}

/// The deployment's compiled blueprint, and its instance ids and resolved capabilities as
/// `need`ed; `None` when there is no such deployment.
async fn read_facts(
    store: &Store,
    id: &str,
    need: (bool, bool),
) -> Result<Option<Facts>, EngineError> {
    let dep = match store.deployment_frame(id).await {
        Ok(d) => d,
        Err(crate::store::StoreError::NoDeployment(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let instances = if need.0 {
        store
            .instances(id)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    } else {
        Vec::new()
    };
    let capabilities = if need.1 && !dep.compiled.capabilities.is_empty() {
        super::capabilities(store, id).await?
    } else {
        Map::new()
    };
    Ok(Some(Facts {
        compiled: dep.compiled,
        instances: Some(instances),
        capabilities: Some(capabilities),
    }))
}

/// `(name the name_pattern applies to, value the lookup compares)` for each entity of `kind`.
fn candidates(kind: Kind, facts: &Facts) -> Vec<(String, String)> {
    let c = &facts.compiled;
    let same = |names: Vec<String>| names.into_iter().map(|n| (n.clone(), n)).collect();
    let mut out: Vec<(String, String)> = match kind {
        Kind::NodeId => same(c.nodes.iter().map(|n| n.id.0.clone()).collect()),
        Kind::NodeType => same(
            c.nodes
                .iter()
                .flat_map(|n| n.type_hierarchy.iter().cloned())
                .collect(),
        ),
        Kind::ScalingGroup => same(
            c.scaling_policies
                .values()
                .flat_map(|p| p.targets.iter().map(|(g, _)| g.clone()))
                .collect(),
        ),
        Kind::OperationName => same(
            c.nodes
                .iter()
                .flat_map(|n| c.operations(n.operations).keys().cloned())
                .collect(),
        ),
        Kind::NodeInstance => same(facts.instances.clone().unwrap_or_default()),
        Kind::CapabilityValue => facts
            .capabilities
            .iter()
            .flatten()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), text)
            })
            .collect(),
        Kind::DeploymentId | Kind::BlueprintId | Kind::SecretKey => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

fn pattern_problem(l: &Lookup<'_>) -> String {
    format!(
        "{}: {} `{}` does not match its name_pattern ({})",
        l.owner,
        l.kind.what(),
        l.value,
        l.filters
            .name_pattern
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    )
}

/// ` (did you mean `x`?)`, else a short list of what exists.
fn hint<'a>(value: &str, known: impl Iterator<Item = &'a str> + Clone, what: &str) -> String {
    if let Some(h) = did_you_mean(value, known.clone()) {
        return format!(" ({h})");
    }
    let mut all: Vec<&str> = known.collect();
    all.dedup();
    match all.len() {
        0 => format!(" (there are no {what})"),
        n if n <= 8 => format!(" ({what}: {})", all.join(", ")),
        n => format!(" ({n} {what}, e.g. {})", all[..5].join(", ")),
    }
}

/// Whether the blueprint's labels give `key` the value `value` (Cloudify's form
/// `{key: {values: [...]}}`, or a plain value or list).
fn has_label(labels: &Map<String, Json>, key: &str, value: &str) -> bool {
    let Some(v) = labels.get(key) else {
        return false;
    };
    let values = v.get("values").unwrap_or(v);
    let matches = |x: &Json| x.as_str().map_or_else(|| x.to_string(), str::to_string) == value;
    match values {
        Json::Array(items) => items.iter().any(matches),
        other => matches(other),
    }
}
