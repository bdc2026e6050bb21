//! Calls to OpenStack services: the HTTP client, errors, bounded retries and re-authentication.
//!
//! A [`Session`] is one operation's view of a cloud: its configuration, an HTTP client (reqwest
//! over rustls with the aws-lc-rs provider; the system's roots plus `ca_cert`, or no
//! verification when `insecure: true` is written) and the Keystone token it uses.
//! [`Session::call`] sends one request to a service of the catalog with `X-Auth-Token`:
//! - 401: the token is forgotten, a new one is asked for once, the request sent again;
//! - 409, 429, 500, 502, 503, 504: sent again after a growing pause (honouring `Retry-After`),
//!   at most [`ATTEMPTS`] times in all; other 4xx answers are ours to fix and never retried;
//! - a connection that could not be made is tried again the same way; a request that timed out
//!   (every request has one) is retried only when it reads.
//!
//! [`Session::send_unauthenticated`] (Keystone) shares that retry loop.
//!
//! Nova's and Neutron's resources share one shape ([`Kind`]): [`Session::create`],
//! [`Session::read`], [`Session::update`] and [`Session::delete`] are those requests for any
//! kind, a 404 being `None` or `false`.
//!
//! Clients are shared per TLS setting for the life of the process, so the connections of one
//! cloud are reused across operations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value as Json;

use super::config::{ClientConfig, Secrets};
use super::keystone::{self, Token};
use crate::plugins::OpError;
use crate::plugins::rest::{error_chain, percent_encode};

/// Attempts of one request when the service answers with a retryable status.
pub const ATTEMPTS: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Why an OpenStack operation failed. Messages never hold a password, secret or token.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    #[error("{0}")]
    Config(String),
    #[error("Keystone ({url}) refused to authenticate: {message} ({code})")]
    Auth {
        url: String,
        code: u16,
        message: String,
    },
    #[error(
        "the service catalog has no {service} endpoint for region {region} and interface {interface}"
    )]
    Catalog {
        service: String,
        region: String,
        interface: String,
    },
    /// A service refused a request.
    #[error("{service} refused to {action}: {message} ({code})")]
    Api {
        service: &'static str,
        action: String,
        code: u16,
        message: String,
    },
    /// No answer: connection, TLS, timeout.
    #[error("cannot {action}: {message}")]
    Transport { action: String, message: String },
    /// An answer that is not what the API reference says.
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
    /// A server went to ERROR.
    #[error("server {id} went to ERROR: {fault}")]
    ServerError { id: String, fault: String },
    #[error("{what} was not {state} after {}s (last seen: {last})", waited.as_secs())]
    Timeout {
        what: String,
        state: &'static str,
        waited: Duration,
        last: String,
    },
    /// Something the blueprint must say differently.
    #[error("{0}")]
    Blueprint(String),
}

impl OsError {
    /// How the engine treats it: what retrying cannot fix is not retried.
    pub fn into_op_error(self, secrets: &Secrets) -> OpError {
        let message = secrets.mask(&self.to_string());
        match &self {
            OsError::Api { code, .. } if is_retryable(*code) => OpError::Failed(message),
            OsError::Transport { .. } | OsError::Timeout { .. } => OpError::Failed(message),
            _ => OpError::NonRecoverable(message),
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            OsError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn is_retryable(code: u16) -> bool {
    matches!(code, 409 | 429 | 500 | 502 | 503 | 504)
}

/// The human message of an error body: Nova's `{"itemNotFound": {"message": …}}`, Neutron's
/// `{"NeutronError": {"message": …}}`, Keystone's `{"error": {"message": …}}`, or the text.
pub fn message_of(body: &Json) -> String {
    if let Some(m) = body.get("message").and_then(Json::as_str) {
        return m.to_string();
    }
    if let Json::Object(map) = body {
        for v in map.values() {
            if let Some(m) = v.get("message").and_then(Json::as_str) {
                return m.to_string();
            }
        }
    }
    match body {
        Json::String(s) => s.chars().take(300).collect(),
        Json::Null => "no details".to_string(),
        other => other.to_string().chars().take(300).collect(),
    }
}

/// Which service of the catalog a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Compute,
    Network,
}

impl Service {
    fn catalog_type(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Network => "network",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Compute => "Nova",
            Service::Network => "Neutron",
        }
    }
}

/// One kind of resource of a service's API. Nova's and Neutron's have the same shape: `POST
/// /PATH` with `{SINGULAR: …}`, `GET`/`PUT`/`DELETE /PATH/{id}`, lists under the plural key;
/// [`Session::create`], [`Session::read`], [`Session::update`] and [`Session::delete`] serve them
/// all.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub service: Service,
    /// The URL segment of the collection (`security-groups`).
    pub path: &'static str,
    /// The body key of one (`security_group`).
    pub singular: &'static str,
    /// For messages (`security group`).
    pub label: &'static str,
}

