//! Link options of the `windlass` executable; nothing is generated.
//!
//! On Linux with the GNU toolchain the executable is linked at a fixed address (`-no-pie`), as
//! Go links its executables. A position-independent `windlass` had the dynamic loader apply
//! 43,355 relocations at every start, writing into 180 pages of its read-only data, before
//! `main`: 0.9 ms of every command (`windlass --version`: 3.3 → 2.3 ms, 473 → 294 page faults).
//! The shared libraries, the heap, the stacks and every mapping keep their random addresses;
//! only the executable's own code and data do not move. ARCHITECTURE.md says why that is the
//! trade taken.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
