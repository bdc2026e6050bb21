//! Type files shipped inside the binary.
//!
//! Blueprints import Cloudify's built-in types by URL (any version) or as
//! `cloudify/types/types.yaml`, and plugins as `plugin:NAME`. Both resolve here, offline, to the
//! YAML files under `plugins/` that are embedded at compile time. Nothing in this module does I/O.
//!
//! Cloudify ships its types once per DSL version; ours are one file, the newest, whose
//! `windlass_version_gates` list says what older versions lack. [`apply_version_gates`] cuts the
//! parsed file down to the main blueprint's version before anything reads it.

use super::yaml::{Node, Value};

/// The key of the built-in types file that lists its version gates (removed once applied).
const GATES_KEY: &str = "windlass_version_gates";

/// The embedded built-in types (`plugins/cloudify/types.yaml`).
pub const CLOUDIFY_TYPES: &str = include_str!("../../plugins/cloudify/types.yaml");

/// Display name of the embedded built-in types file in diagnostics.
pub const CLOUDIFY_TYPES_NAME: &str = "<builtin>/cloudify/types.yaml";

/// A plugin whose type file ships with windlass.
#[derive(Debug)]
pub struct ShippedPlugin {
    pub name: &'static str,
    /// Display name of its file in diagnostics.
    pub file: &'static str,
    pub yaml: &'static str,
}

/// A plugin whose type file is `plugins/NAME/plugin.yaml` in this repository.
macro_rules! shipped {
    ($name:literal) => {
        ShippedPlugin {
            name: $name,
            file: concat!("<builtin>/plugins/", $name, "/plugin.yaml"),
            yaml: include_str!(concat!("../../plugins/", $name, "/plugin.yaml")),
        }
    };
}

/// Plugins whose type files ship with windlass.
pub const PLUGINS: &[ShippedPlugin] = &[
    shipped!("script"),
    shipped!("noop"),
    shipped!("ssh"),
    shipped!("kubernetes"),
    shipped!("openstack"),
    shipped!("vsphere"),
];

/// True when an import names Cloudify's built-in types file, whatever its version or host.
pub fn is_cloudify_types(import: &str) -> bool {
    if import == "cloudify/types/types.yaml" {
        return true;
    }
    let Some(rest) = import
        .strip_prefix("http://")
        .or_else(|| import.strip_prefix("https://"))
    else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    let host = host.trim_start_matches("www.");
    (host == "getcloudify.org"
        || host == "cloudify.co"
        || host == "getcloudify.org.s3.amazonaws.com")
        && path.starts_with("spec/cloudify/")
        && path.ends_with("/types.yaml")
}

/// `NAME` of a `plugin:NAME` import, without its `?version=…` (or any other query).
pub fn plugin_name(import: &str) -> Option<&str> {
    let name = import.strip_prefix("plugin:")?;
    Some(name.split('?').next().unwrap_or(name).trim())
}

/// The shipped type file of a plugin, for `plugin:NAME` imports (`plugin:NAME?version=…` too).
pub fn plugin(import: &str) -> Option<Result<&'static ShippedPlugin, String>> {
    let name = plugin_name(import)?;
    // Cloudify's plugin package names are `cloudify-NAME-plugin`; accept both spellings.
    let short = name
        .strip_prefix("cloudify-")
        .and_then(|n| n.strip_suffix("-plugin"))
        .unwrap_or(name);
    Some(
        PLUGINS
            .iter()
            .find(|p| p.name == short)
            .ok_or_else(|| short.to_string()),
    )
}

/// Cut the built-in types down to what `main_version` (`cloudify_dsl_1_x`) has, and drop the gate
/// list. A missing or unknown version is cut as `cloudify_dsl_1_3`, the version the DSL stage
/// reads such a blueprint with (reporting the version alone, not the types' newer features).
pub fn apply_version_gates(root: &mut Node, main_version: Option<&str>) {
    let Value::Map(entries) = &mut root.value else {
        return;
    };
    let Some(pos) = entries.iter().position(|(k, _)| k.name == GATES_KEY) else {
        return;
    };
    let (_, gates) = entries.remove(pos);
    // `cloudify_dsl_1_0` … `cloudify_dsl_1_5` order as text; older than 1_3 reads as 1_3.
    const KNOWN: [&str; 6] = [
        "cloudify_dsl_1_0",
        "cloudify_dsl_1_1",
        "cloudify_dsl_1_2",
        "cloudify_dsl_1_3",
        "cloudify_dsl_1_4",
        "cloudify_dsl_1_5",
    ];
    let version = main_version
        .filter(|v| KNOWN.contains(v))
        .unwrap_or("cloudify_dsl_1_3");
    for gate in gates.as_seq().unwrap_or_default() {
        let applies = match (
            gate.get("since").and_then(Node::as_str),
            gate.get("before").and_then(Node::as_str),
        ) {
            (Some(since), _) => version < since,
            (_, Some(before)) => version >= before,
            _ => false,
        };
        if !applies {
            continue;
        }
        for path in gate
            .get("remove")
            .and_then(Node::as_seq)
            .unwrap_or_default()
        {
            let keys: Vec<&str> = path
                .as_seq()
                .unwrap_or_default()
                .iter()
                .filter_map(Node::as_str)
                .collect();
            remove_path(root, &keys);
        }
    }
}

