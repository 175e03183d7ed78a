//! The node's identity: its private key, the certificate the cluster CA issued
//! for it at join (`CN=system:node:<name>`), and the CA it trusts, kept under
//! `<data>/identity/` so a restarted node reconnects without a token.
//!
//! A renewed certificate and its new key are written together to one file,
//! `node.pem`, by temp file and rename, so that a crash never leaves a key that
//! does not match its certificate; when it exists it wins over the joined
//! `node.crt` and `node.key`.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use skiff_api::join::{NODE_GROUP, NODE_USER_PREFIX, pem_cert_der};

/// Why the identity could not be read, made or kept.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} in {path} is not valid: {detail}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("make a key and certificate request: {0}")]
    Generate(rcgen::Error),
    #[error("{what} the control plane sent is not valid: {detail}")]
    Received { what: &'static str, detail: String },
}

/// A node's certificate, key and trusted CA.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub ca: CertificateDer<'static>,
}

/// A key and a certificate signing request for it, before joining.
pub struct Pending {
    key: KeyPair,
    pub csr_pem: String,
}

/// The identity files under a node's data directory.
#[derive(Debug, Clone)]
pub struct IdentityDir {
    dir: PathBuf,
}

impl IdentityDir {
    pub fn new(data_dir: &Path) -> Self {
        IdentityDir {
            dir: data_dir.join("identity"),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The directory, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pod CIDR the control plane gave this node last, so that its pods
    /// keep their addresses when it restarts without the control plane.
    pub fn pod_cidr(&self) -> Option<ipnet::Ipv4Net> {
        std::fs::read_to_string(self.path("pod-cidr"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Records the pod CIDR (temp file + rename: never half written).
    pub fn store_pod_cidr(&self, cidr: ipnet::Ipv4Net) -> std::io::Result<()> {
        if self.pod_cidr() == Some(cidr) {
            return Ok(());
        }
        let tmp = self.path("pod-cidr.tmp");
        std::fs::write(&tmp, format!("{cidr}\n"))?;
        std::fs::rename(tmp, self.path("pod-cidr"))
    }

    /// The stored identity, or `None` if the node has not joined yet.
    pub fn load(&self) -> Result<Option<Identity>, IdentityError> {
        let renewed = self.path("node.pem");
        let ca = self.path("ca.crt");
        if renewed.exists() && ca.exists() {
            let text = read(&renewed)?;
            let cert_der = pem_cert_der(&text)
                .ok_or_else(|| invalid("the certificate", &renewed, "no PEM certificate"))?;
            let key_pem = pem_block(&text, "PRIVATE KEY")
                .ok_or_else(|| invalid("the key", &renewed, "no PEM private key"))?;
            let key_pair = KeyPair::from_pem(key_pem)
                .map_err(|e| invalid("the key", &renewed, &e.to_string()))?;
            let ca_der = pem_cert_der(&read(&ca)?)
                .ok_or_else(|| invalid("the CA certificate", &ca, "no PEM certificate"))?;
            return Ok(Some(Identity {
                cert: CertificateDer::from(cert_der),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
                ca: CertificateDer::from(ca_der),
            }));
        }
        let (cert, key, ca) = (
            self.path("node.crt"),
            self.path("node.key"),
            self.path("ca.crt"),
        );
        if !(cert.exists() && key.exists() && ca.exists()) {
            return Ok(None);
        }
        let cert_der = pem_cert_der(&read(&cert)?)
            .ok_or_else(|| invalid("the certificate", &cert, "no PEM certificate"))?;
        let ca_der = pem_cert_der(&read(&ca)?)
            .ok_or_else(|| invalid("the CA certificate", &ca, "no PEM certificate"))?;
        let key_pair = KeyPair::from_pem(&read(&key)?)
            .map_err(|e| invalid("the key", &key, &e.to_string()))?;
        Ok(Some(Identity {
            cert: CertificateDer::from(cert_der),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
            ca: CertificateDer::from(ca_der),
        }))
    }

    /// A fresh key and a request for `system:node:<name>`.
    pub fn prepare(node_name: &str) -> Result<Pending, IdentityError> {
        let key = KeyPair::generate().map_err(IdentityError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{NODE_USER_PREFIX}{node_name}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, NODE_GROUP);
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(IdentityError::Generate)?;
        Ok(Pending { key, csr_pem })
    }

    /// Keeps what the join returned, and returns it as an identity.
    pub fn store(
        &self,
        pending: Pending,
        cert_pem: &str,
        ca_pem: &str,
    ) -> Result<Identity, IdentityError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| IdentityError::Io {
            action: "create",
            path: self.dir.clone(),
            source,
        })?;
        let key_pem = pending.key.serialize_pem();
        // Checked before anything is written, so a bad reply leaves no half identity.
        let identity = pending.into_identity(cert_pem, ca_pem)?;
        write_private(&self.path("node.key"), &key_pem)?;
        write_private(&self.path("ca.crt"), ca_pem)?;
        // The certificate last: its presence means the identity is complete.
        write_private(&self.path("node.crt"), cert_pem)?;
        Ok(identity)
    }
}

impl IdentityDir {
    /// Keeps a renewed certificate and its key, in one atomic write.
    pub fn store_renewed(
        &self,
        pending: Pending,
        cert_pem: &str,
        ca_pem: &str,
    ) -> Result<Identity, IdentityError> {
        let key_pem = pending.key.serialize_pem();
        let identity = pending.into_identity(cert_pem, ca_pem)?;
        write_private(&self.path("node.pem"), &format!("{key_pem}{cert_pem}"))?;
        Ok(identity)
    }
}

impl Identity {
    /// The certificate's validity, in seconds since the epoch.
    pub fn validity(&self) -> Option<(i64, i64)> {
        let (_, parsed) = x509_parser::parse_x509_certificate(&self.cert).ok()?;
        let v = parsed.validity();
        Some((v.not_before.timestamp(), v.not_after.timestamp()))
    }
}

/// The text of the first PEM block labelled `label`, markers included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text[start..].find(&end)? + end.len();
    Some(&text[start..stop])
}

impl Pending {
    /// The identity made of this key and what the join returned, kept in
    /// memory only (a hollow node has no disk of its own).
    pub fn into_identity(self, cert_pem: &str, ca_pem: &str) -> Result<Identity, IdentityError> {
        let received = |what| IdentityError::Received {
            what,
            detail: "no PEM certificate".into(),
        };
        let cert_der = pem_cert_der(cert_pem).ok_or_else(|| received("the issued certificate"))?;
        let ca_der = pem_cert_der(ca_pem).ok_or_else(|| received("the CA certificate"))?;
        Ok(Identity {
            cert: CertificateDer::from(cert_der),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der())),
            ca: CertificateDer::from(ca_der),
        })
    }
}

