//! The lifecycle of Kubernetes resources: `create`, `wait_ready`, `update`, `delete` and
//! `check_status` of the objects a node describes.
//!
//! # What a node describes
//! A `BlueprintDefinedResource` (and every kind derived from it) one object, its `definition`;
//! a `FileDefinedResource` the objects of its `file.resource_path`, rendered as Jinja with
//! `file.template_variables` (`crate::template`); a `MultipleFileDefinedResources` those of
//! every file of `files`, in order. A namespaced object without `metadata.namespace` goes to
//! `options.namespace` (`default`). Top-level fields a type's defaults leave empty (`spec: {}`
//! of a ConfigMap) are not sent.
//!
//! # What the operations do
//! - `create` applies each object (server-side apply, field manager `windlass`, forcing
//!   conflicts), and records it in the runtime property `kubernetes` as the API returned it
//!   (without `managedFields`) before going on: the object itself, or, when the node describes
//!   several, the list of them in order. With `use_if_exists: false` it creates (`POST`), so an
//!   object that exists already is the API's 409. With `use_external_resource` it only reads the
//!   object, which must exist (unless `create_if_missing`).
//! - `wait_ready` (start), with `validate_resource_status`: polls each object with a growing
//!   pause until it is ready — a Deployment when `availableReplicas` equals `replicas`, a Pod when
//!   its `Ready` condition is true, anything else at once — within the operation's `timeout`
//!   (else [`DEFAULT_WAIT`]), and records what it read.
//! - `update` applies again; `check_status` reads each object and fails unless it is ready.
//! - `delete` deletes each object, last first (`options.propagation_policy`, default
//!   `Background`; `options.grace_period_seconds`), and waits until the API answers 404; an object
//!   already gone is fine. An external resource is left in place.
//!
//! Objects are found from the runtime property when it is there (what was created is what is
//! deleted, even if the blueprint's files changed), else from the node's description.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::{Map, Value as Json};

use super::api::{self, KubeError, Target};
use super::config::{self, Connection, Secrets};
use crate::plugins::{OpError, OperationContext};
use crate::template::{Descriptor, render_descriptor};

/// How long `wait_ready` and `delete` wait when the operation sets no `timeout`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "windlass";
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(5);

/// Which node type's description the objects come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Resource,
    File,
    MultipleFiles,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    WaitReady,
    Update,
    Delete,
    CheckStatus,
}

/// `file_resource.create` → (File, Create); `None` for a function this module does not run.
pub fn parse_function(function: &str) -> Option<(Module, Operation)> {
    let (module, op) = function.split_once('.')?;
    let module = match module {
        "resource" => Module::Resource,
        "file_resource" => Module::File,
        "multiple_file_resources" => Module::MultipleFiles,
        _ => return None,
    };
    let op = match op {
        "create" => Operation::Create,
        "wait_ready" => Operation::WaitReady,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "check_status" => Operation::CheckStatus,
        _ => return None,
    };
    Some((module, op))
}

/// Run one operation; errors are masked and classified for the engine.
pub async fn run(
    ctx: &OperationContext,
    module: Module,
    operation: Operation,
) -> Result<Option<Json>, OpError> {
    let conn = config::connect(ctx)
        .await
        .map_err(KubeError::into_op_error)?;
    let result = match operation {
        Operation::Create => apply_all(ctx, &conn, module, false).await,
        Operation::Update => apply_all(ctx, &conn, module, true).await,
        Operation::WaitReady => wait_ready(ctx, &conn, module).await,
        Operation::CheckStatus => check_status(ctx, &conn, module).await,
        Operation::Delete => delete_all(ctx, &conn, module).await,
    };
    result
        .map(|()| None)
        .map_err(|e| mask(e.into_op_error(), &conn.secrets))
}

