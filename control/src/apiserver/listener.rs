//! The API's HTTPS listener: TLS 1.3 (rustls) with HTTP/2 and HTTP/1.1 by
//! ALPN, a client certificate asked for but not required (a verified one
//! names the user, see [`super::access`]), and limits on what a stranger can
//! hold open: a connection cap, a TLS handshake deadline, a deadline for
//! each request's headers (slowloris), and keep-alive pings that end dead
//! HTTP/2 connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::access::PeerUser;
use crate::auth::user::UserInfo;
use crate::auth::{ClusterCa, ServerIdentity};

/// What the API's listener allows: the numbers every network listener
/// shares ([`skiff_api::limits::ListenerLimits`]: connection cap, header
/// deadline) and those of TLS and HTTP/2.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    pub common: skiff_api::limits::ListenerLimits,
    /// Time to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// HTTP/2 keep-alive ping interval; a ping unanswered in the same time
    /// closes the connection.
    pub keep_alive_interval: Duration,
    /// HTTP/2 streams in flight per connection.
    pub max_concurrent_streams: u32,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            common: skiff_api::limits::ListenerLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(30),
            // Kubernetes' default (--http2-max-streams-per-connection).
            max_concurrent_streams: 1000,
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The API's TLS settings: `identity` served, client certificates checked
/// against the cluster CA when given.
pub fn tls_config(ca: &ClusterCa, identity: ServerIdentity) -> Result<ServerConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` on `listener` over TLS until the listener fails.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: ListenerLimits,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.common.max_connections));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors, most likely: back off, keep serving.
                tracing::warn!(error = %e, "API listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, limit = limits.common.max_connections, "API connection refused: too many open connections");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, remote, acceptor, app, limits).await;
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    limits: ListenerLimits,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "API TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "API TLS handshake timed out");
            return;
        }
    };
    // rustls verified the chain against the CA; the leaf names the user.
    let peer = PeerUser(
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(UserInfo::from_certificate)
            .map(Arc::new),
    );
    let service = app.map_request(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.common.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(limits.keep_alive_interval)
        .max_concurrent_streams(limits.max_concurrent_streams);
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(service))
        .await
    {
        tracing::debug!(%remote, error = %e, "API connection ended");
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
