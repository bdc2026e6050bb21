//! The manager's REST API over the store and the engine: one file per resource
//! (`deployments`, `instances`, `outputs`, `executions`, `events`, `policies`, `rules`), the OpenAPI
//! document of every route (`openapi.json`, hand-written, served at `GET /openapi.json`), and
//! uploaded blueprint archives (`archive`).
//!
//! # Data flow
//! Reads go to the store (and `engine::outputs`) and come back as the JSON `windlass … --json`
//! prints. Anything that runs a workflow is checked and recorded as an execution before the
//! answer ([`engine::start`] and its siblings), so a refusal — busy, not installed, a bad
//! parameter — is the response, and an accepted request answers 202 with the execution while
//! the workflow is walked in a task of its own ([`run_in_background`]): a client follows it
//! through `GET /api/v1/executions/{id}` and the events. Walks started here run exactly as the
//! CLI's do; a manager that stops leaves them interrupted, for `windlass resume`.
//!
//! # Errors
//! Every failure is `{"error": {"code", "message"}}` with a stable code ([`ApiError`]); the
//! mapping from store and engine errors to a status and a code is in one place
//! (`impl From<EngineError> for ApiError`). Once the manager is shutting down, anything that
//! would start an execution is refused with 503 `shutting_down` ([`refuse_when_stopping`]).
//!
//! # Routes
//! [`ROUTES`] is the table the router is built from and the test holds `openapi.json` to: a
//! route cannot be added to one without the other being checked.

pub mod archive;
mod deployments;
mod events;
mod executions;
mod instances;
mod outputs;
mod policies;
pub mod rules;

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json as AxumJson, Router};
use serde_json::{Value as Json, json};

use super::AppState;
pub use super::intake::http::error;
use crate::blueprint;
use crate::engine::{self, EngineError};
use crate::store::StoreError;

/// The OpenAPI 3.1 document of every route, kept next to them.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `(method, path)` of the routes the metric intake adds (`intake::http::routes`): in the
/// router and in `openapi.json` like the API's own.
pub const INTAKE_ROUTES: &[(&str, &str)] =
    &[("post", "/api/v1/metrics"), ("get", "/api/v1/status")];

/// Every API route: method, path (axum's `{param}` syntax, the same as OpenAPI's) and handler.
#[allow(clippy::type_complexity)]
pub const ROUTES: &[(&str, &str, fn() -> MethodRouter<AppState>)] = &[
    ("get", "/openapi.json", || get(openapi)),
    ("get", "/api/v1/deployments", || get(deployments::list)),
    ("get", "/api/v1/deployments/{id}", || get(deployments::get)),
    ("put", "/api/v1/deployments/{id}", || {
        put(deployments::create).layer(axum::extract::DefaultBodyLimit::max(
            deployments::ARCHIVE_LIMIT,
        ))
    }),
    ("delete", "/api/v1/deployments/{id}", || {
        delete(deployments::remove)
    }),
    ("get", "/api/v1/deployments/{id}/instances", || {
        get(instances::list)
    }),
    ("get", "/api/v1/deployments/{id}/outputs", || {
        get(outputs::get)
    }),
    ("get", "/api/v1/deployments/{id}/executions", || {
        get(executions::list)
    }),
    ("post", "/api/v1/deployments/{id}/executions", || {
        post(executions::start)
    }),
    ("get", "/api/v1/executions/{id}", || get(executions::get)),
    ("post", "/api/v1/executions/{id}/cancel", || {
        post(executions::cancel)
    }),
    ("get", "/api/v1/deployments/{id}/events", || {
        get(events::list)
    }),
    ("get", "/api/v1/deployments/{id}/policies", || {
        get(policies::get)
    }),
    ("post", "/api/v1/rules", || post(rules::create)),
    ("get", "/api/v1/rules", || get(rules::list)),
    ("get", "/api/v1/rules/{name}", || get(rules::get)),
    ("put", "/api/v1/rules/{name}", || put(rules::update)),
    ("delete", "/api/v1/rules/{name}", || delete(rules::remove)),
];

/// The API's routes (without authentication: the caller layers it).
pub fn routes() -> Router<AppState> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler())
        })
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// A failure as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More for the client to show (a blueprint's diagnostics, one per line).
    pub details: Option<Json>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            body["details"] = details;
        }
        (self.status, AxumJson(json!({ "error": body }))).into_response()
    }
}

