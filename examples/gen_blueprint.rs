//! Write a generated benchmark blueprint to stdout:
//! `cargo run --release --example gen_blueprint -- TIERS HOSTS > big.yaml`
//! gives TIERS*10 node templates and TIERS*10*HOSTS node instances; add `--noop` for `noop`
//! lifecycle operations on every node (engine benchmarks).
//! `-- --fan-out N`: two tiers of N instances, all_to_all (N*N relationship instances).
//! `-- --chain TIERS PER`: TIERS tiers of PER hosts with one contained app each, all_to_one.

#[path = "../benches/support/generate.rs"]
mod generate;

fn main() {
    let noop = std::env::args().any(|a| a == "--noop");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if std::env::args().any(|a| a == "--fan-out") {
        match args.as_slice() {
            [n] => print!("{}", generate::fan_out(*n)),
            _ => usage(),
        }
        return;
    }
    if std::env::args().any(|a| a == "--chain") {
        match args.as_slice() {
            [tiers, per] => print!("{}", generate::chain(*tiers, *per)),
            _ => usage(),
        }
        return;
    }
    let (tiers, hosts) = match args.as_slice() {
        [t, h] => (*t, *h),
        _ => usage(),
    };
    if noop {
        print!("{}", generate::blueprint_with_noop_operations(tiers, hosts));
    } else {
        print!("{}", generate::blueprint(tiers, hosts));
    }
}

fn usage() -> ! {
    eprintln!("usage: gen_blueprint TIERS HOSTS [--noop] | --fan-out N | --chain TIERS PER");
    std::process::exit(2);
}
