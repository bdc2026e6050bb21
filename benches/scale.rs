//! `scale +100` and `scale -100` on installed deployments of 1,000 and 10,000 node instances
//! with `noop` operations. The deployment is created and installed outside the timed part.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use windlass::engine::scale::Amount;
use windlass::engine::{self, Options};
use windlass::store::Store;

fn blueprint(instances: usize) -> String {
    format!(
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml, plugin:noop]\nnode_templates:\n  web:\n    type: cloudify.nodes.WebServer\n    capabilities: {{ scalable: {{ properties: {{ default_instances: {instances} }} }} }}\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: noop.create\n        configure: noop.configure\n        start: noop.start\n        stop: noop.stop\n        delete: noop.delete\n"
    )
}

fn scale(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("windlass-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("scale");
    group.sample_size(10);
    for size in [1_000usize, 10_000] {
        let bp = windlass::blueprint::open_str(
            Path::new("bench.yaml"),
            &blueprint(size),
            &Default::default(),
        )
        .unwrap();
        let mut n = 0;
        let mut installed = || {
            n += 1;
            let path = dir.join(format!("{size}-{n}.db"));
            rt.block_on(async {
                let store = Store::open(path.to_str().unwrap()).await.unwrap();
                store
                    .create_deployment(
                        "bench",
                        "bench.yaml",
                        &serde_json::json!({}),
                        &bp.compiled,
                        &bp.plan,
                        &[],
                    )
                    .await
                    .unwrap();
                engine::run(
                    &store,
                    "bench",
                    "install",
                    Default::default(),
                    false,
                    &Options::default(),
                )
                .await
                .unwrap();
                store
            })
        };
        for (label, amount) in [
            ("out_100", Amount::Relative(100)),
            ("in_100", Amount::Relative(-100)),
        ] {
            group.bench_function(format!("{label}_of_{size}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let store = installed();
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
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, scale);
criterion_main!(benches);
