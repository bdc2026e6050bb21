//! Data-based types (DSL 1.4/1.5): input and workflow-parameter types whose values name things
//! a manager knows — a deployment, a blueprint, a node, a node type, a node instance, a scaling
//! group, a secret, a capability value, an operation — and the constraints that narrow which
//! ones (`deployment_id`, `name_pattern`, `labels`, `valid_values`; `filter_id` and `tenants`
//! are Cloudify-manager notions windlass reads and refuses to check).
//!
//! This module owns the names, the DSL version each appeared in (`operation_name` in 1.5, the
//! rest in 1.4, as Cloudify 7's parser gates them), what is checked when a blueprint is read
//! ([`check_declaration`]) and the plain data a value turns into for checking: a [`Typed`] per
//! declaration (stored with workflow parameters and deployment inputs) and the [`Lookup`]s a
//! value asks for. It does no I/O: `engine::lookups` answers lookups from the store.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::model::{ConstraintKind, PropertySchema};
use super::version::DslVersion;
use crate::diag::{Diagnostic, Diagnostics};

/// A data-based type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    DeploymentId,
    BlueprintId,
    NodeId,
    NodeType,
    NodeInstance,
    ScalingGroup,
    SecretKey,
    CapabilityValue,
    OperationName,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::DeploymentId,
        Kind::BlueprintId,
        Kind::NodeId,
        Kind::NodeType,
        Kind::NodeInstance,
        Kind::ScalingGroup,
        Kind::SecretKey,
        Kind::CapabilityValue,
        Kind::OperationName,
    ];

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::DeploymentId => "deployment_id",
            Kind::BlueprintId => "blueprint_id",
            Kind::NodeId => "node_id",
            Kind::NodeType => "node_type",
            Kind::NodeInstance => "node_instance",
            Kind::ScalingGroup => "scaling_group",
            Kind::SecretKey => "secret_key",
            Kind::CapabilityValue => "capability_value",
            Kind::OperationName => "operation_name",
        }
    }

    /// What a value of this type names, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Kind::DeploymentId => "deployment",
            Kind::BlueprintId => "blueprint",
            Kind::NodeId => "node",
            Kind::NodeType => "node type",
            Kind::NodeInstance => "node instance",
            Kind::ScalingGroup => "scaling group",
            Kind::SecretKey => "secret",
            Kind::CapabilityValue => "capability value",
            Kind::OperationName => "operation",
        }
    }

    /// The DSL version that introduced the type.
    pub fn since(self) -> DslVersion {
        match self {
            Kind::OperationName => DslVersion::V1_5,
            _ => DslVersion::V1_4,
        }
    }

    /// Whether values name something inside one deployment (chosen by a `deployment_id`
    /// constraint, else the deployment a workflow runs on).
    pub fn in_deployment(self) -> bool {
        !matches!(
            self,
            Kind::DeploymentId | Kind::BlueprintId | Kind::SecretKey
        )
    }

    /// Whether the constraint `name` applies to this type (Cloudify's `SUPPORTED_DATA_TYPES`).
    fn supports(self, constraint: &str) -> bool {
        match constraint {
            "name_pattern" => true,
            "deployment_id" | "valid_values" => self.in_deployment(),
            "labels" | "filter_id" | "tenants" => {
                matches!(self, Kind::DeploymentId | Kind::BlueprintId)
            }
            _ => true,
        }
    }
}

/// `name_pattern`: Cloudify's name filter (`contains`, `starts_with`, `ends_with`,
/// `equals_to`, all that are given must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamePattern {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_to: Option<String>,
}

/// The keys `name_pattern` takes.
pub const NAME_PATTERN_KEYS: [&str; 4] = ["contains", "starts_with", "ends_with", "equals_to"];

