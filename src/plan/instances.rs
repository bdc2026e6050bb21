//! Instance generation: the containment tree → node instances and relationship instances.
//!
//! Walks the tree parents-first, giving every entity `count` instances under each instance of
//! its parent. Then every node instance gets its relationship instances: `contained_in` points at
//! the containing instance; `connected_to`/`depends_on` fan out to every target instance
//! (`all_to_all`) or to one (`all_to_one`), restricted to the same scaling-group instance when
//! source and target share a scaling group. Work is linear in instances plus relationship
//! instances; lookups of "instances of T inside group instance g" are indexed once per pair.

use crate::maps::{HashMap, HashMapExt};

use super::ids::{IdMaker, InstanceId};
use super::tree::{Entity, Tree};
use super::{GroupInstance, NodeInstance, Plan, RelationshipInstance, Slot};
use crate::dsl::Compiled;
use crate::dsl::compiled::ConnectionType;

pub fn generate(c: &Compiled, tree: Tree, install_order: Vec<usize>, ids: &mut IdMaker) -> Plan {
    let mut plan = Plan {
        by_node: vec![Vec::new(); c.nodes.len()],
        by_group: vec![Vec::new(); tree.groups.len()],
        instances: Vec::new(),
        group_instances: Vec::new(),
        install_order,
        node_counts: c.nodes.iter().map(|n| n.counts.default).collect(),
        group_counts: tree.groups.iter().map(|g| g.counts.default).collect(),
        next_index: vec![1; c.nodes.len()],
        next_seq: 0,
        tree,
    };
    let order = plan.tree.order.clone();
    for e in order {
        let parents: Vec<Option<Slot>> = match plan.tree.parent(e) {
            None => vec![None],
            Some(Entity::Node(p)) => plan.by_node[p]
                .iter()
                .map(|i| Some(Slot::Node(*i)))
                .collect(),
            Some(Entity::Group(g)) => plan.by_group[g]
                .iter()
                .map(|i| Some(Slot::Group(*i)))
                .collect(),
        };
        let count = plan.count(e);
        for parent in parents {
            for _ in 0..count {
                add_instance(c, &mut plan, e, parent, ids);
            }
        }
    }
    link_all(c, &mut plan);
    plan
}

/// Create one instance of `e` under `parent` (without relationships). Returns its index.
pub(super) fn add_instance(
    c: &Compiled,
    plan: &mut Plan,
    e: Entity,
    parent: Option<Slot>,
    ids: &mut IdMaker,
) -> Slot {
    match e {
        Entity::Group(g) => {
            let idx = plan.group_instances.len() as u32;
            plan.group_instances.push(GroupInstance {
                id: ids.make(&plan.tree.groups[g].name),
                group: g,
                parent,
                seq: plan.next_seq,
            });
            plan.next_seq += 1;
            plan.by_group[g].push(idx);
            Slot::Group(idx)
        }
        Entity::Node(n) => {
            let node = &c.nodes[n];
            let idx = plan.instances.len() as u32;
            let contained_in = node
                .contained_in
                .and_then(|h| plan.ancestor_node_instance(parent, h));
            let host = if node.is_compute() {
                Some(idx)
            } else {
                contained_in.and_then(|h| plan.instances[h as usize].host)
            };
            let mut scaling_groups = Vec::new();
            let mut cur = parent;
            while let Some(Slot::Group(gi)) = cur {
                scaling_groups.push(gi);
                cur = plan.group_instances[gi as usize].parent;
            }
            plan.instances.push(NodeInstance {
                id: ids.make(&node.id.0),
                node: n,
                parent,
                contained_in,
                host,
                relationships: Vec::new(),
                scaling_groups,
                seq: plan.next_seq,
                index: plan.next_index[n],
            });
            plan.next_seq += 1;
            plan.next_index[n] += 1;
            plan.by_node[n].push(idx);
            Slot::Node(idx)
        }
    }
}

