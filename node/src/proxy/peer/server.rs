//! The peer server: other nodes' proxies hand this node requests for its
//! pods, one bidirectional stream per request, in the same `Open::Proxy`
//! format the control plane's pod proxy uses. A caller is a node: its client
//! certificate (verified against the cluster CA by TLS) names it
//! (`CN=system:node:<name>`), and every call is logged with that name. A
//! certificate the control plane has revoked is refused, and a connection
//! whose certificate is revoked while it is open is closed.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use skiff_api::wire::Open;
use skiff_transport::node_cert::{NodeCert, node_cert_of};

use super::revoked::Revoked;
use crate::agent::{frames, serve};
use crate::supervisor::PodSupervisor;

/// Accepts peers until the endpoint closes.
pub async fn run(endpoint: quinn::Endpoint, supervisor: Arc<PodSupervisor>, revoked: Arc<Revoked>) {
    while let Some(incoming) = endpoint.accept().await {
        let supervisor = supervisor.clone();
        let revoked = revoked.clone();
        tokio::spawn(async move {
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "a peer proxy failed to connect");
                    return;
                }
            };
            let remote = connection.remote_address();
            let Some(caller) = caller_cert(&connection) else {
                // Only node certificates carry a node name; nothing else calls peers.
                tracing::warn!(%remote, "refused a peer proxy connection without a node certificate");
                connection.close(quinn::VarInt::from_u32(3), b"not a node certificate");
                return;
            };
            if revoked.contains(&caller.serial) {
                tracing::warn!(caller = %caller.node, serial = %caller.serial, %remote, "refused a peer proxy connection with a revoked certificate");
                connection.close(quinn::VarInt::from_u32(4), b"certificate revoked");
                return;
            }
            tracing::info!(caller = %caller.node, %remote, "peer proxy connected");
            let calls = async {
                let node = Arc::new(caller.node.clone());
                while let Ok((send, recv)) = connection.accept_bi().await {
                    let supervisor = supervisor.clone();
                    let node = node.clone();
                    tokio::spawn(async move { stream(&supervisor, &node, send, recv).await });
                }
            };
            tokio::select! {
                () = calls => {}
                () = revoked.until_revoked(&caller.serial) => {
                    tracing::warn!(caller = %caller.node, serial = %caller.serial, %remote, "closed a peer proxy connection: its certificate was revoked");
                    connection.close(quinn::VarInt::from_u32(4), b"certificate revoked");
                }
            }
        });
    }
}

/// The node a peer's verified client certificate names, and its serial.
fn caller_cert(connection: &quinn::Connection) -> Option<NodeCert> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    node_cert_of(chain.first()?)
}

async fn stream(
    supervisor: &PodSupervisor,
    caller: &str,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let result = match frames::expect::<Open>(&mut recv).await {
        Ok(Open::Proxy(request)) => {
            tracing::debug!(
                caller,
                pod = %format!("{}/{}", request.namespace, request.name),
                method = %request.method,
                path = %request.path,
                "peer proxy call"
            );
            serve::proxy(
                supervisor,
                request,
                recv,
                &mut send,
                serve::peer_access_code,
            )
            .await
        }
        Ok(other) => {
            serve::refuse(
                &mut send,
                400,
                format!("a peer proxy does not serve {other:?}"),
            )
            .await
        }
        Err(e) => {
            tracing::debug!(caller, error = %e, "bad call from a peer proxy");
            return;
        }
    };
    if let Err(e) = result {
        tracing::debug!(caller, error = %e, "call from a peer proxy ended");
    }
    let _ = send.finish();
}
