//! Engine time of `install` and `uninstall` on generated deployments of 4,000 and 10,000 node
//! instances whose lifecycle operations are `noop` (see `support/generate.rs`). The blueprint
//! is compiled and the deployment created outside the timed part; each timed run works on a
//! fresh SQLite state file.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use windlass::engine::{self, Options};
use windlass::store::Store;

#[path = "support/generate.rs"]
mod generate;

fn engine_workflows(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("windlass-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for (name, tiers) in [("4000_instances", 40), ("10000_instances", 100)] {
        let text = generate::blueprint_with_noop_operations(tiers, 10);
        let bp = windlass::blueprint::open_str(Path::new("bench.yaml"), &text, &Default::default())
            .unwrap();
        let mut n = 0;
        let mut fresh = |store_dir: &Path| {
            n += 1;
            let path = store_dir.join(format!("{name}-{n}.db"));
            rt.block_on(async {
                let store = Store::open(path.to_str().unwrap()).await.unwrap();
                let inputs = serde_json::json!({});
                store
                    .create_deployment("bench", "bench.yaml", &inputs, &bp.compiled, &bp.plan, &[])
                    .await
                    .unwrap();
                store
            })
        };
        // Times `workflow` on a fresh deployment, after running `before` (untimed).
        let mut timed = |b: &mut criterion::Bencher, before: &[&str], workflow: &str| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = fresh(&dir);
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
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, engine_workflows);
criterion_main!(benches);
