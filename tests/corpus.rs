//! The blueprint corpus: every file under tests/corpus/valid must validate and plan with the
//! instance counts and relationship fan-out its header states; every file under
//! tests/corpus/invalid must fail with exactly the errors (file:line:col: message) it lists, and
//! with the help it lists for some of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use windlass::blueprint::{self, Error};
use windlass::dsl::inputs;
use windlass::plan::render;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `# key: value` header lines.
fn headers(text: &str, key: &str) -> Vec<String> {
    let prefix = format!("# {key}: ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

fn pairs(spec: &str) -> Vec<(String, usize)> {
    spec.split_whitespace()
        .map(|p| {
            let (k, v) = p.rsplit_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn valid_blueprints_plan_as_their_headers_say() {
    let files = corpus("valid");
    assert!(files.len() >= 20, "corpus shrank: {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let given = inputs::parse_args(&headers(&text, "inputs")).unwrap();
        let bp = match blueprint::open(&path, &given) {
            Ok(bp) => bp,
            Err(Error::Invalid(r)) => panic!("{} should be valid:\n{}", path.display(), r.plain()),
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let plan = render::json(&bp.compiled, &bp.plan);
        // `# expect-output: NAME JSON`: a plan-time output's value (as Cloudify 7 computes it).
        for spec in headers(&text, "expect-output") {
            let (name, json) = spec.split_once(' ').unwrap();
            let want: Json = serde_json::from_str(json).unwrap();
            assert_eq!(
                bp.compiled.outputs.get(name),
                Some(&want),
                "{}: output {name}",
                path.display()
            );
        }
        // `# expect-warning: FILE:LINE:COL: message`, all of them.
        let warnings: Vec<String> = bp
            .warnings
            .iter()
            .map(|w| w.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(
            warnings,
            headers(&text, "expect-warning"),
            "{}",
            path.display()
        );
        let instances = plan["node_instances"].as_array().unwrap();
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        let mut links: BTreeMap<String, usize> = BTreeMap::new();
        let mut distinct: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for inst in instances {
            let node = inst["node_id"].as_str().unwrap().to_string();
            assert!(
                inst["id"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{node}_"))
            );
            *per_node.entry(node.clone()).or_default() += 1;
            for r in inst["relationships"].as_array().unwrap() {
                let key = format!("{node}->{}", r["target_name"].as_str().unwrap());
                *links.entry(key.clone()).or_default() += 1;
                distinct
                    .entry(key)
                    .or_default()
                    .insert(r["target_id"].as_str().unwrap().to_string());
            }
        }
        let name = path.file_name().unwrap().to_string_lossy();
        for spec in headers(&text, "expect-instances") {
            for (node, n) in pairs(&spec) {
                assert_eq!(
                    per_node.get(&node).copied().unwrap_or(0),
                    n,
                    "{name}: instances of {node}"
                );
            }
        }
        for spec in headers(&text, "expect-links") {
            for (key, n) in pairs(&spec) {
                assert_eq!(
                    links.get(&key).copied().unwrap_or(0),
                    n,
                    "{name}: relationship instances {key}"
                );
            }
        }
        for spec in headers(&text, "expect-distinct-targets") {
            for (key, n) in pairs(&spec) {
                assert_eq!(
                    distinct.get(&key).map_or(0, |s| s.len()),
                    n,
                    "{name}: distinct targets {key}"
                );
            }
        }
        for spec in headers(&text, "expect-groups") {
            for (group, n) in pairs(&spec) {
                let ids: std::collections::BTreeSet<&str> = instances
                    .iter()
                    .flat_map(|i| i["scaling_groups"].as_array().unwrap())
                    .filter(|g| g["name"] == group.as_str())
                    .map(|g| g["id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids.len(), n, "{name}: instances of scaling group {group}");
            }
        }
    }
}

#[test]
fn invalid_blueprints_report_every_error_with_its_location() {
    let files = corpus("invalid");
    assert!(files.len() >= 20, "corpus shrank: {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = headers(&text, "expect-error");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(!expected.is_empty(), "{name} lists no expected error");
        let report = match blueprint::open(&path, &Default::default()) {
            Err(Error::Invalid(r)) => r,
            Ok(_) => panic!("{name} should be invalid"),
            Err(e) => panic!("{name}: unexpected {e}"),
        };
        let actual: Vec<String> = report
            .diagnostics
            .iter()
            .map(|d| {
                let file = report
                    .sources
                    .get(d.loc.file)
                    .name
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string();
                format!("{file}:{}:{}: {}", d.loc.line, d.loc.col, d.message)
            })
            .collect();
        assert_eq!(actual, expected, "{name}: errors differ");
        // `# expect-help: FILE:LINE:COL: help`: the "what would be right" of the error there.
        for spec in headers(&text, "expect-help") {
            let helps: Vec<String> = report
                .diagnostics
                .iter()
                .filter_map(|d| {
                    let file = report.sources.get(d.loc.file).name.rsplit('/').next()?;
                    Some(format!(
                        "{file}:{}:{}: {}",
                        d.loc.line,
                        d.loc.col,
                        d.help.as_deref()?
                    ))
                })
                .collect();
            assert!(
                helps.contains(&spec),
                "{name}: no help `{spec}` in {helps:#?}"
            );
        }
    }
}

#[test]
fn plan_json_has_the_documented_shape() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid/v12_scaling_group.yaml");
    let bp = blueprint::open(&path, &Default::default()).unwrap();
    let plan = render::json(&bp.compiled, &bp.plan);
    let keys = |v: &Json| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&plan),
        [
            "nodes",
            "node_instances",
            "scaling_groups",
            "workflows",
            "inputs",
            "outputs"
        ]
    );
    assert_eq!(
        keys(&plan["nodes"][0]),
        [
            "id",
            "type",
            "type_hierarchy",
            "properties",
            "number_of_instances",
            "min_number_of_instances",
            "max_number_of_instances",
            "host_id",
            "relationships"
        ]
    );
    assert_eq!(
        keys(&plan["node_instances"][0]),
        [
            "id",
            "node_id",
            "host_id",
            "relationships",
            "scaling_groups"
        ]
    );
    let db = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "db")
        .unwrap();
    assert_eq!(db["host_id"], "vm");
    assert_eq!(db["type_hierarchy"][0], "cloudify.nodes.Root");
    let rel = &plan["node_instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "app")
        .unwrap()["relationships"];
    assert_eq!(keys(&rel[0]), ["type", "target_name", "target_id"]);
    assert_eq!(
        plan["scaling_groups"]["g"]["properties"]["max_instances"],
        5
    );
    assert!(plan["workflows"]["install"].is_object());
}
