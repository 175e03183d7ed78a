//! The API's certificates: its HTTPS serving certificate (SANs as K3s gives
//! them) and client certificates (`CN` = user, `O` = groups, as Kubernetes'
//! x509 authenticator reads them), such as the admin's in the kubeconfig.

use std::path::Path;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{CaError, ClusterCa, ServerIdentity, read, write_private};

/// How long the certificates the control plane issues itself are valid (K3s:
/// one year).
pub const CERT_VALIDITY_DAYS: i64 = 365;
/// A stored certificate this close to its expiry is issued again at start
/// (K3s renews within 90 days of expiry).
pub const RENEW_WITHIN_DAYS: i64 = 90;

/// A client certificate and its key, PEM.
#[derive(Clone)]
pub struct ClientCredentials {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClusterCa {
    /// A fresh serving certificate for the API, valid for `names` (DNS names
    /// and IP addresses; rcgen tells them apart).
    pub fn api_serving_identity(&self, names: &[String]) -> Result<ServerIdentity, CaError> {
        let key =
            KeyPair::generate().map_err(|e| CaError::Certificate("make the API server key", e))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| CaError::Certificate("make the API server certificate", e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "skiff-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| CaError::Certificate("sign the API server certificate", e))?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// A client certificate for `user` in `groups`, valid for
    /// [`CERT_VALIDITY_DAYS`].
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<ClientCredentials, CaError> {
        let key = KeyPair::generate().map_err(|e| CaError::Certificate("make a client key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| CaError::Certificate("sign a client certificate", e))?;
        Ok(ClientCredentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The client credentials kept in `<dir>/<name>.crt` and `.key`, issued
    /// (again) when missing, unreadable, issued by another CA or within
    /// [`RENEW_WITHIN_DAYS`] of expiry.
    pub fn load_or_issue_client(
        &self,
        dir: &Path,
        name: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<ClientCredentials, CaError> {
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        if let (Ok(cert_pem), Ok(key_pem)) = (read(&cert_path), read(&key_path))
            && self.still_good(&cert_pem)
        {
            return Ok(ClientCredentials { cert_pem, key_pem });
        }
        let fresh = self.issue_client(user, groups)?;
        write_private(&key_path, &fresh.key_pem)?;
        write_private(&cert_path, &fresh.cert_pem)?;
        Ok(fresh)
    }

    /// Whether a stored certificate was issued by this CA and is not near
    /// its expiry.
    fn still_good(&self, cert_pem: &str) -> bool {
        let Some(der) = skiff_api::join::pem_cert_der(cert_pem) else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(self.cert_der()) else {
            return false;
        };
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return false;
        }
        let renew_at = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(RENEW_WITHIN_DAYS * 24))
            .map(|t| t.as_second())
            .unwrap_or(i64::MAX);
        cert.validity().not_after.timestamp() > renew_at
    }
}

/// From an hour ago (clocks differ a little) for [`CERT_VALIDITY_DAYS`].
fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CERT_VALIDITY_DAYS);
}

/// The DER certificates of a PEM bundle.
pub fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_carry_user_and_groups_and_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let admin = ca
            .load_or_issue_client(dir.path(), "admin", "skiff-admin", &["system:masters"])
            .unwrap();
        let again = ca
            .load_or_issue_client(dir.path(), "admin", "skiff-admin", &["system:masters"])
            .unwrap();
        assert_eq!(admin.cert_pem, again.cert_pem, "kept across starts");
        let der = skiff_api::join::pem_cert_der(&admin.cert_pem).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let subject = parsed.subject();
        assert_eq!(
            subject.iter_common_name().next().unwrap().as_str().unwrap(),
            "skiff-admin"
        );
        assert_eq!(
            subject
                .iter_organization()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "system:masters"
        );
        let days = (parsed.validity().not_after.timestamp()
            - parsed.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, CERT_VALIDITY_DAYS);

        // Another CA's certificate in the same place is replaced.
        let other_dir = tempfile::tempdir().unwrap();
        let other = ClusterCa::load_or_create(other_dir.path()).unwrap();
        let replaced = other
            .load_or_issue_client(dir.path(), "admin", "skiff-admin", &["system:masters"])
            .unwrap();
        assert_ne!(replaced.cert_pem, admin.cert_pem);
    }

    #[test]
    fn serving_certificates_name_addresses_and_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let id = ca
            .api_serving_identity(&["127.0.0.1".into(), "localhost".into(), "cp.example".into()])
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&id.chain[0]).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap().value;
        let names = format!("{:?}", san.general_names);
        assert!(names.contains("IPAddress([127, 0, 0, 1])"), "{names}");
        assert!(names.contains("DNSName(\"localhost\")"), "{names}");
        assert!(names.contains("DNSName(\"cp.example\")"), "{names}");
    }
}
