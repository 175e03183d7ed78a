//! A small HTTP client of the Kubernetes API for end-to-end tests: requests
//! with a status, headers and a body to look at, and watches read event by
//! event. Every call has a deadline, so a hung server fails the test instead
//! of hanging it.
//!
//! Test files include this with `#[path = "support/api.rs"] mod api;`.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::time::Instant;

/// How long one request may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// A client of one API server.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An open watch: newline-delimited JSON events as they arrive.
pub struct Watch {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Api {
    /// A client of the API at `addr` with the credentials of `kubeconfig`
    /// (the admin's, for the kubeconfig a server writes).
    pub fn new(kubeconfig: &std::path::Path, addr: SocketAddr) -> Api {
        let (tls, _) = skiff_control::auth::client_tls::from_kubeconfig(kubeconfig, true)
            .expect("TLS settings from the kubeconfig");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        Api {
            base: format!("https://{addr}"),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends a request; an error is a transport failure (or the deadline),
    /// never an HTTP status.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let call = async {
            let response = self
                .send(method.clone(), path, content_type, body.into())
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .context("read the response body")?
                .to_bytes();
            Ok(Reply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_DEADLINE, call)
            .await
            .with_context(|| format!("{method} {path} took more than {REQUEST_DEADLINE:?}"))?
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(http::Method::GET, path, "application/json", Bytes::new())
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request(
            http::Method::POST,
            path,
            "application/json",
            body.to_string(),
        )
        .await
    }

    /// Starts a watch (`path` carries `?watch=1...`); fails unless it is a 200.
    pub async fn watch(&self, path: &str) -> anyhow::Result<Watch> {
        let response = tokio::time::timeout(
            REQUEST_DEADLINE,
            self.send(http::Method::GET, path, "application/json", Bytes::new()),
        )
        .await
        .with_context(|| format!("GET {path} answered no headers within {REQUEST_DEADLINE:?}"))??;
        if response.status() != http::StatusCode::OK {
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
        })
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<http::Response<Incoming>> {
        let request = http::Request::builder()
            .method(&method)
            .uri(format!("{}{}", self.base, path))
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(body))
            .context("build the request")?;
        self.client
            .request(request)
            .await
            .with_context(|| format!("{method} {path}"))
    }
}

impl Reply {
    /// The body as JSON (a panic showing the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the {} response is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Watch {
    /// The next event, or an error when the stream ends, fails or the
    /// deadline passes.
    pub async fn next_event(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if line.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(line.trim())
                    .with_context(|| format!("a watch event is not JSON: {line}"));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .context("no watch event before the deadline")?;
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(e).context("read the watch stream"),
                None => bail!("the watch stream ended"),
            }
        }
    }

    /// Reads events until one satisfies `pred`; the error lists what was seen.
    pub async fn wait_for(
        &mut self,
        deadline: Instant,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let mut seen = Vec::new();
        loop {
            match self.next_event(deadline).await {
                Ok(event) if pred(&event) => return Ok(event),
                Ok(event) => seen.push(format!(
                    "{} {} rv={}",
                    event["type"],
                    event["object"]["metadata"]["name"],
                    event["object"]["metadata"]["resourceVersion"]
                )),
                Err(e) => return Err(e).with_context(|| format!("events seen before: {seen:?}")),
            }
        }
    }
}
