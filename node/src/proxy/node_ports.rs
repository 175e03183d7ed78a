//! A TCP listener per NodePort on the node's address, opened and closed as
//! Services come and go; each serves HTTP/1.1 and HTTP/2 (h2c) with
//! keep-alive (`listener`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::table::RoutingTable;
use super::{Shared, handler, listener};

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
            match listener::bind(addr) {
                Ok(tcp) => {
                    tracing::info!(%service, %addr, "opened a NodePort");
                    let (port, shared) = (*port, shared.clone());
                    let limits = shared.listener_limits;
                    let task =
                        tokio::spawn(listener::serve(tcp, limits, move |client, request| {
                            handler::handle(shared.clone(), port, client, request)
                        }));
                    self.open.insert(port, task);
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
