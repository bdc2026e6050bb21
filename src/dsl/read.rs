//! Read: YAML documents → one merged [`Model`].
//!
//! Walks every document's sections, checks that each mapping has only the keys the DSL allows
//! (unknown keys get a "did you mean"; keys newer than the blueprint's version name the version
//! that introduced them), applies `ns--` namespaces, and merges the documents by Cloudify's rules:
//! types, relationships, data types, plugins, policy types/triggers and groups must be unique
//! (a conflict names both places), workflows and description are first-wins, and inputs,
//! outputs, node templates and capabilities may come from several files (1_3+).
//! It does not resolve references; `types` and `compile` do.

use crate::maps::IndexMap;
use indexmap::map::Entry;

use super::model::*;
use super::version::DslVersion;
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::Document;
use crate::load::source::Loc;
use crate::load::yaml::{Key, Node, Value};

use DslVersion::*;

/// Top-level keys and the version that introduced each.
const TOP_LEVEL: &[(&str, DslVersion)] = &[
    ("tosca_definitions_version", V1_0),
    ("imports", V1_0),
    ("inputs", V1_0),
    ("plugins", V1_0),
    ("node_types", V1_0),
    ("relationships", V1_0),
    ("node_templates", V1_0),
    ("workflows", V1_0),
    ("outputs", V1_0),
    ("groups", V1_0),
    ("policy_types", V1_0),
    ("policy_triggers", V1_0),
    ("description", V1_2),
    ("dsl_definitions", V1_2),
    ("data_types", V1_2),
    ("policies", V1_3),
    ("capabilities", V1_3),
    ("metadata", V1_3),
    ("labels", V1_3),
    ("blueprint_labels", V1_3),
    ("deployment_settings", V1_3),
    ("resource_tags", V1_3),
];

/// Keys of a property definition in a node, relationship or data type (Cloudify allows no
/// constraints or item_type there).
const PROPERTY_KEYS: &[(&str, DslVersion)] = &[
    ("type", V1_0),
    ("default", V1_0),
    ("description", V1_0),
    ("required", V1_2),
];

/// Keys of an input or workflow parameter definition.
const INPUT_KEYS: &[(&str, DslVersion)] = &[
    ("type", V1_0),
    ("default", V1_0),
    ("description", V1_0),
    ("required", V1_2),
    ("constraints", V1_3),
    ("item_type", V1_4),
    ("display_label", V1_3),
    ("hidden", V1_3),
    ("display", V1_3),
];

const OPERATION_KEYS: &[(&str, DslVersion)] = &[
    ("implementation", V1_0),
    ("inputs", V1_0),
    ("executor", V1_0),
    ("max_retries", V1_1),
    ("retry_interval", V1_1),
    ("timeout", V1_1),
    ("timeout_recoverable", V1_1),
];

/// Reads documents into a model. One per blueprint.
pub struct Reader<'d> {
    diags: &'d mut Diagnostics,
    version: DslVersion,
    model: Model,
    /// First-wins sections remember where their value came from.
    description_set: bool,
}

/// Per-document context: its namespace and whether version gating applies.
struct Doc<'a> {
    namespace: Option<&'a str>,
    /// The plugin directory the document was read from, and its import's properties.
    plugin: Option<&'a crate::load::PluginDir>,
    import_properties: Option<&'a Node>,
    /// Built-in type files are ours and exempt from the user's version gate.
    builtin: bool,
    is_main: bool,
}

impl Doc<'_> {
    /// Apply the document's namespace to a name it defines or references.
    fn ns(&self, name: &str) -> String {
        match self.namespace {
            Some(ns) if !name.starts_with("cloudify.") => format!("{ns}--{name}"),
            _ => name.to_string(),
        }
    }

    fn ns_name(&self, name: &Name) -> Name {
        Key {
            name: self.ns(&name.name),
            loc: name.loc,
        }
    }
}

/// Read the version from the main document; a missing or unknown one is an error.
pub fn main_version(doc: &Document, diags: &mut Diagnostics) -> DslVersion {
    match doc.root.get("tosca_definitions_version") {
        None => {
            diags.push(
                Diagnostic::new(doc.root.loc, "missing `tosca_definitions_version`")
                    .with_help("add `tosca_definitions_version: cloudify_dsl_1_3` at the top"),
            );
            V1_3
        }
        Some(v) => match v.as_str().and_then(DslVersion::parse) {
            Some(version) => version,
            None => {
                let text = v.as_str().unwrap_or("");
                diags.push(
                    Diagnostic::new(v.loc, format!("unknown DSL version `{}`", scalar_text(v)))
                        .with_help(
                            did_you_mean(text, DslVersion::ALL.iter().map(|v| v.as_str()))
                                .unwrap_or_else(|| {
                                    "supported: cloudify_dsl_1_0 … cloudify_dsl_1_5".to_string()
                                }),
                        ),
                );
                V1_3
            }
        },
    }
}

