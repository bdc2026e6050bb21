//! The HTTP side of the contract server: authentication, injected failures, routing of
//! Kubernetes API paths to the store, body decoding, and the request log.
//!
//! Every request is logged (method, path, decoded query, content type, decoded body, status;
//! never the `Authorization` header). A request without the bearer token gets a 401 `Status`;
//! then, if failures were queued with `fail_next`, the next one is answered with it; otherwise
//! it is routed. Watches are answered with a body that streams one JSON event per line.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Response};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::super::loopback::{decode_query, lock};
use super::kinds::{self, Kind};
use super::status::{Cause, Status};
use super::store::{PatchType, Selector, Store};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The body, decoded from JSON (or YAML, for apply); `None` when empty or undecodable.
    pub body: Option<Json>,
    /// The HTTP status answered.
    pub status: u16,
}

impl Request {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What every connection shares.
pub struct Shared {
    pub store: Mutex<Store>,
    pub token: String,
    pub server_address: String,
    pub faults: Mutex<VecDeque<u16>>,
    pub log: Mutex<Vec<Request>>,
}

pub type ResponseBody = BoxBody<Bytes, Infallible>;

enum Reply {
    Object(u16, Json),
    Failure(Status),
    Watch(UnboundedReceiver<Vec<u8>>),
}

impl From<Result<Json, Status>> for Reply {
    fn from(result: Result<Json, Status>) -> Reply {
        match result {
            Ok(object) => Reply::Object(200, object),
            Err(status) => Reply::Failure(status),
        }
    }
}

impl From<Result<(u16, Json), Status>> for Reply {
    fn from(result: Result<(u16, Json), Status>) -> Reply {
        match result {
            Ok((code, object)) => Reply::Object(code, object),
            Err(status) => Reply::Failure(status),
        }
    }
}

/// A watch: events as the store sends them, until the client goes.
struct WatchBody(UnboundedReceiver<Vec<u8>>);

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(Bytes::from(l)))))
    }
}

/// What a request carries, decoded.
struct Incoming_ {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: String,
    manager: String,
    body: Result<Option<Json>, String>,
}

impl Incoming_ {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body, which the request must have.
    fn object(&self) -> Result<Json, Status> {
        match &self.body {
            Ok(Some(body)) => Ok(body.clone()),
            Ok(None) => Err(Status::bad_request("the request body is empty")),
            Err(e) => Err(Status::bad_request(format!(
                "the body of the request could not be decoded: {e}"
            ))),
        }
    }
}

pub async fn serve(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let authorized =
        header("authorization").as_deref() == Some(format!("Bearer {}", shared.token).as_str());
    let query = decode_query(parts.uri.query().unwrap_or_default());
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let decoded = decode_body(&content_type, &bytes);
    let manager = query
        .iter()
        .find(|(k, _)| k == "fieldManager")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            header("user-agent").map(|ua| ua.split('/').next().unwrap_or_default().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let incoming = Incoming_ {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query,
        content_type: content_type.clone(),
        manager,
        body: decoded,
    };

    let injected = if authorized {
        lock(&shared.faults).pop_front()
    } else {
        None
    };
    let reply = if !authorized {
        Reply::Failure(Status::unauthorized())
    } else if let Some(code) = injected {
        Reply::Failure(Status::injected(code))
    } else {
        route(&shared, &incoming)
    };

    let (code, response) = match reply {
        Reply::Object(code, object) => (code, json_response(code, &object, None)),
        Reply::Failure(status) => (
            status.code,
            json_response(status.code, &status.body(), status.retry_after),
        ),
        Reply::Watch(receiver) => {
            let response = Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(WatchBody(receiver).boxed())
                .unwrap_or_else(|_| Response::new(empty()));
            (200, response)
        }
    };
    lock(&shared.log).push(Request {
        method: incoming.method.to_string(),
        path: incoming.path,
        query: incoming.query,
        content_type: (!content_type.is_empty()).then_some(content_type),
        body: incoming.body.ok().flatten(),
        status: code,
    });
    Ok(response)
}

fn empty() -> ResponseBody {
    Full::new(Bytes::new()).boxed()
}

fn json_response(code: u16, body: &Json, retry_after: Option<u32>) -> Response<ResponseBody> {
    let mut builder = Response::builder()
        .status(code)
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        builder = builder.header("retry-after", seconds.to_string());
    }
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    builder
        .body(Full::new(Bytes::from(bytes)).boxed())
        .unwrap_or_else(|_| Response::new(empty()))
}

