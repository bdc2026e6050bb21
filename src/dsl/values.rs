//! Value types: checking a (plan-time evaluated) value against a property's declared type.
//!
//! Simple types follow Cloudify's parser (a `string` property also takes numbers and booleans, an
//! `integer` takes only integers, a `float` takes integers too); data types are checked field by
//! field, with their defaults filled in. Values that still hold runtime functions
//! (`get_attribute`, …) are not checked: they are only known when the deployment runs.

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::functions::is_runtime_function;
use super::model::PropertySchema;

pub const SIMPLE_TYPES: &[&str] = &[
    "string", "integer", "float", "boolean", "list", "dict", "regex", "textarea",
];

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
        "string" | "textarea" => matches!(value, Json::String(_) | Json::Number(_) | Json::Bool(_)),
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
        let dt = DataTypes::new();
        assert!(check_type("string", None, &json!(5), &dt).is_ok());
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
