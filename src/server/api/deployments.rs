//! `/api/v1/deployments`: list, get, create (then install in the background), delete
//! (undeploy in the background).
//!
//! Create takes the blueprint one of two ways, told apart by `Content-Type`:
//! - an archive body (`application/x-tar`, `application/gzip`, `application/octet-stream`…):
//!   a tar or tar.gz of the blueprint's directory, as Cloudify users upload blueprints;
//!   `?application_file_name=` names the blueprint file (default `blueprint.yaml`, looked for
//!   at the archive's top and, as Cloudify packs them, inside its one top-level directory)
//!   and `?inputs=` carries the inputs as a JSON object. The archive is unpacked into a
//!   private directory that lives only until the deployment's snapshot is stored.
//! - `application/json`: `{"blueprint_path": "/abs/dir/blueprint.yaml", "inputs": {…}}`, a
//!   blueprint on the manager's own filesystem.

use std::path::{Path, PathBuf};

use axum::Json as AxumJson;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{
    ApiError, archive, execution_json, json_body, refuse_when_stopping, run_in_background,
};
use crate::dsl::GivenInputs;
use crate::dsl::inputs::Given;
use crate::engine;
use crate::server::AppState;

/// The largest archive body taken (compressed); what it unpacks to is bounded by the
/// snapshot's limits.
pub const ARCHIVE_LIMIT: usize = 64 << 20;

pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let states: std::collections::HashMap<String, (bool, bool)> = state
        .store
        .deployment_states()
        .await?
        .into_iter()
        .map(|s| (s.id, (s.installed, s.deleting)))
        .collect();
    let rows: Vec<Json> = state
        .store
        .deployments()
        .await?
        .into_iter()
        .map(|(id, blueprint, created_at)| {
            let (installed, deleting) = states.get(&id).copied().unwrap_or_default();
            json!({"id": id, "blueprint": blueprint, "created_at": created_at, "installed": installed, "deleting": deleting})
        })
        .collect();
    Ok(AxumJson(Json::Array(rows)).into_response())
}

/// What `windlass status ID --json` shows, with whether the deployment is installed, its
/// inputs and the names of its workflows.
pub async fn get(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let dep = state.store.deployment_frame(&id).await?;
    let mut states: std::collections::BTreeMap<String, usize> = Default::default();
    for i in state.store.instances(&id).await? {
        *states.entry(i.state).or_default() += 1;
    }
    let last = state.store.latest_execution(&id).await?;
    Ok(AxumJson(json!({
        "id": dep.id,
        "blueprint": dep.blueprint,
        "created_at": dep.created_at,
        "installed": dep.installed,
        "deleting": dep.deleting,
        "inputs": dep.inputs,
        "instances": states,
        "workflows": dep.compiled.workflows.keys().collect::<Vec<_>>(),
        "last_execution": last.as_ref().map(execution_json),
    }))
    .into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct CreateQuery {
    application_file_name: Option<String>,
    inputs: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<CreateQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    refuse_when_stopping(&state)?;
    check_id(&id)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type == "application/json" {
        let body = json_body(&body)?;
        let path = body
            .get("blueprint_path")
            .and_then(Json::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "the body needs `blueprint_path`: the absolute path of a blueprint file on the manager's filesystem (or send a tar archive of the blueprint's directory)",
                )
            })?;
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(ApiError::bad_request(format!(
                "`blueprint_path` must be absolute, got {}",
                path.display()
            )));
        }
        let given = given_inputs(body.get("inputs"))?;
        return install(&state, &id, &path, &given, None).await;
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body must be a tar or tar.gz archive of the blueprint's directory, or JSON {\"blueprint_path\", \"inputs\"} with Content-Type: application/json",
        ));
    }
    let inputs =
        match &query.inputs {
            Some(text) => Some(serde_json::from_str::<Json>(text).map_err(|e| {
                ApiError::bad_request(format!("`inputs` must be a JSON object: {e}"))
            })?),
            None => None,
        };
    let given = given_inputs(inputs.as_ref())?;
    let name = query
        .application_file_name
        .as_deref()
        .unwrap_or("blueprint.yaml");
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(ApiError::bad_request(format!(
            "`application_file_name` must be a relative path inside the archive, got {name:?}"
        )));
    }
    let upload = Upload::new()?;
    let into = upload.0.clone();
    let unpacked = tokio::task::spawn_blocking(move || archive::unpack(&body, &into))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    unpacked.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let blueprint = find_blueprint(&upload.0, name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "the archive has no {name} at its top or in its one top-level directory (`application_file_name` names the blueprint file)"
        ))
    })?;
    install(&state, &id, &blueprint, &given, Some(&upload.0)).await
}

