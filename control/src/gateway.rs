//! The node gateway: the QUIC server nodes connect to.
//!
//! A connection without a client certificate may only join ([`join`]); a
//! connection with one (issued by the cluster CA, so verified by TLS) names its
//! node, opens a [`session`] first, and may then fetch components ([`fetch`])
//! and renew its certificate. What a node may do is decided by the
//! [`node_authorizer`]; a revoked certificate ([`revoke`]: its Node was
//! deleted) is refused whatever it asks. The control plane opens streams to a
//! connected node for pod logs and HTTP requests to pods ([`Gateway::logs`],
//! [`Gateway::proxy`]).

mod dispatch;
mod fetch;
mod join;
pub mod node_authorizer;
pub mod nodes;
pub mod pod_cidr;
mod reports;
mod revoke;
mod routing;
mod session;
mod tls;

use skiff_transport::frames;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use skiff_api::wire::{LogsRequest, Open, ProxyRequest, ProxyResponse, Reply};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use dispatch::PodDispatcher;
pub use nodes::NodeLiveness;
pub use routing::RoutingFeed;
pub use tls::{IDLE_TIMEOUT, TlsError, transport};

use crate::auth::{ClusterCa, NodeCert, node_cert_of};
use crate::components::ComponentStore;
use crate::registry::Registry;

/// Most connections without a client certificate (joining nodes, or
/// strangers) served at once; more are closed as they arrive. Joins are rare
/// and quick, so a few dozen is plenty for a fleet joining together.
const MAX_UNAUTHENTICATED: usize = 64;
/// The first frame of a stream on a connection without a certificate (a join
/// request: a token, a name and a CSR of about 1 KiB) may be this large.
const MAX_UNAUTHENTICATED_FRAME: usize = 64 * 1024;
/// How long the opener of a stream has to send its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to a node failed; maps to the API's answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeCallError {
    /// The node has no session now (503).
    #[error("node {0:?} is not connected to the control plane")]
    NotConnected(String),
    /// The node refused, with an HTTP-like code.
    #[error("{message}")]
    Refused { code: u16, message: String },
    /// The stream broke.
    #[error("talk to node {node:?}: {message}")]
    Stream { node: String, message: String },
}

/// The last session id given, and node -> (session id, connection).
type SessionMap = (u64, HashMap<String, (u64, quinn::Connection)>);

/// Connected nodes by name.
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<SessionMap>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, SessionMap> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the node's connection (closing an older one) and returns its id.
    fn insert(&self, node: &str, connection: quinn::Connection) -> u64 {
        let mut guard = self.lock();
        guard.0 += 1;
        let id = guard.0;
        if let Some((_, old)) = guard.1.insert(node.to_string(), (id, connection)) {
            old.close(
                quinn::VarInt::from_u32(2),
                b"replaced by a newer connection",
            );
        }
        id
    }

    /// Removes session `id` of `node` if it is still the node's current one;
    /// returns whether it was.
    fn remove(&self, node: &str, id: u64) -> bool {
        let mut guard = self.lock();
        let current = guard.1.get(node).map(|(i, _)| *i) == Some(id);
        if current {
            guard.1.remove(node);
        }
        current
    }

    fn get(&self, node: &str) -> Option<quinn::Connection> {
        self.lock().1.get(node).map(|(_, c)| c.clone())
    }

    /// Closes the node's session, if it has one; returns its connection.
    fn close(&self, node: &str, reason: &[u8]) -> Option<quinn::Connection> {
        let (_, connection) = self.lock().1.remove(node)?;
        connection.close(quinn::VarInt::from_u32(3), reason);
        Some(connection)
    }
}

/// What every connection handler shares.
pub(crate) struct Shared {
    registry: Registry,
    components: Arc<ComponentStore>,
    ca: Arc<ClusterCa>,
    dispatcher: PodDispatcher,
    routing: RoutingFeed,
    liveness: NodeLiveness,
    statuses: reports::StatusWriter,
    events: reports::EventWriter,
    sessions: Sessions,
    pod_cidrs: pod_cidr::PodCidrs,
    /// Slots for connections without a client certificate.
    unauthenticated: Arc<Semaphore>,
}

/// A running node gateway.
pub struct Gateway {
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"control plane stopping");
    }
}

