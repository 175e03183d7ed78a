//! The cluster CA: created at first start (rcgen), kept in `<data>/pki/`, and used
//! to issue the control plane's QUIC certificate and each node's client
//! certificate (`CN=system:node:<name>, O=system:nodes`, as Kubernetes names nodes),
//! which is also the server certificate of the node's peer proxy (SAN `<name>`).
//!
//! Node certificates are valid for [`NODE_CERT_VALIDITY`] (a year; nodes renew
//! them over their session) and carry a random serial; the CA keeps a
//! [`NodeCertLedger`] of the serials it issued to each node, so that a node can be
//! revoked (its Node deleted, or `skiff node revoke`) and its certificates
//! refused from then on.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use skiff_api::join::{
    CONTROL_PLANE_SERVER_NAME, NODE_CERT_VALIDITY, NODE_GROUP, NODE_USER_PREFIX, cert_hash,
    node_name_problem,
};

use super::revocation::NodeCertLedger;

mod api_certs;

pub use api_certs::{ClientCredentials, pem_certs};
pub use skiff_transport::node_cert::{NodeCert, node_cert_of};

/// Why the CA could not be loaded or could not issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Certificate(&'static str, rcgen::Error),
    #[error("the certificate signing request is not valid: {0}")]
    BadRequest(String),
    #[error("{0}")]
    ReservedName(String),
    #[error("record the issued certificate in {path}: {detail}")]
    Ledger { path: PathBuf, detail: String },
}

/// The cluster's certificate authority.
pub struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    ledger: NodeCertLedger,
    node_cert_validity: std::time::Duration,
}

