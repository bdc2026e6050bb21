//! Compile: the merged [`Model`] plus given inputs → a resolved [`Compiled`] blueprint.
//!
//! Order of work: inheritance chains are checked; data types resolved; property types checked
//! to exist; inputs resolved; every node template's properties merged with its type's schema
//! (unknown and missing properties reported); then, with all merged properties known,
//! intrinsic functions are evaluated and values type-checked; operations are merged template
//! over type and mapped to a plugin or a script; relationships, instance counts, groups,
//! policies, workflows and outputs follow. Every problem is collected; none stops the rest.

use crate::maps::{HashMap, HashMapExt};
use std::path::Path;
use std::rc::Rc;

use crate::maps::IndexMap;
use serde_json::{Map, Value as Json};

use super::compiled::*;
use super::data_based;
use super::functions::{Evaluator, Scope};
use super::host_agent;
use super::inputs::{self, GivenInputs};
use super::model::*;
use super::types::{chain, check_chains, merged_interfaces, merged_properties};
use super::values::{self, DataTypes, SIMPLE_TYPES};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::source::Loc;
use crate::load::yaml::{Key, Node, Value};

const SCALING_POLICY: &str = "cloudify.policies.scaling";

pub fn compile(
    model: &Model,
    given: &GivenInputs,
    root_dir: &Path,
    inputs_loc: Loc,
    diags: &mut Diagnostics,
) -> Compiled {
    check_chains("node type", &model.node_types, diags);
    check_chains("relationship type", &model.relationships, diags);
    check_chains("data type", &model.data_types, diags);

    let data_types: DataTypes = model
        .data_types
        .keys()
        .filter_map(|name| {
            let c = chain(name, &model.data_types)?;
            Some((
                name.clone(),
                merged_properties(&c, &model.data_types, |d| &d.properties),
            ))
        })
        .collect();
    check_declared_types(model, diags);

    let mut inputs = inputs::resolve(&model.inputs, given, &data_types, inputs_loc, diags);
    evaluate_input_defaults(model, &mut inputs, &data_types, diags);
    let node_index: IndexMap<String, usize> = model
        .node_templates
        .keys()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();

    // Pass 1: merge every template's properties with its type's schema. Types are resolved
    // once each and shared: thousands of templates typically use a handful of types.
    let mut type_cache: HashMap<&str, Option<Rc<ResolvedType>>> = HashMap::new();
    let mut resolved_types = Vec::with_capacity(model.node_templates.len());
    let mut raw_properties = Vec::with_capacity(model.node_templates.len());
    for (name, template) in &model.node_templates {
        let resolved = match type_cache.get(template.ty.name.as_str()) {
            Some(r) if r.is_some() => r.clone(),
            _ => {
                let r = resolve_node_type(name, template, model, diags).map(Rc::new);
                type_cache.insert(&template.ty.name, r.clone());
                r
            }
        };
        let schema = resolved.as_ref().map(|r| &r.properties);
        raw_properties.push(merge_properties(
            &format!("node `{name}`"),
            template.loc,
            schema,
            &template.properties,
            &data_types,
            diags,
        ));
        resolved_types.push(resolved);
    }

    // Pass 2: evaluate and check, now that get_property can see every node.
    let mut eval = Evaluator::new(model.version, &inputs, &node_index, &raw_properties);
    let mut ctx = Ctx {
        model,
        root_dir,
        data_types: &data_types,
        relationship_types: HashMap::new(),
        host_agent_uses: Vec::new(),
        operation_sets: vec![Operations::default()],
        shared_sets: HashMap::new(),
    };
    let mut nodes = Vec::with_capacity(model.node_templates.len());
    for (idx, ((name, template), resolved)) in
        model.node_templates.iter().zip(resolved_types).enumerate()
    {
        let properties = ctx.properties(
            resolved.as_ref().map(|r| &r.properties),
            &raw_properties[idx],
            &mut eval,
            Scope::Node(idx),
            diags,
        );
        let operations = match &resolved {
            Some(r) => ctx.operation_set(
                (SetOf::Node, &template.ty.name),
                &r.interfaces,
                &template.interfaces,
                &mut eval,
                (
                    Scope::Node(idx),
                    &Owner {
                        node: idx,
                        what: format!("node `{name}`"),
                        section: "interfaces",
                        loc: template.loc,
                    },
                ),
                diags,
            ),
            None => OperationSetId::NONE,
        };
        let relationships = ctx.relationships(idx, name, template, &node_index, &mut eval, diags);
        let contained_in = relationships
            .iter()
            .find(|r| r.is_contained_in())
            .map(|r| r.target);
        let counts = ctx.counts(&template.scalable, template.loc, &mut eval, diags);
        nodes.push(CompiledNode {
            id: NodeId(name.clone()),
            loc: template.loc,
            type_name: template.ty.name.clone(),
            type_hierarchy: resolved.map(|r| r.hierarchy.clone()).unwrap_or_default(),
            properties,
            operations,
            relationships,
            counts,
            contained_in,
        });
    }

    host_agent::check(&nodes, &ctx.host_agent_uses, diags);

    let groups = model
        .groups
        .iter()
        .map(|(name, g)| {
            for m in &g.members {
                if !node_index.contains_key(&m.name) && !model.groups.contains_key(&m.name) {
                    let candidates = node_index.keys().chain(model.groups.keys()).map(String::as_str);
                    diags.push(
                        Diagnostic::new(m.loc, format!("member `{}` of group `{name}` is neither a node template nor a group", m.name))
                            .with_help_opt(did_you_mean(&m.name, candidates)),
                    );
                }
            }
            (
                name.clone(),
                CompiledGroup { loc: g.loc, members: g.members.iter().map(|m| (m.name.clone(), m.loc)).collect() },
            )
        })
        .collect();
    let (scaling_policies, policies) = ctx.policies(&mut eval, diags);
    let workflows = ctx.workflows(diags);
    let outputs = model
        .outputs
        .iter()
        .map(|(k, o)| (k.clone(), eval.eval(&o.value, Scope::Global, diags)))
        .collect();
    let capabilities = model
        .capabilities
        .iter()
        .map(|(k, o)| (k.clone(), eval.eval(&o.value, Scope::Global, diags)))
        .collect();
    let external_plugins = model
        .plugins
        .iter()
        .filter_map(|(name, p)| {
            let dir = p.dir.as_ref()?;
            let properties = p
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), eval.eval(v, Scope::Global, diags)))
                .collect();
            Some((
                name.clone(),
                ExternalPlugin {
                    dir_name: dir.name.clone(),
                    source: dir.dir.clone(),
                    runnable: dir.runnable,
                    properties,
                },
            ))
        })
        .collect();

    Compiled {
        version: model.version,
        description: model.description.clone(),
        inputs,
        nodes,
        operation_sets: ctx.operation_sets,
        node_index,
        groups,
        scaling_policies,
        policies,
        workflows,
        outputs,
        capabilities,
        input_types: model
            .inputs
            .iter()
            .filter_map(|(k, s)| Some((k.clone(), data_based::Typed::of(s)?)))
            .collect(),
        labels: model.labels.clone(),
        external_plugins,
    }
}

