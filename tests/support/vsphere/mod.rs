//! A vSphere Automation REST API contract server for tests: an in-process server on
//! `127.0.0.1:0`, HTTPS with a throwaway CA (`kube::tls`) or plain HTTP, holding an inventory
//! of hosts, VMs, templates, folders, datastores and resource pools that tests change while
//! it runs.
//!
//! # The contract (vSphere Automation API reference, `/api`, vSphere 7.0 U2+)
//! Errors are `{"error_type": TYPE, "messages": [{"id", "default_message", "args": []}]}`.
//! - `POST /api/session`, HTTP basic auth → `201` and the session id as a JSON string; wrong
//!   credentials → `401 UNAUTHENTICATED`. `DELETE /api/session` → `204`.
//! - Every other call needs `vmware-api-session-id`; missing, unknown or expired → `401
//!   UNAUTHENTICATED`.
//! - `GET /api/vcenter/host` (filters `hosts`, `names`, `connection_states`) →
//!   `[{"host", "name", "connection_state": CONNECTED|DISCONNECTED|NOT_RESPONDING,
//!   "power_state": POWERED_ON|POWERED_OFF|STANDBY}]`.
//! - `GET /api/vcenter/vm` (filters `vms`, `names`, `hosts`, `power_states`, `folders`;
//!   repeated parameters) → `[{"vm", "name", "power_state", "cpu_count",
//!   "memory_size_MiB"}]`. `GET /api/vcenter/vm/{vm}` → `VM.Info` (`name`, `power_state`,
//!   `guest_OS`, `cpu`, `memory`, `identity`) or `404 NOT_FOUND`.
//! - `POST /api/vcenter/vm?action=clone`, body `VM.CloneSpec` (`name`, `source`, `placement`
//!   with `host`/`folder`/`datastore`/`resource_pool`/`cluster` ids, `power_on`) → `200` and
//!   the new VM's id as a JSON string; `404 NOT_FOUND` for a source or placement object that
//!   does not exist, `400 ALREADY_EXISTS` for a name in use, `400 INVALID_ARGUMENT` without
//!   `name` or `source`, `400 NOT_ALLOWED_IN_CURRENT_STATE` onto a host that is not connected
//!   and powered on.
//! - `POST /api/vcenter/vm/{vm}/power?action=start|stop` → `204`; `400
//!   ALREADY_IN_DESIRED_STATE`; `400 NOT_ALLOWED_IN_CURRENT_STATE` to start a template or a VM
//!   on an unavailable host. `GET /api/vcenter/vm/{vm}/power` → `{"state": POWERED_ON |
//!   POWERED_OFF | SUSPENDED}`.
//! - `GET /api/vcenter/vm/{vm}/guest/identity` → `{"name", "family", "full_name",
//!   "host_name", "ip_address"}`; `503 SERVICE_UNAVAILABLE` while VMware Tools is not running
//!   (the VM is off, or was powered on fewer than `ip_after - 1` polls ago); then once without
//!   `ip_address`, then with it.
//! - `DELETE /api/vcenter/vm/{vm}` → `204`; `404 NOT_FOUND`; `400
//!   NOT_ALLOWED_IN_CURRENT_STATE` while it is powered on.
//! - `GET /api/vcenter/folder` (`names`, `folders`, `type`), `/api/vcenter/datastore`
//!   (`names`, `datastores`), `/api/vcenter/resource-pool` (`names`, `resource_pools`) →
//!   `[{"folder", "name", "type"}]`, `[{"datastore", "name", "type", "free_space",
//!   "capacity"}]`, `[{"resource_pool", "name"}]`.
//!
//! # Faults and time
//! `fail_next(n, 500|503)` answers the next `n` calls that carry a valid session with that
//! error; `expire_sessions` makes every session id unknown (as a vCenter restart or the idle
//! timeout does). `hold_changes(true)` makes a clone or power call take effect at once and its
//! answer wait until `hold_changes(false)`: a vCenter that did the work but has not said so yet,
//! for killing a client at that moment. `set_ip_after` changes how many identity polls a
//! guest needs for its IP (`u32::MAX`: never). Time passes in polls, never in clocks, except the
//! optional per-request latency of [`Latency`] (the benchmark's). Every request is logged
//! (never its headers), a held one before its answer waits.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Response};
use serde_json::{Value as Json, json};
use tokio_rustls::TlsAcceptor;