/// A certificate and its private key, for a TLS server.
pub struct ServerIdentity {
    /// The leaf, then the CA (so a joining node can check the CA against its token).
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ClusterCa {
    /// Loads the CA from `<dir>/ca.crt` and `<dir>/ca.key`, creating both at first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| CaError::Certificate("read the CA key", e))?;
            return Self::from_parts(dir, cert_pem, key);
        }
        std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let key = KeyPair::generate().map_err(|e| CaError::Certificate("make the CA key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "skiff-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| CaError::Certificate("make the CA certificate", e))?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert.pem())?;
        Self::from_parts(dir, cert.pem(), key)
    }

    fn from_parts(dir: &Path, cert_pem: String, key: KeyPair) -> Result<Self, CaError> {
        let der = skiff_api::join::pem_cert_der(&cert_pem).ok_or(CaError::Certificate(
            "read the CA certificate",
            rcgen::Error::CouldNotParseCertificate,
        ))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| CaError::Certificate("read the CA certificate", e))?;
        Ok(ClusterCa {
            cert_pem,
            cert_der: CertificateDer::from(der),
            issuer,
            ledger: NodeCertLedger::load(&dir.join("node-certs.json"))?,
            node_cert_validity: NODE_CERT_VALIDITY,
        })
    }

    /// Issues node certificates valid for `validity` instead of a year (tests
    /// of renewal use seconds).
    pub fn with_node_cert_validity(mut self, validity: std::time::Duration) -> Self {
        self.node_cert_validity = validity;
        self
    }

    /// Refuses every certificate issued to `node` so far; returns how many.
    pub fn revoke_node(&self, node: &str, also_serial: Option<&str>) -> Result<usize, CaError> {
        self.ledger.revoke_node(node, also_serial)
    }

    /// The serials of the revoked node certificates, now and as they change.
    pub fn revoked_serials(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<Vec<String>>> {
        self.ledger.revoked_serials()
    }

    /// Whether a certificate with this serial has been revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.ledger.is_revoked(serial)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// `sha256` of the CA certificate: what join tokens carry.
    pub fn hash(&self) -> String {
        cert_hash(&self.cert_der)
    }

    /// A fresh certificate for the control plane's QUIC endpoint, valid for
    /// [`CONTROL_PLANE_SERVER_NAME`] (the name nodes verify) and `localhost`.
    pub fn server_identity(&self) -> Result<ServerIdentity, CaError> {
        let key =
            KeyPair::generate().map_err(|e| CaError::Certificate("make the server key", e))?;
        let mut params = CertificateParams::new(vec![
            CONTROL_PLANE_SERVER_NAME.to_string(),
            "localhost".to_string(),
        ])
        .map_err(|e| CaError::Certificate("make the server certificate", e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CONTROL_PLANE_SERVER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| CaError::Certificate("sign the server certificate", e))?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Signs a node's certificate signing request. Only the public key is taken
    /// from the request: the subject is `CN=system:node:<node>, O=system:nodes`
    /// whatever the request asked for, usable for client authentication only.
    ///
    /// A reserved or invalid node name is refused here, on every path that signs
    /// for a node (join and renewal), so that no node certificate can ever be
    /// valid for the control plane's names.
    pub fn sign_node(&self, csr_pem: &str, node: &str) -> Result<String, CaError> {
        if let Some(problem) = node_name_problem(node) {
            return Err(CaError::ReservedName(problem));
        }
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadRequest(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{NODE_USER_PREFIX}{node}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, NODE_GROUP);
        // Also a server certificate for the node's name: node proxies call
        // each other over mutual TLS, verifying `server_name = <node name>`.
        let dns = rcgen::string::Ia5String::try_from(node.to_string())
            .map_err(|e| CaError::BadRequest(format!("node name {node:?}: {e}")))?;
        params.subject_alt_names = vec![rcgen::SanType::DnsName(dns)];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        let validity = time::Duration::try_from(self.node_cert_validity)
            .map_err(|e| CaError::BadRequest(format!("certificate validity: {e}")))?;
        // A minute back, for nodes whose clocks run a little behind (less for
        // very short lives, so that renewal still comes late in the life).
        params.not_before = now - time::Duration::minutes(1).min(validity / 10);
        params.not_after = now + validity;
        let mut serial: [u8; 16] = rand::random();
        // Positive and without a leading zero byte, so DER keeps all 16 bytes.
        serial[0] = 0x40 | (serial[0] & 0x3f);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|e| CaError::Certificate("sign the node certificate", e))?;
        let issued = node_cert_of(cert.der()).ok_or(CaError::Certificate(
            "read the node certificate just signed",
            rcgen::Error::CouldNotParseCertificate,
        ))?;
        self.ledger.record_issued(&issued)?;
        Ok(cert.pem())
    }
}

/// The node a client certificate names (`CN=system:node:<name>`), if it names one.
/// The certificate must already have been verified against the CA.
pub fn node_name_of(cert: &CertificateDer<'_>) -> Option<String> {
    node_cert_of(cert).map(|c| c.node)
}

pub(super) fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file readable by its owner only (keys), atomically.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), CaError> {
    skiff_transport::private_file::write(path, text).map_err(|source| CaError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_signs_node_requests() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let again = ClusterCa::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.hash(), again.hash(), "the CA is created once");

        // A request asking for another identity gets the node's anyway.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".into()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "system:admin");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let pem = again.sign_node(&csr, "n1").unwrap();
        let der = CertificateDer::from(skiff_api::join::pem_cert_der(&pem).unwrap());
        assert_eq!(node_name_of(&der).as_deref(), Some("n1"));
        // It also serves as the node's peer-proxy certificate, for its own
        // name only (not the one the request asked for).
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && eku.server_auth);
        let san = parsed.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(format!("{:?}", san.general_names), r#"[DNSName("n1")]"#);

        assert!(matches!(
            ca.sign_node("garbage", "n1"),
            Err(CaError::BadRequest(_))
        ));
        // A year, from about now.
        let info = node_cert_of(&der).unwrap();
        let now = jiff::Timestamp::now().as_second();
        assert!((info.not_before - now).abs() < 120, "{info:?}");
        let year = NODE_CERT_VALIDITY.as_secs() as i64;
        assert!((info.not_after - now - year).abs() < 120, "{info:?}");
        // The control plane's names are never signed for a node.
        for reserved in [CONTROL_PLANE_SERVER_NAME, "localhost", "Bad_Name"] {
            assert!(
                matches!(ca.sign_node(&csr, reserved), Err(CaError::ReservedName(_))),
                "{reserved}"
            );
        }
        let server = ca.server_identity().unwrap();
        assert_eq!(server.chain.len(), 2);
        assert_eq!(node_name_of(&server.chain[0]), None);
    }

    #[test]
    fn revoking_a_node_refuses_its_certificates_and_not_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let csr = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.serialize_request(&key).unwrap().pem().unwrap()
        };
        let serial = |pem: &str| {
            node_cert_of(&skiff_api::join::pem_cert_der(pem).unwrap())
                .unwrap()
                .serial
        };
        let first = serial(&ca.sign_node(&csr("a"), "n1").unwrap());
        let renewed = serial(&ca.sign_node(&csr("b"), "n1").unwrap());
        let other = serial(&ca.sign_node(&csr("c"), "n2").unwrap());
        assert_eq!(first.len(), 32);
        assert_ne!(first, renewed);
        assert!(!ca.is_revoked(&first));
        assert_eq!(ca.revoke_node("n1", None).unwrap(), 2);
        assert!(ca.is_revoked(&first) && ca.is_revoked(&renewed));
        assert!(!ca.is_revoked(&other));
        // Kept across a restart; a new certificate for the name works.
        let again = ClusterCa::load_or_create(dir.path()).unwrap();
        assert!(again.is_revoked(&first));
        let rejoined = serial(&again.sign_node(&csr("d"), "n1").unwrap());
        assert!(!again.is_revoked(&rejoined));
    }
}
