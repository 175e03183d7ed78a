//! Who may talk to the control plane, and what they may do.
//!
//! - [`ca`]: the cluster CA; it issues node certificates, the API's serving
//!   certificate and client certificates (the admin's kubeconfig).
//! - [`tokens`]: bootstrap tokens nodes join with; [`revocation`]: the
//!   ledger of issued and revoked node certificates.
//! - [`user`]: the user a request is made by.
//! - [`service_account_token`]: ServiceAccount JWTs (TokenRequest, bearer
//!   authentication).
//! - [`attributes`]: a request's verb and resource, as authorization sees it.
//! - [`rbac`]: RBAC rules, the policy snapshot and the bootstrap policy.
//! - [`authorizer`]: the decision for each request over the live policy.

pub mod attributes;
pub mod authorizer;
mod ca;
pub mod rbac;
mod revocation;
pub mod service_account_token;
pub mod tokens;
pub mod user;

pub(crate) use ca::write_private;
pub use ca::{
    CaError, ClientCredentials, ClusterCa, NodeCert, ServerIdentity, node_cert_of, node_name_of,
    pem_certs,
};