impl Kind {
    pub const fn new(
        service: Service,
        path: &'static str,
        singular: &'static str,
        label: &'static str,
    ) -> Kind {
        Kind {
            service,
            path,
            singular,
            label,
        }
    }

    /// The resource in an answer about one (under its singular key).
    fn take(self, body: Json) -> Result<Json, OsError> {
        let what = format!("{}'s {}", self.service.name(), self.label);
        take(body, self.singular, &what)
    }

    /// The body key of a list: the path with `_` for `-` (`security_groups`).
    pub fn plural(self) -> String {
        self.path.replace('-', "_")
    }
}

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Json,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One operation's connection to a cloud.
pub struct Session {
    pub config: ClientConfig,
    pub secrets: Secrets,
    http: reqwest::Client,
    token: Mutex<Option<Arc<Token>>>,
    /// Requests sent (attempts included), for the operation's summary.
    pub requests: std::sync::atomic::AtomicU32,
}

impl Session {
    pub fn new(config: ClientConfig, secrets: Secrets) -> Result<Session, OsError> {
        let http = client(&config)?;
        Ok(Session {
            config,
            secrets,
            http,
            token: Mutex::new(None),
            requests: Default::default(),
        })
    }

    /// A token, kept or new.
    async fn token(&self) -> Result<Arc<Token>, OsError> {
        if let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(t);
        }
        let token = match keystone::cached(&self.config) {
            Some(t) => t,
            None => {
                // Operations that start together (or meet the same expired token) wait for
                // one authentication instead of each asking for a token.
                let _one_at_a_time = keystone::authenticating().lock().await;
                match keystone::cached(&self.config) {
                    Some(t) => t,
                    None => {
                        let t = Arc::new(keystone::authenticate(self).await?);
                        keystone::keep(&self.config, t.clone());
                        t
                    }
                }
            }
        };
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(token)
    }

    fn drop_token(&self, token: &Arc<Token>) {
        keystone::forget(&self.config, token);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// `POST` to Keystone without a token, with the retries of [`Session::call`].
    pub async fn send_unauthenticated(
        &self,
        url: &str,
        body: &Json,
    ) -> Result<(u16, HeaderMap, Json), OsError> {
        let action = "authenticate to Keystone";
        let mut attempt = 0;
        let response = self
            .send(
                || self.http.post(url).json(body),
                &mut attempt,
                false,
                action,
            )
            .await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body(response, action, &self.secrets).await?;
        Ok((status, headers, body))
    }

    /// Send `method path` to `service` (path relative to its endpoint) and return the answer,
    /// whatever its status once retries are spent: callers decide what 404 means.
    pub async fn call(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Option<&Json>,
        action: &str,
    ) -> Result<Reply, OsError> {
        let mut token = self.token().await?;
        let mut reauthenticated = false;
        // Counted across a re-authentication: a 401 does not buy more retries.
        let mut attempt = 0;
        loop {
            let base = token.endpoint(
                service.catalog_type(),
                self.config.region.as_deref(),
                &self.config.interface,
            )?;
            let base = match service {
                Service::Network if !base.ends_with("/v2.0") => format!("{base}/v2.0"),
                _ => base,
            };
            let url = format!("{base}{path}");
            let request = || {
                let request = self
                    .http
                    .request(method.clone(), &url)
                    .header("X-Auth-Token", token.value())
                    .header("Accept", "application/json");
                match body {
                    Some(b) => request.json(b),
                    None => request,
                }
            };
            let response = self
                .send(request, &mut attempt, method == Method::GET, action)
                .await?;
            let status = response.status().as_u16();
            if status == 401 && !reauthenticated {
                // The token expired or was revoked: one new token, then the same request.
                reauthenticated = true;
                self.drop_token(&token);
                token = self.token().await?;
                continue;
            }
            let body = read_body(response, action, &self.secrets).await?;
            return Ok(Reply { status, body });
        }
    }

    /// Send what `request` builds until the answer is not one to retry or `attempt` (counted
    /// by the caller, across calls) reaches [`ATTEMPTS`]. A connection that could not be made
    /// is tried again; a request that timed out only when `retry_timeouts` (reads).
    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        attempt: &mut u32,
        retry_timeouts: bool,
        action: &str,
    ) -> Result<reqwest::Response, OsError> {
        loop {
            *attempt += 1;
            self.count();
            match request().send().await {
                Ok(response) => {
                    if is_retryable(response.status().as_u16()) && *attempt < ATTEMPTS {
                        pause(*attempt, response.headers()).await;
                        continue;
                    }
                    return Ok(response);
                }
                Err(e)
                    if *attempt < ATTEMPTS
                        && (e.is_connect() || (e.is_timeout() && retry_timeouts)) =>
                {
                    pause(*attempt, &HeaderMap::new()).await;
                }
                Err(e) => return Err(self.transport(action, &e)),
            }
        }
    }

    /// [`Session::call`], with any answer but 2xx an [`OsError::Api`].
    pub async fn expect(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Option<&Json>,
        action: &str,
    ) -> Result<Json, OsError> {
        let reply = self.call(service, method, path, body, action).await?;
        if reply.ok() {
            Ok(reply.body)
        } else {
            Err(self.refused(service, action, &reply))
        }
    }

    /// `POST /PATH` of `kind` with `body` → the new resource.
    pub async fn create(&self, kind: Kind, body: &Json) -> Result<Json, OsError> {
        let action = format!("create a {}", kind.label);
        let path = format!("/{}", kind.path);
        let reply = self
            .expect(kind.service, Method::POST, &path, Some(body), &action)
            .await?;
        let what = format!("{}'s answer to {} create", kind.service.name(), kind.label);
        take(reply, kind.singular, &what)
    }

    /// `GET /PATH/{id}` of `kind`; `None` when there is none (404).
    pub async fn read(&self, kind: Kind, id: &str) -> Result<Option<Json>, OsError> {
        let found = self.one(kind, Method::GET, "read", id, None).await?;
        found.map(|b| kind.take(b)).transpose()
    }

    /// `PUT /PATH/{id}` of `kind` with `{SINGULAR: fields}` → the resource; `None` when there is
    /// none.
    pub async fn update(
        &self,
        kind: Kind,
        id: &str,
        fields: Json,
    ) -> Result<Option<Json>, OsError> {
        let body = serde_json::json!({ kind.singular: fields });
        let found = self
            .one(kind, Method::PUT, "update", id, Some(&body))
            .await?;
        found.map(|b| kind.take(b)).transpose()
    }

    /// `DELETE /PATH/{id}` of `kind`; `false` when it is already gone (404).
    pub async fn delete(&self, kind: Kind, id: &str) -> Result<bool, OsError> {
        let found = self.one(kind, Method::DELETE, "delete", id, None).await?;
        Ok(found.is_some())
    }

    /// `method` on one resource (`verb` for messages): the answer's body, `None` on 404, any
    /// other answer but 2xx an [`OsError::Api`].
    async fn one(
        &self,
        kind: Kind,
        method: Method,
        verb: &str,
        id: &str,
        body: Option<&Json>,
    ) -> Result<Option<Json>, OsError> {
        let action = format!("{verb} {} {id}", kind.label);
        let path = format!("/{}/{}", kind.path, percent_encode(id));
        let reply = self
            .call(kind.service, method, &path, body, &action)
            .await?;
        match reply.status {
            404 => Ok(None),
            _ if reply.ok() => Ok(Some(reply.body)),
            _ => Err(self.refused(kind.service, &action, &reply)),
        }
    }

    pub fn refused(&self, service: Service, action: &str, reply: &Reply) -> OsError {
        OsError::Api {
            service: service.name(),
            action: action.to_string(),
            code: reply.status,
            message: self.secrets.mask(&message_of(&reply.body)),
        }
    }

    fn transport(&self, action: &str, e: &reqwest::Error) -> OsError {
        OsError::Transport {
            action: action.to_string(),
            message: self.secrets.mask(&error_chain(e)),
        }
    }

    fn count(&self) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The one resource of `list` named exactly `name`, if any: several is an error, as only ids
