//! `POST /api/v1/metrics`: a JSON array of points,
//! `[{"deployment": "d1", "node_instance": "web_x1y2z3", "name": "connections", "value": 12.5,
//! "timestamp": 1764000000.0}]` (`timestamp` optional, seconds; `host` accepted for
//! `node_instance`). Answers 202 with how many points were accepted and rejected; a body that
//! is not a JSON array is 400. Also `GET /api/v1/status`: intake counters and runtime figures.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Value as Json, json};

use crate::policy::{Sample, Timestamp};
use crate::server::AppState;
use crate::server::runtime::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/metrics", post(metrics))
        .route("/api/v1/status", get(status))
}

async fn metrics(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let counter = &state.intake.http;
    // Each point is kept as raw text first: a malformed point costs its own line, not the
    // batch, and a well-formed one is read straight into a `Sample` without a JSON tree.
    let points: Vec<&RawValue> = match serde_json::from_slice(&body) {
        Ok(points) => points,
        Err(e) if e.is_data() => {
            counter.malformed("the body is not a JSON array".into());
            return error(
                StatusCode::BAD_REQUEST,
                "bad_metrics",
                "the body must be a JSON array of points: [{\"deployment\", \"node_instance\", \"name\", \"value\", \"timestamp\"?}]",
            );
        }
        Err(e) => {
            counter.malformed(format!("the body is not JSON: {e}"));
            return error(
                StatusCode::BAD_REQUEST,
                "bad_metrics",
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    let now = now();
    let mut samples = Vec::with_capacity(points.len());
    let mut rejected = Vec::new();
    for (i, raw) in points.iter().enumerate() {
        let parsed = fast(raw.get(), now).map_or_else(
            // The slow path says what is wrong with the point.
            || {
                serde_json::from_str::<Json>(raw.get())
                    .map_err(|e| e.to_string())
                    .and_then(|p| sample(&p, now))
            },
            Ok,
        );
        match parsed {
            Ok(s) => samples.push(s),
            Err(why) => {
                counter.malformed(format!("point {i}: {why}"));
                rejected.push(json!({"index": i, "error": why}));
            }
        }
    }
    let accepted = samples.len();
    counter.accept(accepted as u64);
    if !state.runtime.submit(samples).await {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the manager is shutting down",
        );
    }
    rejected.truncate(20);
    (
        StatusCode::ACCEPTED,
        AxumJson(
            json!({"accepted": accepted, "rejected": points.len() - accepted, "errors": rejected}),
        ),
    )
        .into_response()
}

/// A point as collectors send it, read without building a JSON tree.
#[derive(serde::Deserialize)]
struct Point<'a> {
    #[serde(borrow)]
    deployment: Cow<'a, str>,
    #[serde(borrow, default)]
    node_instance: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    value: f64,
    #[serde(default)]
    timestamp: Option<f64>,
}

/// A well-formed point as a sample; `None` for anything else (then [`sample`] says why).
fn fast(raw: &str, now: Timestamp) -> Option<Sample> {
    let p: Point = serde_json::from_str(raw).ok()?;
    let instance = p.node_instance.filter(|i| !i.is_empty()).or(p.host)?;
    let at = p.timestamp.map_or(now, Timestamp);
    let usable = !p.deployment.is_empty()
        && !instance.is_empty()
        && !p.name.is_empty()
        && p.value.is_finite()
        && at.0.is_finite();
    usable.then(|| Sample {
        deployment: p.deployment.into_owned(),
        node_instance: instance.into_owned(),
        name: p.name.into_owned(),
        value: p.value,
        at,
    })
}

/// One point of the array, or why it is not one.
fn sample(p: &Json, now: Timestamp) -> Result<Sample, String> {
    let text = |key: &str| p.get(key).and_then(Json::as_str).filter(|s| !s.is_empty());
    let deployment = text("deployment").ok_or("`deployment` must be a non-empty string")?;
    let instance = text("node_instance")
        .or_else(|| text("host"))
        .ok_or("`node_instance` (or `host`) must be a non-empty string")?;
    let name = text("name").ok_or("`name` must be a non-empty string")?;
    let value = p
        .get("value")
        .and_then(Json::as_f64)
        .filter(|v| v.is_finite())
        .ok_or("`value` must be a finite number")?;
    let at = match p.get("timestamp") {
        None | Some(Json::Null) => now,
        Some(t) => Timestamp(
            t.as_f64()
                .filter(|t| t.is_finite())
                .ok_or("`timestamp` must be a number of seconds")?,
        ),
    };
    Ok(Sample {
        deployment: deployment.to_string(),
        node_instance: instance.to_string(),
        name: name.to_string(),
        value,
        at,
    })
}

async fn status(State(state): State<AppState>) -> Response {
    let stats = state.runtime.stats();
    AxumJson(json!({
        "intake": state.intake.to_json(),
        "policies": {
            "live_deployments": stats.live_deployments.load(Ordering::Relaxed),
            "samples": stats.samples.load(Ordering::Relaxed),
            "unrouted_samples": stats.unrouted.load(Ordering::Relaxed),
            "decisions": stats.decisions.load(Ordering::Relaxed),
            "executions_started": stats.executions_started.load(Ordering::Relaxed),
            "executions_refused": stats.executions_refused.load(Ordering::Relaxed),
        },
        "stopping": stats.stopping.load(Ordering::Relaxed),
    }))
    .into_response()
}

/// The API's error body: `{"error": {"code", "message"}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        AxumJson(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_and_bad_ones_say_why() {
        let now = Timestamp(100.0);
        let s = sample(
            &json!({"deployment": "d", "host": "web_abc123", "name": "cpu", "value": 3}),
            now,
        )
        .unwrap();
        assert_eq!(
            (s.node_instance.as_str(), s.value, s.at),
            ("web_abc123", 3.0, now)
        );
        let s = sample(&json!({"deployment": "d", "node_instance": "i", "name": "cpu", "value": 1.5, "timestamp": 7.25}), now).unwrap();
        assert_eq!(s.at, Timestamp(7.25));
        assert!(
            sample(
                &json!({"deployment": "d", "node_instance": "i", "name": "cpu", "value": "x"}),
                now
            )
            .unwrap_err()
            .contains("value")
        );
        assert!(
            sample(
                &json!({"node_instance": "i", "name": "cpu", "value": 1}),
                now
            )
            .unwrap_err()
            .contains("deployment")
        );
        assert!(
            sample(&json!({"deployment": "d", "name": "cpu", "value": 1}), now)
                .unwrap_err()
                .contains("node_instance")
        );
        assert!(sample(&json!({"deployment": "d", "node_instance": "i", "name": "cpu", "value": 1, "timestamp": "soon"}), now).unwrap_err().contains("timestamp"));
        // The fast path reads the same points the same way, and leaves bad ones to `sample`.
        for p in [
            json!({"deployment": "d", "host": "web_abc123", "name": "cpu", "value": 3}),
            json!({"deployment": "d", "node_instance": "i", "name": "cpu", "value": 1.5, "timestamp": 7.25}),
            json!({"deployment": "d", "node_instance": "", "host": "h", "name": "cpu", "value": 2}),
        ] {
            assert_eq!(
                fast(&p.to_string(), now),
                Some(sample(&p, now).unwrap()),
                "{p}"
            );
        }
        for p in [
            json!({"deployment": "d", "node_instance": "i", "name": "cpu", "value": "x"}),
            json!({"deployment": "", "node_instance": "i", "name": "cpu", "value": 1}),
            json!({"deployment": "d", "name": "cpu", "value": 1}),
            json!({"deployment": "d", "node_instance": "i", "name": "cpu", "value": 1, "timestamp": "soon"}),
        ] {
            assert_eq!(fast(&p.to_string(), now), None, "{p}");
            assert!(sample(&p, now).is_err(), "{p}");
        }
    }
}
