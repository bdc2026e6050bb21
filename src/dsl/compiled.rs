//! The compiled blueprint: the DSL stage's output and the plan stage's input.
//!
//! Everything here is resolved: types flattened into hierarchies, properties merged with their
//! defaults and evaluated (runtime functions kept as JSON), operations mapped to a plugin and
//! function, relationship targets turned into node indexes, instance counts into integers.
//! It is plain data: no locations are needed past this point except for plan-level errors, so
//! nodes keep the location of their template.

use std::fmt;

use crate::maps::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::version::DslVersion;
use crate::load::source::Loc;

/// The name of a node template; unique within a blueprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Instance counts of a node or scaling group. `max: None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub default: u32,
    pub min: u32,
    pub max: Option<u32>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            default: 1,
            min: 0,
            max: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionType {
    AllToAll,
    AllToOne,
}

/// An operation ready to run: which plugin, which function, with which inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub plugin: String,
    /// `module.function` within the plugin (`script_runner.tasks.run` for scripts).
    pub implementation: String,
    // What is empty or unset is left out of the stored form: a node type's operations are
    // repeated in every node of it, and mostly unset.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_recoverable: Option<bool>,
}

/// `interface.operation` → operation; operations with no implementation are absent.
pub type Operations = IndexMap<String, Operation>;

/// Where an operation set is in [`Compiled::operation_sets`]. Templates of one type that
/// change none of its operations share that type's set, and so do relationships of one type:
/// a blueprint of a thousand hosts holds and stores the Compute type's two dozen operations
/// once, not a thousand times. Set 0 is the empty set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationSetId(pub u32);

