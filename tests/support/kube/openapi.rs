//! `/openapi/v3`: the API's OpenAPI v3 discovery, reduced to what the server can truthfully
//! say without the Go types' schemas: per group-version, its paths and the operations with
//! their `x-kubernetes-group-version-kind` and query parameters (`fieldManager`,
//! `fieldValidation`, `force`, `dryRun`, …), as the reference documents them.
//! `components.schemas` is empty, so clients that compute patches from schemas use their own
//! compiled-in types, and server-side field validation is what clients rely on (kubectl checks
//! that `PATCH` takes `fieldValidation` before it skips validating on its side).

use serde_json::{Map, Value as Json, json};

use super::kinds::{KINDS, Kind};

/// `api/v1` or `apis/apps/v1`: the key of a group-version in the root document.
fn key(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in KINDS {
        if !groups.contains(&kind.group) {
            groups.push(kind.group);
        }
    }
    groups
}

/// `GET /openapi/v3`: where each group-version's document is.
pub fn root() -> Json {
    let paths: Map<String, Json> = groups()
        .into_iter()
        .map(|g| {
            let key = key(g);
            let url = format!("/openapi/v3/{key}?hash=contract");
            (key, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

fn query(name: &str, description: &str, kind: &str) -> Json {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": true}})
}

fn path_param(name: &str) -> Json {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(action: &str, id: String, gvk: &Json, parameters: Vec<Json>) -> Json {
    json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
    })
}

fn write_parameters(patch: bool) -> Vec<Json> {
    let mut parameters = vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
            "string",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict.",
            "string",
        ),
    ];
    if patch {
        parameters.push(query(
            "force",
            "Force is going to \"force\" Apply requests.",
            "boolean",
        ));
    }
    parameters
}

fn camel(kind: &Kind) -> String {
    let group = kind.group.split('.').next().unwrap_or_default();
    let mut group: Vec<char> = group.chars().collect();
    if let Some(first) = group.first_mut() {
        *first = first.to_ascii_uppercase();
    }
    let group: String = group.into_iter().collect();
    let version = "V1";
    if kind.group.is_empty() {
        format!("Core{version}")
    } else {
        format!("{group}{version}")
    }
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/v1`.
pub fn group_version(path: &str) -> Option<Json> {
    let group = groups().into_iter().find(|g| key(g) == path)?;
    let mut paths = Map::new();
    for kind in KINDS.iter().filter(|k| k.group == group) {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/v1")
        };
        let scope = if kind.namespaced { "Namespaced" } else { "" };
        let collection = if kind.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", kind.plural)
        } else {
            format!("{prefix}/{}", kind.plural)
        };
        let gvk = json!({"group": kind.group, "version": kind.version, "kind": kind.kind});
        let name = format!("{}{scope}{}", camel(kind), kind.kind);
        let mut scoped = Vec::new();
        if kind.namespaced {
            scoped.push(path_param("namespace"));
        }
        paths.insert(
            collection.clone(),
            json!({
                "get": operation("list", format!("list{name}"), &gvk, vec![query("labelSelector", "A selector to restrict the list of returned objects by their labels.", "string"), query("fieldSelector", "A selector to restrict the list of returned objects by their fields.", "string"), query("watch", "Watch for changes to the described resources.", "boolean")]),
                "post": operation("post", format!("create{name}"), &gvk, write_parameters(false)),
                "parameters": scoped,
            }),
        );
        let mut item_params = scoped.clone();
        item_params.push(path_param("name"));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation("get", format!("read{name}"), &gvk, vec![]),
                "put": operation("put", format!("replace{name}"), &gvk, write_parameters(false)),
                "patch": operation("patch", format!("patch{name}"), &gvk, write_parameters(true)),
                "delete": operation("delete", format!("delete{name}"), &gvk, vec![query("propagationPolicy", "Whether and how garbage collection will be performed: Orphan, Background or Foreground.", "string")]),
                "parameters": item_params.clone(),
            }),
        );
        if kind.scale {
            let scale = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
            paths.insert(
                format!("{collection}/{{name}}/scale"),
                json!({
                    "get": operation("get", format!("read{name}Scale"), &scale, vec![]),
                    "put": operation("put", format!("replace{name}Scale"), &scale, write_parameters(false)),
                    "patch": operation("patch", format!("patch{name}Scale"), &scale, write_parameters(true)),
                    "parameters": item_params,
                }),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
