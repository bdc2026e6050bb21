//! The containment tree: node templates and scaling groups arranged by what multiplies what.
//!
//! A node's parent is the node it is contained in, or the scaling group it belongs to; a
//! scaling group's parent is the node its members are contained in (or an enclosing group).
//! Every entity gets `count` instances per instance of its parent, which is how
//! `contained_in` multiplies and how a group scales as a unit. Cloudify's rules for groups are
//! checked here: a node or group is a member of at most one scaling group, group nesting has no
//! cycles, and the members of a group share their containing node.

use crate::maps::IndexMap;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Diagnostics};
use crate::dsl::Compiled;
use crate::dsl::compiled::Counts;

/// A node template or a scaling group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Entity {
    Node(usize),
    Group(usize),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingGroup {
    pub name: String,
    pub members: Vec<String>,
    pub counts: Counts,
    pub policy: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tree {
    pub groups: Vec<ScalingGroup>,
    pub node_parent: Vec<Option<Entity>>,
    pub group_parent: Vec<Option<Entity>>,
    /// Entities parents-first.
    pub order: Vec<Entity>,
}

impl Tree {
    pub fn parent(&self, e: Entity) -> Option<Entity> {
        match e {
            Entity::Node(n) => self.node_parent[n],
            Entity::Group(g) => self.group_parent[g],
        }
    }

    /// Ancestors of an entity, nearest first.
    pub fn ancestors(&self, e: Entity) -> impl Iterator<Item = Entity> + '_ {
        std::iter::successors(self.parent(e), |p| self.parent(*p))
    }
}

