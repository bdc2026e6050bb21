//! Rendering a plan: Cloudify-shaped JSON (`plan --format json`), a readable text tree and
//! Graphviz dot. Pure functions of the compiled blueprint and plan.

use std::fmt::Write;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value as Json, json};

use super::{Plan, Slot};
use crate::dsl::Compiled;

/// The plan in the JSON shape of BRIEF.md (field names follow Cloudify's deployment plan),
/// as a value. For large plans prefer [`write_json`], which streams.
pub fn json(c: &Compiled, plan: &Plan) -> Json {
    serde_json::to_value(PlanView { c, plan }).unwrap_or(Json::Null)
}

/// Stream the plan JSON to a writer without building it in memory first.
pub fn write_json(c: &Compiled, plan: &Plan, out: impl std::io::Write) -> serde_json::Result<()> {
    serde_json::to_writer_pretty(out, &PlanView { c, plan })
}

struct PlanView<'a> {
    c: &'a Compiled,
    plan: &'a Plan,
}

impl Serialize for PlanView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, plan) = (self.c, self.plan);
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("nodes", &Seq((0..c.nodes.len()).map(|i| NodeView { c, i })))?;
        m.serialize_entry(
            "node_instances",
            &Seq(plan
                .instances
                .iter()
                .map(|inst| InstanceView { c, plan, inst })),
        )?;
        let groups: Map<String, Json> = plan
            .tree
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                (
                    g.name.clone(),
                    json!({
                        "members": g.members,
                        "properties": {
                            "default_instances": g.counts.default,
                            "min_instances": g.counts.min,
                            "max_instances": g.counts.max.map_or(-1, i64::from),
                            "current_instances": plan.by_group[gi].len() / parents_of_group(plan, gi).max(1),
                            "planned_instances": g.counts.default,
                        },
                    }),
                )
            })
            .collect();
        m.serialize_entry("scaling_groups", &groups)?;
        m.serialize_entry("workflows", &c.workflows)?;
        m.serialize_entry("inputs", &c.inputs)?;
        let outputs: Map<String, Json> = c
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "value": v })))
            .collect();
        m.serialize_entry("outputs", &outputs)?;
        m.end()
    }
}

/// Serializes an iterator as a JSON array without collecting it.
struct Seq<I>(I);

impl<I: Iterator<Item = T> + Clone, T: Serialize> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

struct NodeView<'a> {
    c: &'a Compiled,
    i: usize,
}

impl Serialize for NodeView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = &self.c.nodes[self.i];
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry("id", &n.id)?;
        m.serialize_entry("type", &n.type_name)?;
        m.serialize_entry("type_hierarchy", &n.type_hierarchy)?;
        m.serialize_entry("properties", &n.properties)?;
        m.serialize_entry("number_of_instances", &n.counts.default)?;
        m.serialize_entry("min_number_of_instances", &n.counts.min)?;
        m.serialize_entry(
            "max_number_of_instances",
            &n.counts.max.map_or(-1, i64::from),
        )?;
        m.serialize_entry(
            "host_id",
            &Plan::host_node(self.c, self.i).map(|h| &self.c.nodes[h].id),
        )?;
        let rels = n
            .relationships
            .iter()
            .map(|r| json!({"type": r.type_name, "target_id": self.c.nodes[r.target].id}));
        m.serialize_entry("relationships", &Seq(rels))?;
        m.end()
    }
}

struct InstanceView<'a> {
    c: &'a Compiled,
    plan: &'a Plan,
    inst: &'a super::NodeInstance,
}

impl Serialize for InstanceView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, plan, inst) = (self.c, self.plan, self.inst);
        let node = &c.nodes[inst.node];
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("id", &inst.id)?;
        m.serialize_entry("node_id", &node.id)?;
        m.serialize_entry("host_id", &inst.host.map(|h| plan.instance_id(h)))?;
        let rels = inst.relationships.iter().map(|r| {
            let rel = &node.relationships[r.relationship];
            RelationshipView {
                ty: &rel.type_name,
                target_name: &c.nodes[rel.target].id.0,
                target_id: &plan.instance_id(r.target).0,
            }
        });
        m.serialize_entry("relationships", &Seq(rels))?;
        let groups = inst.scaling_groups.iter().map(|g| {
            let gi = &plan.group_instances[*g as usize];
            GroupRef {
                name: &plan.tree.groups[gi.group].name,
                id: &gi.id.0,
            }
        });
        m.serialize_entry("scaling_groups", &Seq(groups))?;
        m.end()
    }
}

