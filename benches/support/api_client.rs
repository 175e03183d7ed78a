//! A small client of the Kubernetes API for benchmarks: one HTTP/1.1 keep-alive
//! connection per caller over TLS with the admin's client certificate
//! (hyper's connection API, `TCP_NODELAY`), so a load generator decides
//! exactly how many requests are in flight, and watches read line by line
//! with the instant each line arrived.
//!
//! Shared by the benchmarks through `benches/support/mod.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// The API's address and how to reach it: the CA and client certificate of a
/// kubeconfig (the admin's, for the one a server writes).
#[derive(Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl Endpoint {
    pub fn from_kubeconfig(kubeconfig: &Path, addr: SocketAddr) -> anyhow::Result<Endpoint> {
        let (tls, _) = skiff_client::tls::from_kubeconfig(kubeconfig, true)
            .context("TLS settings from the kubeconfig")?;
        Ok(Endpoint {
            addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new HTTP/1.1 connection over TLS (`TCP_NODELAY`).
    pub async fn connect(&self) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
        let addr = self.addr;
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let stream = self
            .tls
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS handshake with {addr}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // An error here also fails the request in flight, which reports it.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// One keep-alive connection to the API.
pub struct Connection {
    host: String,
    sender: http1::SendRequest<Full<Bytes>>,
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// An open watch on its own connection: newline-delimited JSON events.
pub struct Watch {
    body: Incoming,
    buffer: Vec<u8>,
    /// When the frame that completed the buffer's first line arrived.
    arrived: Instant,
}

impl Connection {
    /// Connects to the API at `addr` (before any clock starts: setup is not
    /// what a benchmark measures).
    pub async fn open(api: &Endpoint) -> anyhow::Result<Self> {
        Ok(Connection {
            host: api.addr.to_string(),
            sender: api.connect().await?,
        })
    }

    /// A plain-HTTP connection, to a NodePort or an Ingress port.
    pub async fn open_plain(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            host: addr.to_string(),
            sender,
        })
    }

    /// Sends one request and reads the whole response; an error is a transport
    /// failure, never an HTTP status.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let request = Request::builder()
            .method(&method)
            .uri(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, "application/json")
            .body(Full::new(body))
            .context("build the request")?;
        self.sender
            .ready()
            .await
            .with_context(|| format!("{method} {path}: connection"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{method} {path}: read the response body"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// `GET path` as JSON; fails unless the answer is 200 with a JSON body.
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<Value> {
        let reply = self
            .request(Method::GET, path, "application/json", Bytes::new())
            .await?;
        reply.expect(StatusCode::OK, &format!("GET {path}"))?;
        reply.json()
    }
}

impl Reply {
    /// Fails with the body's start unless the status is `want`.
    pub fn expect(&self, want: StatusCode, what: &str) -> anyhow::Result<()> {
        if self.status != want {
            bail!(
                "{what} answered {} (expected {want}): {}",
                self.status,
                self.text().chars().take(300).collect::<String>()
            );
        }
        Ok(())
    }

    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("a {} response is not JSON: {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Watch {
    /// Starts a watch (`path` carries `?watch=true...`) on a connection of its
    /// own; returns once the API has answered 200 with the stream's headers, so
    /// every change after that reaches it.
    pub async fn start(api: &Endpoint, path: &str) -> anyhow::Result<Self> {
        let mut connection = Connection::open(api).await?;
        let request = Request::get(path)
            .header(HOST, &connection.host)
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .context("build the watch request")?;
        connection
            .sender
            .ready()
            .await
            .context("watch connection")?;
        let response = connection
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("GET {path}"))?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            bail!(
                "watch {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(Watch {
            body: response.into_body(),
            buffer: Vec::new(),
            arrived: Instant::now(),
        })
    }

    /// The next event and the instant the bytes that completed it arrived;
    /// `None` when the stream ends.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<(Instant, Value)>> {
        let Some((arrived, line)) = self.next_line().await? else {
            return Ok(None);
        };
        let event = serde_json::from_slice(&line).with_context(|| {
            format!(
                "a watch event is not JSON: {}",
                String::from_utf8_lossy(&line)
            )
        })?;
        Ok(Some((arrived, event)))
    }

    /// The next event as its raw JSON line (for a caller that decodes only the
    /// fields it needs, cheaply), and the instant it arrived.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<(Instant, Vec<u8>)>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some((self.arrived, line)));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.arrived = Instant::now();
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(e).context("read the watch stream"),
                None => return Ok(None),
            }
        }
    }
}

/// Percent-encodes a query parameter's value.
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
