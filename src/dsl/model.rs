//! The blueprint model: every section of the DSL as typed data, still unresolved.
//!
//! `read` fills these from the YAML documents; `types` resolves inheritance over them; `compile`
//! turns them into the resolved [`super::Compiled`] blueprint. Values that may hold intrinsic
//! functions (properties, operation inputs, outputs) stay as spanned YAML [`Node`]s here so that
//! errors found while evaluating them can point at the token.

use crate::maps::IndexMap;

use super::version::DslVersion;
use crate::load::source::Loc;
use crate::load::yaml::{Key, Node};

/// A name as written, with its location (type names, targets, members, …).
pub type Name = Key;

/// Schema of one property, input, workflow parameter or data-type field.
#[derive(Debug, Clone)]
pub struct PropertySchema {
    pub loc: Loc,
    pub ty: Option<Name>,
    pub item_type: Option<Name>,
    pub default: Option<Node>,
    pub required: bool,
    pub description: Option<String>,
    pub constraints: Vec<Constraint>,
}

/// A constraint on a property or input value.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub loc: Loc,
    pub kind: ConstraintKind,
}

#[derive(Debug, Clone)]
pub enum ConstraintKind {
    Equal(serde_json::Value),
    GreaterThan(f64),
    GreaterOrEqual(f64),
    LessThan(f64),
    LessOrEqual(f64),
    InRange(f64, f64),
    ValidValues(Vec<serde_json::Value>),
    Length(usize),
    MinLength(usize),
    MaxLength(usize),
    Pattern(regex::Regex),
    /// Data-based constraints (`super::data_based`): checked against the store, not the value.
    DeploymentId(String),
    NamePattern(super::data_based::NamePattern),
    Labels(Vec<(String, String)>),
    FilterId(String),
    Tenants(Vec<serde_json::Value>),
}

/// One operation as written in a type or template.
#[derive(Debug, Clone)]
pub struct OperationDef {
    pub loc: Loc,
    /// `None` for `{}` or a mapping without `implementation`.
    pub implementation: Option<Name>,
    /// In a type: a schema (`{name: {type, default, …}}`); in a template: values. Kept raw.
    pub inputs: Vec<(Key, Node)>,
    pub executor: Option<String>,
    pub max_retries: Option<i64>,
    pub retry_interval: Option<f64>,
    pub timeout: Option<f64>,
    pub timeout_recoverable: Option<bool>,
}

/// `interface name → operation name → definition`, in written order.
pub type Interfaces = IndexMap<String, IndexMap<String, OperationDef>>;

#[derive(Debug, Clone)]
pub struct NodeType {
    pub loc: Loc,
    pub derived_from: Option<Name>,
    pub properties: IndexMap<String, PropertySchema>,
    pub interfaces: Interfaces,
}

#[derive(Debug, Clone)]
pub struct RelationshipType {
    pub loc: Loc,
    pub derived_from: Option<Name>,
    pub properties: IndexMap<String, PropertySchema>,
    pub source_interfaces: Interfaces,
    pub target_interfaces: Interfaces,
}

#[derive(Debug, Clone)]
pub struct DataType {
    pub loc: Loc,
    pub derived_from: Option<Name>,
    pub properties: IndexMap<String, PropertySchema>,
}

/// Instance counts as written (`capabilities.scalable.properties` or legacy `instances.deploy`).
#[derive(Debug, Clone, Default)]
pub struct ScalableSpec {
    pub default: Option<Node>,
    pub min: Option<Node>,
    pub max: Option<Node>,
}

#[derive(Debug, Clone)]
pub struct NodeTemplate {
    pub loc: Loc,
    pub ty: Name,
    pub properties: Vec<(Key, Node)>,
    pub interfaces: Interfaces,
    pub relationships: Vec<RelationshipTemplate>,
    pub scalable: ScalableSpec,
}

#[derive(Debug, Clone)]
pub struct RelationshipTemplate {
    pub loc: Loc,
    pub ty: Name,
    pub target: Name,
    pub properties: Vec<(Key, Node)>,
    pub source_interfaces: Interfaces,
    pub target_interfaces: Interfaces,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub loc: Loc,
    pub members: Vec<Name>,
    /// Cloudify's group policies (`groups: {G: {policies: {P: …}}}`), targeting the group.
    pub policies: Vec<(Key, Policy)>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub loc: Loc,
    pub ty: Name,
    pub properties: Vec<(Key, Node)>,
    pub targets: Vec<Name>,
    /// A group policy's triggers; top-level policies have none.
    pub triggers: Vec<TriggerDef>,
}

/// A trigger of a group policy: its name, type and `parameters` as written.
#[derive(Debug, Clone)]
pub struct TriggerDef {
    pub name: Key,
    pub ty: Name,
    pub parameters: Node,
}

#[derive(Debug, Clone)]
pub struct WorkflowDef {
    pub loc: Loc,
    pub mapping: Name,
    pub parameters: IndexMap<String, PropertySchema>,
}

#[derive(Debug, Clone)]
pub struct OutputDef {
    pub loc: Loc,
    pub value: Node,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PluginDef {
    pub loc: Loc,
    pub executor: Option<String>,
    pub source: Option<String>,
    pub package_name: Option<String>,
    /// The whole definition, to tell identical re-declarations from conflicting ones.
    pub raw: serde_json::Value,
    /// The plugin directory on the plugin path whose type file declared it.
    pub dir: Option<crate::load::PluginDir>,
    /// Its properties: the values a dict-form import gave, else the declared `value`s.
    pub properties: IndexMap<String, Node>,
}

/// Everything the documents of a blueprint declare, merged, before resolution.
#[derive(Debug, Clone)]
pub struct Model {
    pub version: DslVersion,
    pub description: Option<String>,
    pub inputs: IndexMap<String, PropertySchema>,
    pub data_types: IndexMap<String, DataType>,
    pub plugins: IndexMap<String, PluginDef>,
    pub node_types: IndexMap<String, NodeType>,
    pub relationships: IndexMap<String, RelationshipType>,
    pub node_templates: IndexMap<String, NodeTemplate>,
    pub groups: IndexMap<String, Group>,
    pub policies: IndexMap<String, Policy>,
    /// Policy types and triggers: names only matter to the policy engine; kept as JSON.
    pub policy_types: IndexMap<String, (Loc, serde_json::Value)>,
    pub policy_triggers: IndexMap<String, (Loc, serde_json::Value)>,
    pub workflows: IndexMap<String, WorkflowDef>,
    pub outputs: IndexMap<String, OutputDef>,
    pub capabilities: IndexMap<String, OutputDef>,
    pub labels: serde_json::Map<String, serde_json::Value>,
}