#[derive(Serialize)]
struct RelationshipView<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    target_name: &'a str,
    target_id: &'a str,
}

#[derive(Serialize)]
struct GroupRef<'a> {
    name: &'a str,
    id: &'a str,
}

fn parents_of_group(plan: &Plan, g: usize) -> usize {
    let mut parents: Vec<Option<Slot>> = plan.by_group[g]
        .iter()
        .map(|i| plan.group_instances[*i as usize].parent)
        .collect();
    parents.dedup();
    parents.len()
}

/// Install order and the instance tree, for people.
pub fn text(c: &Compiled, plan: &Plan) -> String {
    let mut out = String::new();
    let rels = plan
        .instances
        .iter()
        .map(|i| i.relationships.len())
        .sum::<usize>();
    let _ = writeln!(
        out,
        "{} nodes, {} node instances, {} relationship instances",
        c.nodes.len(),
        plan.instances.len(),
        rels
    );
    let _ = writeln!(
        out,
        "\nInstall order (each node after the nodes it relates to):"
    );
    let width = c.nodes.iter().map(|n| n.id.0.len()).max().unwrap_or(0);
    for (step, &n) in plan.install_order.iter().enumerate() {
        let node = &c.nodes[n];
        let related: Vec<String> = node
            .relationships
            .iter()
            .map(|r| format!("{} {}", short_type(&r.type_name), c.nodes[r.target].id))
            .collect();
        let _ = writeln!(
            out,
            "  {:>3}. {:<width$}  {} × {}{}",
            step + 1,
            node.id.0,
            node.type_name,
            plan.by_node[n].len(),
            if related.is_empty() {
                String::new()
            } else {
                format!("  ({})", related.join(", "))
            },
        );
    }
    if !plan.tree.groups.is_empty() {
        let _ = writeln!(out, "\nScaling groups:");
        for (gi, g) in plan.tree.groups.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {} [{}] × {}",
                g.name,
                g.members.join(", "),
                plan.by_group[gi].len()
            );
        }
    }
    let _ = writeln!(out, "\nInstances:");
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); plan.instances.len()];
    let mut roots = Vec::new();
    for (i, inst) in plan.instances.iter().enumerate() {
        match inst.contained_in {
            Some(p) => children[p as usize].push(i as u32),
            None => roots.push(i as u32),
        }
    }
    let mut stack: Vec<(u32, usize)> = roots.iter().rev().map(|r| (*r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let inst = &plan.instances[i as usize];
        let node = &c.nodes[inst.node];
        let links: Vec<String> = inst
            .relationships
            .iter()
            .filter(|r| !node.relationships[r.relationship].is_contained_in())
            .map(|r| plan.instance_id(r.target).0.clone())
            .collect();
        let _ = writeln!(
            out,
            "  {}{}{}",
            "    ".repeat(depth),
            inst.id,
            if links.is_empty() {
                String::new()
            } else {
                format!(" -> {}", links.join(", "))
            }
        );
        for child in children[i as usize].iter().rev() {
            stack.push((*child, depth + 1));
        }
    }
    out
}

fn short_type(t: &str) -> &str {
    t.strip_prefix("cloudify.relationships.").unwrap_or(t)
}

/// Graphviz: instances as boxes grouped by host, contained_in dashed, other relationships solid.
pub fn dot(c: &Compiled, plan: &Plan) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=BT;\n  node [shape=box, fontname=\"sans-serif\"];\n",
    );
    for inst in &plan.instances {
        let node = &c.nodes[inst.node];
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            inst.id,
            inst.id,
            escape(&node.type_name)
        );
    }
    for inst in &plan.instances {
        let node = &c.nodes[inst.node];
        for r in &inst.relationships {
            let rel = &node.relationships[r.relationship];
            let style = if rel.is_contained_in() {
                "dashed"
            } else {
                "solid"
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{}\", style={style}];",
                inst.id,
                plan.instance_id(r.target),
                escape(short_type(&rel.type_name))
            );
        }
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
