//! One node's session: the first stream of a mutual-TLS connection. The node says
//! hello (its name must match its certificate), its Node object is registered, it
//! receives its pods (a snapshot, then changes), and it reports pod status,
//! Events and finished deletions until the connection ends.
//!
//! Everything the node asks goes through the [`node_authorizer`]: its Node
//! labels when it registers, and each pod status and deletion it reports. A
//! refusal is logged and sent back to the node as [`Downstream::Denied`]; the
//! session goes on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::ApiError;
use skiff_api::wire::{Downstream, Hello, PROTOCOL_VERSION, Reply, Upstream};
use tokio::sync::mpsc;

use super::node_authorizer::{self, Denied, NodeRequest};
use super::{Shared, frames, join, nodes, reports, revoke};

/// How often a connected node's `lastHeartbeatTime` is written to its Node.
const NODE_STATUS_INTERVAL: Duration = Duration::from_secs(20);

/// How many refusals may wait for a node that does not read; more are only logged.
const DENIALS_QUEUED: usize = 64;

/// Why a session was refused or ended, for the log; a refusal's message is
/// also what the node was told.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The node speaks another protocol version.
    #[error("protocol version {0}")]
    Version(u32),
    /// The hello names another node than the certificate.
    #[error(
        "this certificate is for node {certified:?}, not {claimed:?}: a node keeps the name it joined with"
    )]
    WrongName { certified: String, claimed: String },
    /// The node may not register itself as it asked (its labels).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The node's certificate was revoked while the connection was set up.
    #[error("{}", revoke::revoked_message(.node))]
    Revoked { node: String },
    /// Its Node could not be written.
    #[error(transparent)]
    Register(ApiError),
    /// The streams failed, or the node fell behind on its updates.
    #[error(transparent)]
    Stream(#[from] frames::StreamError),
}

/// The node at the other end: its connection and its verified certificate.
pub struct Peer<'a> {
    pub connection: &'a quinn::Connection,
    /// The node the certificate names.
    pub node: &'a str,
    /// The certificate's serial (hex).
    pub serial: &'a str,
}

/// Runs a session on `(send, recv)` for the node whose certificate names `node`.
pub async fn run(
    shared: &Shared,
    peer: Peer<'_>,
    hello: Hello,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), SessionError> {
    let Peer {
        connection,
        node,
        serial,
    } = peer;
    let refuse = |code, message: String| Reply::Refused { code, message };
    if hello.version != PROTOCOL_VERSION {
        let reply = refuse(400, join::version_mismatch(hello.version));
        let _ = frames::write(&mut send, &reply).await;
        return Err(SessionError::Version(hello.version));
    }
    if hello.node_name != node {
        let e = SessionError::WrongName {
            certified: node.to_string(),
            claimed: hello.node_name,
        };
        let _ = frames::write(&mut send, &refuse(403, e.to_string())).await;
        return Err(e);
    }
    if let Err(denied) = authorize_node_write(shared, node, &hello) {
        log_denied(node, None, &denied);
        let _ = frames::write(&mut send, &refuse(denied.code, denied.message.clone())).await;
        return Err(denied.into());
    }
    // Revoked while this connection was being set up: no Node comes back.
    if shared.ca.is_revoked(serial) {
        let e = SessionError::Revoked {
            node: node.to_string(),
        };
        let _ = frames::write(&mut send, &refuse(403, e.to_string())).await;
        return Err(e);
    }
    // Heard from before its Node is marked Ready: the node lifecycle controller,
    // woken by that write, must not find the silence of the old session.
    shared.liveness.seen(node);
    if let Err(e) = nodes::register(&shared.registry, &hello).await {
        let _ = frames::write(&mut send, &refuse(500, format!("register the node: {e}"))).await;
        return Err(SessionError::Register(e));
    }
    let pod_cidr = match shared.pod_cidrs.ensure(&shared.registry, node).await {
        Ok(cidr) => cidr.map(|c| c.to_string()),
        Err(e) => {
            tracing::warn!(node, error = %e, "allocate the node's pod CIDR");
            None
        }
    };
    frames::write(
        &mut send,
        &Reply::Welcome {
            version: PROTOCOL_VERSION,
            pod_cidr,
        },
    )
    .await?;
    let session_id = shared.sessions.insert(node, connection.clone());
    shared.liveness.seen(node);
    tracing::info!(node, "node session open");

    let mut pods = shared.dispatcher.subscribe(node);
    let mut routing = shared.routing.subscribe();
    let mut revoked = shared.ca.revoked_serials();
    revoked.mark_changed();
    let (denials_tx, mut denials) = mpsc::channel(DENIALS_QUEUED);
    let downstream = async move {
        loop {
            let message = tokio::select! {
                m = pods.changes.recv() => m,
                m = routing.changes.recv() => m,
                Some(d) = denials.recv() => Some(d),
                Ok(()) = revoked.changed() => Some(Downstream::Revoked {
                    serials: revoked.borrow_and_update().to_vec(),
                }),
            };
            let Some(message) = message else {
                // Unsubscribed: a newer session replaced this one, or this
                // node stopped reading and its queue filled. Either way the
                // node must reconnect and start again from a snapshot.
                return Err(frames::StreamError::Unsubscribed);
            };
            frames::write(&mut send, &message).await?;
            if matches!(message, Downstream::Snapshot { .. }) {
                tracing::debug!("pod snapshot sent");
            }
        }
    };
    let upstream = async {
        let mut tick = tokio::time::interval(NODE_STATUS_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                frame = frames::read::<Upstream>(&mut recv) => {
                    let Some(frame) = frame? else { return Ok(()) };
                    if shared.liveness.seen(node) {
                        // Marked NotReady while late, and speaking again: Ready now.
                        if let Err(e) = nodes::heartbeat(&shared.registry, node).await {
                            tracing::debug!(node, error = %e, "node status not written");
                        }
                    }
                    if let Err(denied) = handle(shared, node, frame) {
                        let _ = denials_tx.try_send(Downstream::Denied {
                            code: denied.code,
                            message: denied.message,
                        });
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = nodes::heartbeat(&shared.registry, node).await {
                        tracing::debug!(node, error = %e, "node heartbeat not written");
                    }
                }
            }
        }
    };
    let result: Result<(), frames::StreamError> = tokio::select! {
        r = downstream => r,
        r = upstream => r,
    };
    // A newer session of the same node may have opened meanwhile (the node
    // restarted before this connection timed out): it is the one alive.
    if shared.sessions.remove(node, session_id) {
        shared.liveness.disconnected(node);
    }
    match &result {
        // A peer that breaks the framing loses its connection, nothing else.
        Err(frames::StreamError::Frame(_)) => {
            connection.close(quinn::VarInt::from_u32(1), b"malformed frame");
        }
        Err(frames::StreamError::Unsubscribed) => {
            connection.close(
                quinn::VarInt::from_u32(4),
                b"behind on its updates: reconnect for a full resync",
            );
        }
        _ => {}
    }
    Ok(result?)
}

