//! The node's HTTP port, where the cluster's Ingresses are served: each
//! request is matched by host and path against the Ingress table
//! (`ingress`), gets the forwarded headers and goes to its backend Service
//! (`forward`). A request no rule matches, with no default backend to fall
//! to, is answered 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::HOST;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use skiff_runtime::Body;
use tokio::task::JoinHandle;

use super::forward::{forward, text};
use super::headers::forwarded_headers;
use super::{Shared, listener};

/// The open HTTP port; dropping it closes it.
pub(super) struct HttpPort {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpPort {
    /// Listens on `addr` (port 0 picks a free one). Call inside a tokio
    /// runtime.
    pub(super) fn open(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<HttpPort> {
        let tcp = listener::bind(addr)?;
        let addr = tcp.local_addr()?;
        let limits = shared.listener_limits;
        let task = tokio::spawn(listener::serve(tcp, limits, move |client, request| {
            handle(shared.clone(), client, request)
        }));
        tracing::info!(%addr, "serving Ingresses on the node's HTTP port");
        Ok(HttpPort { addr, task })
    }

    /// Where it listens.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one request that arrived on the HTTP port from `client`.
async fn handle(
    shared: Arc<Shared>,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let table = shared.table();
    let (mut parts, body) = request.into_parts();
    // Also makes an HTTP/2 `:authority` the `Host`, which routing reads.
    forwarded_headers(&mut parts.headers, &parts.uri, client.ip());
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let path = parts.uri.path();
    // Borrowed from this request's snapshot of the table, like a NodePort's.
    let Some(backend) = table.ingress.route(host, path) else {
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!(
                "no Ingress rule matches host {host:?} and path {path:?}, and there is no default backend"
            ),
        ));
    };
    let Some(route) = table.services.get(&backend.service) else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Ingress backend {backend}: no such service"),
        ));
    };
    let Some(port_name) = backend.port_name(route) else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Ingress backend {backend}: the service has no such port"),
        ));
    };
    let request = Request::from_parts(parts, body);
    Ok(forward(&shared, route, port_name, client.ip(), request).await)
}
