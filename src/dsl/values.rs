//! Value types: checking a (plan-time evaluated) value against a property's declared type.
//!
//! Simple types follow Cloudify's parser: `string`, `textarea` and the manager value types
//! (`node_id`, `deployment_id`, …) take any value, a list or mapping too; an `integer` takes only
//! integers, a `float` integers too; data types are checked field by field, with their defaults
//! filled in. Values that still hold runtime functions
//! (`get_attribute`, …) are not checked: they are only known when the deployment runs.

use crate::maps::IndexMap;
use serde_json::Value as Json;

use super::functions::is_runtime_function;
use super::model::PropertySchema;
use crate::load::yaml::{Key, Node, Value};

pub const SIMPLE_TYPES: &[&str] = &[
    "string", "integer", "float", "boolean", "list", "dict", "regex", "textarea",
];

/// True for a type name that is not a data type: a simple or a manager value type (the
/// data-based types, [`super::data_based::Kind`]). As the type of a property or a data-type
/// field a manager value type is a plain value, unchecked like `string` (Cloudify's parser does
/// the same); inputs and workflow parameters may check them against the store.
pub fn is_builtin_type(name: &str) -> bool {
    SIMPLE_TYPES.contains(&name) || super::data_based::Kind::parse(name).is_some()
}

/// Resolved data types: name → merged field schemas (inherited fields included).
pub type DataTypes = IndexMap<String, IndexMap<String, PropertySchema>>;

/// Check `value` against `schema`'s type; `Err` says what is wrong.
pub fn check(schema: &PropertySchema, value: &Json, data_types: &DataTypes) -> Result<(), String> {
    let Some(ty) = &schema.ty else { return Ok(()) };
    check_type(
        &ty.name,
        schema.item_type.as_ref().map(|t| t.name.as_str()),
        value,
        data_types,
    )
}

pub fn check_type(
    ty: &str,
    item_type: Option<&str>,
    value: &Json,
    data_types: &DataTypes,
) -> Result<(), String> {
    if is_runtime_function(value) {
        return Ok(());
    }
    let ok = match ty {
        "string" | "textarea" => true,
        t if super::data_based::Kind::parse(t).is_some() => true,
        "integer" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        "boolean" => value.is_boolean(),
        "regex" => value.as_str().is_some_and(|s| regex::Regex::new(s).is_ok()),
        "list" => match value {
            Json::Array(items) => {
                if let Some(item) = item_type {
                    for (i, v) in items.iter().enumerate() {
                        check_type(item, None, v, data_types)
                            .map_err(|e| format!("item {i}: {e}"))?;
                    }
                }
                true
            }
            _ => false,
        },
        "dict" => match value {
            Json::Object(entries) => {
                if let Some(item) = item_type {
                    for (k, v) in entries {
                        check_type(item, None, v, data_types)
                            .map_err(|e| format!("key `{k}`: {e}"))?;
                    }
                }
                true
            }
            _ => false,
        },
        other => match data_types.get(other) {
            Some(fields) => return check_data_type(other, fields, value, data_types),
            // Unknown types are reported where they are declared (see `compile`).
            None => true,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a value of type `{ty}`, found {}",
            describe(value)
        ))
    }
}

fn check_data_type(
    name: &str,
    fields: &IndexMap<String, PropertySchema>,
    value: &Json,
    data_types: &DataTypes,
) -> Result<(), String> {
    let Json::Object(entries) = value else {
        return Err(format!(
            "expected a mapping of data type `{name}`, found {}",
            describe(value)
        ));
    };
    for (k, v) in entries {
        let Some(field) = fields.get(k) else {
            let hint = crate::diag::did_you_mean(k, fields.keys().map(String::as_str))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(format!("data type `{name}` has no field `{k}`{hint}"));
        };
        check(field, v, data_types).map_err(|e| format!("field `{k}`: {e}"))?;
        super::constraints::check(&field.constraints, v)
            .map_err(|e| format!("field `{k}`: {e}"))?;
    }
    for (k, field) in fields {
        if !entries.contains_key(k) && field.default.is_none() && field.required {
            return Err(format!("data type `{name}` requires the field `{k}`"));
        }
    }
    Ok(())
}

/// Fill a data-typed value's missing fields from the type's defaults, recursively.
pub fn fill_defaults(ty: Option<&str>, value: &mut Json, data_types: &DataTypes) {
    let (Some(ty), Json::Object(entries)) = (ty, value) else {
        return;
    };
    let Some(fields) = data_types.get(ty) else {
        return;
    };
    for (k, field) in fields {
        match entries.get_mut(k) {
            Some(v) => fill_defaults(field.ty.as_ref().map(|t| t.name.as_str()), v, data_types),
            None => {
                if let Some(default) = &field.default {
                    let mut d = default.to_json();
                    fill_defaults(
                        field.ty.as_ref().map(|t| t.name.as_str()),
                        &mut d,
                        data_types,
                    );
                    entries.insert(k.clone(), d);
                }
            }
        }
    }
}

