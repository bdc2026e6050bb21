//! Neutron resources as nodes: networks, subnets, ports, security groups (with the rules
//! written in `security_group_rules`) and floating IPs.
//!
//! `create` adopts (`use_external_resource`, by id or name) or posts the resource from
//! `resource_config` plus what the relationships say (a subnet's or port's network, a port's
//! security groups, a floating IP's external network), then records `id`, `name`, `type` —
//! committed — and the resource's own runtime properties (a floating IP's
//! `floating_ip_address`, a port's `fixed_ips`). A resumed create that finds an id recorded
//! does not post again. `delete` deletes what was recorded unless it was adopted; 404 is
//! success.

use serde_json::{Map, Value as Json, json};

use super::api::{OsError, Session};
use super::instance::{self, string_of, text};
use super::neutron::{
    self, FLOATING_IP, Kind, NETWORK, PORT, SECURITY_GROUP, SECURITY_GROUP_RULE, SUBNET,
};
use super::own_properties;
use crate::plugins::OperationContext;

/// The Neutron kind of a `network.RESOURCE` function.
pub fn kind_of(resource: &str) -> Option<Kind> {
    match resource {
        "network.network" => Some(NETWORK),
        "network.subnet" => Some(SUBNET),
        "network.port" => Some(PORT),
        "network.security_group" => Some(SECURITY_GROUP),
        "network.floating_ip" => Some(FLOATING_IP),
        _ => None,
    }
}

/// The runtime `type` of a kind, as Cloudify's plugin writes it.
fn type_name(kind: Kind) -> &'static str {
    kind.singular
}

pub async fn create(ctx: &OperationContext, session: &Session, kind: Kind) -> Result<(), OsError> {
    let me = instance::subject(ctx).to_string();
    let recorded = instance::runtime(ctx, &me);
    if let Some(id) = text(&recorded, "id") {
        ctx.log("info", format!("{} {id} was created before", kind.label));
        return Ok(());
    }
    if let Some(wanted) = instance::external(ctx)? {
        match neutron::by_id_or_name(session, kind, &wanted).await? {
            Some(found) => {
                instance::record_created(ctx, type_name(kind), &found, true).await?;
                record_details(ctx, &me, kind, &found)?;
                ctx.log(
                    "info",
                    format!(
                        "adopted {} {wanted} ({})",
                        kind.label,
                        string_of(&found, "id")
                    ),
                );
                return Ok(());
            }
            None if instance::create_if_missing(ctx) => {}
            None => {
                return Err(OsError::Blueprint(format!(
                    "no {} {wanted} to adopt (`use_external_resource`)",
                    kind.label
                )));
            }
        }
    }
    let fields = fields(ctx, session, kind).await?;
    let created = neutron::create(session, kind, Json::Object(fields)).await?;
    instance::record_created(ctx, type_name(kind), &created, false).await?;
    record_details(ctx, &me, kind, &created)?;
    let id = string_of(&created, "id");
    if kind.singular == SECURITY_GROUP.singular {
        security_group_rules(ctx, session, &id, &created).await?;
    }
    let shown = match kind.singular {
        "floatingip" => string_of(&created, "floating_ip_address"),
        _ => string_of(&created, "name"),
    };
    ctx.log("info", format!("created {} {shown} ({id})", kind.label));
    Ok(())
}

