//! The agent: joins the cluster (once, with a token), then keeps a session with
//! the control plane over QUIC with mutual TLS: receives the node's pods and
//! hands them to the supervisor, sends back status, Events and heartbeats, and
//! serves the control plane's calls (pod logs, HTTP to pods). When the link
//! drops it reconnects with backoff while the pods keep running. Before its
//! certificate expires it asks for a new one over the session ([`Agent::renew`]).

pub(crate) use skiff_transport::frames;
pub(crate) mod serve;
pub(crate) mod stream_body;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_api::join::{CONTROL_PLANE_SERVER_NAME, JoinToken};
use skiff_api::json::Pointer as _;
use skiff_api::wire::{
    Downstream, Hello, JoinRequest, JoinResponse, Open, PROTOCOL_VERSION, Reply, Upstream,
};
use tokio::sync::watch;

use crate::identity::{Identity, IdentityDir, Pending};
use crate::outbox::Outbox;
use crate::proxy::Proxy;
use crate::state::LocalPods;
use crate::supervisor::PodSupervisor;

/// How often the node says it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Reconnect backoff.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The pause before trying a failed certificate renewal again.
const RENEW_RETRY: Duration = Duration::from_secs(60);

/// Why joining or a session failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control plane said no; retrying will not help.
    #[error("the control plane refused this node: {0}")]
    Refused(String),
    /// The control plane is not the one the token or the stored CA names.
    #[error("{0}")]
    Untrusted(String),
    /// The TLS settings to reach the control plane could not be made (the
    /// stored CA or certificate is unusable); retrying will not help.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The link failed; retrying may help.
    #[error("{0}")]
    Link(String),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

/// Classifies a connection failure: TLS failures are not worth retrying blindly.
fn connection_error(addr: SocketAddr, e: quinn::ConnectionError, hint: &str) -> AgentError {
    match &e {
        quinn::ConnectionError::TransportError(t)
            if t.code.to_string().contains("crypto") || t.reason.contains("certificate") =>
        {
            AgentError::Untrusted(format!(
                "TLS with the control plane at {addr} failed: {e}{hint}"
            ))
        }
        quinn::ConnectionError::ConnectionClosed(c)
            if c.error_code.to_string().contains("crypto") =>
        {
            AgentError::Untrusted(format!(
                "the control plane at {addr} refused this node's certificate: {e}{hint}"
            ))
        }
        _ => AgentError::Link(format!("connect to the control plane at {addr}: {e}")),
    }
}

/// Trades a token for an identity, kept in `identity_dir`.
pub async fn join(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    token: &JoinToken,
    node_name: &str,
    identity_dir: &IdentityDir,
) -> Result<Identity, AgentError> {
    let (pending, joined) = request_identity(endpoint, addr, token, node_name).await?;
    Ok(identity_dir.store(pending, &joined.cert_pem, &joined.ca_pem)?)
}

/// Trades a token for a certificate: the key it was made for, and the reply.
pub(crate) async fn request_identity(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    token: &JoinToken,
    node_name: &str,
) -> Result<(Pending, JoinResponse), AgentError> {
    let config = tls::join_config(&token.ca_hash)?;
    let connecting = endpoint
        .connect_with(config, addr, CONTROL_PLANE_SERVER_NAME)
        .map_err(|e| AgentError::Link(format!("connect to {addr}: {e}")))?;
    let connection = connecting
        .await
        .map_err(|e| connection_error(addr, e, ""))?;
    let pending = IdentityDir::prepare(node_name)?;
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| AgentError::Link(format!("join: {e}")))?;
    let request = JoinRequest {
        version: PROTOCOL_VERSION,
        token: format!("{}.{}", token.id, token.secret),
        node_name: node_name.to_string(),
        csr_pem: pending.csr_pem.clone(),
    };
    frames::write(&mut send, &Open::Join(request))
        .await
        .map_err(|e| AgentError::Link(format!("join: {e}")))?;
    let _ = send.finish();
    let reply = frames::expect::<Reply>(&mut recv)
        .await
        .map_err(|e| AgentError::Link(format!("join: {e}")))?;
    connection.close(quinn::VarInt::from_u32(0), b"joined");
    match reply {
        Reply::Joined(joined) => Ok((pending, joined)),
        Reply::Refused { message, .. } => Err(AgentError::Refused(message)),
        other => Err(AgentError::Link(format!(
            "join: unexpected reply {other:?}"
        ))),
    }
}

/// Connects with the node's certificate and opens its session: says hello and
/// waits for the welcome. `hint` is added to a TLS failure's message.
/// An open session: the connection, its session stream, and the node's pod
/// CIDR from the welcome.
pub(crate) type SessionStreams = (
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
    Option<String>,
);

