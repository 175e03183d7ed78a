//! Hands one request to a Service: pick a ready endpoint with the Service's
//! balancer, call the pod (in-process when it is on this node, over QUIC
//! otherwise), and try another endpoint when one never got the request.
//! Every way in (NodePorts, Ingress, a pod's outbound call) ends here.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use skiff_api::wire::ProxyRequest;

use super::Shared;
use super::headers::hop_by_hop;
use super::peer::PeerError;
use super::table::{EndpointRoute, ServiceKey, ServiceRoute};
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

/// Sends `request` (headers already rewritten for the hop) to an endpoint of
/// `route` that serves the Service port `port_name`; `client` is who asked,
/// for ClientIP affinity.
pub(super) async fn forward<B>(
    shared: &Shared,
    route: &ServiceRoute,
    port_name: &str,
    client: IpAddr,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let key = &route.key;
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY} bytes"),
            );
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("read the request body: {e}"),
            );
        }
    };

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
        let Some(endpoint) =
            balancer.pick(route.policy, route.affinity, client, &candidates, &tried)
        else {
            break;
        };
        tried.push(endpoint.ip);
        let _in_flight = balancer.start(endpoint.ip);
        match call(shared, endpoint, port_name, &parts, body.clone()).await {
            Ok(response) => return finish(response),
            Err(CallError::Failed(message)) => {
                tracing::debug!(service = %key, endpoint = %endpoint.ip, message, "endpoint failed a request");
                return text(StatusCode::BAD_GATEWAY, message);
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
    match last_error {
        Some(message) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no endpoint of service {key} could take the request: {message}"),
        ),
        None => no_endpoints(key),
    }
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

fn finish(response: Response<Bytes>) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    hop_by_hop(&mut parts.headers);
    // The body is whole: hyper sets the length it has.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(body))
}

pub(super) fn no_endpoints(key: &ServiceKey) -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no ready endpoints for service {key}"),
    )
}

pub(super) fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
