//! Hollow nodes, as kubemark's hollow kubelet: a node that joins the cluster
//! over the real QUIC gateway with a token, registers its Node, heartbeats as
//! the agent does, and reports every pod it is given Running and Ready at once,
//! without running anything. They let the control plane (scheduler, gateway,
//! store) be measured against a thousand nodes on one machine.
//!
//! Many hollow nodes share one QUIC [`quinn::Endpoint`] (one UDP socket, one
//! connection per node) and keep no files: the identity from the join stays in
//! memory, and a pod costs its uid and start time.
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr, token: &str) -> Result<(), skiff_node::hollow::HollowError> {
//! use skiff_node::hollow::{HollowConfig, HollowNode, client_endpoint};
//! let endpoint = client_endpoint(addr).map_err(skiff_node::hollow::HollowError::Endpoint)?;
//! let mut nodes = Vec::new();
//! for i in 0..100 {
//!     let config = HollowConfig::new(format!("hollow-{i}"));
//!     nodes.push(HollowNode::start(&endpoint, addr, token, config).await?);
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use skiff_api::join::JoinToken;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::wire::{Downstream, Hello, Reply, Upstream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::agent::{self, AgentError, BACKOFF_MAX, BACKOFF_MIN, HEARTBEAT, frames};
use crate::identity::{Identity, IdentityError};
use crate::node::{DEFAULT_MAX_PODS, NodeConfig};

/// What a hollow node says it runs on, in its Node's `nodeInfo`.
const RUNTIME_VERSION: &str = "hollow://skiff";

/// Why a hollow node could not start.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    #[error(transparent)]
    Token(#[from] skiff_api::join::TokenError),
    #[error("open a QUIC endpoint: {0}")]
    Endpoint(std::io::Error),
    #[error(transparent)]
    Join(#[from] AgentError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// What a hollow node registers: its name, labels and the capacity it offers.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    pub name: String,
    /// Labels set on the Node (besides the well-known ones, which include
    /// `kubernetes.io/hostname`).
    pub labels: BTreeMap<String, String>,
    /// The Node's InternalIP.
    pub address: IpAddr,
    pub max_pods: u32,
    pub memory_bytes: u64,
    pub cpu_millis: u64,
}

impl HollowConfig {
    /// A node of 4 CPUs and 16 GiB that takes as many pods as a real node.
    pub fn new(name: impl Into<String>) -> Self {
        HollowConfig {
            name: name.into(),
            labels: BTreeMap::new(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_pods: DEFAULT_MAX_PODS,
            memory_bytes: 16 << 30,
            cpu_millis: 4000,
        }
    }

    fn hello(&self) -> Hello {
        let mut hello = crate::node::hello(
            &NodeConfig {
                name: self.name.clone(),
                labels: self.labels.clone(),
                address: self.address,
                max_pods: self.max_pods,
                memory_bytes: Some(self.memory_bytes),
                cpu_millis: Some(self.cpu_millis),
                ..NodeConfig::default()
            },
            0,
        );
        // So that `kubectl get nodes -o wide` tells hollow nodes from real ones.
        if let Some(info) = hello.status.get_mut("nodeInfo") {
            info["containerRuntimeVersion"] = json!(RUNTIME_VERSION);
        }
        hello
    }
}

/// A client endpoint for hollow nodes to share, bound to an ephemeral port of
/// the same address family as the control plane's `addr`.
pub fn client_endpoint(addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    skiff_transport::endpoint::client(addr)
}

/// A running hollow node; dropping it ends its session (the control plane
/// then sees the node go silent, as if it had died).
pub struct HollowNode {
    name: String,
    connected: watch::Receiver<bool>,
    pods: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for HollowNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HollowNode {
    /// Joins with `token` (retrying while the control plane cannot be reached)
    /// and starts the node's session over `endpoint`, which many hollow nodes
    /// may share. Returns once joined; [`HollowNode::wait_connected`] waits for
    /// the session.
    pub async fn start(
        endpoint: &quinn::Endpoint,
        control_plane: SocketAddr,
        token: &str,
        config: HollowConfig,
    ) -> Result<HollowNode, HollowError> {
        let token = JoinToken::parse(token)?;
        let mut backoff = BACKOFF_MIN;
        let identity = loop {
            match agent::request_identity(endpoint, control_plane, &token, &config.name).await {
                Ok((pending, joined)) => {
                    break pending.into_identity(&joined.cert_pem, &joined.ca_pem)?;
                }
                Err(AgentError::Link(e)) => {
                    tracing::debug!(node = %config.name, error = %e, "cannot reach the control plane yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let (connected_tx, connected) = watch::channel(false);
        let pods = Arc::new(AtomicUsize::new(0));
        let hollow = Hollow {
            addr: control_plane,
            endpoint: endpoint.clone(),
            identity,
            hello: config.hello(),
            pods: HashMap::new(),
            pod_count: pods.clone(),
            connected: connected_tx,
        };
        Ok(HollowNode {
            name: config.name,
            connected,
            pods,
            task: tokio::spawn(hollow.run()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until a session with the control plane is open.
    pub async fn wait_connected(&self) {
        let mut rx = self.connected.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Whether a session with the control plane is open now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// How many pods the control plane has given this node, now.
    pub fn pods(&self) -> usize {
        self.pods.load(Ordering::Relaxed)
    }
}

/// What a hollow node remembers of a pod.
struct HollowPod {
    /// `status.startTime`, kept so every report of the pod is the same.
    start_time: String,
    /// PodTerminated was sent in this session.
    terminated: bool,
}

/// The session side of a hollow node, owned by its task.
struct Hollow {
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    identity: Identity,
    hello: Hello,
    /// uid -> pod.
    pods: HashMap<String, HollowPod>,
    pod_count: Arc<AtomicUsize>,
    connected: watch::Sender<bool>,
}

impl Hollow {
    /// Keeps a session open, reconnecting with backoff, as the agent does.
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = tokio::time::Instant::now();
            match self.session().await {
                Ok(()) => tracing::debug!(node = %self.hello.node_name, "hollow node: link closed"),
                Err(e) => {
                    tracing::debug!(node = %self.hello.node_name, error = %e, "hollow node: link failed")
                }
            }
            self.connected.send_replace(false);
            if started.elapsed() > BACKOFF_MAX * 2 {
                backoff = BACKOFF_MIN;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn session(&mut self) -> Result<(), AgentError> {
        let mut hello = self.hello.clone();
        hello.running = self.pods.keys().cloned().collect();
        // A hollow node gives its pods no addresses: it ignores its pod CIDR.
        let (connection, mut send, mut recv, _pod_cidr) =
            agent::open_session(&self.endpoint, self.addr, &self.identity, hello, "").await?;
        self.connected.send_replace(true);
        // A new session: deletions not yet seen through are said again.
        for pod in self.pods.values_mut() {
            pod.terminated = false;
        }
        let link = |e: &dyn std::fmt::Display| AgentError::Link(e.to_string());
        let (tx, mut rx) = mpsc::unbounded_channel::<Upstream>();
        let Hollow {
            pods, pod_count, ..
        } = self;
        // Reading stays in one future for the whole session: a frame read is
        // not cancel-safe, so it must never lose a race in a select loop.
        let downstream = async {
            while let Some(message) = frames::read::<Downstream>(&mut recv)
                .await
                .map_err(|e| link(&e))?
            {
                apply(pods, message, &tx);
                pod_count.store(pods.len(), Ordering::Relaxed);
            }
            Ok(())
        };
        let upstream = async {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                let frame = tokio::select! {
                    _ = tick.tick() => Upstream::Heartbeat,
                    Some(frame) = rx.recv() => frame,
                };
                frames::write(&mut send, &frame)
                    .await
                    .map_err(|e| link(&e))?;
            }
        };
        let calls = refuse_calls(&connection);
        let result = tokio::select! {
            r = downstream => r,
            r = upstream => r,
            () = calls => Ok(()),
        };
        connection.close(quinn::VarInt::from_u32(0), b"session over");
        result
    }
}

/// Takes what the control plane says the node runs; queues what to report.
fn apply(
    pods: &mut HashMap<String, HollowPod>,
    message: Downstream,
    out: &mpsc::UnboundedSender<Upstream>,
) {
    match message {
        Downstream::Snapshot { pods: list } => {
            let keep: std::collections::HashSet<&str> =
                list.iter().filter_map(|p| meta::uid(p)).collect();
            pods.retain(|uid, _| keep.contains(uid.as_str()));
            for pod in &list {
                observe(pods, pod, out);
            }
        }
        Downstream::Upsert { pod } => observe(pods, &pod, out),
        Downstream::Remove { uid } => {
            pods.remove(&uid);
        }
        // A hollow node proxies nothing.
        Downstream::RoutingSnapshot { .. }
        | Downstream::RoutingUpsert { .. }
        | Downstream::RoutingRemove { .. }
        | Downstream::ObjectUpsert { .. }
        | Downstream::ObjectRemove(_)
        | Downstream::ObjectsHeld { .. }
        | Downstream::Revoked { .. } => {}
        Downstream::Denied { code, message } => {
            tracing::warn!(code, %message, "the control plane refused a report from a hollow node");
        }
    }
}

/// One pod as the control plane sees it now: a deletion is over at once; any
/// other pod that does not show Running and Ready is reported so.
fn observe(
    pods: &mut HashMap<String, HollowPod>,
    pod: &Value,
    out: &mpsc::UnboundedSender<Upstream>,
) {
    let (Some(uid), Some(namespace), Some(name)) =
        (meta::uid(pod), meta::namespace(pod), meta::name(pod))
    else {
        return;
    };
    let entry = pods.entry(uid.to_string()).or_insert_with(|| HollowPod {
        start_time: pod
            .at("/status/startTime")
            .and_then(Value::as_str)
            .map_or_else(meta::now_timestamp, str::to_string),
        terminated: false,
    });
    if meta::deletion_timestamp(pod).is_some() {
        if !std::mem::replace(&mut entry.terminated, true) {
            let _ = out.send(Upstream::PodTerminated {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid: uid.to_string(),
            });
        }
        return;
    }
    // Level-triggered, like a kubelet: the pod's own status update comes back
    // as a change and is then left alone, while a pod someone else marked not
    // ready (a lost link) is reported again.
    if is_running_and_ready(pod) {
        return;
    }
    let _ = out.send(Upstream::PodStatus {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        status: running_status(pod, &entry.start_time),
    });
}

fn is_running_and_ready(pod: &Value) -> bool {
    pod.at("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .at("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|list| {
                list.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Ready")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
}

/// The status a kubelet reports for a pod whose containers all started at
/// `start_time` and are ready (init containers completed).
fn running_status(pod: &Value, start_time: &str) -> Value {
    let uid = meta::uid(pod).unwrap_or_default();
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": start_time});
    let containers = |key: &str, state: Value| -> Vec<Value> {
        pod.at(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|c| {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                        json!({
                            "name": name,
                            "state": state,
                            "lastState": {},
                            "ready": true,
                            "restartCount": 0,
                            "image": c.get("image").cloned().unwrap_or(Value::Null),
                            "imageID": "",
                            "containerID": format!("hollow://{uid}/{name}"),
                            "started": state.get("terminated").is_none(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers"),
            condition("Initialized"),
            condition("Ready"),
            condition("ContainersReady"),
            condition("PodScheduled"),
        ],
        "startTime": start_time,
        "containerStatuses": containers("containers", json!({"running": {"startedAt": start_time}})),
        "qosClass": pod
            .at("/status/qosClass")
            .cloned()
            .unwrap_or_else(|| json!(skiff_api::defaults::qos_class(pod))),
    });
    let init = containers(
        "initContainers",
        json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start_time, "finishedAt": start_time}}),
    );
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init);
    }
    status
}

/// Answers the control plane's calls (logs, HTTP to a pod): a hollow node has
/// nothing to serve.
async fn refuse_calls(connection: &quinn::Connection) {
    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
        tokio::spawn(async move {
            // Read the call first, so the caller gets the answer, not a reset.
            let _ = frames::expect::<skiff_api::wire::Open>(&mut recv).await;
            let reply = Reply::Refused {
                code: 503,
                message: "this is a hollow node: it runs no pods".into(),
            };
            let _ = frames::write(&mut send, &reply).await;
            let _ = send.finish();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: Value) -> Value {
        let mut p = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "h1", "containers": [{"name": "c", "image": "hello:v1"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        });
        skiff_api::patch::merge_patch(&mut p, &extra);
        p
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Upstream>) -> Vec<Upstream> {
        let mut out = Vec::new();
        while let Ok(f) = rx.try_recv() {
            out.push(f);
        }
        out
    }

    #[test]
    fn a_new_pod_is_reported_running_and_ready_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut pods = HashMap::new();
        apply(
            &mut pods,
            Downstream::Upsert {
                pod: pod(json!({})),
            },
            &tx,
        );
        let frames = drain(&mut rx);
        let [Upstream::PodStatus { uid, status, .. }] = frames.as_slice() else {
            panic!("one status report expected: {frames:?}");
        };
        assert_eq!(uid, "u1");
        assert_eq!(status["phase"], "Running");
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            status["startTime"]
        );
        assert_eq!(status["containerStatuses"][0]["ready"], true);
        assert_eq!(status["qosClass"], "BestEffort");
        // The pod's own update comes back: nothing more to say.
        let mut reported = pod(json!({}));
        reported["status"] = status.clone();
        apply(&mut pods, Downstream::Upsert { pod: reported }, &tx);
        assert!(drain(&mut rx).is_empty());
        assert!(is_running_and_ready(&pod(
            json!({"status": status.clone()})
        )));
    }

    #[test]
    fn deletion_is_acknowledged_once_and_remove_forgets() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut pods = HashMap::new();
        let deleting = pod(json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}));
        apply(
            &mut pods,
            Downstream::Upsert {
                pod: deleting.clone(),
            },
            &tx,
        );
        apply(&mut pods, Downstream::Upsert { pod: deleting }, &tx);
        let frames = drain(&mut rx);
        assert!(
            matches!(frames.as_slice(), [Upstream::PodTerminated { uid, .. }] if uid == "u1"),
            "{frames:?}"
        );
        apply(&mut pods, Downstream::Remove { uid: "u1".into() }, &tx);
        assert!(pods.is_empty());
    }

    #[test]
    fn a_snapshot_replaces_what_the_node_holds() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut pods = HashMap::new();
        apply(
            &mut pods,
            Downstream::Upsert {
                pod: pod(json!({})),
            },
            &tx,
        );
        let other = pod(json!({"metadata": {"name": "db", "uid": "u2"}}));
        apply(&mut pods, Downstream::Snapshot { pods: vec![other] }, &tx);
        assert_eq!(pods.keys().collect::<Vec<_>>(), vec!["u2"]);
        assert_eq!(drain(&mut rx).len(), 2);
    }

    #[test]
    fn the_hello_offers_the_configured_capacity() {
        let mut config = HollowConfig::new("h7");
        config.cpu_millis = 2500;
        config.memory_bytes = 1 << 30;
        let hello = config.hello();
        assert_eq!(hello.labels["kubernetes.io/hostname"], "h7");
        assert_eq!(hello.status["allocatable"]["cpu"], "2500m");
        assert_eq!(hello.status["allocatable"]["memory"], "1048576Ki");
        assert_eq!(
            hello.status["nodeInfo"]["containerRuntimeVersion"],
            RUNTIME_VERSION
        );
    }
}
