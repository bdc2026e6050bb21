//! heal and blueprint-declared workflows (typed parameters, script workflows) through the binary.

use serde_json::Value as Json;

mod common;

use common::Sandbox;

fn record(sb: &Sandbox) {
    sb.file(
        "scripts/op.sh",
        &format!(
            "#!/bin/bash\necho \"$(ctx instance id) $(ctx operation name)\" >> '{}'\n",
            sb.dir.join("ops.log").display()
        ),
    );
}

const OPS: &str = "    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/op.sh\n        delete: scripts/op.sh\n";

#[test]
fn heal_reinstalls_the_host_subtree_and_relinks() {
    let sb = Sandbox::new("heal");
    record(&sb);
    sb.file(
        "blueprint.yaml",
        &format!(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm:\n    type: cloudify.nodes.Compute\n    instances: {{ deploy: 2 }}\n{OPS}  app:\n    type: cloudify.nodes.Root\n{OPS}    relationships: [{{ type: cloudify.relationships.contained_in, target: vm }}]\n  lb:\n    type: cloudify.nodes.Root\n    relationships:\n      - type: cloudify.relationships.connected_to\n        target: app\n        source_interfaces:\n          cloudify.interfaces.relationship_lifecycle:\n            establish: scripts/op.sh\n            unlink: scripts/op.sh\n  fixer:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        heal: scripts/op.sh\n"
        ),
    );
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    std::fs::remove_file(sb.dir.join("ops.log")).unwrap();
    let instances = sb.instances("d");
    let app = instances.iter().find(|i| i["node_id"] == "app").unwrap();
    let (app_id, host) = (
        app["id"].as_str().unwrap(),
        app["host_id"].as_str().unwrap(),
    );
    sb.ok(&["heal", "d", app_id]);
    let log = sb.log();
    // The app's host and the app were deleted and created again; the other vm was not touched.
    for (who, op) in [
        (app_id, "delete"),
        (host, "delete"),
        (host, "create"),
        (app_id, "create"),
    ] {
        assert!(
            log.iter().any(|l| l.starts_with(who) && l.ends_with(op)),
            "{who} {op}: {log:#?}"
        );
    }
    assert_eq!(
        log.iter()
            .filter(|l| l.ends_with("lifecycle.create"))
            .count(),
        2,
        "{log:#?}"
    );
    let unlink = log.iter().position(|l| l.ends_with("unlink")).unwrap();
    let establish = log.iter().position(|l| l.ends_with("establish")).unwrap();
    let recreate = log
        .iter()
        .position(|l| l.starts_with(app_id) && l.ends_with("create"))
        .unwrap();
    assert!(unlink < recreate && recreate < establish, "{log:#?}");
    assert!(sb.instances("d").iter().all(|i| i["state"] == "started"));
    // A node with its own heal operation runs that instead.
    std::fs::remove_file(sb.dir.join("ops.log")).unwrap();
    let fixer = instances.iter().find(|i| i["node_id"] == "fixer").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sb.ok(&[
        "run",
        "d",
        "heal",
        "-p",
        &format!("node_instance_id={fixer}"),
    ]);
    assert_eq!(
        sb.log(),
        vec![format!("{fixer} cloudify.interfaces.lifecycle.heal")]
    );
}

#[test]
fn declared_workflows_validate_their_parameters_and_scripts_get_deployment_ctx() {
    let sb = Sandbox::new("declared");
    sb.file(
        "scripts/report.sh",
        &format!(
            "#!/bin/bash\nset -e\nctx logger info \"reporting to $target, keeping $keep\"\nfirst=$(ctx node-instances web | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"id\"])')\nctx node-instance \"$first\" runtime-properties reported_to \"$target\"\nctx node-instances > '{}'\n",
            sb.dir.join("all.json").display()
        ),
    );
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  web:\n    type: cloudify.nodes.Root\n    instances: { deploy: 2 }\nworkflows:\n  report:\n    mapping: scripts/report.sh\n    parameters:\n      target: { type: string, description: where to report }\n      keep: { type: integer, default: 7 }\n",
    );
    sb.ok(&["deploy", "blueprint.yaml", "-d", "d"]);
    let listing = sb.ok(&["workflows", "d"]);
    assert!(
        listing.contains("report\tscript.scripts/report.sh")
            && listing.contains("target: string (required)  where to report"),
        "{listing}"
    );
    let err = sb.refused(&["run", "d", "report"]);
    assert!(err.contains("needs the parameter `target`"), "{err}");
    let err = sb.refused(&["run", "d", "report", "-p", "target=x;keep=many"]);
    assert!(
        err.contains("parameter `keep` must be of type integer"),
        "{err}"
    );
    let err = sb.refused(&["run", "d", "report", "-p", "target=x;color=red"]);
    assert!(
        err.contains("`color` is not a parameter of workflow `report`"),
        "{err}"
    );
    let out = sb.ok(&["run", "d", "report", "-p", "target=ops", "-p", "keep=3"]);
    assert!(out.contains("reporting to ops, keeping 3"), "{out}");
    let all: Json =
        serde_json::from_str(&std::fs::read_to_string(sb.dir.join("all.json")).unwrap()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(
        sb.instances("d")
            .iter()
            .filter(|i| i["runtime_properties"]["reported_to"] == "ops")
            .count(),
        1
    );
    sb.ok(&[
        "run",
        "d",
        "report",
        "-p",
        "target=x;color=red",
        "--allow-custom-parameters",
    ]);
    let err = sb.refused(&["run", "d", "reprot"]);
    assert!(err.contains("did you mean `report`?"), "{err}");
}
