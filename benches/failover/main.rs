//! `cargo bench --bench failover`: the root of the benchmark in `../failover.rs`,
//! which `benches/cluster.rs` also includes as a module.

// Each root uses a different part of the shared modules.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../failover.rs"]
#[allow(dead_code)]
mod failover;

fn main() -> anyhow::Result<()> {
    failover::main()
}
