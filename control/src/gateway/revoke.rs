//! Revoking nodes: when a Node object is deleted (`kubectl delete node`,
//! `skiff node revoke`), every certificate the CA issued to that node is
//! revoked and its session closed; its connections are refused from then on
//! (see `serve_connection`). Joining again with a new token gives a new
//! certificate, which works.

use std::sync::Arc;

use skiff_api::meta;

use super::{Shared, peer_cert};
use crate::informer::{Change, Subscription};
use crate::store::EventType;

/// What a revoked node is told.
pub fn revoked_message(node: &str) -> String {
    format!(
        "the certificate of node {node:?} has been revoked (its Node was deleted): remove this node's data directory and join again with a new token"
    )
}

/// Revokes the nodes whose Node is deleted, until the informer stops.
pub async fn run(shared: Arc<Shared>, mut nodes: Subscription) {
    while let Some(change) = nodes.next().await {
        let Change::Object {
            event_type: EventType::Deleted,
            object,
            ..
        } = change
        else {
            continue;
        };
        let Some(node) = meta::name(&object) else {
            continue;
        };
        revoke(&shared, node);
    }
}

fn revoke(shared: &Shared, node: &str) {
    // Revoked before the session closes, so that its reconnection is refused.
    let serial = shared
        .sessions
        .get(node)
        .as_ref()
        .and_then(peer_cert)
        .map(|c| c.serial);
    let revoked = shared.ca.revoke_node(node, serial.as_deref());
    let closed = shared
        .sessions
        .close(node, b"certificate revoked")
        .is_some();
    match revoked {
        Ok(count) => tracing::warn!(
            node,
            certificates = count,
            session_closed = closed,
            "node deleted: its certificates are revoked"
        ),
        Err(e) => {
            tracing::error!(node, error = %e, "could not revoke the deleted node's certificates")
        }
    }
}
