//! What an OpenStack operation reads and writes of its instance: `resource_config`,
//! `use_external_resource`, the runtime properties every resource gets (`id`, `name`, `type`,
//! `external_resource`), made durable before anything waits, what a delete finds recorded, and
//! the instances its relationships point to.

use serde_json::{Map, Value as Json, json};

use super::api::OsError;
use super::own_properties;
use crate::plugins::OperationContext;

/// The node's `resource_config` with `kwargs` laid over it and `id` left out: the fields of
/// the API's create request.
pub fn create_fields(ctx: &OperationContext) -> Map<String, Json> {
    let mut fields = resource_config(ctx);
    fields.remove("id");
    if let Some(Json::Object(kwargs)) = fields.remove("kwargs") {
        fields.extend(kwargs);
    }
    fields.retain(|_, v| !v.is_null() && v.as_str() != Some(""));
    fields
}

pub fn resource_config(ctx: &OperationContext) -> Map<String, Json> {
    own_properties(ctx)
        .get("resource_config")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default()
}

pub fn text<'a>(map: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The string under `key` of an answer, empty when there is none.
pub fn string_of(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn flag(map: &Map<String, Json>, key: &str) -> bool {
    match map.get(key) {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => s == "true",
        _ => false,
    }
}

/// `use_external_resource` with what names the resource (`resource_config.id`, else `name`).
pub fn external(ctx: &OperationContext) -> Result<Option<String>, OsError> {
    let props = own_properties(ctx);
    if !flag(props, "use_external_resource") {
        return Ok(None);
    }
    let config = resource_config(ctx);
    text(&config, "id")
        .or_else(|| text(&config, "name"))
        .map(|s| Some(s.to_string()))
        .ok_or_else(|| {
            OsError::Blueprint(format!(
                "{}: `use_external_resource` needs `resource_config.id` or `resource_config.name`",
                ctx.node_id
            ))
        })
}

pub fn create_if_missing(ctx: &OperationContext) -> bool {
    flag(own_properties(ctx), "create_if_missing")
}

/// The instance the operation writes to: its own, or a relationship's source.
pub fn subject(ctx: &OperationContext) -> &str {
    ctx.relationship
        .as_ref()
        .map(|r| r.source_instance.as_str())
        .unwrap_or(&ctx.instance_id)
}

pub fn runtime(ctx: &OperationContext, instance: &str) -> Map<String, Json> {
    ctx.instances.runtime_properties(instance)
}

pub fn set(ctx: &OperationContext, instance: &str, key: &str, value: Json) -> Result<(), OsError> {
    ctx.instances
        .set_runtime_property(instance, key, value)
        .map_err(|message| OsError::Protocol {
            what: format!("{instance}'s runtime property `{key}`"),
            message,
        })
}

/// Record what identifies a resource and make it durable, so that `resume` and `undeploy`
/// find it even if the process dies the next instant.
pub async fn record_created(
    ctx: &OperationContext,
    kind: &str,
    resource: &Json,
    external: bool,
) -> Result<(), OsError> {
    let instance = subject(ctx).to_string();
    let id = resource.get("id").cloned().unwrap_or(Json::Null);
    set(ctx, &instance, "id", id)?;
    if let Some(name) = resource.get("name") {
        set(ctx, &instance, "name", name.clone())?;
    }
    set(ctx, &instance, "type", json!(kind))?;
    set(ctx, &instance, "external_resource", json!(external))?;
    ctx.recorder
        .flush()
        .await
        .map_err(|message| OsError::Protocol {
            what: format!("recording {instance}'s {kind}"),
            message,
        })
}

/// What a delete operation deletes: the recorded `key` (`id`, a key pair's `name`), unless
/// nothing was created or the resource was adopted (either is logged, and `None`).
pub fn to_delete(ctx: &OperationContext, key: &str, label: &str) -> Option<String> {
    let recorded = runtime(ctx, subject(ctx));
    let Some(id) = text(&recorded, key).map(str::to_string) else {
        ctx.log("info", format!("no {label} was created: nothing to delete"));
        return None;
    };
    if flag(&recorded, "external_resource") {
        ctx.log("info", format!("{label} {id} was adopted: left as it is"));
        return None;
    }
    Some(id)
}

/// Log how a delete ended: `deleted`, or the resource was already gone.
pub fn log_deleted(ctx: &OperationContext, label: &str, id: &str, deleted: bool) {
    if deleted {
        ctx.log("info", format!("deleted {label} {id}"));
    } else {
        ctx.log("info", format!("{label} {id} is already gone"));
    }
}

/// One instance a relationship of the operation's instance points to.
pub struct Linked {
    /// The relationship's type hierarchy, root first.
    pub relationship: Vec<String>,
    /// The target node's type hierarchy.
    pub node_types: Vec<String>,
    pub node: String,
    pub instance: String,
    pub properties: Map<String, Json>,
}

impl Linked {
    pub fn is_node(&self, type_name: &str) -> bool {
        self.node_types.iter().any(|t| t == type_name)
    }

    pub fn through(&self, relationship: &str) -> bool {
        self.relationship.iter().any(|t| t == relationship)
    }

    /// The target's OpenStack id: its runtime `id`, else its `resource_config.id`.
    pub fn id(&self, ctx: &OperationContext) -> Option<String> {
        self.known(ctx, "id")
    }

    /// The target's OpenStack name: its runtime `name`, else its `resource_config.name`.
    pub fn name(&self, ctx: &OperationContext) -> Option<String> {
        self.known(ctx, "name")
    }

    /// The target's runtime property `key`, else its `resource_config`'s.
    fn known(&self, ctx: &OperationContext, key: &str) -> Option<String> {
        let rp = runtime(ctx, &self.instance);
        text(&rp, key).map(str::to_string).or_else(|| {
            self.properties
                .get("resource_config")
                .and_then(Json::as_object)
                .and_then(|c| text(c, key))
                .map(str::to_string)
        })
    }
}

/// Every instance the operation's instance's relationships point to, in declaration order.
pub fn linked(ctx: &OperationContext) -> Vec<Linked> {
    let Some(topology) = &ctx.topology else {
        return Vec::new();
    };
    topology
        .targets()
        .map(|t| Linked {
            relationship: t.relationship.type_hierarchy.clone(),
            node_types: t.node.type_hierarchy.clone(),
            node: t.node.id.0.clone(),
            instance: t.instance_id.to_string(),
            properties: t.node.properties.clone(),
        })
        .collect()
}

/// The id of the one linked target of node type `type_name`, if there is one; several is an
/// error naming them.
pub fn one_linked_id(
    ctx: &OperationContext,
    type_name: &str,
    what: &str,
) -> Result<Option<String>, OsError> {
    let found: Vec<Linked> = linked(ctx)
        .into_iter()
        .filter(|l| l.is_node(type_name))
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => one.id(ctx).map(Some).ok_or_else(|| {
            OsError::Blueprint(format!(
                "{}: the {what} {} has no id yet",
                ctx.node_id, one.instance
            ))
        }),
        many => Err(OsError::Blueprint(format!(
            "{}: connected to {} {what}s ({}); write the one to use in resource_config",
            ctx.node_id,
            many.len(),
            many.iter()
                .map(|l| l.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
