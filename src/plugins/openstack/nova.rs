//! Nova, the compute API (v2.1, no microversion header: the base behaviour): servers and key
//! pairs, as the plugin uses them. Each function is one request through [`Session::call`]
//! (retries and re-authentication included); a 404 is `None` or `false`, not an error. Both
//! kinds have the shape [`Kind`] describes, so most functions are [`Session::read`] and friends.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::api::{self, Kind, OsError, Service, Session};
use crate::plugins::rest::percent_encode;

const SERVERS: Kind = Kind::new(Service::Compute, "servers", "server", "server");
const KEYPAIRS: Kind = Kind::new(Service::Compute, "os-keypairs", "keypair", "key pair");

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
    session.create(SERVERS, &body).await
}

/// `GET /servers/{id}`.
pub async fn get_server(session: &Session, id: &str) -> Result<Option<Json>, OsError> {
    session.read(SERVERS, id).await
}

/// The one server named exactly `name` (`GET /servers/detail?name=^NAME$`: Nova filters by
/// regular expression, so the match is checked here too).
pub async fn find_server(session: &Session, name: &str) -> Result<Option<Json>, OsError> {
    let pattern = format!("^{}$", regex_escape(name));
    let mut list = session
        .expect(
            Service::Compute,
            Method::GET,
            &format!("/servers/detail?name={}", percent_encode(&pattern)),
            None,
            &format!("look up server {name}"),
        )
        .await?;
    let servers = match list.get_mut("servers").map(Json::take) {
        Some(Json::Array(servers)) => servers,
        _ => Vec::new(),
    };
    api::named(SERVERS, name, servers)
}

/// `DELETE /servers/{id}` → 204; `false` when the server is already gone (404).
pub async fn delete_server(session: &Session, id: &str) -> Result<bool, OsError> {
    session.delete(SERVERS, id).await
}

/// `POST /os-keypairs` → the key pair (with `private_key` when Nova generated it).
pub async fn create_keypair(session: &Session, keypair: Json) -> Result<Json, OsError> {
    session
        .create(KEYPAIRS, &json!({ "keypair": keypair }))
        .await
}

/// `GET /os-keypairs/{name}`.
pub async fn get_keypair(session: &Session, name: &str) -> Result<Option<Json>, OsError> {
    session.read(KEYPAIRS, name).await
}

/// `DELETE /os-keypairs/{name}`; `false` when it is already gone.
pub async fn delete_keypair(session: &Session, name: &str) -> Result<bool, OsError> {
    session.delete(KEYPAIRS, name).await
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
