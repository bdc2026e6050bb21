//! The Kubernetes plugin's type file (`plugins/kubernetes/plugin.yaml`): its names resolve in
//! both of the plugin's spellings through both import names, mistakes in Kubernetes properties
//! get a "did you mean", `kube_scale` has the seed's parameters, and a deployment that runs a
//! Kubernetes operation this version lacks (kubectl over SSH) fails with an operation error
//! saying it is not implemented yet.

mod common;

use std::path::Path;

use common::Sandbox;
use windlass::blueprint::{self, Error};

/// The 2.x resource kinds the issue names; each exists as `cloudify.kubernetes.resources.K`
/// derived from `cloudify.nodes.kubernetes.resources.K`.
const RESOURCES: &[&str] = &[
    "Deployment",
    "Pod",
    "Service",
    "ConfigMap",
    "Secret",
    "Namespace",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "PersistentVolumeClaim",
    "Ingress",
    "ServiceAccount",
    "BlueprintDefinedResource",
];

fn open(dir: &Sandbox, text: &str) -> Result<blueprint::Blueprint, String> {
    dir.file("blueprint.yaml", text);
    match blueprint::open(&dir.dir.join("blueprint.yaml"), &Default::default()) {
        Ok(bp) => Ok(bp),
        Err(Error::Invalid(r)) => Err(r.plain()),
        Err(e) => Err(e.to_string()),
    }
}

const HEADER: &str =
    "tosca_definitions_version: cloudify_dsl_1_4\nimports:\n  - cloudify/types/types.yaml\n";

#[test]
fn every_resource_kind_in_both_spellings_through_both_import_names() {
    let dir = Sandbox::new("kube-spellings");
    for import in [
        "plugin:kubernetes",
        "plugin:cloudify-kubernetes-plugin?version=2.13.26",
    ] {
        let mut text = format!("{HEADER}  - {import}\nnode_templates:\n");
        text.push_str(
            "  m1:\n    type: cloudify.kubernetes.nodes.Master\n    properties: { configuration: { blueprint_file_name: kubeconfig } }\n",
        );
        text.push_str(
            "  m2:\n    type: cloudify.nodes.kubernetes.Master\n    properties: { configuration: { api_options: { host: 'https://k:6443' } } }\n",
        );
        for kind in RESOURCES {
            for (prefix, rel, master) in [
                (
                    "cloudify.kubernetes.resources",
                    "cloudify.kubernetes.relationships.managed_by_master",
                    "m1",
                ),
                (
                    "cloudify.nodes.kubernetes.resources",
                    "cloudify.relationships.kubernetes.managed_by_master",
                    "m2",
                ),
            ] {
                text.push_str(&format!(
                    "  {kind}_{master}:\n    type: {prefix}.{kind}\n    properties: {{ definition: {{ kind: {kind}, metadata: {{ name: x }} }} }}\n    relationships: [{{ type: {rel}, target: {master} }}]\n"
                ));
            }
        }
        let bp = open(&dir, &text).unwrap_or_else(|e| panic!("{import}: {e}"));
        let deployment = bp
            .compiled
            .nodes
            .iter()
            .find(|n| n.id.0 == "Deployment_m1")
            .unwrap();
        let hierarchy = deployment.type_hierarchy.join(" ");
        assert!(
            hierarchy.ends_with(
                "cloudify.nodes.kubernetes.resources.Deployment cloudify.kubernetes.resources.Deployment"
            ),
            "{hierarchy}"
        );
        // The plugin's defaults: a Deployment waits for readiness, the namespace is `default`.
        assert_eq!(deployment.properties["validate_resource_status"], true);
        assert_eq!(deployment.properties["options"]["namespace"], "default");
        assert_eq!(
            bp.compiled.operations(deployment.operations)["cloudify.interfaces.lifecycle.create"]
                .implementation,
            "resource.create"
        );
    }
}

