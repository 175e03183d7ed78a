//! The control plane <-> node protocol, carried over QUIC streams.
//!
//! Every stream starts with an [`Open`] frame from the side that opened it and an
//! answer frame ([`Reply`]) from the other side; some streams then carry raw bytes
//! (a component, a log, an HTTP body), the session stream carries [`Upstream`] and
//! [`Downstream`] frames until the connection ends.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON; a
//! frame longer than [`MAX_FRAME`] is an error that closes the stream (and, for the
//! session stream, the connection), never the process. The first frame on every
//! connection ([`Open::Join`] or [`Open::Session`]) carries [`PROTOCOL_VERSION`].
//!
//! Streams the node opens: `Join` (no client certificate yet), `Session` (mutual
//! TLS; one per connection, first), `Fetch` (a component by reference), `Renew`
//! (a new certificate for the same node, before the old one expires). Streams
//! the control plane opens to a node: `Logs`, `Proxy`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 5;
/// ALPN protocol name of Skiff's QUIC connections (the version is in the frames,
/// so that a mismatch gets a clear message rather than a TLS alert).
pub const ALPN: &[u8] = b"skiff";
/// Largest frame accepted: pod lists can be large, components are not framed.
pub const MAX_FRAME: usize = 16 << 20;
/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// The first frame of a stream, from the side that opened it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "open", rename_all = "camelCase")]
pub enum Open {
    /// Node -> control, without a client certificate: trade a token for one.
    Join(JoinRequest),
    /// Node -> control, the first stream of a mutual-TLS connection.
    Session(Hello),
    /// Node -> control: send me this component.
    Fetch { image: String },
    /// Node -> control, on a mutual-TLS connection: sign this certificate
    /// signing request (PEM) for the node the connection's certificate names.
    /// Answered with [`Reply::Joined`].
    Renew { csr_pem: String },
    /// Control -> node: send me this pod's log.
    Logs(LogsRequest),
    /// Control -> node: hand this HTTP request to a pod; the body follows as raw
    /// bytes until the end of the stream's send side.
    Proxy(ProxyRequest),
}

/// The answer to an [`Open`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum Reply {
    /// The join worked: the node's certificate and the cluster CA.
    Joined(JoinResponse),
    /// The session is open. `pod_cidr` is the node's `spec.podCIDR`, the block
    /// it gives its pods addresses from (absent when none could be allocated).
    Welcome {
        version: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod_cidr: Option<String>,
    },
    /// The component follows: `size` raw bytes, then the end of the stream.
    Component { digest: String, size: u64 },
    /// The log follows as raw bytes until the end of the stream.
    Logs,
    /// The response head; the body follows as raw bytes until the end of the stream.
    Proxied(ProxyResponse),
    /// Refused, with an HTTP-like status code (400, 401, 403, 404, 409, 503) and a
    /// message for the user.
    Refused { code: u16, message: String },
}

/// Asks for a node certificate.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub version: u32,
    /// `<id>.<secret>` of the bootstrap token.
    pub token: String,
    pub node_name: String,
    /// A PKCS#10 certificate signing request (PEM) for `system:node:<name>`.
    pub csr_pem: String,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("version", &self.version)
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

/// A node's new identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub cert_pem: String,
    pub ca_pem: String,
}

/// Opens a node's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub version: u32,
    pub node_name: String,
    /// Labels the node sets on its Node object (`--labels` and the well-known ones).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The node's `status` as it sees itself: capacity, allocatable, addresses,
    /// nodeInfo. The control plane adds the conditions.
    pub status: Value,
    /// UIDs of the pods the node is running now (from its local state), so the
    /// control plane knows what it has.
    #[serde(default)]
    pub running: Vec<String>,
}

/// Node -> control frames on the session stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Upstream {
    /// The node is alive.
    Heartbeat,
    /// A pod's complete `status`.
    PodStatus {
        namespace: String,
        name: String,
        uid: String,
        status: Value,
    },
    /// A pod marked for deletion has stopped: remove its object.
    PodTerminated {
        namespace: String,
        name: String,
        uid: String,
    },
    /// An Event to record.
    Event(EventReport),
}

