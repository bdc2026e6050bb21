//! Write a generated benchmark blueprint to stdout:
//! `cargo run --release --example gen_blueprint -- TIERS HOSTS > big.yaml`
//! gives TIERS*10 node templates and TIERS*10*HOSTS node instances; add `--noop` for `noop`
//! lifecycle operations on every node (engine benchmarks).

#[path = "../benches/support/generate.rs"]
mod generate;

fn main() {
    let noop = std::env::args().any(|a| a == "--noop");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (tiers, hosts) = match args.as_slice() {
        [t, h] => (*t, *h),
        _ => {
            eprintln!("usage: gen_blueprint TIERS HOSTS [--noop]");
            std::process::exit(2);
        }
    };
    if noop {
        print!("{}", generate::blueprint_with_noop_operations(tiers, hosts));
    } else {
        print!("{}", generate::blueprint(tiers, hosts));
    }
}
