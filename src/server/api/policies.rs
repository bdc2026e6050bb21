//! `GET /api/v1/deployments/{id}/policies`: each policy's live state and last decisions as the
//! policy runtime last saved them (at most half a second old while `serve` runs), the JSON of
//! `windlass policies ID --json`: `{"updated_at", "policies": […]}`.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use crate::server::AppState;

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.store.deployment_frame(&id).await?;
    let out = match state.store.policy_state(&id).await? {
        Some(s) => json!({"updated_at": s.updated_at, "policies": s.snapshot}),
        None => json!({"updated_at": null, "policies": []}),
    };
    Ok(AxumJson(out).into_response())
}
