//! A TCP listener that serves HTTP/1.1 and HTTP/2 (h2c) with keep-alive,
//! handing each request to a handler: what every port the proxy opens (the
//! NodePorts, the HTTP port) is made of. Each listener applies
//! [`ListenerLimits`]: a connection must send its request head in time (no
//! slowloris), is closed once idle, and at most so many are open at once; the
//! next is closed on accept rather than queued. A watchdog per connection
//! (`activity`) enforces what hyper does not: the first request's deadline
//! whatever the protocol, and idleness on HTTP/2.

mod activity;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use skiff_api::limits::ListenerLimits;
use skiff_runtime::Body;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use activity::{Activity, Watched};

/// Connections the kernel completes and queues for `accept`: a burst larger
/// than std's 128 (a thousand clients at once) is queued, not dropped at the
/// handshake, and the accept loop (which never waits on a connection) drains
/// it quickly. The kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 1024;

/// Binds `addr` for [`serve`]. Synchronous, so that a port in use is
/// reported to whoever opens it, right away. Call inside a tokio runtime.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As std's `TcpListener::bind`: a restarted node can take its port back
    // while old connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections until aborted and serves each request with
/// `handle(client, request)`, within `limits`; aborting also ends the
/// connections (they live in the `JoinSet`), as closing a port should.
pub(super) async fn serve<H, F>(listener: TcpListener, limits: ListenerLimits, handle: H)
where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let local = listener.local_addr().ok();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closing at once tells the client; queueing would hold its
            // socket and our memory for as long as the flood lasts.
            tracing::debug!(?local, %client, max = limits.max_connections, "too many connections; closed one");
            drop(stream);
            continue;
        };
        let handle = handle.clone();
        connections.spawn(async move {
            serve_connection(stream, client, limits, handle).await;
            drop(slot);
        });
    }
}

/// Serves one connection until it ends, or until its watchdog closes it.
async fn serve_connection<H, F>(
    stream: TcpStream,
    client: SocketAddr,
    limits: ListenerLimits,
    handle: H,
) where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let counted = activity.clone();
    let service = hyper::service::service_fn(move |request| {
        let in_flight = counted.request();
        let response = handle(client, request);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper applies no header timeout at all. It runs from
    // when hyper starts waiting for a head, so it also closes an idle
    // HTTP/1 keep-alive connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    loop {
        let deadline = activity.deadline(limits.header_read_timeout, limits.idle_timeout);
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%client, error = %e, "connection ended");
                }
                return;
            }
            () = expired => {
                // The deadline may have moved while this slept (bytes moved, a
                // request arrived): only a deadline still past closes.
                let now = tokio::time::Instant::now();
                if activity
                    .deadline(limits.header_read_timeout, limits.idle_timeout)
                    .is_some_and(|at| at <= now)
                {
                    tracing::debug!(%client, "closed a slow or idle connection");
                    return;
                }
            }
        }
    }
}