/// Fill in the relationship instances of every node instance.
pub(super) fn link_all(c: &Compiled, plan: &mut Plan) {
    let mut index = TargetIndex::default();
    for i in 0..plan.instances.len() {
        let rels = links_of(c, plan, i as u32, &mut index);
        plan.instances[i].relationships = rels;
    }
}

/// Instances of a target node grouped by their ancestor instance of a scaling group.
#[derive(Default)]
pub(super) struct TargetIndex {
    within: HashMap<(usize, usize), HashMap<u32, Vec<u32>>>,
}

pub(super) fn links_of(
    c: &Compiled,
    plan: &Plan,
    source: u32,
    index: &mut TargetIndex,
) -> Vec<RelationshipInstance> {
    let inst = &plan.instances[source as usize];
    let node = &c.nodes[inst.node];
    let mut out = Vec::new();
    for (ri, r) in node.relationships.iter().enumerate() {
        if r.is_contained_in() {
            if let Some(t) = inst.contained_in {
                out.push(RelationshipInstance {
                    relationship: ri,
                    target: t,
                });
            }
            continue;
        }
        let shared_group = shared_scaling_group(&plan.tree, inst.node, r.target);
        let candidates: &[u32] = match shared_group {
            Some(g) => {
                let Some(gi) = plan.ancestor_group_instance(Slot::Node(source), g) else {
                    continue;
                };
                let by_group = index.within.entry((r.target, g)).or_insert_with(|| {
                    let mut m: HashMap<u32, Vec<u32>> = HashMap::new();
                    for &t in &plan.by_node[r.target] {
                        if let Some(tg) = plan.ancestor_group_instance(Slot::Node(t), g) {
                            m.entry(tg).or_default().push(t);
                        }
                    }
                    m
                });
                by_group.get(&gi).map_or(&[], Vec::as_slice)
            }
            None => &plan.by_node[r.target],
        };
        let chosen = match r.connection {
            ConnectionType::AllToAll => candidates,
            ConnectionType::AllToOne => &candidates[..candidates.len().min(1)],
        };
        out.extend(chosen.iter().map(|&t| RelationshipInstance {
            relationship: ri,
            target: t,
        }));
    }
    out
}

/// The innermost scaling group that contains both nodes, if any.
pub fn shared_scaling_group(tree: &Tree, a: usize, b: usize) -> Option<usize> {
    let a_groups: Vec<usize> = tree
        .ancestors(Entity::Node(a))
        .filter_map(|e| match e {
            Entity::Group(g) => Some(g),
            Entity::Node(_) => None,
        })
        .collect();
    if a_groups.is_empty() {
        return None;
    }
    tree.ancestors(Entity::Node(b)).find_map(|e| match e {
        Entity::Group(g) if a_groups.contains(&g) => Some(g),
        _ => None,
    })
}

impl Plan {
    /// The instance of node `node` at or above `slot` in the instance tree.
    pub(super) fn ancestor_node_instance(
        &self,
        mut slot: Option<Slot>,
        node: usize,
    ) -> Option<u32> {
        while let Some(s) = slot {
            slot = match s {
                Slot::Node(i) if self.instances[i as usize].node == node => return Some(i),
                Slot::Node(i) => self.instances[i as usize].parent,
                Slot::Group(g) => self.group_instances[g as usize].parent,
            };
        }
        None
    }

    /// The instance of scaling group `group` above `slot` in the instance tree.
    pub(super) fn ancestor_group_instance(&self, slot: Slot, group: usize) -> Option<u32> {
        let mut cur = Some(slot);
        while let Some(s) = cur {
            cur = match s {
                Slot::Group(g) if self.group_instances[g as usize].group == group => {
                    return Some(g);
                }
                Slot::Group(g) => self.group_instances[g as usize].parent,
                Slot::Node(i) => self.instances[i as usize].parent,
            };
        }
        None
    }

    pub fn instance_id(&self, i: u32) -> &InstanceId {
        &self.instances[i as usize].id
    }
}
