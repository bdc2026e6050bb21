//! The stored form of a plan's instances, and its assembly back into a [`Plan`].
//!
//! A stored plan is a [`Frame`] (one small record) plus one row per node
//! instance and scaling-group instance, and one [`LinkRun`] per run of relationship instances
//! that share a source and a relationship (a load balancer `connected_to` 1,000 web instances is
//! one row naming 1,000 targets, not 1,000 rows). An instance's link to its container, when it
//! is the instance's first, has no run: the instance row's `contained_in` names its target and
//! the node's `contained_in` relationship is the relationship (see [`Plan::stored_link_rows`]).
//! Rows name each other by id, not
//! by position, so any set of rows that is closed under "parent of" can be assembled on its
//! own: all of a deployment's rows give the whole plan, and the rows a scale touches give a
//! partial plan whose per-node lists hold only those instances, in creation order (`seq`).
//! [`Plan::instance_row`] and friends go the other way, for rows to write.

use crate::maps::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::ids::InstanceId;
use super::{Frame, GroupInstance, NodeInstance, Plan, RelationshipInstance, Slot};
use crate::dsl::Compiled;

/// The parent of an instance in the instance tree, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentRef {
    Node(String),
    Group(String),
}

impl ParentRef {
    pub fn id(&self) -> &str {
        match self {
            ParentRef::Node(id) | ParentRef::Group(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub seq: i64,
    pub id: String,
    pub node: usize,
    pub parent: Option<ParentRef>,
    pub contained_in: Option<String>,
    pub host: Option<String>,
    /// Scaling-group instances, innermost first.
    pub groups: Vec<String>,
    pub index: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub seq: i64,
    pub id: String,
    pub group: usize,
    pub parent: Option<ParentRef>,
}

/// A relationship instance.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRow {
    pub source: String,
    pub relationship: usize,
    pub target: String,
    /// The target's node.
    pub target_node: usize,
}

/// Consecutive relationship instances of one source through one relationship, stored as one
/// row. `seq` orders runs as they were made (the store assigns it), and so orders a source's
/// relationship instances.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRun {
    pub seq: i64,
    pub source: String,
    pub relationship: usize,
    pub target_node: usize,
    pub targets: Vec<String>,
}

/// Group links, in order, into runs of one source and relationship.
pub fn runs(links: impl IntoIterator<Item = LinkRow>) -> Vec<LinkRun> {
    let mut out: Vec<LinkRun> = Vec::new();
    for l in links {
        match out.last_mut() {
            Some(run)
                if run.source == l.source
                    && run.relationship == l.relationship
                    && run.target_node == l.target_node =>
            {
                run.targets.push(l.target);
            }
            _ => out.push(LinkRun {
                seq: 0,
                source: l.source,
                relationship: l.relationship,
                target_node: l.target_node,
                targets: vec![l.target],
            }),
        }
    }
    out
}

impl Plan {
    fn slot_ref(&self, slot: Option<Slot>) -> Option<ParentRef> {
        slot.map(|s| match s {
            Slot::Node(i) => ParentRef::Node(self.instance_id(i).0.clone()),
            Slot::Group(g) => ParentRef::Group(self.group_instances[g as usize].id.0.clone()),
        })
    }

    pub fn instance_row(&self, i: u32) -> InstanceRow {
        let inst = &self.instances[i as usize];
        let id_of = |x: Option<u32>| x.map(|x| self.instance_id(x).0.clone());
        InstanceRow {
            seq: inst.seq,
            id: inst.id.0.clone(),
            node: inst.node,
            parent: self.slot_ref(inst.parent),
            contained_in: id_of(inst.contained_in),
            host: id_of(inst.host),
            groups: inst
                .scaling_groups
                .iter()
                .map(|g| self.group_instances[*g as usize].id.0.clone())
                .collect(),
            index: inst.index,
        }
    }

    pub fn group_row(&self, g: u32) -> GroupRow {
        let gi = &self.group_instances[g as usize];
        GroupRow {
            seq: gi.seq,
            id: gi.id.0.clone(),
            group: gi.group,
            parent: self.slot_ref(gi.parent),
        }
    }

    /// Relationship instance `k` of `source`.
    pub fn link_row(&self, source: u32, k: usize) -> LinkRow {
        let r = self.instances[source as usize].relationships[k];
        LinkRow {
            source: self.instance_id(source).0.clone(),
            relationship: r.relationship,
            target: self.instance_id(r.target).0.clone(),
            target_node: self.instances[r.target as usize].node,
        }
    }