use super::kube::tls;
use super::loopback::{self, Loopback, decode_query, lock};

/// Delays the server adds before answering, per kind of call (all zero by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Session login and logout.
    pub session: Duration,
    /// Lists, reads and guest identity.
    pub read: Duration,
    /// A clone (the Automation API answers when the VM exists).
    pub clone: Duration,
    /// Power start and stop.
    pub power: Duration,
    pub delete: Duration,
}

/// How a server starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub username: String,
    pub password: String,
    /// HTTPS with a throwaway CA, else plain HTTP.
    pub tls: bool,
    /// Guest identity polls after a power-on before the IP shows (0: at once).
    pub ip_after: u32,
    pub latency: Latency,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            username: "administrator@vsphere.local".into(),
            password: "Pa55-contract-secret!".into(),
            tls: true,
            ip_after: 3,
            latency: Latency::default(),
        }
    }
}

/// One request as the server saw it (no headers).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Json>,
    pub status: u16,
}

/// A VM as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub host: String,
    pub power_state: String,
    pub template: bool,
    pub folder: Option<String>,
    pub datastore: Option<String>,
    pub resource_pool: Option<String>,
    /// Guest identity polls since the last power-on.
    polls: u32,
    ip: String,
}

#[derive(Debug, Clone)]
struct Host {
    id: String,
    name: String,
    connection_state: String,
    power_state: String,
}

#[derive(Default)]
struct Inventory {
    hosts: Vec<Host>,
    vms: BTreeMap<String, Vm>,
    folders: Vec<(String, String)>,
    datastores: Vec<(String, String)>,
    resource_pools: Vec<(String, String)>,
    sessions: HashSet<String>,
    next: u64,
    ip_after: u32,
}

impl Inventory {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}", self.next)
    }

    fn host_by_id(&self, id: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.id == id)
    }
}

struct Shared {
    inventory: Mutex<Inventory>,
    username: String,
    password: String,
    latency: Latency,
    faults: Mutex<VecDeque<u16>>,
    log: Mutex<Vec<Request>>,
    /// `true`: answers to clone and power calls wait (their effect does not).
    held: tokio::sync::watch::Sender<bool>,
}

/// A running contract server. Dropping it stops the server.
pub struct VsphereApi {
    shared: Arc<Shared>,
    address: String,
    tls: bool,
    ca_pem: String,
    /// Stops the server when dropped.
    server: Loopback,
}

impl VsphereApi {
    /// Start a server on `127.0.0.1:0` with an empty inventory.
    ///
    /// # Panics
    /// When the machine cannot make a key, bind a loopback port or start a thread.
    pub fn start(options: Options) -> VsphereApi {
        let pki = tls::make().expect("make the contract server's CA and certificate");
        let (listener, address) = loopback::listen();
        let shared = Arc::new(Shared {
            inventory: Mutex::new(Inventory {
                ip_after: options.ip_after,
                ..Default::default()
            }),
            username: options.username,
            password: options.password,
            latency: options.latency,
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            held: tokio::sync::watch::channel(false).0,
        });
        let acceptor = options
            .tls
            .then(|| TlsAcceptor::from(pki.server_config.clone()));
        let server = Loopback::run("vsphere", listener, acceptor, shared.clone(), serve);
        VsphereApi {
            shared,
            address: address.to_string(),
            tls: options.tls,
            ca_pem: pki.ca_pem,
            server,
        }
    }

