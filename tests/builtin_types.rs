//! Every name Cloudify 7's built-in types offer is in windlass' shipped types file, and each one
//! goes through `validate` in a blueprint that uses it.
//!
//! The lists below are Cloudify 7.0.5's, read from its own type files (the peer's
//! `../shared/peer/types`, from cloudify-manager) with:
//!
//! ```text
//! /tmp/peers/cfy/bin/python - <<'PY'
//! import yaml
//! for f in ('types_1_3.yaml', 'types_1_4.yaml', 'types.yaml'):
//!     t = yaml.safe_load(open('/work/shared/peer/types/' + f))
//!     for s in ('node_types', 'relationships', 'data_types', 'policy_types',
//!               'policy_triggers', 'workflows', 'plugins'):
//!         print(f, s, sorted(t.get(s, {})))
//! PY
//! ```
//!
//! and the blueprint `all_names_at_once_as_checked_with_the_peer` builds (every node type and
//! relationship at once; `WINDLASS_WRITE_ALL_NAMES=FILE cargo test --test builtin_types` writes
//! it) was checked with the peer: `CFY_TYPES_DIR=../shared/peer/types
//! /tmp/peers/cfy/bin/python ../shared/peer/cfy_run.py FILE --plan-only` plans it (`"ok": true`). `cloudify.nodes.PasswordSecret`
//! is the one name the 1_3 file lacks (see `password_secret_is_gated_to_1_4`).

use std::path::{Path, PathBuf};

use windlass::blueprint::{self, Error};

const NODE_TYPES: &[&str] = &[
    "cloudify.nodes.ApplicationModule",
    "cloudify.nodes.ApplicationServer",
    "cloudify.nodes.Blueprint",
    "cloudify.nodes.CloudifyManager",
    "cloudify.nodes.Component",
    "cloudify.nodes.Compute",
    "cloudify.nodes.Container",
    "cloudify.nodes.DBMS",
    "cloudify.nodes.Database",
    "cloudify.nodes.FileSystem",
    "cloudify.nodes.LoadBalancer",
    "cloudify.nodes.MessageBusServer",
    "cloudify.nodes.Network",
    "cloudify.nodes.ObjectStorage",
    "cloudify.nodes.PasswordSecret",
    "cloudify.nodes.Port",
    "cloudify.nodes.Root",
    "cloudify.nodes.Router",
    "cloudify.nodes.SecurityGroup",
    "cloudify.nodes.ServiceComponent",
    "cloudify.nodes.SharedResource",
    "cloudify.nodes.SoftwareComponent",
    "cloudify.nodes.Subnet",
    "cloudify.nodes.Tier",
    "cloudify.nodes.VirtualIP",
    "cloudify.nodes.Volume",
    "cloudify.nodes.WebServer",
];

const RELATIONSHIPS: &[&str] = &[
    "cloudify.relationships.connected_to",
    "cloudify.relationships.connected_to_shared_resource",
    "cloudify.relationships.contained_in",
    "cloudify.relationships.depends_on",
    "cloudify.relationships.depends_on_lifecycle_operation",
    "cloudify.relationships.depends_on_shared_resource",
    "cloudify.relationships.file_system_contained_in_compute",
    "cloudify.relationships.file_system_depends_on_volume",
];

const DATA_TYPES: &[&str] = &[
    "cloudify.datatypes.AgentConfig",
    "cloudify.datatypes.Blueprint",
    "cloudify.datatypes.Component",
    "cloudify.datatypes.ComponentDeployment",
    "cloudify.datatypes.RemoteCloudifyManagerClient",
    "cloudify.datatypes.SharedResource",
    "cloudify.datatypes.SharedResourceDeployment",
];

const POLICY_TYPES: &[&str] = &[
    "cloudify.policies.types.ewma_stabilized",
    "cloudify.policies.types.host_failure",
    "cloudify.policies.types.threshold",
];

const POLICY_TRIGGERS: &[&str] = &["cloudify.policies.triggers.execute_workflow"];

const WORKFLOWS: &[&str] = &[
    "check_drift",
    "check_status",
    "execute_operation",
    "heal",
    "install",
    "install_new_agents",
    "pull",
    "reinstall",
    "restart",
    "rollback",
    "scale",
    "start",
    "stop",
    "uninstall",
    "validate_agents",
];

const PLUGINS: &[&str] = &["agent", "cfy_extensions", "default_workflows", "script"];