/// The create request's fields: `resource_config` and the relationships.
async fn fields(
    ctx: &OperationContext,
    session: &Session,
    kind: Kind,
) -> Result<Map<String, Json>, OsError> {
    let mut fields = instance::create_fields(ctx);
    match kind.singular {
        "network" => {
            if let Some(external) = fields.remove("external") {
                fields.insert("router:external".into(), external);
            }
        }
        "subnet" | "port" => {
            if !fields.contains_key("network_id") {
                let id = instance::one_linked_id(ctx, "cloudify.nodes.openstack.Network", "network")?
                    .ok_or_else(|| {
                        OsError::Blueprint(format!(
                            "{}: a {} needs `resource_config.network_id` or a relationship to a network node",
                            ctx.node_id, kind.label
                        ))
                    })?;
                fields.insert("network_id".into(), json!(id));
            }
            if kind.singular == "subnet" {
                fields.entry("ip_version").or_insert(json!(4));
            } else {
                let mut groups: Vec<Json> = match fields.remove("security_groups") {
                    Some(Json::Array(g)) => g,
                    _ => Vec::new(),
                };
                for l in instance::linked(ctx) {
                    if l.is_node("cloudify.nodes.openstack.SecurityGroup") {
                        let id = l.id(ctx).ok_or_else(|| {
                            OsError::Blueprint(format!(
                                "the security group {} has no id yet",
                                l.instance
                            ))
                        })?;
                        groups.push(json!(id));
                    }
                }
                if !groups.is_empty() {
                    fields.insert("security_groups".into(), Json::Array(groups));
                }
            }
        }
        "floatingip" => {
            if !fields.contains_key("floating_network_id") {
                let id = match fields.remove("floating_network_name") {
                    Some(Json::String(name)) => {
                        let net =
                            neutron::find(session, NETWORK, &name)
                                .await?
                                .ok_or_else(|| {
                                    OsError::Blueprint(format!(
                                        "no network named {name:?} (`floating_network_name`)"
                                    ))
                                })?;
                        Some(string_of(&net, "id"))
                    }
                    _ => {
                        instance::one_linked_id(ctx, "cloudify.nodes.openstack.Network", "network")?
                    }
                };
                let id = id.ok_or_else(|| {
                    OsError::Blueprint(format!(
                        "{}: a floating IP needs `floating_network_id`, `floating_network_name` or a relationship to the external network's node",
                        ctx.node_id
                    ))
                })?;
                fields.insert("floating_network_id".into(), json!(id));
            }
            fields.remove("floating_network_name");
        }
        _ => {}
    }
    Ok(fields)
}

/// What else of a resource its runtime properties carry.
fn record_details(
    ctx: &OperationContext,
    me: &str,
    kind: Kind,
    resource: &Json,
) -> Result<(), OsError> {
    let keys: &[&str] = match kind.singular {
        "floatingip" => &["floating_ip_address", "floating_network_id"],
        "port" => &["fixed_ips", "mac_address", "network_id"],
        "subnet" => &["cidr", "network_id"],
        _ => &[],
    };
    for key in keys {
        if let Some(v) = resource.get(*key) {
            instance::set(ctx, me, key, v.clone())?;
        }
    }
    Ok(())
}

/// Delete the egress rules Neutron adds to a new group when asked, then create the node's
/// `security_group_rules`.
async fn security_group_rules(
    ctx: &OperationContext,
    session: &Session,
    group: &str,
    created: &Json,
) -> Result<(), OsError> {
    let props = own_properties(ctx);
    if instance::flag(props, "disable_default_egress_rules") {
        for rule in created
            .get("security_group_rules")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("direction").and_then(Json::as_str) == Some("egress"))
        {
            session
                .delete(SECURITY_GROUP_RULE, &string_of(rule, "id"))
                .await?;
        }
    }
    let rules = props
        .get("security_group_rules")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for rule in rules {
        let Json::Object(mut rule) = rule else {
            return Err(OsError::Blueprint(format!(
                "{}: each of `security_group_rules` must be a mapping",
                ctx.node_id
            )));
        };
        rule.retain(|_, v| !v.is_null());
        rule.insert("security_group_id".into(), json!(group));
        rule.entry("direction").or_insert(json!("ingress"));
        neutron::create(session, SECURITY_GROUP_RULE, Json::Object(rule)).await?;
    }
    Ok(())
}

pub async fn delete(ctx: &OperationContext, session: &Session, kind: Kind) -> Result<(), OsError> {
    if let Some(id) = instance::to_delete(ctx, "id", kind.label) {
        let deleted = session.delete(kind, &id).await?;
        instance::log_deleted(ctx, kind.label, &id, deleted);
    }
    Ok(())
}
