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
        } else if path.extension().is_some_and(|e| e == "yaml")
            // An example's sample inputs (`inputs.yaml`) are not a blueprint.
            && path.file_name().is_some_and(|n| n != "inputs.yaml")
        {
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

/// What Cloudify accepts and editors must not underline: dict-form plugin imports, data-based
/// input and workflow parameter types with their constraints, `implementation: ~`.
fn cloudify_forms() -> serde_json::Value {
    serde_json::json!({
        "tosca_definitions_version": "cloudify_dsl_1_5",
        "imports": ["cloudify/types/types.yaml", {"plugin:cloudify-ssh-plugin": {"max_retries": 3}}],
        "inputs": {
            "target": {"type": "deployment_id", "constraints": [{"name_pattern": {"starts_with": "web"}}]},
            "nodes": {"type": "list", "item_type": "node_id", "default": []}
        },
        "node_templates": {"a": {"type": "cloudify.nodes.Root", "interfaces": {
            "cloudify.interfaces.lifecycle": {"create": {"implementation": null}}}}},
        "workflows": {"w": {"mapping": "script.x", "parameters": {
            "n": {"type": "node_instance", "constraints": [{"valid_values": ["a_1"]}]}}}}
    })
}

#[test]
fn schema_accepts_what_cloudify_accepts() {
    let validator = schema();
    let errors: Vec<String> = validator
        .iter_errors(&cloudify_forms())
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// The same check with ajv, the validator yaml-language-server uses, over every valid corpus
/// blueprint and the forms above. ajv comes from npm into a cache under the target directory
/// (once); without npm or network the test says why and passes.
#[test]
fn ajv_accepts_the_valid_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ajv");
    if !cache.join("node_modules/ajv").is_dir() {
        let installed = std::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&cache)
            .arg("ajv@8")
            .status();
        if !installed.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot install ajv with npm ({installed:?})");
            return;
        }
    }
    let mut files = Vec::new();
    yaml_files(&root.join("blueprints"), &mut files);
    yaml_files(&root.join("tests/corpus/valid"), &mut files);
    let mut docs: Vec<(String, serde_json::Value)> = files
        .iter()
        .map(|f| (f.display().to_string(), as_json(f)))
        .collect();
    docs.push(("cloudify forms".to_string(), cloudify_forms()));
    let input = cache.join("docs.json");
    std::fs::write(&input, serde_json::to_string(&docs).unwrap()).unwrap();
    let script = r#"
        const Ajv = require('ajv');
        const fs = require('fs');
        const [schemaPath, docsPath] = process.argv.slice(1);
        const ajv = new Ajv({ strict: false, allErrors: true });
        const validate = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));
        let bad = 0;
        for (const [name, doc] of JSON.parse(fs.readFileSync(docsPath, 'utf8'))) {
            if (!validate(doc)) { bad++; console.log(name, JSON.stringify(validate.errors)); }
        }
        console.log('checked', JSON.parse(fs.readFileSync(docsPath, 'utf8')).length);
        process.exit(bad ? 1 : 0);
    "#;
    let out = std::process::Command::new("node")
        .current_dir(&cache)
        .env("NODE_PATH", cache.join("node_modules"))
        .arg("-e")
        .arg(script)
        .arg(root.join("schemas/blueprint.schema.json"))
        .arg(&input)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("checked {}", docs.len())),
        "{stdout}"
    );
}