fn decode_body(content_type: &str, bytes: &[u8]) -> Result<Option<Json>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    if content_type.starts_with("application/apply-patch+yaml") {
        serde_saphyr::from_str::<Json>(text)
            .map(Some)
            .map_err(|e| e.to_string())
    } else {
        serde_json::from_str::<Json>(text)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

fn route(shared: &Shared, request: &Incoming_) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let get = request.method == Method::GET;
    let discovery = |document: Option<Json>| match (get, document) {
        (true, Some(document)) => Reply::Object(200, document),
        (false, Some(_)) => Reply::Failure(Status::method_not_allowed()),
        (_, None) => Reply::Failure(Status::no_route()),
    };
    match segments.as_slice() {
        ["version"] => discovery(Some(kinds::version_info())),
        ["api"] => discovery(Some(kinds::core_versions(&shared.server_address))),
        ["apis"] => discovery(Some(kinds::group_list())),
        ["api", version] => {
            discovery(kinds::group_served("", version).then(|| kinds::resource_list("", version)))
        }
        ["apis", group] => discovery(kinds::group(group)),
        ["apis", group, version] => discovery(
            kinds::group_served(group, version).then(|| kinds::resource_list(group, version)),
        ),
        ["openapi", "v3"] => discovery(Some(super::openapi::root())),
        ["openapi", "v3", rest @ ..] => discovery(super::openapi::group_version(&rest.join("/"))),
        ["api", version, rest @ ..] => resource(shared, request, "", version, rest),
        ["apis", group, version, rest @ ..] => resource(shared, request, group, version, rest),
        _ => Reply::Failure(Status::no_route()),
    }
}

