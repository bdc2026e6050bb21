//! The kinds the contract server serves, and the discovery documents built from them.
//!
//! One table (`KINDS`) says, per kind, its group, version, plural, scope and short names, as the
//! Kubernetes API reference lists them; `/api`, `/apis`, `/api/v1` and `/apis/GROUP/VERSION` are
//! derived from it, so discovery, routing and messages never disagree.

use serde_json::{Value as Json, json};

/// A kind as the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub kind: &'static str,
    /// `""` for the core (legacy) group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// The kind has an `autoscaling/v1` `Scale` subresource.
    pub scale: bool,
    /// The kind's `metadata.generation` moves when its spec changes.
    pub generation: bool,
}

impl Kind {
    /// `v1` or `apps/v1`, as written in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`: how the API names a resource in its messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps` or `Pod`: how an `Invalid` message names the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }
}

const fn kind(
    kind: &'static str,
    group: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    scale: bool,
    generation: bool,
) -> Kind {
    Kind {
        kind,
        group,
        version: "v1",
        plural,
        namespaced,
        short_names,
        scale,
        generation,
    }
}

/// Every kind served. All are `v1` of their group.
pub const KINDS: &[Kind] = &[
    kind("Namespace", "", "namespaces", false, &["ns"], false, false),
    kind("Pod", "", "pods", true, &["po"], false, false),
    kind("Service", "", "services", true, &["svc"], false, false),
    kind("ConfigMap", "", "configmaps", true, &["cm"], false, false),
    kind("Secret", "", "secrets", true, &[], false, false),
    kind(
        "ServiceAccount",
        "",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    ),
    kind(
        "PersistentVolumeClaim",
        "",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        false,
        false,
    ),
    kind(
        "Deployment",
        "apps",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    ),
    kind(
        "ReplicaSet",
        "apps",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
    ),
    kind(
        "StatefulSet",
        "apps",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    ),
    kind(
        "DaemonSet",
        "apps",
        "daemonsets",
        true,
        &["ds"],
        false,
        true,
    ),
    kind(
        "Ingress",
        "networking.k8s.io",
        "ingresses",
        true,
        &["ing"],
        false,
        true,
    ),
];

/// The groups other than core, in the order `/apis` lists them.
const GROUPS: &[&str] = &["apps", "networking.k8s.io"];

pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The kind named by `kind` (`Deployment`), in any group.
pub fn by_kind(kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == kind)
}

pub fn group_served(group: &str, version: &str) -> bool {
    version == "v1" && (group.is_empty() || GROUPS.contains(&group))
}

/// `GET /version`: the `version.Info` of a v1.32 server.
pub fn version_info() -> Json {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `GET /api`: `APIVersions` of the core group.
pub fn core_versions(server_address: &str) -> Json {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(group: &str) -> Json {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`: `APIGroupList`.
pub fn group_list() -> Json {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": GROUPS.iter().map(|g| group_entry(g)).collect::<Vec<_>>()
    })
}

/// `GET /apis/GROUP`: `APIGroup`.
pub fn group(group: &str) -> Option<Json> {
    GROUPS.contains(&group).then(|| {
        let mut entry = group_entry(group);
        entry["kind"] = json!("APIGroup");
        entry["apiVersion"] = json!("v1");
        entry
    })
}

/// `GET /api/v1` or `/apis/GROUP/v1`: `APIResourceList` with every kind of the group and its
/// `scale` subresources.
pub fn resource_list(group: &str, version: &str) -> Json {
    let mut resources = Vec::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        let verbs = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        resources.push(json!({
            "name": k.plural,
            "singularName": k.singular(),
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": verbs,
            "shortNames": k.short_names,
        }));
        if k.scale {
            resources.push(json!({
                "name": format!("{}/scale", k.plural),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources
    })
}
