//! Joining: a node without a certificate trades a bootstrap token and a
//! certificate signing request for a certificate issued by the cluster CA.
//!
//! Refused: a name that is not a valid node name or is reserved for the
//! control plane, a name an existing Node has (a second machine must not take
//! over a node's pods; delete the Node first), and a token that is unknown,
//! expired or, being single-use, already used.

use skiff_api::join::node_name_problem;
use skiff_api::resource::by_kind;
use skiff_api::wire::{JoinRequest, JoinResponse, PROTOCOL_VERSION, Reply};

use crate::auth::{ClusterCa, tokens};
use crate::registry::Registry;

/// The answer to a join request.
pub async fn answer(registry: &Registry, ca: &ClusterCa, req: &JoinRequest) -> Reply {
    let node = req.node_name.as_str();
    let refuse = |code, message: String| {
        tracing::warn!(node, code, %message, "join refused");
        Reply::Refused { code, message }
    };
    if req.version != PROTOCOL_VERSION {
        return refuse(400, version_mismatch(req.version));
    }
    if let Some(problem) = node_name_problem(node) {
        return refuse(400, problem);
    }
    let token = match tokens::check(registry, &req.token) {
        Ok(token) => token,
        Err(e) => return refuse(401, e.to_string()),
    };
    let Some(node_type) = by_kind("v1", "Node") else {
        return refuse(500, "no Node kind".into());
    };
    match registry.try_get(node_type, "", node) {
        Ok(None) => {}
        Ok(Some(_)) => {
            return refuse(
                409,
                format!(
                    "a node named {node:?} is already registered: join with another --name, or remove the old node first (`skiff node revoke {node}`)"
                ),
            );
        }
        Err(e) => return refuse(500, format!("look up node {node:?}: {e}")),
    }
    let cert_pem = match ca.sign_node(&req.csr_pem, node) {
        Ok(cert_pem) => cert_pem,
        Err(e) => return refuse(400, e.to_string()),
    };
    // Consumed only once the certificate exists, so a bad request does not
    // waste a token; the certificate is dropped if another join won the token.
    if let Err(e) = tokens::consume(registry, &token).await {
        return refuse(401, e.to_string());
    }
    tracing::info!(node, "node joined; certificate issued");
    Reply::Joined(JoinResponse {
        cert_pem,
        ca_pem: ca.cert_pem().to_string(),
    })
}

/// What a node of another protocol version is told.
pub fn version_mismatch(theirs: u32) -> String {
    format!(
        "protocol version {theirs} is not supported: this control plane speaks version {PROTOCOL_VERSION}; run a node of the same Skiff release"
    )
}
