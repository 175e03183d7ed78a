//! How a node proves it may join a cluster: bootstrap tokens, as kubeadm has them,
//! carrying the hash of the cluster CA so that the node can trust the control
//! plane before it has any certificate of its own.
//!
//! A token reads `skiff1:<64 hex: sha256 of the CA certificate (DER)>:<id>.<secret>`,
//! where `<id>` is 6 and `<secret>` 16 characters of `[a-z0-9]` (kubeadm's token
//! shape). The control plane keeps each token as a Secret `kube-system/bootstrap-token-<id>`
//! of type `bootstrap.kubernetes.io/token` (Kubernetes' own format), and publishes its
//! CA certificate in the ConfigMap `kube-public/cluster-info` under `ca.crt`.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The prefix naming the token format's version.
pub const TOKEN_PREFIX: &str = "skiff1";
/// Namespace of bootstrap token Secrets.
pub const TOKEN_NAMESPACE: &str = "kube-system";
/// Name prefix of bootstrap token Secrets (`bootstrap-token-<id>`).
pub const TOKEN_SECRET_PREFIX: &str = "bootstrap-token-";
/// Secret `type` of a bootstrap token.
pub const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Namespace and name of the ConfigMap that publishes the CA certificate.
pub const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");
/// Key of the CA certificate (PEM) in the cluster-info ConfigMap.
pub const CLUSTER_INFO_CA_KEY: &str = "ca.crt";
/// The name the control plane's QUIC certificate is issued for; nodes connect
/// with it as the TLS server name whatever address they dial.
pub const CONTROL_PLANE_SERVER_NAME: &str = "skiff-control-plane";
/// Prefix of a node's identity (certificate common name), as in Kubernetes.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group (certificate organization) of nodes.
pub const NODE_GROUP: &str = "system:nodes";
/// Key of a bootstrap token Secret holding `sha256` (hex) of the token's secret
/// part. Skiff stores the hash in place of Kubernetes' plain `token-secret`, so
/// that reading the Secret does not give a way to join.
pub const TOKEN_SECRET_HASH_KEY: &str = "token-secret-sha256";
/// Key of a bootstrap token Secret that lets the token join more than one node
/// (`"true"`), in the manner of kubeadm's `usage-bootstrap-*` keys. Without it a
/// token is consumed by the first successful join.
pub const TOKEN_REUSABLE_KEY: &str = "usage-bootstrap-reusable";
/// Names no node may take: the control plane's own certificate name, and names
/// that clients resolve to this machine, so that a node certificate (which is
/// also a server certificate for the node's name) can never pass for the
/// control plane's.
pub const RESERVED_NODE_NAMES: &[&str] = &[
    CONTROL_PLANE_SERVER_NAME,
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
];
/// How long a node certificate is valid.
pub const NODE_CERT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
/// A node renews its certificate once less than this is left of it (K3s renews
/// client certificates within 90 days of expiry).
pub const NODE_CERT_RENEW_BEFORE: std::time::Duration =
    std::time::Duration::from_secs(90 * 24 * 3600);

/// How a token should look, and where to get one: the end of every [`TokenError`].
const TOKEN_SHAPE: &str = "a join token looks like skiff1:<64 hex>:<6 chars>.<16 chars>; create one with `skiff token create`";

/// Why text is not a join token; each message ends saying what a token looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `<prefix>:<hash>:<id>.<secret>`, or the id or secret has the wrong shape.
    #[error("malformed join token: {TOKEN_SHAPE}")]
    Malformed,
    /// A prefix other than [`TOKEN_PREFIX`].
    #[error("unknown join token format {0:?}: {TOKEN_SHAPE}")]
    UnknownFormat(String),
    /// The CA hash is not 64 hex digits.
    #[error("malformed CA hash in join token: {TOKEN_SHAPE}")]
    MalformedCaHash,
}

/// A parsed bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// `sha256` of the CA certificate, 64 lowercase hex characters.
    pub ca_hash: String,
    /// Public part, names the Secret.
    pub id: String,
    /// Secret part.
    pub secret: String,
}

// The secret never reaches a log through `{:?}`.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}:{}:{}.{}",
            self.ca_hash, self.id, self.secret
        )
    }
}

impl JoinToken {
    /// Parses `skiff1:<hash>:<id>.<secret>`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let mut parts = s.trim().splitn(3, ':');
        let (Some(prefix), Some(hash), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if prefix != TOKEN_PREFIX {
            return Err(TokenError::UnknownFormat(prefix.to_string()));
        }
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::MalformedCaHash);
        }
        let Some((id, secret)) = rest.split_once('.') else {
            return Err(TokenError::Malformed);
        };
        if !valid_part(id, 6) || !valid_part(secret, 16) {
            return Err(TokenError::Malformed);
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The name of the Secret that holds this token.
    pub fn secret_name(&self) -> String {
        format!("{TOKEN_SECRET_PREFIX}{}", self.id)
    }
}

