//! `cargo bench --bench config`: the root of the benchmark in `../config.rs`,
//! which `benches/cluster.rs` also includes as a module.

// Each root uses a different part of the shared modules.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../config.rs"]
#[allow(dead_code)]
mod config;

fn main() -> anyhow::Result<()> {
    config::main()
}
