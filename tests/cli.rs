//! The `windlass` binary as users run it: exit codes, where output goes, and the examples.

use std::path::Path;
use std::process::Command;

fn windlass(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("windlass runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn examples_validate_and_plan_in_every_format() {
    for dir in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints")).unwrap()
    {
        let dir = dir.unwrap().path();
        let bp = dir.join("blueprint.yaml");
        let bp = bp.to_str().unwrap();
        // An example whose inputs have no defaults ships sample values in `inputs.yaml`.
        let inputs = dir.join("inputs.yaml");
        let inputs = inputs.to_str().unwrap();
        let with_inputs = |args: &[&str]| {
            let mut args = args.to_vec();
            if Path::new(inputs).exists() {
                args.extend(["-i", inputs]);
            }
            windlass(&args)
        };
        let (code, out, err) = with_inputs(&["validate", bp]);
        assert_eq!(code, 0, "{bp}: {err}");
        assert!(out.contains("is valid"));
        for format in ["text", "json", "dot"] {
            let (code, out, err) = with_inputs(&["plan", bp, "--format", format]);
            assert_eq!(code, 0, "{bp} {format}: {err}");
            assert!(!out.is_empty());
        }
        let (_, out, _) = with_inputs(&["plan", bp, "--format", "json"]);
        let plan: serde_json::Value =
            serde_json::from_str(&out).expect("plan --format json is JSON");
        assert!(!plan["node_instances"].as_array().unwrap().is_empty());
    }
}

#[test]
fn invalid_blueprint_exits_1_with_located_errors_on_stderr() {
    let (code, out, err) = windlass(&[
        "validate",
        "tests/corpus/invalid/i04_unknown_node_type.yaml",
    ]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "errors go to stderr, not stdout: {out}");
    assert!(err.contains("i04_unknown_node_type.yaml:5:11: node template `vm` has the unknown type `cloudify.nodes.Compte`"), "{err}");
    assert!(
        err.contains("did you mean `cloudify.nodes.Compute`?"),
        "{err}"
    );
    assert!(err.contains("2 errors in the blueprint"), "{err}");
}

#[test]
fn validate_json_lists_every_error() {
    let (code, out, _) = windlass(&[
        "validate",
        "--json",
        "tests/corpus/invalid/i12_missing_inputs.yaml",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 4);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`region`, `size`")
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let (code, _, err) = windlass(&["validate", "does/not/exist.yaml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read blueprint does/not/exist.yaml"),
        "{err}"
    );
    let (code, _, err) = windlass(&["plan", "blueprints/hello/blueprint.yaml", "-i", "novalue"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid inputs `novalue`"), "{err}");
    let (code, _, _) = windlass(&["plan"]);
    assert_eq!(code, 2);
}

#[test]
fn inputs_reach_the_plan() {
    let (code, out, err) = windlass(&[
        "plan",
        "blueprints/scaling-web/blueprint.yaml",
        "--format",
        "json",
        "-i",
        "dea_count=5",
    ]);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let deas = plan["node_instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["node_id"] == "dea")
        .count();
    assert_eq!(deas, 5);
    assert_eq!(plan["inputs"]["dea_count"], 5);
    let (code, _, err) = windlass(&[
        "validate",
        "blueprints/scaling-web/blueprint.yaml",
        "-i",
        "dea_count=30",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("default_instances 30 is above max_instances 25"),
        "{err}"
    );
}
