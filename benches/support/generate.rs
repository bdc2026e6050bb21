//! Generator of large blueprints for benchmarks: `tiers` tiers of ten node templates each (one
//! Compute host and nine components contained in it), `hosts` host instances per tier, so
//! `tiers * 10` templates and `tiers * 10 * hosts` instances. Components read inputs and
//! properties through intrinsic functions; every tier's host depends on the previous tier's
//! (all_to_one), so the relationship graph is deep as well as wide.

use std::fmt::Write;

#[allow(dead_code)] // each bench uses one of the two
pub fn blueprint(tiers: usize, hosts: usize) -> String {
    generate(tiers, hosts, false)
}

/// The same blueprint with `noop` lifecycle operations on every node, for engine benchmarks.
#[allow(dead_code)] // each bench uses one of the two
pub fn blueprint_with_noop_operations(tiers: usize, hosts: usize) -> String {
    generate(tiers, hosts, true)
}

fn generate(tiers: usize, hosts: usize, noop: bool) -> String {
    let mut out = String::with_capacity(tiers * 2_000);
    out.push_str(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports:\n  - cloudify/types/types.yaml\n  - plugin:noop\n\
         inputs:\n  env:\n    type: string\n    default: prod\n  hosts:\n    type: integer\n",
    );
    let _ = writeln!(out, "    default: {hosts}");
    out.push_str(
        "node_types:\n  bench.Component:\n    derived_from: cloudify.nodes.SoftwareComponent\n    properties:\n      \
         name: { type: string }\n      port: { type: integer, default: 8080 }\n      url: { type: string, required: false }\n\
         node_templates:\n",
    );
    let ops = if noop {
        "    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: noop.create\n        configure: noop.configure\n        \
         start: noop.start\n        stop: noop.stop\n        delete: noop.delete\n"
    } else {
        ""
    };
    for t in 0..tiers {
        let _ = write!(
            out,
            "  host_{t}:\n    type: cloudify.nodes.Compute\n    capabilities:\n      scalable:\n        properties:\n          default_instances: {{ get_input: hosts }}\n{ops}"
        );
        if t > 0 {
            let _ = write!(
                out,
                "    relationships:\n      - type: cloudify.relationships.depends_on\n        target: host_{}\n        properties: {{ connection_type: all_to_one }}\n",
                t - 1
            );
        }
        for c in 0..9 {
            let _ = write!(
                out,
                "  app_{t}_{c}:\n    type: bench.Component\n    properties:\n      name: {{ concat: [ {{ get_input: env }}, '-{t}-{c}' ] }}\n      \
                 url: {{ concat: [ 'http://', {{ get_property: [SELF, name] }}, ':', {{ get_property: [SELF, port] }} ] }}\n    \
                 relationships:\n      - {{ type: cloudify.relationships.contained_in, target: host_{t} }}\n{ops}"
            );
        }
    }
    out
}

/// Two tiers of `n` instances each, every `host1` instance `depends_on` every `app0` instance
/// (`all_to_all`): `n * n` relationship instances, no operations. A load balancer in front of a
/// large web tier has this shape.
#[allow(dead_code)]
pub fn fan_out(n: usize) -> String {
    format!(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  \
         app0:\n    type: cloudify.nodes.Root\n    capabilities: {{ scalable: {{ properties: {{ default_instances: {n} }} }} }}\n  \
         host1:\n    type: cloudify.nodes.Root\n    capabilities: {{ scalable: {{ properties: {{ default_instances: {n} }} }} }}\n    \
         relationships:\n      - {{ type: cloudify.relationships.depends_on, target: app0 }}\n"
    )
}

/// `tiers` tiers, each a Compute `host_N` with `per` instances that `depends_on` the previous
/// tier's `app_(N-1)` (`all_to_one`) and an `app_N` contained in it: `2 * tiers * per`
/// instances, no operations, as deep as it is long.
#[allow(dead_code)]
pub fn chain(tiers: usize, per: usize) -> String {
    let mut out = String::from(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n",
    );
    for t in 0..tiers {
        let _ = write!(
            out,
            "  host_{t}:\n    type: cloudify.nodes.Compute\n    properties: {{ agent_config: {{ install_method: none }} }}\n    \
             capabilities: {{ scalable: {{ properties: {{ default_instances: {per} }} }} }}\n"
        );
        if t > 0 {
            let _ = write!(
                out,
                "    relationships:\n      - {{ type: cloudify.relationships.depends_on, target: app_{}, properties: {{ connection_type: all_to_one }} }}\n",
                t - 1
            );
        }
        let _ = write!(
            out,
            "  app_{t}:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: host_{t} }}\n"
        );
    }
    out
}
