//! Speaking Skiff's QUIC protocols from a test, as a node or a rogue would:
//! a client endpoint trusting the cluster CA, frames, and joining with a
//! token to get a node certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use skiff_api::join::{CONTROL_PLANE_SERVER_NAME, JoinToken};
use skiff_api::wire::{self, JoinRequest, Open, PROTOCOL_VERSION, Reply};
use skiff_transport::frames;

/// ALPN of the node proxies' peer port.
pub const PEER_ALPN: &[u8] = b"skiff-peer";

/// A QUIC client trusting the cluster CA (PEM), with a client certificate
/// and key (DER) or none, speaking `alpn`.
pub fn client(ca_pem: &str, client: Option<(Vec<u8>, Vec<u8>)>, alpn: &[u8]) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    let der = skiff_api::join::pem_cert_der(ca_pem).expect("CA certificate");
    roots.add(der.into()).expect("trust the CA");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots);
    let mut tls = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// The next frame; a test fails if the stream breaks or ends.
pub async fn read_frame<T: serde::de::DeserializeOwned>(recv: &mut quinn::RecvStream) -> T {
    frames::read(recv)
        .await
        .expect("a frame")
        .expect("a frame before the stream ended")
}

pub async fn write_frame<T: serde::Serialize>(send: &mut quinn::SendStream, message: &T) {
    frames::write(send, message).await.expect("write a frame");
}

/// Joins as `name` with `token`: the certificate (DER) and its key (PKCS#8 DER).
pub async fn join(addr: SocketAddr, ca_pem: &str, token: &str, name: &str) -> (Vec<u8>, Vec<u8>) {
    let token = JoinToken::parse(token).expect("token");
    let key = rcgen::KeyPair::generate().expect("key");
    let csr_pem = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .expect("CSR");
    let endpoint = client(ca_pem, None, wire::ALPN);
    let connection = endpoint
        .connect(addr, CONTROL_PLANE_SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    let request = JoinRequest {
        version: PROTOCOL_VERSION,
        token: format!("{}.{}", token.id, token.secret),
        node_name: name.to_string(),
        csr_pem,
    };
    write_frame(&mut send, &Open::Join(request)).await;
    let _ = send.finish();
    match read_frame::<Reply>(&mut recv).await {
        Reply::Joined(joined) => {
            let cert = skiff_api::join::pem_cert_der(&joined.cert_pem).expect("certificate");
            (cert, key.serialize_der())
        }
        other => panic!("{name} could not join: {other:?}"),
    }
}
