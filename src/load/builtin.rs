//! Type files shipped inside the binary.
//!
//! Blueprints import Cloudify's built-in types by URL (any version) or as
//! `cloudify/types/types.yaml`, and plugins as `plugin:NAME`. Both resolve here, offline, to the
//! YAML files under `plugins/` that are embedded at compile time. Nothing in this module does I/O.

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

/// Plugins whose type files ship with windlass.
pub const PLUGINS: &[ShippedPlugin] = &[
    ShippedPlugin {
        name: "script",
        file: "<builtin>/plugins/script/plugin.yaml",
        yaml: include_str!("../../plugins/script/plugin.yaml"),
    },
    ShippedPlugin {
        name: "noop",
        file: "<builtin>/plugins/noop/plugin.yaml",
        yaml: include_str!("../../plugins/noop/plugin.yaml"),
    },
    ShippedPlugin {
        name: "ssh",
        file: "<builtin>/plugins/ssh/plugin.yaml",
        yaml: include_str!("../../plugins/ssh/plugin.yaml"),
    },
    ShippedPlugin {
        name: "kubernetes",
        file: "<builtin>/plugins/kubernetes/plugin.yaml",
        yaml: include_str!("../../plugins/kubernetes/plugin.yaml"),
    },
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(plugin("plugin:nope"), Some(Err(_))));
        assert_eq!(
            plugin_name("plugin:my-plugin?version=1.2"),
            Some("my-plugin")
        );
        assert!(plugin("types.yaml").is_none());
    }
}
