//! Where a compiled blueprint calls `get_secret`: node properties, operation inputs,
//! relationship properties and operation inputs, outputs and capabilities. Policies are left
//! out: the policy engine passes their intrinsic functions on unresolved.

use serde_json::Value as Json;

use crate::dsl::Compiled;
use crate::dsl::compiled::Operations;

/// One `get_secret` call.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretUse {
    /// The secret's name; `None` when it is computed at run time (`get_secret: {get_attribute…}`).
    pub name: Option<String>,
    /// Where, for messages: `node web, property password`.
    pub place: String,
    /// The call's argument: the name, or the name and keys.
    pub arg: Json,
}

/// The name a `get_secret` argument names, when it is written out.
pub fn name_of(arg: &Json) -> Option<&str> {
    match arg {
        Json::String(s) => Some(s),
        Json::Array(a) => a.first().and_then(Json::as_str),
        _ => None,
    }
}

/// Every `get_secret` of `compiled`, in blueprint order.
pub fn uses(compiled: &Compiled) -> Vec<SecretUse> {
    let mut out = Vec::new();
    let ops = |out: &mut Vec<SecretUse>, ops: &Operations, at: &str| {
        for (op, o) in ops {
            for (input, v) in &o.inputs {
                find(v, &|| format!("{at}, operation {op}, input {input}"), out);
            }
        }
    };
    for n in &compiled.nodes {
        let node = &n.id.0;
        for (p, v) in &n.properties {
            find(v, &|| format!("node {node}, property {p}"), &mut out);
        }
        ops(
            &mut out,
            compiled.operations(n.operations),
            &format!("node {node}"),
        );
        for r in &n.relationships {
            let at = format!(
                "node {node}, relationship {} to {}",
                r.type_name, compiled.nodes[r.target].id
            );
            for (p, v) in &r.properties {
                find(v, &|| format!("{at}, property {p}"), &mut out);
            }
            ops(&mut out, compiled.operations(r.source_operations), &at);
            ops(&mut out, compiled.operations(r.target_operations), &at);
        }
    }
    for (o, v) in &compiled.outputs {
        find(v, &|| format!("output {o}"), &mut out);
    }
    for (c, v) in &compiled.capabilities {
        find(v, &|| format!("capability {c}"), &mut out);
    }
    out
}

fn find(value: &Json, place: &dyn Fn() -> String, out: &mut Vec<SecretUse>) {
    match value {
        Json::Object(m) => {
            if m.len() == 1
                && let Some(arg) = m.get("get_secret")
            {
                out.push(SecretUse {
                    name: name_of(arg).map(str::to_string),
                    place: place(),
                    arg: arg.clone(),
                });
            }
            m.values().for_each(|v| find(v, place, out));
        }
        Json::Array(items) => items.iter().for_each(|v| find(v, place, out)),
        _ => {}
    }
}