/// The one place store and engine errors become statuses and codes.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let message = e.to_string();
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Blueprint(blueprint::Error::Invalid(report)) => ApiError {
                details: Some(Json::String(report.plain())),
                ..ApiError::bad_request(message)
            },
            EngineError::Blueprint(_)
            | EngineError::Snapshot(_)
            | EngineError::Plugins(_)
            | EngineError::Rule(_)
            | EngineError::Workflow(_) => ApiError::bad_request(message),
            EngineError::NotInstalled(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_installed", message)
            }
            EngineError::Secrets(crate::secrets::SecretError::Store(s)) => s.into(),
            // A missing secret is the caller's to set; a key problem is the manager's.
            EngineError::Secrets(crate::secrets::SecretError::Missing(_)) => {
                ApiError::new(StatusCode::CONFLICT, "missing_secrets", message)
            }
            EngineError::Secrets(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "secrets", message)
            }
            EngineError::Io(_) | EngineError::Failed { .. } | EngineError::Cancelled { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let message = e.to_string();
        match e {
            StoreError::NoDeployment(_) | StoreError::NoToken(_) | StoreError::NoRule(_) => {
                ApiError::not_found(message)
            }
            StoreError::Exists(_) | StoreError::TokenExists(_) | StoreError::RuleExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::Busy { .. } | StoreError::Interrupted { .. } => {
                ApiError::new(StatusCode::CONFLICT, "busy", message)
            }
            StoreError::Source { .. } | StoreError::Changed(_) => ApiError::bad_request(message),
            StoreError::Open { .. }
            | StoreError::Db(_)
            | StoreError::Bulk { .. }
            | StoreError::Dir { .. }
            | StoreError::Create { .. }
            | StoreError::Unsupported
            | StoreError::Corrupt(..)
            | StoreError::Random(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

/// 503 `shutting_down` once the manager stops taking executions (SIGTERM or SIGINT).
pub fn refuse_when_stopping(state: &AppState) -> Result<(), ApiError> {
    if *state.shutdown.borrow() || state.runtime.stats().stopping.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the manager is shutting down and starts no new executions",
        ));
    }
    Ok(())
}

/// Walk a recorded execution in a task of its own; its outcome is in the store.
pub fn run_in_background(state: &AppState, started: engine::Started) {
    let store = state.store.clone();
    let options = state.options.clone();
    tokio::spawn(async move {
        let execution = started.execution().to_string();
        if let Err(e) = started.run(&store, &options).await {
            super::note(&format!("execution {execution}: {e}"));
        }
    });
}

/// An execution as the API shows it (the fields of `windlass executions --json`, with its
/// deployment).
pub fn execution_json(e: &crate::store::ExecutionRecord) -> Json {
    json!({
        "id": e.id,
        "deployment_id": e.deployment_id,
        "workflow": e.workflow,
        "parameters": e.parameters,
        "status": e.status,
        "created_at": e.created_at,
        "ended_at": e.ended_at,
        "error": e.error,
    })
}

/// A request body read as JSON, or a 400 that says why.
pub fn json_body(body: &[u8]) -> Result<Json, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the router is in `openapi.json` with its method, and nothing else is.
    #[test]
    fn openapi_documents_every_route() {
        let doc: Json = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
        let paths = doc["paths"].as_object().expect("paths");
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .chain(
                INTAKE_ROUTES
                    .iter()
                    .map(|(m, p)| (m.to_string(), p.to_string())),
            )
            .chain([("get".to_string(), "/healthz".to_string())])
            .collect();
        routed.sort();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
                    .map(move |m| (m.clone(), p.clone()))
            })
            .collect();
        documented.sort();
        assert_eq!(routed, documented);
        // Each operation documents its error body, and every protected one its bearer token.
        for (m, p) in &documented {
            let op = &paths[p][m];
            assert!(op["responses"].is_object(), "{m} {p} has responses");
            assert!(op["operationId"].is_string(), "{m} {p} has an operationId");
            if p != "/healthz" {
                assert!(op["responses"]["401"].is_object(), "{m} {p} documents 401");
            }
        }
    }

    #[test]
    fn errors_map_to_stable_codes() {
        let code = |e: EngineError| ApiError::from(e).code;
        assert_eq!(
            code(StoreError::NoDeployment("d".into()).into()),
            "not_found"
        );
        assert_eq!(code(StoreError::Exists("d".into()).into()), "conflict");
        assert_eq!(
            code(
                StoreError::Interrupted {
                    deployment: "d".into(),
                    execution: "x".into(),
                    workflow: "install".into()
                }
                .into()
            ),
            "busy"
        );
        assert_eq!(code(EngineError::NotInstalled("n".into())), "not_installed");
        assert_eq!(code(EngineError::Workflow("w".into())), "bad_request");
        assert_eq!(code(EngineError::Io("i".into())), "internal");
    }
}
