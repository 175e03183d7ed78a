//! A request that arrived on a NodePort: find its Service, add the
//! forwarded headers and hand it on (`forward`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use skiff_runtime::Body;

use super::Shared;
use super::forward::{forward, no_endpoints, text};
use super::headers::forwarded_headers;

/// Serves one request that arrived on `node_port` from `client`.
pub(super) async fn handle(
    shared: Arc<Shared>,
    node_port: u16,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
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
    forwarded_headers(&mut parts.headers, &parts.uri, client.ip());
    let request = Request::from_parts(parts, body);
    Ok(forward(&shared, route, port_name, client.ip(), request).await)
}