fn invalid(what: &'static str, path: &Path, detail: &str) -> IdentityError {
    IdentityError::Invalid {
        what,
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file only its owner can read, atomically.
fn write_private(path: &Path, text: &str) -> Result<(), IdentityError> {
    skiff_transport::private_file::write(path, text).map_err(|source| IdentityError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_identity_is_kept_whole_and_wins_over_the_joined_one() {
        let dir = tempfile::tempdir().unwrap();
        let identities = IdentityDir::new(dir.path());
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let sign = |pending: &Pending| {
            let csr = rcgen::CertificateSigningRequestParams::from_pem(&pending.csr_pem).unwrap();
            csr.signed_by(&issuer).unwrap().pem()
        };
        let joined = IdentityDir::prepare("n1").unwrap();
        let cert = sign(&joined);
        identities.store(joined, &cert, &ca_cert.pem()).unwrap();
        let first = identities.load().unwrap().unwrap();
        let renewal = IdentityDir::prepare("n1").unwrap();
        let cert = sign(&renewal);
        let renewed = identities
            .store_renewed(renewal, &cert, &ca_cert.pem())
            .unwrap();
        let loaded = identities.load().unwrap().unwrap();
        assert_eq!(loaded.cert, renewed.cert);
        assert_ne!(loaded.cert, first.cert);
        assert_eq!(loaded.key.secret_der(), renewed.key.secret_der());
        assert!(loaded.validity().is_some());
    }
}
