//! Scaling through the real binary: scale-out and scale-in of plain nodes, contained chains and
//! scaling groups, establish/unlink on related instances, rollback, min/max, hints, and the
//! Cloudify parameter forms. Asserted through `instances --json` and the operations log.

use serde_json::Value as Json;

mod common;

use common::Sandbox;

/// A sandbox whose `scripts/op.sh` records "<instance> <operation>" in ops.log and refuses a
/// create while a file `fail-<node>` exists.
fn sandbox(name: &str, blueprint: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.file(
        "scripts/op.sh",
        &format!(
            "#!/bin/bash\nset -e\necho \"$(ctx instance id) $(ctx operation name)\" >> '{log}'\nif [ \"$(ctx operation name)\" = cloudify.interfaces.lifecycle.create ] && [ -f \"{dir}/fail-$(ctx node id)\" ]; then echo 'create refused' >&2; exit 1; fi\n",
            log = sb.dir.join("ops.log").display(),
            dir = sb.dir.display()
        ),
    );
    sb.file("blueprint.yaml", blueprint);
    sb
}

fn count(sb: &Sandbox, node: &str) -> usize {
    sb.instances("d")
        .iter()
        .filter(|i| i["node_id"] == node)
        .count()
}

const OPS: &str = "    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/op.sh\n        start: scripts/op.sh\n        stop: scripts/op.sh\n        delete: scripts/op.sh\n";
const LINK_OPS: &str = "        source_interfaces:\n          cloudify.interfaces.relationship_lifecycle:\n            establish: scripts/op.sh\n            unlink: scripts/op.sh\n";

fn web_blueprint() -> String {
    format!(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm:\n    type: cloudify.nodes.Compute\n    capabilities: {{ scalable: {{ properties: {{ default_instances: 2, max_instances: 5 }} }} }}\n{OPS}  web:\n    type: cloudify.nodes.WebServer\n{OPS}    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: vm }}\n  lb:\n    type: cloudify.nodes.LoadBalancer\n{OPS}    relationships:\n      - type: cloudify.relationships.connected_to\n        target: web\n{LINK_OPS}  master:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: 2 }}\n  worker:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.connected_to, target: master, properties: {{ connection_type: all_to_one }} }}\n"
    )
}

#[test]
fn scale_out_and_in_a_host_with_what_it_contains() {
    let sb = sandbox("vm", &web_blueprint());
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    sb.clear_log();
    sb.ok(&["scale", "d", "vm", "+2"]);
    assert_eq!((count(&sb, "vm"), count(&sb, "web")), (4, 4));
    let log = sb.log();
    // Only the new instances were installed: 2 vms + 2 webs, create and start each.
    assert_eq!(
        log.iter()
            .filter(|l| l.ends_with("lifecycle.create"))
            .count(),
        4,
        "{log:#?}"
    );
    // The existing lb established its links to the two new webs, after they started.
    let establishes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("lb_") && l.ends_with("establish"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(establishes.len(), 2, "{log:#?}");
    let web_starts: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("web_") && l.ends_with("start"))
        .map(|(i, _)| i)
        .collect();
    assert!(establishes.iter().all(|e| web_starts.iter().any(|s| s < e)));
    let instances = sb.instances("d");
    let lb = instances.iter().find(|i| i["node_id"] == "lb").unwrap();
    assert_eq!(lb["relationships"].as_array().unwrap().len(), 4);
    assert!(instances.iter().all(|i| i["state"] == "started"));

    sb.clear_log();
    let newest_vm = instances.iter().rfind(|i| i["node_id"] == "vm").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sb.ok(&["scale", "d", "vm", "-1"]);
    assert_eq!((count(&sb, "vm"), count(&sb, "web")), (3, 3));
    assert!(
        sb.instances("d")
            .iter()
            .all(|i| i["id"] != newest_vm.as_str()),
        "newest first"
    );
    let log = sb.log();
    let unlink = log
        .iter()
        .position(|l| l.starts_with("lb_") && l.ends_with("unlink"))
        .expect("lb unlinked");
    let web_stop = log
        .iter()
        .position(|l| l.starts_with("web_") && l.ends_with("stop"))
        .unwrap();
    let vm_delete = log
        .iter()
        .position(|l| l.starts_with("vm_") && l.ends_with("delete"))
        .unwrap();
    assert!(unlink < web_stop || unlink < vm_delete, "{log:#?}");
    assert!(web_stop < vm_delete, "contained first: {log:#?}");
    let lb = sb
        .instances("d")
        .into_iter()
        .find(|i| i["node_id"] == "lb")
        .unwrap();
    assert_eq!(lb["relationships"].as_array().unwrap().len(), 3);

    // Absolute counts, and Cloudify's parameters through `run`.
    sb.ok(&["scale", "d", "vm", "2"]);
    assert_eq!(count(&sb, "vm"), 2);
    sb.ok(&[
        "run",
        "d",
        "scale",
        "-p",
        "scalable_entity_name=vm",
        "-p",
        "delta=+1",
    ]);
    assert_eq!(count(&sb, "vm"), 3);
    sb.ok(&[
        "run",
        "d",
        "scale",
        "-p",
        "{\"scalable_entity_name\": \"web\", \"delta\": 1}",
    ]);
    assert_eq!(count(&sb, "web"), 6, "web scales per vm: 2 on each of 3");
}

