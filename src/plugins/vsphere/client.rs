//! The vSphere Automation REST API client (`/api`, vSphere 7.0 and later) over reqwest with
//! rustls and the aws-lc-rs provider.
//!
//! # Sessions
//! `POST /api/session` with HTTP basic authentication answers `201` and the session id as a
//! JSON string; every other call carries it in the `vmware-api-session-id` header. A call
//! answered `401` (the session expired or was deleted) logs in again once — a single login for
//! all calls that saw the same expired id — and is sent again. Parallel operations of one
//! process share a session through [`Sessions`]: the first operation of a batch logs in, the
//! last one to finish sends `DELETE /api/session`.
//!
//! # Retries
//! `429`, `500` and `503` answers and broken connections are retried a bounded number of times
//! ([`ATTEMPTS`]) with a doubling pause; every other 4xx is ours to fix and returned at once as
//! [`VsphereError::Api`], quoting the API's error body (`{"error_type": "NOT_FOUND",
//! "messages": [{"default_message": …}]}`). Every request has a timeout ([`REQUEST_TIMEOUT`]).
//!
//! # Secrets
//! The password is sent only in the login's `Authorization` header. [`Connection`]'s `Debug`
//! hides it, no error quotes it (messages pass through [`Connection::mask`] as well), and the
//! session id is never shown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use super::super::rest::{install_crypto_provider, percent_encode};

/// Attempts of one request answered 429, 500 or 503, or whose connection broke.
pub const ATTEMPTS: u32 = 5;
/// The pause before the first retry; each next one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(3);
/// The longest any one request may take (a clone answers when the VM exists).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The session header of the Automation API.
pub const SESSION_HEADER: &str = "vmware-api-session-id";

/// Why a call to vCenter failed. Messages never hold the password or a session id.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VsphereError {
    /// `connection_config` (or another property) is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// vCenter refused the credentials.
    #[error("vCenter {endpoint} refused the login of `{username}` (401 UNAUTHENTICATED)")]
    Login { endpoint: String, username: String },
    /// An answer with an error body.
    #[error("vCenter refused {method} {path}: {status} {error_type}: {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        error_type: String,
        message: String,
    },
    /// No answer: connection, TLS or timeout.
    #[error("cannot reach vCenter for {method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// An answer that is not what the API reference says it is.
    #[error("vCenter answered {method} {path} with something unexpected: {message}")]
    Answer {
        method: String,
        path: String,
        message: String,
    },
    /// No inventory object of that kind has that name or id.
    #[error("vCenter has no {kind} named (or with the id) `{name}`")]
    NotFound { kind: &'static str, name: String },
}

impl VsphereError {
    /// The error type of an API answer (`NOT_FOUND`, `ALREADY_IN_DESIRED_STATE`, …).
    pub fn error_type(&self) -> Option<&str> {
        match self {
            VsphereError::Api { error_type, .. } => Some(error_type),
            _ => None,
        }
    }

    /// Whether retrying the whole operation later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            VsphereError::Api { status, .. } => matches!(status, 429 | 500 | 503),
            VsphereError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// Where vCenter is and how to log in (`connection_config`).
#[derive(Clone)]
pub struct Connection {
    /// `https://HOST[:PORT]`, or what `host` wrote with its own scheme.
    pub base: String,
    /// `HOST[:PORT]` as written, for messages.
    pub endpoint: String,
    pub username: String,
    password: String,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base", &self.base)
            .field("username", &self.username)
            .field("password", &"******")
            .field("ca_cert", &self.ca_cert)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Connection {
    /// Read `connection_config`: `host` (`HOST[:PORT]`; `http://` or `https://` may be
    /// written), `username`, `password`, `ca_cert` (a PEM file, relative to `resources`),
    /// `insecure`.
    pub fn from_config(config: &Map<String, Json>, resources: &Path) -> Result<Self, VsphereError> {
        let text = |key: &str| -> Option<String> {
            match config.get(key) {
                Some(Json::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Some(Json::Number(n)) => Some(n.to_string()),
                _ => None,
            }
        };
        let missing =
            |key: &str| VsphereError::Config(format!("connection_config.{key} is required"));
        let host = text("host").ok_or_else(|| missing("host"))?;
        let username = text("username").ok_or_else(|| missing("username"))?;
        let password = match config.get("password") {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(missing("password")),
        };
        let insecure = match config.get("insecure") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Json::String(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => false,
            Some(other) => {
                return Err(VsphereError::Config(format!(
                    "connection_config.insecure must be true or false, not {other}"
                )));
            }
        };
        let ca_cert = text("ca_cert").map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                resources.join(p)
            }
        });
        let (base, endpoint) = if host.starts_with("https://") || host.starts_with("http://") {
            let endpoint = host.split_once("://").map_or(host.as_str(), |(_, h)| h);
            (
                host.trim_end_matches('/').to_string(),
                endpoint.trim_end_matches('/').to_string(),
            )
        } else {
            (format!("https://{host}"), host.clone())
        };
        if endpoint.is_empty() || endpoint.contains('/') || endpoint.contains('@') {
            return Err(VsphereError::Config(format!(
                "connection_config.host must be HOST or HOST:PORT, not `{host}`"
            )));
        }
        Ok(Connection {
            base,
            endpoint,
            username,
            password,
            ca_cert,
            insecure,
        })
    }