impl NamePattern {
    pub fn matches(&self, name: &str) -> bool {
        self.contains.as_deref().is_none_or(|p| name.contains(p))
            && self
                .starts_with
                .as_deref()
                .is_none_or(|p| name.starts_with(p))
            && self.ends_with.as_deref().is_none_or(|p| name.ends_with(p))
            && self.equals_to.as_deref().is_none_or(|p| name == p)
    }
}

impl std::fmt::Display for NamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("contains", &self.contains),
            ("starts_with", &self.starts_with),
            ("ends_with", &self.ends_with),
            ("equals_to", &self.equals_to),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v:?}")))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The constraints of a data-based declaration that choose among the store's entities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_pattern: Option<NamePattern>,
    /// `labels: [{key: value}, …]`: the deployment has every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_values: Option<Vec<Json>>,
    /// `filter_id`, `tenants`: manager notions windlass has no equivalent of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
}

/// A data-based declaration: its type, whether values are lists of it (`type: list` with
/// `item_type`), and its filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Typed {
    pub kind: Kind,
    pub list: bool,
    #[serde(default)]
    pub filters: Filters,
}

/// One name a value asks to be checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup<'a> {
    /// `input `x`` or `parameter `x``, for messages.
    pub owner: String,
    pub kind: Kind,
    pub value: String,
    pub filters: &'a Filters,
}

impl Typed {
    /// The declaration's data-based type, if it has one.
    pub fn of(schema: &PropertySchema) -> Option<Typed> {
        let ty = schema.ty.as_ref()?.name.as_str();
        let (kind, list) = match Kind::parse(ty) {
            Some(k) => (k, false),
            None if ty == "list" => (Kind::parse(&schema.item_type.as_ref()?.name)?, true),
            None => return None,
        };
        let mut filters = Filters::default();
        for c in &schema.constraints {
            match &c.kind {
                ConstraintKind::DeploymentId(d) => filters.deployment_id = Some(d.clone()),
                ConstraintKind::NamePattern(p) => filters.name_pattern = Some(p.clone()),
                ConstraintKind::Labels(l) => filters.labels.extend(l.iter().cloned()),
                ConstraintKind::ValidValues(v) => filters.valid_values = Some(v.clone()),
                ConstraintKind::FilterId(_) => filters.unsupported.push("filter_id".into()),
                ConstraintKind::Tenants(_) => filters.unsupported.push("tenants".into()),
                _ => {}
            }
        }
        Some(Typed {
            kind,
            list,
            filters,
        })
    }

    /// The lookups `value` asks for (one per item of a list), each naming `owner` in its
    /// messages; `Err` (without the owner) when it is not a string (or a list of strings), or
    /// when a name is empty.
    pub fn lookups(&self, owner: &str, value: &Json) -> Result<Vec<Lookup<'_>>, String> {
        let one = |v: &Json| -> Result<Lookup<'_>, String> {
            match v.as_str() {
                Some(s) if !s.is_empty() => Ok(Lookup {
                    owner: owner.to_string(),
                    kind: self.kind,
                    value: s.to_string(),
                    filters: &self.filters,
                }),
                _ => Err(format!(
                    "{v} is not the name of a {} (type `{}`)",
                    self.kind.what(),
                    self.kind.name()
                )),
            }
        };
        match (self.list, value) {
            (false, v) => Ok(vec![one(v)?]),
            (true, Json::Array(items)) => items.iter().map(one).collect(),
            (true, other) => Err(format!(
                "expected a list of {} names (`item_type: {}`), found {other}",
                self.kind.what(),
                self.kind.name()
            )),
        }
    }
}

/// The constraint names that choose among entities (not checked on the value alone).
pub fn is_data_based_constraint(kind: &ConstraintKind) -> Option<&'static str> {
    Some(match kind {
        ConstraintKind::DeploymentId(_) => "deployment_id",
        ConstraintKind::NamePattern(_) => "name_pattern",
        ConstraintKind::Labels(_) => "labels",
        ConstraintKind::FilterId(_) => "filter_id",
        ConstraintKind::Tenants(_) => "tenants",
        _ => return None,
    })
}