#[test]
fn file_defined_resources_and_legacy_microservices_map_to_their_functions() {
    let dir = Sandbox::new("kube-functions");
    // validate checks the descriptor files, so they exist.
    dir.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: '{{ name | default(\"p\") }}'}\n",
    );
    dir.file(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
    );
    let bp = open(
        &dir,
        &format!(
            "{HEADER}  - plugin:kubernetes\nnode_templates:
  f:
    type: cloudify.kubernetes.resources.FileDefinedResource
    properties: {{ file: {{ resource_path: pod.yaml, template_variables: {{ name: a }} }} }}
  fs:
    type: cloudify.kubernetes.resources.MultipleFileDefinedResources
    properties: {{ files: [{{ resource_path: pod.yaml }}] }}
  master:
    type: cloudify.kubernetes.Master
    properties: {{ ip: 10.0.0.5, ssh_user: ubuntu, ssh_key: {{ get_secret: key }} }}
  ms:
    type: cloudify.kubernetes.MicroService
    properties: {{ name: web, config_path: web.yaml, config_overrides: [\"['spec']['replicas'] = 2\"] }}
    relationships: [{{ type: cloudify.kubernetes.relationships.connected_to_master, target: master }}]
"
        ),
    )
    .unwrap();
    let op = |node: &str, op: &str| {
        let n = bp.compiled.nodes.iter().find(|n| n.id.0 == node).unwrap();
        let o = &bp.compiled.operations(n.operations)[op];
        format!("{}.{}", o.plugin, o.implementation)
    };
    assert_eq!(
        op("f", "cloudify.interfaces.lifecycle.create"),
        "kubernetes.file_resource.create"
    );
    assert_eq!(
        op("fs", "cloudify.interfaces.lifecycle.delete"),
        "kubernetes.multiple_file_resources.delete"
    );
    assert_eq!(
        op("ms", "cloudify.interfaces.lifecycle.create"),
        "kubernetes.microservice.apply"
    );
    assert_eq!(
        op("ms", "cloudify.interfaces.lifecycle.delete"),
        "kubernetes.microservice.delete"
    );
    let master = bp
        .compiled
        .nodes
        .iter()
        .find(|n| n.id.0 == "master")
        .unwrap();
    assert_eq!(master.properties["master_port"], 8080);
    assert_eq!(master.properties["ssh_port"], 22);
    assert_eq!(master.properties["accept_new_host_keys"], false);
}

#[test]
fn kube_scale_takes_the_seeds_parameters() {
    let dir = Sandbox::new("kube-scale");
    let bp = open(
        &dir,
        &format!("{HEADER}  - plugin:cloudify-kubernetes-plugin\nnode_templates: {{}}\n"),
    )
    .unwrap();
    let w = &bp.compiled.workflows["kube_scale"];
    assert_eq!(w.plugin, "kubernetes");
    assert_eq!(w.operation, "kube_plugin.workflows.kube_scale");
    let names: Vec<&str> = w.parameters.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["master", "ssh_user", "ssh_keyfilename", "name", "amount"]
    );
    assert!(w.parameters["name"].required);
    assert_eq!(w.parameters["amount"].default, Some("+0".into()));
    assert!(!w.parameters["ssh_user"].required);
}

#[test]
fn a_misspelt_kubernetes_property_is_located_with_a_suggestion() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/invalid/i39_kubernetes_properties.yaml");
    let Err(Error::Invalid(report)) = blueprint::open(&path, &Default::default()) else {
        panic!("i39 should be invalid");
    };
    let help = |needle: &str| {
        report
            .diagnostics
            .iter()
            .find(|d| d.message.contains(needle))
            .and_then(|d| d.help.clone())
            .unwrap_or_else(|| panic!("no diagnostic about {needle}"))
    };
    assert_eq!(
        help("`validate_resource_staus`"),
        "did you mean `validate_resource_status`?"
    );
    assert_eq!(help("`config_file`"), "did you mean `config_files`?");
    assert_eq!(
        help("managed_by_mastr"),
        "did you mean `cloudify.kubernetes.relationships.managed_by_master`?"
    );
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.message.contains("`validate_resource_staus`"))
        .unwrap();
    assert_eq!((d.loc.line, d.loc.col), (15, 7));
}

#[test]
fn a_microservice_without_a_master_fails_clearly_and_a_misspelt_operation_is_refused() {
    let sb = Sandbox::new("kube-deploy");
    sb.file(
        "bp.yaml",
        &format!(
            "{HEADER}  - plugin:kubernetes\nnode_templates:
  ms:
    type: cloudify.kubernetes.MicroService
    properties: {{ name: web, config: {{ kind: Pod, metadata: {{ name: web }} }} }}
"
        ),
    );
    let err = sb.err(&["deploy", "bp.yaml", "-d", "k"]);
    assert!(
        err.contains(
            "`ms` has no `cloudify.kubernetes.relationships.connected_to_master` relationship: a MicroService needs the master kubectl runs on"
        ),
        "{err}"
    );
    let events = sb.ok(&["events", "k"]);
    assert!(events.contains("task_failed"), "{events}");
    let ms = sb
        .instances("k")
        .into_iter()
        .find(|i| i["node_id"] == "ms")
        .unwrap();
    assert_ne!(ms["state"], "started");

    sb.file(
        "typo.yaml",
        &format!(
            "{HEADER}  - plugin:kubernetes\nnode_templates:
  cm:
    type: cloudify.kubernetes.resources.ConfigMap
    properties: {{ definition: {{ kind: ConfigMap }} }}
    interfaces:
      cloudify.interfaces.lifecycle:
        create: kubernetes.resource.craete
"
        ),
    );
    let err = sb.err(&["deploy", "typo.yaml", "-d", "t"]);
    assert!(
        err.contains("plugin `kubernetes` has no function `resource.craete`"),
        "{err}"
    );
}

#[test]
fn the_autoscale_example_validates_and_plans() {
    let bp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("blueprints/kubernetes-autoscale/blueprint.yaml");
    let sb = Sandbox::new("kube-example");
    let bp = bp.to_str().unwrap();
    sb.ok(&["validate", bp]);
    let plan = sb.json(&["plan", bp, "-i", "master_ip=10.0.0.5", "--format", "json"]);
    let nodes: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["kube_master", "nodejs", "nodejs_service"]);
    assert_eq!(plan["nodes"][0]["properties"]["ip"], "10.0.0.5");
    let overrides = &plan["nodes"][1]["properties"]["config_files"][0]["overrides"];
    assert!(
        overrides[0]
            .as_str()
            .unwrap()
            .ends_with("= '%{management_ip}'"),
        "{overrides}"
    );
    assert!(plan["workflows"]["kube_scale"].is_object());
}
