//! One request to a Service: find the Service by NodePort, pick a ready
//! endpoint, add the forwarded headers, call the pod (in-process when it is
//! on this node, over QUIC otherwise), and try another endpoint when one
//! never got the request.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use skiff_api::wire::ProxyRequest;

use super::Shared;
use super::peer::PeerError;
use super::table::{EndpointRoute, ServiceKey};
use crate::supervisor::PodAccessError;

/// Largest request body taken. The runtime takes a whole `Request<Bytes>`
/// today, so the body is collected first; streaming it needs the runtime to
/// take a body stream.
const MAX_BODY: usize = 64 << 20;

/// Why an endpoint did not answer.
enum CallError {
    /// Its node could not be reached: no endpoint there got the request.
    Unreachable(String),
    /// It never got the request: another endpoint may.
    NotSent(String),
    /// It got it and failed (or may have): answered as 502.
    Failed(String),
}

/// Serves one request that arrived on `node_port` from `client`.
pub(super) async fn handle(
    shared: Arc<Shared>,
    node_port: u16,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let table = shared.table();
    // Borrowed from this request's snapshot of the table: a request copies
    // nothing of the Service or its endpoints.
    let Some((key, port_name)) = table.node_ports.get(&node_port) else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no service on node port {node_port}"),
        ));
    };
    let Some(route) = table.services.get(key) else {
        return Ok(no_endpoints(key));
    };
    let (mut parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY} bytes"),
            ));
        }
        Err(e) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("read the request body: {e}"),
            ));
        }
    };
    forwarded_headers(&mut parts.headers, &parts.uri, client.ip());

    let candidates = route.ready_endpoints(port_name);
    let balancer = shared.balancer(key);
    let mut tried: Vec<IpAddr> = Vec::new();
    let mut last_error = None;
    // A request that reached no pod is tried on another: it costs an
    // in-process lookup (a pod already stopping) or one failed connection
    // per node (its endpoints are all skipped after it), and it keeps
    // requests from failing while endpoints change, e.g. during a scale-down
    // that stops pods before the new EndpointSlice reaches this node.
    // Kubernetes' "retry once" is not enough there: most candidates may be
    // the stopping ones.
    for _ in 0..candidates.len() {
        let Some(endpoint) = balancer.pick(
            route.policy,
            route.affinity,
            client.ip(),
            &candidates,
            &tried,
        ) else {
            break;
        };
        tried.push(endpoint.ip);
        let _in_flight = balancer.start(endpoint.ip);
        match call(&shared, endpoint, port_name, &parts, body.clone()).await {
            Ok(response) => return Ok(finish(response)),
            Err(CallError::Failed(message)) => {
                tracing::debug!(service = %key, endpoint = %endpoint.ip, message, "endpoint failed a request");
                return Ok(text(StatusCode::BAD_GATEWAY, message));
            }
            Err(CallError::NotSent(message)) => {
                tracing::debug!(service = %key, endpoint = %endpoint.ip, message, "endpoint did not take the request; trying another");
                last_error = Some(message);
            }
            Err(CallError::Unreachable(message)) => {
                tracing::debug!(service = %key, endpoint = %endpoint.ip, message, "node unreachable; trying another");
                tried.extend(
                    candidates
                        .iter()
                        .filter(|e| e.node_name == endpoint.node_name)
                        .map(|e| e.ip),
                );
                last_error = Some(message);
            }
        }
    }
    Ok(match last_error {
        Some(message) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no endpoint of service {key} could take the request: {message}"),
        ),
        None => no_endpoints(key),
    })
}

async fn call(
    shared: &Shared,
    endpoint: &EndpointRoute,
    port_name: &str,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response<Bytes>, CallError> {
    let Some(pod) = &endpoint.pod else {
        return Err(CallError::NotSent(format!(
            "endpoint {} is not a pod",
            endpoint.ip
        )));
    };
    let port = endpoint.ports.get(port_name).copied();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let node = endpoint.node_name.as_deref().unwrap_or_default();
    if node == shared.node_name {
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(path)
            .body(body)
            .map_err(|e| CallError::NotSent(e.to_string()))?;
        *request.headers_mut() = parts.headers.clone();
        return shared
            .supervisor
            .serve(&pod.namespace, &pod.name, port, request)
            .await
            .map_err(|e| match e {
                PodAccessError::NotFound(m) | PodAccessError::Unavailable(m) => {
                    CallError::NotSent(m)
                }
                PodAccessError::BadRequest(m) | PodAccessError::Failed(m) => CallError::Failed(m),
            });
    }
    let table = shared.table();
    let Some(addr) = table
        .nodes
        .get(node)
        .and_then(|n| Some(SocketAddr::new(n.address?, n.proxy_port?)))
    else {
        return Err(CallError::NotSent(format!(
            "node {node:?} of pod {}/{} has no proxy address",
            pod.namespace, pod.name
        )));
    };
    let request = ProxyRequest {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        port,
        method: parts.method.to_string(),
        path,
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    shared
        .peers
        .call(node, addr, request, body)
        .await
        .map_err(|e| match e {
            PeerError::Unreachable(m) => CallError::Unreachable(m),
            PeerError::NotSent(m) => CallError::NotSent(m),
            PeerError::Failed(m) => CallError::Failed(m),
        })
}

/// Headers that describe one hop, never forwarded (RFC 9110 7.6.1).
fn hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239), appending to
/// what earlier proxies set.
fn forwarded_headers(headers: &mut HeaderMap, uri: &http::Uri, client: IpAddr) {
    hop_by_hop(headers);
    // HTTP/2 carries the host in `:authority`, which the pod sees as `Host`.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    if let Some(host) = &host
        && !headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert(header::HOST, v);
    }
    append(headers, "x-forwarded-for", client.to_string());
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = &host
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert("x-forwarded-host", v);
    }
    let node = match client {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    let mut forwarded = format!("for={node};proto=http");
    if let Some(host) = &host {
        forwarded.push_str(&format!(";host=\"{host}\""));
    }
    append(headers, "forwarded", forwarded);
}

/// Appends `value` to a list header (`name` in lower case).
fn append(headers: &mut HeaderMap, name: &'static str, value: String) {
    let joined = match headers.get(name).and_then(|v| v.to_str().ok()) {
        Some(old) => format!("{old}, {value}"),
        None => value,
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn finish(response: Response<Bytes>) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    hop_by_hop(&mut parts.headers);
    // The body is whole: hyper sets the length it has.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(body))
}

fn no_endpoints(key: &ServiceKey) -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no ready endpoints for service {key}"),
    )
}

fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_and_strip_hop_by_hop() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("shop.example"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        let uri: http::Uri = "/cart".parse().unwrap();
        forwarded_headers(&mut headers, &uri, "10.1.2.3".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "shop.example");
        assert_eq!(
            headers["forwarded"],
            "for=10.1.2.3;proto=http;host=\"shop.example\""
        );
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key("x-secret"));
    }

    #[test]
    fn http2_authority_becomes_host() {
        let mut headers = HeaderMap::new();
        let uri: http::Uri = "http://svc.example:30080/x".parse().unwrap();
        forwarded_headers(&mut headers, &uri, "::1".parse().unwrap());
        assert_eq!(headers[header::HOST], "svc.example:30080");
        assert_eq!(
            headers["forwarded"],
            "for=\"[::1]\";proto=http;host=\"svc.example:30080\""
        );
    }
}
