//! Joining: a node without a certificate trades a bootstrap token and a
//! certificate signing request for a certificate issued by the cluster CA.

use skiff_api::validate::names::is_dns1123_subdomain;
use skiff_api::wire::{JoinRequest, JoinResponse, PROTOCOL_VERSION, Reply};

use crate::auth::{ClusterCa, tokens};
use crate::registry::Registry;

/// The answer to a join request.
pub fn answer(registry: &Registry, ca: &ClusterCa, req: &JoinRequest) -> Reply {
    let refuse = |code, message: String| Reply::Refused { code, message };
    if req.version != PROTOCOL_VERSION {
        return refuse(400, version_mismatch(req.version));
    }
    let problems = is_dns1123_subdomain(&req.node_name);
    if !problems.is_empty() {
        return refuse(
            400,
            format!(
                "invalid node name {:?}: {}",
                req.node_name,
                problems.join("; ")
            ),
        );
    }
    if let Err(e) = tokens::check(registry, &req.token) {
        tracing::warn!(node = %req.node_name, error = %e, "join refused");
        return refuse(401, e.to_string());
    }
    match ca.sign_node(&req.csr_pem, &req.node_name) {
        Ok(cert_pem) => {
            tracing::info!(node = %req.node_name, "node joined; certificate issued");
            Reply::Joined(JoinResponse {
                cert_pem,
                ca_pem: ca.cert_pem().to_string(),
            })
        }
        Err(e) => refuse(400, e.to_string()),
    }
}

/// What a node of another protocol version is told.
pub fn version_mismatch(theirs: u32) -> String {
    format!(
        "protocol version {theirs} is not supported: this control plane speaks version {PROTOCOL_VERSION}; run a node of the same Skiff release"
    )
}
