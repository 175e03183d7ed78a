//! Who may talk to the control plane: the cluster CA that issues node
//! certificates ([`ClusterCa`]) and the bootstrap tokens nodes join with
//! ([`tokens`]).

mod ca;
pub mod tokens;

pub use ca::{CaError, ClusterCa, ServerIdentity, node_name_of};
