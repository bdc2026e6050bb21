//! `schemas/blueprint.schema.json` accepts every example and valid corpus blueprint, and rejects
//! a blueprint with a misspelt section (what an editor would underline).

use std::path::{Path, PathBuf};

use windlass::load::source::FileId;
use windlass::load::yaml;

fn schema() -> jsonschema::Validator {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("schemas/blueprint.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("the schema compiles")
}

fn as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    yaml::parse(FileId(0), &text).unwrap().to_json()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir()
            && path
                .file_name()
                // `resources/` holds what blueprints use (Kubernetes descriptors), not blueprints.
                .is_some_and(|n| n != "lib" && n != "scripts" && n != "resources")
        {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_blueprint_matches_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("blueprints"), &mut files);
    yaml_files(&root.join("tests/corpus/valid"), &mut files);
    assert!(files.len() >= 20);
    let validator = schema();
    for f in files {
        let doc = as_json(&f);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

#[test]
fn schema_rejects_unknown_keys() {
    let doc = serde_json::json!({
        "tosca_definitions_version": "cloudify_dsl_1_3",
        "node_tempaltes": {},
        "node_templates": {"a": {"type": "x", "propertis": {}}}
    });
    let errors: Vec<String> = schema()
        .iter_errors(&doc)
        .map(|e| e.instance_path.to_string())
        .collect();
    assert!(errors.iter().any(|p| p.is_empty()), "{errors:?}");
    assert!(
        errors.iter().any(|p| p == "/node_templates/a"),
        "{errors:?}"
    );
}

#[test]
fn schema_checks_group_policies_and_their_triggers() {
    let doc = serde_json::json!({
        "tosca_definitions_version": "cloudify_dsl_1_3",
        "node_templates": {"vm": {"type": "host"}},
        "groups": {"vms": {"members": ["vm"], "policies": {
            "heal": {"type": "cloudify.policies.types.host_failure", "trigers": {}},
            "up": {"type": "windlass.policies.types.sliding_window",
                   "triggers": {"t": {"type": "cloudify.policies.triggers.execute_workflow",
                                      "parametres": {}}}},
        }}}
    });
    let errors: Vec<String> = schema()
        .iter_errors(&doc)
        .map(|e| e.instance_path.to_string())
        .collect();
    assert!(
        errors.iter().any(|p| p == "/groups/vms/policies/heal"),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|p| p == "/groups/vms/policies/up/triggers/t"),
        "{errors:?}"
    );
}
