//! Controllers: level-triggered reconcile loops that move observed state toward
//! desired state (in the style of kube-runtime). Each reads the current state
//! from the store, never trusts that an event tells the whole story, and is safe
//! to run twice.

pub mod garbage_collector;
pub mod namespace;
pub mod node_lifecycle;
pub mod work_queue;
