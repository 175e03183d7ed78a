//! A component push streams to disk, through the real `skiff push` and a
//! real server: a 192 MiB component costs the server little memory and is
//! stored whole under its digest; a large file that is not a component is
//! refused and leaves nothing behind; a push declaring more than the limit is
//! refused before any of it is read.

use skiff_testkit::cluster;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cluster::{Kubectl, Server, Skiff};
use sha2::{Digest, Sha256};

/// Anonymous resident memory (`RssAnon`: heap, not page cache) of a process, in KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc status")
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A valid component of about `size` bytes: an empty component and a
/// custom section (as a component's debug information is) filling the rest.
fn component_of_size(size: usize) -> Vec<u8> {
    let mut bytes = wat::parse_str("(component)").expect("an empty component");
    let name = b"filler";
    let payload = size.saturating_sub(bytes.len() + 16);
    let mut section = Vec::with_capacity(payload + 16);
    leb128(name.len(), &mut section);
    section.extend_from_slice(name);
    section.resize(section.len() + payload, 0x5a);
    bytes.push(0); // custom section id
    leb128(section.len(), &mut bytes);
    bytes.extend_from_slice(&section);
    bytes
}

/// The largest anonymous memory of `pid` while `work` runs, in KiB.
fn peak_anon_during<T>(pid: u32, work: impl FnOnce() -> T) -> (u64, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_anon_kib(pid)));
    let sampler = std::thread::spawn({
        let (stop, peak) = (stop.clone(), peak.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let out = work();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    peak.fetch_max(rss_anon_kib(pid), Ordering::Relaxed);
    (peak.load(Ordering::Relaxed), out)
}

/// Files in the server's component store.
fn stored(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("components/sha256"))
        .expect("the component store")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn component_pushes_stream_to_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let skiff = Skiff::new(&server.kubeconfig());
    let kubectl = Kubectl::new(&server.kubeconfig());
    let pid = server.pid().expect("the server runs");
    let data_dir = server.data_dir().to_path_buf();
    let before_files = stored(&data_dir);

    let big = component_of_size(192 << 20);
    let file = dir.path().join("big.wasm");
    std::fs::write(&file, &big).expect("write the component");
    let digest = format!("sha256:{}", hex(&Sha256::digest(&big)));
    let file_arg = file.to_str().expect("utf-8 path");

    let before = rss_anon_kib(pid);
    let (peak, out) = peak_anon_during(pid, || skiff.ok(&["push", file_arg, "--name", "big:v1"]));
    assert!(out.stdout.contains("big:v1"), "{}", out.stdout);
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 48,
        "pushing 192 MiB grew the server's heap by {grown_mib} MiB: the push was buffered"
    );
    let spec = kubectl.ok(&[
        "get",
        "component",
        "big.v1",
        "-o",
        "jsonpath={.spec.digest} {.spec.size}",
    ]);
    assert_eq!(spec.trim(), format!("{digest} {}", big.len()));
    let on_disk = std::fs::read(data_dir.join("components/sha256").join(&digest[7..]))
        .expect("the component's file");
    assert!(on_disk == big, "the stored bytes are the pushed ones");

    // 64 MiB that is not WebAssembly: refused, and nothing is left behind.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, vec![0u8; 64 << 20]).expect("write junk");
    let err = skiff.fails(&["push", junk.to_str().expect("utf-8"), "--name", "junk:v1"]);
    assert!(err.to_lowercase().contains("not a webassembly"), "{err}");
    let mut expected = before_files.clone();
    expected.push(digest[7..].to_string());
    expected.sort();
    assert_eq!(
        stored(&data_dir),
        expected,
        "only the valid component is stored"
    );

    // A push that says it is bigger than the limit is refused at once.
    let tcp = TcpStream::connect(server.addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let name = rustls_pki_types::ServerName::IpAddress(server.addr().ip().into());
    let conn = rustls::ClientConnection::new(server.api_tls(), name).expect("TLS");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "POST /apis/skiff.dev/v1alpha1/components?name=huge:v1 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\n\r\n\0asm",
        server.addr(),
        600u64 << 20
    )
    .expect("send the head");
    tls.flush().expect("flush");
    let mut head = [0u8; 512];
    let n = tls.read(&mut head).expect("an answer before the body");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        kubectl
            .run(&["get", "component", "huge.v1"])
            .stdout
            .is_empty()
    );
    assert_eq!(stored(&data_dir), expected);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
