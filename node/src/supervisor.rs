//! The pod supervisor: the kubelet's job. Given the pods bound to this node, it
//! pulls their components, runs their containers in the runtime, probes them,
//! restarts them per `restartPolicy` with back-off, stops them gracefully, and
//! reports every change of status and every Event a user must see.
//!
//! Each pod runs in a task of its own (`pod`); each of its containers runs a loop
//! (`container`): pull, configure (`spec`), start, watch (`probe`, `serving`), and
//! restart with back-off (`backoff`). Statuses (`status`) and Events (`events`)
//! reach the agent as [`Report`]s; a stop (`stop`) carries a deadline.
//!
//! The public items are the interface the agent codes against.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use skiff_api::component::ReferenceError;
use skiff_runtime::{Component, Engine, LogBuffer, RuntimeError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod addresses;
mod backoff;
mod container;
mod events;
pub mod host_path;
mod objects;
mod pod;
mod probe;
mod projection;
mod serving;
mod spec;
mod status;
mod stop;

pub use objects::PodObjects;
use pod::PodCtx;
use stop::StopKind;

/// Gives each pod its outbound HTTP hook: the node's proxy, which routes
/// Service names and applies the pod's allowed outside hosts.
pub trait OutboundRouter: Send + Sync + 'static {
    /// The hook for `pod`, whose address is `pod_ip`.
    fn for_pod(
        &self,
        pod: &Pod,
        pod_ip: Option<std::net::IpAddr>,
    ) -> Arc<dyn skiff_runtime::OutboundHttp>;
}

/// The router, set once the proxy is up; pods started before have none
/// (their outbound HTTP is refused).
type OutboundSlot = Arc<std::sync::OnceLock<Arc<dyn OutboundRouter>>>;

/// How the supervisor runs pods.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// This node's name (`spec.nodeName` of its pods; Events' `source.host`).
    pub node_name: String,
    /// Where pod files live: `<dir>/<pod uid>/...` (log files, emptyDir volumes).
    pub pods_dir: PathBuf,
    /// First restart delay of a failing container; it doubles per restart
    /// (Kubernetes: 10 s).
    pub restart_backoff_base: Duration,
    /// Longest restart delay (Kubernetes: 5 min).
    pub restart_backoff_max: Duration,
    /// The node's address (pods' `status.hostIP`).
    pub host_ip: Option<std::net::IpAddr>,
    /// Which host directories hostPath volumes may mount (none by default).
    pub host_paths: host_path::HostPathPolicy,
    /// What the node offers its pods, as its Node's `allocatable` says.
    pub allocatable: Allocatable,
    /// A directory on a memory file system (tmpfs) for the files of volumes
    /// that may hold Secrets, which never go to disk: `<dir>/<pod uid>/...`.
    /// `None`: such volumes cannot be mounted on this node.
    pub memory_dir: Option<PathBuf>,
}

/// What a node offers its pods: a container's limits where it sets none, as
/// the downward API (`resourceFieldRef`) reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// The size of the file system under the node's data directory (0 when
    /// unknown).
    pub ephemeral_storage_bytes: u64,
}

impl Default for Allocatable {
    fn default() -> Self {
        Allocatable {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 0,
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            node_name: String::new(),
            pods_dir: PathBuf::new(),
            restart_backoff_base: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(300),
            host_ip: None,
            host_paths: host_path::HostPathPolicy::default(),
            allocatable: Allocatable::default(),
            memory_dir: None,
        }
    }
}

/// A component pulled for a container.
#[derive(Clone)]
pub struct PulledImage {
    /// The compiled component.
    pub component: Component,
    /// `sha256:<hex>`: the container status's `imageID`.
    pub image_id: String,
    /// Whether it was already on this node (Kubernetes' "already present on machine").
    pub was_present: bool,
}

