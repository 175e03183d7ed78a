//! Finding and calling the cluster's API, as kubectl does: `--kubeconfig`, then
//! `$KUBECONFIG`, then the default data directory's kubeconfig.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use skiff_api::kubeconfig::Kubeconfig;

/// A client of one cluster's API.
pub struct ApiClient {
    server: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

/// A response: status code and body.
pub struct ApiResponse {
    pub status: http::StatusCode,
    pub body: Bytes,
}

impl ApiClient {
    /// Finds the cluster from the flag, the environment or the default.
    pub fn discover(kubeconfig: Option<&Path>) -> anyhow::Result<Self> {
        let path = kubeconfig_path(kubeconfig);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "read kubeconfig {} (is a cluster running? start one with `skiff up`)",
                path.display()
            )
        })?;
        let config: Kubeconfig = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parse kubeconfig {}", path.display()))?;
        let Some((cluster, _)) = config.current() else {
            bail!(
                "kubeconfig {} has no usable current-context",
                path.display()
            );
        };
        if !cluster.server.starts_with("http://") {
            bail!(
                "server {} is not plain HTTP; TLS arrives in a later version of Skiff",
                cluster.server
            );
        }
        let http = HyperClient::builder(TokioExecutor::new()).build_http();
        Ok(ApiClient {
            server: cluster.server.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// Sends a request with a body and returns the response.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<ApiResponse> {
        let uri = format!("{}{}", self.server, path);
        let request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("skiff/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .context("build request")?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("call {uri}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("read response")?
            .to_bytes();
        Ok(ApiResponse { status, body })
    }
}

impl ApiResponse {
    /// The body as JSON, or the API's `Status` message as an error.
    pub fn json(self) -> anyhow::Result<serde_json::Value> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the API answered {} with a body that is not JSON",
                self.status
            )
        })?;
        if !self.status.is_success() {
            let message = value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no message");
            bail!("{message} ({})", self.status);
        }
        Ok(value)
    }
}

fn kubeconfig_path(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    if let Some(env) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&env).find(|p| !p.as_os_str().is_empty())
    {
        return first;
    }
    crate::default_data_dir().join("kubeconfig")
}
