//! Neutron, the networking API (v2.0): networks, subnets, ports, security groups and their
//! rules, floating IPs. Every resource has the same shape (`POST /v2.0/KIND` with
//! `{SINGULAR: …}` → 201, `GET`/`PUT`/`DELETE /v2.0/KIND/{id}`, lists under the plural key), so
//! one set of functions serves them all, parameterised by a [`Kind`]. A 404 is `None` or
//! `false`, not an error.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::api::{OsError, Service, Session};
use super::nova::{encode, take};

/// One kind of Neutron resource.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The URL segment (`security-groups`).
    pub path: &'static str,
    /// The body key of one (`security_group`).
    pub singular: &'static str,
    /// The body key of a list (`security_groups`).
    pub plural: &'static str,
    /// For messages.
    pub label: &'static str,
}

pub const NETWORK: Kind = Kind {
    path: "networks",
    singular: "network",
    plural: "networks",
    label: "network",
};
pub const SUBNET: Kind = Kind {
    path: "subnets",
    singular: "subnet",
    plural: "subnets",
    label: "subnet",
};
pub const PORT: Kind = Kind {
    path: "ports",
    singular: "port",
    plural: "ports",
    label: "port",
};
pub const SECURITY_GROUP: Kind = Kind {
    path: "security-groups",
    singular: "security_group",
    plural: "security_groups",
    label: "security group",
};
pub const SECURITY_GROUP_RULE: Kind = Kind {
    path: "security-group-rules",
    singular: "security_group_rule",
    plural: "security_group_rules",
    label: "security group rule",
};
pub const FLOATING_IP: Kind = Kind {
    path: "floatingips",
    singular: "floatingip",
    plural: "floatingips",
    label: "floating IP",
};

/// `POST /v2.0/KIND` → 201 with the resource.
pub async fn create(session: &Session, kind: Kind, fields: Json) -> Result<Json, OsError> {
    let body = json!({ kind.singular: fields });
    let action = format!("create a {}", kind.label);
    let reply = session
        .expect(
            Service::Network,
            Method::POST,
            &format!("/{}", kind.path),
            Some(&body),
            &action,
        )
        .await?;
    take(reply, kind.singular, "Neutron's answer")
}

/// `GET /v2.0/KIND/{id}`.
pub async fn get(session: &Session, kind: Kind, id: &str) -> Result<Option<Json>, OsError> {
    let action = format!("read {} {id}", kind.label);
    let reply = session
        .call(
            Service::Network,
            Method::GET,
            &format!("/{}/{}", kind.path, encode(id)),
            None,
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(None),
        _ if reply.ok() => take(reply.body, kind.singular, "Neutron's answer").map(Some),
        _ => Err(session.refused(Service::Network, &action, &reply)),
    }
}

/// `GET /v2.0/KIND?FIELD=VALUE…`.
pub async fn list(
    session: &Session,
    kind: Kind,
    query: &[(&str, &str)],
) -> Result<Vec<Json>, OsError> {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let path = if query.is_empty() {
        format!("/{}", kind.path)
    } else {
        format!("/{}?{}", kind.path, query.join("&"))
    };
    let reply = session
        .expect(
            Service::Network,
            Method::GET,
            &path,
            None,
            &format!("list {}s", kind.label),
        )
        .await?;
    Ok(reply
        .get(kind.plural)
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default())
}

/// The one resource named exactly `name`, if any (several is an error: ids name them).
pub async fn find(session: &Session, kind: Kind, name: &str) -> Result<Option<Json>, OsError> {
    let mut found = list(session, kind, &[("name", name)]).await?;
    found.retain(|r| r.get("name").and_then(Json::as_str) == Some(name));
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(OsError::Blueprint(format!(
            "{n} {}s are named {name:?}: name the one to use by its id",
            kind.label
        ))),
    }
}

/// The resource with id `id`, else the one named `id`.
pub async fn by_id_or_name(
    session: &Session,
    kind: Kind,
    id: &str,
) -> Result<Option<Json>, OsError> {
    match get(session, kind, id).await? {
        Some(r) => Ok(Some(r)),
        None => find(session, kind, id).await,
    }
}

/// `PUT /v2.0/KIND/{id}` → 200 with the resource.
pub async fn update(
    session: &Session,
    kind: Kind,
    id: &str,
    fields: Json,
) -> Result<Option<Json>, OsError> {
    let body = json!({ kind.singular: fields });
    let action = format!("update {} {id}", kind.label);
    let reply = session
        .call(
            Service::Network,
            Method::PUT,
            &format!("/{}/{}", kind.path, encode(id)),
            Some(&body),
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(None),
        _ if reply.ok() => take(reply.body, kind.singular, "Neutron's answer").map(Some),
        _ => Err(session.refused(Service::Network, &action, &reply)),
    }
}

/// `DELETE /v2.0/KIND/{id}` → 204; `false` when it is already gone.
pub async fn delete(session: &Session, kind: Kind, id: &str) -> Result<bool, OsError> {
    let action = format!("delete {} {id}", kind.label);
    let reply = session
        .call(
            Service::Network,
            Method::DELETE,
            &format!("/{}/{}", kind.path, encode(id)),
            None,
            &action,
        )
        .await?;
    match reply.status {
        404 => Ok(false),
        _ if reply.ok() => Ok(true),
        _ => Err(session.refused(Service::Network, &action, &reply)),
    }
}
