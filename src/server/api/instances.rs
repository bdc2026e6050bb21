//! `GET /api/v1/deployments/{id}/instances`: the node instances, as `windlass instances ID
//! --json` prints them (`[{"id","node_id","host_id","state","runtime_properties",
//! "relationships":[{"type","target_name","target_id"}]}]`, in plan order).

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::ApiError;
use crate::server::AppState;

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rows = crate::engine::instances_json(&state.store, &id).await?;
    Ok(AxumJson(Json::Array(rows)).into_response())
}
