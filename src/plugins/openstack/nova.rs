//! Nova, the compute API (v2.1, no microversion header: the base behaviour): servers and key
//! pairs, as the plugin uses them. Each function is one request through [`Session::call`]
//! (retries and re-authentication included); a 404 is `None` or `false`, not an error.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::api::{OsError, Service, Session};

/// `POST /servers` → 202 with the new server's `id` (the server is then in BUILD). Scheduler
/// hints travel beside `server`, as `os:scheduler_hints`.
pub async fn create_server(
    session: &Session,
    server: Json,
    hints: serde_json::Map<String, Json>,
) -> Result<Json, OsError> {
    let mut body = json!({ "server": server });
    if !hints.is_empty() {
        body["os:scheduler_hints"] = Json::Object(hints);
    }
    let reply = session
        .expect(
            Service::Compute,
            Method::POST,
            "/servers",
            Some(&body),
            "create a server",
        )
        .await?;
    take(reply, "server", "Nova's answer to server create")
}

/// `GET /servers/{id}`.
pub async fn get_server(session: &Session, id: &str) -> Result<Option<Json>, OsError> {
    let action = format!("read server {id}");
    let reply = session
        .call(
            Service::Compute,
            Method::GET,
            &format!("/servers/{}", encode(id)),
            None,
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(None),
        _ if reply.ok() => take(reply.body, "server", "Nova's server").map(Some),
        _ => Err(session.refused(Service::Compute, &action, &reply)),
    }
}

/// The one server named exactly `name` (`GET /servers/detail?name=^NAME$`: Nova filters by
/// regular expression, so the match is checked here too).
pub async fn find_server(session: &Session, name: &str) -> Result<Option<Json>, OsError> {
    let pattern = format!("^{}$", regex_escape(name));
    let list = session
        .expect(
            Service::Compute,
            Method::GET,
            &format!("/servers/detail?name={}", encode(&pattern)),
            None,
            &format!("look up server {name}"),
        )
        .await?;
    let mut found: Vec<Json> = list
        .get("servers")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("name").and_then(Json::as_str) == Some(name))
        .cloned()
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(OsError::Blueprint(format!(
            "{n} servers are named {name:?}: name the one to use by its id"
        ))),
    }
}

/// `DELETE /servers/{id}` → 204; `false` when the server is already gone (404).
pub async fn delete_server(session: &Session, id: &str) -> Result<bool, OsError> {
    let action = format!("delete server {id}");
    let reply = session
        .call(
            Service::Compute,
            Method::DELETE,
            &format!("/servers/{}", encode(id)),
            None,
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(false),
        _ if reply.ok() => Ok(true),
        _ => Err(session.refused(Service::Compute, &action, &reply)),
    }
}

/// `POST /os-keypairs` → the key pair (with `private_key` when Nova generated it).
pub async fn create_keypair(session: &Session, keypair: Json) -> Result<Json, OsError> {
    let body = json!({ "keypair": keypair });
    let reply = session
        .expect(
            Service::Compute,
            Method::POST,
            "/os-keypairs",
            Some(&body),
            "create a key pair",
        )
        .await?;
    take(reply, "keypair", "Nova's answer to key pair create")
}

/// `GET /os-keypairs/{name}`.
pub async fn get_keypair(session: &Session, name: &str) -> Result<Option<Json>, OsError> {
    let action = format!("read key pair {name}");
    let reply = session
        .call(
            Service::Compute,
            Method::GET,
            &format!("/os-keypairs/{}", encode(name)),
            None,
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(None),
        _ if reply.ok() => take(reply.body, "keypair", "Nova's key pair").map(Some),
        _ => Err(session.refused(Service::Compute, &action, &reply)),
    }
}

/// `DELETE /os-keypairs/{name}`; `false` when it is already gone.
pub async fn delete_keypair(session: &Session, name: &str) -> Result<bool, OsError> {
    let action = format!("delete key pair {name}");
    let reply = session
        .call(
            Service::Compute,
            Method::DELETE,
            &format!("/os-keypairs/{}", encode(name)),
            None,
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(false),
        _ if reply.ok() => Ok(true),
        _ => Err(session.refused(Service::Compute, &action, &reply)),
    }
}

/// The object under `key` of an answer.
pub fn take(mut body: Json, key: &str, what: &str) -> Result<Json, OsError> {
    body.get_mut(key)
        .filter(|v| v.is_object())
        .map(Json::take)
        .ok_or_else(|| OsError::Protocol {
            what: what.to_string(),
            message: format!("no `{key}` object in the answer"),
        })
}

/// Percent-encoding of a path segment or query value (everything but RFC 3986's unreserved
/// characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
