//! Deployment inputs: parsing the `-i` arguments and checking them against the blueprint.
//!
//! Accepted forms (Cloudify's): `key=value`, `k1=v1;k2=v2`, a YAML or JSON file path, or a JSON
//! object string; repeatable, later ones override earlier ones. Values given as `key=value` are
//! text, converted to the declared type (`-i port=8080` for an integer input). The check against
//! the declarations reports unknown inputs, all missing required inputs at once, type and
//! constraint violations.

use std::path::Path;

use crate::maps::IndexMap;
use serde_json::Value as Json;

use super::model::PropertySchema;
use super::values::{self, DataTypes};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::source::{FileId, Loc};

/// An input value and whether it arrived as untyped `key=value` text.
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    pub value: Json,
    pub from_text: bool,
}

/// What the user passed with `-i`, merged in order.
pub type GivenInputs = IndexMap<String, Given>;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read inputs file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("inputs file {path} is not a mapping of input names to values: {why}")]
    NotAMapping { path: String, why: String },
    #[error(
        "invalid inputs `{0}`: expected key=value, 'k1=v1;k2=v2', a YAML/JSON file or a JSON object"
    )]
    Malformed(String),
}

/// Parse every `-i` argument, later ones overriding earlier ones.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<GivenInputs, InputError> {
    let mut out = GivenInputs::default();
    for arg in args {
        parse_one(arg.as_ref(), &mut out)?;
    }
    Ok(out)
}

fn parse_one(arg: &str, out: &mut GivenInputs) -> Result<(), InputError> {
    let trimmed = arg.trim();
    if trimmed.starts_with('{') {
        let value: Json =
            serde_json::from_str(trimmed).map_err(|_| InputError::Malformed(arg.to_string()))?;
        return insert_mapping(value, out, arg);
    }
    if Path::new(trimmed).is_file() {
        let text = std::fs::read_to_string(trimmed).map_err(|source| InputError::Io {
            path: trimmed.to_string(),
            source,
        })?;
        let node =
            crate::load::yaml::parse(FileId(0), &text).map_err(|e| InputError::NotAMapping {
                path: trimmed.to_string(),
                why: format!("line {}: {}", e.loc.line, e.message),
            })?;
        return insert_mapping(node.to_json(), out, trimmed).map_err(|_| InputError::NotAMapping {
            path: trimmed.to_string(),
            why: format!("found a {}", node.value.kind_name()),
        });
    }
    for pair in trimmed.split(';').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(InputError::Malformed(arg.to_string()));
        };
        if k.trim().is_empty() {
            return Err(InputError::Malformed(arg.to_string()));
        }
        out.insert(
            k.trim().to_string(),
            Given {
                value: Json::String(v.to_string()),
                from_text: true,
            },
        );
    }
    Ok(())
}

fn insert_mapping(value: Json, out: &mut GivenInputs, arg: &str) -> Result<(), InputError> {
    match value {
        Json::Object(m) => {
            for (k, v) in m {
                out.insert(
                    k,
                    Given {
                        value: v,
                        from_text: false,
                    },
                );
            }
            Ok(())
        }
        Json::Null => Ok(()),
        _ => Err(InputError::Malformed(arg.to_string())),
    }
}

/// Convert `key=value` text to the declared simple type where it reads as one.
fn convert(text: &str, ty: Option<&str>) -> Json {
    ty.and_then(|t| parse_as(text, t))
        .unwrap_or_else(|| Json::String(text.to_string()))
}

/// Read command-line text as a value of a declared simple type (`None` when it does not read
/// as one). Shared by inputs and workflow parameters.
pub fn parse_as(text: &str, ty: &str) -> Option<Json> {
    match ty {
        "integer" => text.trim().parse::<i64>().ok().map(Json::from),
        "float" => text.trim().parse::<f64>().ok().map(Json::from),
        "boolean" => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(Json::Bool(true)),
            "false" => Some(Json::Bool(false)),
            _ => None,
        },
        "list" | "dict" => serde_json::from_str(text).ok(),
        "string" | "textarea" => Some(Json::String(text.to_string())),
        _ if super::data_based::Kind::parse(ty).is_some() => Some(Json::String(text.to_string())),
        _ => None,
    }
}

