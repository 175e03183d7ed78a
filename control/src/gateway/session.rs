//! One node's session: the first stream of a mutual-TLS connection. The node says
//! hello (its name must match its certificate), its Node object is registered, it
//! receives its pods (a snapshot, then changes), and it reports pod status,
//! Events and finished deletions until the connection ends.

use std::time::Duration;

use skiff_api::wire::{Downstream, Hello, PROTOCOL_VERSION, Reply, Upstream};

use super::{Shared, frames, join, nodes, reports};

/// How often a connected node's `lastHeartbeatTime` is written to its Node.
const NODE_STATUS_INTERVAL: Duration = Duration::from_secs(20);

/// Runs a session on `(send, recv)` for the node whose certificate names `node`.
pub async fn run(
    shared: &Shared,
    connection: &quinn::Connection,
    node: &str,
    hello: Hello,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), String> {
    let refuse = |code, message: String| Reply::Refused { code, message };
    if hello.version != PROTOCOL_VERSION {
        let reply = refuse(400, join::version_mismatch(hello.version));
        let _ = frames::write(&mut send, &reply).await;
        return Err(format!("protocol version {}", hello.version));
    }
    if hello.node_name != node {
        let message = format!(
            "this certificate is for node {node:?}, not {:?}: a node keeps the name it joined with",
            hello.node_name
        );
        let _ = frames::write(&mut send, &refuse(403, message.clone())).await;
        return Err(message);
    }
    if let Err(e) = nodes::register(&shared.registry, &hello).await {
        let _ = frames::write(&mut send, &refuse(500, format!("register the node: {e}"))).await;
        return Err(e.to_string());
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
    .await
    .map_err(|e| e.to_string())?;
    let session_id = shared.sessions.insert(node, connection.clone());
    shared.liveness.seen(node);
    tracing::info!(node, "node session open");

    let mut pods = shared.dispatcher.subscribe(node);
    let mut routing = shared.routing.subscribe();
    let downstream = async move {
        loop {
            let message = tokio::select! {
                m = pods.changes.recv() => m,
                m = routing.changes.recv() => m,
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
                    shared.liveness.seen(node);
                    handle(shared, node, frame);
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
    shared.sessions.remove(node, session_id);
    shared.liveness.disconnected(node);
    match result {
        Ok(()) => Ok(()),
        Err(frames::StreamError::Frame(e)) => {
            // A peer that breaks the framing loses its connection, nothing else.
            connection.close(quinn::VarInt::from_u32(1), b"malformed frame");
            Err(e.to_string())
        }
        Err(frames::StreamError::Unsubscribed) => {
            connection.close(
                quinn::VarInt::from_u32(4),
                b"behind on its updates: reconnect for a full resync",
            );
            Err(frames::StreamError::Unsubscribed.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn handle(shared: &Shared, node: &str, frame: Upstream) {
    match frame {
        Upstream::Heartbeat => {}
        Upstream::PodStatus {
            namespace,
            name,
            uid,
            status,
        } => shared.statuses.report(namespace, name, uid, status),
        Upstream::PodTerminated {
            namespace,
            name,
            uid,
        } => {
            let registry = shared.registry.clone();
            tokio::spawn(async move {
                reports::pod_terminated(&registry, &namespace, &name, &uid).await;
            });
        }
        Upstream::Event(event) => shared.events.report(node, event),
    }
}
