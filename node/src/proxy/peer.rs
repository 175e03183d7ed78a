//! Calls to pods on other nodes: one QUIC connection per peer node (mutual
//! TLS with node certificates), opened lazily and again when it drops; one
//! bidirectional stream per request.

pub mod revoked;
pub mod server;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_api::wire::{Open, ProxyRequest, Reply};
use skiff_runtime::{Body, bodies};

use crate::agent::{frames, stream_body};

/// How long reaching a peer may take before another endpoint is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node that could not be reached is passed over (while other
/// endpoints remain), so requests do not each wait out a connect timeout
/// until its endpoints are withdrawn.
const DOWN_FOR: Duration = Duration::from_secs(3);

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The node could not be reached: no pod on it got the request.
    #[error("{0}")]
    Unreachable(String),
    /// The pod did not get the request: another endpoint may be tried.
    #[error("{0}")]
    NotSent(String),
    /// The request may have reached the pod: not safe to send again.
    #[error("{0}")]
    Failed(String),
}

/// The connections to peer nodes.
pub struct Peers {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    connections: Mutex<HashMap<String, quinn::Connection>>,
    /// Nodes found unreachable, and when.
    down: Mutex<HashMap<String, Instant>>,
}

impl Peers {
    pub fn new(endpoint: quinn::Endpoint, config: quinn::ClientConfig) -> Self {
        Peers {
            endpoint,
            config,
            connections: Mutex::default(),
            down: Mutex::default(),
        }
    }

    /// The nodes found unreachable in the last [`DOWN_FOR`].
    pub fn down_nodes(&self) -> Vec<String> {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down.is_empty() {
            return Vec::new();
        }
        down.retain(|_, since| since.elapsed() < DOWN_FOR);
        down.keys().cloned().collect()
    }

    /// Hands `request` with `body` to a pod on `node` (its peer proxy at
    /// `addr`), and notes whether the node could be reached.
    pub async fn call(
        &self,
        node: &str,
        addr: SocketAddr,
        request: ProxyRequest,
        body: Body,
    ) -> Result<http::Response<Body>, PeerError> {
        let result = self.exchange(node, addr, request, body).await;
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Err(PeerError::Unreachable(_)) => {
                down.insert(node.to_string(), Instant::now());
            }
            _ if !down.is_empty() => {
                down.remove(node);
            }
            _ => {}
        }
        result
    }

    async fn connection(
        &self,
        node: &str,
        addr: SocketAddr,
    ) -> Result<quinn::Connection, PeerError> {
        let cached = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .filter(|c| c.close_reason().is_none() && c.remote_address() == addr)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let not_sent = |e: &dyn std::fmt::Display| {
            PeerError::Unreachable(format!("connect to node {node} at {addr}: {e}"))
        };
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), addr, node)
            .map_err(|e| not_sent(&e))?;
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| not_sent(&"timed out"))?
            .map_err(|e| not_sent(&e))?;
        // Two requests racing to connect both succeed; the later one is kept
        // and the other closes when its streams end.
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), connection.clone());
        Ok(connection)
    }

    async fn exchange(
        &self,
        node: &str,
        addr: SocketAddr,
        request: ProxyRequest,
        body: Body,
    ) -> Result<http::Response<Body>, PeerError> {
        let connection = self.connection(node, addr).await?;
        let not_sent =
            |e: &dyn std::fmt::Display| PeerError::NotSent(format!("call node {node}: {e}"));
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| PeerError::Unreachable(format!("call node {node}: {e}")))?;
        // The peer finds the pod before it reads the body: a request whose
        // head could not be written never reached it.
        frames::write(&mut send, &Open::Proxy(request))
            .await
            .map_err(|e| not_sent(&e))?;
        // The body goes up while the answer comes down (a pod may answer
        // before it has read everything). Once the peer acknowledges the
        // whole request, its pod may have it; until then, a lost connection
        // (the node died) means it never did, and the request can go to
        // another endpoint.
        let upload = tokio::spawn(async move {
            let sent = stream_body::send(&mut send, body).await;
            let _ = send.finish();
            let delivered = send.stopped().await.is_ok();
            (sent, delivered)
        });
        let reply = frames::expect::<Reply>(&mut recv).await;
        if reply.is_err() && connection.close_reason().is_some() {
            // The connection is gone, so the upload ends at once: it says
            // whether the peer had acknowledged the whole request.
            match upload.await {
                Ok((Err(stream_body::SendError::Source(e)), _)) => {
                    return Err(PeerError::Failed(format!(
                        "call node {node}: the request body broke off: {e}"
                    )));
                }
                Ok((_, true)) => {}
                Ok((_, false)) | Err(_) => {
                    return Err(PeerError::Unreachable(format!(
                        "call node {node}: the connection was lost before the request was delivered"
                    )));
                }
            }
        } else if !matches!(reply, Ok(Reply::Proxied(_))) {
            // Refused or broken: the rest of the body is not wanted.
            upload.abort();
        }
        let failed =
            |e: &dyn std::fmt::Display| PeerError::Failed(format!("call node {node}: {e}"));
        match reply {
            Ok(Reply::Proxied(head)) => {
                let mut response = http::Response::builder().status(head.status);
                for (k, v) in &head.headers {
                    response = response.header(k.as_str(), v.as_str());
                }
                // The body streams from the peer as the pod writes it.
                response
                    .body(stream_body::receive(recv))
                    .map_err(|e| failed(&e))
            }
            // The pod is not there or not serving there: it never got it.
            Ok(Reply::Refused {
                code: 404 | 503,
                message,
            }) => Err(PeerError::NotSent(message)),
            Ok(Reply::Refused { code, message }) => http::Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(bodies::full(format!("{message}\n")))
                .map_err(|e| failed(&e)),
            Ok(other) => Err(failed(&format!("unexpected reply {other:?}"))),
            Err(e) => Err(failed(&e)),
        }
    }
}
