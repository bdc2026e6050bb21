//! An OpenStack contract server for tests: Keystone v3, Nova (compute v2.1) and Neutron
//! (networking v2.0) on one loopback port, under `/identity`, `/compute` and `/network` as
//! devstack lays them out: plain HTTP, or HTTPS (`Options::tls`) with a CA made for the server
//! (`kube/tls.rs`: a certificate for `127.0.0.1` and `localhost`), so that certificate
//! verification, `ca_cert` and `insecure` meet a real TLS handshake.
//!
//! # What it serves
//! - Keystone: `POST /identity/v3/auth/tokens` with the password method (user by name and
//!   domain, project scope by name or id) or the application-credential method (by id): 201,
//!   the token in `X-Subject-Token`, a body with `expires_at` and a catalog of the three
//!   services in region `RegionOne` (public and internal interfaces). Wrong credentials: 401
//!   `{"error": {"code": 401, "title": "Unauthorized", …}}`.
//! - Nova: `POST /servers` (202, the server in BUILD; flavor, image, key pair, networks,
//!   ports and security groups checked; its ports created in Neutron), `GET /servers/{id}`,
//!   `GET /servers/detail` (`name` as a regular expression), `DELETE /servers/{id}` (204),
//!   `POST /os-keypairs` (200; generated keys carry `private_key`), `GET`/`DELETE
//!   /os-keypairs/{name}` (200 / 202). Failures are Nova's fault bodies
//!   (`{"itemNotFound": {"code": 404, "message": …}}`, `badRequest`, `conflictingRequest`).
//! - Neutron: `networks`, `subnets`, `ports`, `security-groups`, `security-group-rules`,
//!   `floatingips`: list (filters by field), create (201), show, update (200), delete (204);
//!   failures are `{"NeutronError": {"type", "message", "detail"}}`. A new security group gets
//!   its two default egress rules; a group in use by a port, a network or subnet with ports
//!   on it cannot be deleted (409); a network's subnets go with it.
//!
//! Requests without a valid `X-Auth-Token` get 401. Seeded: networks `private` (subnet
//! 10.0.0.0/24) and `public` (external, floating IPs from 172.24.4.0/24), flavors `1`–`3`,
//! image [`IMAGE`].
//!
//! # How time passes
//! In reads, never in clocks: a server is in BUILD for `build_polls` reads of it, then ACTIVE
//! (or ERROR with a `fault`, see [`OpenStack::fail_build`]); a deleted server answers its
//! last state for `delete_polls` reads, then 404. `latency` delays every answer (for the
//! benchmark). Tokens expire when the test says so ([`OpenStack::expire_tokens`]).
//!
//! # Faults
//! [`OpenStack::fail_next`] answers the next compute or network requests with an error status
//! (409, 500, 503, …), [`OpenStack::fail_next_on`] only those of one service and with a message
//! of the test's; every request is logged ([`OpenStack::requests`]) with the password replaced.
//!
//! Written from the OpenStack API references (identity v3, compute v2.1, networking v2.0),
//! never shaped after what a client happens to send.

mod cloud;
// Shared with the other contract servers, included by path so that an includer of this
// module alone (the benchmark) gets them too; the test binaries that include `support` whole
// hold two copies of these few functions.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../loopback.rs"]
mod loopback;
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../kube/tls.rs"]
mod tls;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request as HttpRequest, Response};
use serde_json::Value as Json;
use tokio_rustls::TlsAcceptor;

#[allow(unused_imports)] // the tests' and the benchmark's, not every includer's
pub use cloud::IMAGE;
use cloud::{Answer, Cloud};
use loopback::{Loopback, lock};

/// How a server starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub username: String,
    pub password: String,
    pub project: String,
    /// An application credential (id, secret) Keystone accepts too.
    pub application_credential: Option<(String, String)>,
    /// Reads of a new server that still see it in BUILD.
    pub build_polls: u32,
    /// Reads of a deleted server that still see it.
    pub delete_polls: u32,
    /// Every server's fixed address (e.g. `127.0.0.1`, so SSH to it reaches a local sshd);
    /// otherwise 10.0.0.3, 10.0.0.4, …
    pub fixed_ip: Option<String>,
    /// Delay of every answer.
    pub latency: Duration,
    /// Requests a token authenticates before it expires (a 401 after that); unlimited when
    /// `None`.
    pub token_uses: Option<u32>,
    /// Serve HTTPS with a certificate signed by a CA made for this server ([`OpenStack::ca_pem`]).
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            username: "demo".into(),
            password: "s3cret-Pa55word".into(),
            project: "demo".into(),
            application_credential: None,
            build_polls: 3,
            delete_polls: 1,
            fixed_ip: None,
            latency: Duration::ZERO,
            token_uses: None,
            tls: false,
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, with the query string when there is one.
    pub path: String,
    /// The JSON body, with any `password` or `secret` value replaced by `"<redacted>"`.
    pub body: Option<Json>,
    pub status: u16,
}

/// An answer the test ordered in place of the next matching request's.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// `compute` or `network`; any of the two when `None`.
    pub service: Option<String>,
    pub status: u16,
    /// The message of the fault body; a generic one when `None`.
    pub message: Option<String>,
}

pub(crate) struct Shared {
    pub cloud: Mutex<Cloud>,
    pub faults: Mutex<VecDeque<Fault>>,
    pub log: Mutex<Vec<Request>>,
    pub latency: Duration,
}

