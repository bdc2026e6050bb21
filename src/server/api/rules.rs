//! Autoscaling rules: `POST /api/v1/rules` (201 with the rule), `GET /api/v1/rules` (every
//! rule, or `?deployment=ID`'s), `GET`, `PUT` (its new settings; 200) and `DELETE` (204)
//! `/api/v1/rules/{name}`.
//!
//! A body is the rule as JSON, `{name, deployment, target, metric, scale_out_above,
//! scale_in_below?, window, min, max, step?, cooldown?}` (`PUT` takes the name from the path).
//! Every change is checked by `engine::rules`, as `windlass rules` is: 400 `bad_request` with
//! the reason, 404 for an unknown deployment or rule, 409 `conflict` for a name in use. A rule
//! is answered as stored, with `created_at` and the names of the policies it becomes (what
//! `GET /api/v1/deployments/{id}/policies` shows once the manager picked it up, within a
//! second).

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{ApiError, json_body};
use crate::engine;
use crate::policy::Rule;
use crate::server::AppState;
use crate::store::RuleRecord;

fn rule_json(r: &RuleRecord) -> Json {
    r.to_json()
}

/// A body read as a rule, or a 400 that says which field is wrong.
fn rule_of(body: Json) -> Result<Rule, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a rule: {e}")))
}

pub async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let rule = rule_of(json_body(&body)?)?;
    let stored = engine::rules::create(&state.store, &rule).await?;
    Ok((StatusCode::CREATED, AxumJson(rule_json(&stored))).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    deployment: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if let Some(d) = &query.deployment {
        state.store.deployment_frame(d).await?;
    }
    let rows: Vec<Json> = state
        .store
        .rules(query.deployment.as_deref())
        .await?
        .iter()
        .map(rule_json)
        .collect();
    Ok(AxumJson(Json::Array(rows)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let r = state.store.rule(&name).await?;
    Ok(AxumJson(rule_json(&r)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut body = json_body(&body)?;
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    match fields.get("name") {
        None => {
            fields.insert("name".into(), json!(name));
        }
        Some(Json::String(n)) if *n == name => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the body names the rule {other}, the path `{name}`: a rule cannot be renamed (delete it and create another)"
            )));
        }
    }
    let rule = rule_of(body)?;
    let stored = engine::rules::update(&state.store, &rule).await?;
    Ok(AxumJson(rule_json(&stored)).into_response())
}

pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.store.delete_rule(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
