//! Bearer tokens on every route but `GET /healthz`: a request must carry
//! `Authorization: Bearer TOKEN` naming a token `windlass tokens create` made and nobody
//! revoked. The check is the store's ([`Store::authenticate`]: the presented token is hashed
//! and compared with every stored hash in constant time), made on every request, so a revoked
//! token is refused from its next request on.
//!
//! A refusal is 401 with `WWW-Authenticate: Bearer` and the API's error body; it never
//! echoes what was presented. When a token was last used is written at most once a minute per
//! token and off the request's path, so a collector posting metrics many times a second does
//! not queue writes on the store.
//!
//! [`Store::authenticate`]: crate::store::Store::authenticate

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::api::error;

/// How often a token's `last_used_at` is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// When this process last wrote each token's `last_used_at`.
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashMap<String, Instant>>);

impl Seen {
    /// True when `name`'s use should be written now (and notes that it is).
    fn due(&self, name: &str) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        match seen.get(name) {
            Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
            _ => {
                seen.insert(name.to_string(), now);
                true
            }
        }
    }
}

/// The middleware: pass the request on when it carries a valid token, else 401.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(presented) = presented else {
        return refuse(
            "this endpoint needs `Authorization: Bearer TOKEN` (`windlass tokens create NAME` makes one)",
        );
    };
    match state.store.authenticate(presented).await {
        Ok(Some(name)) => {
            if state.seen.due(&name) {
                let store = state.store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_token(&name).await {
                        super::note(&format!("cannot record the use of token `{name}`: {e}"));
                    }
                });
            }
            next.run(request).await
        }
        Ok(None) => refuse("the bearer token is not valid (unknown or revoked)"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("cannot check the token: {e}"),
        ),
    }
}

fn refuse(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