#[test]
fn limits_are_checked_before_anything_runs() {
    let sb = sandbox("limits", &web_blueprint());
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    let err = sb.err(&["scale", "d", "vm", "+4"]);
    assert!(err.contains("vm has max_instances 5; 2 + 4 = 6"), "{err}");
    let err = sb.err(&["scale", "d", "vm", "-3"]);
    assert!(err.contains("vm has 2 instances; 2 - 3 = -1"), "{err}");
    let err = sb.err(&["scale", "d", "vmm", "+1"]);
    assert!(err.contains("did you mean `vm`?"), "{err}");
    let err = sb.err(&["scale", "d", "vm", "plenty"]);
    assert!(err.contains("+N to add"), "{err}");
    // Nothing ran and nothing was recorded.
    let execs: Json =
        serde_json::from_slice(&sb.run(&["executions", "d", "--json"]).stdout).unwrap();
    assert_eq!(execs.as_array().unwrap().len(), 1);
    sb.ok(&["scale", "d", "vm", "+0"]);
    assert_eq!(count(&sb, "vm"), 2);
}

#[test]
fn a_failing_scale_out_is_rolled_back() {
    let sb = sandbox("rollback", &web_blueprint());
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    let before = sb.instances("d");
    sb.file("fail-web", "");
    sb.clear_log();
    let err = sb.err(&["scale", "d", "vm", "+1"]);
    assert!(
        err.contains("create refused") && err.contains("rolled back"),
        "{err}"
    );
    let after = sb.instances("d");
    assert_eq!(after, before, "the deployment is exactly as before");
    let log = sb.log();
    // The new vm was created and started, then stopped and deleted by the rollback.
    assert!(
        log.iter()
            .any(|l| l.starts_with("vm_") && l.ends_with("lifecycle.delete")),
        "{log:#?}"
    );
    // Without rollback the failed instances stay for resume or undeploy.
    let err = sb.err(&["scale", "d", "vm", "+1", "--no-rollback"]);
    assert!(!err.contains("rolled back"), "{err}");
    assert_eq!(count(&sb, "vm"), 3);
    std::fs::remove_file(sb.dir.join("fail-web")).unwrap();
    sb.ok(&["resume", "d"]);
    assert!(sb.instances("d").iter().all(|i| i["state"] == "started"));
    sb.ok(&["undeploy", "d"]);
}

