//! `GET /api/v1/deployments/{id}/outputs`: `{"name": value}` with runtime functions resolved,
//! as `windlass outputs ID --json` (an output that cannot be resolved shows `<error: …>`).

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::ApiError;
use crate::engine;
use crate::server::AppState;

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let outputs = engine::outputs(&state.store, &id).await?;
    Ok(AxumJson(Json::Object(outputs)).into_response())
}