pub(crate) fn mask(e: OpError, secrets: &Secrets) -> OpError {
    match e {
        OpError::Failed(m) => OpError::Failed(secrets.mask(&m)),
        OpError::NonRecoverable(m) => OpError::NonRecoverable(secrets.mask(&m)),
        OpError::Retry { message, after } => OpError::Retry {
            message: secrets.mask(&message),
            after,
        },
        OpError::Recoverable { message, after } => OpError::Recoverable {
            message: secrets.mask(&message),
            after,
        },
    }
}

/// One object to send, and how messages name where it came from.
struct Desired {
    object: Json,
    what: String,
}

fn flag(properties: &Map<String, Json>, name: &str, default: bool) -> bool {
    match properties.get(name) {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => default,
    }
}

fn option<'a>(properties: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    properties
        .get("options")
        .and_then(|o| o.get(name))
        .filter(|v| !v.is_null())
}

pub(crate) fn default_namespace(properties: &Map<String, Json>) -> String {
    option(properties, "namespace")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// The definition as it is sent: top-level fields left empty by the type's defaults dropped.
fn cleaned(definition: &Json) -> Json {
    match definition {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(k, v)| {
                    matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                        || !(v.is_null()
                            || v.as_object().is_some_and(Map::is_empty)
                            || v.as_array().is_some_and(Vec::is_empty))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The objects the node describes (see the module doc).
fn desired(ctx: &OperationContext, module: Module) -> Result<Vec<Desired>, KubeError> {
    let props = &ctx.node_properties;
    match module {
        Module::Resource => match props.get("definition") {
            Some(d @ Json::Object(_)) => Ok(vec![Desired {
                object: cleaned(d),
                what: format!("{}'s definition", ctx.node_id),
            }]),
            _ => Err(KubeError::Object {
                what: ctx.node_id.clone(),
                message: "`definition` must be a Kubernetes object (apiVersion, kind, metadata, …)"
                    .to_string(),
            }),
        },
        Module::File => render_file(ctx, props.get("file").unwrap_or(&Json::Null), "file"),
        Module::MultipleFiles => {
            let Some(files) = props.get("files").and_then(Json::as_array) else {
                return Err(KubeError::Object {
                    what: ctx.node_id.clone(),
                    message: "`files` must be a list of {resource_path, template_variables}"
                        .to_string(),
                });
            };
            let mut all = Vec::new();
            for (i, f) in files.iter().enumerate() {
                all.extend(render_file(ctx, f, &format!("files[{i}]"))?);
            }
            Ok(all)
        }
    }
}

fn render_file(ctx: &OperationContext, spec: &Json, name: &str) -> Result<Vec<Desired>, KubeError> {
    let Some(path) = spec
        .get("resource_path")
        .and_then(Json::as_str)
        .filter(|p| !p.is_empty())
    else {
        return Err(KubeError::Object {
            what: ctx.node_id.clone(),
            message: format!("`{name}.resource_path` must name a descriptor file of the blueprint"),
        });
    };
    let vars = match spec.get("template_variables") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => {
            return Err(KubeError::Object {
                what: ctx.node_id.clone(),
                message: format!("`{name}.template_variables` must be a mapping"),
            });
        }
    };
    let text =
        std::fs::read_to_string(ctx.resources.join(path)).map_err(|e| KubeError::Object {
            what: ctx.node_id.clone(),
            message: format!("cannot read descriptor {path} ({name}.resource_path): {e}"),
        })?;
    let objects = render_descriptor(
        Descriptor::Text {
            name: path,
            text: &text,
        },
        &vars,
    )?;
    Ok(objects
        .into_iter()
        .enumerate()
        .map(|(i, object)| Desired {
            object,
            what: format!("{path}, document {}", i + 1),
        })
        .collect())
}

/// The objects recorded in the runtime property `kubernetes`, if any.
pub(crate) fn recorded(ctx: &OperationContext) -> Option<Vec<Json>> {
    match ctx
        .instances
        .runtime_properties(&ctx.instance_id)
        .get("kubernetes")
    {
        Some(Json::Array(a)) if !a.is_empty() => Some(a.clone()),
        Some(o @ Json::Object(m)) if !m.is_empty() => Some(vec![o.clone()]),
        _ => None,
    }
}

/// What to act on: the recorded objects, else the node's description.
fn known(ctx: &OperationContext, module: Module) -> Result<(Vec<Desired>, bool), KubeError> {
    let several_described = || desired(ctx, module).map(|d| d.len() > 1);
    match recorded(ctx) {
        Some(objects) => {
            let several = objects.len() > 1 || several_described().unwrap_or(false);
            Ok((
                objects
                    .into_iter()
                    .map(|object| Desired {
                        what: format!("{}'s runtime property `kubernetes`", ctx.node_id),
                        object,
                    })
                    .collect(),
                several,
            ))
        }
        None => {
            let d = desired(ctx, module)?;
            let several = d.len() > 1;
            Ok((d, several))
        }
    }
}

/// Store the objects in the runtime property `kubernetes`: the object, or the list of them.
pub(crate) fn record(
    ctx: &OperationContext,
    objects: &[Json],
    several: bool,
) -> Result<(), KubeError> {
    let value = match objects {
        [one] if !several => one.clone(),
        _ => Json::Array(objects.to_vec()),
    };
    ctx.instances
        .set_runtime_property(&ctx.instance_id, "kubernetes", value)
        .map_err(|message| KubeError::Object {
            what: ctx.instance_id.clone(),
            message,
        })
}

/// The object as kept: what the API returned, without its `managedFields` bookkeeping.
pub(crate) fn kept(mut object: Json) -> Json {
    if let Some(meta) = object.get_mut("metadata").and_then(Json::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

async fn apply_all(
    ctx: &OperationContext,
    conn: &Connection,
    module: Module,
    update: bool,
) -> Result<(), KubeError> {
    let props = &ctx.node_properties;
    let external = flag(props, "use_external_resource", false) && !update;
    let create_if_missing = flag(props, "create_if_missing", false);
    let use_if_exists = flag(props, "use_if_exists", true);
    let namespace = default_namespace(props);
    let desired = desired(ctx, module)?;
    let several = desired.len() > 1;
    let mut done = Vec::new();
    for d in &desired {
        let target = api::target(&conn.client, &d.object, &namespace, &d.what).await?;
        let mut object = d.object.clone();
        if let (Some(ns), Some(meta)) = (
            &target.namespace,
            object.get_mut("metadata").and_then(Json::as_object_mut),
        ) {
            meta.insert("namespace".to_string(), Json::String(ns.clone()));
        }
        let result = if external {
            match target.get(&conn.client).await? {
                Some(existing) => {
                    ctx.log(
                        "info",
                        format!(
                            "using the existing {} (use_external_resource)",
                            target.describe()
                        ),
                    );
                    existing
                }
                None if create_if_missing => {
                    ctx.log(
                        "info",
                        format!(
                            "{} does not exist: creating it (create_if_missing)",
                            target.describe()
                        ),
                    );
                    apply(conn, &target, &object).await?
                }
                None => {
                    return Err(KubeError::Object {
                        what: target.describe(),
                        message: "use_external_resource is set but it does not exist (set create_if_missing to create it)".to_string(),
                    });
                }
            }
        } else if !use_if_exists && !update {
            let created = create(conn, &target, &object).await?;
            ctx.log("info", format!("created {}", target.describe()));
            created
        } else {
            let applied = apply(conn, &target, &object).await?;
            ctx.log(
                "info",
                format!("applied {} (server-side apply)", target.describe()),
            );
            applied
        };
        done.push(kept(result));
        // Before anything else happens: what exists is known to `resume` and `undeploy`.
        record(ctx, &done, several)?;
    }
    Ok(())
}

async fn apply(conn: &Connection, target: &Target, object: &Json) -> Result<Json, KubeError> {
    let what = target.describe();
    let body = api::from_json(object, &what)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    let api = target.api(&conn.client);
    let applied = api::call("apply", &what, || api.patch(&target.name, &params, &patch)).await?;
    api::to_json(&applied, &what)
}

async fn create(conn: &Connection, target: &Target, object: &Json) -> Result<Json, KubeError> {
    let what = target.describe();
    let body = api::from_json(object, &what)?;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let api = target.api(&conn.client);
    let created = api::call("create", &what, || api.create(&params, &body)).await?;
    api::to_json(&created, &what)
}

/// Whether an object is ready; if not, what it is waiting for.
pub fn readiness(object: &Json) -> Result<(), String> {
    let kind = object
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or_default();
    match kind {
        "Deployment" => {
            let wanted = object
                .pointer("/spec/replicas")
                .and_then(Json::as_i64)
                .unwrap_or(1);
            let available = object
                .pointer("/status/availableReplicas")
                .and_then(Json::as_i64)
                .unwrap_or(0);
            if available == wanted {
                Ok(())
            } else {
                Err(format!("{available} of {wanted} replicas available"))
            }
        }
        "Pod" => {
            let ready = object
                .pointer("/status/conditions")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.get("type").and_then(Json::as_str) == Some("Ready")
                        && c.get("status").and_then(Json::as_str) == Some("True")
                });
            if ready {
                Ok(())
            } else {
                let phase = object
                    .pointer("/status/phase")
                    .and_then(Json::as_str)
                    .unwrap_or("unknown");
                Err(format!("phase {phase}, condition Ready is not True"))
            }
        }
        _ => Ok(()),
    }
}

fn deadline(ctx: &OperationContext) -> (Instant, Duration) {
    let wait = ctx.timeout.unwrap_or(DEFAULT_WAIT);
    (Instant::now() + wait, wait)
}

/// Sleep the next pause (never past `deadline`) and grow it; false when the deadline passed.
async fn pause(pause: &mut Duration, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    tokio::time::sleep((*pause).min(deadline - now)).await;
    *pause = (*pause * 3 / 2).min(MAX_POLL);
    true
}

async fn wait_ready(
    ctx: &OperationContext,
    conn: &Connection,
    module: Module,
) -> Result<(), KubeError> {
    if !flag(&ctx.node_properties, "validate_resource_status", false) {
        return Ok(());
    }
    let namespace = default_namespace(&ctx.node_properties);
    let (objects, several) = known(ctx, module)?;
    let (deadline, wait) = deadline(ctx);
    let mut seen = Vec::new();
    for d in &objects {
        let target = api::target(&conn.client, &d.object, &namespace, &d.what).await?;
        let mut poll = FIRST_POLL;
        loop {
            let Some(object) = target.get(&conn.client).await? else {
                return Err(KubeError::Object {
                    what: target.describe(),
                    message: "it does not exist (deleted by someone else?)".to_string(),
                });
            };
            match readiness(&object) {
                Ok(()) => {
                    seen.push(kept(object));
                    break;
                }
                Err(state) => {
                    if !pause(&mut poll, deadline).await {
                        return Err(KubeError::NotReady {
                            what: target.describe(),
                            waited: wait,
                            state,
                        });
                    }
                }
            }
        }
        ctx.log("info", format!("{} is ready", target.describe()));
    }
    record(ctx, &seen, several)
}

async fn check_status(
    ctx: &OperationContext,
    conn: &Connection,
    module: Module,
) -> Result<(), KubeError> {
    let namespace = default_namespace(&ctx.node_properties);
    let (objects, several) = known(ctx, module)?;
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for d in &objects {
        let target = api::target(&conn.client, &d.object, &namespace, &d.what).await?;
        match target.get(&conn.client).await? {
            None => problems.push(format!("{} does not exist", target.describe())),
            Some(object) => {
                if let Err(state) = readiness(&object) {
                    problems.push(format!("{} is not ready: {state}", target.describe()));
                }
                seen.push(kept(object));
            }
        }
    }
    if !seen.is_empty() {
        record(ctx, &seen, several)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(KubeError::Object {
            what: ctx.node_id.clone(),
            message: problems.join("; "),
        })
    }
}

fn delete_params(props: &Map<String, Json>) -> Result<DeleteParams, KubeError> {
    let policy = match option(props, "propagation_policy").and_then(Json::as_str) {
        None | Some("") | Some("Background") => PropagationPolicy::Background,
        Some("Foreground") => PropagationPolicy::Foreground,
        Some("Orphan") => PropagationPolicy::Orphan,
        Some(other) => {
            return Err(KubeError::Object {
                what: "options.propagation_policy".to_string(),
                message: format!("`{other}` is not one of Foreground, Background, Orphan"),
            });
        }
    };
    let grace = match option(props, "grace_period_seconds") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| KubeError::Object {
                    what: "options.grace_period_seconds".to_string(),
                    message: format!("{v} is not a number of seconds"),
                })?,
        ),
    };
    Ok(DeleteParams {
        propagation_policy: Some(policy),
        grace_period_seconds: grace,
        ..DeleteParams::default()
    })
}