impl<'d> Reader<'d> {
    pub fn new(version: DslVersion, diags: &'d mut Diagnostics) -> Self {
        Reader {
            diags,
            version,
            description_set: false,
            model: Model {
                version,
                description: None,
                inputs: IndexMap::default(),
                data_types: IndexMap::default(),
                plugins: IndexMap::default(),
                node_types: IndexMap::default(),
                relationships: IndexMap::default(),
                node_templates: IndexMap::default(),
                groups: IndexMap::default(),
                policies: IndexMap::default(),
                policy_types: IndexMap::default(),
                policy_triggers: IndexMap::default(),
                workflows: IndexMap::default(),
                outputs: IndexMap::default(),
                capabilities: IndexMap::default(),
                labels: serde_json::Map::new(),
            },
        }
    }

    pub fn finish(self) -> Model {
        self.model
    }

    pub fn read(&mut self, document: &Document, builtin: bool) {
        let doc = Doc {
            namespace: document.namespace.as_deref(),
            plugin: document.plugin.as_ref(),
            import_properties: document.import_properties.as_ref(),
            builtin,
            is_main: document.is_main,
        };
        let root = &document.root;
        let entries = match &root.value {
            Value::Map(m) => m.as_slice(),
            Value::Null => &[],
            other => {
                self.diags.error(
                    root.loc,
                    format!(
                        "a blueprint must be a mapping, found a {}",
                        other.kind_name()
                    ),
                );
                return;
            }
        };
        self.check_keys(entries, TOP_LEVEL, "the blueprint", &doc);
        if let Some(props) = doc.import_properties
            && self.version < V1_5
        {
            self.diags.push(
                Diagnostic::new(
                    props.loc,
                    format!(
                        "properties on an import are not supported in {}: they were added in {V1_5}",
                        self.version
                    ),
                )
                .with_help("use `tosca_definitions_version: cloudify_dsl_1_5`, or import the plugin without properties"),
            );
        }
        if !doc.builtin
            && !doc.is_main
            && let Some(v) = root.get("tosca_definitions_version")
            && let Some(imported) = v.as_str().and_then(DslVersion::parse)
            && imported > self.version
        {
            self.diags.error(
                v.loc,
                format!(
                    "this imported file declares {imported}, newer than the main blueprint's {}",
                    self.version
                ),
            );
        }
        for (key, value) in entries {
            match key.name.as_str() {
                "description" if !self.description_set => {
                    self.description_set = true;
                    self.model.description = value.as_str().map(str::to_string);
                }
                "inputs" => {
                    for (name, n) in self.entries(value, "inputs") {
                        let schema = self.property_schema(n, &doc, "input");
                        put_multi(
                            self.diags,
                            self.version,
                            "input",
                            &mut self.model.inputs,
                            name,
                            schema,
                            &doc,
                        );
                    }
                }
                "data_types" => self.data_types(value, &doc),
                "plugins" => self.plugins(value, &doc),
                "node_types" => self.node_types(value, &doc),
                "relationships" => self.relationship_types(value, &doc),
                "node_templates" => self.node_templates(value, &doc),
                "groups" => self.groups(value, &doc),
                "policies" => self.policies(value, &doc),
                "policy_types" | "policy_triggers" => self.policy_defs(key, value, &doc),
                "workflows" => self.workflows(value, &doc),
                "outputs" | "capabilities" => self.outputs(key, value, &doc),
                "labels" | "blueprint_labels" => {
                    if let serde_json::Value::Object(m) = value.to_json() {
                        self.model.labels.extend(m);
                    }
                }
                _ => {}
            }
        }
    }

    // ----- sections -------------------------------------------------------------------------

