//! `cargo bench --bench api_writes`: the root of the benchmark in `../api_writes.rs`.
//!
//! A root of its own, because `benches/cluster.rs` includes `api_writes.rs` as a
//! module too, and a crate may declare only one global allocator.

#[path = "../api_writes.rs"]
#[allow(dead_code)]
mod api_writes;
// Each root uses a different part of the shared modules.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

// The same allocator as the `skiff` binary, so the in-process plane measures
// what a user runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api_writes::main()
}
