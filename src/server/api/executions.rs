//! Executions: `GET /api/v1/deployments/{id}/executions` (a deployment's, oldest first),
//! `POST /api/v1/deployments/{id}/executions` with `{"workflow", "parameters",
//! "allow_custom_parameters"}` (checked and recorded, then walked in the background: 202 with
//! the execution), `GET /api/v1/executions/{id}` and `POST /api/v1/executions/{id}/cancel`.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json};

use super::deployments::accepted;
use super::{ApiError, execution_json, json_body, refuse_when_stopping, run_in_background};
use crate::engine;
use crate::server::AppState;
use crate::store::{ACTIVE, ExecutionRecord};

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.store.deployment_frame(&id).await?;
    let rows: Vec<Json> = state
        .store
        .executions(&id)
        .await?
        .iter()
        .map(execution_json)
        .collect();
    Ok(AxumJson(Json::Array(rows)).into_response())
}

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    refuse_when_stopping(&state)?;
    let body = json_body(&body)?;
    let workflow = body
        .get("workflow")
        .and_then(Json::as_str)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| ApiError::bad_request("the body needs `workflow`, a workflow's name"))?;
    let parameters: Map<String, Json> = match body.get("parameters") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`parameters` must be a JSON object of parameter names to values",
            ));
        }
    };
    let allow_custom = match body.get("allow_custom_parameters") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "`allow_custom_parameters` must be true or false",
            ));
        }
    };
    let started = engine::start(&state.store, &id, workflow, parameters, allow_custom).await?;
    let execution = state.store.execution(started.execution()).await?;
    run_in_background(&state, started);
    accepted(execution)
}

/// An execution by id, or 404.
async fn find(state: &AppState, id: &str) -> Result<ExecutionRecord, ApiError> {
    state
        .store
        .execution(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution `{id}` does not exist")))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let execution = find(&state, &id).await?;
    Ok(AxumJson(execution_json(&execution)).into_response())
}

/// Ask a running execution to stop: 202 with the execution, now `cancelling` (or `cancelled`
/// at once when its process is gone); 409 `conflict` when it is not running.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let execution = find(&state, &id).await?;
    if !ACTIVE.contains(&execution.status.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "execution `{id}` ({}) is {}: only a running execution can be cancelled",
                execution.workflow, execution.status
            ),
        ));
    }
    // `engine::cancel` acts on the deployment's active execution, which is this one (one
    // active execution per deployment).
    engine::cancel(&state.store, &execution.deployment_id).await?;
    accepted(state.store.execution(&id).await?)
}
