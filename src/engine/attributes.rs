//! Runtime intrinsic functions: `get_attribute` and friends, evaluated when an operation runs
//! (its inputs) or when outputs are read, against the live instance state.
//!
//! Lookup order follows Cloudify: the instance's runtime properties, then `node_instance_id` /
//! `node_instance_index`, then the node's properties. A node with several instances is resolved
//! from SELF's single relationship target of that node, else the one in SELF's scaling-group
//! instance; otherwise the reference is ambiguous.
//!
//! `get_secret` reads the execution's [`Revealed`] secrets, loaded and checked before it
//! started (`secrets::reveal`); outputs resolve with `secrets::hidden`, which reads `******`.

use serde_json::{Map, Value as Json};

use super::state::Instances;
use crate::dsl::Compiled;
use crate::dsl::functions::RUNTIME;
use crate::plan::Plan;
use crate::secrets::Revealed;

/// Who SELF, SOURCE and TARGET are (plan instance indexes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    pub this: Option<u32>,
    pub source: Option<u32>,
    pub target: Option<u32>,
}

pub struct Resolver<'a> {
    pub compiled: &'a Compiled,
    pub plan: &'a Plan,
    pub instances: &'a Instances,
    pub deployment: &'a str,
    pub secrets: &'a Revealed,
}

impl Resolver<'_> {
    /// Evaluate every runtime function inside `value`.
    pub fn resolve(&self, value: &Json, scope: Scope) -> Result<Json, String> {
        match value {
            Json::Array(items) => items
                .iter()
                .map(|v| self.resolve(v, scope))
                .collect::<Result<_, _>>()
                .map(Json::Array),
            Json::Object(m) if m.len() == 1 => {
                let (name, arg) = m.iter().next().expect("one entry");
                if RUNTIME.contains(&name.as_str()) {
                    let arg = self.resolve(arg, scope)?;
                    return self.function(name, &arg, scope);
                }
                if crate::dsl::functions::PLAN_TIME.contains(&name.as_str()) {
                    // A plan-time function that waited for runtime arguments (`concat` of an attribute).
                    let args = match self.resolve(arg, scope)? {
                        Json::Array(a) => a,
                        other => vec![other],
                    };
                    return crate::dsl::functions::apply(name, &args)
                        .map_err(|e| format!("`{name}`: {e}"));
                }
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.resolve(v, scope)?);
                }
                Ok(Json::Object(out))
            }
            Json::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.resolve(v, scope)?);
                }
                Ok(Json::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn function(&self, name: &str, arg: &Json, scope: Scope) -> Result<Json, String> {
        let args: Vec<Json> = match arg {
            Json::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let text = |i: usize| args.get(i).and_then(Json::as_str).map(str::to_string);
        match name {
            "get_attribute" => {
                let who = text(0).ok_or(
                    "get_attribute: the first argument must be SELF, SOURCE, TARGET or a node",
                )?;
                let attr = text(1).ok_or("get_attribute: the attribute name must be a string")?;
                let instance = self.instance_for(&who, scope)?;
                Ok(walk(self.attribute(instance, &attr), &args[2..]))
            }
            "get_attributes_list" | "get_attributes_dict" => {
                let node = text(0).ok_or(format!("{name}: the first argument must be a node"))?;
                let attr = text(1).ok_or(format!("{name}: the attribute name must be a string"))?;
                let idx = *self
                    .compiled
                    .node_index
                    .get(&node)
                    .ok_or(format!("{name}: unknown node `{node}`"))?;
                let values = self.plan.by_node[idx]
                    .iter()
                    .map(|&i| (i, walk(self.attribute(i, &attr), &args[2..])));
                Ok(if name == "get_attributes_list" {
                    Json::Array(values.map(|(_, v)| v).collect())
                } else {
                    Json::Object(
                        values
                            .map(|(i, v)| (self.plan.instance_id(i).0.clone(), v))
                            .collect(),
                    )
                })
            }
            "get_sys" => match (text(0).as_deref(), text(1).as_deref()) {
                (Some("deployment"), Some("id" | "name")) => {
                    Ok(Json::String(self.deployment.to_string()))
                }
                (Some("deployment"), Some("blueprint")) => {
                    Ok(Json::String(self.deployment.to_string()))
                }
                (Some("tenant"), Some("name")) => Ok(Json::String("default_tenant".to_string())),
                _ => Err(format!("get_sys: unknown property {arg}")),
            },
            "get_secret" => self.secrets.lookup(arg),
            other => Err(format!("{other} is not available in local mode")),
        }
    }

    /// SELF/SOURCE/TARGET or a node name → one instance.
    fn instance_for(&self, who: &str, scope: Scope) -> Result<u32, String> {
        let pick = |x: Option<u32>, what: &str| {
            x.ok_or(format!("get_attribute: {what} is not defined here"))
        };
        match who {
            "SELF" => pick(scope.this, "SELF"),
            "SOURCE" => pick(scope.source, "SOURCE"),
            "TARGET" => pick(scope.target, "TARGET"),
            node => {
                let idx = *self
                    .compiled
                    .node_index
                    .get(node)
                    .ok_or(format!("get_attribute: unknown node `{node}`"))?;
                let candidates = &self.plan.by_node[idx];
                if candidates.len() == 1 {
                    return Ok(candidates[0]);
                }
                let this = scope.this.or(scope.source);
                if let Some(me) = this {
                    let linked: Vec<u32> = self.plan.instances[me as usize]
                        .relationships
                        .iter()
                        .map(|r| r.target)
                        .filter(|t| self.plan.instances[*t as usize].node == idx)
                        .collect();
                    if linked.len() == 1 {
                        return Ok(linked[0]);
                    }
                    let my_groups = &self.plan.instances[me as usize].scaling_groups;
                    let same_group: Vec<u32> = candidates
                        .iter()
                        .copied()
                        .filter(|c| {
                            self.plan.instances[*c as usize]
                                .scaling_groups
                                .iter()
                                .any(|g| my_groups.contains(g))
                        })
                        .collect();
                    if same_group.len() == 1 {
                        return Ok(same_group[0]);
                    }
                }
                Err(format!(
                    "get_attribute: node `{node}` has {} instances and none is singled out by a relationship or a scaling group",
                    candidates.len()
                ))
            }
        }
    }

    fn attribute(&self, instance: u32, attr: &str) -> Json {
        let inst = &self.plan.instances[instance as usize];
        if let Some(v) = self.instances.runtime_properties(&inst.id.0).get(attr) {
            return v.clone();
        }
        match attr {
            "node_instance_id" => return Json::String(inst.id.0.clone()),
            "node_instance_index" => {
                let pos = self.plan.by_node[inst.node]
                    .iter()
                    .position(|i| *i == instance)
                    .unwrap_or(0);
                return Json::from(pos + 1);
            }
            _ => {}
        }
        self.compiled.nodes[inst.node]
            .properties
            .get(attr)
            .cloned()
            .unwrap_or(Json::Null)
    }
}

fn walk(mut value: Json, path: &[Json]) -> Json {
    for step in path {
        value = match (value, step) {
            (Json::Object(mut m), Json::String(k)) => m.remove(k).unwrap_or(Json::Null),
            (Json::Array(mut a), Json::Number(n)) => {
                let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                if i < a.len() {
                    a.swap_remove(i)
                } else {
                    Json::Null
                }
            }
            _ => Json::Null,
        };
    }
    value
}
