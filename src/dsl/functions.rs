//! Intrinsic functions.
//!
//! Plan-time functions (`get_input`, `get_property`, `concat`, `merge`, `string_*`) are evaluated
//! here, innermost first, turning a spanned YAML value into plain JSON. Runtime functions
//! (`get_attribute`, `get_secret`, …) are checked for shape, their plan-time arguments evaluated,
//! and kept in the JSON for the engine, as Cloudify keeps them in its plan. `get_property` reads
//! other nodes' merged properties through [`Evaluator::property`], memoised, with a stack that
//! turns circular references into an error naming the whole cycle.

use crate::maps::{HashMap, HashMapExt};

use crate::maps::IndexMap;
use serde_json::{Map, Value as Json};

use super::version::DslVersion;
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::source::Loc;
use crate::load::yaml::{Node, Value};

pub const PLAN_TIME: &[&str] = &[
    "get_input",
    "get_property",
    "concat",
    "merge",
    "string_find",
    "string_replace",
    "string_split",
    "string_lower",
    "string_upper",
];

pub const RUNTIME: &[&str] = &[
    "get_attribute",
    "get_attributes_list",
    "get_attributes_dict",
    "get_secret",
    "get_capability",
    "get_sys",
    "get_label",
    "get_environment_capability",
];

/// Where a value is evaluated: decides what SELF, SOURCE and TARGET mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Node(usize),
    Relationship {
        source: usize,
        target: usize,
    },
    /// Outputs, capabilities, policies: no SELF/SOURCE/TARGET.
    Global,
}

/// True when a written mapping is a function call (`{concat: …}`), not data.
fn is_call(entries: &[(crate::load::yaml::Key, Node)]) -> bool {
    matches!(entries, [(k, _)] if is_function_name(&k.name))
}

/// True for the name of an intrinsic function, plan-time or runtime.
pub fn is_function_name(name: &str) -> bool {
    PLAN_TIME.contains(&name) || RUNTIME.contains(&name)
}

/// True for a written value that is (or contains) a function call.
pub fn calls_function(node: &Node) -> bool {
    match &node.value {
        Value::Map(entries) => is_call(entries) || entries.iter().any(|(_, v)| calls_function(v)),
        Value::Seq(items) => items.iter().any(calls_function),
        _ => false,
    }
}

/// True for a JSON value that is (or contains) a plan-time function call.
pub fn has_plan_time_function(value: &Json) -> bool {
    calls_one_of(value, PLAN_TIME)
}

/// True for a JSON value that is (or contains) a runtime function call.
pub fn is_runtime_function(value: &Json) -> bool {
    calls_one_of(value, RUNTIME)
}

/// True for a JSON value that is (or contains) a call of one of `functions`: a one-key
/// mapping whose key is one of them.
fn calls_one_of(value: &Json, functions: &[&str]) -> bool {
    match value {
        Json::Object(m) => {
            (m.len() == 1 && m.keys().all(|k| functions.contains(&k.as_str())))
                || m.values().any(|v| calls_one_of(v, functions))
        }
        Json::Array(items) => items.iter().any(|v| calls_one_of(v, functions)),
        _ => false,
    }
}

