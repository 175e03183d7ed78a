//! The node proxy: serves every Service from every node, as kube-proxy does,
//! and the cluster's Ingresses on the node's HTTP port, as an Ingress
//! controller does. It keeps a routing table (`table`, with the Ingresses
//! compiled by `ingress`) from the Services, EndpointSlices, Nodes and
//! Ingresses the control plane streams, opens a listener (`listener`) per
//! NodePort (`node_ports`, `handler`) and on the HTTP port (`http_port`), and
//! hands each request (`forward`) to an endpoint the Service's balancer
//! (`balance`) picks: a pod on this node in-process, a pod on another node
//! over QUIC to that node's peer proxy (`peer`), and pods' own outbound HTTP (`outbound`): Service
//! names are routed, other hosts refused unless the pod allows them
//! (`allowed_hosts`). Its figures per Service and endpoint are in `metrics`.

mod allowed_hosts;
mod balance;
mod forward;
mod handler;
mod headers;
mod http_port;
mod ingress;
mod listener;
mod metrics;
mod node_ports;
mod outbound;
mod peer;
mod table;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use skiff_api::wire::Downstream;
use tokio::task::JoinHandle;

use crate::identity::Identity;
use crate::supervisor::PodSupervisor;
use balance::Balancer;
use http_port::HttpPort;
use node_ports::NodePorts;
use peer::Peers;
use table::{RoutingObjects, RoutingTable, ServiceKey};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("open the node proxy's peer port {addr} (UDP): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("node proxy TLS: {0}")]
    Tls(#[from] peer::tls::TlsError),
    /// Its message carries the cause (not a `source`), so that it reads
    /// once, with the advice after it.
    #[error("open the node's HTTP port {addr} (TCP): {error}; choose another with `--http-port`")]
    HttpPort {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// The proxy, owned by the node; dropping it closes its ports.
pub struct Proxy {
    shared: Arc<Shared>,
    node_ports: Mutex<NodePorts>,
    http_port: Option<HttpPort>,
    peer_server: JoinHandle<()>,
    endpoint: quinn::Endpoint,
    /// What the peer port presents, to peers and when calling them.
    certificate: Arc<peer::tls::NodeCertificate>,
    /// Whose certificates the peer port refuses.
    revoked: Arc<peer::revoked::Revoked>,
}

/// What request handlers share.
struct Shared {
    node_name: String,
    supervisor: Arc<PodSupervisor>,
    objects: Mutex<RoutingObjects>,
    table: Mutex<Arc<RoutingTable>>,
    balancers: Mutex<HashMap<ServiceKey, Arc<Balancer>>>,
    peers: Peers,
    metrics: metrics::ProxyMetrics,
    /// What every NodePort and the HTTP port allow a connection.
    listener_limits: skiff_api::limits::ListenerLimits,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// Opens the peer port (`address:peer_port`, UDP; 0 picks a free one)
    /// and serves peers from it, and opens the HTTP port
    /// (`address:http_port`, TCP; 0 picks a free one) when there is one;
    /// registers its metrics in `registry` and itself as the supervisor's
    /// outbound router. Call inside a tokio runtime.
    pub fn start(
        node_name: &str,
        address: IpAddr,
        peer_port: u16,
        http_port: Option<u16>,
        identity: &Identity,
        supervisor: Arc<PodSupervisor>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Proxy, ProxyError> {
        let addr = SocketAddr::new(address, peer_port);
        let certificate = Arc::new(peer::tls::NodeCertificate::new(identity)?);
        let server = peer::tls::server_config(identity, certificate.clone())?;
        let client = peer::tls::client_config(identity, certificate.clone())?;
        let revoked = Arc::new(peer::revoked::Revoked::default());
        // One endpoint both serves peers and calls them.
        let endpoint = skiff_transport::endpoint::server(server, addr)
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            node_name: node_name.to_string(),
            supervisor: supervisor.clone(),
            objects: Mutex::default(),
            table: Mutex::default(),
            balancers: Mutex::default(),
            peers: Peers::new(endpoint.clone(), client),
            metrics: metrics::ProxyMetrics::register(registry),
            listener_limits: skiff_api::limits::ListenerLimits::default(),
        });
        shared.supervisor.set_outbound(Arc::new(outbound::Router {
            shared: Arc::downgrade(&shared),
        }));
        let http_port = http_port
            .map(|port| {
                let addr = SocketAddr::new(address, port);
                HttpPort::open(addr, shared.clone())
                    .map_err(|error| ProxyError::HttpPort { addr, error })
            })
            .transpose()?;
        let peer_server = tokio::spawn(peer::server::run(
            endpoint.clone(),
            supervisor,
            revoked.clone(),
        ));
        Ok(Proxy {
            shared,
            certificate,
            revoked,
            node_ports: Mutex::new(NodePorts::new(address)),
            http_port,
            peer_server,
            endpoint,
        })
    }

    /// The UDP port peers reach this node's proxy at.
    pub fn peer_port(&self) -> u16 {
        self.endpoint.local_addr().map_or(0, |a| a.port())
    }

    /// Where the HTTP port (the Ingresses) listens, if the node has one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_port.as_ref().map(HttpPort::addr)
    }

    /// Presents a renewed certificate from the next peer connection on.
    pub fn renewed(&self, identity: &Identity) -> Result<(), ProxyError> {
        Ok(self.certificate.replace(identity)?)
    }

    /// Takes the control plane's list of revoked node certificates.
    pub fn revoked(&self, serials: Vec<String>) {
        self.revoked.replace(serials);
    }

    /// Applies a routing message from the control plane; other messages are
    /// ignored. Opens and closes NodePorts to match.
    pub fn apply(&self, message: Downstream) {
        let table = {
            let mut objects = lock(&self.shared.objects);
            if !objects.apply(message) {
                return;
            }
            Arc::new(objects.table())
        };
        *lock(&self.shared.table) = table.clone();
        {
            let mut balancers = lock(&self.shared.balancers);
            balancers.retain(|key, _| table.services.contains_key(key));
            for (key, balancer) in balancers.iter() {
                if let Some(route) = table.services.get(key) {
                    let live: Vec<IpAddr> = route.endpoints.iter().map(|e| e.ip).collect();
                    balancer.retain(&live);
                }
            }
        }
        lock(&self.node_ports).reconcile(&table, &self.shared);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.peer_server.abort();
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"node stopping");
    }
}

impl Shared {
    fn table(&self) -> Arc<RoutingTable> {
        lock(&self.table).clone()
    }

    fn balancer(&self, key: &ServiceKey) -> Arc<Balancer> {
        lock(&self.balancers)
            .entry(key.clone())
            .or_default()
            .clone()
    }
}