    /// What `connection_config.host` says: `127.0.0.1:PORT` (HTTPS), or `http://127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        if self.tls {
            self.address.clone()
        } else {
            format!("http://{}", self.address)
        }
    }

    pub fn username(&self) -> &str {
        &self.shared.username
    }

    pub fn password(&self) -> &str {
        &self.shared.password
    }

    /// The CA that signed the server's certificate, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Add a connected, powered-on host; returns its id.
    pub fn add_host(&self, name: &str) -> String {
        let mut inv = lock(&self.shared.inventory);
        let id = inv.id("host");
        inv.hosts.push(Host {
            id: id.clone(),
            name: name.into(),
            connection_state: "CONNECTED".into(),
            power_state: "POWERED_ON".into(),
        });
        id
    }

    /// Change a host's states (`CONNECTED`/`DISCONNECTED`/`NOT_RESPONDING`,
    /// `POWERED_ON`/`POWERED_OFF`/`STANDBY`).
    pub fn set_host_state(&self, name: &str, connection: &str, power: &str) {
        let mut inv = lock(&self.shared.inventory);
        for h in inv.hosts.iter_mut().filter(|h| h.name == name) {
            h.connection_state = connection.into();
            h.power_state = power.into();
        }
    }

    /// Add a VM (or template) on the host named `host`; returns its id.
    pub fn add_vm(&self, name: &str, host: &str, powered_on: bool, template: bool) -> String {
        let mut inv = lock(&self.shared.inventory);
        let host_id = inv
            .hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.id.clone())
            .unwrap_or_else(|| panic!("no host {host}"));
        let id = inv.id("vm");
        let ip = format!("10.20.{}.{}", inv.next / 250, inv.next % 250 + 1);
        inv.vms.insert(
            id.clone(),
            Vm {
                id: id.clone(),
                name: name.into(),
                host: host_id,
                power_state: if powered_on {
                    "POWERED_ON"
                } else {
                    "POWERED_OFF"
                }
                .into(),
                template,
                folder: None,
                datastore: None,
                resource_pool: None,
                polls: 0,
                ip,
            },
        );
        id
    }

    /// Add a folder, datastore or resource pool (`kind`: `folder`, `datastore`,
    /// `resource-pool`); returns its id.
    pub fn add_object(&self, kind: &str, name: &str) -> String {
        let mut inv = lock(&self.shared.inventory);
        let prefix = match kind {
            "folder" => "group",
            "datastore" => "datastore",
            _ => "resgroup",
        };
        let id = inv.id(prefix);
        let entry = (id.clone(), name.to_string());
        match kind {
            "folder" => inv.folders.push(entry),
            "datastore" => inv.datastores.push(entry),
            _ => inv.resource_pools.push(entry),
        }
        id
    }

    /// Every VM (templates included), with its host's name in `host`.
    pub fn vms(&self) -> Vec<Vm> {
        let inv = lock(&self.shared.inventory);
        inv.vms
            .values()
            .map(|v| {
                let mut v = v.clone();
                if let Some(h) = inv.host_by_id(&v.host) {
                    v.host = h.name.clone();
                }
                v
            })
            .collect()
    }

    pub fn vm(&self, name: &str) -> Option<Vm> {
        self.vms().into_iter().find(|v| v.name == name)
    }

    /// Forget every session: the next call with one gets 401.
    pub fn expire_sessions(&self) {
        lock(&self.shared.inventory).sessions.clear();
    }

    /// Sessions logged in and not deleted.
    pub fn open_sessions(&self) -> usize {
        lock(&self.shared.inventory).sessions.len()
    }

    /// Answer the next `n` calls that carry a valid session with `status` (500 or 503).
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.shared.faults).extend(std::iter::repeat_n(status, n));
    }

    /// While `true`, clone and power calls take effect at once and are logged, and their
    /// answers wait until it is `false` again.
    pub fn hold_changes(&self, hold: bool) {
        self.shared.held.send_replace(hold);
    }

    /// Identity polls after a power-on before the guest reports its IP (`u32::MAX`: never).
    pub fn set_ip_after(&self, polls: u32) {
        lock(&self.shared.inventory).ip_after = polls;
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }
}

type Reply = (u16, Json);

fn error(status: u16, error_type: &str, message: impl Into<String>) -> Reply {
    (
        status,
        json!({
            "error_type": error_type,
            "messages": [{
                "id": format!("com.vmware.vapi.std.errors.{}", error_type.to_lowercase()),
                "default_message": message.into(),
                "args": [],
            }],
        }),
    )
}

fn not_found(what: &str) -> Reply {
    error(404, "NOT_FOUND", format!("{what} not found"))
}

