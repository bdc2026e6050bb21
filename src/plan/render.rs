//! Rendering a plan: Cloudify-shaped JSON (`plan --format json`), a readable text tree and
//! Graphviz dot. Pure functions of the compiled blueprint and plan.

use std::fmt::Write;

use serde_json::{Map, Value as Json, json};

use super::{Plan, Slot};
use crate::dsl::Compiled;

/// The plan in the JSON shape of BRIEF.md (field names follow Cloudify's deployment plan).
pub fn json(c: &Compiled, plan: &Plan) -> Json {
    let nodes: Vec<Json> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "id": n.id,
                "type": n.type_name,
                "type_hierarchy": n.type_hierarchy,
                "properties": n.properties,
                "number_of_instances": n.counts.default,
                "min_number_of_instances": n.counts.min,
                "max_number_of_instances": n.counts.max.map_or(-1, i64::from),
                "host_id": Plan::host_node(c, i).map(|h| &c.nodes[h].id),
                "relationships": n.relationships.iter().map(|r| json!({
                    "type": r.type_name,
                    "target_id": c.nodes[r.target].id,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let instances: Vec<Json> = plan
        .instances
        .iter()
        .map(|inst| {
            let node = &c.nodes[inst.node];
            json!({
                "id": inst.id,
                "node_id": node.id,
                "host_id": inst.host.map(|h| plan.instance_id(h)),
                "relationships": inst.relationships.iter().map(|r| {
                    let rel = &node.relationships[r.relationship];
                    json!({
                        "type": rel.type_name,
                        "target_name": c.nodes[rel.target].id,
                        "target_id": plan.instance_id(r.target),
                    })
                }).collect::<Vec<_>>(),
                "scaling_groups": inst.scaling_groups.iter().map(|g| {
                    let gi = &plan.group_instances[*g as usize];
                    json!({"name": plan.tree.groups[gi.group].name, "id": gi.id})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let scaling_groups: Map<String, Json> = plan
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
    json!({
        "nodes": nodes,
        "node_instances": instances,
        "scaling_groups": scaling_groups,
        "workflows": c.workflows,
        "inputs": c.inputs,
        "outputs": c.outputs.iter().map(|(k, v)| (k.clone(), json!({"value": v}))).collect::<Map<_, _>>(),
    })
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
