//! Plan shapes beyond counts: which instance links to which, host ids, scaling-group
//! membership, ids. Asserted on the plan JSON, as users and tools see it.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;
use windlass::blueprint;
use windlass::plan::render;

fn plan(file: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/valid")
        .join(file);
    let bp = blueprint::open(&path, &Default::default()).unwrap();
    render::json(&bp.compiled, &bp.plan)
}

fn by_id(plan: &Json) -> HashMap<String, Json> {
    plan["node_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn targets<'a>(inst: &'a Json, target_node: &str) -> Vec<&'a str> {
    inst["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target_name"] == target_node)
        .map(|r| r["target_id"].as_str().unwrap())
        .collect()
}

#[test]
fn contained_instances_sit_on_their_own_host() {
    let p = plan("v09_contained_multiplication.yaml");
    let all = by_id(&p);
    for inst in all.values() {
        match inst["node_id"].as_str().unwrap() {
            "host" => assert_eq!(inst["host_id"], inst["id"]),
            "app" => {
                let host = targets(inst, "host");
                assert_eq!(host.len(), 1);
                assert_eq!(inst["host_id"], host[0]);
            }
            "agent" => {
                let app = &all[targets(inst, "app")[0]];
                assert_eq!(
                    inst["host_id"], app["host_id"],
                    "host_id is inherited down contained_in"
                );
            }
            other => panic!("unexpected node {other}"),
        }
    }
    // Each host carries exactly three apps.
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for inst in all.values().filter(|i| i["node_id"] == "app") {
        *per_host
            .entry(inst["host_id"].as_str().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_host.values().copied().collect::<Vec<_>>(), vec![3, 3]);
}

#[test]
fn links_inside_a_scaling_group_stay_in_the_group_instance() {
    let p = plan("v12_scaling_group.yaml");
    let all = by_id(&p);
    for app in all.values().filter(|i| i["node_id"] == "app") {
        let dbs = targets(app, "db");
        assert_eq!(
            dbs.len(),
            1,
            "app links to the db of its own group instance only"
        );
        assert_eq!(all[dbs[0]]["host_id"], app["host_id"]);
    }
    // lb is outside the group: it fans out to every app and db.
    let lb = all.values().find(|i| i["node_id"] == "lb").unwrap();
    assert_eq!(targets(lb, "app").len(), 4);
    assert_eq!(targets(lb, "db").len(), 2);
    // Members record their group instance; vm is the member, db (contained) is not.
    for vm in all.values().filter(|i| i["node_id"] == "vm") {
        let groups = vm["scaling_groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["name"], "g");
        assert!(groups[0]["id"].as_str().unwrap().starts_with("g_"));
    }
    let props = &p["scaling_groups"]["g"]["properties"];
    assert_eq!(
        (
            props["default_instances"].as_i64(),
            props["min_instances"].as_i64()
        ),
        (Some(2), Some(1))
    );
}

#[test]
fn all_to_one_picks_one_target_for_every_source() {
    let p = plan("v11_all_to_one.yaml");
    let all = by_id(&p);
    let chosen: std::collections::BTreeSet<&str> = all
        .values()
        .filter(|i| i["node_id"] == "worker")
        .flat_map(|w| targets(w, "master"))
        .collect();
    assert_eq!(chosen.len(), 1);
}

#[test]
fn nested_groups_record_both_group_instances_innermost_first() {
    let p = plan("v13_nested_groups.yaml");
    let all = by_id(&p);
    for b in all.values().filter(|i| i["node_id"] == "b") {
        let names: Vec<&str> = b["scaling_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["inner", "outer"]);
        // b links to the a of its own outer group instance only.
        let a = targets(b, "a");
        assert_eq!(a.len(), 1);
        let outer_of = |inst: &Json| {
            inst["scaling_groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == "outer")
                .unwrap()["id"]
                .clone()
        };
        assert_eq!(outer_of(&all[a[0]]), outer_of(b));
    }
}

#[test]
fn properties_and_functions_are_evaluated_into_the_plan() {
    let p = plan("v05_get_property.yaml");
    let app = p["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "app")
        .unwrap();
    assert_eq!(app["properties"]["db_port"], 5432);
    assert_eq!(app["properties"]["url"], "postgres://admin@db:5432");
    let p = plan("v06_string_functions.yaml");
    let n = &p["nodes"][0]["properties"];
    assert_eq!(n["merged"], serde_json::json!({"a": 1, "b": 2, "c": 3}));
    assert_eq!(n["host"], "web-01");
    assert_eq!(n["at"], 6);
    assert_eq!(n["replaced"], "Web-01.test.com");
    let p = plan("v07_data_types.yaml");
    assert_eq!(
        p["nodes"][0]["properties"]["conf"],
        serde_json::json!({"primary": {"host": "db.local", "port": 80, "tls": true}, "retries": 3})
    );
    let p = plan("v20_runtime_outputs.yaml");
    assert_eq!(
        p["outputs"]["url"]["value"],
        serde_json::json!({"concat": ["http://", {"get_attribute": ["vm", "ip"]}, ":8080"]})
    );
}

#[test]
fn template_operations_lay_over_type_operations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/valid/v19_operation_override.yaml");
    let bp = blueprint::open(&path, &Default::default()).unwrap();
    let node = |id: &str| {
        let n = bp.compiled.nodes.iter().find(|n| n.id.0 == id).unwrap();
        bp.compiled.operations(n.operations)
    };
    // Same implementation kept, template inputs laid over the type's defaults.
    let create = &node("a")["cloudify.interfaces.lifecycle.create"];
    assert_eq!(
        (create.plugin.as_str(), create.implementation.as_str()),
        ("p", "tasks.create")
    );
    assert_eq!(
        serde_json::Value::Object(create.inputs.clone()),
        serde_json::json!({"size": 3, "name": "base"})
    );
    // `start: {}` in the child type makes it a no-op.
    assert!(!node("a").contains_key("cloudify.interfaces.lifecycle.start"));
    // Another implementation replaces the type's, with only the template's inputs.
    let create = &node("b")["cloudify.interfaces.lifecycle.create"];
    assert_eq!(create.implementation, "tasks.other");
    assert_eq!(
        serde_json::Value::Object(create.inputs.clone()),
        serde_json::json!({"flavor": "x"})
    );
    assert!(node("b").contains_key("cloudify.interfaces.lifecycle.start"));
    assert!(node("b").contains_key("custom.interface.ping"));
    // A script path maps to the script plugin with script_path.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid/v03_scripts.yaml");
    let bp = blueprint::open(&path, &Default::default()).unwrap();
    let configure = &bp.compiled.node_operations(0)["cloudify.interfaces.lifecycle.configure"];
    assert_eq!(configure.plugin, "script");
    assert_eq!(configure.implementation, "script_runner.tasks.run");
    assert_eq!(configure.inputs["script_path"], "scripts/create.sh");
    assert_eq!(
        (
            configure.max_retries,
            configure.retry_interval,
            configure.timeout
        ),
        (Some(3), Some(2.0), Some(30.0))
    );
}

/// Templates that keep their type's operations share one set; a template that writes its own,
/// or whose type's input defaults read the template (`get_property: [SELF, …]`), gets its own.
#[test]
fn templates_share_their_types_operations_unless_they_differ() {
    let text = "tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
plugins: { p: { executor: central_deployment_agent, install: false } }
node_types:
  reads_self:
    derived_from: cloudify.nodes.Root
    properties: { size: { default: 1 } }
    interfaces:
      cloudify.interfaces.lifecycle:
        create: { implementation: p.tasks.create, inputs: { size: { default: { get_property: [SELF, size] } } } }
  fixed:
    derived_from: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle:
        create: { implementation: p.tasks.create, inputs: { size: { default: 7 } } }
node_templates:
  a: { type: reads_self, properties: { size: 2 } }
  b: { type: reads_self, properties: { size: 3 } }
  c: { type: fixed }
  d: { type: fixed }
  e: { type: fixed, interfaces: { cloudify.interfaces.lifecycle: { create: { inputs: { size: 8 } } } } }
";
    let bp = blueprint::open_str(Path::new("t.yaml"), text, &Default::default()).unwrap();
    let c = &bp.compiled;
    let set = |id: &str| c.nodes[c.node_index[id]].operations;
    let size = |id: &str| {
        c.operations(set(id))["cloudify.interfaces.lifecycle.create"].inputs["size"].clone()
    };
    assert_eq!(set("c"), set("d"));
    assert_ne!(set("a"), set("b"));
    assert_ne!(set("e"), set("c"));
    let sizes: Vec<Json> = ["a", "b", "c", "d", "e"].into_iter().map(size).collect();
    assert_eq!(sizes, [2, 3, 7, 7, 8].map(Json::from));
    // Every set is used, and none is stored twice by the templates that share it.
    assert_eq!(c.operation_sets.len(), 5);
}
