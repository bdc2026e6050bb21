//! Generator of large blueprints for benchmarks: `tiers` tiers of ten node templates each (one
//! Compute host and nine components contained in it), `hosts` host instances per tier, so
//! `tiers * 10` templates and `tiers * 10 * hosts` instances. Components read inputs and
//! properties through intrinsic functions; every tier's host depends on the previous tier's
//! (all_to_one), so the relationship graph is deep as well as wide.

use std::fmt::Write;

pub fn blueprint(tiers: usize, hosts: usize) -> String {
    let mut out = String::with_capacity(tiers * 2_000);
    out.push_str(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports:\n  - cloudify/types/types.yaml\n\
         inputs:\n  env:\n    type: string\n    default: prod\n  hosts:\n    type: integer\n",
    );
    let _ = writeln!(out, "    default: {hosts}");
    out.push_str(
        "node_types:\n  bench.Component:\n    derived_from: cloudify.nodes.SoftwareComponent\n    properties:\n      \
         name: { type: string }\n      port: { type: integer, default: 8080 }\n      url: { type: string, required: false }\n\
         node_templates:\n",
    );
    for t in 0..tiers {
        let _ = write!(
            out,
            "  host_{t}:\n    type: cloudify.nodes.Compute\n    capabilities:\n      scalable:\n        properties:\n          default_instances: {{ get_input: hosts }}\n"
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
                 relationships:\n      - {{ type: cloudify.relationships.contained_in, target: host_{t} }}\n"
            );
        }
    }
    out
}