/// Properties a template must give for the types that have required ones without defaults.
fn template(ty: &str) -> String {
    let props = match ty {
        // Cloudify runs FileSystem's script on its host's agent: it must be contained in one.
        "cloudify.nodes.FileSystem" => {
            "{ fs_type: ext4, fs_mount_path: /mnt }, relationships: [{ type: cloudify.relationships.contained_in, target: host }]"
        }
        "cloudify.nodes.SharedResource" => "{ resource_config: { deployment: { id: other } } }",
        "cloudify.nodes.CloudifyManager" => "{ cloudify_packages: {} }",
        _ => "{}",
    };
    format!("{{ type: {ty}, properties: {props} }}")
}

fn relationship(ty: &str) -> String {
    let props = match ty {
        "cloudify.relationships.depends_on_lifecycle_operation" => "{ operation: configure }",
        _ => "{}",
    };
    // Cloudify requires operation inputs declared without a default.
    let ops = if ty.ends_with("_shared_resource") {
        ", target_interfaces: { cloudify.interfaces.relationship_lifecycle: { establish: { inputs: { workflow_id: w } }, unlink: { inputs: { workflow_id: w } } } }"
    } else {
        ""
    };
    // Cloudify checks that the target implements the operation: FileSystem's configure does.
    // The file-system relationships run `script` operations on the source's host agent, so
    // the source needs a host: `using` adds a contained_in when this one is not.
    let contained = ty.ends_with("contained_in") || ty.ends_with("contained_in_compute");
    let target = if ty.ends_with("lifecycle_operation") {
        "fs"
    } else if contained {
        "host"
    } else {
        "target"
    };
    format!("{{ type: {ty}, target: {target}, properties: {props}{ops} }}")
}

/// The sections of the types file whose names a blueprint uses (`using`), with their names;
/// `plugins` is only declared.
const USABLE_SECTIONS: [(&str, &[&str]); 6] = [
    ("node_types", NODE_TYPES),
    ("relationships", RELATIONSHIPS),
    ("data_types", DATA_TYPES),
    ("policy_types", POLICY_TYPES),
    ("policy_triggers", POLICY_TRIGGERS),
    ("workflows", WORKFLOWS),
];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("windlass-builtin-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn validate(path: &Path) -> Result<blueprint::Blueprint, String> {
    match blueprint::open(path, &Default::default()) {
        Ok(bp) => Ok(bp),
        Err(Error::Invalid(r)) => Err(r.plain()),
        Err(e) => Err(e.to_string()),
    }
}

/// A blueprint using one built-in name (`section`, `name`) the way blueprints use it.
fn using(section: &str, name: &str) -> String {
    let head =
        "tosca_definitions_version: cloudify_dsl_1_5\nimports: [cloudify/types/types.yaml]\n";
    let target = "  target: { type: cloudify.nodes.Root }\n  host: { type: cloudify.nodes.Compute }\n  fs: { type: cloudify.nodes.FileSystem, properties: { fs_type: ext4, fs_mount_path: /mnt }, relationships: [{ type: cloudify.relationships.contained_in, target: host }] }\n";
    match section {
        "node_types" => format!(
            "{head}node_templates:\n  n: {}\n  host: {{ type: cloudify.nodes.Compute }}\n",
            template(name)
        ),
        "relationships" => format!(
            "{head}node_templates:\n{target}  n:\n    type: cloudify.nodes.Root\n    relationships: [{}{}]\n",
            relationship(name),
            if name.ends_with("contained_in") || name.ends_with("contained_in_compute") {
                ""
            } else {
                ", { type: cloudify.relationships.contained_in, target: host }"
            }
        ),
        "data_types" => format!(
            "{head}node_types:\n  t:\n    derived_from: cloudify.nodes.Root\n    properties:\n      p: {{ type: {name}, required: false }}\nnode_templates:\n  n: {{ type: t }}\n"
        ),
        "policy_types" => format!(
            "{head}node_templates:\n{target}groups:\n  g:\n    members: [target]\n    policies:\n      p:\n        type: {name}\n        properties: {}\n",
            if name.ends_with("host_failure") {
                "{}"
            } else {
                "{ threshold: 1 }"
            }
        ),
        "policy_triggers" => format!(
            "{head}node_templates:\n{target}groups:\n  g:\n    members: [target]\n    policies:\n      p:\n        type: cloudify.policies.types.threshold\n        properties: {{ threshold: 1 }}\n        triggers:\n          t: {{ type: {name}, parameters: {{ workflow: heal }} }}\n"
        ),
        "workflows" => format!(
            "{head}node_templates:\n{target}groups:\n  g:\n    members: [target]\n    policies:\n      p:\n        type: cloudify.policies.types.threshold\n        properties: {{ threshold: 1 }}\n        triggers:\n          t:\n            type: cloudify.policies.triggers.execute_workflow\n            parameters: {{ workflow: {name} }}\n"
        ),
        _ => unreachable!("{section}"),
    }
}