/// Inputs whose default holds plan-time functions (`concat`, `get_input` of another input, …),
/// evaluated as Cloudify does before anything reads them: each after the inputs it reads,
/// a cycle between inputs reported with its path. The evaluated value is then type-checked.
fn evaluate_input_defaults(
    model: &Model,
    inputs: &mut IndexMap<String, Json>,
    data_types: &DataTypes,
    diags: &mut Diagnostics,
) {
    let pending: Vec<String> = inputs
        .iter()
        .filter(|(_, v)| super::functions::has_plan_time_function(v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut visiting = Vec::new();
    for name in pending {
        evaluate_input(&name, model, inputs, data_types, &mut visiting, diags);
    }
}

fn evaluate_input(
    name: &str,
    model: &Model,
    inputs: &mut IndexMap<String, Json>,
    data_types: &DataTypes,
    visiting: &mut Vec<String>,
    diags: &mut Diagnostics,
) {
    let (Some(schema), Some(value)) = (model.inputs.get(name), inputs.get(name)) else {
        return;
    };
    if !super::functions::has_plan_time_function(value) {
        return;
    }
    let Some(default) = &schema.default else {
        return;
    };
    if let Some(pos) = visiting.iter().position(|v| v == name) {
        let mut cycle = visiting[pos..].to_vec();
        cycle.push(name.to_string());
        diags.error(
            default.loc,
            format!("circular get_input reference: {}", cycle.join(" -> ")),
        );
        inputs.insert(name.to_string(), Json::Null);
        return;
    }
    visiting.push(name.to_string());
    for other in input_references(default) {
        evaluate_input(&other, model, inputs, data_types, visiting, diags);
    }
    visiting.pop();
    let no_nodes = IndexMap::default();
    let mut value =
        Evaluator::new(model.version, inputs, &no_nodes, &[]).eval(default, Scope::Global, diags);
    let ty = schema.ty.as_ref().map(|t| t.name.as_str());
    values::fill_defaults(ty, &mut value, data_types);
    if let Some(why) = values::check(schema, &value, data_types)
        .err()
        .or_else(|| super::constraints::check(&schema.constraints, &value).err())
    {
        diags.error(schema.loc, format!("input `{name}`: {why}"));
    }
    inputs.insert(name.to_string(), value);
}

/// The inputs a written value reads with `get_input`, by their first argument.
fn input_references(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    if k.name == "get_input" {
                        let first = v.as_seq().and_then(|s| s.first()).unwrap_or(v);
                        if let Some(s) = first.as_str() {
                            out.push(s.to_string());
                        }
                    }
                    stack.push(v);
                }
            }
            Value::Seq(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// The input that carries a script to the script plugin: (`script_path` or `script_source`, value).
type ScriptInput = (&'static str, String);

struct ResolvedType {
    hierarchy: Vec<String>,
    properties: IndexMap<String, PropertySchema>,
    interfaces: Interfaces,
}

fn resolve_node_type(
    name: &str,
    template: &NodeTemplate,
    model: &Model,
    diags: &mut Diagnostics,
) -> Option<ResolvedType> {
    let ty = &template.ty;
    if !model.node_types.contains_key(&ty.name) {
        diags.push(
            Diagnostic::new(
                ty.loc,
                format!("node template `{name}` has the unknown type `{}`", ty.name),
            )
            .with_help_opt(
                did_you_mean(&ty.name, model.node_types.keys().map(String::as_str))
                    .or_else(|| builtin_types_hint(&ty.name)),
            ),
        );
        return None;
    }
    let c = chain(&ty.name, &model.node_types)?;
    Some(ResolvedType {
        hierarchy: c.iter().map(|s| s.to_string()).collect(),
        properties: merged_properties(&c, &model.node_types, |t| &t.properties),
        interfaces: merged_interfaces(&c, &model.node_types, |t| &t.interfaces),
    })
}

/// Template values over type defaults; unknown keys and missing required ones are errors.
/// A data-typed property gets its data type's field defaults here, before evaluation, so
/// `get_property` reads the filled value as Cloudify's does.
fn merge_properties(
    owner: &str,
    owner_loc: Loc,
    schema: Option<&IndexMap<String, PropertySchema>>,
    given: &[(Key, Node)],
    data_types: &DataTypes,
    diags: &mut Diagnostics,
) -> IndexMap<String, Node> {
    let mut out = IndexMap::default();
    let Some(schema) = schema else {
        for (k, v) in given {
            out.insert(k.name.clone(), v.clone());
        }
        return out;
    };
    for (k, v) in given {
        if schema.contains_key(&k.name) {
            out.insert(k.name.clone(), v.clone());
        } else {
            diags.push(
                Diagnostic::new(
                    k.loc,
                    format!(
                        "{owner} sets `{}`, which is not a property of its type",
                        k.name
                    ),
                )
                .with_help(
                    did_you_mean(&k.name, schema.keys().map(String::as_str)).unwrap_or_else(|| {
                        if schema.is_empty() {
                            "its type declares no properties".to_string()
                        } else {
                            format!(
                                "its type declares: {}",
                                schema.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    }),
                ),
            );
        }
    }
    let mut result = IndexMap::with_capacity_and_hasher(schema.len(), Default::default());
    for (k, s) in schema {
        let data_type =
            s.ty.as_ref()
                .map(|t| t.name.as_str())
                .filter(|t| !values::is_builtin_type(t));
        if let Some(mut v) = out.shift_remove(k) {
            if let Some(t) = data_type {
                values::fill_node_defaults(t, s.default.as_ref(), &mut v, data_types);
            }
            result.insert(k.clone(), v);
        } else if let Some(d) = &s.default {
            let mut d = d.clone();
            if let Some(t) = data_type {
                values::fill_node_defaults(t, None, &mut d, data_types);
            }
            result.insert(k.clone(), d);
        } else if let Some(t) =
            data_type.filter(|t| s.required || values::complete_from_defaults(t, data_types))
        {
            // As in Cloudify, an omitted data-typed property without a default is its type's
            // defaults; the type check reports a required field that has none. (Cloudify
            // refuses an optional one whose type cannot be filled; windlass leaves it unset.)
            let mut v = Node::new(Value::Map(Vec::new()), owner_loc);
            values::fill_node_defaults(t, None, &mut v, data_types);
            result.insert(k.clone(), v);
        } else if s.required {
            // Before 1_2 every property is required: a blueprint of that version cannot say
            // `required: false` (read refuses the key), only the built-in types do.
            diags.push(
                Diagnostic::new(
                    owner_loc,
                    format!("{owner} is missing the required property `{k}`"),
                )
                .with_related(s.loc, "declared here, without a default"),
            );
        }
    }
    result
}

fn check_declared_types(model: &Model, diags: &mut Diagnostics) {
    // Inputs and workflow parameters may also have a data-based type (DSL 1.4+).
    for (name, schema) in &model.inputs {
        data_based::check_declaration(schema, model.version, Some(name), diags);
    }
    for schema in model.workflows.values().flat_map(|w| w.parameters.values()) {
        data_based::check_declaration(schema, model.version, None, diags);
    }
    let mut check = |schema: &PropertySchema, data_based_ok: bool| {
        for c in schema.constraints.iter().filter(|_| !data_based_ok) {
            if let Some(name) = data_based::is_data_based_constraint(&c.kind) {
                diags.push(
                    Diagnostic::new(c.loc, format!("the `{name}` constraint applies only to inputs and workflow parameters of a data-based type"))
                        .with_help("data-based types: deployment_id, blueprint_id, node_id, node_type, node_instance, scaling_group, secret_key, capability_value, operation_name"),
                );
            }
        }
        for t in [&schema.ty, &schema.item_type].into_iter().flatten() {
            if !values::is_builtin_type(&t.name) && !model.data_types.contains_key(&t.name) {
                let candidates = SIMPLE_TYPES
                    .iter()
                    .copied()
                    .chain(data_based::Kind::ALL.iter().map(|k| k.name()))
                    .chain(model.data_types.keys().map(String::as_str));
                diags.push(
                    Diagnostic::new(t.loc, format!("unknown property type `{}`", t.name))
                        .with_help(did_you_mean(&t.name, candidates).unwrap_or_else(|| {
                            format!(
                                "types are {} or a declared data type",
                                SIMPLE_TYPES.join(", ")
                            )
                        })),
                );
            }
        }
    };
    model
        .node_types
        .values()
        .flat_map(|t| t.properties.values())
        .for_each(|s| check(s, false));
    model
        .relationships
        .values()
        .flat_map(|t| t.properties.values())
        .for_each(|s| check(s, false));
    model
        .data_types
        .values()
        .flat_map(|t| t.properties.values())
        .for_each(|s| check(s, false));
    model.inputs.values().for_each(|s| check(s, true));
    model
        .workflows
        .values()
        .flat_map(|w| w.parameters.values())
        .for_each(|s| check(s, true));
}

struct Ctx<'a> {
    model: &'a Model,
    root_dir: &'a Path,
    data_types: &'a DataTypes,
    /// Relationship types resolved once each.
    relationship_types: HashMap<String, Rc<ResolvedRelationship>>,
    /// Operations that run on their node's host agent, checked once every node is compiled.
    host_agent_uses: Vec<host_agent::Use>,
    /// Every distinct operation set so far ([`OperationSetId`]); the first is empty.
    operation_sets: Vec<Operations>,
    /// The set of a type's operations as every template that changes none of them gets it.
    shared_sets: HashMap<(SetOf, String), SharedSet>,
}

/// Whose operations a type's set is: a node type's, or a relationship type's on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SetOf {
    Node,
    Source,
    Target,
}

/// A type's operation set, made once and reused by every template that leaves the type's
/// operations alone, with the host-agent uses each such template adds.
struct SharedSet {
    id: OperationSetId,
    host_agent_uses: Vec<host_agent::Use>,
}

/// Whose operations [`Ctx::operations`] merges, for messages and the host-agent rule.
struct Owner {
    /// The node whose agent runs them: the node, or a relationship's source or target.
    node: usize,
    /// "node `n`", "the relationship `T` of node `n` to `t`".
    what: String,
    /// The template section that overrides them: `interfaces`, `source_interfaces`, …
    section: &'static str,
    /// Where a problem points when the template does not write the operation.
    loc: Loc,
}

struct ResolvedRelationship {
    hierarchy: Vec<String>,
    properties: IndexMap<String, PropertySchema>,
    source_interfaces: Interfaces,
    target_interfaces: Interfaces,
}

impl Ctx<'_> {
    fn properties(
        &mut self,
        schema: Option<&IndexMap<String, PropertySchema>>,
        raw: &IndexMap<String, Node>,
        eval: &mut Evaluator,
        scope: Scope,
        diags: &mut Diagnostics,
    ) -> Map<String, Json> {
        let mut out = Map::new();
        for (k, node) in raw {
            let errors_before = diags.len();
            let mut value = match scope {
                Scope::Node(n) => eval.property(n, k, diags).unwrap_or(Json::Null),
                _ => eval.eval(node, scope, diags),
            };
            // A value whose evaluation failed was already reported; don't add a type cascade.
            let failed = match scope {
                Scope::Node(n) => eval.property_failed(n, k),
                _ => false,
            };
            if let Some(s) = schema
                .and_then(|s| s.get(k))
                .filter(|_| !failed && diags.len() == errors_before)
            {
                values::fill_defaults(
                    s.ty.as_ref().map(|t| t.name.as_str()),
                    &mut value,
                    self.data_types,
                );
                let problem = values::check(s, &value, self.data_types)
                    .err()
                    .or_else(|| super::constraints::check(&s.constraints, &value).err());
                if let Some(why) = problem {
                    diags.push(
                        Diagnostic::new(node.loc, format!("property `{k}`: {why}"))
                            .with_related(s.loc, "declared here"),
                    );
                }
            }
            out.insert(k.clone(), value);
        }
        out
    }

    /// [`Ctx::operations`] as a set of [`Compiled::operation_sets`]. A template that writes
    /// no operations of its own gets its type's set, made once: when making it reported nothing
    /// and no input default of the type calls a function, what it holds is the same whichever
    /// template asks (only the node of a host-agent use differs, and is set per template).
    fn operation_set(
        &mut self,
        of: (SetOf, &str),
        from_type: &Interfaces,
        from_template: &Interfaces,
        eval: &mut Evaluator,
        (scope, owner): (Scope, &Owner),
        diags: &mut Diagnostics,
    ) -> OperationSetId {
        let key = (of.0, of.1.to_string());
        let shareable = from_template.is_empty();
        if shareable && let Some(shared) = self.shared_sets.get(&key) {
            let uses = shared.host_agent_uses.iter().map(|u| host_agent::Use {
                node: owner.node,
                ..u.clone()
            });
            self.host_agent_uses.extend(uses);
            return shared.id;
        }
        let (reported, used) = (diags.len(), self.host_agent_uses.len());
        let operations = self.operations(from_type, from_template, eval, (scope, owner), diags);
        let id = if operations.is_empty() {
            OperationSetId::NONE
        } else {
            self.operation_sets.push(operations);
            OperationSetId(self.operation_sets.len() as u32 - 1)
        };
        if shareable && diags.len() == reported && !defaults_call_functions(from_type) {
            let host_agent_uses = self.host_agent_uses[used..].to_vec();
            self.shared_sets.insert(
                key,
                SharedSet {
                    id,
                    host_agent_uses,
                },
            );
        }
        id
    }

    /// Template operations over type operations (Cloudify's rules), mapped and evaluated.
    /// A template operation written `{}` or `''` is a no-op that switches the type's off; an
    /// operation the template keeps (not written, or without another implementation) needs a
    /// value for every input the type declares without a default, as Cloudify's parser
    /// requires of every node template, whether or not it has instances.
    fn operations(
        &mut self,
        from_type: &Interfaces,
        from_template: &Interfaces,
        eval: &mut Evaluator,
        (scope, owner): (Scope, &Owner),
        diags: &mut Diagnostics,
    ) -> Operations {
        let mut out = Operations::default();
        // The type's operations, then those only the template adds, in written order.
        let only_in_template = from_template.iter().flat_map(|(iface, ops)| {
            ops.keys()
                .filter(move |op| from_type.get(iface).is_none_or(|t| !t.contains_key(*op)))
                .map(move |op| (iface, op))
        });
        let names = from_type
            .iter()
            .flat_map(|(iface, ops)| ops.keys().map(move |op| (iface, op)))
            .chain(only_in_template);
        for (iface, op) in names {
            let t = from_type.get(iface).and_then(|o| o.get(op));
            let m = from_template.get(iface).and_then(|o| o.get(op));
            if t.is_some() && m.is_some_and(is_no_op) {
                continue; // the template switches the type's operation off
            }
            if let Some(t) = t {
                let same = m.is_none_or(|m| {
                    m.implementation.is_none()
                        || m.implementation.as_ref().map(|i| &i.name)
                            == t.implementation.as_ref().map(|i| &i.name)
                });
                if same {
                    self.check_operation_inputs(t, m, &format!("{iface}.{op}"), owner, diags);
                }
            }
            if m.is_none() && t.is_some_and(|t| t.implementation.is_none()) {
                continue; // a no-op the template leaves alone: the common case
            }
            let merged = match (t, m) {
                (Some(t), Some(m)) => merge_operation(t, m),
                (Some(x), None) | (None, Some(x)) => x.clone(),
                (None, None) => continue,
            };
            let type_inputs = match (t, m) {
                (Some(t), Some(m))
                    if m.implementation.is_some()
                        && m.implementation.as_ref().map(|i| &i.name)
                            != t.implementation.as_ref().map(|i| &i.name) =>
                {
                    None
                }
                (Some(t), _) => Some(&t.inputs),
                _ => None,
            };
            let Some(implementation) = &merged.implementation else {
                continue;
            };
            let Some((plugin, function, script)) =
                self.map_implementation(implementation, &format!("{iface}.{op}"), diags)
            else {
                continue;
            };
            // Cloudify's executor: the operation's; else `auto` for a script (the host's agent
            // when there is a host), else the plugin's.
            let written = m
                .filter(|m| m.executor.is_some())
                .or(t)
                .map_or(merged.loc, |o| o.loc);
            let executor = merged
                .executor
                .as_deref()
                .map(|e| (e, written))
                .or_else(|| {
                    let p = self
                        .model
                        .plugins
                        .get(&plugin)
                        .filter(|_| script.is_none())?;
                    Some((p.executor.as_deref()?, p.loc))
                });
            if let Some(("host_agent", loc)) = executor {
                self.host_agent_uses.push(host_agent::Use {
                    node: owner.node,
                    operation: format!("{iface}.{op}"),
                    plugin: plugin.clone(),
                    loc,
                });
            }
            let mut inputs = Map::new();
            if let Some(schema) = type_inputs {
                for (k, s) in schema {
                    if let Some(d) = input_default(s) {
                        inputs.insert(k.name.clone(), eval.eval(d, scope, diags));
                    }
                }
            }
            for (k, v) in m.map_or(&[][..], |m| m.inputs.as_slice()) {
                inputs.insert(k.name.clone(), eval.eval(v, scope, diags));
            }
            if let Some((input, value)) = script {
                inputs.insert(input.to_string(), Json::String(value));
            }
            out.insert(
                format!("{iface}.{op}"),
                Operation {
                    plugin,
                    implementation: function,
                    inputs,
                    executor: merged.executor.clone(),
                    max_retries: merged.max_retries,
                    retry_interval: merged.retry_interval,
                    timeout: merged.timeout,
                    timeout_recoverable: merged.timeout_recoverable,
                },
            );
        }
        out
    }

    /// Every input `t` declares without a default must have a value in `m`, the template's
    /// operation that keeps `t`'s implementation (Cloudify: "Input '…' is missing a value").
    fn check_operation_inputs(
        &self,
        t: &OperationDef,
        m: Option<&OperationDef>,
        op: &str,
        owner: &Owner,
        diags: &mut Diagnostics,
    ) {
        let given = m.map_or(&[][..], |m| m.inputs.as_slice());
        let missing: Vec<&Key> = t
            .inputs
            .iter()
            .filter(|(k, s)| {
                input_default(s).is_none() && !given.iter().any(|(g, _)| g.name == k.name)
            })
            .map(|(k, _)| k)
            .collect();
        let Some(first) = missing.first() else {
            return;
        };
        let names: Vec<String> = missing.iter().map(|k| format!("`{}`", k.name)).collect();
        let (iface, name) = op.rsplit_once('.').unwrap_or(("", op));
        let mut d = Diagnostic::new(
            m.map_or(owner.loc, |m| m.loc),
            format!(
                "{}: operation `{op}` has no value for its input{} {}, declared without a default",
                owner.what,
                if missing.len() > 1 { "s" } else { "" },
                names.join(", ")
            ),
        )
        .with_help(format!(
            "give {} under `{}: {iface}: {name}: inputs:` of {}, or a `default` where {} declared",
            names.join(", "),
            owner.section,
            owner.what,
            if missing.len() > 1 {
                "they are"
            } else {
                "it is"
            },
        ));
        d = d.with_related(first.loc, "declared here");
        diags.push(d);
    }

    /// `plugin.module.function`, a script path or an inline script → (plugin, function, and
    /// for a script the input that carries it: `script_path`, or `script_source` for a script
    /// written in the blueprint, which the script plugin writes to a file when it runs).
    fn map_implementation(
        &self,
        implementation: &Name,
        op: &str,
        diags: &mut Diagnostics,
    ) -> Option<(String, String, Option<ScriptInput>)> {
        let text = implementation.name.as_str();
        // Cloudify's rule: an implementation of several lines is a script, whatever it starts with.
        if text.trim().contains('\n') {
            return Some((
                "script".to_string(),
                "script_runner.tasks.run".to_string(),
                Some(("script_source", text.to_string())),
            ));
        }
        if let Some((plugin, function)) = text.split_once('.')
            && self.model.plugins.contains_key(plugin)
            && !function.is_empty()
        {
            return Some((plugin.to_string(), function.to_string(), None));
        }
        if self.root_dir.join(text).is_file() {
            return Some((
                "script".to_string(),
                "script_runner.tasks.run".to_string(),
                Some(("script_path", text.to_string())),
            ));
        }
        let prefix = text.split('.').next().unwrap_or(text);
        let looks_like_path = text.contains('/') || text.ends_with(".sh") || text.ends_with(".py");
        let mut d = Diagnostic::new(
            implementation.loc,
            if looks_like_path {
                format!(
                    "operation `{op}` runs the script `{text}`, which does not exist relative to the blueprint"
                )
            } else {
                format!(
                    "operation `{op}` maps to `{text}`, but no plugin `{prefix}` is declared and no such file exists"
                )
            },
        );
        if looks_like_path {
            d = d.with_help(format!("looked for {}", self.root_dir.join(text).display()));
        } else {
            d = d.with_help(
                did_you_mean(prefix, self.model.plugins.keys().map(String::as_str)).unwrap_or_else(
                    || {
                        format!(
                            "declared plugins: {}",
                            self.model
                                .plugins
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                ),
            );
        }
        diags.push(d);
        None
    }

    fn relationships(
        &mut self,
        idx: usize,
        name: &str,
        template: &NodeTemplate,
        node_index: &IndexMap<String, usize>,
        eval: &mut Evaluator,
        diags: &mut Diagnostics,
    ) -> Vec<CompiledRelationship> {
        let mut out = Vec::new();
        let mut contained: Vec<Loc> = Vec::new();
        for rel in &template.relationships {
            let Some(target) = node_index.get(&rel.target.name).copied() else {
                diags.push(
                    Diagnostic::new(
                        rel.target.loc,
                        format!(
                            "relationship target `{}` of node `{name}` is not a node template",
                            rel.target.name
                        ),
                    )
                    .with_help_opt(did_you_mean(
                        &rel.target.name,
                        node_index.keys().map(String::as_str),
                    )),
                );
                continue;
            };
            if target == idx {
                diags.error(
                    rel.target.loc,
                    format!("node `{name}` has a relationship to itself"),
                );
                continue;
            }
            if !self.model.relationships.contains_key(&rel.ty.name) {
                diags.push(
                    Diagnostic::new(
                        rel.ty.loc,
                        format!("unknown relationship type `{}`", rel.ty.name),
                    )
                    .with_help_opt(
                        did_you_mean(
                            &rel.ty.name,
                            self.model.relationships.keys().map(String::as_str),
                        )
                        .or_else(|| builtin_types_hint(&rel.ty.name)),
                    ),
                );
                continue;
            }
            let Some(resolved) = self.relationship_type(&rel.ty.name) else {
                continue;
            };
            let schema = &resolved.properties;
            let scope = Scope::Relationship {
                source: idx,
                target,
            };
            let raw = merge_properties(
                &format!("a relationship of node `{name}`"),
                rel.loc,
                Some(schema),
                &rel.properties,
                self.data_types,
                diags,
            );
            let properties = self.properties(Some(schema), &raw, eval, scope, diags);
            let connection = match properties.get("connection_type").and_then(Json::as_str) {
                None | Some("all_to_all") => ConnectionType::AllToAll,
                Some("all_to_one") => ConnectionType::AllToOne,
                Some(other) => {
                    let loc = raw.get("connection_type").map_or(rel.loc, |n| n.loc);
                    diags.push(
                        Diagnostic::new(loc, format!("unknown connection_type `{other}`"))
                            .with_help(
                                did_you_mean(other, ["all_to_all", "all_to_one"]).unwrap_or_else(
                                    || "use `all_to_all` or `all_to_one`".to_string(),
                                ),
                            ),
                    );
                    ConnectionType::AllToAll
                }
            };
            let what = format!(
                "the relationship `{}` of node `{name}` to `{}`",
                rel.ty.name, rel.target.name
            );
            let source_operations = self.operation_set(
                (SetOf::Source, &rel.ty.name),
                &resolved.source_interfaces,
                &rel.source_interfaces,
                eval,
                (
                    scope,
                    &Owner {
                        node: idx,
                        what: what.clone(),
                        section: "source_interfaces",
                        loc: rel.loc,
                    },
                ),
                diags,
            );
            let target_operations = self.operation_set(
                (SetOf::Target, &rel.ty.name),
                &resolved.target_interfaces,
                &rel.target_interfaces,
                eval,
                (
                    scope,
                    &Owner {
                        node: target,
                        what,
                        section: "target_interfaces",
                        loc: rel.loc,
                    },
                ),
                diags,
            );
            let hierarchy = resolved.hierarchy.clone();
            if hierarchy
                .iter()
                .any(|t| t == "cloudify.relationships.contained_in")
            {
                contained.push(rel.loc);
            }
            out.push(CompiledRelationship {
                loc: rel.loc,
                type_name: rel.ty.name.clone(),
                type_hierarchy: hierarchy,
                target,
                properties,
                source_operations,
                target_operations,
                connection,
            });
        }
        if contained.len() > 1 {
            let mut d = Diagnostic::new(
                contained[1],
                format!("node `{name}` has more than one relationship derived from contained_in"),
            )
            .with_help("a node can be contained in one node only; use connected_to for the others");
            d = d.with_related(contained[0], "first contained_in here");
            diags.push(d);
        }
        out
    }

    /// A relationship type's hierarchy, schema and interfaces, resolved once per type.
    fn relationship_type(&mut self, name: &str) -> Option<Rc<ResolvedRelationship>> {
        if let Some(r) = self.relationship_types.get(name) {
            return Some(r.clone());
        }
        let defs = &self.model.relationships;
        let c = chain(name, defs)?;
        let resolved = Rc::new(ResolvedRelationship {
            hierarchy: c.iter().map(|s| s.to_string()).collect(),
            properties: merged_properties(&c, defs, |r| &r.properties),
            source_interfaces: merged_interfaces(&c, defs, |r| &r.source_interfaces),
            target_interfaces: merged_interfaces(&c, defs, |r| &r.target_interfaces),
        });
        self.relationship_types
            .insert(name.to_string(), resolved.clone());
        Some(resolved)
    }

    fn counts(
        &mut self,
        spec: &ScalableSpec,
        loc: Loc,
        eval: &mut Evaluator,
        diags: &mut Diagnostics,
    ) -> Counts {
        let mut read = |node: &Option<Node>,
                        what: &str,
                        unbounded_ok: bool,
                        diags: &mut Diagnostics|
         -> Option<Option<u32>> {
            let node = node.as_ref()?;
            let value = eval.eval(node, Scope::Global, diags);
            match &value {
                Json::Number(n) if n.as_i64() == Some(-1) && unbounded_ok => Some(None),
                Json::String(s) if s == "UNBOUNDED" && unbounded_ok => Some(None),
                Json::Number(n) if n.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)) => {
                    n.as_u64().map(|v| Some(v as u32))
                }
                _ => {
                    diags.error(
                        node.loc,
                        format!(
                            "`{what}` must be a non-negative integer, found {}",
                            values::describe(&value)
                        ),
                    );
                    None
                }
            }
        };
        let default = read(&spec.default, "default_instances", false, diags).flatten();
        let min = read(&spec.min, "min_instances", false, diags).flatten();
        let max = read(&spec.max, "max_instances", true, diags);
        let counts = Counts {
            default: default.unwrap_or(1),
            min: min.unwrap_or(0),
            max: max.flatten(),
        };
        check_counts(counts, spec.default.as_ref().map_or(loc, |n| n.loc), diags);
        counts
    }

    fn policies(
        &mut self,
        eval: &mut Evaluator,
        diags: &mut Diagnostics,
    ) -> (IndexMap<String, ScalingPolicy>, IndexMap<String, Json>) {
        let mut scaling = IndexMap::default();
        let mut others = IndexMap::default();
        for (name, p) in &self.model.policies {
            for t in &p.targets {
                if !self.model.groups.contains_key(&t.name) {
                    diags.push(
                        Diagnostic::new(
                            t.loc,
                            format!("target `{}` of policy `{name}` is not a group", t.name),
                        )
                        .with_help_opt(did_you_mean(
                            &t.name,
                            self.model.groups.keys().map(String::as_str),
                        )),
                    );
                }
            }
            let props: IndexMap<String, Node> = p
                .properties
                .iter()
                .map(|(k, v)| (k.name.clone(), v.clone()))
                .collect();
            if p.ty.name == SCALING_POLICY {
                for (k, _) in &p.properties {
                    if ![
                        "default_instances",
                        "min_instances",
                        "max_instances",
                        "current_instances",
                        "planned_instances",
                    ]
                    .contains(&k.name.as_str())
                    {
                        diags.push(
                            Diagnostic::new(
                                k.loc,
                                format!("unknown property `{}` of a scaling policy", k.name),
                            )
                            .with_help_opt(did_you_mean(
                                &k.name,
                                ["default_instances", "min_instances", "max_instances"],
                            )),
                        );
                    }
                }
                let spec = ScalableSpec {
                    default: props.get("default_instances").cloned(),
                    min: props.get("min_instances").cloned(),
                    max: props.get("max_instances").cloned(),
                };
                let counts = self.counts(&spec, p.loc, eval, diags);
                scaling.insert(
                    name.clone(),
                    ScalingPolicy {
                        loc: p.loc,
                        targets: p.targets.iter().map(|t| (t.name.clone(), t.loc)).collect(),
                        counts,
                    },
                );
            } else if let Some(entry) = self.policy_entry(
                &format!("policy `{name}`"),
                p,
                p.targets.iter().map(|t| t.name.clone()).collect(),
                eval,
                diags,
            ) {
                others.insert(name.clone(), entry);
            }
        }
        for (group, g) in &self.model.groups {
            for (name, p) in &g.policies {
                let what = format!("policy `{}` of group `{group}`", name.name);
                if let Some(entry) = self.policy_entry(&what, p, vec![group.clone()], eval, diags) {
                    others.insert(format!("{group}/{}", name.name), entry);
                }
            }
        }
        (scaling, others)
    }

    /// A non-scaling policy for the policy engine, `{type, properties, targets, triggers,
    /// source}`, after checking it as Cloudify does: its type is built in (no import needed,
    /// see `policy::BUILTIN_TYPES`) or declared in `policy_types`; its properties are declared
    /// by the type (plus `dry_run`) and the required ones are given; its triggers' types and
    /// parameters are known. `None` when the type is unknown.
    fn policy_entry(
        &self,
        what: &str,
        p: &Policy,
        targets: Vec<String>,
        eval: &mut Evaluator,
        diags: &mut Diagnostics,
    ) -> Option<Json> {
        let builtin = crate::policy::builtin_type(&p.ty.name);
        let declared = self.model.policy_types.get(&p.ty.name).map(|(_, d)| d);
        // (name, required) of each declared property.
        let schema: Vec<(String, bool)> = match (builtin, declared) {
            (Some(b), _) => b
                .properties
                .iter()
                .map(|(n, d)| (n.to_string(), d.is_none()))
                .collect(),
            (None, Some(d)) => d
                .get("properties")
                .and_then(Json::as_object)
                .map(|props| {
                    props
                        .iter()
                        .map(|(n, s)| (n.clone(), s.get("default").is_none()))
                        .collect()
                })
                .unwrap_or_default(),
            (None, None) => {
                let candidates = std::iter::once(SCALING_POLICY)
                    .chain(crate::policy::BUILTIN_TYPES.iter().map(|t| t.name))
                    .chain(self.model.policy_types.keys().map(String::as_str));
                diags.push(
                    Diagnostic::new(
                        p.ty.loc,
                        format!("{what} has the unknown type `{}`", p.ty.name),
                    )
                    .with_help(did_you_mean(&p.ty.name, candidates).unwrap_or_else(|| {
                        format!(
                            "use `{SCALING_POLICY}`, a built-in policy type ({}) or a type declared in policy_types",
                            crate::policy::BUILTIN_TYPES
                                .iter()
                                .map(|t| format!("`{}`", t.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })),
                );
                return None;
            }
        };
        let names = || {
            schema
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(std::iter::once("dry_run"))
        };
        for (k, _) in &p.properties {
            if !names().any(|n| n == k.name) {
                diags.push(
                    Diagnostic::new(
                        k.loc,
                        format!(
                            "{what} has the property `{}`, which its type `{}` does not declare",
                            k.name, p.ty.name
                        ),
                    )
                    .with_help_opt(did_you_mean(&k.name, names())),
                );
            }
        }
        for (n, required) in &schema {
            if *required && !p.properties.iter().any(|(k, _)| &k.name == n) {
                diags.push(Diagnostic::new(
                    p.loc,
                    format!("{what} is missing the required property `{n}`"),
                ));
            }
        }
        let properties: Map<String, Json> = p
            .properties
            .iter()
            .map(|(k, v)| (k.name.clone(), eval.eval(v, Scope::Global, diags)))
            .collect();
        let mut triggers = Map::new();
        for t in &p.triggers {
            let twhat = format!("trigger `{}` of {what}", t.name.name);
            let params: Vec<String> = if t.ty.name == crate::policy::trigger::EXECUTE_WORKFLOW {
                crate::policy::trigger::PARAMETERS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else if let Some((_, def)) = self.model.policy_triggers.get(&t.ty.name) {
                def.get("parameters")
                    .and_then(Json::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default()
            } else {
                let candidates = std::iter::once(crate::policy::trigger::EXECUTE_WORKFLOW)
                    .chain(self.model.policy_triggers.keys().map(String::as_str));
                diags.push(
                    Diagnostic::new(
                        t.ty.loc,
                        format!("{twhat} has the unknown type `{}`", t.ty.name),
                    )
                    .with_help(
                        did_you_mean(&t.ty.name, candidates).unwrap_or_else(|| {
                            format!("use `{}`", crate::policy::trigger::EXECUTE_WORKFLOW)
                        }),
                    ),
                );
                continue;
            };
            if let Value::Map(entries) = &t.parameters.value {
                for (k, _) in entries {
                    if !params.contains(&k.name) {
                        diags.push(
                            Diagnostic::new(
                                k.loc,
                                format!("{twhat} has the parameter `{}`, which its type does not declare", k.name),
                            )
                            .with_help_opt(did_you_mean(&k.name, params.iter().map(String::as_str))),
                        );
                    }
                }
                if t.ty.name == crate::policy::trigger::EXECUTE_WORKFLOW
                    && !entries.iter().any(|(k, _)| k.name == "workflow")
                {
                    diags.push(Diagnostic::new(
                        t.name.loc,
                        format!("{twhat} is missing the required parameter `workflow`"),
                    ));
                }
            }
            triggers.insert(
                t.name.name.clone(),
                serde_json::json!({"type": t.ty.name, "parameters": t.parameters.to_json()}),
            );
        }
        let mut entry = serde_json::json!({
            "type": p.ty.name,
            "properties": properties,
            "targets": targets,
        });
        if !triggers.is_empty() {
            entry["triggers"] = Json::Object(triggers);
        }
        if builtin.is_none()
            && let Some(source) = declared.and_then(|d| d.get("source"))
        {
            entry["source"] = source.clone();
        }
        Some(entry)
    }

    fn workflows(&mut self, diags: &mut Diagnostics) -> IndexMap<String, CompiledWorkflow> {
        let mut out = IndexMap::default();
        for (name, w) in &self.model.workflows {
            let text = w.mapping.name.as_str();
            let (plugin, operation) = match text.split_once('.') {
                Some((p, op)) if self.model.plugins.contains_key(p) && !op.is_empty() => {
                    (p.to_string(), op.to_string())
                }
                _ if self.root_dir.join(text).is_file() => ("script".to_string(), text.to_string()),
                _ => {
                    let prefix = text.split('.').next().unwrap_or(text);
                    diags.push(
                        Diagnostic::new(w.mapping.loc, format!("workflow `{name}` maps to `{text}`, but no plugin `{prefix}` is declared and no such file exists"))
                            .with_help_opt(did_you_mean(prefix, self.model.plugins.keys().map(String::as_str))),
                    );
                    continue;
                }
            };
            let parameters = w
                .parameters
                .iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        Parameter {
                            ty: s.ty.as_ref().map(|t| t.name.clone()),
                            default: s.default.as_ref().map(Node::to_json),
                            description: s.description.clone(),
                            required: s.required && s.default.is_none(),
                            data_based: data_based::Typed::of(s),
                        },
                    )
                })
                .collect();
            out.insert(
                name.clone(),
                CompiledWorkflow {
                    plugin,
                    operation,
                    parameters,
                },
            );
        }
        out
    }
}

/// A `cloudify.*` name that is not defined: the built-in types were most likely not imported.
fn builtin_types_hint(name: &str) -> Option<String> {
    name.starts_with("cloudify.").then(|| {
        "the built-in types are not imported: add `imports: [cloudify/types/types.yaml]`"
            .to_string()
    })
}

/// min ≤ default ≤ max, with a message that shows the numbers.
pub fn check_counts(c: Counts, loc: Loc, diags: &mut Diagnostics) {
    if c.default < c.min {
        diags.error(
            loc,
            format!(
                "default_instances {} is below min_instances {}",
                c.default, c.min
            ),
        );
    }
    if let Some(max) = c.max {
        if c.default > max {
            diags.error(
                loc,
                format!(
                    "default_instances {} is above max_instances {max}",
                    c.default
                ),
            );
        }
        if c.min > max {
            diags.error(
                loc,
                format!("min_instances {} is above max_instances {max}", c.min),
            );
        }
    }
}

/// Whether an input default of a type's operations calls a function: its value may then
/// depend on the template (`get_property: [SELF, …]`).
fn defaults_call_functions(from_type: &Interfaces) -> bool {
    from_type
        .values()
        .flat_map(|ops| ops.values())
        .flat_map(|op| &op.inputs)
        .filter_map(|(_, schema)| input_default(schema))
        .any(super::functions::calls_function)
}

/// The default of an operation input declared in a type: `{type, default, …}` or a bare value.
/// `{}` declares an input without a default, as in Cloudify.
fn input_default(schema: &Node) -> Option<&Node> {
    match &schema.value {
        Value::Map(entries)
            if entries.iter().all(|(k, _)| {
                [
                    "type",
                    "default",
                    "description",
                    "required",
                    "constraints",
                    "item_type",
                    "display_label",
                    "hidden",
                ]
                .contains(&k.name.as_str())
            }) =>
        {
            schema.get("default")
        }
        _ => Some(schema),
    }
}

/// A template's operation laid over the type's: same or no implementation keeps the type's
/// implementation (inputs are laid over in `operations`), and the executor, retries and timeouts
/// come from the template when set, else from the type; another implementation takes only the
/// template's (Cloudify's rule).
fn merge_operation(t: &OperationDef, m: &OperationDef) -> OperationDef {
    let same = m.implementation.is_none()
        || m.implementation.as_ref().map(|i| &i.name) == t.implementation.as_ref().map(|i| &i.name);
    OperationDef {
        loc: m.loc,
        implementation: if same {
            t.implementation.clone()
        } else {
            m.implementation.clone()
        },
        inputs: m.inputs.clone(),
        executor: m
            .executor
            .clone()
            .or_else(|| t.executor.clone().filter(|_| same)),
        max_retries: m.max_retries.or(t.max_retries.filter(|_| same)),
        retry_interval: m.retry_interval.or(t.retry_interval.filter(|_| same)),
        timeout: m.timeout.or(t.timeout.filter(|_| same)),
        timeout_recoverable: m
            .timeout_recoverable
            .or(t.timeout_recoverable.filter(|_| same)),
    }
}

/// Cloudify's no-op operation: `{}`, `''` or a mapping that sets nothing.
fn is_no_op(op: &OperationDef) -> bool {
    op.implementation.is_none()
        && op.inputs.is_empty()
        && op.executor.is_none()
        && op.max_retries.is_none()
        && op.retry_interval.is_none()
        && op.timeout.is_none()
        && op.timeout_recoverable.is_none()
}
