//! Plan modification: scaling a node or scaling group out or in, touching only what changes.
//!
//! Scale-out adds `delta` instances of the entity under each instance of its parent, with
//! everything they contain, links the new instances (an `all_to_one` source keeps its target,
//! links inside a scaling group stay inside the group instance), and gives existing instances
//! that relate to the new ones their new relationship instances. The work is proportional to
//! what is added. Scale-in picks instances (asked-for ones first, never excluded ones, else the
//! newest), and removes them with everything they contain, and every relationship instance that
//! points at them; indexes are then compacted.
//!
//! All of this works on a partial plan too (the instances a scale touches, see
//! `engine::scope`): it only follows the per-node lists and parent links of what is loaded.

use crate::maps::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::ids::IdMaker;
use super::instances::{TargetIndex, add_instance, links_of, shared_scaling_group};
use super::tree::Entity;
use super::{Plan, RelationshipInstance, Slot};
use crate::dsl::Compiled;
use crate::dsl::compiled::ConnectionType;

/// What a scale-out added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Added {
    /// New node instances (indexes into `Plan::instances`).
    pub instances: Vec<u32>,
    /// New scaling-group instances (indexes into `Plan::group_instances`).
    pub groups: Vec<u32>,
    /// Existing instances that got a relationship instance to a new one: (source, index into
    /// the source's `relationships`).
    pub links: Vec<(u32, usize)>,
}

/// What a scale-in will remove (computed before removing, so indexes are still valid).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Removal {
    pub instances: Vec<u32>,
    pub groups: Vec<u32>,
    /// Surviving instances' relationship instances that point at removed ones.
    pub links: Vec<(u32, usize)>,
}

impl Plan {
    /// Current instances per parent instance of an entity.
    pub fn count(&self, e: Entity) -> u32 {
        match e {
            Entity::Node(n) => self.node_counts[n],
            Entity::Group(g) => self.group_counts[g],
        }
    }

    fn set_count(&mut self, e: Entity, n: u32) {
        match e {
            Entity::Node(i) => self.node_counts[i] = n,
            Entity::Group(g) => self.group_counts[g] = n,
        }
    }

    /// Instances of the entity's parent (or one `None` for a root entity).
    pub fn parent_slots(&self, e: Entity) -> Vec<Option<Slot>> {
        match self.tree.parent(e) {
            None => vec![None],
            Some(Entity::Node(p)) => self.by_node[p]
                .iter()
                .map(|i| Some(Slot::Node(*i)))
                .collect(),
            Some(Entity::Group(g)) => self.by_group[g]
                .iter()
                .map(|i| Some(Slot::Group(*i)))
                .collect(),
        }
    }

    /// The entity's instances, as slots.
    pub fn slots(&self, e: Entity) -> Vec<Slot> {
        match e {
            Entity::Node(n) => self.by_node[n].iter().map(|i| Slot::Node(*i)).collect(),
            Entity::Group(g) => self.by_group[g].iter().map(|i| Slot::Group(*i)).collect(),
        }
    }

    fn children(&self) -> HashMap<Entity, Vec<Entity>> {
        let mut out: HashMap<Entity, Vec<Entity>> = HashMap::new();
        for e in &self.tree.order {
            if let Some(p) = self.tree.parent(*e) {
                out.entry(p).or_default().push(*e);
            }
        }
        out
    }

    /// Add `delta` instances of `e` under each of its parent's instances.
    pub fn scale_out(&mut self, c: &Compiled, e: Entity, delta: u32, ids: &mut IdMaker) -> Added {
        for id in self
            .instances
            .iter()
            .map(|i| &i.id)
            .chain(self.group_instances.iter().map(|g| &g.id))
        {
            ids.reserve(&id.0);
        }
        let before = self.instances.len() as u32;
        let groups_before = self.group_instances.len() as u32;
        let children = self.children();
        for parent in self.parent_slots(e) {
            for _ in 0..delta {
                self.add_subtree(c, e, parent, &children, ids);
            }
        }
        self.set_count(e, self.count(e) + delta);
        let added: Vec<u32> = (before..self.instances.len() as u32).collect();
        let mut index = TargetIndex::default();
        for &i in &added {
            let rels = links_of(c, self, i, &mut index);
            self.instances[i as usize].relationships = rels;
        }
        let links = self.link_existing_sources(c, &added, before);
        Added {
            instances: added,
            groups: (groups_before..self.group_instances.len() as u32).collect(),
            links,
        }
    }