/// Build the tree, or report why it cannot be built.
pub fn build(c: &Compiled, diags: &mut Diagnostics) -> Option<Tree> {
    let before = diags.len();
    // Scaling groups: the groups targeted by a scaling policy.
    let mut groups: IndexMap<String, ScalingGroup> = IndexMap::default();
    for (policy, p) in &c.scaling_policies {
        for (target, loc) in &p.targets {
            let Some(g) = c.groups.get(target) else {
                continue;
            };
            if let Some(existing) = groups.get(target) {
                diags.push(Diagnostic::new(
                    *loc,
                    format!("group `{target}` is the target of two scaling policies, `{}` and `{policy}`", existing.policy),
                ));
                continue;
            }
            groups.insert(
                target.clone(),
                ScalingGroup {
                    name: target.clone(),
                    members: g.members.iter().map(|(m, _)| m.clone()).collect(),
                    counts: p.counts,
                    policy: policy.clone(),
                },
            );
        }
    }

    // Direct membership: each node or group in at most one scaling group.
    let mut node_group: Vec<Option<usize>> = vec![None; c.nodes.len()];
    let mut group_group: Vec<Option<usize>> = vec![None; groups.len()];
    for (gi, (name, _)) in groups.iter().enumerate() {
        for (member, loc) in &c.groups[name].members {
            let slot = if let Some(&n) = c.node_index.get(member) {
                &mut node_group[n]
            } else if let Some(m) = groups.get_index_of(member) {
                if m == gi {
                    diags.error(*loc, format!("group `{name}` contains itself"));
                    continue;
                }
                &mut group_group[m]
            } else {
                if c.groups.contains_key(member) {
                    diags.error(*loc, format!("group `{member}` is a member of scaling group `{name}` but is not itself a scaling group"));
                }
                continue;
            };
            match slot {
                Some(other) => diags.error(
                    *loc,
                    format!(
                        "`{member}` is a member of two scaling groups, `{}` and `{name}`",
                        groups.get_index(*other).map_or("?", |(n, _)| n.as_str())
                    ),
                ),
                None => *slot = Some(gi),
            }
        }
    }
    // Nested groups must not form a cycle.
    for start in 0..groups.len() {
        let mut seen = vec![start];
        let mut cur = group_group[start];
        while let Some(g) = cur {
            if g == start {
                let names: Vec<&str> = seen
                    .iter()
                    .chain(std::iter::once(&start))
                    .map(|i| groups.get_index(*i).unwrap().0.as_str())
                    .collect();
                diags.error(
                    c.groups[&groups[start].name].loc,
                    format!("circular group membership: {}", names.join(" -> ")),
                );
                break;
            }
            if seen.contains(&g) {
                break;
            }
            seen.push(g);
            cur = group_group[g];
        }
    }
    if diags.len() > before {
        return None;
    }

    let host = |n: usize| c.nodes[n].contained_in;
    // Nodes that belong to a group, through nested groups too.
    let in_group_closure = |node: usize, g: usize| -> bool {
        let mut cur = node_group[node];
        while let Some(x) = cur {
            if x == g {
                return true;
            }
            cur = group_group[x];
        }
        false
    };
    // A node is inside a group when it or a node containing it belongs to the group.
    let inside = |node: usize, g: usize| -> bool {
        let mut cur = Some(node);
        while let Some(n) = cur {
            if in_group_closure(n, g) {
                return true;
            }
            cur = host(n);
        }
        false
    };

    // The containing node of each group: the shared container of its top members.
    let mut group_container: Vec<Option<usize>> = vec![None; groups.len()];
    let mut resolved = vec![false; groups.len()];
    // Innermost groups first: a group's container depends on its nested groups' containers.
    let mut pending: Vec<usize> = (0..groups.len()).collect();
    while !pending.is_empty() {
        let before_len = pending.len();
        pending.retain(|&g| {
            let name = &groups[g].name;
            let members = &c.groups[name].members;
            let nested_ready = members.iter().all(|(m, _)| groups.get_index_of(m).is_none_or(|i| resolved[i]));
            if !nested_ready {
                return true;
            }
            let mut containers: Vec<(Option<usize>, &str)> = Vec::new();
            for (m, _) in members {
                let container = if let Some(&n) = c.node_index.get(m) {
                    host(n)
                } else if let Some(i) = groups.get_index_of(m) {
                    group_container[i]
                } else {
                    continue;
                };
                if container.is_some_and(|h| inside(h, g)) {
                    continue;
                }
                containers.push((container, m));
            }
            if let Some(((first, first_m), rest)) = containers.split_first() {
                for (other, m) in rest {
                    if other != first {
                        let describe = |x: &Option<usize>| x.map_or("nothing".to_string(), |h| format!("`{}`", c.nodes[h].id));
                        diags.push(
                            Diagnostic::new(
                                c.groups[name].loc,
                                format!(
                                    "members of group `{name}` must share their containing node: `{first_m}` is contained in {}, `{m}` in {}",
                                    describe(first),
                                    describe(other)
                                ),
                            )
                            .with_help("put only nodes with the same host in one scaling group, or add the host to the group"),
                        );
                        break;
                    }
                }
                group_container[g] = *first;
            }
            resolved[g] = true;
            false
        });
        if pending.len() == before_len {
            break;
        }
    }
    if diags.len() > before {
        return None;
    }

    let parent_of = |direct_group: Option<usize>, container: Option<usize>| -> Option<Entity> {
        match (direct_group, container) {
            (Some(g), Some(h)) if inside(h, g) => Some(Entity::Node(h)),
            (Some(g), _) => Some(Entity::Group(g)),
            (None, Some(h)) => Some(Entity::Node(h)),
            (None, None) => None,
        }
    };
    let node_parent: Vec<Option<Entity>> = (0..c.nodes.len())
        .map(|n| parent_of(node_group[n], host(n)))
        .collect();
    let group_parent: Vec<Option<Entity>> = (0..groups.len())
        .map(|g| parent_of(group_group[g], group_container[g]))
        .collect();

    // Parents first: depth-first from the roots, in blueprint order.
    let mut children: IndexMap<Option<Entity>, Vec<Entity>> = IndexMap::default();
    for (g, parent) in group_parent.iter().enumerate() {
        children.entry(*parent).or_default().push(Entity::Group(g));
    }
    for (n, parent) in node_parent.iter().enumerate() {
        children.entry(*parent).or_default().push(Entity::Node(n));
    }
    let mut order = Vec::with_capacity(c.nodes.len() + groups.len());
    let mut stack: Vec<Entity> = children.get(&None).cloned().unwrap_or_default();
    stack.reverse();
    while let Some(e) = stack.pop() {
        order.push(e);
        if let Some(kids) = children.get(&Some(e)) {
            stack.extend(kids.iter().rev());
        }
    }
    Some(Tree {
        groups: groups.into_values().collect(),
        node_parent,
        group_parent,
        order,
    })
}