/// `sha256` (hex) of a token's secret part: what its Secret keeps.
pub fn token_secret_hash(secret: &str) -> String {
    hex_lower(&Sha256::digest(secret.as_bytes()))
}

/// Why `name` cannot be a node's name, if it cannot: not a DNS-1123 subdomain
/// (Kubernetes' rule for Node names), or reserved ([`RESERVED_NODE_NAMES`]).
pub fn node_name_problem(name: &str) -> Option<String> {
    let problems = crate::validate::names::is_dns1123_subdomain(name);
    if !problems.is_empty() {
        return Some(format!(
            "invalid node name {name:?}: {}",
            problems.join("; ")
        ));
    }
    let reserved = RESERVED_NODE_NAMES
        .iter()
        .any(|r| name == *r || name.ends_with(".localhost"));
    reserved.then(|| {
        format!("the node name {name:?} is reserved for the control plane: choose another --name")
    })
}

/// Whether a certificate valid from `not_before` to `not_after` (seconds since
/// the epoch) should be renewed at `now`: once less than
/// [`NODE_CERT_RENEW_BEFORE`] is left, or a third of its life for shorter
/// certificates, so that renewing never loops.
pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    now > renew_at(not_before, not_after)
}

/// The last second before renewal of a certificate valid from `not_before` to
/// `not_after` is due (see [`renewal_due`]).
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let life = not_after.saturating_sub(not_before).max(0);
    let window = (life / 3).min(NODE_CERT_RENEW_BEFORE.as_secs() as i64);
    not_after.saturating_sub(window)
}

/// Whether `s` is `len` characters of `[a-z0-9]`.
pub fn valid_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `sha256` (hex) of a certificate given as DER.
pub fn cert_hash(der: &[u8]) -> String {
    hex_lower(&Sha256::digest(der))
}

/// `sha256` (hex) of the first certificate in `pem`, or `None` if there is none.
pub fn pem_cert_hash(pem: &str) -> Option<String> {
    pem_cert_der(pem).map(|der| cert_hash(&der))
}

/// The DER bytes of the first `CERTIFICATE` block in `pem`.
pub fn pem_cert_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips() {
        let text = format!("skiff1:{HASH}:abcdef.0123456789abcdef");
        let token = JoinToken::parse(&text).unwrap();
        assert_eq!(token.id, "abcdef");
        assert_eq!(token.secret_name(), "bootstrap-token-abcdef");
        assert_eq!(token.to_string(), text);
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn refuses_malformed_tokens() {
        for bad in [
            "",
            "abcdef.0123456789abcdef",
            &format!("k10:{HASH}:abcdef.0123456789abcdef"),
            &format!("skiff1:{}:abcdef.0123456789abcdef", &HASH[1..]),
            &format!("skiff1:{HASH}:abcde.0123456789abcdef"),
            &format!("skiff1:{HASH}:ABCDEF.0123456789abcdef"),
            &format!("skiff1:{HASH}:abcdef0123456789abcdef"),
        ] {
            let err = JoinToken::parse(bad).unwrap_err().to_string();
            assert!(err.contains("skiff token create"), "{bad}: {err}");
        }
    }

    #[test]
    fn token_secrets_are_kept_as_their_sha256() {
        let hash = token_secret_hash("0123456789abcdef");
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, token_secret_hash("0123456789abcdeg"));
        // sha256("0123456789abcdef"), as `printf %s 0123456789abcdef | sha256sum` prints it.
        assert_eq!(
            hash,
            "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f"
        );
    }

    #[test]
    fn reserved_and_invalid_node_names_are_refused() {
        for bad in [
            "skiff-control-plane",
            "localhost",
            "a.localhost",
            "kubernetes",
        ] {
            let problem = node_name_problem(bad).unwrap();
            assert!(problem.contains("reserved"), "{bad}: {problem}");
        }
        for bad in ["", "UPPER", "a_b", "-x", &"a".repeat(254)] {
            let problem = node_name_problem(bad).unwrap();
            assert!(problem.contains("invalid node name"), "{bad}: {problem}");
        }
        assert_eq!(node_name_problem("edge-1.zone-a"), None);
    }

    #[test]
    fn renewal_is_due_within_90_days_or_a_third_of_a_short_life() {
        const DAY: i64 = 24 * 3600;
        let year = 365 * DAY;
        assert!(!renewal_due(0, year, 0));
        assert!(!renewal_due(0, year, year - 91 * DAY));
        assert!(renewal_due(0, year, year - 89 * DAY));
        assert!(renewal_due(0, year, year + 1));
        // A 30 s certificate renews in its last 10 s, not all the time.
        assert!(!renewal_due(100, 130, 115));
        assert!(renewal_due(100, 130, 121));
    }

    #[test]
    fn hashes_the_der_of_a_pem_certificate() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_cert_der(pem).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(pem_cert_hash(pem).unwrap(), cert_hash(&[0, 1, 2, 3]));
        assert_eq!(pem_cert_hash("nothing"), None);
    }
}