fn resource(
    shared: &Shared,
    request: &Incoming_,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Reply {
    let kind = |plural: &str| kinds::by_plural(group, version, plural);
    match rest {
        [plural] => match kind(plural) {
            Some(k) => collection(shared, request, k, None),
            None => Reply::Failure(Status::no_route()),
        },
        [plural, name] => match kind(plural) {
            Some(k) if !k.namespaced => item(shared, request, k, "", name),
            _ => Reply::Failure(Status::no_route()),
        },
        ["namespaces", namespace, plural] => match kind(plural) {
            Some(k) if k.namespaced => collection(shared, request, k, Some(namespace)),
            _ => Reply::Failure(Status::no_route()),
        },
        ["namespaces", namespace, plural, name] => match kind(plural) {
            Some(k) if k.namespaced => item(shared, request, k, namespace, name),
            _ => Reply::Failure(Status::no_route()),
        },
        ["namespaces", namespace, plural, name, "scale"] => match kind(plural) {
            Some(k) if k.scale => scale(shared, request, k, namespace, name),
            _ => Reply::Failure(Status::no_route()),
        },
        _ => Reply::Failure(Status::no_route()),
    }
}

fn selector(request: &Incoming_, namespace: Option<&str>) -> Result<Selector, Status> {
    let mut selector = Selector {
        namespace: namespace.map(str::to_string),
        ..Selector::default()
    };
    for term in request
        .param("fieldSelector")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
    {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .unwrap_or((term, ""));
        match field {
            "metadata.name" => selector.name = Some(value.to_string()),
            "metadata.namespace" => selector.namespace = Some(value.to_string()),
            other => {
                return Err(Status::bad_request(format!(
                    "\"{other}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                )));
            }
        }
    }
    for term in request
        .param("labelSelector")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
    {
        match term.split_once("==").or_else(|| term.split_once('=')) {
            Some((k, v)) if !k.ends_with('!') => {
                selector.labels.push((k.to_string(), v.to_string()))
            }
            _ => {
                return Err(Status::bad_request(format!(
                    "unable to parse requirement: {term:?} (the contract server supports key=value terms)"
                )));
            }
        }
    }
    Ok(selector)
}

fn refuse_dry_run(request: &Incoming_) -> Result<(), Status> {
    match request.param("dryRun") {
        Some(_) => Err(Status::bad_request(
            "dryRun is not supported by the contract server",
        )),
        None => Ok(()),
    }
}

fn collection(
    shared: &Shared,
    request: &Incoming_,
    kind: &'static Kind,
    namespace: Option<&str>,
) -> Reply {
    let result = (|| -> Result<Reply, Status> {
        match request.method {
            Method::GET => {
                let selector = selector(request, namespace)?;
                let mut store = lock(&shared.store);
                if matches!(request.param("watch"), Some("true" | "1")) {
                    let since = request
                        .param("resourceVersion")
                        .and_then(|v| v.parse().ok());
                    let (sender, receiver) = unbounded_channel();
                    store.watch(kind, selector, since, sender);
                    Ok(Reply::Watch(receiver))
                } else {
                    Ok(Reply::Object(200, store.list(kind, &selector)))
                }
            }
            Method::POST => {
                refuse_dry_run(request)?;
                let namespace = match (kind.namespaced, namespace) {
                    (true, Some(ns)) => ns,
                    (false, None) => "",
                    _ => return Err(Status::method_not_allowed()),
                };
                let body = request.object()?;
                Ok(lock(&shared.store)
                    .create(kind, namespace, body, &request.manager, false)
                    .into())
            }
            _ => Err(Status::method_not_allowed()),
        }
    })();
    result.unwrap_or_else(Reply::Failure)
}

fn item(
    shared: &Shared,
    request: &Incoming_,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
) -> Reply {
    let result = (|| -> Result<Reply, Status> {
        match request.method {
            Method::GET => Ok(lock(&shared.store).get(kind, namespace, name).into()),
            Method::PUT => {
                refuse_dry_run(request)?;
                let body = request.object()?;
                Ok(lock(&shared.store)
                    .replace(kind, namespace, name, body, &request.manager)
                    .into())
            }
            Method::PATCH => {
                refuse_dry_run(request)?;
                let body = request.object()?;
                if request
                    .content_type
                    .starts_with("application/apply-patch+yaml")
                {
                    let Some(manager) = request.param("fieldManager").filter(|m| !m.is_empty())
                    else {
                        return Err(Status::invalid(
                            "PatchOptions",
                            "meta.k8s.io",
                            "",
                            &[Cause::required(
                                "fieldManager",
                                "is required for apply patch",
                            )],
                        ));
                    };
                    let force = request.param("force") == Some("true");
                    return Ok(lock(&shared.store)
                        .apply(kind, namespace, name, body, manager, force)
                        .into());
                }
                let patch_type = PatchType::from_content_type(&request.content_type)
                    .ok_or_else(|| Status::unsupported_media_type(&request.content_type))?;
                Ok(lock(&shared.store)
                    .patch(kind, namespace, name, patch_type, &body, &request.manager)
                    .into())
            }
            Method::DELETE => {
                refuse_dry_run(request)?;
                let mut options = match &request.body {
                    Ok(Some(body)) => body.clone(),
                    _ => json!({}),
                };
                if let Some(policy) = request.param("propagationPolicy") {
                    options["propagationPolicy"] = json!(policy);
                }
                Ok(lock(&shared.store)
                    .delete(kind, namespace, name, &options)
                    .into())
            }
            _ => Err(Status::method_not_allowed()),
        }
    })();
    result.unwrap_or_else(Reply::Failure)
}

fn scale(
    shared: &Shared,
    request: &Incoming_,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
) -> Reply {
    let result = (|| -> Result<Reply, Status> {
        let mut store = lock(&shared.store);
        match request.method {
            Method::GET => Ok(store.get_scale(kind, namespace, name).into()),
            Method::PUT => {
                refuse_dry_run(request)?;
                let body = request.object()?;
                if body.get("kind").and_then(Json::as_str) != Some("Scale") {
                    return Err(Status::bad_request(
                        "the kind in the data does not match the expected kind (Scale)",
                    ));
                }
                Ok(store
                    .set_scale(kind, namespace, name, &body, &request.manager)
                    .into())
            }
            Method::PATCH => {
                refuse_dry_run(request)?;
                let body = request.object()?;
                let patch_type = PatchType::from_content_type(&request.content_type)
                    .ok_or_else(|| Status::unsupported_media_type(&request.content_type))?;
                let object = store
                    .peek(kind, namespace, name)
                    .ok_or_else(|| Status::not_found(kind, name))?;
                let mut scale = super::store::scale_of(&object);
                patch_type.apply(&mut scale, &body).map_err(|e| {
                    Status::invalid(
                        "Scale",
                        "autoscaling",
                        name,
                        &[Cause::invalid("patch", "", &e.0)],
                    )
                })?;
                Ok(store
                    .set_scale(kind, namespace, name, &scale, &request.manager)
                    .into())
            }
            _ => Err(Status::method_not_allowed()),
        }
    })();
    result.unwrap_or_else(Reply::Failure)
}