impl OperationSetId {
    /// The empty set: a node or relationship whose operations all lack an implementation.
    pub const NONE: OperationSetId = OperationSetId(0);
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledRelationship {
    pub loc: Loc,
    pub type_name: String,
    /// Root first, the relationship's own type last.
    pub type_hierarchy: Vec<String>,
    pub target: usize,
    pub properties: Map<String, Json>,
    pub source_operations: OperationSetId,
    pub target_operations: OperationSetId,
    pub connection: ConnectionType,
}

impl CompiledRelationship {
    pub fn is_contained_in(&self) -> bool {
        self.type_hierarchy
            .iter()
            .any(|t| t == "cloudify.relationships.contained_in")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledNode {
    pub id: NodeId,
    pub loc: Loc,
    pub type_name: String,
    pub type_hierarchy: Vec<String>,
    pub properties: Map<String, Json>,
    pub operations: OperationSetId,
    pub relationships: Vec<CompiledRelationship>,
    pub counts: Counts,
    /// The node this one is contained in, if any.
    pub contained_in: Option<usize>,
}

impl CompiledNode {
    /// The index of the relationship that places this node's instances in their container
    /// (the first of type `contained_in`), if any.
    pub fn containment(&self) -> Option<usize> {
        self.relationships
            .iter()
            .position(CompiledRelationship::is_contained_in)
    }

    pub fn is_compute(&self) -> bool {
        self.type_hierarchy
            .iter()
            .any(|t| t == "cloudify.nodes.Compute")
    }

    /// The agent install method Cloudify would use on this node, when it would install an
    /// agent: a Compute whose `install_agent` is not false and whose install method
    /// (`cloudify_agent`'s, else `agent_config`'s, else `remote`) is not `none` or `provided`.
    /// windlass has no agents; the engine says so once per install.
    pub fn wants_agent(&self) -> Option<String> {
        if !self.is_compute() || self.properties.get("install_agent") == Some(&Json::Bool(false)) {
            return None;
        }
        let method = ["cloudify_agent", "agent_config"]
            .iter()
            .find_map(|p| self.properties.get(*p)?.get("install_method")?.as_str())
            .unwrap_or("remote");
        (!matches!(method, "none" | "provided")).then(|| method.to_string())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledGroup {
    pub loc: Loc,
    /// Member names with their locations (nodes or other groups).
    pub members: Vec<(String, Loc)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingPolicy {
    pub loc: Loc,
    pub targets: Vec<(String, Loc)>,
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parameter {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub required: bool,
    /// A data-based type (`deployment_id`, `node_id`, …, or a list of one) with its filters:
    /// values are checked against the store when the workflow starts (`engine::lookups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_based: Option<super::data_based::Typed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledWorkflow {
    pub plugin: String,
    pub operation: String,
    pub parameters: IndexMap<String, Parameter>,
}

/// A validated, resolved blueprint with its inputs applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compiled {
    pub version: DslVersion,
    pub description: Option<String>,
    pub inputs: IndexMap<String, Json>,
    pub nodes: Vec<CompiledNode>,
    /// The distinct operation sets of nodes and relationships ([`OperationSetId`]); the first
    /// is empty.
    pub operation_sets: Vec<Operations>,
    pub node_index: IndexMap<String, usize>,
    pub groups: IndexMap<String, CompiledGroup>,
    pub scaling_policies: IndexMap<String, ScalingPolicy>,
    /// Policies other than scaling ones, for the policy engine (`policy::PolicySet`):
    /// `{type, properties, targets, triggers?, source?}`. Group policies are keyed
    /// `GROUP/POLICY` and target their group; `source` is kept for a blueprint-declared type.
    pub policies: IndexMap<String, Json>,
    pub workflows: IndexMap<String, CompiledWorkflow>,
    pub outputs: IndexMap<String, Json>,
    pub capabilities: IndexMap<String, Json>,
    /// Inputs of a data-based type, checked against the store when the deployment is created
    /// (`engine::lookups`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub input_types: IndexMap<String, super::data_based::Typed>,
    /// The blueprint's `labels` (and `blueprint_labels`): what a `labels` constraint of a
    /// `deployment_id` input or parameter checks a deployment for.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String, Json>,
    /// Plugins declared by a type file found on the plugin path, by plugin name.
    #[serde(default)]
    pub external_plugins: IndexMap<String, ExternalPlugin>,
}

/// A plugin whose type file came from a directory on the plugin path (`DIR/NAME/plugin.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalPlugin {
    /// `NAME`: the directory's name, under which a deployment keeps its copy.
    pub dir_name: String,
    /// The directory it was loaded from.
    pub source: std::path::PathBuf,
    /// Whether the directory holds an executable `windlass-plugin` that runs its operations.
    pub runnable: bool,
    /// Its properties (`- plugin:NAME: {…}` values, else the declared `value`s), plan-time functions
    /// evaluated.
    pub properties: Map<String, Json>,
}

impl Compiled {
    /// The operations of a set. Sets are made by `compile` and checked when read from a store
    /// ([`Compiled::check_operation_sets`]), so every id has its set.
    pub fn operations(&self, set: OperationSetId) -> &Operations {
        &self.operation_sets[set.0 as usize]
    }

    /// An error naming the first node whose operation set is missing (a damaged stored form).
    pub fn check_operation_sets(&self) -> Result<(), String> {
        let known = |set: OperationSetId| (set.0 as usize) < self.operation_sets.len();
        for n in &self.nodes {
            let rels_known = n
                .relationships
                .iter()
                .all(|r| known(r.source_operations) && known(r.target_operations));
            if !known(n.operations) || !rels_known {
                return Err(format!("node `{}` refers to a missing operation set", n.id));
            }
        }
        Ok(())
    }

    /// A node's operations.
    pub fn node_operations(&self, node: usize) -> &Operations {
        self.operations(self.nodes[node].operations)
    }

    /// Whether the operation `name` of a relationship has an implementation on the source or
    /// the target side.
    pub fn implements(&self, rel: &CompiledRelationship, name: &str) -> bool {
        self.operations(rel.source_operations).contains_key(name)
            || self.operations(rel.target_operations).contains_key(name)
    }

    /// Whether an operation input names a node at runtime (`get_attribute: [NODE, …]`,
    /// `get_attributes_list`, `get_attributes_dict`). Resolving those needs every instance of
    /// that node, so a scale of such a blueprint reads the whole plan.
    pub fn names_nodes_at_runtime(&self) -> bool {
        fn names_node(v: &Json) -> bool {
            match v {
                Json::Object(m) => m.iter().any(|(k, arg)| {
                    let by_name = match k.as_str() {
                        "get_attributes_list" | "get_attributes_dict" => true,
                        "get_attribute" => !matches!(
                            arg.get(0).and_then(Json::as_str),
                            Some("SELF" | "SOURCE" | "TARGET")
                        ),
                        _ => false,
                    };
                    by_name || names_node(arg)
                }),
                Json::Array(a) => a.iter().any(names_node),
                _ => false,
            }
        }
        self.operation_sets
            .iter()
            .any(|o| o.values().any(|op| op.inputs.values().any(names_node)))
    }
}
