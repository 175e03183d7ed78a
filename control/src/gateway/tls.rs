//! The gateway's TLS: the control plane's certificate (issued by the cluster CA)
//! and client certificates that are optional at the handshake (a joining node has
//! none yet) but, when presented, must be issued by the cluster CA.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;

use crate::auth::{CaError, ClusterCa};

/// How long a silent connection lives: a killed node is noticed this fast.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection is pinged, well inside [`IDLE_TIMEOUT`].
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Why the QUIC server could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("configure TLS: {0}")]
    Rustls(String),
}

/// The quinn server configuration for the node gateway.
pub fn server_config(ca: &ClusterCa) -> Result<quinn::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.cert_der().clone())
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let identity = ca.server_identity()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    tls.alpn_protocols = vec![skiff_api::wire::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    Ok(config)
}

/// Keep-alive and idle timeout shared by both ends.
pub fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    // 5 s always fits quinn's idle-timeout range.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    transport
}