    /// Whether the first relationship instance of `source` is its link to its container,
    /// which the instance row already says (its `contained_in`) and so is not stored.
    fn containment_first(&self, containment: &Containment, source: u32) -> bool {
        let inst = &self.instances[source as usize];
        match (inst.relationships.first(), inst.contained_in) {
            (Some(first), Some(container)) => {
                first.target == container && containment.of(inst.node) == Some(first.relationship)
            }
            _ => false,
        }
    }

    /// The relationship instances of `source` that are stored, in order: all but a first link
    /// to its container, which the instance row already says.
    pub fn stored_link_rows(
        &self,
        containment: &Containment,
        source: u32,
    ) -> impl Iterator<Item = LinkRow> + '_ {
        let from = usize::from(self.containment_first(containment, source));
        (from..self.instances[source as usize].relationships.len())
            .map(move |k| self.link_row(source, k))
    }
}

/// Each node's `contained_in` relationship ([`crate::dsl::compiled::CompiledNode::containment`]), looked
/// up once for all of a plan's instances.
pub struct Containment(Vec<Option<usize>>);

impl Containment {
    pub fn new(c: &Compiled) -> Containment {
        Containment(c.nodes.iter().map(|n| n.containment()).collect())
    }

    fn of(&self, node: usize) -> Option<usize> {
        self.0.get(node).copied().flatten()
    }
}

/// Rows gathered (in any order, duplicates ignored) and then assembled into a plan.
pub struct Assembly {
    frame: Frame,
    instances: Vec<InstanceRow>,
    groups: Vec<GroupRow>,
    links: Vec<LinkRun>,
    known: HashSet<String>,
    known_links: HashSet<i64>,
}

