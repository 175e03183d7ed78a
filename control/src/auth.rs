//! Who may talk to the control plane: the cluster CA that issues node
//! certificates ([`ClusterCa`]), the ledger of issued and revoked node
//! certificates ([`revocation`]) and the bootstrap tokens nodes join with
//! ([`tokens`]).

mod ca;
mod revocation;
pub mod tokens;

pub use ca::{CaError, ClusterCa, NodeCert, ServerIdentity, node_cert_of, node_name_of};