/// Check an input or workflow-parameter declaration when the blueprint is read: a data-based
/// type under a DSL version that predates it, a data-based constraint on a type it does not
/// apply to, and (inputs only: a workflow runs on a deployment, an input is given before there
/// is one) a `node_instance` or `capability_value` input without a `deployment_id` constraint.
/// Returns whether a type name was a data-based one (known, whatever the version).
pub fn check_declaration(
    schema: &PropertySchema,
    version: DslVersion,
    input: Option<&str>,
    diags: &mut Diagnostics,
) -> bool {
    let mut data_based = false;
    for t in [&schema.ty, &schema.item_type].into_iter().flatten() {
        if let Some(k) = Kind::parse(&t.name) {
            data_based = true;
            if version < k.since() {
                diags.push(
                    Diagnostic::new(
                        t.loc,
                        format!(
                            "type `{}` is not supported in {version}: it was added in {}",
                            k.name(),
                            k.since()
                        ),
                    )
                    .with_help(format!(
                        "declare `tosca_definitions_version: {}`, or use `type: string`",
                        k.since()
                    )),
                );
            }
        }
    }
    let own = schema.ty.as_ref().map(|t| t.name.as_str()).and_then(|ty| {
        Kind::parse(ty).or_else(|| {
            (ty == "list")
                .then(|| Kind::parse(&schema.item_type.as_ref()?.name))
                .flatten()
        })
    });
    for c in &schema.constraints {
        if let Some(name) = is_data_based_constraint(&c.kind) {
            let fits = own.is_some_and(|k| k.supports(name));
            if !fits {
                let applies: Vec<&str> = Kind::ALL
                    .into_iter()
                    .filter(|k| k.supports(name))
                    .map(Kind::name)
                    .collect();
                diags.push(
                    Diagnostic::new(
                        c.loc,
                        format!(
                            "the `{name}` constraint does not apply to type `{}`",
                            schema.ty.as_ref().map_or("(none)", |t| t.name.as_str())
                        ),
                    )
                    .with_help(format!("it applies to {}", applies.join(", "))),
                );
            }
        }
    }
    if let (Some(name), Some(k)) = (input, own)
        && matches!(k, Kind::NodeInstance | Kind::CapabilityValue)
        && !schema
            .constraints
            .iter()
            .any(|c| matches!(c.kind, ConstraintKind::DeploymentId(_)))
    {
        diags.push(
            Diagnostic::new(
                schema.loc,
                format!(
                    "input `{name}` of type `{}` lacks a `deployment_id` constraint",
                    k.name()
                ),
            )
            .with_help(format!(
                "a deployment input names a {} of another deployment: add `constraints: [{{deployment_id: ID}}]`",
                k.what()
            )),
        );
    }
    data_based
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert_eq!(Kind::OperationName.since(), DslVersion::V1_5);
        assert_eq!(Kind::SecretKey.since(), DslVersion::V1_4);
        assert!(Kind::parse("string").is_none());
    }

    #[test]
    fn name_patterns_need_every_part() {
        let p = NamePattern {
            starts_with: Some("web".into()),
            ends_with: Some("1".into()),
            ..NamePattern::default()
        };
        assert!(p.matches("web_1"));
        assert!(!p.matches("web_2"));
        assert!(!p.matches("db_1"));
    }

    #[test]
    fn lists_expand_to_one_lookup_per_item() {
        let t = Typed {
            kind: Kind::NodeId,
            list: true,
            filters: Filters::default(),
        };
        let got = t
            .lookups("parameter `n`", &serde_json::json!(["a", "b"]))
            .unwrap();
        assert_eq!(got.len(), 2);
        assert!(t.lookups("parameter `n`", &Json::from("a")).is_err());
        assert!(
            t.lookups("parameter `n`", &serde_json::json!(["a", 3]))
                .is_err()
        );
    }
}