    fn data_types(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "data_types") {
            let e = self.fields(
                n,
                &[
                    ("derived_from", V1_0),
                    ("properties", V1_0),
                    ("description", V1_0),
                    ("version", V1_0),
                ],
                "a data type",
                doc,
            );
            let dt = DataType {
                loc: name.loc,
                derived_from: e.get("derived_from").and_then(|d| self.name(d, doc)),
                properties: self.schemas(e.get("properties"), doc, "property"),
            };
            let key = doc.ns_name(name);
            put_unique(
                self.diags,
                "data type",
                &mut self.model.data_types,
                &key,
                dt,
                |d| d.loc,
            );
        }
    }

    fn plugins(&mut self, section: &Node, doc: &Doc) {
        const KEYS: &[(&str, DslVersion)] = &[
            ("executor", V1_0),
            ("source", V1_0),
            ("install", V1_0),
            ("install_arguments", V1_0),
            ("package_name", V1_0),
            ("package_version", V1_0),
            ("supported_platform", V1_0),
            ("distribution", V1_0),
            ("distribution_version", V1_0),
            ("distribution_release", V1_0),
            ("properties", V1_0),
            ("properties_description", V1_0),
            ("blueprint_labels", V1_0),
            ("labels", V1_0),
            ("resource_tags", V1_0),
        ];
        for (name, n) in self.entries(section, "plugins") {
            let e = self.fields(n, KEYS, "a plugin", doc);
            if let Some(ex) = e.get("executor").and_then(Node::as_str)
                && ex != "central_deployment_agent"
                && ex != "host_agent"
            {
                let loc = e.get("executor").map_or(n.loc, |x| x.loc);
                self.diags.push(
                    Diagnostic::new(loc, format!("unknown plugin executor `{ex}`"))
                        .with_help("use `central_deployment_agent` or `host_agent`"),
                );
            }
            let def = PluginDef {
                loc: name.loc,
                executor: e.str("executor"),
                source: e.str("source"),
                package_name: e.str("package_name"),
                raw: n.to_json(),
                dir: doc.plugin.cloned(),
                properties: self.plugin_properties(&name.name, e.get("properties"), doc),
            };
            match self.model.plugins.entry(name.name.clone()) {
                Entry::Occupied(o) if o.get().raw == def.raw => {}
                Entry::Occupied(o) => {
                    self.diags
                        .push(conflict("plugin", &name.name, name.loc, o.get().loc))
                }
                Entry::Vacant(v) => {
                    v.insert(def);
                }
            }
        }
    }

    /// A plugin's properties: what its dict-form import gives, checked as Cloudify checks them
    /// (declared, and of the declared type: string, integer, float, boolean or list, or an
    /// intrinsic function), else the declared `value`.
    fn plugin_properties(
        &mut self,
        plugin: &str,
        declared: Option<&Node>,
        doc: &Doc,
    ) -> IndexMap<String, Node> {
        let declared = declared.and_then(Node::as_map).unwrap_or(&[]);
        let given = doc.import_properties;
        let given_entries = given.and_then(Node::as_map).unwrap_or(&[]);
        if let Some(g) = given
            && g.as_map().is_none()
            && !matches!(g.value, Value::Null)
        {
            self.diags.error(
                g.loc,
                format!(
                    "the properties of an import must be a mapping, found a {}",
                    g.value.kind_name()
                ),
            );
        }
        let mut out = IndexMap::default();
        for (key, schema) in declared {
            let ty = schema.get("type").and_then(Node::as_str);
            let value = given_entries.iter().find(|(k, _)| k.name == key.name);
            match value {
                Some((k, v)) => {
                    let is_function = v.as_map().is_some_and(|m| {
                        m.len() == 1 && (m[0].0.name.starts_with("get_") || m[0].0.name == "concat")
                    });
                    let fits = match (ty, &v.value) {
                        (_, _) if is_function => true,
                        (Some("string"), Value::Str(_) | Value::Int(_) | Value::Bool(_)) => true,
                        (Some("integer"), Value::Int(_) | Value::Bool(_)) => true,
                        (Some("float"), Value::Int(_) | Value::Float(_) | Value::Bool(_)) => true,
                        (Some("boolean"), Value::Bool(_)) => true,
                        (Some("list"), Value::Seq(_)) => true,
                        _ => false,
                    };
                    if fits {
                        out.insert(key.name.clone(), v.clone());
                    } else {
                        let d = match ty {
                            Some(t @ ("string" | "integer" | "float" | "boolean" | "list")) => {
                                Diagnostic::new(
                                    v.loc,
                                    format!(
                                        "property `{}` of plugin `{plugin}` must be of type {t}, found a {}",
                                        k.name,
                                        v.value.kind_name()
                                    ),
                                )
                            }
                            _ => Diagnostic::new(
                                k.loc,
                                format!(
                                    "property `{}` of plugin `{plugin}` cannot be given on an import: its type is {}",
                                    k.name,
                                    ty.map_or("not declared".to_string(), |t| format!("`{t}`"))
                                ),
                            )
                            .with_help("properties given on an import must be strings, integers, floats, booleans or lists"),
                        };
                        self.diags.push(d);
                    }
                }
                None => {
                    // Cloudify's plugin properties carry their default as `value`.
                    if let Some(default) = schema.get("value") {
                        out.insert(key.name.clone(), default.clone());
                    }
                }
            }
        }
        // Cloudify checks for properties the plugin does not declare only when it declares some.
        if !declared.is_empty() {
            for (k, _) in given_entries {
                if !declared.iter().any(|(d, _)| d.name == k.name) {
                    self.diags.push(
                        Diagnostic::new(
                            k.loc,
                            format!("plugin `{plugin}` has no property `{}`", k.name),
                        )
                        .with_help_opt(did_you_mean(
                            &k.name,
                            declared.iter().map(|(d, _)| d.name.as_str()),
                        )),
                    );
                }
            }
        }
        out
    }

    fn node_types(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "node_types") {
            let e = self.fields(
                n,
                &[
                    ("derived_from", V1_0),
                    ("properties", V1_0),
                    ("interfaces", V1_0),
                    ("description", V1_2),
                    ("runtime_properties", V1_5),
                    ("metadata", V1_3),
                ],
                "a node type",
                doc,
            );
            let t = NodeType {
                loc: name.loc,
                derived_from: e.get("derived_from").and_then(|d| self.name(d, doc)),
                properties: self.schemas(e.get("properties"), doc, "property"),
                interfaces: self.interfaces(e.get("interfaces"), doc),
            };
            let key = doc.ns_name(name);
            put_unique(
                self.diags,
                "node type",
                &mut self.model.node_types,
                &key,
                t,
                |t| t.loc,
            );
        }
    }

    fn relationship_types(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "relationships") {
            let e = self.fields(
                n,
                &[
                    ("derived_from", V1_0),
                    ("properties", V1_0),
                    ("source_interfaces", V1_0),
                    ("target_interfaces", V1_0),
                    ("description", V1_2),
                ],
                "a relationship type",
                doc,
            );
            let t = RelationshipType {
                loc: name.loc,
                derived_from: e.get("derived_from").and_then(|d| self.name(d, doc)),
                properties: self.schemas(e.get("properties"), doc, "property"),
                source_interfaces: self.interfaces(e.get("source_interfaces"), doc),
                target_interfaces: self.interfaces(e.get("target_interfaces"), doc),
            };
            let key = doc.ns_name(name);
            put_unique(
                self.diags,
                "relationship type",
                &mut self.model.relationships,
                &key,
                t,
                |t| t.loc,
            );
        }
    }

    fn node_templates(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "node_templates") {
            let e = self.fields(
                n,
                &[
                    ("type", V1_0),
                    ("properties", V1_0),
                    ("interfaces", V1_0),
                    ("relationships", V1_0),
                    ("instances", V1_0),
                    ("capabilities", V1_3),
                    ("description", V1_2),
                ],
                "a node template",
                doc,
            );
            let Some(ty) = e
                .required(
                    "type",
                    n.loc,
                    &format!("node template `{}`", name.name),
                    self.diags,
                )
                .and_then(|t| self.name(t, doc))
            else {
                continue;
            };
            let relationships = match e.get("relationships") {
                None => Vec::new(),
                Some(r) => self
                    .seq(r, "relationships")
                    .iter()
                    .filter_map(|r| self.relationship_template(r, doc))
                    .collect(),
            };
            let template = NodeTemplate {
                loc: name.loc,
                ty,
                properties: namespaced_values(
                    self.entries(e.get("properties").unwrap_or(&NULL), "properties"),
                    doc,
                ),
                interfaces: self.interfaces(e.get("interfaces"), doc),
                relationships,
                scalable: self.scalable(e.get("instances"), e.get("capabilities"), doc),
            };
            put_multi(
                self.diags,
                self.version,
                "node template",
                &mut self.model.node_templates,
                name,
                template,
                doc,
            );
        }
    }

    fn relationship_template(&mut self, n: &Node, doc: &Doc) -> Option<RelationshipTemplate> {
        let e = self.fields(
            n,
            &[
                ("type", V1_0),
                ("target", V1_0),
                ("properties", V1_0),
                ("source_interfaces", V1_0),
                ("target_interfaces", V1_0),
            ],
            "a relationship",
            doc,
        );
        let ty = e
            .required("type", n.loc, "a relationship", self.diags)
            .and_then(|t| self.name(t, doc));
        let target = e
            .required("target", n.loc, "a relationship", self.diags)
            .and_then(|t| self.name(t, doc));
        Some(RelationshipTemplate {
            loc: n.loc,
            ty: ty?,
            target: target?,
            properties: namespaced_values(
                self.entries(e.get("properties").unwrap_or(&NULL), "properties"),
                doc,
            ),
            source_interfaces: self.interfaces(e.get("source_interfaces"), doc),
            target_interfaces: self.interfaces(e.get("target_interfaces"), doc),
        })
    }

    fn scalable(
        &mut self,
        instances: Option<&Node>,
        capabilities: Option<&Node>,
        doc: &Doc,
    ) -> ScalableSpec {
        let mut spec = ScalableSpec::default();
        if let Some(inst) = instances {
            let e = self.fields(inst, &[("deploy", V1_0)], "`instances`", doc);
            spec.default = e.get("deploy").cloned();
        }
        if let Some(caps) = capabilities {
            let e = self.fields(caps, &[("scalable", V1_3)], "`capabilities`", doc);
            if let Some(scalable) = e.get("scalable") {
                let s = self.fields(
                    scalable,
                    &[("properties", V1_3)],
                    "`capabilities.scalable`",
                    doc,
                );
                if let Some(props) = s.get("properties") {
                    let p = self.fields(
                        props,
                        &[
                            ("default_instances", V1_3),
                            ("min_instances", V1_3),
                            ("max_instances", V1_3),
                            ("current_instances", V1_3),
                            ("planned_instances", V1_3),
                        ],
                        "scalable properties",
                        doc,
                    );
                    if let (Some(d), Some(inst)) = (p.get("default_instances"), instances) {
                        self.diags.push(
                            Diagnostic::new(d.loc, "`instances.deploy` and `capabilities.scalable` both set the number of instances")
                                .with_related(inst.loc, "`instances` is set here")
                                .with_help("keep only `capabilities.scalable.properties.default_instances`"),
                        );
                    }
                    if p.get("default_instances").is_some() {
                        spec.default = p.get("default_instances").cloned();
                    }
                    spec.min = p.get("min_instances").cloned();
                    spec.max = p.get("max_instances").cloned();
                }
            }
        }
        spec
    }

    fn groups(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "groups") {
            let e = self.fields(n, &[("members", V1_0), ("policies", V1_0)], "a group", doc);
            let members = match e.required(
                "members",
                n.loc,
                &format!("group `{}`", name.name),
                self.diags,
            ) {
                Some(m) => self
                    .seq(m, "members")
                    .iter()
                    .filter_map(|m| self.name(m, doc))
                    .collect(),
                None => Vec::new(),
            };
            let policies = match e.get("policies") {
                Some(ps) => self.group_policies(ps, &name.name, doc),
                None => Vec::new(),
            };
            let g = Group {
                loc: name.loc,
                members,
                policies,
            };
            let key = doc.ns_name(name);
            put_unique(self.diags, "group", &mut self.model.groups, &key, g, |g| {
                g.loc
            });
        }
    }

    /// Cloudify's group policies: `{P: {type, properties, triggers: {T: {type, parameters}}}}`.
    fn group_policies(&mut self, section: &Node, group: &str, doc: &Doc) -> Vec<(Key, Policy)> {
        let mut out = Vec::new();
        for (name, n) in self.entries(section, "policies") {
            let e = self.fields(
                n,
                &[("type", V1_0), ("properties", V1_0), ("triggers", V1_0)],
                "a group policy",
                doc,
            );
            let what = format!("policy `{}` of group `{group}`", name.name);
            let Some(ty) = e
                .required("type", n.loc, &what, self.diags)
                .and_then(|t| self.name(t, doc))
            else {
                continue;
            };
            let mut triggers = Vec::new();
            for (tname, t) in self.entries(e.get("triggers").unwrap_or(&NULL), "triggers") {
                let te = self.fields(t, &[("type", V1_0), ("parameters", V1_0)], "a trigger", doc);
                let twhat = format!("trigger `{}` of {what}", tname.name);
                let Some(tty) = te
                    .required("type", t.loc, &twhat, self.diags)
                    .and_then(|x| self.name(x, doc))
                else {
                    continue;
                };
                triggers.push(TriggerDef {
                    name: tname.clone(),
                    ty: tty,
                    parameters: te
                        .get("parameters")
                        .cloned()
                        .unwrap_or_else(|| NULL.clone()),
                });
            }
            out.push((
                name.clone(),
                Policy {
                    loc: name.loc,
                    ty,
                    properties: self
                        .entries(e.get("properties").unwrap_or(&NULL), "properties")
                        .to_vec(),
                    targets: Vec::new(),
                    triggers,
                },
            ));
        }
        out
    }

    fn policies(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "policies") {
            let e = self.fields(
                n,
                &[("type", V1_3), ("properties", V1_3), ("targets", V1_3)],
                "a policy",
                doc,
            );
            let what = format!("policy `{}`", name.name);
            let Some(ty) = e
                .required("type", n.loc, &what, self.diags)
                .and_then(|t| self.name(t, doc))
            else {
                continue;
            };
            let targets = match e.required("targets", n.loc, &what, self.diags) {
                Some(t) => self
                    .seq(t, "targets")
                    .iter()
                    .filter_map(|t| self.name(t, doc))
                    .collect(),
                None => Vec::new(),
            };
            let p = Policy {
                loc: name.loc,
                ty,
                properties: self
                    .entries(e.get("properties").unwrap_or(&NULL), "properties")
                    .to_vec(),
                targets,
                triggers: Vec::new(),
            };
            let key = doc.ns_name(name);
            put_unique(
                self.diags,
                "policy",
                &mut self.model.policies,
                &key,
                p,
                |p| p.loc,
            );
        }
    }

    fn policy_defs(&mut self, section_key: &Key, section: &Node, doc: &Doc) {
        let (what, map) = if section_key.name == "policy_types" {
            ("policy type", &mut self.model.policy_types)
        } else {
            ("policy trigger", &mut self.model.policy_triggers)
        };
        let entries = match &section.value {
            Value::Map(m) => m.clone(),
            _ => Vec::new(),
        };
        for (name, n) in &entries {
            let key = doc.ns_name(name);
            put_unique(self.diags, what, map, &key, (name.loc, n.to_json()), |d| {
                d.0
            });
        }
    }

    fn workflows(&mut self, section: &Node, doc: &Doc) {
        for (name, n) in self.entries(section, "workflows") {
            let def = match &n.value {
                Value::Str(s) => WorkflowDef {
                    loc: name.loc,
                    mapping: Key {
                        name: s.clone(),
                        loc: n.loc,
                    },
                    parameters: IndexMap::default(),
                },
                _ => {
                    let e = self.fields(
                        n,
                        &[
                            ("mapping", V1_0),
                            ("parameters", V1_0),
                            ("is_cascading", V1_3),
                            ("availability_rules", V1_3),
                        ],
                        "a workflow",
                        doc,
                    );
                    let Some(mapping) = e
                        .required(
                            "mapping",
                            n.loc,
                            &format!("workflow `{}`", name.name),
                            self.diags,
                        )
                        .and_then(|m| self.name(m, doc_without_ns()))
                    else {
                        continue;
                    };
                    WorkflowDef {
                        loc: name.loc,
                        mapping,
                        parameters: self.schemas(e.get("parameters"), doc, "parameter"),
                    }
                }
            };
            // Workflows: the first definition wins (a blueprint overrides the built-in ones).
            self.model.workflows.entry(name.name.clone()).or_insert(def);
        }
    }

    fn outputs(&mut self, section_key: &Key, section: &Node, doc: &Doc) {
        let what = if section_key.name == "outputs" {
            "output"
        } else {
            "capability"
        };
        for (name, n) in self.entries(section, &section_key.name) {
            let e = self.fields(
                n,
                &[("value", V1_0), ("description", V1_0)],
                &format!("an {what}"),
                doc,
            );
            let Some(value) = e.required(
                "value",
                n.loc,
                &format!("{what} `{}`", name.name),
                self.diags,
            ) else {
                continue;
            };
            let def = OutputDef {
                loc: name.loc,
                value: namespace_functions(value.clone(), doc),
                description: e.str("description"),
            };
            let map = if what == "output" {
                &mut self.model.outputs
            } else {
                &mut self.model.capabilities
            };
            put_multi(self.diags, self.version, what, map, name, def, doc);
        }
    }

    // ----- pieces ---------------------------------------------------------------------------

    fn interfaces(&mut self, node: Option<&Node>, doc: &Doc) -> Interfaces {
        let mut out = Interfaces::default();
        let Some(node) = node else { return out };
        for (iface, ops) in self.entries(node, "interfaces") {
            let mut operations = IndexMap::default();
            for (op, def) in self.entries(ops, "an interface") {
                let operation = self.operation(def, doc);
                operations.insert(op.name.clone(), operation);
            }
            out.insert(iface.name.clone(), operations);
        }
        out
    }

    fn operation(&mut self, def: &Node, doc: &Doc) -> OperationDef {
        let mut op = OperationDef {
            loc: def.loc,
            implementation: None,
            inputs: Vec::new(),
            executor: None,
            max_retries: None,
            retry_interval: None,
            timeout: None,
            timeout_recoverable: None,
        };
        match &def.value {
            Value::Str(s) => {
                if !s.is_empty() {
                    op.implementation = Some(Key {
                        name: s.clone(),
                        loc: def.loc,
                    });
                }
            }
            Value::Null => {}
            Value::Map(_) => {
                let e = self.fields(def, OPERATION_KEYS, "an operation", doc);
                // `implementation: ~` is no implementation, as `''` is (Cloudify: a no-op).
                op.implementation = e
                    .get("implementation")
                    .filter(|i| !matches!(i.value, Value::Null))
                    .and_then(|i| self.name(i, doc_without_ns()))
                    .filter(|i| !i.name.is_empty());
                op.inputs = namespaced_values(
                    self.entries(e.get("inputs").unwrap_or(&NULL), "inputs"),
                    doc,
                );
                op.executor = e.str("executor");
                op.max_retries = e
                    .get("max_retries")
                    .and_then(|n| self.int(n, "max_retries"));
                op.retry_interval = e
                    .get("retry_interval")
                    .and_then(|n| self.number(n, "retry_interval"));
                op.timeout = e.get("timeout").and_then(|n| self.number(n, "timeout"));
                op.timeout_recoverable = e
                    .get("timeout_recoverable")
                    .and_then(|n| self.boolean(n, "timeout_recoverable"));
                if let Some(ex) = &op.executor
                    && ex != "central_deployment_agent"
                    && ex != "host_agent"
                {
                    let loc = e.get("executor").map_or(def.loc, |x| x.loc);
                    self.diags.push(
                        Diagnostic::new(loc, format!("unknown executor `{ex}`"))
                            .with_help("use `central_deployment_agent` or `host_agent`"),
                    );
                }
            }
            other => self.diags.error(
                def.loc,
                format!(
                    "an operation must be a string or a mapping, found a {}",
                    other.kind_name()
                ),
            ),
        }
        op
    }

    fn schemas(
        &mut self,
        node: Option<&Node>,
        doc: &Doc,
        what: &str,
    ) -> IndexMap<String, PropertySchema> {
        let mut out = IndexMap::default();
        let Some(node) = node else { return out };
        for (name, n) in self.entries(node, &format!("{what} definitions")) {
            let schema = self.property_schema(n, doc, what);
            out.insert(name.name.clone(), schema);
        }
        out
    }

    fn property_schema(&mut self, n: &Node, doc: &Doc, what: &str) -> PropertySchema {
        let keys = if what == "property" {
            PROPERTY_KEYS
        } else {
            INPUT_KEYS
        };
        let e = self.fields(n, keys, &format!("a {what} definition"), doc);
        let required = e
            .get("required")
            .and_then(|r| self.boolean(r, "required"))
            .unwrap_or(true);
        let constraints = match e.get("constraints") {
            Some(c) => super::constraints::read(c, self.diags),
            None => Vec::new(),
        };
        PropertySchema {
            loc: n.loc,
            ty: e
                .get("type")
                .and_then(|t| self.name(t, doc))
                .map(|t| builtin_type_name(t, doc)),
            item_type: e
                .get("item_type")
                .and_then(|t| self.name(t, doc))
                .map(|t| builtin_type_name(t, doc)),
            default: e
                .get("default")
                .map(|d| namespace_functions(d.clone(), doc)),
            required,
            description: e.str("description"),
            constraints,
        }
    }

    fn entries<'n>(&mut self, node: &'n Node, what: &str) -> &'n [(Key, Node)] {
        match &node.value {
            Value::Map(m) => m,
            Value::Null => &[],
            other => {
                self.diags.error(
                    node.loc,
                    format!("`{what}` must be a mapping, found a {}", other.kind_name()),
                );
                &[]
            }
        }
    }

    fn seq<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(s) => s,
            Value::Null => &[],
            other => {
                self.diags.error(
                    node.loc,
                    format!("`{what}` must be a list, found a {}", other.kind_name()),
                );
                &[]
            }
        }
    }

    fn fields<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[(&str, DslVersion)],
        what: &str,
        doc: &Doc,
    ) -> Fields<'n> {
        let entries = match &node.value {
            Value::Map(m) => m.as_slice(),
            Value::Null => &[],
            other => {
                self.diags.error(
                    node.loc,
                    format!("{what} must be a mapping, found a {}", other.kind_name()),
                );
                &[]
            }
        };
        self.check_keys(entries, allowed, what, doc);
        Fields { entries }
    }

    fn check_keys(
        &mut self,
        entries: &[(Key, Node)],
        allowed: &[(&str, DslVersion)],
        what: &str,
        doc: &Doc,
    ) {
        for (key, _) in entries {
            match allowed.iter().find(|(k, _)| *k == key.name) {
                None => self.diags.push(
                    Diagnostic::new(key.loc, format!("unknown key `{}` in {what}", key.name))
                        .with_help(
                            did_you_mean(&key.name, allowed.iter().map(|(k, _)| *k))
                                .unwrap_or_else(|| {
                                    format!(
                                        "allowed keys: {}",
                                        allowed
                                            .iter()
                                            .map(|(k, _)| *k)
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                }),
                        ),
                ),
                Some((_, since)) if !doc.builtin && *since > self.version => self.diags.push(
                    Diagnostic::new(
                        key.loc,
                        format!(
                            "`{}` in {what} requires {since} or later; this blueprint is {}",
                            key.name, self.version
                        ),
                    )
                    .with_help(format!("declare `tosca_definitions_version: {since}`")),
                ),
                Some(_) => {}
            }
        }
    }

    fn name(&mut self, node: &Node, doc: &Doc) -> Option<Name> {
        match node.as_str() {
            Some(s) => Some(doc.ns_name(&Key {
                name: s.to_string(),
                loc: node.loc,
            })),
            None => {
                self.diags.error(
                    node.loc,
                    format!("expected a name, found a {}", node.value.kind_name()),
                );
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str) -> Option<i64> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                self.diags.error(
                    node.loc,
                    format!(
                        "`{what}` must be an integer, found a {}",
                        node.value.kind_name()
                    ),
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        match node.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => {
                self.diags.error(
                    node.loc,
                    format!(
                        "`{what}` must be a number, found a {}",
                        node.value.kind_name()
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.diags.error(
                    node.loc,
                    format!(
                        "`{what}` must be true or false, found a {}",
                        node.value.kind_name()
                    ),
                );
                None
            }
        }
    }
}

static NULL: Node = Node {
    value: Value::Null,
    loc: Loc {
        file: crate::load::source::FileId(0),
        line: 0,
        col: 0,
        offset: 0,
        len: 0,
    },
};

/// A document context with no namespace, for names that are never namespaced (mappings).
fn doc_without_ns() -> &'static Doc<'static> {
    static PLAIN: Doc<'static> = Doc {
        namespace: None,
        plugin: None,
        import_properties: None,
        builtin: true,
        is_main: false,
    };
    &PLAIN
}

/// Property types that are DSL built-ins are never namespaced.
fn builtin_type_name(mut name: Name, doc: &Doc) -> Name {
    if let Some(ns) = doc.namespace {
        let prefix = format!("{ns}--");
        if let Some(plain) = name.name.strip_prefix(&prefix)
            && super::values::is_builtin_type(plain)
        {
            name.name = plain.to_string();
        }
    }
    name
}

/// The mapping entries of a checked mapping.
struct Fields<'n> {
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Node::as_str).map(str::to_string)
    }

    fn required(
        &self,
        key: &str,
        loc: Loc,
        what: &str,
        diags: &mut Diagnostics,
    ) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            diags.error(loc, format!("{what} is missing the required key `{key}`"));
        }
        found
    }
}

