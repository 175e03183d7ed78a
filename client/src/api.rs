//! Calling the cluster's API, as client-go does: a kubeconfig's server,
//! credentials and namespace; requests whose error statuses become
//! [`StatusError`]s that read like kubectl's
//! (`Error from server (NotFound): pods "x" not found`); and bodies read as
//! they arrive (logs, watches).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use skiff_api::kubeconfig::Kubeconfig;

/// `Accept` of a request for server-side tables, with plain JSON as fallback.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
/// `Accept` of an ordinary API request.
pub const ACCEPT_JSON: &str = "application/json";

/// A client of one cluster's API. Clones share its connections.
#[derive(Clone)]
pub struct ApiClient {
    server: String,
    /// The kubeconfig context's namespace, else `default`.
    namespace: String,
    /// `Authorization: Bearer ...` when the kubeconfig's user has a token.
    bearer: Option<http::HeaderValue>,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A response: status code, headers and body.
pub struct ApiResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A successful response whose body is read as it arrives (logs, watches).
pub struct ResponseStream {
    body: Incoming,
    buffer: Vec<u8>,
}

/// An error the API answered with, printed as kubectl prints it.
#[derive(Debug, Clone)]
pub struct StatusError {
    /// HTTP status code (`Status.code`).
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, ...), empty if none.
    pub reason: String,
    /// `Status.message`.
    pub message: String,
}

impl ApiClient {
    /// Finds the cluster from the flag, the environment or `default` (see
    /// [`kubeconfig_path`]).
    pub fn discover(kubeconfig: Option<&Path>, default: &Path) -> anyhow::Result<Self> {
        Self::from_kubeconfig(&kubeconfig_path(kubeconfig, default))
    }

    /// A client of the current context of the kubeconfig at `path`.
    pub fn from_kubeconfig(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no kubeconfig at {}: start a cluster with `skiff up`, or pass --kubeconfig",
                path.display()
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("read kubeconfig {}", path.display()));
            }
        };
        let config: Kubeconfig = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parse kubeconfig {}", path.display()))?;
        let Some((cluster, context)) = config.current() else {
            bail!(
                "kubeconfig {} has no usable current-context",
                path.display()
            );
        };
        if !cluster.server.starts_with("https://") {
            bail!(
                "server {} in {} is not https://: Skiff's API speaks only HTTPS",
                cluster.server,
                path.display()
            );
        }
        let user = config.current_user();
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = crate::tls::config(cluster, user, base)
            .with_context(|| format!("TLS settings of kubeconfig {}", path.display()))?;
        let bearer = user
            .and_then(|u| u.token.as_deref())
            .filter(|t| !t.is_empty())
            .map(|t| http::HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .context("the kubeconfig's token is not a valid header value")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(ApiClient {
            bearer,
            server: cluster.server.trim_end_matches('/').to_string(),
            namespace: context
                .namespace
                .clone()
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            http,
        })
    }

    /// The namespace a command works in: `-n` if given, else the kubeconfig
    /// context's, else `default`.
    pub fn namespace<'a>(&'a self, flag: Option<&'a str>) -> &'a str {
        flag.unwrap_or(&self.namespace)
    }

    /// Sends a request with a body and returns the response.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<ApiResponse> {
        self.request(method, path, ACCEPT_JSON, Some(content_type), body)
            .await
    }

    /// Sends a request and reads the whole response, whatever its status.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        accept: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<ApiResponse> {
        let response = self.start(method, path, accept, content_type, body).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .context("read response")?
            .to_bytes();
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }

    /// `GET path` as JSON; an error status becomes a [`StatusError`].
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.request(http::Method::GET, path, ACCEPT_JSON, None, Bytes::new())
            .await?
            .json()
    }

    /// `GET path` as a server-side `Table` (plain JSON if the server has none).
    pub async fn get_table(&self, path: &str) -> anyhow::Result<Value> {
        self.request(http::Method::GET, path, ACCEPT_TABLE, None, Bytes::new())
            .await?
            .json()
    }

    /// `GET path`, returning the body as a stream once the status says success;
    /// an error status becomes a [`StatusError`].
    pub async fn stream(&self, path: &str, accept: &str) -> anyhow::Result<ResponseStream> {
        let response = self
            .start(http::Method::GET, path, accept, None, Bytes::new())
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .context("read response")?
                .to_bytes();
            return Err(StatusError::from_response(status, &body).into());
        }
        Ok(ResponseStream {
            body: response.into_body(),
            buffer: Vec::new(),
        })
    }

    async fn start(
        &self,
        method: http::Method,
        path: &str,
        accept: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<http::Response<Incoming>> {
        let uri = format!("{}{}", self.server, path);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header(http::header::ACCEPT, accept)
            .header(
                http::header::USER_AGENT,
                concat!("skiff/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        if let Some(bearer) = &self.bearer {
            request = request.header(http::header::AUTHORIZATION, bearer.clone());
        }
        let request = request.body(Full::new(body)).context("build request")?;
        match self.http.request(request).await {
            Ok(response) => Ok(response),
            Err(e) if e.is_connect() => Err(anyhow::Error::new(e).context(format!(
                "no cluster at {}: start one with `skiff up`, or pass --kubeconfig",
                self.server
            ))),
            Err(e) => Err(anyhow::Error::new(e).context(format!("call {uri}"))),
        }
    }
}

impl ApiResponse {
    /// The body as JSON, or the API's `Status` as a [`StatusError`].
    pub fn json(self) -> anyhow::Result<Value> {
        if !self.status.is_success() {
            return Err(StatusError::from_response(self.status, &self.body).into());
        }
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the API answered {} with a body that is not JSON",
                self.status
            )
        })
    }
}

