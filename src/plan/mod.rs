//! Plan: a compiled blueprint → node instances and their relationship instances.
//!
//! `build` checks the node graph for dependency cycles ([`graph`]), arranges nodes and scaling
//! groups into the containment tree ([`tree`]) and generates instances ([`instances`]). The
//! [`Plan`] keeps that tree and per-node/per-group instance lists, so a later modification
//! (scaling) can add or remove instances under one parent instance without rebuilding the rest.
//! The plan never performs I/O; [`render`] turns it into JSON, text or Graphviz.

pub mod graph;
pub mod ids;
pub mod instances;
pub mod modify;
pub mod render;
pub mod rows;
pub mod tree;

use serde::{Deserialize, Serialize};

use crate::diag::Diagnostics;
use crate::dsl::Compiled;
pub use ids::{IdMaker, InstanceId};
pub use tree::{Entity, Tree};

/// Where an instance hangs in the instance tree: under a node instance or a group instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    Node(u32),
    Group(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInstance {
    pub id: InstanceId,
    /// Index of the node in `Compiled::nodes`.
    pub node: usize,
    pub parent: Option<Slot>,
    /// The instance this one is contained in.
    pub contained_in: Option<u32>,
    /// The Compute instance hosting this one (itself for a Compute node).
    pub host: Option<u32>,
    pub relationships: Vec<RelationshipInstance>,
    /// Scaling-group instances this instance is a member of, innermost first.
    pub scaling_groups: Vec<u32>,
    /// Creation order within the deployment (instances and group instances share it).
    #[serde(default)]
    pub seq: i64,
    /// `node_instance_index`: 1 for a node's first instance, never reused after a scale-in.
    #[serde(default)]
    pub index: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipInstance {
    /// Index into the source node's `relationships`.
    pub relationship: usize,
    /// Index of the target node instance.
    pub target: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInstance {
    pub id: InstanceId,
    pub group: usize,
    pub parent: Option<Slot>,
    #[serde(default)]
    pub seq: i64,
}

/// The node-instance plan of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub tree: Tree,
    pub instances: Vec<NodeInstance>,
    pub group_instances: Vec<GroupInstance>,
    /// Node index → its instances.
    pub by_node: Vec<Vec<u32>>,
    /// Scaling-group index → its instances.
    pub by_group: Vec<Vec<u32>>,
    /// Node indexes, every node after the nodes it has relationships to.
    pub install_order: Vec<usize>,
    /// Current instances per parent instance of each node and scaling group (starts at the
    /// blueprint's default; scaling changes it).
    #[serde(default)]
    pub node_counts: Vec<u32>,
    #[serde(default)]
    pub group_counts: Vec<u32>,
    /// Per node, the `index` its next instance gets.
    #[serde(default)]
    pub next_index: Vec<u32>,
    /// The `seq` the next instance or group instance gets.
    #[serde(default)]
    pub next_seq: i64,
}

/// A plan without its instances: what every command needs (the containment tree, install
/// order, counts and counters) and what is stored in one piece. Its size follows the
/// blueprint, not the number of instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    pub tree: Tree,
    pub install_order: Vec<usize>,
    pub node_counts: Vec<u32>,
    pub group_counts: Vec<u32>,
    pub next_index: Vec<u32>,
    pub next_seq: i64,
}

/// Build the plan with fresh random ids. `None` when the blueprint cannot be planned, or when
/// `diags` already held errors (the structure is still checked, so its errors are reported too).
pub fn build(c: &Compiled, diags: &mut Diagnostics) -> Option<Plan> {
    build_with(c, &mut IdMaker::new(), diags)
}

pub fn build_with(c: &Compiled, ids: &mut IdMaker, diags: &mut Diagnostics) -> Option<Plan> {
    let had_errors = !diags.is_empty();
    let graph = graph::NodeGraph::new(c);
    if !graph.check_cycles(c, diags) {
        return None;
    }
    let tree = tree::build(c, diags)?;
    if had_errors || !diags.is_empty() {
        return None;
    }
    Some(instances::generate(c, tree, graph.install_order(), ids))
}

impl Plan {
    /// A plan with no instances loaded yet.
    pub fn from_frame(frame: Frame) -> Plan {
        Plan {
            by_node: vec![Vec::new(); frame.node_counts.len()],
            by_group: vec![Vec::new(); frame.group_counts.len()],
            instances: Vec::new(),
            group_instances: Vec::new(),
            tree: frame.tree,
            install_order: frame.install_order,
            node_counts: frame.node_counts,
            group_counts: frame.group_counts,
            next_index: frame.next_index,
            next_seq: frame.next_seq,
        }
    }

    pub fn frame(&self) -> Frame {
        Frame {
            tree: self.tree.clone(),
            install_order: self.install_order.clone(),
            node_counts: self.node_counts.clone(),
            group_counts: self.group_counts.clone(),
            next_index: self.next_index.clone(),
            next_seq: self.next_seq,
        }
    }

    /// Host node of a node: the nearest Compute along `contained_in`, itself included.
    pub fn host_node(c: &Compiled, mut node: usize) -> Option<usize> {
        for _ in 0..=c.nodes.len() {
            if c.nodes[node].is_compute() {
                return Some(node);
            }
            node = c.nodes[node].contained_in?;
        }
        None
    }
}