/// Check a value against its declaration's constraints; a `list` with an `item_type` has them
/// checked on each item, as Cloudify does.
fn constraints_of_value(schema: &PropertySchema, value: &Json) -> Result<(), String> {
    match (value, schema.ty.as_ref(), &schema.item_type) {
        (Json::Array(items), Some(t), Some(_)) if t.name == "list" => items
            .iter()
            .try_for_each(|item| super::constraints::check(&schema.constraints, item)),
        _ => super::constraints::check(&schema.constraints, value),
    }
}

/// Check given inputs against the declarations and produce the values `get_input` reads.
/// `section` is where `inputs:` is declared (for errors about the whole section).
pub fn resolve(
    declared: &IndexMap<String, PropertySchema>,
    given: &GivenInputs,
    data_types: &DataTypes,
    section: Loc,
    diags: &mut Diagnostics,
) -> IndexMap<String, Json> {
    for name in given.keys() {
        if !declared.contains_key(name) {
            diags.push(
                Diagnostic::new(section, format!("unknown input `{name}` was given")).with_help(
                    did_you_mean(name, declared.keys().map(String::as_str)).unwrap_or_else(|| {
                        format!(
                            "declared inputs: {}",
                            if declared.is_empty() {
                                "none".to_string()
                            } else {
                                declared.keys().cloned().collect::<Vec<_>>().join(", ")
                            }
                        )
                    }),
                ),
            );
        }
    }
    let mut values = IndexMap::default();
    let mut missing = Vec::new();
    for (name, schema) in declared {
        let ty = schema.ty.as_ref().map(|t| t.name.as_str());
        let mut value = match (given.get(name), &schema.default) {
            (Some(g), _) if g.from_text => convert(g.value.as_str().unwrap_or(""), ty),
            (Some(g), _) => g.value.clone(),
            (None, Some(default)) => default.to_json(),
            (None, None) if !schema.required => {
                values.insert(name.clone(), Json::Null);
                continue;
            }
            (None, None) => {
                // Reported once below; a placeholder keeps `get_input` of it from also
                // calling a declared input unknown.
                missing.push((name.as_str(), schema.loc));
                values.insert(name.clone(), Json::Null);
                continue;
            }
        };
        if super::functions::has_plan_time_function(&value) {
            // A default built from functions (`concat`, `get_input`): checked once evaluated.
            values.insert(name.clone(), value);
            continue;
        }
        values::fill_defaults(ty, &mut value, data_types);
        let problem = values::check(schema, &value, data_types)
            .err()
            .or_else(|| constraints_of_value(schema, &value).err())
            .or_else(|| {
                // A data-based value is a name (checked against the store at deploy time).
                let typed = super::data_based::Typed::of(schema)?;
                typed.lookups(name, &value).err()
            });
        if let Some(why) = problem {
            diags.push(Diagnostic::new(
                schema.loc,
                format!("input `{name}`: {why}"),
            ));
        }
        values.insert(name.clone(), value);
    }
    if let Some((_, first)) = missing.first() {
        let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
        let mut d = Diagnostic::new(
            *first,
            format!(
                "missing required input{} {}",
                if names.len() > 1 { "s" } else { "" },
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_help(format!(
            "pass them with -i, e.g. -i '{}'",
            names
                .iter()
                .map(|n| format!("{n}=…"))
                .collect::<Vec<_>>()
                .join(";")
        ));
        for (n, loc) in missing.iter().skip(1) {
            d = d.with_related(*loc, format!("`{n}` is declared here"));
        }
        diags.push(d);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let dir = std::env::temp_dir().join(format!("windlass-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("in.yaml");
        std::fs::write(&file, "c: [1, 2]\nd: x\n").unwrap();
        let given = parse_args(&[
            "a=1".to_string(),
            "b=two;e=x=y".to_string(),
            file.display().to_string(),
            r#"{"d": {"k": true}}"#.to_string(),
        ])
        .unwrap();
        assert_eq!(given["a"].value, Json::from("1"));
        assert!(given["a"].from_text);
        assert_eq!(given["e"].value, Json::from("x=y"));
        assert_eq!(given["c"].value, serde_json::json!([1, 2]));
        assert_eq!(given["d"].value, serde_json::json!({"k": true}));
        assert!(parse_args(&["novalue"]).is_err());
    }

    #[test]
    fn converts_text_to_declared_type() {
        assert_eq!(convert("8080", Some("integer")), Json::from(8080));
        assert_eq!(convert("true", Some("boolean")), Json::Bool(true));
        assert_eq!(convert("abc", Some("integer")), Json::from("abc"));
        assert_eq!(convert("8080", None), Json::from("8080"));
    }
}
