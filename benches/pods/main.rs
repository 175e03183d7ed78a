//! `cargo bench --bench pods`: the root of the benchmark in `../pods.rs`, which
//! `benches/cluster.rs` also includes as a module.

// Each root uses a different part of the shared modules.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../pods.rs"]
#[allow(dead_code)]
mod pods;

fn main() -> anyhow::Result<()> {
    pods::main()
}