/// Evaluates values of one blueprint. Holds what functions may read.
pub struct Evaluator<'a> {
    pub version: DslVersion,
    pub inputs: &'a IndexMap<String, Json>,
    pub node_names: &'a IndexMap<String, usize>,
    /// Per node: properties after merging type defaults with template values, unevaluated.
    pub properties: &'a [IndexMap<String, Node>],
    cache: HashMap<(usize, String), Json>,
    /// Properties whose evaluation reported an error (their value is a placeholder).
    failed: crate::maps::HashSet<(usize, String)>,
    stack: Vec<(usize, String)>,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        version: DslVersion,
        inputs: &'a IndexMap<String, Json>,
        node_names: &'a IndexMap<String, usize>,
        properties: &'a [IndexMap<String, Node>],
    ) -> Self {
        Evaluator {
            version,
            inputs,
            node_names,
            properties,
            cache: HashMap::new(),
            failed: crate::maps::HashSet::default(),
            stack: Vec::new(),
        }
    }

    fn node_name(&self, idx: usize) -> &str {
        self.node_names
            .get_index(idx)
            .map_or("?", |(n, _)| n.as_str())
    }

    /// The evaluated value of a node's property, or `None` when it has no such property.
    pub fn property(&mut self, node: usize, name: &str, diags: &mut Diagnostics) -> Option<Json> {
        let key = (node, name.to_string());
        if let Some(v) = self.cache.get(&key) {
            return Some(v.clone());
        }
        let raw = self.properties.get(node)?.get(name)?;
        if let Some(pos) = self.stack.iter().position(|k| *k == key) {
            let mut cycle: Vec<String> = self.stack[pos..]
                .iter()
                .map(|(n, p)| format!("{}.{p}", self.node_name(*n)))
                .collect();
            cycle.push(format!("{}.{name}", self.node_name(node)));
            diags.push(Diagnostic::new(
                raw.loc,
                format!("circular get_property reference: {}", cycle.join(" -> ")),
            ));
            self.failed.extend(self.stack[pos..].iter().cloned());
            return Some(Json::Null);
        }
        self.stack.push(key.clone());
        let errors_before = diags.len();
        let value = self.eval(raw, Scope::Node(node), diags);
        self.stack.pop();
        if diags.len() > errors_before {
            self.failed.insert(key.clone());
        }
        self.cache.insert(key, value.clone());
        Some(value)
    }

    /// The evaluated value at `keys` inside a node's property, evaluating only that field of the
    /// unevaluated value; `None` when the path does not lead through written mappings and lists.
    fn property_field(
        &mut self,
        node: usize,
        name: &str,
        keys: &[Json],
        diags: &mut Diagnostics,
    ) -> Option<Json> {
        let mut raw = self.properties.get(node)?.get(name)?;
        for key in keys {
            raw = match (&raw.value, key) {
                (Value::Map(entries), Json::String(k)) if !is_call(entries) => {
                    entries.iter().find(|(e, _)| e.name == *k).map(|(_, v)| v)?
                }
                (Value::Seq(items), Json::Number(i)) => items.get(i.as_u64()? as usize)?,
                _ => return None,
            };
        }
        let path = std::iter::once(name.to_string())
            .chain(keys.iter().map(|k| match k {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            }))
            .collect::<Vec<_>>()
            .join(".");
        let key = (node, path);
        if let Some(pos) = self.stack.iter().position(|k| *k == key) {
            let mut cycle: Vec<String> = self.stack[pos..]
                .iter()
                .map(|(n, p)| format!("{}.{p}", self.node_name(*n)))
                .collect();
            cycle.push(format!("{}.{}", self.node_name(node), key.1));
            diags.push(Diagnostic::new(
                raw.loc,
                format!("circular get_property reference: {}", cycle.join(" -> ")),
            ));
            self.failed.insert((node, name.to_string()));
            return Some(Json::Null);
        }
        self.stack.push(key);
        let value = self.eval(raw, Scope::Node(node), diags);
        self.stack.pop();
        Some(value)
    }

    /// True when evaluating the property reported an error (so its value is not checked).
    pub fn property_failed(&self, node: usize, name: &str) -> bool {
        self.failed.contains(&(node, name.to_string()))
    }

    /// Evaluate a value: plan-time functions are applied, runtime ones kept.
    pub fn eval(&mut self, node: &Node, scope: Scope, diags: &mut Diagnostics) -> Json {
        match &node.value {
            Value::Seq(items) => {
                Json::Array(items.iter().map(|n| self.eval(n, scope, diags)).collect())
            }
            Value::Map(entries) => {
                if let [(key, arg)] = entries.as_slice() {
                    let name = key.name.as_str();
                    if PLAN_TIME.contains(&name) {
                        return self.plan_time(name, key.loc, arg, scope, diags);
                    }
                    if RUNTIME.contains(&name) {
                        return self.runtime(name, key.loc, arg, scope, diags);
                    }
                }
                Json::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.name.clone(), self.eval(v, scope, diags)))
                        .collect(),
                )
            }
            _ => node.to_json(),
        }
    }

    fn plan_time(
        &mut self,
        name: &str,
        loc: Loc,
        arg: &Node,
        scope: Scope,
        diags: &mut Diagnostics,
    ) -> Json {
        let gate = match name {
            "concat" => Some(DslVersion::V1_1),
            "merge" => Some(DslVersion::V1_3),
            _ => None,
        };
        if let Some(since) = gate
            && self.version < since
        {
            diags.push(
                Diagnostic::new(
                    loc,
                    format!(
                        "`{name}` requires {since} or later; this blueprint is {}",
                        self.version
                    ),
                )
                .with_help(format!("declare `tosca_definitions_version: {since}`")),
            );
            return Json::Null;
        }
        match name {
            "get_input" => self.get_input(loc, arg, scope, diags),
            "get_property" => self.get_property(loc, arg, scope, diags),
            _ => {
                let args = match &arg.value {
                    Value::Seq(items) => items.iter().map(|n| self.eval(n, scope, diags)).collect(),
                    _ => vec![self.eval(arg, scope, diags)],
                };
                if args.iter().any(is_runtime_function) {
                    // Resolved when the deployment runs, as Cloudify does.
                    let mut m = Map::new();
                    m.insert(name.to_string(), Json::Array(args));
                    return Json::Object(m);
                }
                match apply(name, &args) {
                    Ok(v) => v,
                    Err(why) => {
                        diags.error(loc, format!("`{name}`: {why}"));
                        Json::Null
                    }
                }
            }
        }
    }

    fn get_input(&mut self, loc: Loc, arg: &Node, scope: Scope, diags: &mut Diagnostics) -> Json {
        let path: Vec<Json> = match &arg.value {
            Value::Seq(items) => items.iter().map(|n| self.eval(n, scope, diags)).collect(),
            _ => vec![self.eval(arg, scope, diags)],
        };
        let Some(Json::String(input)) = path.first() else {
            diags.error(
                arg.loc,
                "`get_input` takes an input name, or a list of the name and keys/indexes into it",
            );
            return Json::Null;
        };
        let Some(value) = self.inputs.get(input) else {
            diags.push(
                Diagnostic::new(
                    arg.loc,
                    format!("`get_input` refers to the unknown input `{input}`"),
                )
                .with_help_opt(did_you_mean(input, self.inputs.keys().map(String::as_str)))
                .with_related(loc, "in this get_input"),
            );
            return Json::Null;
        };
        match walk(value, &path[1..]) {
            Ok(v) => v.clone(),
            Err(why) => {
                diags.error(arg.loc, format!("`get_input` of `{input}`: {why}"));
                Json::Null
            }
        }
    }

    fn get_property(
        &mut self,
        loc: Loc,
        arg: &Node,
        scope: Scope,
        diags: &mut Diagnostics,
    ) -> Json {
        let args: Vec<Json> = match &arg.value {
            Value::Seq(items) => items.iter().map(|n| self.eval(n, scope, diags)).collect(),
            _ => Vec::new(),
        };
        if args.len() < 2 {
            diags.error(arg.loc, "`get_property` takes a list: [SELF|SOURCE|TARGET|node name, property, nested keys…]");
            return Json::Null;
        }
        let Some(Json::String(who)) = args.first() else {
            diags.error(
                arg.loc,
                "the first argument of `get_property` must be SELF, SOURCE, TARGET or a node name",
            );
            return Json::Null;
        };
        let Some(node) = self.resolve_node(who, loc, arg, scope, "get_property", diags) else {
            return Json::Null;
        };
        let Some(Json::String(prop)) = args.get(1) else {
            diags.error(
                arg.loc,
                "the property name of `get_property` must be a string",
            );
            return Json::Null;
        };
        // A property that is being evaluated may read its own other fields (`url` built from
        // `name` of the same mapping): then only the field asked for is evaluated, as Cloudify
        // resolves it; a cycle is still one through the very same field.
        if args.len() > 2
            && self
                .stack
                .iter()
                .any(|(n, p)| *n == node && p.as_str() == prop)
            && let Some(value) = self.property_field(node, prop, &args[2..], diags)
        {
            return value;
        }
        let Some(value) = self.property(node, prop, diags) else {
            let known = self.properties[node].keys().map(String::as_str);
            diags.push(
                Diagnostic::new(
                    arg.loc,
                    format!("node `{}` has no property `{prop}`", self.node_name(node)),
                )
                .with_help_opt(did_you_mean(prop, known)),
            );
            return Json::Null;
        };
        match walk(&value, &args[2..]) {
            Ok(v) => v.clone(),
            Err(why) => {
                diags.error(
                    arg.loc,
                    format!("`get_property` of `{}.{prop}`: {why}", self.node_name(node)),
                );
                Json::Null
            }
        }
    }

    /// SELF/SOURCE/TARGET or a node name → node index, with the scope rules of Cloudify.
    fn resolve_node(
        &self,
        who: &str,
        loc: Loc,
        arg: &Node,
        scope: Scope,
        function: &str,
        diags: &mut Diagnostics,
    ) -> Option<usize> {
        let misplaced = |diags: &mut Diagnostics, rule: &str| {
            diags.push(Diagnostic::new(
                loc,
                format!("`{function}` uses {who}, which {rule}"),
            ));
            None
        };
        match (who, scope) {
            ("SELF", Scope::Node(n)) => Some(n),
            ("SELF", _) => misplaced(diags, "can only be used in a node template"),
            ("SOURCE", Scope::Relationship { source, .. }) => Some(source),
            ("TARGET", Scope::Relationship { target, .. }) => Some(target),
            ("SOURCE" | "TARGET", _) => misplaced(diags, "can only be used in a relationship"),
            (name, _) => match self.node_names.get(name) {
                Some(i) => Some(*i),
                None => {
                    diags.push(
                        Diagnostic::new(
                            arg.loc,
                            format!("`{function}` refers to the unknown node `{name}`"),
                        )
                        .with_help_opt(did_you_mean(
                            name,
                            self.node_names.keys().map(String::as_str),
                        )),
                    );
                    None
                }
            },
        }
    }

    fn runtime(
        &mut self,
        name: &str,
        loc: Loc,
        arg: &Node,
        scope: Scope,
        diags: &mut Diagnostics,
    ) -> Json {
        let evaluated = self.eval(arg, scope, diags);
        let args: Vec<Json> = match &evaluated {
            Json::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let needs_node = matches!(
            name,
            "get_attribute" | "get_attributes_list" | "get_attributes_dict"
        );
        if needs_node {
            if args.len() < 2 || !matches!(evaluated, Json::Array(_)) {
                diags.error(arg.loc, format!("`{name}` takes a list: [SELF|SOURCE|TARGET|node name, attribute, nested keys…]"));
            } else if let Some(Json::String(who)) = args.first() {
                if name == "get_attribute" {
                    self.resolve_node(who, loc, arg, scope, name, diags);
                } else if self.node_names.get(who.as_str()).is_none() {
                    diags.push(
                        Diagnostic::new(
                            arg.loc,
                            format!("`{name}` refers to the unknown node `{who}`"),
                        )
                        .with_help_opt(did_you_mean(
                            who,
                            self.node_names.keys().map(String::as_str),
                        )),
                    );
                }
            } else if !is_runtime_function(&args[0]) {
                diags.error(
                    arg.loc,
                    format!("the first argument of `{name}` must be a node name"),
                );
            }
        } else if args.is_empty() || args.iter().all(Json::is_null) {
            diags.error(arg.loc, format!("`{name}` needs an argument"));
        }
        let mut m = Map::new();
        m.insert(name.to_string(), evaluated);
        Json::Object(m)
    }
}

