//! Reading a Kubernetes watch: newline-delimited `{"type", "object"}` events
//! as they arrive. An `ERROR` event becomes the [`StatusError`] it carries.

use anyhow::Context;
use serde_json::Value;

use crate::api::{ApiClient, ResponseStream, StatusError};

/// One watch event.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED` or `BOOKMARK`.
    pub kind: String,
    pub object: Value,
}

/// An open watch.
pub struct Watch {
    stream: ResponseStream,
}

impl Watch {
    /// Opens `path` (which must carry `watch=1` in its query) with `accept`.
    pub async fn open(client: &ApiClient, path: &str, accept: &str) -> anyhow::Result<Watch> {
        Ok(Watch {
            stream: client.stream(path, accept).await?,
        })
    }

    /// The next event; `None` when the server ends the watch (its timeout).
    pub async fn next(&mut self) -> anyhow::Result<Option<WatchEvent>> {
        loop {
            let Some(line) = self.stream.line().await? else {
                return Ok(None);
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut event: Value =
                serde_json::from_slice(&line).context("read a watch event that is not JSON")?;
            let kind = event["type"].as_str().unwrap_or("").to_string();
            let object = event["object"].take();
            if kind == "ERROR" {
                let code = object["code"].as_u64().unwrap_or(500) as u16;
                let status = http::StatusCode::from_u16(code)
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                let body = serde_json::to_vec(&object).unwrap_or_default();
                return Err(StatusError::from_response(status, &body).into());
            }
            return Ok(Some(WatchEvent { kind, object }));
        }
    }
}
