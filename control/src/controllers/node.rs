//! Controllers of nodes: a lost node's condition and taints, eviction from
//! NoExecute-tainted nodes, and pods left on nodes that are gone.

pub mod node_lifecycle;
pub mod pod_gc;
pub mod taint_eviction;