pub(crate) async fn open_session(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    identity: &Identity,
    hello: Hello,
    hint: &str,
) -> Result<SessionStreams, AgentError> {
    let config = tls::session_config(identity)?;
    let connection = endpoint
        .connect_with(config, addr, CONTROL_PLANE_SERVER_NAME)
        .map_err(|e| AgentError::Link(format!("connect to {addr}: {e}")))?
        .await
        .map_err(|e| connection_error(addr, e, hint))?;
    let link = |e: &dyn std::fmt::Display| AgentError::Link(e.to_string());
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| link(&e))?;
    frames::write(&mut send, &Open::Session(hello))
        .await
        .map_err(|e| match e {
            frames::StreamError::Write(quinn::WriteError::ConnectionLost(c)) => {
                connection_error(addr, c, hint)
            }
            e => link(&e),
        })?;
    match frames::expect::<Reply>(&mut recv).await {
        Ok(Reply::Welcome { pod_cidr, .. }) => Ok((connection, send, recv, pod_cidr)),
        Ok(Reply::Refused { message, .. }) => Err(AgentError::Refused(message)),
        Ok(other) => Err(AgentError::Link(format!("unexpected reply {other:?}"))),
        Err(frames::StreamError::Read(quinn::ReadExactError::ReadError(
            quinn::ReadError::ConnectionLost(c),
        ))) => Err(connection_error(addr, c, hint)),
        Err(e) => Err(link(&e)),
    }
}

/// What a session needs.
pub(crate) struct Agent {
    pub addr: SocketAddr,
    pub endpoint: quinn::Endpoint,
    /// Replaced when the certificate is renewed.
    pub identity: RwLock<Arc<Identity>>,
    pub identity_dir: IdentityDir,
    pub hello: Hello,
    pub supervisor: Arc<PodSupervisor>,
    pub outbox: Arc<Outbox>,
    pub proxy: Arc<Proxy>,
    pub local: Arc<Mutex<LocalPods>>,
    pub connection: watch::Sender<Option<quinn::Connection>>,
    /// Whether a session is open now.
    pub connected: watch::Sender<bool>,
}

impl Agent {
    /// Keeps a session open, reconnecting with backoff, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = tokio::time::Instant::now();
            match self.session().await {
                Ok(()) => {
                    tracing::warn!(node = %self.hello.node_name, "control plane link closed; reconnecting")
                }
                Err(e @ (AgentError::Untrusted(_) | AgentError::Tls(_))) => {
                    tracing::error!(node = %self.hello.node_name, "{e}")
                }
                Err(e) => {
                    tracing::warn!(node = %self.hello.node_name, error = %e, "control plane link failed; retrying")
                }
            }
            self.connection.send_replace(None);
            self.connected.send_replace(false);
            if started.elapsed() > BACKOFF_MAX * 2 {
                backoff = BACKOFF_MIN; // It was up for a while: retry soon.
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn session(&self) -> Result<(), AgentError> {
        let hint = format!(
            " (this node's identity in {} belongs to another cluster? remove it and join again with a token)",
            self.identity_dir.dir().display()
        );
        let link = |e: &dyn std::fmt::Display| AgentError::Link(e.to_string());
        let mut hello = self.hello.clone();
        hello.running = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .all()
            .iter()
            .filter_map(|p| {
                p.at("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        let identity = self
            .identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (connection, mut send, mut recv, pod_cidr) =
            open_session(&self.endpoint, self.addr, &identity, hello, &hint).await?;
        if let Some(cidr) = pod_cidr.and_then(|c| c.parse::<ipnet::Ipv4Net>().ok()) {
            if let Err(e) = self.identity_dir.store_pod_cidr(cidr) {
                tracing::warn!(error = %e, "record the pod CIDR");
            }
            self.supervisor.set_pod_cidr(cidr);
        }
        tracing::info!(node = %self.hello.node_name, control_plane = %self.addr, "connected to the control plane");
        self.connection.send_replace(Some(connection.clone()));
        self.connected.send_replace(true);
        self.outbox.resend_all();

        let calls = {
            let connection = connection.clone();
            let supervisor = self.supervisor.clone();
            async move {
                loop {
                    let Ok((send, recv)) = connection.accept_bi().await else {
                        return;
                    };
                    let supervisor = supervisor.clone();
                    tokio::spawn(async move { serve::stream(&supervisor, send, recv).await });
                }
            }
        };
        let downstream = async {
            loop {
                let Some(message) = frames::read::<Downstream>(&mut recv)
                    .await
                    .map_err(|e| link(&e))?
                else {
                    return Ok(());
                };
                self.apply(message);
            }
        };
        let upstream = async {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        frames::write(&mut send, &Upstream::Heartbeat).await.map_err(|e| link(&e))?;
                    }
                    _ = self.outbox.ready() => {
                        let frames_out = self.outbox.drain();
                        for (i, frame) in frames_out.iter().enumerate() {
                            if let Err(e) = frames::write(&mut send, frame).await {
                                self.outbox.requeue(frames_out[i..].to_vec());
                                return Err(link(&e));
                            }
                        }
                    }
                }
            }
        };
        let renewal = async {
            let mut identity = identity;
            loop {
                tokio::time::sleep(renewal_delay(&identity)).await;
                match self.renew(&connection).await {
                    Ok(renewed) => identity = renewed,
                    Err(e) => {
                        tracing::warn!(node = %self.hello.node_name, error = %e, "could not renew this node's certificate; retrying in a minute");
                        tokio::time::sleep(RENEW_RETRY).await;
                    }
                }
            }
        };
        let result = tokio::select! {
            r = downstream => r,
            r = upstream => r,
            () = calls => Ok(()),
            () = renewal => Ok(()),
        };
        connection.close(quinn::VarInt::from_u32(0), b"session over");
        result
    }

    /// Trades a new key's signing request for a certificate over the session,
    /// keeps both in the data dir and uses them for the next connections.
    async fn renew(&self, connection: &quinn::Connection) -> Result<Arc<Identity>, AgentError> {
        let link = |e: &dyn std::fmt::Display| AgentError::Link(format!("renew: {e}"));
        let pending = IdentityDir::prepare(&self.hello.node_name)?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| link(&e))?;
        let open = Open::Renew {
            csr_pem: pending.csr_pem.clone(),
        };
        frames::write(&mut send, &open)
            .await
            .map_err(|e| link(&e))?;
        let _ = send.finish();
        let renewed = match frames::expect::<Reply>(&mut recv)
            .await
            .map_err(|e| link(&e))?
        {
            Reply::Joined(renewed) => renewed,
            Reply::Refused { message, .. } => return Err(AgentError::Refused(message)),
            other => {
                return Err(AgentError::Link(format!(
                    "renew: unexpected reply {other:?}"
                )));
            }
        };
        let identity = Arc::new(self.identity_dir.store_renewed(
            pending,
            &renewed.cert_pem,
            &renewed.ca_pem,
        )?);
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity.clone();
        if let Err(e) = self.proxy.renewed(&identity) {
            tracing::warn!(node = %self.hello.node_name, error = %e, "the peer proxy keeps the previous certificate");
        }
        tracing::info!(
            node = %self.hello.node_name,
            valid_until = ?identity.validity().map(|(_, until)| until),
            "renewed this node's certificate"
        );
        Ok(identity)
    }