/// Put into a section that may be spread over several files (1_3+); a duplicate conflicts.
fn put_multi<T: HasLoc>(
    diags: &mut Diagnostics,
    version: DslVersion,
    what: &str,
    map: &mut IndexMap<String, T>,
    name: &Key,
    value: T,
    doc: &Doc,
) {
    if !doc.is_main && !doc.builtin && version < V1_3 {
        diags.push(Diagnostic::new(
            name.loc,
            format!("{what}s in imported files require cloudify_dsl_1_3 or later (this blueprint is {version})"),
        ));
    }
    put_unique(diags, what, map, &doc.ns_name(name), value, HasLoc::loc);
}

trait HasLoc {
    fn loc(&self) -> Loc;
}
impl HasLoc for PropertySchema {
    fn loc(&self) -> Loc {
        self.loc
    }
}
impl HasLoc for NodeTemplate {
    fn loc(&self) -> Loc {
        self.loc
    }
}
impl HasLoc for OutputDef {
    fn loc(&self) -> Loc {
        self.loc
    }
}

fn put_unique<T>(
    diags: &mut Diagnostics,
    what: &str,
    map: &mut IndexMap<String, T>,
    name: &Key,
    value: T,
    loc: fn(&T) -> Loc,
) {
    match map.entry(name.name.clone()) {
        // Cloudify lets any file redefine a `cloudify.` name (its own types are overridable):
        // the definition read last wins, as in Cloudify's merge.
        Entry::Occupied(mut o) if name.name.starts_with("cloudify.") => {
            o.insert(value);
        }
        Entry::Occupied(o) => diags.push(conflict(what, &name.name, name.loc, loc(o.get()))),
        Entry::Vacant(v) => {
            v.insert(value);
        }
    }
}

