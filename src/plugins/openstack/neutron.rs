//! Neutron, the networking API (v2.0): networks, subnets, ports, security groups and their
//! rules, floating IPs. Every resource has the shape [`Kind`] describes, so create, read,
//! update and delete are [`Session::create`] and friends; here are the kinds, lists and
//! look-ups by name. A 404 is `None` or `false`, not an error.

use reqwest::Method;
use serde_json::{Value as Json, json};

pub use super::api::Kind;
use super::api::{self, OsError, Service, Session};
use crate::plugins::rest::percent_encode;

pub const NETWORK: Kind = Kind::new(Service::Network, "networks", "network", "network");
pub const SUBNET: Kind = Kind::new(Service::Network, "subnets", "subnet", "subnet");
pub const PORT: Kind = Kind::new(Service::Network, "ports", "port", "port");
pub const SECURITY_GROUP: Kind = Kind::new(
    Service::Network,
    "security-groups",
    "security_group",
    "security group",
);
pub const SECURITY_GROUP_RULE: Kind = Kind::new(
    Service::Network,
    "security-group-rules",
    "security_group_rule",
    "security group rule",
);
pub const FLOATING_IP: Kind =
    Kind::new(Service::Network, "floatingips", "floatingip", "floating IP");

/// `POST /v2.0/KIND` → 201 with the resource.
pub async fn create(session: &Session, kind: Kind, fields: Json) -> Result<Json, OsError> {
    session
        .create(kind, &json!({ kind.singular: fields }))
        .await
}

/// `GET /v2.0/KIND?FIELD=VALUE…`.
pub async fn list(
    session: &Session,
    kind: Kind,
    query: &[(&str, &str)],
) -> Result<Vec<Json>, OsError> {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let path = if query.is_empty() {
        format!("/{}", kind.path)
    } else {
        format!("/{}?{}", kind.path, query.join("&"))
    };
    let reply = session
        .expect(
            kind.service,
            Method::GET,
            &path,
            None,
            &format!("list {}s", kind.label),
        )
        .await?;
    Ok(reply
        .get(kind.plural())
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default())
}

/// The one resource named exactly `name`, if any (several is an error: ids name them).
pub async fn find(session: &Session, kind: Kind, name: &str) -> Result<Option<Json>, OsError> {
    let found = list(session, kind, &[("name", name)]).await?;
    api::named(kind, name, found)
}

/// The resource with id `id`, else the one named `id`.
pub async fn by_id_or_name(
    session: &Session,
    kind: Kind,
    id: &str,
) -> Result<Option<Json>, OsError> {
    match session.read(kind, id).await? {
        Some(r) => Ok(Some(r)),
        None => find(session, kind, id).await,
    }
}