/// Store the deployment and start its install; 202 with the execution.
async fn install(
    state: &AppState,
    id: &str,
    blueprint: &Path,
    given: &GivenInputs,
    upload: Option<&Path>,
) -> Result<Response, ApiError> {
    let label = match upload {
        Some(dir) => format!(
            "upload:{}",
            blueprint.strip_prefix(dir).unwrap_or(blueprint).display()
        ),
        None => blueprint.display().to_string(),
    };
    let created = engine::create_deployment_as(&state.store, blueprint, &label, id, given)
        .await
        .map_err(|e| {
            let mut e = ApiError::from(e);
            // Diagnostics name files by where the archive was unpacked: show them as the
            // archive names them.
            if let Some(dir) = upload {
                let prefix = format!("{}/", dir.display());
                e.message = e.message.replace(&prefix, "");
                if let Some(Json::String(d)) = &mut e.details {
                    *d = d.replace(&prefix, "");
                }
            }
            e
        })?;
    let (_, created) = created;
    let started = engine::start_install(&state.store, created).await?;
    let execution = state.store.execution(started.execution()).await?;
    run_in_background(state, started);
    accepted(execution)
}

pub(super) fn accepted(
    execution: Option<crate::store::ExecutionRecord>,
) -> Result<Response, ApiError> {
    let execution = execution.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the execution just recorded cannot be read back",
        )
    })?;
    Ok((StatusCode::ACCEPTED, AxumJson(execution_json(&execution))).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    ignore_failure: bool,
}

/// `undeploy`: uninstall, then delete, in the background; 202 with the execution.
pub async fn remove(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    refuse_when_stopping(&state)?;
    let started = engine::start_undeploy(&state.store, &id, query.ignore_failure).await?;
    let execution = state.store.execution(started.execution()).await?;
    run_in_background(&state, started);
    accepted(execution)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if crate::store::is_plain_name(id, 128) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "a deployment id is 1 to 128 letters, digits, `.`, `_` or `-`; got {id:?}"
        )))
    }
}

/// Inputs as a JSON object (or none).
fn given_inputs(inputs: Option<&Json>) -> Result<GivenInputs, ApiError> {
    match inputs {
        None | Some(Json::Null) => Ok(GivenInputs::default()),
        Some(Json::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Given {
                        value: v.clone(),
                        from_text: false,
                    },
                )
            })
            .collect()),
        Some(_) => Err(ApiError::bad_request(
            "`inputs` must be a JSON object of input names to values",
        )),
    }
}

/// The blueprint file: at the archive's top, or inside its only top-level directory.
fn find_blueprint(root: &Path, name: &str) -> Option<PathBuf> {
    let direct = root.join(name);
    if direct.is_file() {
        return Some(direct);
    }
    let mut entries = std::fs::read_dir(root).ok()?.flatten();
    let only = entries.next()?;
    if entries.next().is_some() || !only.path().is_dir() {
        return None;
    }
    let nested = only.path().join(name);
    nested.is_file().then_some(nested)
}

/// A private directory an archive is unpacked into, removed when the request is done (the
/// deployment keeps its own snapshot of the files).
struct Upload(PathBuf);

impl Upload {
    fn new() -> Result<Upload, ApiError> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("windlass-upload-{}-{n}", std::process::id()));
        // Left by a killed process that had this pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot make a directory for the upload: {e}"),
                )
            })?;
        Ok(Upload(dir))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
