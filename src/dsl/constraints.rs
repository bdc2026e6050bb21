//! Property and input constraints: reading their definitions and checking values against them.
//! The data-based ones (`deployment_id`, `name_pattern`, `labels`, `filter_id`, `tenants`)
//! are read here and checked against the store (`data_based`, `engine::lookups`).

use serde_json::Value as Json;

use super::data_based::{NAME_PATTERN_KEYS, NamePattern};
use super::model::{Constraint, ConstraintKind};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::yaml::{Node, Value};

const NAMES: &[&str] = &[
    "equal",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "in_range",
    "valid_values",
    "length",
    "min_length",
    "max_length",
    "pattern",
    "deployment_id",
    "name_pattern",
    "labels",
    "filter_id",
    "tenants",
];

/// Read a `constraints:` list; each entry is a one-key mapping such as `{ max_length: 8 }`.
pub fn read(node: &Node, diags: &mut Diagnostics) -> Vec<Constraint> {
    let Some(items) = node.as_seq() else {
        diags.error(node.loc, "`constraints` must be a list of one-key mappings");
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| read_one(item, diags))
        .collect()
}

fn read_one(item: &Node, diags: &mut Diagnostics) -> Option<Constraint> {
    let Some([(key, arg)]) = item.as_map() else {
        diags.error(
            item.loc,
            "a constraint must be a mapping with exactly one key, such as `{ max_length: 8 }`",
        );
        return None;
    };
    let number = |diags: &mut Diagnostics| match arg.value {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => {
            diags.error(arg.loc, format!("`{}` takes a number", key.name));
            None
        }
    };
    let length = |diags: &mut Diagnostics| match arg.value {
        Value::Int(i) if i >= 0 => Some(i as usize),
        _ => {
            diags.error(
                arg.loc,
                format!("`{}` takes a non-negative integer", key.name),
            );
            None
        }
    };
    let kind = match key.name.as_str() {
        "equal" => ConstraintKind::Equal(arg.to_json()),
        "greater_than" => ConstraintKind::GreaterThan(number(diags)?),
        "greater_or_equal" => ConstraintKind::GreaterOrEqual(number(diags)?),
        "less_than" => ConstraintKind::LessThan(number(diags)?),
        "less_or_equal" => ConstraintKind::LessOrEqual(number(diags)?),
        "in_range" => {
            let bounds: Vec<f64> = arg
                .as_seq()
                .unwrap_or(&[])
                .iter()
                .filter_map(|n| match n.value {
                    Value::Int(i) => Some(i as f64),
                    Value::Float(f) => Some(f),
                    _ => None,
                })
                .collect();
            match bounds.as_slice() {
                [lo, hi] if lo <= hi => ConstraintKind::InRange(*lo, *hi),
                _ => {
                    diags.error(
                        arg.loc,
                        "`in_range` takes a list of two numbers, lower bound first",
                    );
                    return None;
                }
            }
        }
        "valid_values" => match arg.as_seq() {
            Some(values) => ConstraintKind::ValidValues(values.iter().map(Node::to_json).collect()),
            None => {
                diags.error(arg.loc, "`valid_values` takes a list");
                return None;
            }
        },
        "length" => ConstraintKind::Length(length(diags)?),
        "min_length" => ConstraintKind::MinLength(length(diags)?),
        "max_length" => ConstraintKind::MaxLength(length(diags)?),
        "pattern" => {
            let Some(p) = arg.as_str() else {
                diags.error(arg.loc, "`pattern` takes a regular expression string");
                return None;
            };
            match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(r) => ConstraintKind::Pattern(r),
                Err(e) => {
                    diags.error(arg.loc, format!("invalid regular expression: {e}"));
                    return None;
                }
            }
        }
        "deployment_id" | "filter_id" => {
            let Some(text) = arg.as_str().filter(|s| !s.is_empty()) else {
                diags.error(arg.loc, format!("`{}` takes a name", key.name));
                return None;
            };
            if key.name == "deployment_id" {
                ConstraintKind::DeploymentId(text.to_string())
            } else {
                ConstraintKind::FilterId(text.to_string())
            }
        }
        "name_pattern" => ConstraintKind::NamePattern(name_pattern(arg, diags)?),
        "labels" => ConstraintKind::Labels(labels(arg, diags)?),
        "tenants" => match arg.as_seq() {
            Some(values) => ConstraintKind::Tenants(values.iter().map(Node::to_json).collect()),
            None => {
                diags.error(arg.loc, "`tenants` takes a list of tenant names");
                return None;
            }
        },
        other => {
            diags.push(
                Diagnostic::new(key.loc, format!("unknown constraint `{other}`"))
                    .with_help_opt(did_you_mean(other, NAMES.iter().copied())),
            );
            return None;
        }
    };
    Some(Constraint { loc: key.loc, kind })
}

/// `name_pattern: {contains | starts_with | ends_with | equals_to: TEXT, …}`.
fn name_pattern(arg: &Node, diags: &mut Diagnostics) -> Option<NamePattern> {
    let Some(entries) = arg.as_map() else {
        diags.error(
            arg.loc,
            "`name_pattern` takes a mapping such as `{ starts_with: web }`",
        );
        return None;
    };
    let mut p = NamePattern::default();
    for (k, v) in entries {
        let Some(text) = v.as_str().map(str::to_string) else {
            diags.error(v.loc, format!("`{}` takes a string", k.name));
            return None;
        };
        let slot = match k.name.as_str() {
            "contains" => &mut p.contains,
            "starts_with" => &mut p.starts_with,
            "ends_with" => &mut p.ends_with,
            "equals_to" => &mut p.equals_to,
            other => {
                diags.push(
                    Diagnostic::new(k.loc, format!("unknown `name_pattern` key `{other}`"))
                        .with_help(
                            did_you_mean(other, NAME_PATTERN_KEYS.iter().copied()).unwrap_or_else(
                                || format!("keys are {}", NAME_PATTERN_KEYS.join(", ")),
                            ),
                        ),
                );
                return None;
            }
        };
        *slot = Some(text);
    }
    Some(p)
}