async fn delete_all(
    ctx: &OperationContext,
    conn: &Connection,
    module: Module,
) -> Result<(), KubeError> {
    let props = &ctx.node_properties;
    if flag(props, "use_external_resource", false) {
        ctx.log(
            "info",
            "use_external_resource: the resource is left in place",
        );
        return Ok(());
    }
    let params = delete_params(props)?;
    let namespace = default_namespace(props);
    let (objects, _) = known(ctx, module)?;
    let (deadline, wait) = deadline(ctx);
    for d in objects.iter().rev() {
        let target = api::target(&conn.client, &d.object, &namespace, &d.what).await?;
        let what = target.describe();
        let api = target.api(&conn.client);
        match api::call("delete", &what, || api.delete(&target.name, &params)).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(404) => {
                ctx.log("info", format!("{what} is already gone"));
                continue;
            }
            Err(e) => return Err(e),
        }
        let mut poll = FIRST_POLL;
        while target.get(&conn.client).await?.is_some() {
            if !pause(&mut poll, deadline).await {
                return Err(KubeError::NotGone { what, waited: wait });
            }
        }
        ctx.log("info", format!("deleted {what}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn functions_parse() {
        assert_eq!(
            parse_function("multiple_file_resources.wait_ready"),
            Some((Module::MultipleFiles, Operation::WaitReady))
        );
        assert_eq!(parse_function("resource.craete"), None);
        assert_eq!(parse_function("microservice.apply"), None);
    }

    #[test]
    fn deployments_and_pods_are_ready_when_their_status_says_so() {
        let d = |replicas: i64, available: Option<i64>| {
            json!({"kind": "Deployment", "spec": {"replicas": replicas},
                   "status": {"availableReplicas": available}})
        };
        assert_eq!(readiness(&d(2, Some(2))), Ok(()));
        assert_eq!(
            readiness(&d(2, Some(1))),
            Err("1 of 2 replicas available".to_string())
        );
        assert!(readiness(&d(2, None)).is_err());
        let pod = |status: &str| {
            json!({"kind": "Pod", "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": status}]}})
        };
        assert_eq!(readiness(&pod("True")), Ok(()));
        assert!(readiness(&pod("False")).is_err());
        assert_eq!(readiness(&json!({"kind": "ConfigMap"})), Ok(()));
    }

    #[test]
    fn empty_defaults_are_not_sent() {
        let sent = cleaned(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "spec": {}, "data": {"a": "1"}}));
        assert_eq!(
            sent,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn delete_options() {
        let props = |o: Json| json!({"options": o}).as_object().cloned().unwrap();
        let p = delete_params(&props(json!({"namespace": "x"}))).unwrap();
        assert!(matches!(
            p.propagation_policy,
            Some(PropagationPolicy::Background)
        ));
        let p = delete_params(&props(
            json!({"propagation_policy": "Foreground", "grace_period_seconds": 5}),
        ))
        .unwrap();
        assert!(matches!(
            p.propagation_policy,
            Some(PropagationPolicy::Foreground)
        ));
        assert_eq!(p.grace_period_seconds, Some(5));
        assert!(delete_params(&props(json!({"propagation_policy": "Now"}))).is_err());
    }
}