/// An Event the node reports about one of its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
    /// `Normal` or `Warning`.
    pub event_type: String,
    pub reason: String,
    pub message: String,
}

/// Control -> node frames on the session stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Downstream {
    /// Every pod bound to the node now; anything else it runs must stop.
    Snapshot { pods: Vec<Value> },
    /// A pod bound to the node was added or changed.
    Upsert { pod: Value },
    /// A pod is no longer bound to the node (its object is gone).
    Remove { uid: String },
    /// What the node proxy routes by: every Service, EndpointSlice and Node
    /// (the Nodes reduced to their name, addresses and daemon endpoints), so
    /// that any node serves any Service. Sent once when the session opens;
    /// anything the node had before that is gone.
    RoutingSnapshot { objects: Vec<Value> },
    /// A routing object was added or changed (the whole object).
    RoutingUpsert { object: Value },
    /// A routing object is gone.
    RoutingRemove {
        kind: String,
        namespace: String,
        name: String,
    },
    /// A ConfigMap or Secret a pod of the node refers to (the whole object):
    /// added, changed, or newly referred to. Sent before the pod that needs it.
    ObjectUpsert { object: Value },
    /// A ConfigMap or Secret is gone, or no pod of the node refers to it any
    /// more: the node forgets it (a node holds only its own pods' secrets).
    ObjectRemove(ObjectName),
    /// After the [`Downstream::ObjectUpsert`]s sent just before it, the node
    /// holds exactly these objects and forgets any other. Sent when the
    /// session opens, before the pods, and after the control plane re-lists;
    /// names only, so that no frame grows with the objects' size.
    ObjectsHeld { objects: Vec<ObjectName> },
    /// The control plane refused one of the node's [`Upstream`] frames (the
    /// node authorizer: a node acts only on its own pods). Nothing was changed.
    Denied { code: u16, message: String },
    /// The serials (lowercase hex) of every node certificate the CA has
    /// revoked and that has not expired: the whole list, sent when the session
    /// opens and again whenever it changes. A node's peer proxy refuses, and
    /// disconnects, callers presenting one of them.
    Revoked { serials: Vec<String> },
}

/// A ConfigMap or Secret, by name: `kind` is `ConfigMap` or `Secret`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectName {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// `GET .../pods/NAME/log`, forwarded to the pod's node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsRequest {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub previous: bool,
    #[serde(default)]
    pub timestamps: bool,
    #[serde(default)]
    pub tail_lines: Option<u64>,
    #[serde(default)]
    pub since_seconds: Option<u64>,
    #[serde(default)]
    pub limit_bytes: Option<u64>,
}

/// An HTTP request for a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRequest {
    pub namespace: String,
    pub name: String,
    /// The container port; `None` means the pod's first HTTP container.
    #[serde(default)]
    pub port: Option<u16>,
    pub method: String,
    /// Path and query, as the pod sees them.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// The head of an HTTP response from a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME} bytes allowed")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(serde_json::Error),
}

/// A frame: header and JSON body.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0; HEADER_LEN];
    serde_json::to_writer(&mut out, message).map_err(FrameError::Malformed)?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    // `len <= MAX_FRAME` fits in a u32.
    out[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// The body length a frame header announces, if allowed.
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let open = Open::Fetch {
            image: "hello:v1".into(),
        };
        let frame = encode(&open).unwrap();
        let mut header = [0; HEADER_LEN];
        header.copy_from_slice(&frame[..HEADER_LEN]);
        let len = body_len(header).unwrap();
        assert_eq!(len, frame.len() - HEADER_LEN);
        let back: Open = decode(&frame[HEADER_LEN..]).unwrap();
        assert_eq!(back, open);
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let too_big = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(body_len(too_big), Err(FrameError::TooLarge(_))));
        assert!(matches!(
            decode::<Open>(b"{\"open\":\"nonsense\"}"),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn join_request_debug_hides_the_token() {
        let req = JoinRequest {
            version: PROTOCOL_VERSION,
            token: "abcdef.0123456789abcdef".into(),
            node_name: "n1".into(),
            csr_pem: String::new(),
        };
        assert!(!format!("{req:?}").contains("0123456789abcdef"));
    }
}
