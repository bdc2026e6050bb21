//! The manager, `windlass serve`: the same store and engine as the CLI, behind HTTP.
//!
//! # Overview
//! One process owns three things: the HTTP front door (axum; `router`), the metric intakes
//! (`intake`: HTTP `POST /api/v1/metrics`, Graphite plaintext over TCP, AMQP) and the policy
//! runtime (`runtime`), a single task that holds every installed deployment's [`PolicySet`]
//! and is the only one that evaluates them. Intakes only parse: they hand [`Sample`]s to the
//! runtime through a bounded channel and count what they could not parse. The runtime records
//! every decision as an event of its deployment and starts the workflow of an acting decision
//! as an ordinary execution, walked in a background task like any other.
//!
//! # Data flow
//! collector ──line/JSON/message──▶ intake (parse, count malformed) ──Sample──▶ runtime
//! ──Decision──▶ store event; acting ──▶ `engine::start` ──▶ execution walked in the background.
//! Every second the runtime also re-reads which deployments are installed, so a deployment the
//! CLI installs while `serve` runs is live within a second, and one uninstalled stops.
//!
//! # Shutdown
//! SIGTERM or SIGINT: the listeners stop taking connections and the runtime stops starting
//! executions. Executions already walking are left as they are when the process exits: they
//! are recorded as started by a process that is gone, which is what `windlass resume` finishes.
//!
//! [`PolicySet`]: crate::policy::PolicySet
//! [`Sample`]: crate::policy::Sample

pub mod api;
pub mod auth;
pub mod intake;
pub mod runtime;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use crate::engine;
use crate::store::Store;

/// How `windlass serve` runs.
#[derive(Clone)]
pub struct Settings {
    /// The REST API and HTTP metrics intake.
    pub listen: SocketAddr,
    /// Graphite plaintext intake, when asked for.
    pub graphite: Option<SocketAddr>,
    /// How a Graphite path maps to deployment, instance and metric.
    pub graphite_template: intake::graphite::Template,
    /// AMQP intake (`amqp://…`), when asked for.
    pub amqp: Option<String>,
    /// Seconds without a metric from an instance before `host_failure` fires.
    pub host_failure_ttl: Duration,
    /// How executions started by the manager run.
    pub options: engine::Options,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("AMQP intake: {0}")]
    Amqp(String),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub runtime: runtime::Handle,
    pub intake: Arc<intake::Counters>,
    /// Up once SIGTERM or SIGINT arrived: the API starts no new executions.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// How executions the API starts run.
    pub options: engine::Options,
    /// When each bearer token's use was last written (`auth`).
    pub seen: Arc<auth::Seen>,
}

/// Run the manager until SIGTERM or SIGINT.
pub async fn serve(store: Store, settings: Settings) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: settings.listen,
            source,
        })?;
    let shutdown = shutdown_signal();
    // `windlass cancel` signals the process that runs an execution (SIGUSR1), which may come
    // before the execution's walk listens for it: with a listener installed from the start,
    // a signal never takes SIGUSR1's default action (ending the manager).
    let _cancel_signals =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            .map_err(ServerError::Http)?;
    let counters = Arc::new(intake::Counters::default());
    let runtime = runtime::spawn(store.clone(), &settings, shutdown.clone());
    let state = AppState {
        store,
        runtime: runtime.clone(),
        intake: counters.clone(),
        shutdown: shutdown.clone(),
        options: settings.options.clone(),
        seen: Arc::default(),
    };
    if let Some(addr) = settings.graphite {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        note(&format!(
            "graphite intake on {}",
            listener.local_addr().unwrap_or(addr)
        ));
        tokio::spawn(intake::graphite::serve(
            listener,
            settings.graphite_template.clone(),
            runtime.clone(),
            counters.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(url) = &settings.amqp {
        intake::amqp::start(url, runtime.clone(), counters.clone(), shutdown.clone())
            .await
            .map_err(ServerError::Amqp)?;
        note("amqp intake on exchange cloudify-monitoring");
    }
    let local = listener.local_addr().unwrap_or(settings.listen);
    note(&format!("listening on http://{local}"));
    let app = router(state);
    let mut stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            until_set(&mut stop).await;
        })
        .await
        .map_err(ServerError::Http)?;
    runtime.stopped().await;
    Ok(())
}

/// Every route: health, status, metrics intake, and the REST API. All but `/healthz` need a
/// bearer token (`auth`).
pub fn router(state: AppState) -> Router {
    let protected = intake::http::routes().merge(api::routes()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), auth::require_token),
    );
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(protected)
        .with_state(state)
}

/// A flag that turns true on SIGTERM or SIGINT; every long-lived task watches it.
fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        note("shutting down: no new executions; running ones stay resumable");
        let _ = tx.send(true);
    });
    rx
}

/// Wait until a shutdown flag turns true (or its sender is gone).
pub(crate) async fn until_set(flag: &mut tokio::sync::watch::Receiver<bool>) {
    while !*flag.borrow_and_update() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}

/// One line on stderr for the operator.
pub(crate) fn note(message: &str) {
    eprintln!("windlass serve: {message}");
}
