//! `cargo bench --bench proxy`: the root of the benchmark in `../proxy.rs`, which
//! `benches/cluster.rs` also includes as a module.

// Each root uses a different part of the shared modules.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../proxy.rs"]
#[allow(dead_code)]
mod proxy;

fn main() -> anyhow::Result<()> {
    proxy::main()
}
