//! TLS between node proxies: both sides present their node certificate and
//! trust only the cluster CA; a client checks that the server's certificate
//! names the node it meant to reach. The certificate presented is the node's
//! current one ([`NodeCertificate`]): a renewal takes effect on the next
//! connection, without a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, VerifierBuilderError, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::identity::Identity;

/// Why the peer port's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The node's certificate and key do not make a TLS identity.
    #[error("the node certificate: {0}")]
    Certificate(#[source] rustls::Error),
    /// The cluster CA is not a usable trust anchor.
    #[error("trust the cluster CA: {0}")]
    TrustCa(#[source] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] VerifierBuilderError),
    /// rustls refused the protocol settings.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The settings leave QUIC no cipher suite to start with.
    #[error(transparent)]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The node's certificate and key as TLS presents them, replaced on renewal.
#[derive(Debug)]
pub struct NodeCertificate(RwLock<Arc<CertifiedKey>>);

impl NodeCertificate {
    pub fn new(identity: &Identity) -> Result<Self, TlsError> {
        Ok(NodeCertificate(RwLock::new(certified_key(identity)?)))
    }

    /// Presents `identity`'s certificate from the next handshake on.
    pub fn replace(&self, identity: &Identity) -> Result<(), TlsError> {
        let key = certified_key(identity)?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn certified_key(identity: &Identity) -> Result<Arc<CertifiedKey>, TlsError> {
    CertifiedKey::from_der(
        vec![identity.cert.clone()],
        identity.key.clone_key(),
        &provider(),
    )
    .map(Arc::new)
    .map_err(TlsError::Certificate)
}

impl ResolvesServerCert for NodeCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for NodeCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// ALPN of peer connections: distinct from the control plane's, so neither
/// side mistakes one link for the other.
pub const PEER_ALPN: &[u8] = b"skiff-peer";
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A peer silent this long is gone: about the control plane's node grace
/// period, so requests stuck on a dead node end about when its endpoints do.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(identity: &Identity) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(identity.ca.clone()).map_err(TlsError::TrustCa)?;
    Ok(Arc::new(roots))
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    Arc::new(transport)
}

/// The peer server's configuration: only clients with a certificate from the
/// cluster CA get in.
pub fn server_config(
    identity: &Identity,
    certificate: Arc<NodeCertificate>,
) -> Result<quinn::ServerConfig, TlsError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(identity)?, provider()).build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate);
    tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport());
    Ok(config)
}

/// The configuration for calling peers (server name = the peer's node name).
pub fn client_config(
    identity: &Identity,
    certificate: Arc<NodeCertificate>,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(identity)?)
        .with_client_cert_resolver(certificate);
    tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    Ok(config)
}
