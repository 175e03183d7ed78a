//! A TCP listener per NodePort on the node's address, opened and closed as
//! Services come and go; each serves HTTP/1.1 and HTTP/2 (h2c) with
//! keep-alive.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::table::RoutingTable;
use super::{Shared, handler};

/// The open NodePorts.
pub struct NodePorts {
    address: IpAddr,
    open: HashMap<u16, JoinHandle<()>>,
}

impl NodePorts {
    pub fn new(address: IpAddr) -> Self {
        NodePorts {
            address,
            open: HashMap::new(),
        }
    }

    /// Opens the ports the table has and closes the others. A port that cannot
    /// be opened (in use) is logged and tried again at the next change.
    pub(super) fn reconcile(&mut self, table: &RoutingTable, shared: &Arc<Shared>) {
        self.open.retain(|port, task| {
            let keep = table.node_ports.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, (service, _)) in &table.node_ports {
            if self.open.contains_key(port) {
                continue;
            }
            let addr = SocketAddr::new(self.address, *port);
            match bind(addr) {
                Ok(listener) => {
                    tracing::info!(%service, %addr, "opened a NodePort");
                    let task = tokio::spawn(accept(listener, *port, shared.clone()));
                    self.open.insert(*port, task);
                }
                Err(e) => tracing::warn!(%service, %addr, error = %e, "cannot open a NodePort"),
            }
        }
    }
}

impl Drop for NodePorts {
    fn drop(&mut self) {
        for task in self.open.values() {
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Accepts connections until aborted; aborting also ends the connections
/// (they live in the `JoinSet`), as closing a NodePort should.
async fn accept(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: let some close.
                    tracing::debug!(port, error = %e, "accept on a NodePort");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                handler::handle(shared.clone(), port, client, request)
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(port, %client, error = %e, "NodePort connection ended");
            }
        });
    }
}
