//! Hands one request to a Service: pick a ready endpoint with the Service's
//! balancer, call the pod (in-process when it is on this node, over QUIC
//! otherwise), and try another endpoint when one never got the request.
//! Every way in (NodePorts, Ingress, a pod's outbound call) ends here.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use skiff_api::wire::ProxyRequest;
use skiff_runtime::{Body, bodies};

use super::Shared;
use super::headers::hop_by_hop;
use super::metrics::{self, ErrorReason};
use super::peer::PeerError;
use super::table::{EndpointRoute, ServiceKey, ServiceRoute};
use crate::supervisor::PodAccessError;

/// Request bodies up to this size (known from Content-Length, or an empty
/// body) are kept, so the request can be sent again to another endpoint if
/// the first never got it; larger ones stream through, tried once.
const REPLAYABLE: u64 = 1 << 20;

/// A request's body, as the retry loop hands it out.
enum Payload {
    /// Kept whole: every attempt gets a copy.
    Replayable(Bytes),
    /// Streamed: the first attempt takes it.
    Once(Option<Body>),
}

impl Payload {
    fn take(&mut self) -> Option<Body> {
        match self {
            Payload::Replayable(bytes) => Some(bodies::full(bytes.clone())),
            Payload::Once(body) => body.take(),
        }
    }
}

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
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let key = &route.key;
    let (parts, body) = request.into_parts();
    let small = hyper::body::Body::is_end_stream(&body)
        || hyper::body::Body::size_hint(&body)
            .upper()
            .is_some_and(|upper| upper <= REPLAYABLE);
    let body = bodies::boxed(body);
    let mut payload = if small {
        match Limited::new(body, REPLAYABLE as usize).collect().await {
            Ok(collected) => Payload::Replayable(collected.to_bytes()),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("read the request body: {e}"),
                );
            }
        }
    } else {
        Payload::Once(Some(body))
    };

    let candidates = route.ready_endpoints(port_name);
    let balancer = shared.balancer(key);
    let mut tried: Vec<IpAddr> = Vec::new();
    // Pass over nodes just found unreachable while others can serve.
    let down = shared.peers.down_nodes();
    if !down.is_empty() {
        let on_down: Vec<IpAddr> = candidates
            .iter()
            .filter(|e| e.node_name.as_ref().is_some_and(|n| down.contains(n)))
            .map(|e| e.ip)
            .collect();
        if on_down.len() < candidates.len() {
            tried = on_down;
        }
    }
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
        // A streamed body went with the first attempt.
        let Some(body) = payload.take() else {
            break;
        };
        tried.push(endpoint.ip);
        let _in_flight = balancer.start(endpoint.ip);
        let started = Instant::now();
        let result = call(shared, endpoint, port_name, &parts, body).await;
        let target = || metrics::labels(key, Some(endpoint));
        match result {
            Ok(response) => {
                let took = started.elapsed();
                shared
                    .metrics
                    .answered(target(), response.status().as_u16(), took);
                return finish(response);
            }
            Err(CallError::Failed(message)) => {
                shared.metrics.error(target(), ErrorReason::Failed);
                tracing::debug!(service = %key, endpoint = %endpoint.ip, message, "endpoint failed a request");
                return text(StatusCode::BAD_GATEWAY, message);
            }
            Err(CallError::NotSent(message)) => {
                shared.metrics.error(target(), ErrorReason::NotSent);
                tracing::debug!(service = %key, endpoint = %endpoint.ip, message, "endpoint did not take the request; trying another");
                last_error = Some(message);
            }
            Err(CallError::Unreachable(message)) => {
                shared.metrics.error(target(), ErrorReason::Unreachable);
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
    shared
        .metrics
        .error(metrics::labels(key, None), ErrorReason::NoEndpoint);
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
    body: Body,
) -> Result<Response<Body>, CallError> {
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

fn finish(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body)
}

pub(super) fn no_endpoints(key: &ServiceKey) -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no ready endpoints for service {key}"),
    )
}

pub(super) fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(bodies::full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
