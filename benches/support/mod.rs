//! What the benchmarks share, declared once per crate root (`mod support;`) so
//! that `benches/cluster.rs`, which includes every benchmark as a module, has
//! one copy of each type. The helpers that start real clusters are
//! `skiff-testkit`'s, as the tests use them.

pub mod api_client;
pub mod dirs;
pub mod figure;
pub mod latency;
pub mod pod_startup;
pub mod skiff_up;
pub mod table;
