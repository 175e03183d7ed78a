//! What Skiff's tests and benchmarks share to run real clusters: the `skiff`
//! server and node processes, the real kubectl, an API client with deadlines,
//! QUIC clients of the node gateway, and the sample guests built from source.
//!
//! Every process started here sits in a guard that kills and reaps it when the
//! guard drops, also when the test panics; nothing waits a fixed time.

pub mod api;
pub mod cluster;
pub mod node;
pub mod objects;
pub mod processes;
pub mod quic;
pub mod samples;
