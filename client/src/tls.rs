//! TLS for clients of the API, from a kubeconfig: trust the cluster's CA
//! (`certificate-authority[-data]`) and present the user's client
//! certificate (`client-certificate[-data]`, `client-key[-data]`), as
//! client-go does. Used by the `skiff` CLI, the tests and the benchmarks.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use skiff_api::kubeconfig::{Cluster, Kubeconfig, User};

/// Why a kubeconfig's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("{0} holds no PEM {1}")]
    Pem(&'static str, &'static str),
    #[error(
        "the cluster has no certificate-authority(-data): Skiff checks the server's certificate"
    )]
    NoCa,
    #[error(
        "insecure-skip-tls-verify is not supported: give the cluster's certificate-authority-data"
    )]
    Insecure,
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("kubeconfig {0}: {1}")]
    Kubeconfig(String, String),
}

/// A kubeconfig file's TLS settings and bearer token for its current
/// context: as its user (`as_user`), or trusting its CA only.
pub fn from_kubeconfig(
    path: &Path,
    as_user: bool,
) -> Result<(rustls::ClientConfig, Option<String>), ClientTlsError> {
    let bad = |e: String| ClientTlsError::Kubeconfig(path.display().to_string(), e);
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let config: Kubeconfig = serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let (cluster, _) = config
        .current()
        .ok_or_else(|| bad("no usable current-context".into()))?;
    let user = config.current_user().filter(|_| as_user);
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = self::config(cluster, user, base)?;
    Ok((tls, user.and_then(|u| u.token.clone())))
}

/// A rustls client configuration for `cluster` as `user` (client
/// certificate if the user has one). Relative file paths are read from
/// `base` (the kubeconfig's directory).
pub fn config(
    cluster: &Cluster,
    user: Option<&User>,
    base: &Path,
) -> Result<rustls::ClientConfig, ClientTlsError> {
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(ClientTlsError::Insecure);
    }
    let ca_pem = material(
        "certificate-authority-data",
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
        base,
    )?
    .ok_or(ClientTlsError::NoCa)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem).filter_map(Result::ok) {
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(ClientTlsError::Pem(
            "certificate-authority-data",
            "certificate",
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let cert = user
        .map(|u| {
            material(
                "client-certificate-data",
                u.client_certificate_data.as_deref(),
                u.client_certificate.as_deref(),
                base,
            )
        })
        .transpose()?
        .flatten();
    let key = user
        .map(|u| {
            material(
                "client-key-data",
                u.client_key_data.as_deref(),
                u.client_key.as_deref(),
                base,
            )
        })
        .transpose()?
        .flatten();
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                .filter_map(Result::ok)
                .collect();
            if chain.is_empty() {
                return Err(ClientTlsError::Pem(
                    "client-certificate-data",
                    "certificate",
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|_| ClientTlsError::Pem("client-key-data", "private key"))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

/// The PEM bytes of inline base64 `data`, else of the file `path`.
fn material(
    what: &'static str,
    data: Option<&str>,
    path: Option<&str>,
    base: &Path,
) -> Result<Option<Vec<u8>>, ClientTlsError> {
    if let Some(data) = data.filter(|d| !d.is_empty()) {
        return base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(Some)
            .map_err(|_| ClientTlsError::Base64(what));
    }
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let full = base.join(path);
    std::fs::read(&full)
        .map(Some)
        .map_err(|source| ClientTlsError::Read {
            what,
            path: full.display().to_string(),
            source,
        })
}