/// Why a component could not be pulled; the message is shown to the user in
/// the container's waiting state and its Events.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The image is not a component reference.
    #[error("invalid image {image:?}: {source}")]
    InvalidImage {
        image: String,
        source: ReferenceError,
    },
    /// The control plane is away and this node has no copy.
    #[error("cannot pull {image}: not connected to the control plane")]
    NotConnected { image: String },
    /// The control plane refused the pull (e.g. no such component); its words.
    #[error("{0}")]
    Refused(String),
    /// Fetching from the control plane failed, or brought the wrong bytes.
    #[error("pull {image}: {source}")]
    Transfer {
        image: String,
        source: crate::images::TransferError,
    },
    /// The component's file on this node could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Disk {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A digest that does not name a file: not `sha256:` and 64 hex digits.
    #[error("malformed digest {0}")]
    MalformedDigest(String),
    /// The component does not compile.
    #[error("compile {digest}: {source}")]
    Compile {
        digest: String,
        source: RuntimeError,
    },
}

/// A boxed future, as [`ImageSource::pull`] returns.
pub type PullFuture<'a> = Pin<Box<dyn Future<Output = Result<PulledImage, PullError>> + Send + 'a>>;

/// Where components come from: the agent fetches them from the control plane
/// by digest and caches them on disk.
pub trait ImageSource: Send + Sync + 'static {
    /// Resolve `image` (`name:tag` or `sha256:<hex>`) and return it compiled. The
    /// error message is shown to the user in the container's waiting state.
    fn pull<'a>(&'a self, image: &'a str) -> PullFuture<'a>;
}

/// What the supervisor tells the agent.
#[derive(Debug, Clone)]
pub enum Report {
    /// The pod's complete new `status` (a `PodStatus` as JSON).
    Status {
        namespace: String,
        name: String,
        uid: String,
        status: serde_json::Value,
    },
    /// An Event about a pod.
    Event(PodEvent),
    /// A pod marked for deletion has stopped all its containers: the agent
    /// removes its object (Kubernetes' kubelet deletes with grace period 0).
    Terminated {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// An Event about a pod (`involvedObject` is the pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// `spec.containers{NAME}` or `spec.initContainers{NAME}`, when about a container.
    pub field_path: Option<String>,
    /// `Normal` or `Warning`.
    pub event_type: &'static str,
    /// `Pulled`, `Created`, `Started`, `BackOff`, `Unhealthy`, `Killing`, `Failed`...
    pub reason: &'static str,
    pub message: String,
}

/// Why a request for a pod's log or a pod's HTTP handler failed; the message is
/// shown to the user (the API answers with it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PodAccessError {
    /// No such pod on this node (404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served as asked (400), e.g. a container name is
    /// needed, or there is no previous instance.
    #[error("{0}")]
    BadRequest(String),
    /// The pod cannot serve it now (503), e.g. not running or terminating: the
    /// request did not reach it, so a proxy may try another pod.
    #[error("{0}")]
    Unavailable(String),
    /// The pod got the request and failed it (a trap, a timeout, stopped
    /// before it answered): not safe to send again elsewhere.
    #[error("{0}")]
    Failed(String),
}

/// Runs the pods bound to this node.
///
/// Each pod gets a task; the supervisor keeps an index of them by uid and by
/// namespace and name, so that [`PodSupervisor::serve`] and
/// [`PodSupervisor::logs`] find a pod without asking its task. Dropping the
/// supervisor ends every pod at once.
pub struct PodSupervisor {
    engine: Engine,
    images: Arc<dyn ImageSource>,
    reports: mpsc::UnboundedSender<Report>,
    config: Arc<SupervisorConfig>,
    runtime: tokio::runtime::Handle,
    registry: Mutex<Registry>,
    outbound: OutboundSlot,
    objects: Arc<PodObjects>,
}

/// The pods this supervisor knows.
#[derive(Default)]
struct Registry {
    by_uid: HashMap<String, Entry>,
    /// `(namespace, name)` to uids: a deleted pod and its replacement (a
    /// StatefulSet's) may share a name for a while.
    by_name: HashMap<(String, String), Vec<String>>,
    addresses: addresses::PodAddresses,
}

struct Entry {
    ctx: Arc<PodCtx>,
    task: JoinHandle<()>,
}

impl Registry {
    fn insert(&mut self, entry: Entry) {
        let key = (entry.ctx.namespace.clone(), entry.ctx.name.clone());
        self.by_name
            .entry(key)
            .or_default()
            .push(entry.ctx.uid.clone());
        self.by_uid.insert(entry.ctx.uid.clone(), entry);
    }