    fn add_subtree(
        &mut self,
        c: &Compiled,
        e: Entity,
        parent: Option<Slot>,
        children: &HashMap<Entity, Vec<Entity>>,
        ids: &mut IdMaker,
    ) {
        let slot = add_instance(c, self, e, parent, ids);
        for child in children.get(&e).cloned().unwrap_or_default() {
            for _ in 0..self.count(child) {
                self.add_subtree(c, child, Some(slot), children, ids);
            }
        }
    }

    /// Existing `all_to_all` sources of the nodes that got new instances link to them too.
    fn link_existing_sources(
        &mut self,
        c: &Compiled,
        added: &[u32],
        before: u32,
    ) -> Vec<(u32, usize)> {
        let mut new_by_node: HashMap<usize, Vec<u32>> = HashMap::new();
        for &i in added {
            new_by_node
                .entry(self.instances[i as usize].node)
                .or_default()
                .push(i);
        }
        let mut links = Vec::new();
        for (s_node, node) in c.nodes.iter().enumerate() {
            for (ri, r) in node.relationships.iter().enumerate() {
                if r.is_contained_in() || r.connection == ConnectionType::AllToOne {
                    continue;
                }
                let Some(targets) = new_by_node.get(&r.target) else {
                    continue;
                };
                let shared = shared_scaling_group(&self.tree, s_node, r.target);
                for &t in targets {
                    let group_of_t =
                        shared.and_then(|g| self.ancestor_group_instance(Slot::Node(t), g));
                    let sources: Vec<u32> = self.by_node[s_node]
                        .iter()
                        .copied()
                        .filter(|s| *s < before)
                        .filter(|s| match (shared, group_of_t) {
                            (Some(g), Some(gt)) => {
                                self.ancestor_group_instance(Slot::Node(*s), g) == Some(gt)
                            }
                            _ => true,
                        })
                        .collect();
                    for s in sources {
                        let rels = &mut self.instances[s as usize].relationships;
                        rels.push(RelationshipInstance {
                            relationship: ri,
                            target: t,
                        });
                        links.push((s, rels.len() - 1));
                    }
                }
            }
        }
        links
    }