async fn serve(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = decode_query(request.uri().query().unwrap_or(""));
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let session = header("vmware-api-session-id");
    let authorization = header("authorization");
    let bytes = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Option<Json> = serde_json::from_slice(&bytes).ok();

    let latency = shared.latency;
    let delay = if path == "/api/session" {
        latency.session
    } else if method == Method::GET {
        latency.read
    } else if path == "/api/vcenter/vm" {
        latency.clone
    } else if path.ends_with("/power") {
        latency.power
    } else if method == Method::DELETE {
        latency.delete
    } else {
        Duration::ZERO
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let (status, reply) = route(
        &shared,
        &method,
        &path,
        &query,
        body.as_ref(),
        session.as_deref(),
        authorization.as_deref(),
    );
    lock(&shared.log).push(Request {
        method: method.to_string(),
        path: path.clone(),
        query,
        body,
        status,
    });
    if method == Method::POST && (path == "/api/vcenter/vm" || path.ends_with("/power")) {
        let mut held = shared.held.subscribe();
        // Err: the server is going away; answer then.
        let _ = held.wait_for(|h| !*h).await;
    }
    let bytes = if reply.is_null() {
        Bytes::new()
    } else {
        Bytes::from(reply.to_string())
    };
    let mut response = Response::builder().status(status);
    if !bytes.is_empty() {
        response = response.header("content-type", "application/json");
    }
    Ok(response
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

fn params<'a>(query: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn matches(filter: &[&str], value: &str) -> bool {
    filter.is_empty() || filter.contains(&value)
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: Option<&Json>,
    session: Option<&str>,
    authorization: Option<&str>,
) -> Reply {
    let mut inv = lock(&shared.inventory);
    if path == "/api/session" {
        return match *method {
            Method::POST => {
                let given = authorization
                    .and_then(|a| a.strip_prefix("Basic "))
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok());
                let expected = format!("{}:{}", shared.username, shared.password);
                if given.as_deref() == Some(expected.as_str()) {
                    let token = format!("{:032x}", {
                        use std::hash::{BuildHasher, RandomState};
                        RandomState::new().hash_one(inv.next)
                    });
                    inv.next += 1;
                    inv.sessions.insert(token.clone());
                    (201, Json::String(token))
                } else {
                    error(401, "UNAUTHENTICATED", "Authentication required.")
                }
            }
            Method::DELETE => match session {
                Some(s) if inv.sessions.remove(s) => (204, Json::Null),
                _ => error(401, "UNAUTHENTICATED", "Authentication required."),
            },
            Method::GET => match session {
                Some(s) if inv.sessions.contains(s) => (
                    200,
                    json!({"user": shared.username, "created_time": "2026-01-01T00:00:00.000Z", "last_accessed_time": "2026-01-01T00:00:00.000Z"}),
                ),
                _ => error(401, "UNAUTHENTICATED", "Authentication required."),
            },
            _ => error(405, "OPERATION_NOT_FOUND", "method not allowed"),
        };
    }
    if !session.is_some_and(|s| inv.sessions.contains(s)) {
        return error(401, "UNAUTHENTICATED", "Authentication required.");
    }
    if let Some(status) = lock(&shared.faults).pop_front() {
        return match status {
            503 => error(
                503,
                "SERVICE_UNAVAILABLE",
                "The service is unavailable; try later.",
            ),
            s => error(s, "ERROR", "An internal error occurred."),
        };
    }
    let action = params(query, "action").first().copied().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["api", "vcenter", "host"]) => {
            let ids = params(query, "hosts");
            let names = params(query, "names");
            let states = params(query, "connection_states");
            let list: Vec<Json> = inv
                .hosts
                .iter()
                .filter(|h| {
                    matches(&ids, &h.id)
                        && matches(&names, &h.name)
                        && matches(&states, &h.connection_state)
                })
                .map(|h| {
                    json!({"host": h.id, "name": h.name, "connection_state": h.connection_state, "power_state": h.power_state})
                })
                .collect();
            (200, Json::Array(list))
        }
        (Method::GET, ["api", "vcenter", "vm"]) => {
            let ids = params(query, "vms");
            let names = params(query, "names");
            let hosts = params(query, "hosts");
            let powers = params(query, "power_states");
            let folders = params(query, "folders");
            let list: Vec<Json> = inv
                .vms
                .values()
                .filter(|v| {
                    matches(&ids, &v.id)
                        && matches(&names, &v.name)
                        && matches(&hosts, &v.host)
                        && matches(&powers, &v.power_state)
                        && (folders.is_empty()
                            || v.folder.as_deref().is_some_and(|f| folders.contains(&f)))
                })
                .map(|v| {
                    json!({"vm": v.id, "name": v.name, "power_state": v.power_state, "cpu_count": 2, "memory_size_MiB": 4096})
                })
                .collect();
            (200, Json::Array(list))
        }
        (Method::POST, ["api", "vcenter", "vm"]) if action == "clone" => clone(&mut inv, body),
        (Method::GET, ["api", "vcenter", "vm", id]) => match inv.vms.get(*id) {
            Some(v) => (
                200,
                json!({
                    "name": v.name, "power_state": v.power_state, "guest_OS": "UBUNTU_64",
                    "cpu": {"count": 2, "cores_per_socket": 1, "hot_add_enabled": false, "hot_remove_enabled": false},
                    "memory": {"size_MiB": 4096, "hot_add_enabled": false},
                    "identity": {"name": v.name, "bios_uuid": format!("uuid-{}", v.id), "instance_uuid": format!("inst-{}", v.id)},
                }),
            ),
            None => not_found(&format!("Virtual machine {id}")),
        },
        (Method::DELETE, ["api", "vcenter", "vm", id]) => match inv.vms.get(*id) {
            None => not_found(&format!("Virtual machine {id}")),
            Some(v) if v.power_state == "POWERED_ON" => error(
                400,
                "NOT_ALLOWED_IN_CURRENT_STATE",
                format!("Virtual machine {id} is powered on."),
            ),
            Some(_) => {
                inv.vms.remove(*id);
                (204, Json::Null)
            }
        },
        (Method::GET, ["api", "vcenter", "vm", id, "power"]) => match inv.vms.get(*id) {
            Some(v) => (200, json!({"state": v.power_state})),
            None => not_found(&format!("Virtual machine {id}")),
        },
        (Method::POST, ["api", "vcenter", "vm", id, "power"]) => power(&mut inv, id, action),
        (Method::GET, ["api", "vcenter", "vm", id, "guest", "identity"]) => {
            let ip_after = inv.ip_after;
            match inv.vms.get_mut(*id) {
                None => not_found(&format!("Virtual machine {id}")),
                Some(v) if v.power_state != "POWERED_ON" => error(
                    503,
                    "SERVICE_UNAVAILABLE",
                    "VMware Tools is not running in the virtual machine.",
                ),
                Some(v) => {
                    v.polls += 1;
                    if v.polls + 1 < ip_after {
                        error(
                            503,
                            "SERVICE_UNAVAILABLE",
                            "VMware Tools is not running in the virtual machine.",
                        )
                    } else {
                        let mut identity = json!({
                            "name": "UBUNTU_64", "family": "LINUX",
                            "full_name": {"id": "vmsg.guestos.ubuntu64", "default_message": "Ubuntu Linux (64-bit)", "args": []},
                            "host_name": v.name,
                        });
                        if v.polls >= ip_after {
                            identity["ip_address"] = Json::String(v.ip.clone());
                        }
                        (200, identity)
                    }
                }
            }
        }
        (Method::GET, ["api", "vcenter", "folder"]) => {
            let ids = params(query, "folders");
            let names = params(query, "names");
            let types = params(query, "type");
            let list: Vec<Json> = inv
                .folders
                .iter()
                .filter(|(id, name)| {
                    matches(&ids, id) && matches(&names, name) && matches(&types, "VIRTUAL_MACHINE")
                })
                .map(|(id, name)| json!({"folder": id, "name": name, "type": "VIRTUAL_MACHINE"}))
                .collect();
            (200, Json::Array(list))
        }
        (Method::GET, ["api", "vcenter", "datastore"]) => {
            let ids = params(query, "datastores");
            let names = params(query, "names");
            let list: Vec<Json> = inv
                .datastores
                .iter()
                .filter(|(id, name)| matches(&ids, id) && matches(&names, name))
                .map(|(id, name)| {
                    json!({"datastore": id, "name": name, "type": "VMFS", "free_space": 1_u64 << 40, "capacity": 2_u64 << 40})
                })
                .collect();
            (200, Json::Array(list))
        }
        (Method::GET, ["api", "vcenter", "resource-pool"]) => {
            let ids = params(query, "resource_pools");
            let names = params(query, "names");
            let list: Vec<Json> = inv
                .resource_pools
                .iter()
                .filter(|(id, name)| matches(&ids, id) && matches(&names, name))
                .map(|(id, name)| json!({"resource_pool": id, "name": name}))
                .collect();
            (200, Json::Array(list))
        }
        _ => error(
            404,
            "NOT_FOUND",
            format!("No operation for {method} {path}"),
        ),
    }
}

