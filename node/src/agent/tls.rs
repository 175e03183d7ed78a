//! The node's TLS: when joining, the control plane is trusted if its chain holds
//! the CA whose hash the token carries; afterwards, by the stored CA, with the
//! node's own certificate as client authentication.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use skiff_api::join::cert_hash;

use crate::identity::Identity;

/// Keep-alive and idle timeout: as the control plane's.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the settings, the stored CA or the node's certificate.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The settings leave QUIC no cipher suite to start with.
    #[error(transparent)]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client configuration for joining with a token that pins the CA by hash.
pub fn join_config(ca_hash: &str) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = PinnedCa {
        hash: ca_hash.to_ascii_lowercase(),
        provider: provider.clone(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    finish(tls)
}

/// Client configuration for a node with an identity.
pub fn session_config(identity: &Identity) -> Result<quinn::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(identity.ca.clone())?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    finish(tls)
}

fn finish(mut tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    tls.alpn_protocols = vec![skiff_api::wire::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Trusts a server whose chain includes the CA with the pinned hash, and whose
/// certificate that CA issued.
#[derive(Debug)]
struct PinnedCa {
    hash: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| cert_hash(c) == self.hash)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the control plane's CA does not match the CA hash in the join token (wrong address, or a token of another cluster)".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