    /// Applies what the control plane says the node must run.
    fn apply(&self, message: Downstream) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        match message {
            Downstream::Snapshot { pods } => {
                local.replace(&pods);
                self.supervisor
                    .sync(pods.into_iter().filter_map(typed).collect());
            }
            Downstream::Upsert { pod } => {
                local.put(&pod);
                self.outbox.reconcile(&pod);
                if let Some(pod) = typed(pod) {
                    self.supervisor.upsert(pod);
                }
            }
            routing @ (Downstream::RoutingSnapshot { .. }
            | Downstream::RoutingUpsert { .. }
            | Downstream::RoutingRemove { .. }) => self.proxy.apply(routing),
            Downstream::Remove { uid } => {
                local.remove(&uid);
                self.outbox.forget(&uid);
                self.supervisor.remove(&uid);
            }
            // Held in memory only; never part of the node's saved state.
            Downstream::ObjectUpsert { object } => self.supervisor.objects().upsert(object),
            Downstream::ObjectRemove(name) => self.supervisor.objects().remove(&name),
            Downstream::ObjectsHeld { objects } => self.supervisor.objects().keep_only(&objects),
            Downstream::Denied { code, message } => {
                tracing::warn!(node = %self.hello.node_name, code, %message, "the control plane refused a report from this node");
            }
            Downstream::Revoked { serials } => self.proxy.revoked(serials),
        }
    }
}

/// How long until a certificate should be renewed (zero if it is due now).
fn renewal_delay(identity: &Identity) -> Duration {
    let Some((not_before, not_after)) = identity.validity() else {
        // Unreadable: ask again later rather than in a loop.
        return RENEW_RETRY;
    };
    let now = jiff::Timestamp::now().as_second();
    let wait = skiff_api::join::renew_at(not_before, not_after).saturating_sub(now);
    Duration::from_secs(u64::try_from(wait).unwrap_or(0))
}

/// A pod as its typed view; a pod that does not decode is skipped (the API
/// server validated it, so this means a version skew).
pub(crate) fn typed(pod: Value) -> Option<Pod> {
    match serde_json::from_value::<Pod>(pod) {
        Ok(pod) => Some(pod),
        Err(e) => {
            tracing::warn!(error = %e, "skipping a pod this node cannot read");
            None
        }
    }
}