/// Follow keys/indexes into a value.
fn walk<'v>(mut value: &'v Json, path: &[Json]) -> Result<&'v Json, String> {
    for step in path {
        value = match (value, step) {
            (Json::Object(m), Json::String(k)) => {
                m.get(k).ok_or_else(|| format!("no key `{k}`"))?
            }
            (Json::Array(a), Json::Number(n)) => {
                let i = n
                    .as_u64()
                    .ok_or_else(|| format!("`{n}` is not a list index"))?;
                a.get(i as usize)
                    .ok_or_else(|| format!("index {i} is out of range (length {})", a.len()))?
            }
            (v, s) => {
                return Err(format!(
                    "cannot look up {s} in {}",
                    super::values::describe(v)
                ));
            }
        };
    }
    Ok(value)
}

/// Text of a value as Cloudify's (Python's) `str()` would give it.
fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Bool(true) => "True".to_string(),
        Json::Bool(false) => "False".to_string(),
        Json::Null => "None".to_string(),
        other => other.to_string(),
    }
}

/// The pure plan-time functions over evaluated arguments.
pub(crate) fn apply(name: &str, args: &[Json]) -> Result<Json, String> {
    let string = |i: usize| -> Result<String, String> {
        match args.get(i) {
            Some(Json::String(s)) => Ok(s.clone()),
            Some(Json::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(format!(
                "argument {} must be a string, found {}",
                i + 1,
                super::values::describe(other)
            )),
            None => Err(format!("argument {} is missing", i + 1)),
        }
    };
    match name {
        "concat" => Ok(Json::String(args.iter().map(text).collect())),
        "merge" => {
            let mut out = Map::new();
            for (i, a) in args.iter().enumerate() {
                match a {
                    Json::Object(m) => out.extend(m.clone()),
                    other => {
                        return Err(format!(
                            "argument {} must be a mapping, found {}",
                            i + 1,
                            super::values::describe(other)
                        ));
                    }
                }
            }
            Ok(Json::Object(out))
        }
        "string_lower" => Ok(Json::String(string(0)?.to_lowercase())),
        "string_upper" => Ok(Json::String(string(0)?.to_uppercase())),
        "string_find" => {
            let (hay, needle) = (string(0)?, string(1)?);
            Ok(Json::from(
                hay.find(&needle)
                    .map_or(-1, |b| hay[..b].chars().count() as i64),
            ))
        }
        "string_replace" => {
            let (s, old, new) = (string(0)?, string(1)?, string(2)?);
            match args.get(3).and_then(Json::as_i64) {
                Some(count) if count >= 0 => {
                    Ok(Json::String(s.replacen(&old, &new, count as usize)))
                }
                _ => Ok(Json::String(s.replace(&old, &new))),
            }
        }
        "string_split" => {
            let (s, sep) = (string(0)?, string(1)?);
            if sep.is_empty() {
                return Err("the separator must not be empty".to_string());
            }
            let parts: Vec<Json> = s
                .split(sep.as_str())
                .map(|p| Json::String(p.to_string()))
                .collect();
            match args.get(2) {
                None => Ok(Json::Array(parts)),
                Some(Json::Number(n)) => {
                    let i = n
                        .as_u64()
                        .ok_or("the index must be a non-negative integer")?
                        as usize;
                    parts
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("index {i} is out of range ({} parts)", parts.len()))
                }
                Some(_) => Err("the index must be an integer".to_string()),
            }
        }
        _ => Err("unknown function".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::source::FileId;
    use crate::load::yaml::parse;
    use serde_json::json;

    fn eval_with(text: &str, props: &[(&str, &str)]) -> (Json, Diagnostics) {
        let inputs: IndexMap<String, Json> = [
            ("port".to_string(), json!(8080)),
            ("cfg".to_string(), json!({"a": [1, 2]})),
        ]
        .into_iter()
        .collect();
        let node_names: IndexMap<String, usize> = [("a".to_string(), 0), ("b".to_string(), 1)]
            .into_iter()
            .collect();
        let mut properties = vec![IndexMap::default(), IndexMap::default()];
        for (i, (k, v)) in props.iter().enumerate() {
            properties[i % 2].insert(k.to_string(), parse(FileId(0), v).unwrap());
        }
        let mut e = Evaluator::new(DslVersion::V1_5, &inputs, &node_names, &properties);
        let mut d = Diagnostics::default();
        let v = e.eval(&parse(FileId(0), text).unwrap(), Scope::Node(0), &mut d);
        (v, d)
    }

    #[test]
    fn nested_functions_evaluate_innermost_first() {
        let (v, d) = eval_with(
            "{concat: [{string_upper: x}, '-', {get_input: port}, '-', {get_input: [cfg, a, 1]}]}",
            &[],
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(v, json!("X-8080-2"));
        let (v, _) = eval_with("{merge: [{a: 1, b: 1}, {b: 2}]}", &[]);
        assert_eq!(v, json!({"a": 1, "b": 2}));
        let (v, _) = eval_with("{string_split: ['a,b,c', ',', 1]}", &[]);
        assert_eq!(v, json!("b"));
        let (v, _) = eval_with("{string_find: [hello, ll]}", &[]);
        assert_eq!(v, json!(2));
        let (v, _) = eval_with("{string_replace: [aaa, a, b, 2]}", &[]);
        assert_eq!(v, json!("bba"));
    }

    #[test]
    fn get_property_reads_other_nodes_and_finds_cycles() {
        let (v, d) = eval_with(
            "{get_property: [b, y]}",
            &[("x", "7"), ("y", "{get_property: [a, x]}")],
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(v, json!(7));
        let (_, d) = eval_with(
            "{get_property: [SELF, x]}",
            &[
                ("x", "{get_property: [b, y]}"),
                ("y", "{get_property: [a, x]}"),
            ],
        );
        let msgs: Vec<String> = d.into_sorted().into_iter().map(|d| d.message).collect();
        assert!(
            msgs.iter().any(|m| m.contains("a.x -> b.y -> a.x")),
            "{msgs:?}"
        );
    }

    #[test]
    fn runtime_functions_are_kept_and_unknown_inputs_reported() {
        let (v, d) = eval_with("{concat: [http://, {get_attribute: [SELF, ip]}]}", &[]);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            v,
            json!({"concat": ["http://", {"get_attribute": ["SELF", "ip"]}]})
        );
        let (_, d) = eval_with("{get_input: prot}", &[]);
        let d = d.into_sorted();
        assert!(d[0].message.contains("unknown input `prot`"));
        assert_eq!(d[0].help.as_deref(), Some("did you mean `port`?"));
        let (_, d) = eval_with("{get_property: [TARGET, x]}", &[]);
        assert!(
            d.into_sorted()[0]
                .message
                .contains("only be used in a relationship")
        );
    }
}
