//! What `validate` and `plan` check of a blueprint's Kubernetes descriptor files, before
//! anything runs: every file a node names exists under the blueprint's directory and parses
//! (a `FileDefinedResource`'s renders with its `template_variables`, strictly), and every
//! override parses. A problem is a diagnostic at the node, naming the property, the file and
//! what is wrong; all of them are reported, not just the first.
//!
//! A path or variable that is an intrinsic function (known only at run time) is left for the
//! operation to check.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::diag::{Diagnostic, Diagnostics};
use crate::dsl::Compiled;
use crate::dsl::compiled::CompiledNode;
use crate::template::{Descriptor, Override, load_descriptor, render_descriptor};

const MICROSERVICE: &str = "cloudify.kubernetes.MicroService";
const FILE_RESOURCE: [&str; 2] = [
    "cloudify.kubernetes.resources.FileDefinedResource",
    "cloudify.nodes.kubernetes.resources.FileDefinedResource",
];
const MULTIPLE_FILE_RESOURCES: [&str; 2] = [
    "cloudify.kubernetes.resources.MultipleFileDefinedResources",
    "cloudify.nodes.kubernetes.resources.MultipleFileDefinedResources",
];

/// Check the descriptor files of every Kubernetes node of `compiled`; `root` is the
/// blueprint's directory.
pub fn check(compiled: &Compiled, root: &Path, diags: &mut Diagnostics) {
    for node in &compiled.nodes {
        let is = |types: &[&str]| {
            node.type_hierarchy
                .iter()
                .any(|t| types.contains(&t.as_str()))
        };
        let mut problems = Vec::new();
        if is(&[MICROSERVICE]) {
            microservice(node, root, &mut problems);
        } else if is(&FILE_RESOURCE) {
            if let Some(file) = node.properties.get("file") {
                templated(file, "file", root, &mut problems);
            }
        } else if is(&MULTIPLE_FILE_RESOURCES) {
            let files = node.properties.get("files").and_then(Json::as_array);
            for (i, file) in files.into_iter().flatten().enumerate() {
                templated(file, &format!("files[{i}]"), root, &mut problems);
            }
        }
        for p in problems {
            diags.push(Diagnostic::new(
                node.loc,
                format!("node `{}`: {p}", node.id.0),
            ));
        }
    }
}

/// `config_files: [{file, overrides}]` and `config_path` + `config_overrides`: plain YAML
/// (Cloudify never rendered them), overrides that parse.
fn microservice(node: &CompiledNode, root: &Path, problems: &mut Vec<String>) {
    let files = node.properties.get("config_files").and_then(Json::as_array);
    for (i, entry) in files.into_iter().flatten().enumerate() {
        let what = format!("config_files[{i}]");
        if let Some(file) = entry.get("file").and_then(Json::as_str) {
            plain(file, &format!("{what}.file"), root, problems);
        }
        overrides(
            entry.get("overrides"),
            &format!("{what}.overrides"),
            problems,
        );
    }
    if let Some(path) = node.properties.get("config_path").and_then(Json::as_str)
        && !path.is_empty()
    {
        plain(path, "config_path", root, problems);
    }
    overrides(
        node.properties.get("config_overrides"),
        "config_overrides",
        problems,
    );
}

fn plain(file: &str, what: &str, root: &Path, problems: &mut Vec<String>) {
    let Some(text) = read(file, what, root, problems) else {
        return;
    };
    if let Err(e) = load_descriptor(Descriptor::Text {
        name: file,
        text: &text,
    }) {
        problems.push(format!("{what}: {e}"));
    }
}

/// The text of a descriptor file, named in messages as the blueprint names it.
fn read(file: &str, what: &str, root: &Path, problems: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(root.join(file)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(format!(
                "{what}: the descriptor file `{file}` does not exist under the blueprint's directory"
            ));
            None
        }
        Err(e) => {
            problems.push(format!("{what}: cannot read `{file}`: {e}"));
            None
        }
    }
}

/// `{resource_path, template_variables}`: the file renders with the variables given.
fn templated(file: &Json, what: &str, root: &Path, problems: &mut Vec<String>) {
    let Some(resource) = file.get("resource_path").and_then(Json::as_str) else {
        return;
    };
    let what = format!("{what}.resource_path");
    let Some(text) = read(resource, &what, root, problems) else {
        return;
    };
    let vars: Map<String, Json> = file
        .get("template_variables")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    if let Err(e) = render_descriptor(
        Descriptor::Text {
            name: resource,
            text: &text,
        },
        &vars,
    ) {
        problems.push(format!("{what}: {e}"));
    }
}

fn overrides(list: Option<&Json>, what: &str, problems: &mut Vec<String>) {
    for (i, o) in list
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(text) = o.as_str()
            && let Err(e) = Override::parse(text)
        {
            problems.push(format!("{what}[{i}]: {e}"));
        }
    }
}
