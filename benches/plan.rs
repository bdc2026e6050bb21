//! Parse + validate + plan of generated blueprints (see `support/generate.rs`):
//! 2,000 node templates with 10,000 and with 100,000 node instances.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/generate.rs"]
mod generate;

fn parse_and_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_and_plan");
    group.sample_size(10);
    for (name, hosts) in [
        ("2000_templates_10k_instances", 5),
        ("2000_templates_100k_instances", 50),
    ] {
        let text = generate::blueprint(200, hosts);
        group.bench_function(name, |b| {
            b.iter(|| {
                let bp = windlass::blueprint::open_str(
                    Path::new("bench.yaml"),
                    &text,
                    &Default::default(),
                )
                .expect("generated blueprint is valid");
                assert_eq!(bp.plan.instances.len(), 2_000 * hosts);
                bp
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_and_plan);
criterion_main!(benches);