#[test]
fn the_shipped_types_file_has_exactly_cloudifys_names() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/cloudify/types.yaml"),
    )
    .unwrap();
    let root: serde_json::Value = serde_yaml_names(&text);
    for (section, want) in USABLE_SECTIONS.into_iter().chain([("plugins", PLUGINS)]) {
        let mut have: Vec<&str> = root[section]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        have.sort();
        assert_eq!(have, want, "{section}");
    }
}

/// The file's top-level sections as JSON (through windlass' own YAML reader).
fn serde_yaml_names(text: &str) -> serde_json::Value {
    windlass::load::yaml::parse(windlass::load::source::FileId(0), text)
        .unwrap()
        .to_json()
}

#[test]
fn every_builtin_name_validates_in_a_blueprint_that_uses_it() {
    let d = dir("each");
    let mut failures = Vec::new();
    for (section, names) in USABLE_SECTIONS {
        for name in names {
            let path = write(&d, "blueprint.yaml", &using(section, name));
            match validate(&path) {
                Ok(bp) if section == "node_types" => {
                    assert!(bp.compiled.nodes[0].type_hierarchy.last().unwrap() == name);
                }
                Ok(bp) if section == "workflows" => {
                    assert!(bp.compiled.workflows.contains_key(*name), "{name}");
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{section} {name}:\n{e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_names_at_once_as_checked_with_the_peer() {
    let d = dir("all");
    let mut text = String::from(
        "tosca_definitions_version: cloudify_dsl_1_5\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  target: { type: cloudify.nodes.Root }\n  host: { type: cloudify.nodes.Compute }\n",
    );
    for (i, ty) in NODE_TYPES.iter().enumerate() {
        text.push_str(&format!("  n{i}: {}\n", template(ty)));
    }
    text.push_str("  linked:\n    type: cloudify.nodes.Root\n    relationships:\n");
    text.push_str("      - { type: cloudify.relationships.contained_in, target: host }\n");
    for r in RELATIONSHIPS
        .iter()
        // (depends_on_lifecycle_operation: Cloudify also wants its target's operation mapped
        // on a hosted template; it is checked by name in the test above.)
        .filter(|r| {
            !r.ends_with("contained_in")
                && !r.ends_with("contained_in_compute")
                && !r.ends_with("lifecycle_operation")
        })
    {
        text.push_str(&format!("      - {}\n", relationship(r)));
    }
    let path = write(&d, "all_builtin_names.yaml", &text);
    let bp = validate(&path).unwrap();
    assert_eq!(bp.compiled.nodes.len(), NODE_TYPES.len() + 3);
    // Written for the peer check in the module comment.
    if let Ok(dest) = std::env::var("WINDLASS_WRITE_ALL_NAMES") {
        std::fs::write(dest, &text).unwrap();
    }
}

#[test]
fn password_secret_is_gated_to_1_4() {
    let d = dir("gate");
    for (version, ok) in [("1_3", false), ("1_4", true), ("1_5", true)] {
        let path = write(
            &d,
            "blueprint.yaml",
            &format!(
                "tosca_definitions_version: cloudify_dsl_{version}\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  pw: {{ type: cloudify.nodes.PasswordSecret }}\n"
            ),
        );
        assert_eq!(validate(&path).is_ok(), ok, "{version}");
    }
}

#[test]
fn computes_that_ask_for_an_agent_are_found_for_the_one_warning() {
    let d = dir("agent");
    let path = write(
        &d,
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: { type: cloudify.nodes.Compute, properties: { agent_config: { user: ubuntu } } }\n  init: { type: cloudify.nodes.Compute, properties: { agent_config: { install_method: init_script } } }\n  none: { type: cloudify.nodes.Compute, properties: { agent_config: { install_method: none } } }\n  provided: { type: cloudify.nodes.Compute, properties: { agent_config: { install_method: provided } } }\n  off: { type: cloudify.nodes.Compute, properties: { install_agent: false } }\n  app: { type: cloudify.nodes.SoftwareComponent }\n",
    );
    let bp = validate(&path).unwrap();
    let asking: Vec<(String, String)> = bp
        .compiled
        .nodes
        .iter()
        .filter_map(|n| n.wants_agent().map(|m| (n.id.to_string(), m)))
        .collect();
    assert_eq!(
        asking,
        [
            ("vm".to_string(), "remote".to_string()),
            ("init".to_string(), "init_script".to_string())
        ]
    );
    // The given agent_config is laid over the property's default, as Cloudify does.
    let vm = &bp.compiled.nodes[0].properties["agent_config"];
    assert_eq!(vm["port"], 22);
    assert_eq!(vm["user"], "ubuntu");
}
