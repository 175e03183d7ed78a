//! What the benchmarks share, declared once per crate root (`mod support;`) so
//! that `benches/cluster.rs`, which includes every benchmark as a module, has
//! one copy of each type. The test-suite helpers that start real clusters are
//! included from `tests/support/`.

pub mod api_client;
pub mod dirs;
pub mod figure;
pub mod latency;
pub mod processes;
pub mod table;

#[path = "../../tests/support/cluster.rs"]
pub mod cluster;
#[path = "../../tests/support/node.rs"]
pub mod node;
#[path = "../../tests/support/objects.rs"]
pub mod objects;
#[path = "../../tests/support/samples.rs"]
pub mod samples;
