//! What a node certificate says: the node it names (`CN=system:node:<name>`),
//! its serial and its validity. The control plane reads it to know who is on
//! a session and what to revoke; a node reads it to know which peer calls it.

use skiff_api::join::NODE_USER_PREFIX;

/// What is known of a node's verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCert {
    /// The node it names.
    pub node: String,
    /// Its serial number, lowercase hex.
    pub serial: String,
    /// Validity, in seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// The node, serial and validity of a certificate (DER), if it names a node.
/// The certificate must already have been verified against the cluster CA.
pub fn node_cert_of(cert: &[u8]) -> Option<NodeCert> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    let node = cn
        .strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())?
        .to_string();
    let serial = parsed
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(NodeCert {
        node,
        serial,
        not_before: parsed.validity().not_before.timestamp(),
        not_after: parsed.validity().not_after.timestamp(),
    })
}