fn conflict(what: &str, name: &str, loc: Loc, first: Loc) -> Diagnostic {
    Diagnostic::new(loc, format!("{what} `{name}` is defined twice"))
        .with_related(first, "first defined here")
        .with_help(format!(
            "rename one of them, or import the file that defines `{name}` only once"
        ))
}

fn scalar_text(n: &Node) -> String {
    match n.to_json() {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Values from a namespaced document: intrinsic functions' node and input names get the prefix.
fn namespaced_values(entries: &[(Key, Node)], doc: &Doc) -> Vec<(Key, Node)> {
    entries
        .iter()
        .map(|(k, v)| (k.clone(), namespace_functions(v.clone(), doc)))
        .collect()
}

fn namespace_functions(mut node: Node, doc: &Doc) -> Node {
    if doc.namespace.is_some() {
        rename_function_targets(&mut node, doc);
    }
    node
}

fn rename_function_targets(node: &mut Node, doc: &Doc) {
    match &mut node.value {
        Value::Seq(items) => items
            .iter_mut()
            .for_each(|n| rename_function_targets(n, doc)),
        Value::Map(entries) => {
            if entries.len() == 1 {
                let (k, v) = &mut entries[0];
                let first = match &mut v.value {
                    Value::Seq(args) => args.first_mut(),
                    Value::Str(_) => Some(v),
                    _ => None,
                };
                let renames = matches!(
                    k.name.as_str(),
                    "get_input"
                        | "get_property"
                        | "get_attribute"
                        | "get_attributes_list"
                        | "get_attributes_dict"
                );
                if renames
                    && let Some(first) = first
                    && let Value::Str(s) = &mut first.value
                    && !matches!(s.as_str(), "SELF" | "SOURCE" | "TARGET")
                {
                    *s = doc.ns(s);
                }
            }
            for (_, v) in entries.iter_mut() {
                rename_function_targets(v, doc);
            }
        }
        _ => {}
    }
}
