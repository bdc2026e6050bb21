//! Nova servers and key pairs, and the association of floating IPs with servers.
//!
//! # A server's life
//! `create` adopts (`use_external_resource`) or posts the server, records its id — committed —
//! and only then polls `GET /servers/{id}` with a growing pause (`poll_interval`, ×1.5, at
//! most 10 s) until ACTIVE, ERROR (fails quoting `fault.message`, never retried) or
//! `wait_timeout`. A resumed create finds the recorded id and polls it instead of posting a
//! second server. The addresses of the ACTIVE server become runtime properties as Cloudify's
//! plugin names them ([`record_addresses`]). `delete` deletes what was recorded and polls until
//! Nova answers 404; a server already gone is success, an adopted one is left alone.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value as Json, json};

use super::api::{OsError, Session};
use super::instance::{self, Linked, string_of, text};
use super::neutron::{self, FLOATING_IP, PORT};
use super::nova;
use super::own_properties;
use crate::plugins::OperationContext;

const MAX_POLL: Duration = Duration::from_secs(10);

/// One wait for a server: the deadline and the pause, growing ×1.5 up to [`MAX_POLL`].
struct Polling {
    started: Instant,
    pause: Duration,
    timeout: Duration,
}

impl Polling {
    fn start(ctx: &OperationContext) -> Polling {
        let seconds = |key: &str, default: f64| {
            ctx.inputs
                .get(key)
                .and_then(Json::as_f64)
                .filter(|s| *s > 0.0 && s.is_finite())
                .unwrap_or(default)
        };
        Polling {
            started: Instant::now(),
            pause: Duration::from_secs_f64(seconds("poll_interval", 1.0)),
            timeout: Duration::from_secs_f64(seconds("wait_timeout", 900.0)),
        }
    }