/// A running contract server. Dropping it stops the server.
pub struct OpenStack {
    shared: Arc<Shared>,
    url: String,
    options: Options,
    ca_pem: String,
    /// Stops the server when dropped.
    server: Loopback,
}

impl OpenStack {
    /// Start a server on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When the machine cannot make a key, bind a loopback port or start a thread.
    pub fn start(options: Options) -> OpenStack {
        let pki = tls::make().expect("make the contract server's CA and certificate");
        let acceptor = options
            .tls
            .then(|| TlsAcceptor::from(pki.server_config.clone()));
        let (listener, address) = loopback::listen();
        let scheme = if options.tls { "https" } else { "http" };
        let url = format!("{scheme}://{address}");
        let shared = Arc::new(Shared {
            cloud: Mutex::new(Cloud::new(&url, &options)),
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            latency: options.latency,
        });
        let server = Loopback::run("openstack", listener, acceptor, shared.clone(), serve);
        OpenStack {
            shared,
            url,
            options,
            ca_pem: pki.ca_pem,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/identity/v3` (`https://` with `tls`).
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.url)
    }

    /// The CA that signed the server's certificate, as PEM (meaningful with `tls`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// A `client_config` mapping for this cloud (password auth; with `tls`, the CA as
    /// `ca_cert`).
    pub fn client_config(&self) -> Json {
        let mut config = serde_json::json!({
            "auth_url": self.auth_url(),
            "username": self.options.username,
            "password": self.options.password,
            "project_name": self.options.project,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
            "region_name": "RegionOne",
        });
        if self.options.tls {
            config["ca_cert"] = Json::String(self.ca_pem.clone());
        }
        config
    }

    /// Answer the next `n` compute or network requests with `status` (409, 500, 503, …).
    pub fn fail_next(&self, n: usize, status: u16) {
        let fault = Fault {
            service: None,
            status,
            message: None,
        };
        lock(&self.shared.faults).extend(std::iter::repeat_n(fault, n));
    }

    /// Answer the next `n` requests to `service` (`compute` or `network`) with `status` and
    /// `message` in the service's fault body; requests to the other service pass.
    pub fn fail_next_on(&self, service: &str, n: usize, status: u16, message: &str) {
        let fault = Fault {
            service: Some(service.to_string()),
            status,
            message: Some(message.to_string()),
        };
        lock(&self.shared.faults).extend(std::iter::repeat_n(fault, n));
    }

    /// Make every token issued so far invalid (as when it expires): the next request that
    /// carries one gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.shared.cloud).expire_tokens();
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.cloud).tokens_issued()
    }

    /// Servers named `name` (created from now on) end their build in ERROR with `message`
    /// as their fault.
    pub fn fail_build(&self, name: &str, message: &str) {
        lock(&self.shared.cloud).fail_build(name, message);
    }

    /// Remove a server as if someone deleted it outside windlass.
    pub fn vanish(&self, id: &str) {
        lock(&self.shared.cloud).vanish(id);
    }

    /// Create an ACTIVE server without a request (for adoption); returns its id.
    pub fn seed_server(&self, name: &str) -> String {
        lock(&self.shared.cloud).seed_server(name)
    }

    /// The servers that exist (ACTIVE, BUILD, ERROR or being deleted), as `GET` shows them.
    pub fn servers(&self) -> Vec<Json> {
        lock(&self.shared.cloud).servers()
    }

    /// The resources of a Neutron kind (`floatingips`, `security-groups`, `ports`, …).
    pub fn neutron(&self, kind: &str) -> Vec<Json> {
        lock(&self.shared.cloud).neutron(kind)
    }

    /// Key pair names.
    pub fn keypairs(&self) -> Vec<String> {
        lock(&self.shared.cloud).keypairs()
    }

    /// The id of the external network `public`.
    pub fn public_network(&self) -> String {
        lock(&self.shared.cloud).public_network()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }
}

async fn serve(
    shared: Arc<Shared>,
    request: HttpRequest<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let token = parts
        .headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Option<Json> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let service = ["compute", "network"]
        .into_iter()
        .find(|s| path.starts_with(&format!("/{s}/")));
    let injected = service.and_then(|service| {
        let mut faults = lock(&shared.faults);
        let i = faults
            .iter()
            .position(|f| f.service.as_deref().is_none_or(|s| s == service))?;
        faults.remove(i)
    });
    let answer = match injected {
        Some(fault) => cloud::injected(&path, fault.status, fault.message.as_deref()),
        None => lock(&shared.cloud).handle(
            parts.method.as_str(),
            &path,
            &query,
            token.as_deref(),
            body.as_ref(),
        ),
    };
    let Answer {
        status,
        body: reply,
        headers,
    } = answer;
    lock(&shared.log).push(Request {
        method: parts.method.to_string(),
        path: if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        },
        body: body.map(redact),
        status,
    });
    let mut response = Response::builder().status(status);
    for (k, v) in headers {
        response = response.header(k, v);
    }
    let bytes = match reply {
        Some(j) => {
            response = response.header("content-type", "application/json");
            Bytes::from(j.to_string())
        }
        None => Bytes::new(),
    };
    Ok(response.body(Full::new(bytes)).expect("a valid response"))
}

/// The body with credentials replaced, for the log.
fn redact(mut body: Json) -> Json {
    fn walk(v: &mut Json) {
        match v {
            Json::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if k == "password" || k == "secret" {
                        *v = Json::String("<redacted>".into());
                    } else {
                        walk(v);
                    }
                }
            }
            Json::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut body);
    body
}