#[test]
fn scaling_groups_scale_as_a_unit_and_hints_pick_what_goes() {
    let bp = format!(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm:\n    type: cloudify.nodes.Compute\n{OPS}  db:\n    type: cloudify.nodes.DBMS\n    relationships: [{{ type: cloudify.relationships.contained_in, target: vm }}]\n  app:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: vm }}\n      - {{ type: cloudify.relationships.connected_to, target: db }}\ngroups:\n  pair: {{ members: [vm] }}\npolicies:\n  p: {{ type: cloudify.policies.scaling, properties: {{ default_instances: 2, min_instances: 1 }}, targets: [pair] }}\nworkflows:\n  grow:\n    mapping: default_workflows.cloudify.plugins.workflows.scale\n    parameters:\n      node_id: {{}}\n      delta: {{ default: 1 }}\n      scale_compute: {{ default: true }}\n"
    );
    let sb = sandbox("group", &bp);
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    // Naming a member scales its group, and says so.
    assert!(
        sb.ok(&["scale", "d", "vm", "+1"])
            .contains("member of the scaling group `pair`")
    );
    assert_eq!(
        (count(&sb, "vm"), count(&sb, "db"), count(&sb, "app")),
        (3, 3, 3)
    );
    // Links stay inside each group instance.
    let instances = sb.instances("d");
    for app in instances.iter().filter(|i| i["node_id"] == "app") {
        let db_id = app["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target_name"] == "db")
            .unwrap()["target_id"]
            .clone();
        let db = instances.iter().find(|i| i["id"] == db_id).unwrap();
        assert_eq!(db["host_id"], app["host_id"]);
    }
    // The legacy scale(node_id, delta) mapping of a declared workflow.
    sb.ok(&[
        "run",
        "d",
        "grow",
        "-p",
        "node_id=pair",
        "-p",
        "delta=-1",
        "--allow-custom-parameters",
    ]);
    assert_eq!(count(&sb, "vm"), 2);
    // include/exclude hints: remove the vm that holds a given db, keep another.
    let instances = sb.instances("d");
    let dbs: Vec<&Json> = instances.iter().filter(|i| i["node_id"] == "db").collect();
    let (doomed_db, doomed_host) = (
        dbs[0]["id"].as_str().unwrap(),
        dbs[0]["host_id"].as_str().unwrap().to_string(),
    );
    sb.ok(&["scale", "d", "pair", "-1", "--include", doomed_db]);
    assert!(
        sb.instances("d")
            .iter()
            .all(|i| i["id"] != doomed_host.as_str())
    );
    let err = sb.err(&["scale", "d", "pair", "-1"]);
    assert!(err.contains("pair has min_instances 1; 1 - 1 = 0"), "{err}");
}

#[test]
fn all_to_one_sources_keep_their_target() {
    let sb = sandbox("all-to-one", &web_blueprint());
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    let target = |sb: &Sandbox| -> Vec<String> {
        sb.instances("d")
            .iter()
            .filter(|i| i["node_id"] == "worker")
            .map(|w| {
                w["relationships"][0]["target_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let before = target(&sb)[0].clone();
    sb.ok(&["scale", "d", "worker", "+3"]);
    sb.ok(&["scale", "d", "master", "+2"]);
    let after = target(&sb);
    assert_eq!(after.len(), 4);
    assert!(after.iter().all(|t| *t == before), "{after:?}");
}

/// Operations run by a scale see the whole deployment through `ctx node-instances` and
/// `ctx node-instance ID`, and `get_attribute` of another node resolves, although a scale
/// reads only the instances it touches.
#[test]
fn scale_operations_see_instances_the_scale_does_not_touch() {
    let head = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  db:\n    type: cloudify.nodes.Root\n    interfaces: { cloudify.interfaces.lifecycle: { create: scripts/db.sh } }\n  web:\n    type: cloudify.nodes.Root\n    instances: { deploy: 3 }\n";
    // Through ctx: the db's id from `node-instances`, its address through `node-instance`.
    let by_ctx = format!(
        "{head}    interfaces: {{ cloudify.interfaces.lifecycle: {{ create: scripts/web.sh }} }}\n"
    );
    // Through get_attribute of another node, in an operation input.
    let by_input = format!(
        "{head}    interfaces:\n      cloudify.interfaces.lifecycle:\n        create:\n          implementation: scripts/web.sh\n          inputs: {{ db_ip: {{ get_attribute: [db, ip] }} }}\n"
    );
    for (label, blueprint) in [("ctx", by_ctx), ("input", by_input)] {
        let sb = Sandbox::new(&format!("sees-{label}"));
        sb.file("blueprint.yaml", &blueprint);
        sb.script(
            "scripts/db.sh",
            "ctx instance runtime-properties ip 10.0.0.7\n",
        );
        sb.script(
            "scripts/web.sh",
            "set -e\nall=$(ctx node-instances)\ndb=$(ctx node-instances db | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"id\"])')\nip=${db_ip:-$(ctx node-instance \"$db\" runtime-properties ip)}\necho \"$(ctx instance id) $(echo \"$all\" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') $ip\" >> ops.log\n",
        );
        sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
        sb.clear_log();
        sb.ok(&["scale", "d", "web", "+1"]);
        let log = sb.log();
        assert_eq!(log.len(), 1, "{label}: {log:?}");
        let words: Vec<&str> = log[0].split(' ').collect();
        assert!(words[0].starts_with("web_"), "{label}: {log:?}");
        assert_eq!(
            &words[1..],
            ["5", "10.0.0.7"],
            "{label}: all 5 instances, the db's address"
        );
    }
}