/// Remove the entry at `path` (`*` matches every key at its level) wherever it exists.
fn remove_path(node: &mut Node, path: &[&str]) {
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    match path {
        [] => {}
        [last] => entries.retain(|(k, _)| *last != "*" && k.name != *last),
        [first, rest @ ..] => {
            for (k, v) in entries.iter_mut() {
                if *first == "*" || k.name == *first {
                    remove_path(v, rest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gated(version: &str) -> Node {
        let mut root =
            super::super::yaml::parse(super::super::source::FileId(0), CLOUDIFY_TYPES).unwrap();
        apply_version_gates(&mut root, Some(version));
        root
    }

    #[test]
    fn version_gates_cut_the_types_down_as_cloudify_files_do() {
        let has = |root: &Node, path: &[&str]| {
            let mut n = Some(root);
            for p in path {
                n = n.and_then(|n| n.get(p));
            }
            n.is_some()
        };
        let secret = ["node_types", "cloudify.nodes.PasswordSecret"];
        let recursive = ["workflows", "uninstall", "parameters", "recursive"];
        let old_update = [
            "relationships",
            "cloudify.relationships.depends_on",
            "source_interfaces",
            "cloudify.interfaces.relationship_lifecycle",
            "update_establish",
        ];
        let v13 = gated("cloudify_dsl_1_3");
        assert!(!has(&v13, &secret) && !has(&v13, &recursive) && has(&v13, &old_update));
        assert!(!has(
            &v13,
            &[
                "workflows",
                "install",
                "parameters",
                "node_ids",
                "item_type"
            ]
        ));
        let v14 = gated("cloudify_dsl_1_4");
        assert!(has(&v14, &secret) && !has(&v14, &recursive) && !has(&v14, &old_update));
        let v15 = gated("cloudify_dsl_1_5");
        assert!(has(&v15, &secret) && has(&v15, &recursive));
        assert!(v15.get(GATES_KEY).is_none());
        assert!(has(&gated("cloudify_dsl_1_0"), &old_update));
        // A missing or unknown version is read as 1_3 by the DSL stage: cut as 1_3.
        for unknown in [None, Some("cloudify_dsl_1_9"), Some("tosca")] {
            let mut root =
                super::super::yaml::parse(super::super::source::FileId(0), CLOUDIFY_TYPES).unwrap();
            apply_version_gates(&mut root, unknown);
            assert!(
                !has(&root, &secret) && has(&root, &old_update),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn recognises_types_urls_of_any_version() {
        assert!(is_cloudify_types(
            "http://www.getcloudify.org/spec/cloudify/4.5/types.yaml"
        ));
        assert!(is_cloudify_types(
            "http://cloudify.co/spec/cloudify/6.4.0/types.yaml"
        ));
        assert!(is_cloudify_types(
            "https://cloudify.co/spec/cloudify/7.0.0/types.yaml"
        ));
        assert!(is_cloudify_types("cloudify/types/types.yaml"));
        assert!(!is_cloudify_types(
            "http://example.com/spec/cloudify/4.5/types.yaml"
        ));
        assert!(!is_cloudify_types("types.yaml"));
    }

    #[test]
    fn plugins_by_short_or_package_name() {
        assert!(matches!(
            plugin("plugin:script"),
            Some(Ok(ShippedPlugin { name: "script", .. }))
        ));
        assert!(matches!(
            plugin("plugin:cloudify-noop-plugin?version=1.0"),
            Some(Ok(ShippedPlugin { name: "noop", .. }))
        ));
        assert!(matches!(
            plugin("plugin:cloudify-ssh-plugin"),
            Some(Ok(ShippedPlugin { name: "ssh", .. }))
        ));
        assert!(matches!(
            plugin("plugin:cloudify-kubernetes-plugin?version= >=2.13"),
            Some(Ok(ShippedPlugin {
                name: "kubernetes",
                ..
            }))
        ));
        assert!(matches!(
            plugin("plugin:cloudify-openstack-plugin?version= >=3.2"),
            Some(Ok(ShippedPlugin {
                name: "openstack",
                ..
            }))
        ));
        assert!(matches!(
            plugin("plugin:openstack"),
            Some(Ok(ShippedPlugin {
                name: "openstack",
                ..
            }))
        ));
        assert!(matches!(plugin("plugin:nope"), Some(Err(_))));
        assert_eq!(
            plugin_name("plugin:my-plugin?version=1.2"),
            Some("my-plugin")
        );
        assert!(plugin("types.yaml").is_none());
    }
}
