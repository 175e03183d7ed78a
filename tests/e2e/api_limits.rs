//! The API's listener holds up against a slowloris: connections that never
//! finish their TLS handshake, and connections that send their headers a
//! byte at a time, are closed by the server within 30 s, while ordinary
//! requests keep being answered.

use skiff_testkit::cluster;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cluster::Server;

const STALLED: usize = 500;
const TRICKLING: usize = 500;

/// The 99th percentile of `n` GETs of `path`, each on a fresh connection.
fn p99(server: &Server, path: &str, n: usize) -> Duration {
    let api = server.api();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let (code, body) = api.get(path).expect("an ordinary request");
            assert_eq!(code, 200, "{body}");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[(n * 99 / 100).min(n - 1)]
}

/// Whether the server has closed `stream` (a read sees the end or an error).
fn closed(stream: &mut impl Read) -> bool {
    let mut byte = [0u8; 64];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn slowloris_connections_are_closed_and_others_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let path = "/api/v1/namespaces/default/configmaps";
    let quiet = p99(&server, path, 100);

    let opened = Instant::now();
    // TLS never started: a TCP connection that sends nothing.
    let mut stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| TcpStream::connect(server.addr()).expect("connect"))
        .collect();
    // TLS done, then request headers one byte at a time.
    let tls = server.api_tls();
    let mut trickling: Vec<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> = (0
        ..TRICKLING)
        .map(|_| {
            let tcp = TcpStream::connect(server.addr()).expect("connect");
            let name = rustls_pki_types::ServerName::IpAddress(server.addr().ip().into());
            let conn = rustls::ClientConnection::new(tls.clone(), name).expect("TLS client");
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream
                .write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n")
                .expect("start a request");
            stream
        })
        .collect();
    let attacked = p99(&server, path, 100);

    // Keep trickling until the server has closed every connection.
    let deadline = opened + Duration::from_secs(30);
    let mut open_stalled: Vec<bool> = vec![true; STALLED];
    let mut open_trickling: Vec<bool> = vec![true; TRICKLING];
    for s in &stalled {
        s.set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
    }
    for s in &trickling {
        s.sock
            .set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
    }
    while Instant::now() < deadline
        && (open_stalled.iter().any(|o| *o) || open_trickling.iter().any(|o| *o))
    {
        for (i, s) in stalled.iter_mut().enumerate() {
            if open_stalled[i] && closed(s) {
                open_stalled[i] = false;
            }
        }
        for (i, s) in trickling.iter_mut().enumerate() {
            if open_trickling[i] && (s.write_all(b"X").is_err() || closed(s)) {
                open_trickling[i] = false;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let still_stalled = open_stalled.iter().filter(|o| **o).count();
    let still_trickling = open_trickling.iter().filter(|o| **o).count();
    assert_eq!(
        (still_stalled, still_trickling),
        (0, 0),
        "connections the server left open after {:?}",
        opened.elapsed()
    );
    // Ordinary requests were answered all along; their p99 stayed within 2x
    // (with a floor for a busy two-core machine, where one scheduling delay
    // is several milliseconds).
    eprintln!("p99 quiet {quiet:?}, under attack {attacked:?}");
    assert!(
        attacked <= (quiet * 2).max(Duration::from_millis(100)),
        "p99 {attacked:?} under attack against {quiet:?} quiet"
    );
    // And the server serves new connections afterwards.
    assert_eq!(server.api_get("/readyz").expect("readyz").0, 200);
}