    fn remove(&mut self, uid: &str) -> Option<Entry> {
        let entry = self.by_uid.remove(uid)?;
        self.addresses.release(uid);
        let key = (entry.ctx.namespace.clone(), entry.ctx.name.clone());
        if let Some(uids) = self.by_name.get_mut(&key) {
            uids.retain(|u| u != uid);
            if uids.is_empty() {
                self.by_name.remove(&key);
            }
        }
        Some(entry)
    }

    /// The pod called `namespace/name`: the one not stopping if there are several.
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<PodCtx>> {
        let uids = self
            .by_name
            .get(&(namespace.to_string(), name.to_string()))?;
        let pods = uids
            .iter()
            .filter_map(|u| self.by_uid.get(u))
            .map(|e| &e.ctx);
        let mut last = None;
        for ctx in pods {
            if !ctx.is_stopping() {
                return Some(ctx.clone());
            }
            last = Some(ctx.clone());
        }
        last
    }
}

/// A uid that is safe to use as a directory name.
fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid != "."
        && uid != ".."
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Locks whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PodSupervisor {
    /// A supervisor running pods with `engine`, pulling from `images`, and
    /// reporting on `reports`. Must be called inside a tokio runtime.
    pub fn new(
        engine: Engine,
        images: Arc<dyn ImageSource>,
        reports: mpsc::UnboundedSender<Report>,
        config: SupervisorConfig,
    ) -> Self {
        Self {
            engine,
            images,
            reports,
            config: Arc::new(config),
            runtime: tokio::runtime::Handle::current(),
            registry: Mutex::default(),
            outbound: OutboundSlot::default(),
            objects: Arc::default(),
        }
    }

    /// The ConfigMaps and Secrets this node holds for its pods: the agent
    /// fills it from what the control plane sends.
    pub fn objects(&self) -> &Arc<PodObjects> {
        &self.objects
    }

    /// The complete set of pods bound to this node (a snapshot): pods not yet
    /// running start; pods whose spec is unchanged keep running untouched (by
    /// uid); pods absent from the set stop (with their grace period).
    pub fn sync(&self, pods: Vec<Pod>) {
        let keep: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        for pod in pods {
            self.upsert(pod);
        }
        let gone: Vec<Entry> = {
            let mut reg = lock(&self.registry);
            let uids: Vec<String> = reg
                .by_uid
                .keys()
                .filter(|u| !keep.contains(*u))
                .cloned()
                .collect();
            uids.iter().filter_map(|u| reg.remove(u)).collect()
        };
        for entry in gone {
            let grace = PodCtx::termination_grace(&entry.ctx.pod());
            entry.ctx.begin_stop(StopKind::Remove, grace);
        }
    }

    /// One pod added or changed. A `deletionTimestamp` starts a graceful stop.
    pub fn upsert(&self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !valid_uid(&uid) {
            tracing::warn!(pod = ?pod.metadata.name, uid, "ignoring a pod without a usable uid");
            return;
        }
        let mut reg = lock(&self.registry);
        if let Some(entry) = reg.by_uid.get(&uid) {
            // A pod that has finished after its deletion stays finished.
            if !entry.ctx.is_done() {
                entry.ctx.apply(pod);
            }
            return;
        }
        let deletion = pod
            .metadata
            .deletion_timestamp
            .is_some()
            .then(|| PodCtx::deletion_grace(&pod));
        let preferred = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let ip = reg.addresses.assign(&uid, preferred);
        let ctx = PodCtx::new(self, pod, ip);
        if let Some(grace) = deletion {
            ctx.begin_stop(StopKind::Delete, grace);
        }
        let task = self.runtime.spawn(pod::run(ctx.clone()));
        reg.insert(Entry { ctx, task });
    }

    /// Where pods' outbound HTTP goes (the node's proxy). Set it before
    /// starting pods: a pod takes its hook when its container starts.
    pub fn set_outbound(&self, router: Arc<dyn OutboundRouter>) {
        if self.outbound.set(router).is_err() {
            tracing::warn!("the outbound router was already set; keeping the first");
        }
    }

    /// The node's pod CIDR (from the control plane): pods get addresses from
    /// it, including those already running without one.
    pub fn set_pod_cidr(&self, cidr: ipnet::Ipv4Net) {
        let mut reg = lock(&self.registry);
        if !reg.addresses.set_cidr(cidr) {
            return;
        }
        let uids: Vec<String> = reg.by_uid.keys().cloned().collect();
        for uid in uids {
            let ip = reg.addresses.assign(&uid, None);
            if let Some(entry) = reg.by_uid.get(&uid) {
                entry.ctx.update(|st| st.status.pod_ip = ip);
            }
        }
    }

    /// The address of the pod with `uid`, if it has one.
    pub fn pod_ip(&self, uid: &str) -> Option<std::net::Ipv4Addr> {
        lock(&self.registry).addresses.get(uid)
    }

    /// A pod is no longer bound here (its object is gone): stop it now.
    pub fn remove(&self, uid: &str) {
        let entry = lock(&self.registry).remove(uid);
        if let Some(entry) = entry {
            entry.ctx.begin_stop(StopKind::Remove, Duration::ZERO);
        }
    }

    /// The log of a container of a pod (`container` may be omitted when the pod
    /// has one container); `previous` asks for the instance before the last restart.
    ///
    /// The buffer is the container instance's own: it is closed when that
    /// instance ends, which is how a follower (`kubectl logs -f`) knows to stop.
    pub fn logs(
        &self,
        namespace: &str,
        name: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogBuffer, PodAccessError> {
        let ctx = lock(&self.registry)
            .find(namespace, name)
            .ok_or_else(|| PodAccessError::NotFound(format!("pods \"{name}\" not found")))?;
        ctx.logs(container, previous)
    }

    /// Hand an HTTP request to a pod's HTTP container (the one declaring `port`,
    /// or the first HTTP container when `port` is `None`), as the pod proxy and
    /// (later) the Service proxy do. Counted as in flight for graceful draining.
    ///
    /// A request the guest fails (a trap, a timeout, too many in flight) is
    /// [`PodAccessError::Failed`] with the runtime's message, as a proxy
    /// answers 502/503 for a backend that broke off.
    pub async fn serve(
        &self,
        namespace: &str,
        name: &str,
        port: Option<u16>,
        request: http::Request<skiff_runtime::Body>,
    ) -> Result<http::Response<skiff_runtime::Body>, PodAccessError> {
        let ctx = lock(&self.registry)
            .find(namespace, name)
            .ok_or_else(|| PodAccessError::NotFound(format!("pods \"{name}\" not found")))?;
        let serving = ctx.serving_for(port)?;
        let Some(in_flight) = serving.enter() else {
            return Err(PodAccessError::Unavailable(format!(
                "pod {namespace}/{name} is terminating"
            )));
        };
        match serving.handle_unless_killed(request).await {
            Some(Ok(response)) => Ok(response.map(|body| in_flight.hold(body))),
            Some(Err(e)) => Err(PodAccessError::Failed(e.to_string())),
            None => Err(PodAccessError::Failed(format!(
                "pod {namespace}/{name} was stopped before it answered"
            ))),
        }
    }

    /// Stop every pod (the node is shutting down), each within its grace period.
    pub async fn shutdown(&self) {
        let pods: Vec<Arc<PodCtx>> = {
            let mut reg = lock(&self.registry);
            let all = std::mem::take(&mut *reg);
            all.by_uid.into_values().map(|e| e.ctx).collect()
        };
        for ctx in &pods {
            ctx.begin_stop(StopKind::Shutdown, PodCtx::termination_grace(&ctx.pod()));
        }
        futures::future::join_all(pods.iter().map(|ctx| ctx.wait_done())).await;
    }
}

impl Drop for PodSupervisor {
    fn drop(&mut self) {
        let reg = std::mem::take(&mut *lock(&self.registry));
        for entry in reg.by_uid.into_values() {
            entry.ctx.reporter.mute();
            entry.ctx.kill_now();
            entry.task.abort();
        }
    }
}
