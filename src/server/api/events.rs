//! `GET /api/v1/deployments/{id}/events?after=SEQ&limit=N&execution_id=X&event_type=T`: a
//! page of a deployment's events, oldest first. Each event has the fields of `windlass events
//! ID --json` plus its `seq`; the page says `next_after` (the `after` of the next page) and
//! whether `more` follow, so a client pages — or follows a running execution — by asking
//! again with `after=next_after`.

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::ApiError;
use crate::server::AppState;
use crate::store::EventFilter;

/// Events per page unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
    execution_id: Option<String>,
    event_type: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let number = |name: &str, text: &Option<String>| -> Result<Option<i64>, ApiError> {
        text.as_deref()
            .map(|t| {
                t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{name}` must be a non-negative integer, got {t:?}"
                    ))
                })
            })
            .transpose()
    };
    let after = number("after", &query.after)?.unwrap_or(0);
    let limit = match number("limit", &query.limit)? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "`limit` must be between 1 and {MAX_LIMIT}, got {n}"
            )));
        }
    };
    state.store.deployment_frame(&id).await?;
    let filter = EventFilter {
        after,
        limit,
        execution_id: query.execution_id.filter(|s| !s.is_empty()),
        event_type: query.event_type.filter(|s| !s.is_empty()),
    };
    let (events, more) = state.store.events_page(&id, &filter).await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    let rows: Vec<Json> = events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "timestamp": e.timestamp,
                "execution_id": e.execution_id,
                "event_type": e.event_type,
                "node_instance_id": e.node_instance_id,
                "operation": e.operation,
                "message": e.message,
            })
        })
        .collect();
    Ok(AxumJson(json!({"events": rows, "next_after": next_after, "more": more})).into_response())
}
