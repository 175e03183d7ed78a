//! `cargo bench --bench scheduling`: the root of the benchmark in `../scheduling.rs`.
//!
//! A root of its own, because `benches/cluster.rs` includes `scheduling.rs` as a
//! module too, and a crate may declare only one global allocator.

// Each root uses a different part of the shared modules.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../scheduling.rs"]
#[allow(dead_code)]
mod scheduling;

// The same allocator as the `skiff` binary, so the in-process plane measures
// what a user runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    scheduling::main()
}