    /// `text` with the password replaced by `******` (defence in depth: no message is built
    /// from it, but an API could echo it).
    pub fn mask(&self, text: &str) -> String {
        if self.password.len() >= 3 && text.contains(&self.password) {
            text.replace(&self.password, "******")
        } else {
            text.to_string()
        }
    }

    /// What identifies a session: endpoint, user, a hash of the password and the TLS settings.
    fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.password.as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "{}|{}|{hex}|{:?}|{}",
            self.base, self.username, self.ca_cert, self.insecure
        )
    }
}

/// One vCenter session, shared by the operations of a batch.
pub struct Client {
    http: reqwest::Client,
    connection: Connection,
    /// The session id, when logged in; the lock makes one login for all callers that found
    /// the same id expired.
    session: tokio::sync::Mutex<Option<Arc<str>>>,
    requests: AtomicU64,
    /// Inventory names resolved to ids during this session.
    ids: std::sync::Mutex<HashMap<(&'static str, String), String>>,
}

/// A call's answer: its status and JSON body (`Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub body: Json,
}

/// Whether a call retries 503 itself (guest identity answers 503 while VMware Tools is not
/// running, which its poll loop handles).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Transient,
    NotUnavailable,
}

impl Client {
    /// A client for `connection` (TLS verified unless `insecure`; trusting only `ca_cert`
    /// when one is given, else the system's roots). Not logged in yet.
    pub fn new(connection: Connection) -> Result<Client, VsphereError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("windlass/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &connection.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                VsphereError::Config(format!("connection_config.ca_cert {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                VsphereError::Config(format!(
                    "connection_config.ca_cert {} is not a PEM certificate bundle: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(VsphereError::Config(format!(
                    "connection_config.ca_cert {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        if connection.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| VsphereError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Client {
            http,
            connection,
            session: tokio::sync::Mutex::new(None),
            requests: AtomicU64::new(0),
            ids: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Requests sent so far (logins and retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The current session id, logging in if there is none or if `expired` is the current one.
    async fn session(&self, expired: Option<&Arc<str>>) -> Result<Arc<str>, VsphereError> {
        let mut current = self.session.lock().await;
        if let Some(id) = current.as_ref()
            && expired.is_none_or(|e| !Arc::ptr_eq(e, id))
        {
            return Ok(id.clone());
        }
        let id: Arc<str> = self.login().await?.into();
        *current = Some(id.clone());
        Ok(id)
    }

    /// `POST /api/session` with basic authentication → `201 "SESSION-ID"`.
    async fn login(&self) -> Result<String, VsphereError> {
        let path = "/api/session";
        let answer = self
            .send(Method::POST, path, None, None, Retry::Transient)
            .await?;
        match answer.status {
            s if s.is_success() => match answer.body {
                Json::String(id) if !id.is_empty() => Ok(id),
                _ => Err(VsphereError::Answer {
                    method: "POST".into(),
                    path: path.into(),
                    message: "the session id is not a JSON string".into(),
                }),
            },
            StatusCode::UNAUTHORIZED => Err(VsphereError::Login {
                endpoint: self.connection.endpoint.clone(),
                username: self.connection.username.clone(),
            }),
            _ => Err(self.api_error(&Method::POST, path, answer)),
        }
    }

    /// `DELETE /api/session`, if logged in. Failures are ignored: the session expires anyway.
    pub async fn logout(&self) {
        let id = self.session.lock().await.take();
        if let Some(id) = id {
            let _ = self
                .send(
                    Method::DELETE,
                    "/api/session",
                    None,
                    Some(&id),
                    Retry::NotUnavailable,
                )
                .await;
        }
    }

    /// One API call with the session: re-login once on 401; a non-2xx answer becomes
    /// [`VsphereError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
        retry: Retry,
    ) -> Result<Answer, VsphereError> {
        let mut id = self.session(None).await?;
        let mut relogged = false;
        loop {
            let answer = self
                .send(method.clone(), path, body, Some(&id), retry)
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED && !relogged {
                relogged = true;
                id = self.session(Some(&id)).await?;
                continue;
            }
            if answer.status.is_success() {
                return Ok(answer);
            }
            return Err(self.api_error(&method, path, answer));
        }
    }

    /// Send one request, retrying 429/500/503 (unless `retry` says otherwise for 503) and
    /// broken connections; returns whatever status came last.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
        session: Option<&Arc<str>>,
        retry: Retry,
    ) -> Result<Answer, VsphereError> {
        let url = format!("{}{path}", self.connection.base);
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            request = match session {
                Some(id) => request.header(SESSION_HEADER, id.as_ref()),
                None => {
                    request.basic_auth(&self.connection.username, Some(&self.connection.password))
                }
            };
            if let Some(body) = body {
                request = request.json(body);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = request.send().await;
            let retryable = match &outcome {
                Ok(r) => match r.status().as_u16() {
                    429 | 500 => true,
                    503 => retry == Retry::Transient,
                    _ => false,
                },
                Err(e) => !e.is_builder(),
            };
            if retryable && attempt < ATTEMPTS {
                let wait = outcome
                    .as_ref()
                    .ok()
                    .and_then(|r| r.headers().get(reqwest::header::RETRY_AFTER))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(pause, |s| Duration::from_secs(s).min(MAX_PAUSE));
                tokio::time::sleep(wait).await;
                pause = (pause * 2).min(MAX_PAUSE);
                attempt += 1;
                continue;
            }
            let response = outcome.map_err(|e| VsphereError::Transport {
                method: method.to_string(),
                path: path.to_string(),
                message: self.connection.mask(&describe(&e)),
            })?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| VsphereError::Transport {
                    method: method.to_string(),
                    path: path.to_string(),
                    message: self.connection.mask(&describe(&e)),
                })?;
            let body = if bytes.is_empty() {
                Json::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Json::Null)
            };
            return Ok(Answer { status, body });
        }
    }

    /// The API's error body as an error: `error_type` and the messages' `default_message`s.
    fn api_error(&self, method: &Method, path: &str, answer: Answer) -> VsphereError {
        let error_type = answer
            .body
            .get("error_type")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let messages: Vec<&str> = answer
            .body
            .get("messages")
            .and_then(Json::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|m| m.get("default_message").and_then(Json::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let message = if messages.is_empty() {
            answer
                .status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string()
        } else {
            messages.join("; ")
        };
        VsphereError::Api {
            method: method.to_string(),
            path: path.to_string(),
            status: answer.status.as_u16(),
            error_type,
            message: self.connection.mask(&message),
        }
    }

    /// A GET answered with a JSON list.
    pub async fn list(&self, path: &str) -> Result<Vec<Json>, VsphereError> {
        let answer = self.call(Method::GET, path, None, Retry::Transient).await?;
        match answer.body {
            Json::Array(items) => Ok(items),
            _ => Err(VsphereError::Answer {
                method: "GET".into(),
                path: path.into(),
                message: "not a JSON list".into(),
            }),
        }
    }

    // ----- inventory ------------------------------------------------------------------------

    /// `GET /api/vcenter/host`: every host with its connection and power state.
    pub async fn hosts(&self) -> Result<Vec<HostSummary>, VsphereError> {
        let items = self.list("/api/vcenter/host").await?;
        Ok(items
            .iter()
            .filter_map(|h| {
                Some(HostSummary {
                    id: h.get("host")?.as_str()?.to_string(),
                    name: h.get("name")?.as_str()?.to_string(),
                    connection_state: str_of(h, "connection_state"),
                    power_state: str_of(h, "power_state"),
                })
            })
            .collect())
    }

    /// `GET /api/vcenter/vm?FILTER`: VM summaries (`filter` is an encoded query, or empty).
    pub async fn vms(&self, filter: &str) -> Result<Vec<VmSummary>, VsphereError> {
        let path = if filter.is_empty() {
            "/api/vcenter/vm".to_string()
        } else {
            format!("/api/vcenter/vm?{filter}")
        };
        let items = self.list(&path).await?;
        Ok(items
            .iter()
            .filter_map(|v| {
                Some(VmSummary {
                    id: v.get("vm")?.as_str()?.to_string(),
                    name: v.get("name")?.as_str()?.to_string(),
                    power_state: str_of(v, "power_state"),
                })
            })
            .collect())
    }

    /// The id of an inventory object named `name` (or whose id is `name`): VM, folder,
    /// datastore or resource pool. Answers are kept for the session.
    pub async fn resolve(&self, kind: Kind, name: &str) -> Result<String, VsphereError> {
        let key = (kind.noun(), name.to_string());
        if let Some(id) = self.ids.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(id);
        }
        let by_name = format!("{}?names={}{}", kind.path(), query(name), kind.extra());
        let mut found = self.list(&by_name).await?;
        if found.is_empty() {
            let by_id = format!(
                "{}?{}={}{}",
                kind.path(),
                kind.id_filter(),
                query(name),
                kind.extra()
            );
            found = self.list(&by_id).await?;
        }
        let id = found
            .first()
            .and_then(|o| o.get(kind.id_field()))
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| VsphereError::NotFound {
                kind: kind.noun(),
                name: name.to_string(),
            })?;
        if let Ok(mut m) = self.ids.lock() {
            m.insert(key, id.clone());
        }
        Ok(id)
    }

    // ----- virtual machines -----------------------------------------------------------------

    /// `POST /api/vcenter/vm?action=clone` → `200 "vm-ID"`.
    pub async fn clone_vm(&self, spec: &Json) -> Result<String, VsphereError> {
        let path = "/api/vcenter/vm?action=clone";
        let answer = self
            .call(Method::POST, path, Some(spec), Retry::Transient)
            .await?;
        match answer.body {
            Json::String(id) if !id.is_empty() => Ok(id),
            _ => Err(VsphereError::Answer {
                method: "POST".into(),
                path: path.into(),
                message: "the new VM's id is not a JSON string".into(),
            }),
        }
    }

    /// `POST /api/vcenter/vm/{vm}/power?action=start|stop` → `204`; a VM already in that state
    /// (`400 ALREADY_IN_DESIRED_STATE`) is as good.
    pub async fn power(&self, vm: &str, action: &str) -> Result<(), VsphereError> {
        let path = format!("/api/vcenter/vm/{}/power?action={action}", segment(vm));
        match self.call(Method::POST, &path, None, Retry::Transient).await {
            Ok(_) => Ok(()),
            Err(e) if e.error_type() == Some("ALREADY_IN_DESIRED_STATE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/vcenter/vm/{vm}/power` → `{"state": "POWERED_ON" | "POWERED_OFF" | "SUSPENDED"}`.
    pub async fn power_state(&self, vm: &str) -> Result<String, VsphereError> {
        let path = format!("/api/vcenter/vm/{}/power", segment(vm));
        let answer = self
            .call(Method::GET, &path, None, Retry::Transient)
            .await?;
        Ok(str_of(&answer.body, "state"))
    }

    /// `GET /api/vcenter/vm/{vm}/guest/identity`: the guest's IP once VMware Tools reports one;
    /// `None` while it does not (`503` while Tools is not running, or no `ip_address` yet).
    pub async fn guest_ip(&self, vm: &str) -> Result<Option<String>, VsphereError> {
        let path = format!("/api/vcenter/vm/{}/guest/identity", segment(vm));
        match self
            .call(Method::GET, &path, None, Retry::NotUnavailable)
            .await
        {
            Ok(answer) => Ok(answer
                .body
                .get("ip_address")
                .and_then(Json::as_str)
                .filter(|ip| !ip.is_empty())
                .map(str::to_string)),
            Err(VsphereError::Api { status: 503, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /api/vcenter/vm/{vm}` → `204`. Returns false when the VM was already gone
    /// (`404 NOT_FOUND`).
    pub async fn delete_vm(&self, vm: &str) -> Result<bool, VsphereError> {
        let path = format!("/api/vcenter/vm/{}", segment(vm));
        match self
            .call(Method::DELETE, &path, None, Retry::Transient)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.error_type() == Some("NOT_FOUND") => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A host as `GET /api/vcenter/host` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSummary {
    pub id: String,
    pub name: String,
    pub connection_state: String,
    pub power_state: String,
}

impl HostSummary {
    /// Only a connected, powered-on host takes VMs.
    pub fn healthy(&self) -> bool {
        self.connection_state == "CONNECTED" && self.power_state == "POWERED_ON"
    }
}

/// A VM as `GET /api/vcenter/vm` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSummary {
    pub id: String,
    pub name: String,
    pub power_state: String,
}

/// Inventory kinds resolved by name.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Vm,
    Folder,
    Datastore,
    ResourcePool,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Vm => "VM or template",
            Kind::Folder => "VM folder",
            Kind::Datastore => "datastore",
            Kind::ResourcePool => "resource pool",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Kind::Vm => "/api/vcenter/vm",
            Kind::Folder => "/api/vcenter/folder",
            Kind::Datastore => "/api/vcenter/datastore",
            Kind::ResourcePool => "/api/vcenter/resource-pool",
        }
    }
    fn id_filter(self) -> &'static str {
        match self {
            Kind::Vm => "vms",
            Kind::Folder => "folders",
            Kind::Datastore => "datastores",
            Kind::ResourcePool => "resource_pools",
        }
    }
    fn id_field(self) -> &'static str {
        match self {
            Kind::Vm => "vm",
            Kind::Folder => "folder",
            Kind::Datastore => "datastore",
            Kind::ResourcePool => "resource_pool",
        }
    }
    fn extra(self) -> &'static str {
        match self {
            Kind::Folder => "&type=VIRTUAL_MACHINE",
            _ => "",
        }
    }
}

/// Process-wide sessions, one per connection, shared by the operations that overlap in time:
/// [`Sessions::acquire`] hands out the client (logging in lazily, on its first call), and the
/// last [`Sessions::release`] of a batch logs out.
pub struct Sessions {
    open: tokio::sync::Mutex<HashMap<String, (Arc<Client>, usize)>>,
}

/// The sessions of this process.
pub static SESSIONS: LazyLock<Sessions> = LazyLock::new(|| Sessions {
    open: tokio::sync::Mutex::new(HashMap::new()),
});

impl Sessions {
    pub async fn acquire(&self, connection: Connection) -> Result<Arc<Client>, VsphereError> {
        let key = connection.key();
        let mut open = self.open.lock().await;
        if let Some((client, users)) = open.get_mut(&key) {
            *users += 1;
            return Ok(client.clone());
        }
        let client = Arc::new(Client::new(connection)?);
        open.insert(key, (client.clone(), 1));
        Ok(client)
    }

    /// The operation is done with `client`; the last one out deletes the session.
    pub async fn release(&self, client: &Arc<Client>) {
        let key = client.connection.key();
        let last = {
            let mut open = self.open.lock().await;
            match open.get_mut(&key) {
                Some((held, users)) if Arc::ptr_eq(held, client) => {
                    *users -= 1;
                    if *users == 0 {
                        open.remove(&key);
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            }
        };
        if last {
            client.logout().await;
        }
    }
}

fn str_of(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A query value, percent-encoded (everything but RFC 3986's unreserved characters).
pub fn query(value: &str) -> String {
    percent_encode(value)
}

/// A path segment (an id), percent-encoded the same way.
fn segment(id: &str) -> String {
    percent_encode(id)
}

/// A reqwest error with its causes, which carry the TLS or connection detail.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A clone specification (`VM.CloneSpec`): `source` and placement ids, powered on.
pub fn clone_spec(name: &str, source: &str, placement: Map<String, Json>) -> Json {
    json!({
        "name": name,
        "source": source,
        "placement": placement,
        "power_on": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_password_is_never_in_debug_output() {
        let c = Connection::from_config(
            &config(json!({"host": "vc:8443", "username": "u", "password": "s3cr3t-pw"})),
            Path::new("/bp"),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
        assert_eq!(c.base, "https://vc:8443");
        assert_eq!(c.mask("say s3cr3t-pw"), "say ******");
    }

    #[test]
    fn connection_config_is_checked() {
        let err = Connection::from_config(&config(json!({"host": "vc"})), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("username"), "{err}");
        let err = Connection::from_config(
            &config(json!({"host": "vc/x", "username": "u", "password": "p"})),
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("HOST:PORT"), "{err}");
        let c = Connection::from_config(
            &config(
                json!({"host": "http://127.0.0.1:1", "username": "u", "password": "p",
                "ca_cert": "ca.pem", "insecure": "true"}),
            ),
            Path::new("/bp"),
        )
        .unwrap();
        assert_eq!(c.base, "http://127.0.0.1:1");
        assert_eq!(c.ca_cert, Some(PathBuf::from("/bp/ca.pem")));
        assert!(c.insecure);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query("dea pool/1"), "dea%20pool%2F1");
        assert_eq!(query("vm-12"), "vm-12");
    }
}