    /// Pick `per_parent` instances of `e` to remove under each instance of its parent:
    /// `include` first (instances of `e`, or of anything inside one), never `exclude`, then the
    /// newest.
    pub fn pick_for_removal(
        &self,
        e: Entity,
        per_parent: usize,
        include: &[String],
        exclude: &[String],
    ) -> Result<Vec<Slot>, String> {
        let own = self.slots(e);
        let parent_of = |s: &Slot| self.slot_parent(*s);
        let mut included: Vec<Slot> = Vec::new();
        for wanted in include {
            let Some(found) = self.slot_of(wanted) else {
                return Err(format!("include_instances: no instance `{wanted}`"));
            };
            let owner = own
                .iter()
                .copied()
                .find(|o| *o == found || self.is_inside(found, *o));
            match owner {
                Some(o) if !included.contains(&o) => included.push(o),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "include_instances: `{wanted}` is not part of what is being scaled"
                    ));
                }
            }
        }
        let named_excluded: Vec<Slot> = exclude.iter().filter_map(|x| self.slot_of(x)).collect();
        let excluded: HashSet<Slot> = own
            .iter()
            .copied()
            .filter(|o| {
                named_excluded
                    .iter()
                    .any(|s| s == o || self.is_inside(*s, *o))
            })
            .collect();
        if included.iter().any(|c| excluded.contains(c)) {
            return Err("an instance is both included and excluded".to_string());
        }
        // Each parent instance gives `per_parent`: the included ones under it, then its newest.
        let mut parents: Vec<Option<Slot>> = own.iter().map(parent_of).collect();
        let mut seen = HashSet::new();
        parents.retain(|p| seen.insert(*p));
        let where_ = |p: Option<Slot>| match p {
            Some(s) => format!(" under `{}`", self.slot_id(s)),
            None => String::new(),
        };
        let mut chosen = Vec::new();
        for parent in parents {
            let mut mine: Vec<Slot> = included
                .iter()
                .copied()
                .filter(|s| parent_of(s) == parent)
                .collect();
            if mine.len() > per_parent {
                return Err(format!(
                    "include_instances names {} instances to remove{}, but only {per_parent} are being removed",
                    mine.len(),
                    where_(parent)
                ));
            }
            for o in own.iter().rev().filter(|o| parent_of(o) == parent) {
                if mine.len() >= per_parent {
                    break;
                }
                if !mine.contains(o) && !excluded.contains(o) {
                    mine.push(*o);
                }
            }
            if mine.len() < per_parent {
                return Err(format!(
                    "only {} instances can be removed{} once exclusions are applied, {per_parent} asked",
                    mine.len(),
                    where_(parent)
                ));
            }
            chosen.extend(mine);
        }
        Ok(chosen)
    }

    /// The id of a node or group instance.
    pub fn slot_id(&self, s: Slot) -> String {
        match s {
            Slot::Node(i) => self.instances[i as usize].id.0.clone(),
            Slot::Group(g) => self.group_instances[g as usize].id.0.clone(),
        }
    }

    /// Every node and group instance by id, for looking up many at once.
    pub fn slots_by_id(&self) -> HashMap<&str, Slot> {
        let nodes = self
            .instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (inst.id.0.as_str(), Slot::Node(i as u32)));
        let groups = self
            .group_instances
            .iter()
            .enumerate()
            .map(|(g, gi)| (gi.id.0.as_str(), Slot::Group(g as u32)));
        nodes.chain(groups).collect()
    }

    /// The node or group instance with this id.
    pub fn slot_of(&self, id: &str) -> Option<Slot> {
        self.instance_slot(id).or_else(|| {
            self.group_instances
                .iter()
                .position(|g| g.id.0 == id)
                .map(|g| Slot::Group(g as u32))
        })
    }

    fn instance_slot(&self, id: &str) -> Option<Slot> {
        self.instances
            .iter()
            .position(|i| i.id.0 == id)
            .map(|i| Slot::Node(i as u32))
    }

    /// Whether `inner` hangs (transitively) under `outer` in the instance tree.
    fn is_inside(&self, inner: Slot, outer: Slot) -> bool {
        let mut cur = self.slot_parent(inner);
        while let Some(s) = cur {
            if s == outer {
                return true;
            }
            cur = self.slot_parent(s);
        }
        false
    }

    fn slot_parent(&self, s: Slot) -> Option<Slot> {
        match s {
            Slot::Node(i) => self.instances[i as usize].parent,
            Slot::Group(g) => self.group_instances[g as usize].parent,
        }
    }

    /// Everything that goes when `victims` go.
    pub fn removal(&self, victims: &[Slot]) -> Removal {
        let victims: HashSet<Slot> = victims.iter().copied().collect();
        let gone = |s: Slot| victims.contains(&s) || victims.iter().any(|v| self.is_inside(s, *v));
        let instances: Vec<u32> = (0..self.instances.len() as u32)
            .filter(|i| gone(Slot::Node(*i)))
            .collect();
        let groups: Vec<u32> = (0..self.group_instances.len() as u32)
            .filter(|g| gone(Slot::Group(*g)))
            .collect();
        let removed: HashSet<u32> = instances.iter().copied().collect();
        let mut links = Vec::new();
        for (s, inst) in self.instances.iter().enumerate() {
            if removed.contains(&(s as u32)) {
                continue;
            }
            for (k, r) in inst.relationships.iter().enumerate() {
                if removed.contains(&r.target) {
                    links.push((s as u32, k));
                }
            }
        }
        Removal {
            instances,
            groups,
            links,
        }
    }

    /// Remove instances and group instances (and links to them), compacting indexes.
    /// `entity` and `per_parent` update the entity's count.
    pub fn remove(&mut self, removal: &Removal, entity: Entity, per_parent: u32) {
        let gone: HashSet<u32> = removal.instances.iter().copied().collect();
        let gone_groups: HashSet<u32> = removal.groups.iter().copied().collect();
        let mut remap = vec![u32::MAX; self.instances.len()];
        let mut next = 0u32;
        for (i, slot) in remap.iter_mut().enumerate() {
            if !gone.contains(&(i as u32)) {
                *slot = next;
                next += 1;
            }
        }
        let mut gremap = vec![u32::MAX; self.group_instances.len()];
        let mut gnext = 0u32;
        for (g, slot) in gremap.iter_mut().enumerate() {
            if !gone_groups.contains(&(g as u32)) {
                *slot = gnext;
                gnext += 1;
            }
        }
        let map_slot = |s: Option<Slot>| {
            s.map(|s| match s {
                Slot::Node(i) => Slot::Node(remap[i as usize]),
                Slot::Group(g) => Slot::Group(gremap[g as usize]),
            })
        };
        let old = std::mem::take(&mut self.instances);
        for (i, mut inst) in old.into_iter().enumerate() {
            if gone.contains(&(i as u32)) {
                continue;
            }
            inst.parent = map_slot(inst.parent);
            inst.contained_in = inst.contained_in.map(|h| remap[h as usize]);
            inst.host = inst.host.map(|h| remap[h as usize]);
            inst.relationships.retain(|r| !gone.contains(&r.target));
            for r in &mut inst.relationships {
                r.target = remap[r.target as usize];
            }
            inst.scaling_groups = inst
                .scaling_groups
                .iter()
                .map(|g| gremap[*g as usize])
                .collect();
            self.instances.push(inst);
        }
        let old_groups = std::mem::take(&mut self.group_instances);
        for (g, mut gi) in old_groups.into_iter().enumerate() {
            if gone_groups.contains(&(g as u32)) {
                continue;
            }
            gi.parent = map_slot(gi.parent);
            self.group_instances.push(gi);
        }
        for list in &mut self.by_node {
            list.retain(|i| !gone.contains(i));
            for i in list.iter_mut() {
                *i = remap[*i as usize];
            }
        }
        for list in &mut self.by_group {
            list.retain(|g| !gone_groups.contains(g));
            for g in list.iter_mut() {
                *g = gremap[*g as usize];
            }
        }
        self.set_count(entity, self.count(entity).saturating_sub(per_parent));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::blueprint;

    fn open(text: &str) -> (Compiled, Plan) {
        let bp = blueprint::open_str(Path::new("t.yaml"), text, &Default::default()).unwrap();
        (bp.compiled, bp.plan)
    }

    fn json(c: &Compiled, p: &Plan) -> serde_json::Value {
        crate::plan::render::json(c, p)
    }

    const BP: &str = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: { type: cloudify.nodes.Compute, instances: { deploy: 2 } }\n  app:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.contained_in, target: vm }]\n  db: { type: cloudify.nodes.Root }\n  lb:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.connected_to, target: app }, { type: cloudify.relationships.connected_to, target: db, properties: { connection_type: all_to_one } }]\n";

    #[test]
    fn scale_out_adds_contained_instances_and_links_existing_sources() {
        let (c, mut p) = open(BP);
        let vm = *c.node_index.get("vm").unwrap();
        let added = p.scale_out(&c, Entity::Node(vm), 1, &mut IdMaker::seeded(7));
        assert_eq!(added.instances.len(), 2, "one vm and the app it contains");
        assert_eq!(p.by_node[vm].len(), 3);
        let lb = &p.instances[p.by_node[*c.node_index.get("lb").unwrap()][0] as usize];
        assert_eq!(lb.relationships.iter().filter(|r| p.instances[r.target as usize].node == *c.node_index.get("app").unwrap()).count(), 3);
        assert_eq!(added.links.len(), 1, "lb gets a link to the new app");
        // The new app sits on the new vm.
        let new_app = added
            .instances
            .iter()
            .find(|i| p.instances[**i as usize].node == *c.node_index.get("app").unwrap())
            .unwrap();
        let new_vm = added
            .instances
            .iter()
            .find(|i| p.instances[**i as usize].node == vm)
            .unwrap();
        assert_eq!(p.instances[*new_app as usize].host, Some(*new_vm));
        assert_eq!(p.count(Entity::Node(vm)), 3);
        let _ = json(&c, &p);
    }

    #[test]
    fn scale_in_removes_newest_with_contents_and_links() {
        let (c, mut p) = open(BP);
        let vm = *c.node_index.get("vm").unwrap();
        let both: Vec<String> = p.by_node[vm]
            .iter()
            .map(|i| p.instances[*i as usize].id.0.clone())
            .collect();
        assert_eq!(
            p.pick_for_removal(Entity::Node(vm), 1, &both, &[])
                .unwrap_err(),
            "include_instances names 2 instances to remove, but only 1 are being removed"
        );
        let newest = p.instances[p.by_node[vm][1] as usize].id.clone();
        let victims = p.pick_for_removal(Entity::Node(vm), 1, &[], &[]).unwrap();
        let removal = p.removal(&victims);
        assert_eq!(removal.instances.len(), 2);
        assert_eq!(
            removal.links.len(),
            1,
            "lb's link to the removed app is unlinked"
        );
        p.remove(&removal, Entity::Node(vm), 1);
        assert_eq!(p.instances.len(), 4);
        assert!(p.instances.iter().all(|i| i.id != newest));
        for inst in &p.instances {
            for r in &inst.relationships {
                assert!((r.target as usize) < p.instances.len());
            }
        }
        let kept = p.instances[p.by_node[vm][0] as usize].id.0.clone();
        assert_eq!(
            p.pick_for_removal(Entity::Node(vm), 1, &[], &[kept])
                .unwrap_err(),
            "only 0 instances can be removed once exclusions are applied, 1 asked"
        );
    }
}