/// `labels: [{key: value}, …]`.
fn labels(arg: &Node, diags: &mut Diagnostics) -> Option<Vec<(String, String)>> {
    let pairs: Option<Vec<(String, String)>> = arg.as_seq().and_then(|items| {
        items
            .iter()
            .map(|item| match item.as_map() {
                Some([(k, v)]) => Some((k.name.clone(), scalar_text(v)?)),
                _ => None,
            })
            .collect()
    });
    if pairs.is_none() {
        diags.error(
            arg.loc,
            "`labels` takes a list of one-key mappings such as `[{ env: prod }]`",
        );
    }
    pairs
}

fn scalar_text(v: &Node) -> Option<String> {
    match v.to_json() {
        Json::String(s) => Some(s),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Check a value; `Err` describes the first constraint it breaks.
pub fn check(constraints: &[Constraint], value: &Json) -> Result<(), String> {
    for c in constraints {
        if let Some(why) = violation(&c.kind, value) {
            return Err(why);
        }
    }
    Ok(())
}

fn violation(kind: &ConstraintKind, value: &Json) -> Option<String> {
    let num = value.as_f64();
    let len = match value {
        Json::String(s) => Some(s.chars().count()),
        Json::Array(a) => Some(a.len()),
        Json::Object(o) => Some(o.len()),
        _ => None,
    };
    let ok = match kind {
        ConstraintKind::Equal(v) => v == value,
        ConstraintKind::GreaterThan(b) => num.is_some_and(|n| n > *b),
        ConstraintKind::GreaterOrEqual(b) => num.is_some_and(|n| n >= *b),
        ConstraintKind::LessThan(b) => num.is_some_and(|n| n < *b),
        ConstraintKind::LessOrEqual(b) => num.is_some_and(|n| n <= *b),
        ConstraintKind::InRange(lo, hi) => num.is_some_and(|n| n >= *lo && n <= *hi),
        ConstraintKind::ValidValues(vs) => vs.contains(value),
        ConstraintKind::Length(l) => len == Some(*l),
        ConstraintKind::MinLength(l) => len.is_some_and(|n| n >= *l),
        ConstraintKind::MaxLength(l) => len.is_some_and(|n| n <= *l),
        ConstraintKind::Pattern(r) => value.as_str().is_some_and(|s| r.is_match(s)),
        // Checked against the store (`engine::lookups`), not on the value alone.
        ConstraintKind::DeploymentId(_)
        | ConstraintKind::NamePattern(_)
        | ConstraintKind::Labels(_)
        | ConstraintKind::FilterId(_)
        | ConstraintKind::Tenants(_) => true,
    };
    (!ok).then(|| {
        let rule = match kind {
            ConstraintKind::Equal(v) => format!("must equal {v}"),
            ConstraintKind::GreaterThan(b) => format!("must be greater than {b}"),
            ConstraintKind::GreaterOrEqual(b) => format!("must be at least {b}"),
            ConstraintKind::LessThan(b) => format!("must be less than {b}"),
            ConstraintKind::LessOrEqual(b) => format!("must be at most {b}"),
            ConstraintKind::InRange(lo, hi) => format!("must be in the range {lo}..={hi}"),
            ConstraintKind::ValidValues(vs) => format!(
                "must be one of {}",
                vs.iter()
                    .map(Json::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ConstraintKind::Length(l) => format!("must have length {l}"),
            ConstraintKind::MinLength(l) => format!("must have length at least {l}"),
            ConstraintKind::MaxLength(l) => format!("must have length at most {l}"),
            ConstraintKind::Pattern(r) => {
                let p = r.as_str();
                format!("must match the pattern `{}`", &p[4..p.len() - 2])
            }
            ConstraintKind::DeploymentId(_)
            | ConstraintKind::NamePattern(_)
            | ConstraintKind::Labels(_)
            | ConstraintKind::FilterId(_)
            | ConstraintKind::Tenants(_) => String::new(),
        };
        format!("value {value} {rule}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::source::FileId;
    use crate::load::yaml::parse;

    fn constraints(text: &str) -> Vec<Constraint> {
        let mut d = Diagnostics::default();
        let c = read(&parse(FileId(0), text).unwrap(), &mut d);
        assert!(d.is_empty(), "{d:?}");
        c
    }

    #[test]
    fn checks_each_kind() {
        let c = constraints("- in_range: [1, 10]\n- valid_values: [2, 4, 11]\n");
        assert!(check(&c, &Json::from(4)).is_ok());
        assert!(check(&c, &Json::from(3)).unwrap_err().contains("one of"));
        assert!(check(&c, &Json::from(11)).unwrap_err().contains("range"));
        let c = constraints("- pattern: 'ab+'\n- max_length: 3\n");
        assert!(check(&c, &Json::from("abb")).is_ok());
        assert!(
            check(&c, &Json::from("abbb"))
                .unwrap_err()
                .contains("at most 3")
        );
        assert!(
            check(&c, &Json::from("xabb"))
                .unwrap_err()
                .contains("`ab+`")
        );
    }

    #[test]
    fn unknown_constraint_is_reported() {
        let mut d = Diagnostics::default();
        read(&parse(FileId(0), "- max_lenght: 3\n").unwrap(), &mut d);
        let items = d.into_sorted();
        assert_eq!(items[0].help.as_deref(), Some("did you mean `max_length`?"));
    }
}
