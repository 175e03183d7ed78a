//! The API client of the tests: [`skiff_client::ApiClient`] with a deadline on
//! every call, so a hung server fails the test instead of hanging it, and
//! watches read event by event against a deadline.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::Value;
use skiff_client::{ACCEPT_JSON, ApiClient, ApiResponse, ResponseStream};
use tokio::time::Instant;

/// How long one request may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// A client of one API server, as the user of a kubeconfig.
#[derive(Clone)]
pub struct Api {
    client: ApiClient,
}

/// A complete response: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An open watch: newline-delimited JSON events as they arrive.
pub struct Watch {
    stream: ResponseStream,
}

impl Api {
    /// A client of the server and user the current context of `kubeconfig`
    /// names (the admin's, for the kubeconfig a server writes).
    pub fn new(kubeconfig: &Path) -> Api {
        let client = ApiClient::from_kubeconfig(kubeconfig)
            .unwrap_or_else(|e| panic!("a client of {}: {e:#}", kubeconfig.display()));
        Api { client }
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
        let call = self.client.request(
            method.clone(),
            path,
            ACCEPT_JSON,
            Some(content_type),
            body.into(),
        );
        let ApiResponse {
            status,
            headers,
            body,
        } = tokio::time::timeout(REQUEST_DEADLINE, call)
            .await
            .with_context(|| format!("{method} {path} took more than {REQUEST_DEADLINE:?}"))??;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(http::Method::GET, path, ACCEPT_JSON, Bytes::new())
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request(http::Method::POST, path, ACCEPT_JSON, body.to_string())
            .await
    }

    /// Starts a watch (`path` carries `?watch=1...`); fails unless it is a 200.
    pub async fn watch(&self, path: &str) -> anyhow::Result<Watch> {
        let stream = tokio::time::timeout(REQUEST_DEADLINE, self.client.stream(path, ACCEPT_JSON))
            .await
            .with_context(|| format!("GET {path} answered no headers within {REQUEST_DEADLINE:?}"))?
            .with_context(|| format!("watch {path}"))?;
        Ok(Watch { stream })
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
            let line = tokio::time::timeout_at(deadline, self.stream.line())
                .await
                .context("no watch event before the deadline")?
                .context("read the watch stream")?
                .context("the watch stream ended")?;
            let line = String::from_utf8_lossy(&line);
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(line.trim())
                .with_context(|| format!("a watch event is not JSON: {line}"));
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
