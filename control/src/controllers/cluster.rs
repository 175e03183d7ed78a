//! Controllers of cluster-wide bookkeeping: terminating namespaces, owner
//! references (the garbage collector), and ResourceQuota usage.

pub mod garbage_collector;
pub mod namespace;
pub mod resource_quota;
