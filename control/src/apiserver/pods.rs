//! Pod subresources served by the pod's node: `log` (what `kubectl logs` reads,
//! streamed as the node sends it) and `proxy` (an HTTP request handed to the pod,
//! as `kubectl get --raw .../pods/NAME/proxy/PATH` uses it).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};
use skiff_api::wire::{LogsRequest, ProxyRequest};

use super::ApiState;
use super::response::{ErrorResponse, HandlerResult};
use crate::gateway::NodeCallError;

/// A request for a pod subresource the node serves.
pub struct PodCall<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// `log`, or `proxy` with the rest of the path.
    pub kind: PodCallKind<'a>,
}

pub enum PodCallKind<'a> {
    Log,
    Proxy { port: Option<u16>, rest: &'a str },
}

/// Recognises `/api/v1/namespaces/{ns}/pods/{name}/log` and
/// `/api/v1/namespaces/{ns}/pods/{name[:port]}/proxy[/{path}]`.
pub fn parse(path: &str) -> Option<PodCall<'_>> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("pods/")?;
    let (name, rest) = rest.split_once('/')?;
    if rest == "log" {
        return Some(PodCall {
            namespace,
            name,
            kind: PodCallKind::Log,
        });
    }
    let after = rest.strip_prefix("proxy")?;
    if !(after.is_empty() || after.starts_with('/')) {
        return None;
    }
    let (name, port) = match name.split_once(':') {
        Some((n, p)) => (n, Some(p.parse().ok()?)),
        None => (name, None),
    };
    Some(PodCall {
        namespace,
        name,
        kind: PodCallKind::Proxy { port, rest: after },
    })
}

/// Serves a [`PodCall`].
pub async fn handle(
    state: Arc<ApiState>,
    call: PodCall<'_>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> HandlerResult {
    let pod_type = by_kind("v1", "Pod").ok_or_else(|| ApiError::internal("no Pod kind"))?;
    let pod = state.registry.get(pod_type, call.namespace, call.name)?;
    let node = pod
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {} does not have a host assigned", call.name))
        })?
        .to_string();
    let Some(nodes) = state.nodes.clone() else {
        return Err(ApiError::new(
            Reason::ServiceUnavailable,
            "this control plane has no node gateway",
        )
        .into());
    };
    match call.kind {
        PodCallKind::Log => {
            if method != Method::GET {
                return Err(method_not_allowed());
            }
            let request = logs_request(call.namespace, call.name, uri.query())?;
            let stream = nodes.logs(&node, request).await.map_err(call_error)?;
            let mut response = Response::new(Body::from_stream(into_chunks(stream)));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(response)
        }
        PodCallKind::Proxy { port, rest } => {
            let mut path = if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            };
            if let Some(q) = uri.query() {
                path.push('?');
                path.push_str(q);
            }
            let request = ProxyRequest {
                namespace: call.namespace.to_string(),
                name: call.name.to_string(),
                port,
                method: method.to_string(),
                path,
                headers: headers
                    .iter()
                    .filter(|(k, _)| !is_hop_by_hop(k.as_str()))
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect(),
            };
            let (head, stream) = nodes
                .proxy(&node, request, body)
                .await
                .map_err(call_error)?;
            let mut response = Response::new(Body::from_stream(into_chunks(stream)));
            *response.status_mut() =
                StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (k, v) in head.headers {
                if is_hop_by_hop(&k) {
                    continue;
                }
                if let (Ok(k), Ok(v)) = (
                    header::HeaderName::try_from(k.as_str()),
                    HeaderValue::from_str(&v),
                ) {
                    response.headers_mut().append(k, v);
                }
            }
            Ok(response)
        }
    }
}

fn method_not_allowed() -> ErrorResponse {
    ApiError::new(
        Reason::MethodNotAllowed,
        "the server does not allow this method on the requested resource",
    )
    .into()
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
            | "content-length"
    )
}

fn call_error(e: NodeCallError) -> ErrorResponse {
    let error = match e {
        NodeCallError::Refused { code, message } => {
            let reason = match code {
                400 => Reason::BadRequest,
                404 => Reason::NotFound,
                403 => Reason::Forbidden,
                503 => Reason::ServiceUnavailable,
                _ => Reason::InternalError,
            };
            ApiError::new(reason, message)
        }
        NodeCallError::NotConnected(_) => ApiError::new(Reason::ServiceUnavailable, e.to_string()),
        NodeCallError::Stream { .. } => ApiError::new(Reason::InternalError, e.to_string()),
    };
    error.into()
}

fn logs_request(namespace: &str, name: &str, query: Option<&str>) -> Result<LogsRequest, ApiError> {
    let mut request = LogsRequest {
        namespace: namespace.to_string(),
        name: name.to_string(),
        ..Default::default()
    };
    let number = |k: &str, v: &str| {
        v.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as u64)
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid {k} {v:?}: must be a non-negative integer"))
            })
    };
    let flag = |v: &str| v == "true" || v == "1";
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        match k {
            "container" => request.container = Some(v.to_string()).filter(|c| !c.is_empty()),
            "follow" => request.follow = flag(v),
            "previous" => request.previous = flag(v),
            "timestamps" => request.timestamps = flag(v),
            "tailLines" => request.tail_lines = Some(number(k, v)?),
            "sinceSeconds" => request.since_seconds = Some(number(k, v)?),
            "limitBytes" => request.limit_bytes = Some(number(k, v)?),
            _ => {}
        }
    }
    Ok(request)
}

/// The raw bytes of a node's stream as body chunks.
fn into_chunks(
    recv: quinn::RecvStream,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(recv, |mut recv| async move {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => Some((Ok(chunk.bytes), recv)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), recv)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pod_calls() {
        let c = parse("/api/v1/namespaces/default/pods/web/log").unwrap();
        assert!(matches!(c.kind, PodCallKind::Log));
        assert_eq!((c.namespace, c.name), ("default", "web"));
        let c = parse("/api/v1/namespaces/ns/pods/web:8080/proxy/a/b").unwrap();
        assert_eq!(c.name, "web");
        assert!(matches!(
            c.kind,
            PodCallKind::Proxy {
                port: Some(8080),
                rest: "/a/b"
            }
        ));
        let c = parse("/api/v1/namespaces/ns/pods/web/proxy").unwrap();
        assert!(matches!(
            c.kind,
            PodCallKind::Proxy {
                port: None,
                rest: ""
            }
        ));
        assert!(parse("/api/v1/namespaces/ns/pods/web/status").is_none());
        assert!(parse("/api/v1/namespaces/ns/pods/web/proxyx").is_none());
        assert!(parse("/api/v1/namespaces/ns/services/web/proxy").is_none());
    }

    #[test]
    fn reads_log_options() {
        let r = logs_request(
            "d",
            "p",
            Some("follow=true&tailLines=10&container=c&timestamps=true"),
        )
        .unwrap();
        assert!(r.follow && r.timestamps);
        assert_eq!(r.tail_lines, Some(10));
        assert_eq!(r.container.as_deref(), Some("c"));
        assert!(logs_request("d", "p", Some("tailLines=-1")).is_err());
    }
}