/// tell them apart.
pub fn named(kind: Kind, name: &str, list: Vec<Json>) -> Result<Option<Json>, OsError> {
    let mut found: Vec<Json> = list
        .into_iter()
        .filter(|r| r.get("name").and_then(Json::as_str) == Some(name))
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(OsError::Blueprint(format!(
            "{n} {}s are named {name:?}: name the one to use by its id",
            kind.label
        ))),
    }
}

/// The object under `key` of an answer (`{"server": {…}}`).
pub fn take(mut body: Json, key: &str, what: &str) -> Result<Json, OsError> {
    body.get_mut(key)
        .filter(|v| v.is_object())
        .map(Json::take)
        .ok_or_else(|| OsError::Protocol {
            what: what.to_string(),
            message: format!("no `{key}` object in the answer"),
        })
}

async fn read_body(
    response: reqwest::Response,
    action: &str,
    secrets: &Secrets,
) -> Result<Json, OsError> {
    let bytes = response.bytes().await.map_err(|e| OsError::Transport {
        action: action.to_string(),
        message: secrets.mask(&error_chain(&e)),
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Null);
    }
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned())))
}

/// Wait before attempt `attempt + 1`: `Retry-After` (seconds, at most [`MAX_PAUSE`]) or a
/// doubling pause.
async fn pause(attempt: u32, headers: &HeaderMap) {
    let asked = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let doubling = FIRST_PAUSE.saturating_mul(1 << (attempt - 1).min(8));
    tokio::time::sleep(asked.unwrap_or(doubling).min(MAX_PAUSE)).await;
}

/// The shared client for a configuration's TLS settings.
fn client(config: &ClientConfig) -> Result<reqwest::Client, OsError> {
    type Clients = Mutex<HashMap<(bool, Option<String>, Duration), reqwest::Client>>;
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    crate::plugins::rest::install_crypto_provider();
    let key = (config.insecure, config.ca_pem.clone(), config.timeout);
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("windlass/", env!("CARGO_PKG_VERSION")));
    if config.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if let Some(pem) = &config.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            OsError::Config(format!("`client_config.ca_cert` is not a PEM bundle: {e}"))
        })?;
        if certs.is_empty() {
            return Err(OsError::Config(
                "`client_config.ca_cert` holds no certificate".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    let c = builder.build().map_err(|e| {
        OsError::Config(format!("cannot make the HTTP client: {}", error_chain(&e)))
    })?;
    clients.insert(key, c.clone());
    Ok(c)
}
