//! A Kubernetes API contract server for tests: an in-process HTTPS server on `127.0.0.1:0`
//! that answers what kubectl and windlass's Kubernetes plugin ask of a real API server.
//!
//! # What it serves
//! Discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/GROUP/v1`) for Namespace, Pod,
//! Service, ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim (core), Deployment,
//! ReplicaSet, StatefulSet, DaemonSet (`apps`) and Ingress (`networking.k8s.io`); GET, LIST (label
//! and field selectors), WATCH, POST, PUT, PATCH (server-side apply, strategic merge, JSON merge,
//! JSON patch) and DELETE (`propagationPolicy`, preconditions) of their objects; the
//! `autoscaling/v1` `Scale` subresource of Deployments, ReplicaSets and StatefulSets. Failures
//! are `Status` bodies with the real API's reasons and messages (401, 404, 409 `AlreadyExists` /
//! `Conflict`, 422 `Invalid`, …). The fixtures follow the Kubernetes API reference, not any
//! client. OpenAPI v3 documents list paths and parameters but no schemas (`openapi`). Not served:
//! OpenAPI v2, aggregated discovery (clients fall back to the
//! documents above, as they do with older servers), protobuf, `dryRun`, `/status`
//! subresources, and list merging by key in server-side apply (lists are atomic).
//!
//! # How time passes
//! In reads, never in clocks (see `store`): a workload becomes ready after `ready_after` reads
//! of it, a deleted object is gone after `delete_after` reads; a watch sees the end at once.
//!
//! # Data flow
//! `KubeApi::start` makes a CA and server certificate (`tls`), writes a kubeconfig, binds the
//! port and runs the server on a thread of its own with a single-threaded tokio runtime, so
//! sync and async tests use it alike. Each request goes through `http` (auth, injected
//! failures, routing, the request log) to the `store` (objects, countdowns, ownership, watches),
//! which answers with an object or a `status::Status`. Dropping the handle stops the server and
//! removes its directory.

mod http;
mod kinds;
mod openapi;
mod patch;
mod status;
mod store;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio_rustls::TlsAcceptor;

use super::loopback::{self, Loopback, lock};
pub use http::Request;
use http::Shared;
use store::{Countdowns, Store};

/// How a server starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bearer token clients must send; a random one when `None`.
    pub token: Option<String>,
    /// Reads of a workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Pod) that still see
    /// it not ready after it is written; the next read sees it ready. 0: ready at once.
    pub ready_after: u32,
    /// Reads that still return a deleted object; the next one gets 404. 0: gone at once.
    pub delete_after: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            token: None,
            ready_after: 2,
            delete_after: 1,
        }
    }
}

/// A running contract server. Dropping it stops the server.
pub struct KubeApi {
    shared: Arc<Shared>,
    url: String,
    dir: PathBuf,
    kubeconfig: PathBuf,
    ca_pem: String,
    /// Stops the server when dropped.
    server: Loopback,
}

static SERVERS: AtomicUsize = AtomicUsize::new(0);

impl KubeApi {
    /// Start a server on `127.0.0.1:0` and write its kubeconfig.
    ///
    /// # Panics
    /// When the machine cannot make a key, bind a loopback port, write to the temporary
    /// directory or start a thread: the test cannot run then.
    pub fn start(options: Options) -> KubeApi {
        let pki = tls::make().expect("make the contract server's CA and certificate");
        let (listener, address) = loopback::listen();
        let url = format!("https://{address}");
        let store = Store::new(Countdowns {
            ready_after: options.ready_after,
            delete_after: options.delete_after,
        });
        let token = options.token.unwrap_or_else(|| {
            let ids: Vec<String> = (0..2).map(|_| store_token_part()).collect();
            format!("contract-{}", ids.join(""))
        });

        let serial = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("windlass-kubeapi-{}-{serial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the contract server's directory");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, tls::kubeconfig(&url, &pki.ca_pem, &token))
            .expect("write the kubeconfig");

        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            token,
            server_address: address.to_string(),
            faults: Mutex::new(Default::default()),
            log: Mutex::new(Vec::new()),
        });
        let acceptor = TlsAcceptor::from(pki.server_config);
        let server = Loopback::run(
            "kube",
            listener,
            Some(acceptor),
            shared.clone(),
            http::serve,
        );
        KubeApi {
            shared,
            url,
            dir,
            kubeconfig,
            ca_pem: pki.ca_pem,
            server,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig naming this server, its CA and the token (context `windlass-contract`,
    /// namespace `default`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The CA that signed the server's certificate, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Create an object as a client's POST would (system metadata, defaults, status, a
    /// countdown), without a request: the object's `kind` says where, `metadata.namespace`
    /// defaults to `default`. Returns the stored object.
    ///
    /// # Panics
    /// With the API's message when the API would refuse the object.
    pub fn seed(&self, object: Json) -> Json {
        let kind_name = object
            .get("kind")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let kind = kinds::by_kind(kind_name)
            .unwrap_or_else(|| panic!("the contract server has no kind {kind_name:?}"));
        let namespace = if kind.namespaced {
            object
                .pointer("/metadata/namespace")
                .and_then(Json::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        match lock(&self.shared.store).create(kind, &namespace, object, "seed", false) {
            Ok((_, stored)) => stored,
            Err(status) => panic!("seed refused: {}", status.message),
        }
    }

    /// The object as stored (`namespace` is ignored for cluster-scoped kinds), without counting
    /// as a read.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Json> {
        let kind = kinds::by_kind(kind)?;
        let namespace = if kind.namespaced { namespace } else { "" };
        lock(&self.shared.store).peek(kind, namespace, name)
    }

    /// Answer the next `n` authenticated requests with `status` (429 carries `Retry-After: 1`;
    /// 503, 500 and 504 the API's reasons).
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.shared.faults).extend(std::iter::repeat_n(status, n));
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    /// Never let this object become ready (also when it is created later).
    ///
    /// # Panics
    /// When the server has no such kind.
    pub fn never_ready(&self, kind: &str, namespace: &str, name: &str) {
        let kind = kinds::by_kind(kind)
            .unwrap_or_else(|| panic!("the contract server has no kind {kind:?}"));
        let namespace = if kind.namespaced { namespace } else { "" };
        lock(&self.shared.store).never_ready(kind, namespace, name);
    }

    /// Objects written from now on become ready after this many reads.
    pub fn ready_after(&self, polls: u32) {
        lock(&self.shared.store).countdowns.ready_after = polls;
    }

    /// Objects deleted from now on are gone after this many reads.
    pub fn delete_after(&self, polls: u32) {
        lock(&self.shared.store).countdowns.delete_after = polls;
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn store_token_part() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("{:016x}", RandomState::new().hash_one(std::process::id()))
}
