//! Calls to the Kubernetes API: errors, bounded retries, and objects of any kind.
//!
//! [`call`] runs one request, retrying what the API documents as retryable — 429 (too many
//! requests) and 5xx answers, and connections that broke mid-request — a bounded number of
//! times with a growing pause; a 4xx answer is ours to fix and is never retried. A refusal
//! becomes [`KubeError::Api`] quoting the API's `Status` message.
//!
//! [`Target`] is one object of a descriptor: its kind is resolved to an API path by discovery
//! of its group version only (`GET /apis/GROUP/VERSION`), so any kind the server serves works,
//! custom ones included, without a typed binding per kind.

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value as Json;

use super::super::OpError;
use super::super::rest::error_chain;
use crate::template::TemplateError;

/// Attempts of one request when the API answers 429 or 5xx.
pub const ATTEMPTS: u32 = 5;
/// The pause before the first retry; each next one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(4);

/// Why a Kubernetes operation failed. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The client configuration is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// The API answered with a failure `Status`.
    #[error("the Kubernetes API refused to {action} {what}: {message} ({code} {reason})")]
    Api {
        action: &'static str,
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer: connection, TLS or protocol failure.
    #[error("cannot {action} {what}: {message}")]
    Transport {
        action: &'static str,
        what: String,
        message: String,
    },
    /// An object of a descriptor cannot be sent as it is.
    #[error("{what}: {message}")]
    Object { what: String, message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{what} was not ready after {}s: {state}", waited.as_secs_f64())]
    NotReady {
        what: String,
        waited: Duration,
        state: String,
    },
    #[error("{what} was still there {}s after it was deleted", waited.as_secs_f64())]
    NotGone { what: String, waited: Duration },
    /// A scale amount that is not one, or one that goes below zero.
    #[error("{0}")]
    Amount(String),
}

impl KubeError {
    /// How the engine treats it: what retrying cannot fix is not retried.
    pub fn into_op_error(self) -> OpError {
        match &self {
            KubeError::Api { code, .. } if *code == 429 || *code >= 500 => {
                OpError::Failed(self.to_string())
            }
            KubeError::Transport { .. }
            | KubeError::NotReady { .. }
            | KubeError::NotGone { .. } => OpError::Failed(self.to_string()),
            _ => OpError::NonRecoverable(self.to_string()),
        }
    }

    /// The HTTP status of an API refusal.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn from_kube(e: kube::Error, action: &'static str, what: &str) -> KubeError {
        match e {
            kube::Error::Api(status) => KubeError::Api {
                action,
                what: what.to_string(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::Discovery(d) => KubeError::Object {
                what: what.to_string(),
                message: format!("the API server does not serve this kind: {d}"),
            },
            other => KubeError::Transport {
                action,
                what: what.to_string(),
                message: error_chain(&other),
            },
        }
    }
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) => true,
        _ => false,
    }
}

/// Run `request` (`action` on `what`, for messages), retrying 429, 5xx and broken connections
/// up to [`ATTEMPTS`] times with a doubling pause.
pub async fn call<T, F, Fut>(
    action: &'static str,
    what: &str,
    mut request: F,
) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                attempt += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => return Err(KubeError::from_kube(e, action, what)),
        }
    }
}

/// One object: where it lives in the API and what it is called.
#[derive(Clone)]
pub struct Target {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

impl Target {
    /// `Deployment default/web`, `Namespace prod`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name),
            None => format!("{} {}", self.resource.kind, self.name),
        }
    }

    pub fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }

    /// The object, or `None` when the API says it does not exist.
    pub async fn get(&self, client: &kube::Client) -> Result<Option<Json>, KubeError> {
        let api = self.api(client);
        let got = call("read", &self.describe(), || api.get_opt(&self.name)).await?;
        got.map(|o| to_json(&o, &self.describe())).transpose()
    }
}

/// `what` names the object in messages (`descriptor.yaml, document 2`).
pub fn identity(object: &Json, what: &str) -> Result<(GroupVersionKind, String), KubeError> {
    let field = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
    };
    let missing = |name: &str| KubeError::Object {
        what: what.to_string(),
        message: format!("the object has no `{name}`"),
    };
    let api_version = field("/apiVersion").ok_or_else(|| missing("apiVersion"))?;
    let kind = field("/kind").ok_or_else(|| missing("kind"))?;
    let name = field("/metadata/name").ok_or_else(|| missing("metadata.name"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok((
        GroupVersionKind::gvk(group, version, kind),
        name.to_string(),
    ))
}

/// Resolve an object's kind (discovery of its group version) and namespace: its own
/// `metadata.namespace`, else `default_namespace`, for a namespaced kind; none otherwise.
pub async fn target(
    client: &kube::Client,
    object: &Json,
    default_namespace: &str,
    what: &str,
) -> Result<Target, KubeError> {
    let (gvk, name) = identity(object, what)?;
    let described = format!("{} {name}", gvk.kind);
    let (resource, capabilities) = call("discover the kind of", &described, || {
        kube::discovery::pinned_kind(client, &gvk)
    })
    .await?;
    let namespace = match capabilities.scope {
        Scope::Namespaced => Some(
            object
                .pointer("/metadata/namespace")
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(default_namespace)
                .to_string(),
        ),
        Scope::Cluster => None,
    };
    Ok(Target {
        resource,
        namespace,
        name,
    })
}

pub fn to_json(object: &DynamicObject, what: &str) -> Result<Json, KubeError> {
    serde_json::to_value(object).map_err(|e| KubeError::Object {
        what: what.to_string(),
        message: format!("the API's answer cannot be read: {e}"),
    })
}

pub fn from_json(object: &Json, what: &str) -> Result<DynamicObject, KubeError> {
    serde_json::from_value(object.clone()).map_err(|e| KubeError::Object {
        what: what.to_string(),
        message: format!("not a Kubernetes object: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_needs_api_version_kind_and_name() {
        let (gvk, name) = identity(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            "d",
        )
        .unwrap();
        assert_eq!((gvk.group.as_str(), gvk.version.as_str()), ("apps", "v1"));
        assert_eq!((gvk.kind.as_str(), name.as_str()), ("Deployment", "web"));
        let (core, _) = identity(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            "c",
        )
        .unwrap();
        assert_eq!(core.group, "");
        let e = identity(
            &json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            "file.yaml, document 1",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "file.yaml, document 1: the object has no `metadata.name`"
        );
    }

    #[test]
    fn only_throttling_and_server_errors_are_recoverable() {
        let api = |code| KubeError::Api {
            action: "apply",
            what: "x".into(),
            code,
            reason: String::new(),
            message: String::new(),
        };
        assert!(matches!(api(503).into_op_error(), OpError::Failed(_)));
        assert!(matches!(api(429).into_op_error(), OpError::Failed(_)));
        assert!(matches!(
            api(409).into_op_error(),
            OpError::NonRecoverable(_)
        ));
        assert!(matches!(
            api(422).into_op_error(),
            OpError::NonRecoverable(_)
        ));
    }
}