/// A data-typed property's value as Cloudify's parser reads it, before functions are evaluated
/// (so `get_property` sees it whole): the property's own default mapping laid under a given
/// mapping, key by key; then, recursively, each missing field taken from the data type's field
/// defaults. A value that is not a mapping (an intrinsic function, a wrong type) is left alone.
pub fn fill_node_defaults(
    ty: &str,
    property_default: Option<&Node>,
    node: &mut Node,
    data_types: &DataTypes,
) {
    fill_node(ty, property_default, node, data_types, 0);
}

fn fill_node(
    ty: &str,
    property_default: Option<&Node>,
    node: &mut Node,
    data_types: &DataTypes,
    depth: usize,
) {
    // A data type that holds itself (directly or not) stops here; its check reports the gap.
    const MAX_DEPTH: usize = 32;
    let Some(fields) = data_types.get(ty).filter(|_| depth < MAX_DEPTH) else {
        return;
    };
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    if entries.len() == 1 && super::functions::is_function_name(&entries[0].0.name) {
        return;
    }
    if let Some(Value::Map(defaults)) = property_default.map(|d| &d.value) {
        for (k, v) in defaults {
            if !entries.iter().any(|(e, _)| e.name == k.name) {
                entries.push((k.clone(), v.clone()));
            }
        }
    }
    for (k, field) in fields {
        let field_ty = field.ty.as_ref().map(|t| t.name.as_str());
        match entries.iter_mut().find(|(e, _)| e.name == *k) {
            Some((_, v)) => {
                if let Some(t) = field_ty {
                    fill_node(t, None, v, data_types, depth + 1);
                }
            }
            None => {
                // A data-typed field without a default is its own type's defaults, as a
                // property is (an optional one only when those make a valid value).
                let nested = field_ty.filter(|t| {
                    data_types.contains_key(*t)
                        && (field.required || complete_from_defaults(t, data_types))
                });
                let mut d = match (&field.default, nested) {
                    (Some(default), _) => default.clone(),
                    (None, Some(_)) => Node::new(Value::Map(Vec::new()), node.loc),
                    (None, None) => continue,
                };
                if let Some(t) = field_ty {
                    fill_node(t, None, &mut d, data_types, depth + 1);
                }
                let key = Key {
                    name: k.clone(),
                    loc: node.loc,
                };
                entries.push((key, d));
            }
        }
    }
}

/// True when the data type's defaults alone make a valid value: no required field lacks a
/// default (a data-typed field counts when its own type is complete).
pub fn complete_from_defaults(ty: &str, data_types: &DataTypes) -> bool {
    fn go(ty: &str, data_types: &DataTypes, depth: usize) -> bool {
        let Some(fields) = data_types.get(ty) else {
            return true;
        };
        depth < 32
            && fields.values().all(|f| {
                !f.required
                    || f.default.is_some()
                    || f.ty.as_ref().is_some_and(|t| {
                        data_types.contains_key(&t.name) && go(&t.name, data_types, depth + 1)
                    })
            })
    }
    go(ty, data_types, 0)
}

/// What a JSON value is, in the words YAML users use ("a list", "a mapping", …), for messages
/// that need its kind without its value.
pub fn kind_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// "the string \"x\"", "the integer 5", … for messages.
pub fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".to_string(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) if n.is_f64() => format!("the float {n}"),
        Json::Number(n) => format!("the integer {n}"),
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(_) => "a list".to_string(),
        Json::Object(_) => "a mapping".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_types_follow_cloudify() {
        let dt = DataTypes::default();
        assert!(check_type("string", None, &json!(5), &dt).is_ok());
        assert!(check_type("string", None, &json!([1, {"a": 2}]), &dt).is_ok());
        assert!(check_type("textarea", None, &json!({"k": "v"}), &dt).is_ok());
        assert!(check_type("node_id", None, &json!(["x"]), &dt).is_ok());
        assert!(check_type("integer", None, &json!("7"), &dt).is_err());
        assert!(check_type("integer", None, &json!(1.5), &dt).is_err());
        assert!(check_type("float", None, &json!(3), &dt).is_ok());
        assert!(check_type("boolean", None, &json!("true"), &dt).is_err());
        assert!(
            check_type("list", Some("integer"), &json!([1, "x"]), &dt)
                .unwrap_err()
                .contains("item 1")
        );
        assert!(
            check_type(
                "integer",
                None,
                &json!({"get_attribute": ["SELF", "x"]}),
                &dt
            )
            .is_ok()
        );
    }
}