impl Assembly {
    pub fn new(frame: Frame) -> Assembly {
        Assembly {
            frame,
            instances: Vec::new(),
            groups: Vec::new(),
            links: Vec::new(),
            known: HashSet::new(),
            known_links: HashSet::new(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.known.contains(id)
    }

    pub fn add_instance(&mut self, row: InstanceRow) {
        if self.known.insert(row.id.clone()) {
            self.instances.push(row);
        }
    }

    pub fn add_group(&mut self, row: GroupRow) {
        if self.known.insert(row.id.clone()) {
            self.groups.push(row);
        }
    }

    pub fn add_links(&mut self, run: LinkRun) {
        if self.known_links.insert(run.seq) {
            self.links.push(run);
        }
    }

    /// Ids of the node instances gathered so far.
    pub fn instance_ids(&self) -> Vec<String> {
        self.instances.iter().map(|r| r.id.clone()).collect()
    }

    /// Parents named by gathered rows that are not gathered yet.
    pub fn missing_parents(&self) -> Vec<String> {
        let parents = self
            .instances
            .iter()
            .filter_map(|r| r.parent.as_ref())
            .chain(self.groups.iter().filter_map(|g| g.parent.as_ref()));
        let mut out: Vec<String> = parents
            .map(ParentRef::id)
            .filter(|id| !self.known.contains(*id))
            .map(str::to_string)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Ends of gathered links that are not gathered yet.
    pub fn missing_link_ends(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .links
            .iter()
            .flat_map(|l| std::iter::once(&l.source).chain(&l.targets))
            .filter(|id| !self.known.contains(id.as_str()))
            .cloned()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The plan of the gathered rows. Every reference must resolve to a gathered row and every
    /// node and relationship index must exist in `c`; otherwise the rows are corrupt.
    pub fn finish(mut self, c: &Compiled) -> Result<Plan, String> {
        self.instances.sort_by_key(|r| r.seq);
        self.groups.sort_by_key(|r| r.seq);
        self.links.sort_by_key(|r| r.seq);
        let mut slots: HashMap<&str, Slot> = HashMap::with_capacity(self.known.len());
        for (i, r) in self.instances.iter().enumerate() {
            slots.insert(&r.id, Slot::Node(i as u32));
        }
        for (g, r) in self.groups.iter().enumerate() {
            slots.insert(&r.id, Slot::Group(g as u32));
        }
        let node_slot = |id: &str| match slots.get(id) {
            Some(Slot::Node(i)) => Ok(*i),
            _ => Err(format!("no node instance `{id}`")),
        };
        let group_slot = |id: &str| match slots.get(id) {
            Some(Slot::Group(g)) => Ok(*g),
            _ => Err(format!("no scaling-group instance `{id}`")),
        };
        let parent = |p: &Option<ParentRef>| -> Result<Option<Slot>, String> {
            p.as_ref()
                .map(|p| match p {
                    ParentRef::Node(id) => node_slot(id).map(Slot::Node),
                    ParentRef::Group(id) => group_slot(id).map(Slot::Group),
                })
                .transpose()
        };
        let groups_len = self.frame.group_counts.len();
        let mut plan = Plan::from_frame(self.frame.clone());
        for r in &self.groups {
            if r.group >= groups_len {
                return Err(format!("`{}` names scaling group #{}", r.id, r.group));
            }
            plan.by_group[r.group].push(plan.group_instances.len() as u32);
            plan.group_instances.push(GroupInstance {
                id: InstanceId(r.id.clone()),
                group: r.group,
                parent: parent(&r.parent)?,
                seq: r.seq,
            });
        }
        for r in &self.instances {
            if r.node >= c.nodes.len() {
                return Err(format!("`{}` names node #{}", r.id, r.node));
            }
            plan.by_node[r.node].push(plan.instances.len() as u32);
            plan.instances.push(NodeInstance {
                id: InstanceId(r.id.clone()),
                node: r.node,
                parent: parent(&r.parent)?,
                contained_in: r.contained_in.as_deref().map(node_slot).transpose()?,
                host: r.host.as_deref().map(node_slot).transpose()?,
                relationships: Vec::new(),
                scaling_groups: r
                    .groups
                    .iter()
                    .map(|g| group_slot(g))
                    .collect::<Result<_, _>>()?,
                seq: r.seq,
                index: r.index,
            });
        }
        for l in &self.links {
            let s = node_slot(&l.source)?;
            let node = plan.instances[s as usize].node;
            if l.relationship >= c.nodes[node].relationships.len() {
                return Err(format!(
                    "`{}` names relationship #{} of node `{}`",
                    l.source, l.relationship, c.nodes[node].id.0
                ));
            }
            let targets = l
                .targets
                .iter()
                .map(|t| {
                    node_slot(t).map(|target| RelationshipInstance {
                        relationship: l.relationship,
                        target,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            plan.instances[s as usize].relationships.extend(targets);
        }
        // A link to the container that no run holds was the instance's first (it is stored
        // only when it was not); an older store holds it in a run, read above.
        let containment = Containment::new(c);
        for inst in &mut plan.instances {
            let (Some(container), Some(k)) = (inst.contained_in, containment.of(inst.node)) else {
                continue;
            };
            if !inst.relationships.iter().any(|r| r.relationship == k) {
                let link = RelationshipInstance {
                    relationship: k,
                    target: container,
                };
                inst.relationships.insert(0, link);
            }
        }
        Ok(plan)
    }
}

/// Rows of a whole plan: every instance, group instance and stored run of links, in order.
pub fn all_rows(plan: &Plan, c: &Compiled) -> (Vec<InstanceRow>, Vec<GroupRow>, Vec<LinkRun>) {
    let instances = (0..plan.instances.len() as u32)
        .map(|i| plan.instance_row(i))
        .collect();
    let groups = (0..plan.group_instances.len() as u32)
        .map(|g| plan.group_row(g))
        .collect();
    let containment = Containment::new(c);
    let links = (0..plan.instances.len() as u32)
        .flat_map(|i| runs(plan.stored_link_rows(&containment, i)))
        .collect();
    (instances, groups, links)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::blueprint;
    use crate::plan::Entity;
    use crate::plan::ids::IdMaker;

    #[test]
    fn rows_assemble_back_into_the_same_plan_in_any_order() {
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: { type: cloudify.nodes.Compute, instances: { deploy: 2 } }\n  app:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.contained_in, target: vm }]\n  lb:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.connected_to, target: app }]\ngroups:\n  g: { members: [vm] }\npolicies:\n  p: { type: cloudify.policies.scaling, targets: [g], properties: { default_instances: 2 } }\n";
        let bp = blueprint::open_str(Path::new("t.yaml"), text, &Default::default()).unwrap();
        let (c, plan) = (bp.compiled, bp.plan);
        let (mut instances, mut groups, links) = all_rows(&plan, &c);
        instances.reverse();
        groups.reverse();
        let mut a = Assembly::new(plan.frame());
        for r in instances.iter().chain(instances.iter()) {
            a.add_instance(r.clone());
        }
        for g in groups {
            a.add_group(g);
        }
        for (seq, mut l) in links.into_iter().enumerate() {
            l.seq = seq as i64;
            a.add_links(l);
        }
        assert!(a.missing_parents().is_empty());
        let back = a.finish(&c).unwrap();
        assert_eq!(back.instances, plan.instances);
        assert_eq!(back.group_instances, plan.group_instances);
        assert_eq!(back.by_node, plan.by_node);
        assert_eq!(back.by_group, plan.by_group);
    }

    /// The plan assembled from `plan`'s rows (`every_link`: a run for every link, as stores
    /// written before containment links were left to the instance rows hold them).
    fn round_trip(c: &Compiled, plan: &Plan, every_link: bool) -> (Plan, Vec<LinkRun>) {
        let (instances, groups, mut links) = all_rows(plan, c);
        if every_link {
            links = (0..plan.instances.len() as u32)
                .flat_map(|i| {
                    runs(
                        (0..plan.instances[i as usize].relationships.len())
                            .map(|k| plan.link_row(i, k)),
                    )
                })
                .collect();
        }
        let mut a = Assembly::new(plan.frame());
        for r in instances {
            a.add_instance(r);
        }
        for g in groups {
            a.add_group(g);
        }
        for (seq, mut l) in links.clone().into_iter().enumerate() {
            l.seq = seq as i64;
            a.add_links(l);
        }
        (a.finish(c).unwrap(), links)
    }

    /// `app` (2 instances on `vm`'s 2) with `relationships`, after a scale-out of `db` from
    /// 2 to 3: the plan, the stored runs and the relationship order of the first `app` read
    /// back, which must be the plan's.
    fn app_links_after_scale_out(
        relationships: &str,
    ) -> (Compiled, Plan, Vec<LinkRun>, Vec<usize>) {
        let text = format!(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: {{ type: cloudify.nodes.Compute, instances: {{ deploy: 2 }} }}\n  db: {{ type: cloudify.nodes.Root, instances: {{ deploy: 2 }} }}\n  app:\n    type: cloudify.nodes.Root\n    relationships: {relationships}\n"
        );
        let bp = blueprint::open_str(Path::new("t.yaml"), &text, &Default::default()).unwrap();
        let (c, mut plan) = (bp.compiled, bp.plan);
        let db = *c.node_index.get("db").unwrap();
        plan.scale_out(&c, Entity::Node(db), 1, &mut IdMaker::seeded(3));
        let (back, links) = round_trip(&c, &plan, false);
        assert_eq!(back.instances, plan.instances);
        let app = &back.instances[back.by_node[*c.node_index.get("app").unwrap()][0] as usize];
        let order = app.relationships.iter().map(|r| r.relationship).collect();
        (c, plan, links, order)
    }

    #[test]
    fn a_first_link_to_the_container_is_not_stored_and_comes_back_first() {
        // Contained in `vm` first, then connected to every `db`: the scale-out's link comes
        // after both.
        let (c, plan, links, order) = app_links_after_scale_out(
            "[{ type: cloudify.relationships.contained_in, target: vm }, { type: cloudify.relationships.connected_to, target: db }]",
        );
        assert!(
            links.iter().all(|l| l.relationship == 1),
            "only the `connected_to` links have runs: {links:?}"
        );
        assert_eq!(order, [0, 1, 1, 1]);
        // Runs written before hold the containment link too: read back once, in its place.
        let (old, _) = round_trip(&c, &plan, true);
        assert_eq!(old.instances, plan.instances);
    }

    #[test]
    fn a_link_to_the_container_after_other_links_is_stored_in_its_place() {
        // Connected to every `db` first: the containment link is stored as a run, and stays
        // between those links and the one the scale-out appends.
        let (_, _, links, order) = app_links_after_scale_out(
            "[{ type: cloudify.relationships.connected_to, target: db }, { type: cloudify.relationships.contained_in, target: vm }]",
        );
        assert_eq!(links.iter().filter(|l| l.relationship == 1).count(), 2);
        assert_eq!(order, [0, 0, 1, 0]);
    }

    #[test]
    fn a_missing_parent_is_reported_not_assumed() {
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: { type: cloudify.nodes.Compute }\n  app:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.contained_in, target: vm }]\n";
        let bp = blueprint::open_str(Path::new("t.yaml"), text, &Default::default()).unwrap();
        let (c, plan) = (bp.compiled, bp.plan);
        let app = plan.by_node[*c.node_index.get("app").unwrap()][0];
        let mut a = Assembly::new(plan.frame());
        a.add_instance(plan.instance_row(app));
        assert_eq!(
            a.missing_parents(),
            vec![plan.instances[plan.by_node[0][0] as usize].id.0.clone()]
        );
        assert!(a.finish(&c).unwrap_err().starts_with("no node instance"));
    }
}
