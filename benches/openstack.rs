//! `windlass scale ID dea_vm +50` (then `-50`) against the OpenStack contract server with the
//! latencies of a real cloud, with the real binary (`cargo bench --bench openstack`; `cargo
//! test --bench openstack` runs the same in a debug build). Not criterion: one scale is the
//! measurement, and its time is the cloud's, not windlass's.
//!
//! The cloud: every answer takes `LATENCY` (Keystone's, Nova's and Neutron's alike); a new
//! server is in BUILD for `BUILD_POLLS` reads and a deleted one answers `DELETE_POLLS` more
//! reads before its 404. The plugin polls after 1 s, then ×1.5 each time (its defaults), so a
//! server is ACTIVE about 13 s after it was posted, as small VMs are on a quiet cloud. The
//! scale runs with `--parallelism 50`.
//!
//! Printed: the wall time of each scale, the requests the cloud answered during it, per VM,
//! and how many of them were tokens (one per process is the goal).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

#[allow(dead_code)]
#[path = "../tests/support/openstack/mod.rs"]
mod openstack;

use openstack::{IMAGE, OpenStack, Options};

const LATENCY: Duration = Duration::from_millis(60);
const BUILD_POLLS: u32 = 5;
const DELETE_POLLS: u32 = 2;
const VMS: usize = 50;

fn windlass(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .current_dir(dir)
        .env("WINDLASS_STATE", dir.join("state.db"))
        .output()
        .expect("run windlass");
    assert!(
        out.status.success(),
        "windlass {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let os = OpenStack::start(Options {
        latency: LATENCY,
        build_polls: BUILD_POLLS,
        delete_polls: DELETE_POLLS,
        ..Options::default()
    });
    let dir = std::env::temp_dir().join(format!("windlass-bench-openstack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    std::fs::write(
        dir.join("blueprint.yaml"),
        format!(
            "tosca_definitions_version: cloudify_dsl_1_4
imports: [cloudify/types/types.yaml, plugin:cloudify-openstack-plugin]
inputs:
  client_config: {{}}
node_templates:
  sg:
    type: cloudify.nodes.openstack.SecurityGroup
    properties:
      client_config: {{ get_input: client_config }}
      resource_config: {{ name: dea }}
  dea_vm:
    type: cloudify.nodes.openstack.Server
    properties:
      client_config: {{ get_input: client_config }}
      agent_config: {{ install_method: none }}
      resource_config: {{ image_id: {IMAGE}, flavor_id: '1' }}
    relationships:
      - {{ type: cloudify.relationships.openstack.server_connected_to_security_group, target: sg }}
"
        ),
    )
    .expect("write the blueprint");
    let inputs = json!({ "client_config": os.client_config() }).to_string();
    windlass(
        &dir,
        &["deploy", "blueprint.yaml", "-d", "bench", "-i", &inputs],
    );

    for (amount, label) in [
        (format!("+{VMS}"), "scale-out"),
        (format!("-{VMS}"), "scale-in"),
    ] {
        let before = os.requests().len();
        let started = Instant::now();
        windlass(
            &dir,
            &["scale", "bench", "dea_vm", &amount, "--parallelism", "50"],
        );
        let wall = started.elapsed();
        let requests = &os.requests()[before..];
        let tokens = requests
            .iter()
            .filter(|r| r.path.ends_with("/auth/tokens"))
            .count();
        let errors = requests
            .iter()
            .filter(|r| r.status >= 400 && r.status != 404)
            .count();
        println!(
            "{label} {amount}: {:.1} s wall, {} requests ({:.1} per VM, {tokens} token, {errors} failed), {} servers now",
            wall.as_secs_f64(),
            requests.len(),
            requests.len() as f64 / VMS as f64,
            os.servers().len()
        );
    }
    windlass(&dir, &["undeploy", "bench"]);
    let _ = std::fs::remove_dir_all(&dir);
}
