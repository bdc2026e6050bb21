//! Engine time of `install` and `uninstall` on generated deployments of 4,000 and 10,000 node
//! instances whose lifecycle operations are `noop` (see `support/generate.rs`). The blueprint
//! is compiled and the deployment created outside the timed part; each timed run works on a
//! fresh SQLite state file.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use windlass::engine::{self, Options};

#[path = "support/deployments.rs"]
mod deployments;
#[path = "support/generate.rs"]
mod generate;

fn engine_workflows(c: &mut Criterion) {
    let rt = deployments::runtime();
    let mut scratch = deployments::Scratch::new("engine");
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for (name, tiers) in [("4000_instances", 40), ("10000_instances", 100)] {
        let text = generate::blueprint_with_noop_operations(tiers, 10);
        let bp = windlass::blueprint::open_str(Path::new("bench.yaml"), &text, &Default::default())
            .unwrap();
        // Times `workflow` on a fresh deployment, after running `before` (untimed).
        let mut timed = |b: &mut criterion::Bencher, before: &[&str], workflow: &str| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = scratch.deployment(&rt, &bp);
                    for w in before {
                        rt.block_on(engine::run(
                            &store,
                            "bench",
                            w,
                            Default::default(),
                            false,
                            &Options::default(),
                        ))
                        .unwrap();
                    }
                    let start = Instant::now();
                    rt.block_on(engine::run(
                        &store,
                        "bench",
                        workflow,
                        Default::default(),
                        false,
                        &Options::default(),
                    ))
                    .unwrap();
                    total += start.elapsed();
                }
                total
            })
        };
        group.bench_function(format!("install_{name}"), |b| timed(b, &[], "install"));
        group.bench_function(format!("uninstall_{name}"), |b| {
            timed(b, &["install"], "uninstall")
        });
    }
    group.finish();
}

criterion_group!(benches, engine_workflows);
criterion_main!(benches);
