//! Controllers of access: a `default` ServiceAccount in every namespace, and
//! aggregated ClusterRoles kept current.

pub mod cluster_role_aggregation;
pub mod service_account;
