//! `scale +100` and `scale -100` on installed deployments of 1,000 and 10,000 node instances
//! with `noop` operations. The deployment is created and installed outside the timed part, and
//! the store reopened, as a `windlass scale` command finds it.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use windlass::engine::scale::Amount;
use windlass::engine::{self, Options};
use windlass::store::Store;

#[path = "support/deployments.rs"]
mod deployments;

fn blueprint(instances: usize) -> String {
    format!(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml, plugin:noop]\nnode_templates:\n  web:\n    type: cloudify.nodes.WebServer\n    capabilities: {{ scalable: {{ properties: {{ default_instances: {instances} }} }} }}\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: noop.create\n        configure: noop.configure\n        start: noop.start\n        stop: noop.stop\n        delete: noop.delete\n"
    )
}

fn scale(c: &mut Criterion) {
    let rt = deployments::runtime();
    let mut scratch = deployments::Scratch::new("scale");
    let mut group = c.benchmark_group("scale");
    group.sample_size(10);
    for size in [1_000usize, 10_000] {
        let bp = windlass::blueprint::open_str(
            Path::new("bench.yaml"),
            &blueprint(size),
            &Default::default(),
        )
        .unwrap();
        for (label, amount) in [
            ("out_100", Amount::Relative(100)),
            ("in_100", Amount::Relative(-100)),
        ] {
            group.bench_function(format!("{label}_of_{size}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let store = scratch.deployment(&rt, &bp);
                        rt.block_on(engine::run(
                            &store,
                            "bench",
                            "install",
                            Default::default(),
                            false,
                            &Options::default(),
                        ))
                        .unwrap();
                        // As between two commands: the install's connections are closed (its
                        // write-ahead log checkpointed) before the scale opens the store.
                        let location = store.location();
                        rt.block_on(store.close());
                        let store = rt.block_on(Store::open(&location)).unwrap();
                        let start = Instant::now();
                        rt.block_on(engine::scale(
                            &store,
                            "bench",
                            "web",
                            amount,
                            Default::default(),
                            &Options::default(),
                        ))
                        .unwrap();
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);
