//! The node gateway's protocol edges, against a real control plane and a real
//! node in this process: a peer that breaks the framing loses its own
//! connection and nothing else, and a peer of another protocol version is told
//! so in words.

use std::time::Duration;

use skiff_testkit::quic;

use skiff_api::join::CONTROL_PLANE_SERVER_NAME;
use skiff_api::wire::{self, JoinRequest, Open, PROTOCOL_VERSION, Reply};
use skiff_control::{ControlPlane, ControlPlaneConfig};
use skiff_node::Node;

const DEADLINE: Duration = Duration::from_secs(60);

/// A QUIC client that trusts the cluster CA, as a joining node does, but
/// speaks whatever bytes the test gives it.
fn raw_client(plane: &ControlPlane) -> quinn::Endpoint {
    quic::client(plane.ca_pem(), None, wire::ALPN)
}

async fn connect(endpoint: &quinn::Endpoint, plane: &ControlPlane) -> quinn::Connection {
    endpoint
        .connect(plane.quic_addr(), CONTROL_PLANE_SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake with the gateway")
}

/// Sends `bytes` as the first stream's content and returns how the connection ended.
async fn send_raw(connection: &quinn::Connection, bytes: &[u8]) -> quinn::ConnectionError {
    let (mut send, _recv) = connection.open_bi().await.expect("open a stream");
    send.write_all(bytes).await.expect("write");
    tokio::time::timeout(DEADLINE, connection.closed())
        .await
        .expect("the gateway closes a connection that breaks the framing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_only_its_own_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ControlPlaneConfig::new(dir.path().join("cp"));
    config.api_addr = "127.0.0.1:0".parse().expect("addr");
    config.quic_addr = "127.0.0.1:0".parse().expect("addr");
    let plane = ControlPlane::start(config).await.expect("control plane");
    let token = plane
        .create_join_token(None, "test")
        .await
        .expect("join token");
    // Free ports: tests on this machine run side by side.
    let node = Node::builder()
        .name("n1")
        .control_plane(plane.quic_addr())
        .proxy_port(0)
        .http_port(0)
        .metrics_port(0)
        .token(token)
        .data_dir(dir.path().join("n1"))
        .start()
        .await
        .expect("node starts");
    tokio::time::timeout(DEADLINE, node.wait_connected())
        .await
        .expect("the node connects");

    let endpoint = raw_client(&plane);
    // JSON that is no frame the protocol knows.
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"nope!");
    let bad = connect(&endpoint, &plane).await;
    let ended = send_raw(&bad, &garbage).await;
    assert!(
        matches!(&ended, quinn::ConnectionError::ApplicationClosed(c) if c.reason.as_ref() == b"malformed frame"),
        "{ended:?}"
    );
    // A header announcing more than the bound.
    let huge = connect(&endpoint, &plane).await;
    let ended = send_raw(&huge, &u32::MAX.to_be_bytes()).await;
    assert!(
        matches!(&ended, quinn::ConnectionError::ApplicationClosed(c) if c.reason.as_ref() == b"malformed frame"),
        "{ended:?}"
    );

    // The node's session was untouched, and the gateway still answers others.
    assert!(node.is_connected(), "the node lost its session");
    let other = connect(&endpoint, &plane).await;
    let (mut send, mut recv) = other.open_bi().await.expect("open a stream");
    let join = Open::Join(JoinRequest {
        version: PROTOCOL_VERSION + 1,
        token: "abcdef.0123456789abcdef".into(),
        node_name: "future".into(),
        csr_pem: String::new(),
    });
    send.write_all(&wire::encode(&join).expect("encode"))
        .await
        .expect("write");
    let _ = send.finish();
    match quic::read_frame::<Reply>(&mut recv).await {
        Reply::Refused { code, message } => {
            assert_eq!(code, 400);
            assert!(
                message.contains(&format!(
                    "protocol version {} is not supported",
                    PROTOCOL_VERSION + 1
                )) && message.contains("same Skiff release"),
                "{message}"
            );
        }
        other => panic!("a join of another version must be refused: {other:?}"),
    }
    assert!(node.is_connected(), "the node lost its session");
}

/// A node renews its certificate over its session before it expires, keeps
/// the new one in its data dir, presents it on its peer port without a
/// restart, and connects with it after the first one has expired.
/// (Certificates of 30 s here; a year by default.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renews_its_certificate_before_it_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ControlPlaneConfig::new(dir.path().join("cp"));
    config.api_addr = "127.0.0.1:0".parse().expect("addr");
    config.quic_addr = "127.0.0.1:0".parse().expect("addr");
    config.node_cert_validity = Duration::from_secs(30);
    let plane = ControlPlane::start(config).await.expect("control plane");
    let token = plane
        .create_join_token(None, "test")
        .await
        .expect("join token");
    let node_dir = dir.path().join("n1");
    let peer_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let start = |token: Option<String>, peer_port: u16| {
        let mut builder = Node::builder()
            .name("n1")
            .control_plane(plane.quic_addr())
            .address([127, 0, 0, 1].into())
            .proxy_port(peer_port)
            .http_port(0)
            .metrics_port(0)
            .data_dir(node_dir.clone());
        if let Some(token) = token {
            builder = builder.token(token);
        }
        builder.start()
    };
    let node = start(Some(token), peer_port).await.expect("node starts");
    tokio::time::timeout(DEADLINE, node.wait_connected())
        .await
        .expect("the node connects");
    let identity = node_dir.join("identity");
    let joined = std::fs::read_to_string(identity.join("node.crt")).expect("joined certificate");
    let joined_der = skiff_api::join::pem_cert_der(&joined).expect("PEM");
    let (_, first) = x509_parser::parse_x509_certificate(&joined_der).expect("parse");
    let first_expiry = first.validity().not_after.timestamp();

    let renewed = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(text) = std::fs::read_to_string(identity.join("node.pem")) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the node renews its certificate");
    let renewed_der = skiff_api::join::pem_cert_der(&renewed).expect("renewed PEM");
    assert_ne!(renewed_der, joined_der);
    let (_, renewed_cert) =
        x509_parser::parse_x509_certificate(&renewed_der).expect("parse the renewed certificate");
    assert!(renewed_cert.validity().not_after.timestamp() > first_expiry);
    let subject = renewed_cert.subject().to_string();
    assert!(subject.contains("system:node:n1"), "{subject}");

    // Once the first certificate has expired, only the renewed one works.
    let wait = first_expiry + 1
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;
    // The running node's peer port presents the renewed certificate: a peer
    // (a node of its own, just joined) completes mutual TLS and is answered.
    let peer_token = plane
        .create_join_token(None, "peer")
        .await
        .expect("join token");
    let peer_identity = quic::join(plane.quic_addr(), plane.ca_pem(), &peer_token, "n2").await;
    let peer = quic::client(plane.ca_pem(), Some(peer_identity), quic::PEER_ALPN);
    let connection = peer
        .connect(([127, 0, 0, 1], peer_port).into(), "n1")
        .expect("connect")
        .await
        .expect("n1's peer port presents a certificate that has not expired");
    let (mut send, mut recv) = connection.open_bi().await.expect("a stream");
    let call = Open::Proxy(wire::ProxyRequest {
        namespace: "default".into(),
        name: "absent".into(),
        port: None,
        method: "GET".into(),
        path: "/".into(),
        headers: Vec::new(),
    });
    quic::write_frame(&mut send, &call).await;
    let _ = send.finish();
    match quic::read_frame::<Reply>(&mut recv).await {
        Reply::Refused { code: 404, .. } => {}
        other => panic!("n1 answers a call for a pod it does not run with 404: {other:?}"),
    }
    drop(node);

    let node = start(None, 0).await.expect("node restarts");
    tokio::time::timeout(DEADLINE, node.wait_connected())
        .await
        .expect("the node connects with its renewed certificate");
}