fn clone(inv: &mut Inventory, body: Option<&Json>) -> Reply {
    let Some(spec) = body else {
        return error(
            400,
            "INVALID_ARGUMENT",
            "A clone specification is required.",
        );
    };
    let text = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    let (Some(name), Some(source)) = (text(spec, "name"), text(spec, "source")) else {
        return error(400, "INVALID_ARGUMENT", "name and source are required.");
    };
    let Some(src) = inv.vms.get(&source).cloned() else {
        return not_found(&format!("Virtual machine {source}"));
    };
    if inv.vms.values().any(|v| v.name == name) {
        return error(
            400,
            "ALREADY_EXISTS",
            format!("A virtual machine named {name} already exists."),
        );
    }
    let placement = spec.get("placement").cloned().unwrap_or(Json::Null);
    let host = text(&placement, "host").unwrap_or(src.host.clone());
    match inv.host_by_id(&host) {
        None => return not_found(&format!("Host {host}")),
        Some(h) if h.connection_state != "CONNECTED" || h.power_state != "POWERED_ON" => {
            return error(
                400,
                "NOT_ALLOWED_IN_CURRENT_STATE",
                format!("Host {} is not available.", h.name),
            );
        }
        Some(_) => {}
    }
    let check =
        |list: &[(String, String)], key: &str, what: &str| -> Result<Option<String>, Reply> {
            match text(&placement, key) {
                None => Ok(None),
                Some(id) if list.iter().any(|(i, _)| *i == id) => Ok(Some(id)),
                Some(id) => Err(not_found(&format!("{what} {id}"))),
            }
        };
    let folder = match check(&inv.folders, "folder", "Folder") {
        Ok(f) => f,
        Err(r) => return r,
    };
    let datastore = match check(&inv.datastores, "datastore", "Datastore") {
        Ok(d) => d,
        Err(r) => return r,
    };
    let resource_pool = match check(&inv.resource_pools, "resource_pool", "Resource pool") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let power_on = spec
        .get("power_on")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let id = inv.id("vm");
    let ip = format!("10.30.{}.{}", inv.next / 250, inv.next % 250 + 1);
    inv.vms.insert(
        id.clone(),
        Vm {
            id: id.clone(),
            name,
            host,
            power_state: if power_on {
                "POWERED_ON"
            } else {
                "POWERED_OFF"
            }
            .into(),
            template: false,
            folder,
            datastore,
            resource_pool,
            polls: 0,
            ip,
        },
    );
    (200, Json::String(id))
}