    /// Sleep before the next read of server `id`, or fail when the deadline would pass
    /// before it (`last`: the status seen).
    async fn pause(&mut self, id: &str, state: &'static str, last: String) -> Result<(), OsError> {
        if self.started.elapsed() + self.pause > self.timeout {
            return Err(OsError::Timeout {
                what: format!("server {id}"),
                state,
                waited: self.started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(self.pause).await;
        self.pause = self.pause.mul_f64(1.5).min(MAX_POLL);
        Ok(())
    }
}

pub async fn create(ctx: &OperationContext, session: &Session) -> Result<(), OsError> {
    let me = instance::subject(ctx).to_string();
    let recorded = instance::runtime(ctx, &me);
    let id = if let Some(id) = text(&recorded, "id") {
        ctx.log(
            "info",
            format!("server {id} was created before; waiting for it"),
        );
        id.to_string()
    } else if let Some(wanted) = instance::external(ctx)? {
        match adopt(session, &wanted).await? {
            Some(server) => {
                instance::record_created(ctx, "server", &server, true).await?;
                let id = string_of(&server, "id");
                ctx.log("info", format!("adopted server {wanted} ({id})"));
                id
            }
            None if instance::create_if_missing(ctx) => post(ctx, session).await?,
            None => {
                return Err(OsError::Blueprint(format!(
                    "no server {wanted} to adopt (`use_external_resource`)"
                )));
            }
        }
    } else {
        post(ctx, session).await?
    };
    let server = wait_active(ctx, session, &id).await?;
    record_addresses(ctx, &me, &server)?;
    let ip = instance::runtime(ctx, &me)
        .get("ip")
        .and_then(Json::as_str)
        .unwrap_or("no address")
        .to_string();
    ctx.log("info", format!("server {id} is ACTIVE ({ip})"));
    Ok(())
}

/// The server named by id, else by name.
async fn adopt(session: &Session, wanted: &str) -> Result<Option<Json>, OsError> {
    match nova::get_server(session, wanted).await? {
        Some(s) => Ok(Some(s)),
        None => nova::find_server(session, wanted).await,
    }
}

/// Post the server and record its id; returns the id.
async fn post(ctx: &OperationContext, session: &Session) -> Result<String, OsError> {
    let (body, hints) = server_body(ctx)?;
    let name = string_of(&body, "name");
    let created = nova::create_server(session, body, hints).await?;
    let id = string_of(&created, "id");
    if id.is_empty() {
        return Err(OsError::Protocol {
            what: "Nova's answer to server create".into(),
            message: "no server id".into(),
        });
    }
    let mut record = created.clone();
    if let Some(map) = record.as_object_mut() {
        // `adminPass` is a credential: it is not recorded.
        map.remove("adminPass");
        map.insert("name".into(), json!(name));
    }
    instance::record_created(ctx, "server", &record, false).await?;
    ctx.log(
        "info",
        format!("created server {name} ({id}); waiting for ACTIVE"),
    );
    Ok(id)
}

/// The `server` object of `POST /servers` and its `os:scheduler_hints`, from `resource_config`
/// and the relationships.
fn server_body(ctx: &OperationContext) -> Result<(Json, Map<String, Json>), OsError> {
    let mut fields = instance::create_fields(ctx);
    let props = own_properties(ctx);
    let name = fields
        .remove("name")
        .and_then(|n| n.as_str().map(str::to_string))
        .unwrap_or_else(|| instance::subject(ctx).to_string());
    let mut server = Map::new();
    server.insert("name".into(), json!(name));
    let image = fields.remove("image_id").or_else(|| {
        props
            .get("image")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
    });
    let flavor = fields.remove("flavor_id").or_else(|| {
        props
            .get("flavor")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
    });
    match flavor {
        Some(f) => server.insert("flavorRef".into(), f),
        None => {
            return Err(OsError::Blueprint(format!(
                "{}: `resource_config.flavor_id` is required",
                ctx.node_id
            )));
        }
    };
    if let Some(i) = image {
        server.insert("imageRef".into(), i);
    }
    if let Some(user_data) = fields.remove("user_data") {
        let text = match user_data {
            Json::String(s) => s,
            other => other.to_string(),
        };
        server.insert(
            "user_data".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
    let mut hints = match fields.remove("scheduler_hints") {
        Some(Json::Object(h)) => h,
        _ => Map::new(),
    };
    let mut networks: Vec<Json> = match fields.remove("networks") {
        Some(Json::Array(n)) => n,
        _ => Vec::new(),
    };
    let mut groups: Vec<Json> = match fields.remove("security_groups") {
        Some(Json::Array(g)) => g
            .into_iter()
            .map(|g| match g {
                Json::String(name) => json!({ "name": name }),
                other => other,
            })
            .collect(),
        _ => Vec::new(),
    };
    let missing = |l: &Linked, what: &str| {
        OsError::Blueprint(format!(
            "{}: the {what} {} has no id or name yet",
            ctx.node_id, l.instance
        ))
    };
    for l in instance::linked(ctx) {
        if l.is_node("cloudify.nodes.openstack.KeyPair")
            || l.through("cloudify.relationships.openstack.server_connected_to_keypair")
        {
            let name = l.name(ctx).ok_or_else(|| missing(&l, "key pair"))?;
            fields.entry("key_name").or_insert(json!(name));
        } else if l.is_node("cloudify.nodes.openstack.Port") {
            let id = l.id(ctx).ok_or_else(|| missing(&l, "port"))?;
            networks.push(json!({ "port": id }));
        } else if l.is_node("cloudify.nodes.openstack.Network") {
            let id = l.id(ctx).ok_or_else(|| missing(&l, "network"))?;
            networks.push(json!({ "uuid": id }));
        } else if l.is_node("cloudify.nodes.openstack.SecurityGroup") {
            let name = l.name(ctx).ok_or_else(|| missing(&l, "security group"))?;
            groups.push(json!({ "name": name }));
        } else if l.through("cloudify.relationships.openstack.server_connected_to_server_group") {
            let id = l.id(ctx).ok_or_else(|| missing(&l, "server group"))?;
            hints.insert("group".into(), json!(id));
        }
    }
    if !networks.is_empty() {
        server.insert("networks".into(), Json::Array(networks));
    }
    if !groups.is_empty() {
        server.insert("security_groups".into(), Json::Array(groups));
    }
    // The rest (key_name, metadata, availability_zone, description, kwargs' fields) as written.
    server.extend(fields);
    Ok((Json::Object(server), hints))
}

/// Poll until ACTIVE.
async fn wait_active(ctx: &OperationContext, session: &Session, id: &str) -> Result<Json, OsError> {
    let mut polling = Polling::start(ctx);
    loop {
        let server = nova::get_server(session, id).await?.ok_or_else(|| {
            OsError::Blueprint(format!("server {id} disappeared while it was being built"))
        })?;
        let status = string_of(&server, "status");
        match status.as_str() {
            "ACTIVE" => return Ok(server),
            "ERROR" => {
                let fault = server
                    .get("fault")
                    .and_then(|f| f.get("message"))
                    .and_then(Json::as_str)
                    .unwrap_or("Nova gave no fault message");
                return Err(OsError::ServerError {
                    id: id.to_string(),
                    fault: session.secrets.mask(fault),
                });
            }
            _ => {}
        }
        polling.pause(id, "ACTIVE", status).await?;
    }
}

/// The runtime properties Cloudify's plugin derives from a server's `addresses`: `ip` (the
/// first fixed IPv4, or IPv6 with `use_ipv6_ip`, or the floating one with `use_public_ip`),
/// `ipv4_address` (v2's name for it), `public_ip_address`, `ipv4_addresses`, `ipv6`,
/// `ipv6_addresses`, `networks` (network name → its addresses) and `addresses` as Nova gave it.
pub fn record_addresses(ctx: &OperationContext, me: &str, server: &Json) -> Result<(), OsError> {
    let props = own_properties(ctx);
    let addresses = server.get("addresses").cloned().unwrap_or(json!({}));
    let mut fixed4 = Vec::new();
    let mut fixed6 = Vec::new();
    let mut floating4 = Vec::new();
    let mut networks = Map::new();
    for (network, list) in addresses.as_object().into_iter().flatten() {
        let mut here = Vec::new();
        for a in list.as_array().into_iter().flatten() {
            let Some(addr) = a.get("addr").and_then(Json::as_str) else {
                continue;
            };
            here.push(json!(addr));
            let floating = a.get("OS-EXT-IPS:type").and_then(Json::as_str) == Some("floating");
            let v6 = a.get("version").and_then(Json::as_u64) == Some(6);
            match (floating, v6) {
                (false, false) => fixed4.push(addr.to_string()),
                (false, true) => fixed6.push(addr.to_string()),
                (true, false) => floating4.push(addr.to_string()),
                (true, true) => {}
            }
        }
        networks.insert(network.clone(), Json::Array(here));
    }
    let mut ip = fixed4.first().or(fixed6.first()).cloned();
    if instance::flag(props, "use_ipv6_ip") && !fixed6.is_empty() {
        ip = fixed6.first().cloned();
    }
    if instance::flag(props, "use_public_ip") && !floating4.is_empty() {
        ip = floating4.first().cloned();
    }
    let set = |k: &str, v: Json| instance::set(ctx, me, k, v);
    if let Some(ip) = &ip {
        set("ip", json!(ip))?;
    }
    if let Some(v4) = fixed4.first() {
        set("ipv4_address", json!(v4))?;
    }
    if let Some(v6) = fixed6.first() {
        set("ipv6", json!(v6))?;
    }
    if let Some(public) = floating4.first() {
        set("public_ip_address", json!(public))?;
    }
    set("ipv4_addresses", json!(fixed4))?;
    set("ipv6_addresses", json!(fixed6))?;
    set("networks", Json::Object(networks))?;
    set("addresses", addresses)?;
    for key in ["accessIPv4", "accessIPv6"] {
        if let Some(a) = server
            .get(key)
            .and_then(Json::as_str)
            .filter(|a| !a.is_empty())
        {
            let name = if key == "accessIPv4" {
                "access_ipv4"
            } else {
                "access_ipv6"
            };
            set(name, json!(a))?;
        }
    }
    Ok(())
}

pub async fn delete(ctx: &OperationContext, session: &Session) -> Result<(), OsError> {
    let Some(id) = instance::to_delete(ctx, "id", "server") else {
        return Ok(());
    };
    if !nova::delete_server(session, &id).await? {
        instance::log_deleted(ctx, "server", &id, false);
        return Ok(());
    }
    let mut polling = Polling::start(ctx);
    loop {
        let status = match nova::get_server(session, &id).await? {
            Some(server) => string_of(&server, "status"),
            None => "DELETED".to_string(),
        };
        if status == "DELETED" {
            instance::log_deleted(ctx, "server", &id, true);
            return Ok(());
        }
        polling.pause(&id, "deleted", status).await?;
    }
}

/// `server_connected_to_floating_ip` establish: the floating IP's `port_id` set to the
/// server's port (the one with `fixed_ip` when that input is written).
pub async fn connect_floating_ip(ctx: &OperationContext, session: &Session) -> Result<(), OsError> {
    let (server_id, fip_id) = ends(ctx)?;
    let ports = neutron::list(session, PORT, &[("device_id", &server_id)]).await?;
    let wanted = ctx
        .inputs
        .get("fixed_ip")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty());
    let port = ports
        .iter()
        .find(|p| {
            wanted.is_none_or(|ip| {
                p.get("fixed_ips")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .any(|f| f.get("ip_address").and_then(Json::as_str) == Some(ip))
            })
        })
        .ok_or_else(|| {
            OsError::Blueprint(format!(
                "server {server_id} has no port{} to associate floating IP {fip_id} with",
                wanted
                    .map(|w| format!(" with fixed IP {w}"))
                    .unwrap_or_default()
            ))
        })?;
    let mut fields = json!({ "port_id": string_of(port, "id") });
    if let Some(ip) = wanted {
        fields["fixed_ip_address"] = json!(ip);
    }
    let fip = session
        .update(FLOATING_IP, &fip_id, fields)
        .await?
        .ok_or_else(|| OsError::Blueprint(format!("floating IP {fip_id} does not exist")))?;
    let address = string_of(&fip, "floating_ip_address");
    let me = instance::subject(ctx).to_string();
    instance::set(ctx, &me, "public_ip_address", json!(address))?;
    if instance::flag(own_properties(ctx), "use_public_ip") {
        instance::set(ctx, &me, "ip", json!(address))?;
    }
    ctx.log(
        "info",
        format!("floating IP {address} associated with server {server_id}"),
    );
    Ok(())
}

/// `server_connected_to_floating_ip` unlink: the floating IP's `port_id` cleared (a floating
/// IP already gone is fine).
pub async fn disconnect_floating_ip(
    ctx: &OperationContext,
    session: &Session,
) -> Result<(), OsError> {
    let (server_id, fip_id) = ends(ctx)?;
    match session
        .update(FLOATING_IP, &fip_id, json!({ "port_id": null }))
        .await?
    {
        Some(_) => ctx.log(
            "info",
            format!("floating IP {fip_id} disassociated from server {server_id}"),
        ),
        None => ctx.log("info", format!("floating IP {fip_id} is already gone")),
    }
    Ok(())
}

/// The server's and the floating IP's ids of a relationship operation.
fn ends(ctx: &OperationContext) -> Result<(String, String), OsError> {
    let rel = ctx.relationship.as_ref().ok_or_else(|| {
        OsError::Blueprint(format!(
            "`{}` runs only as a relationship operation",
            ctx.function
        ))
    })?;
    let id_of = |instance: &str, what: &str| {
        text(&instance::runtime(ctx, instance), "id")
            .map(str::to_string)
            .ok_or_else(|| OsError::Blueprint(format!("the {what} {instance} has no id")))
    };
    Ok((
        id_of(&rel.source_instance, "server")?,
        id_of(&rel.target_instance, "floating IP")?,
    ))
}

pub async fn create_keypair(ctx: &OperationContext, session: &Session) -> Result<(), OsError> {
    let me = instance::subject(ctx).to_string();
    if let Some(wanted) = instance::external(ctx)? {
        match nova::get_keypair(session, &wanted).await? {
            Some(k) => {
                record_keypair(ctx, &me, &k, true).await?;
                ctx.log("info", format!("adopted key pair {wanted}"));
                return Ok(());
            }
            None if instance::create_if_missing(ctx) => {}
            None => {
                return Err(OsError::Blueprint(format!(
                    "no key pair {wanted} to adopt (`use_external_resource`)"
                )));
            }
        }
    }
    let mut fields = instance::create_fields(ctx);
    fields.entry("name").or_insert_with(|| json!(me));
    let name = fields
        .get("name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let created = nova::create_keypair(session, Json::Object(fields)).await?;
    record_keypair(ctx, &me, &created, false).await?;
    if created.get("private_key").is_some() {
        ctx.log(
            "warning",
            format!("Nova generated key pair {name}'s private key; windlass does not keep it (give `public_key` to use your own)"),
        );
    } else {
        ctx.log("info", format!("created key pair {name}"));
    }
    Ok(())
}

async fn record_keypair(
    ctx: &OperationContext,
    me: &str,
    k: &Json,
    external: bool,
) -> Result<(), OsError> {
    let name = string_of(k, "name");
    let resource = json!({ "id": name, "name": name });
    instance::record_created(ctx, "keypair", &resource, external).await?;
    for key in ["public_key", "fingerprint"] {
        if let Some(v) = k.get(key) {
            instance::set(ctx, me, key, v.clone())?;
        }
    }
    Ok(())
}

pub async fn delete_keypair(ctx: &OperationContext, session: &Session) -> Result<(), OsError> {
    if let Some(name) = instance::to_delete(ctx, "name", "key pair") {
        let deleted = nova::delete_keypair(session, &name).await?;
        instance::log_deleted(ctx, "key pair", &name, deleted);
    }
    Ok(())
}