impl ResponseStream {
    /// The next piece of the body as it arrives; `None` at its end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        if !self.buffer.is_empty() {
            return Ok(Some(Bytes::from(std::mem::take(&mut self.buffer))));
        }
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    let frame = frame.context("read response")?;
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The next line of the body, without its newline; `None` at its end. A
    /// last line without a newline is returned too.
    pub async fn line(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=at).collect();
                line.pop();
                return Ok(Some(line));
            }
            match self.body.frame().await {
                None if self.buffer.is_empty() => return Ok(None),
                None => return Ok(Some(std::mem::take(&mut self.buffer))),
                Some(frame) => {
                    if let Ok(data) = frame.context("read response")?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

impl StatusError {
    /// Reads a `Status` body; a body that is not one still gives an error
    /// named after the HTTP status, as client-go does.
    pub fn from_response(status: http::StatusCode, body: &[u8]) -> StatusError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let reason = field("reason").unwrap_or_else(|| reason_of(status).to_string());
        let message = field("message").unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || parsed.is_some() {
                default_message(status)
            } else {
                text.to_string()
            }
        });
        StatusError {
            code: status.as_u16(),
            reason,
            message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "Error from server: {}", self.message)
        } else {
            write!(f, "Error from server ({}): {}", self.reason, self.message)
        }
    }
}

impl std::error::Error for StatusError {}

/// Whether `err` is the API's 404.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StatusError>()
        .is_some_and(StatusError::is_not_found)
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?a=1&b=2` from the pairs, values encoded; empty without pairs.
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    format!("?{}", joined.join("&"))
}

/// The `Status.reason` Kubernetes gives an HTTP status.
fn reason_of(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// client-go's message for an error status without a `Status` body.
fn default_message(status: http::StatusCode) -> String {
    match status.as_u16() {
        404 => "the server could not find the requested resource".to_string(),
        405 => "the server does not allow this method on the requested resource".to_string(),
        500 => "an error on the server has prevented the request from succeeding".to_string(),
        503 => "the server is currently unable to handle the request".to_string(),
        code => format!("the server responded with the status code {code}"),
    }
}

/// The kubeconfig a client uses, as kubectl finds it: the flag, else the first
/// file of `$KUBECONFIG`, else `default`.
pub fn kubeconfig_path(flag: Option<&Path>, default: &Path) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    if let Some(env) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&env).find(|p| !p.as_os_str().is_empty())
    {
        return first;
    }
    default.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_read_like_kubectl() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"x\" not found","reason":"NotFound","code":404}"#;
        let err = StatusError::from_response(http::StatusCode::NOT_FOUND, body);
        assert_eq!(
            err.to_string(),
            r#"Error from server (NotFound): pods "x" not found"#
        );
        assert!(err.is_not_found());

        let err = StatusError::from_response(http::StatusCode::NOT_FOUND, b"");
        assert_eq!(
            err.to_string(),
            "Error from server (NotFound): the server could not find the requested resource"
        );
        let err = StatusError::from_response(http::StatusCode::IM_A_TEAPOT, b"short and stout");
        assert_eq!(err.to_string(), "Error from server: short and stout");
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[
                ("labelSelector", "app in (a,b)".into()),
                ("watch", "1".into())
            ]),
            "?labelSelector=app%20in%20%28a%2Cb%29&watch=1"
        );
    }
}