fn power(inv: &mut Inventory, id: &str, action: &str) -> Reply {
    let host_ok = inv
        .vms
        .get(id)
        .and_then(|v| inv.host_by_id(&v.host))
        .is_some_and(|h| h.connection_state == "CONNECTED" && h.power_state == "POWERED_ON");
    let Some(vm) = inv.vms.get_mut(id) else {
        return not_found(&format!("Virtual machine {id}"));
    };
    let want = match action {
        "start" => "POWERED_ON",
        "stop" => "POWERED_OFF",
        other => {
            return error(
                400,
                "INVALID_ARGUMENT",
                format!("Unknown power action {other}."),
            );
        }
    };
    if vm.template {
        return error(
            400,
            "NOT_ALLOWED_IN_CURRENT_STATE",
            format!("{} is a template.", vm.name),
        );
    }
    if vm.power_state == want {
        return error(
            400,
            "ALREADY_IN_DESIRED_STATE",
            format!("Virtual machine {id} is already {want}."),
        );
    }
    if !host_ok {
        return error(
            400,
            "NOT_ALLOWED_IN_CURRENT_STATE",
            format!("The host of virtual machine {id} is not available."),
        );
    }
    vm.power_state = want.into();
    vm.polls = 0;
    (204, Json::Null)
}