/// Acts on one frame from the node, if the node may; a refusal is logged here.
fn handle(shared: &Shared, node: &str, frame: Upstream) -> Result<(), Denied> {
    match frame {
        Upstream::Heartbeat => {}
        Upstream::PodStatus {
            namespace,
            name,
            uid,
            status,
        } => {
            let pod = authorize_pod(shared, node, &namespace, &name, &uid, |pod| {
                NodeRequest::UpdatePodStatus { pod }
            })?;
            if let Some(pod) = pod {
                shared.statuses.report(namespace, name, uid, status, pod);
            }
        }
        Upstream::PodTerminated {
            namespace,
            name,
            uid,
        } => {
            let pod = authorize_pod(shared, node, &namespace, &name, &uid, |pod| {
                NodeRequest::DeletePod { pod }
            })?;
            if pod.is_some() {
                let registry = shared.registry.clone();
                tokio::spawn(async move {
                    reports::pod_terminated(&registry, &namespace, &name, &uid).await;
                });
            }
        }
        // Events name the node as their source host from its certificate, so a
        // node cannot speak as another; Kubernetes lets nodes create Events too.
        Upstream::Event(event) => shared.events.report(node, event),
    }
    Ok(())
}

/// Whether the node may act on pod `namespace/name` with `uid`: the pod as
/// checked when it may, `Ok(None)` when there is no such pod (gone, or
/// replaced by one of the same name: nothing to do), a refusal (logged)
/// otherwise.
fn authorize_pod(
    shared: &Shared,
    node: &str,
    namespace: &str,
    name: &str,
    uid: &str,
    request: impl FnOnce(&Value) -> NodeRequest<'_>,
) -> Result<Option<Arc<Value>>, Denied> {
    // The pods bound to this node are at hand; any other is read from the store.
    let pod = match shared.dispatcher.pod(node, uid) {
        Some(pod) => pod,
        None => {
            let Some(rt) = by_kind("v1", "Pod") else {
                return Ok(None);
            };
            match shared.registry.try_get(rt, namespace, name) {
                Ok(Some(pod)) if meta::uid(&pod) == Some(uid) => Arc::new(pod),
                Ok(_) => return Ok(None),
                Err(e) => {
                    tracing::debug!(node, pod = %format!("{namespace}/{name}"), error = %e, "look up a reported pod");
                    return Ok(None);
                }
            }
        }
    };
    match node_authorizer::authorize(node, &request(&pod)) {
        Ok(()) => Ok(Some(pod)),
        Err(denied) => {
            log_denied(node, Some(&format!("{namespace}/{name}")), &denied);
            Err(denied)
        }
    }
}

/// Whether the node may register its Node with the labels it says.
fn authorize_node_write(shared: &Shared, node: &str, hello: &Hello) -> Result<(), Denied> {
    let existing = by_kind("v1", "Node")
        .and_then(|rt| shared.registry.try_get(rt, "", &hello.node_name).ok())
        .flatten();
    let old: Option<Map<String, Value>> = existing
        .as_ref()
        .map(|n| meta::labels(n).cloned().unwrap_or_default());
    // `nodes::register` merges the node's labels over the stored ones.
    let mut new = old.clone().unwrap_or_default();
    for (k, v) in &hello.labels {
        new.insert(k.clone(), Value::String(v.clone()));
    }
    node_authorizer::authorize(
        node,
        &NodeRequest::WriteNode {
            name: &hello.node_name,
            old: old.as_ref(),
            new: &new,
        },
    )
}

/// Every refusal is logged alike: which node, which pod, what it tried.
fn log_denied(node: &str, pod: Option<&str>, denied: &Denied) {
    tracing::warn!(
        node,
        pod = pod.unwrap_or("-"),
        action = denied.action,
        reason = %denied.message,
        "node request refused"
    );
}
