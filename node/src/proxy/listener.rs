//! A TCP listener that serves HTTP/1.1 and HTTP/2 (h2c) with keep-alive,
//! handing each request to a handler: what every port the proxy opens (the
//! NodePorts, the HTTP port) is made of.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use skiff_runtime::Body;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Binds `addr` for [`serve`]. Synchronous, so that a port in use is
/// reported to whoever opens it, right away. Call inside a tokio runtime.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Accepts connections until aborted and serves each request with
/// `handle(client, request)`; aborting also ends the connections (they live
/// in the `JoinSet`), as closing a port should.
pub(super) async fn serve<H, F>(listener: TcpListener, handle: H)
where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let local = listener.local_addr().ok();
    let mut connections = JoinSet::new();
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: let some close.
                    tracing::debug!(?local, error = %e, "accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(client, request));
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(?local, %client, error = %e, "connection ended");
            }
        });
    }
}
