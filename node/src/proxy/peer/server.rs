//! The peer server: other nodes' proxies hand this node requests for its
//! pods, one bidirectional stream per request, in the same `Open::Proxy`
//! format the control plane's pod proxy uses.

use std::sync::Arc;

use skiff_api::wire::Open;

use crate::agent::{frames, serve};
use crate::supervisor::PodSupervisor;

/// Accepts peers until the endpoint closes.
pub async fn run(endpoint: quinn::Endpoint, supervisor: Arc<PodSupervisor>) {
    while let Some(incoming) = endpoint.accept().await {
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "a peer proxy failed to connect");
                    return;
                }
            };
            while let Ok((send, recv)) = connection.accept_bi().await {
                let supervisor = supervisor.clone();
                tokio::spawn(async move { stream(&supervisor, send, recv).await });
            }
        });
    }
}

async fn stream(
    supervisor: &PodSupervisor,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let result = match frames::expect::<Open>(&mut recv).await {
        Ok(Open::Proxy(request)) => {
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
            tracing::debug!(error = %e, "bad call from a peer proxy");
            return;
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "call from a peer proxy ended");
    }
    let _ = send.finish();
}
