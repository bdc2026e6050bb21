//! Deploy (create the deployment, then `install`) and undeploy, in process, on the shapes whose
//! cost must stay linear in instances plus relationship instances: the all_to_all fan-out at
//! 250 / 500 / 1,000 instances per tier (62,500 / 250,000 / 1,000,000 links) and the chain of
//! 10,000 instances at depth 10 and 1,000, and 1,000 instances at depth 100. Each timed run
//! works on a fresh SQLite file. For the whole command with its peak RSS, see
//! `benches/shapes.sh`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use windlass::engine::{self, Options};
use windlass::store::Store;

#[path = "support/deployments.rs"]
mod deployments;
#[path = "support/generate.rs"]
mod generate;

fn shapes(c: &mut Criterion) {
    let rt = deployments::runtime();
    let dir = std::env::temp_dir().join(format!("windlass-bench-shapes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut group = c.benchmark_group("shapes");
    group.sample_size(10);
    let cases = [
        ("fan_out_62500_links", generate::fan_out(250)),
        ("fan_out_250000_links", generate::fan_out(500)),
        ("fan_out_1000000_links", generate::fan_out(1000)),
        ("chain_1000_instances_depth_100", generate::chain(100, 5)),
        ("chain_10000_instances_depth_10", generate::chain(10, 500)),
        ("chain_10000_instances_depth_1000", generate::chain(1000, 5)),
    ];
    let mut runs = 0usize;
    for (name, text) in cases {
        // Alone in its directory: the snapshot holds the blueprint only.
        let bp_dir = dir.join(name);
        std::fs::create_dir_all(&bp_dir).unwrap();
        let bp = bp_dir.join("blueprint.yaml");
        std::fs::write(&bp, text).unwrap();
        let mut fresh = || {
            runs += 1;
            let path: PathBuf = dir.join(format!("state-{runs}.db"));
            rt.block_on(Store::open(path.to_str().unwrap())).unwrap()
        };
        group.bench_function(format!("deploy_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = fresh();
                    let start = Instant::now();
                    deploy(&rt, &store, &bp);
                    total += start.elapsed();
                    rt.block_on(store.close());
                }
                total
            })
        });
        group.bench_function(format!("undeploy_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = fresh();
                    deploy(&rt, &store, &bp);
                    let start = Instant::now();
                    rt.block_on(engine::undeploy(&store, "d", false, &Options::default()))
                        .unwrap();
                    total += start.elapsed();
                    rt.block_on(store.close());
                }
                total
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `windlass deploy`: create the deployment `d`, then install it.
fn deploy(rt: &tokio::runtime::Runtime, store: &Store, blueprint: &Path) {
    rt.block_on(async {
        let (_, created) = engine::create_deployment(store, blueprint, "d", &Default::default())
            .await
            .unwrap();
        engine::install(store, created, &Options::default())
            .await
            .unwrap();
    });
}

criterion_group!(benches, shapes);
criterion_main!(benches);