impl Gateway {
    /// Listens on `addr` (UDP) and serves nodes.
    pub fn start(
        addr: SocketAddr,
        ca: Arc<ClusterCa>,
        registry: Registry,
        components: Arc<ComponentStore>,
        informers: &crate::informer::Informers,
    ) -> Result<Gateway, GatewayError> {
        let config = tls::server_config(&ca)?;
        let endpoint = skiff_transport::endpoint::server(config, addr)
            .map_err(|e| GatewayError::Listen(addr, e))?;
        let addr = endpoint
            .local_addr()
            .map_err(|e| GatewayError::Listen(addr, e))?;
        let shared = Arc::new(Shared {
            statuses: reports::StatusWriter::new(registry.clone()),
            events: reports::EventWriter::new(registry.clone()),
            registry: registry.clone(),
            components,
            ca,
            dispatcher: PodDispatcher::default(),
            routing: RoutingFeed::default(),
            liveness: NodeLiveness::default(),
            sessions: Sessions::default(),
            pod_cidrs: pod_cidr::PodCidrs::new(informers.nodes.clone()),
            unauthenticated: Arc::new(Semaphore::new(MAX_UNAUTHENTICATED)),
        });
        let dispatcher = tokio::spawn(shared.dispatcher.clone().run(registry));
        let routing = tokio::spawn(shared.routing.clone().run(
            informers.services.clone(),
            informers.endpoint_slices.clone(),
            informers.nodes.clone(),
            informers.ingresses.clone(),
        ));
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone()));
        let revoker = tokio::spawn(revoke::run(shared.clone(), informers.nodes.subscribe()));
        let token_cleaner = tokio::spawn(crate::auth::tokens::run_cleaner(shared.registry.clone()));
        tracing::info!(%addr, "node gateway listening (QUIC)");
        Ok(Gateway {
            addr,
            endpoint,
            shared,
            tasks: vec![dispatcher, routing, accept, revoker, token_cleaner],
        })
    }

    /// The UDP address nodes connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Node liveness, for the node lifecycle controller.
    pub fn liveness(&self) -> NodeLiveness {
        self.shared.liveness.clone()
    }

    /// A handle for calls to nodes (logs, proxy), for the API server.
    pub fn calls(&self) -> NodeCalls {
        NodeCalls {
            shared: self.shared.clone(),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("listen on {0} (UDP): {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// Calls from the control plane to connected nodes.
#[derive(Clone)]
pub struct NodeCalls {
    shared: Arc<Shared>,
}

impl NodeCalls {
    async fn open(
        &self,
        node: &str,
        open: &Open,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), NodeCallError> {
        let stream_err = |message: String| NodeCallError::Stream {
            node: node.to_string(),
            message,
        };
        let connection = self
            .shared
            .sessions
            .get(node)
            .ok_or_else(|| NodeCallError::NotConnected(node.to_string()))?;
        let (mut send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        frames::write(&mut send, open)
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        Ok((send, recv))
    }

    async fn reply(node: &str, recv: &mut quinn::RecvStream) -> Result<Reply, NodeCallError> {
        match frames::expect::<Reply>(recv).await {
            Ok(Reply::Refused { code, message }) => Err(NodeCallError::Refused { code, message }),
            Ok(reply) => Ok(reply),
            Err(e) => Err(NodeCallError::Stream {
                node: node.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// A pod's log from its node: the stream carries the text.
    pub async fn logs(
        &self,
        node: &str,
        request: LogsRequest,
    ) -> Result<quinn::RecvStream, NodeCallError> {
        let (mut send, mut recv) = self.open(node, &Open::Logs(request)).await?;
        let _ = send.finish();
        match Self::reply(node, &mut recv).await? {
            Reply::Logs => Ok(recv),
            other => Err(unexpected(node, &other)),
        }
    }

    /// An HTTP request to a pod on its node: the response head, and the stream
    /// carrying the body.
    pub async fn proxy(
        &self,
        node: &str,
        request: ProxyRequest,
        body: Bytes,
    ) -> Result<(ProxyResponse, quinn::RecvStream), NodeCallError> {
        let (mut send, mut recv) = self.open(node, &Open::Proxy(request)).await?;
        let stream_err = |message: String| NodeCallError::Stream {
            node: node.to_string(),
            message,
        };
        send.write_all(&body)
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        let _ = send.finish();
        match Self::reply(node, &mut recv).await? {
            Reply::Proxied(head) => Ok((head, recv)),
            other => Err(unexpected(node, &other)),
        }
    }
}

fn unexpected(node: &str, reply: &Reply) -> NodeCallError {
    NodeCallError::Stream {
        node: node.to_string(),
        message: format!("unexpected reply {reply:?}"),
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => serve_connection(shared, connection).await,
                // A certificate from another cluster ends here, at the handshake.
                Err(e) => tracing::warn!(%remote, error = %e, "node connection refused"),
            }
        });
    }
}

/// The node certificate a connection's verified client certificate is, if any.
fn peer_cert(connection: &quinn::Connection) -> Option<NodeCert> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    node_cert_of(chain.first()?)
}

/// Answers `reply` on a stream and ends it.
async fn answer(send: &mut quinn::SendStream, reply: &Reply) {
    let _ = frames::write(send, reply).await;
    let _ = send.finish();
}

async fn serve_connection(shared: Arc<Shared>, connection: quinn::Connection) {
    let cert = peer_cert(&connection);
    let node = cert.as_ref().map(|c| c.node.clone());
    let remote = connection.remote_address();
    if let Some(cert) = &cert
        && shared.ca.is_revoked(&cert.serial)
    {
        tracing::warn!(node = %cert.node, serial = %cert.serial, %remote, "refused a revoked node certificate");
        if let Ok((mut send, _recv)) = connection.accept_bi().await {
            let reply = Reply::Refused {
                code: 403,
                message: revoke::revoked_message(&cert.node),
            };
            answer(&mut send, &reply).await;
        }
        // Let the refusal reach the node before the connection goes.
        let _ = tokio::time::timeout(IDLE_TIMEOUT, connection.closed()).await;
        connection.close(quinn::VarInt::from_u32(3), b"certificate revoked");
        return;
    }
    // A connection without a certificate holds a slot until it ends; it may
    // only join, with a small first frame.
    let _slot = match &node {
        Some(_) => None,
        None => match shared.unauthenticated.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                tracing::warn!(%remote, max = MAX_UNAUTHENTICATED, "too many connections without a certificate; closing one");
                connection.close(quinn::VarInt::from_u32(3), b"too many connections");
                return;
            }
        },
    };
    let max_first_frame = match &node {
        Some(_) => skiff_api::wire::MAX_FRAME,
        None => MAX_UNAUTHENTICATED_FRAME,
    };
    loop {
        let (mut send, mut recv) = match connection.accept_bi().await {
            Ok(stream) => stream,
            Err(_) => return, // Closed.
        };
        let first = frames::read_at_most::<Open>(&mut recv, max_first_frame);
        let open = match tokio::time::timeout(FIRST_FRAME_TIMEOUT, first).await {
            Ok(Ok(Some(open))) => open,
            Ok(Ok(None)) => {
                tracing::debug!(%remote, "a stream ended before its first frame");
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(%remote, error = %e, "bad first frame; closing the connection");
                connection.close(quinn::VarInt::from_u32(1), b"malformed frame");
                return;
            }
            Err(_) => {
                tracing::warn!(%remote, timeout = ?FIRST_FRAME_TIMEOUT, "no first frame in time; closing the connection");
                connection.close(quinn::VarInt::from_u32(1), b"first frame too slow");
                return;
            }
        };
        let shared = shared.clone();
        match (open, node.as_deref()) {
            (Open::Join(request), _) => {
                let reply = join::answer(&shared.registry, &shared.ca, &request).await;
                answer(&mut send, &reply).await;
                // Let the reply reach the node before the connection goes.
                let _ = tokio::time::timeout(IDLE_TIMEOUT, connection.closed()).await;
                return;
            }
            (Open::Session(hello), Some(node)) => {
                let node = node.to_string();
                let serial = cert.as_ref().map(|c| c.serial.clone()).unwrap_or_default();
                let connection = connection.clone();
                tokio::spawn(async move {
                    let peer = session::Peer {
                        connection: &connection,
                        node: &node,
                        serial: &serial,
                    };
                    if let Err(e) = session::run(&shared, peer, hello, send, recv).await {
                        tracing::info!(node, error = %e, "node session ended");
                    } else {
                        tracing::info!(node, "node session ended");
                    }
                });
            }
            (Open::Fetch { image }, Some(node)) => {
                let pods = shared.dispatcher.pods_of(node);
                let request = node_authorizer::NodeRequest::FetchComponent {
                    image: &image,
                    pods: &pods,
                };
                if let Err(denied) = node_authorizer::authorize(node, &request) {
                    tracing::warn!(node, %image, action = denied.action, reason = %denied.message, "node request refused");
                    let reply = Reply::Refused {
                        code: denied.code,
                        message: denied.message,
                    };
                    answer(&mut send, &reply).await;
                    continue;
                }
                tokio::spawn(async move {
                    if let Err(e) =
                        fetch::serve(&shared.registry, &shared.components, &image, send).await
                    {
                        tracing::debug!(%image, error = %e, "component fetch failed");
                    }
                });
            }
            (Open::Renew { csr_pem }, Some(node)) => {
                // The name is the certificate's: a node renews only itself.
                let reply = match shared.ca.sign_node(&csr_pem, node) {
                    Ok(cert_pem) => {
                        tracing::info!(node, "node certificate renewed");
                        Reply::Joined(skiff_api::wire::JoinResponse {
                            cert_pem,
                            ca_pem: shared.ca.cert_pem().to_string(),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(node, error = %e, "node certificate not renewed");
                        Reply::Refused {
                            code: 400,
                            message: e.to_string(),
                        }
                    }
                };
                answer(&mut send, &reply).await;
            }
            (_, None) => {
                let reply = Reply::Refused {
                    code: 401,
                    message: "this connection has no node certificate: join the cluster with a token first (`skiff node --join ADDR --token TOKEN`)".into(),
                };
                answer(&mut send, &reply).await;
                // Nothing else is open to it: let the reply go, then free the slot.
                let _ = tokio::time::timeout(IDLE_TIMEOUT, connection.closed()).await;
                return;
            }
            (other, Some(_)) => {
                let reply = Reply::Refused {
                    code: 400,
                    message: format!("a node may not open {other:?}"),
                };
                answer(&mut send, &reply).await;
            }
        }
    }
}
