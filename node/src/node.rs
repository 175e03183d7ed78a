//! A node, as a library: `Node::builder()...start()` joins a control plane and
//! runs the pods it is given. `skiff node` and `skiff up` are thin wrappers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_node::NodeError> {
//! let node = skiff_node::Node::builder()
//!     .name("edge-1")
//!     .control_plane("127.0.0.1:6443".parse().unwrap())
//!     .token("skiff1:<ca hash>:<id>.<secret>")
//!     .data_dir("/var/lib/skiff-node")
//!     .label("zone", "shop-floor")
//!     .start()
//!     .await?;
//! node.wait_connected().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::join::JoinToken;
use skiff_api::wire::{Hello, PROTOCOL_VERSION};
use skiff_runtime::{Engine, EngineConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::agent::{self, Agent, AgentError};
use crate::identity::IdentityDir;
use crate::images::NodeImages;
use crate::outbox::Outbox;
use crate::state::LocalPods;
use crate::supervisor::host_path::{AllowedHostPath, HostPathPolicy};
use crate::supervisor::{Allocatable, PodSupervisor, SupervisorConfig};

/// The node proxy's peer port (UDP): the kubelet's port in Kubernetes.
pub const DEFAULT_PROXY_PORT: u16 = 10250;
/// The TCP port a node serves metrics at unless told otherwise (kube-proxy's).
pub const DEFAULT_METRICS_PORT: u16 = 10249;

/// The node's HTTP port (TCP), where it serves the cluster's Ingresses, as
/// `skiff node` and `skiff up` open it unless told otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Kubernetes' default pod limit is 110 per node; a Wasm pod costs far less.
pub const DEFAULT_MAX_PODS: u32 = 1000;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("a node needs a name (`--name`)")]
    NoName,
    #[error("a node needs the control plane's address (`--join ADDR`)")]
    NoControlPlane,
    #[error(
        "this node has not joined a cluster yet: give it a token (`--token`; create one with `skiff token create`)"
    )]
    NoToken,
    #[error(transparent)]
    Token(#[from] skiff_api::join::TokenError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("start the runtime: {0}")]
    Runtime(#[from] skiff_runtime::RuntimeError),
    #[error("open a QUIC endpoint: {0}")]
    Endpoint(std::io::Error),
    #[error(transparent)]
    Join(#[from] AgentError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    #[error(transparent)]
    HostPath(#[from] crate::supervisor::host_path::HostPathError),
}

/// How a node runs; built with [`Node::builder`].
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// The control plane's node gateway (UDP).
    pub control_plane: Option<SocketAddr>,
    /// A join token, needed only until the node has its certificate.
    pub token: Option<String>,
    /// Identity, components, compiled cache, pod records and logs.
    pub data_dir: PathBuf,
    /// Labels set on the Node object (besides the well-known ones).
    pub labels: BTreeMap<String, String>,
    /// The node's address (its Node's InternalIP; where its proxy listens).
    pub address: IpAddr,
    /// The UDP port other nodes' proxies reach this one at (on `address`);
    /// 0 picks a free one. Reported as the Node's
    /// `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub proxy_port: u16,
    /// The TCP port (on `address`) serving Prometheus metrics at `/metrics`;
    /// 0 picks a free one, `None` serves none. A port in use is logged and
    /// the node runs without metrics.
    pub metrics_port: Option<u16>,
    /// The TCP port (on `address`) where the node serves the cluster's
    /// Ingresses; 0 picks a free one, `None` opens none.
    pub http_port: Option<u16>,
    /// Most pods at once (the Node's `pods` capacity).
    pub max_pods: u32,
    /// Memory capacity reported; `None` reads the machine's.
    pub memory_bytes: Option<u64>,
    /// CPU capacity in millicores; `None` counts the machine's cores.
    pub cpu_millis: Option<u64>,
    /// First restart delay of a failing container (doubles up to 5 min).
    pub restart_backoff: Duration,
    /// Host directories pods may mount through hostPath volumes (none by
    /// default; read-only unless `writable`).
    pub allowed_host_paths: Vec<AllowedHostPath>,
    /// Directories besides `data_dir` that no hostPath may reach (the
    /// control plane's, when one process runs both).
    pub protected_dirs: Vec<PathBuf>,
    /// A directory on a memory file system (tmpfs) for the files of volumes
    /// that may hold Secrets, which never go to disk. `None`:
    /// `/dev/shm/skiff-node-<hash of the data directory>` when `/dev/shm`
    /// is one. Emptied when the node starts.
    pub memory_dir: Option<PathBuf>,
    /// Compile components in a child process running this program (the
    /// `skiff` binary), so that the compiler never stays resident in the
    /// node; `None` compiles in process, as a program embedding a node does.
    pub compile_with: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: String::new(),
            control_plane: None,
            token: None,
            data_dir: PathBuf::from("skiff-node"),
            labels: BTreeMap::new(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            proxy_port: DEFAULT_PROXY_PORT,
            metrics_port: None,
            // A library node serves Ingresses only when asked: two nodes in
            // one program must not both want one port.
            http_port: None,
            max_pods: DEFAULT_MAX_PODS,
            memory_bytes: None,
            cpu_millis: None,
            restart_backoff: Duration::from_secs(10),
            allowed_host_paths: Vec::new(),
            protected_dirs: Vec::new(),
            memory_dir: None,
            compile_with: None,
        }
    }
}

/// Builds a [`Node`].
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    config: NodeConfig,
}

impl NodeBuilder {
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }
    pub fn control_plane(mut self, addr: SocketAddr) -> Self {
        self.config.control_plane = Some(addr);
        self
    }
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into());
        self
    }
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = dir.into();
        self
    }
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.labels.insert(key.into(), value.into());
        self
    }
    pub fn address(mut self, address: IpAddr) -> Self {
        self.config.address = address;
        self
    }
    pub fn proxy_port(mut self, port: u16) -> Self {
        self.config.proxy_port = port;
        self
    }
    pub fn metrics_port(mut self, port: u16) -> Self {
        self.config.metrics_port = Some(port);
        self
    }
    /// Serves the cluster's Ingresses on `address:port` (TCP; 0 picks a
    /// free port, see [`Node::http_addr`]).
    pub fn http_port(mut self, port: u16) -> Self {
        self.config.http_port = Some(port);
        self
    }
    pub fn max_pods(mut self, max_pods: u32) -> Self {
        self.config.max_pods = max_pods;
        self
    }
    pub fn restart_backoff(mut self, base: Duration) -> Self {
        self.config.restart_backoff = base;
        self
    }
    /// Lets pods mount `path` (and what is under it) through hostPath
    /// volumes, read-write only if `writable`.
    pub fn allow_host_path(mut self, path: impl Into<PathBuf>, writable: bool) -> Self {
        self.config.allowed_host_paths.push(AllowedHostPath {
            path: path.into(),
            writable,
        });
        self
    }
    /// Replaces the whole configuration.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }
    /// Joins (when it has no certificate yet) and starts running pods.
    pub async fn start(self) -> Result<Node, NodeError> {
        Node::start(self.config).await
    }
}

/// A running node. Dropping it stops its agent; [`Node::shutdown`] also stops
/// its pods gracefully.
pub struct Node {
    name: String,
    supervisor: Arc<PodSupervisor>,
    connected: watch::Receiver<bool>,
    http_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    endpoint: quinn::Endpoint,
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"node stopping");
    }
}

impl Node {
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the node serves the cluster's Ingresses (its HTTP port), if it
    /// does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
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

    /// Stops every pod within its grace period, then the agent.
    pub async fn shutdown(self) {
        self.supervisor.shutdown().await;
    }

    async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        if config.name.is_empty() {
            return Err(NodeError::NoName);
        }
        let addr = config.control_plane.ok_or(NodeError::NoControlPlane)?;
        let io = |action, path: PathBuf| {
            move |source| NodeError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io("create", config.data_dir.clone()))?;
        let endpoint = skiff_transport::endpoint::client(addr).map_err(NodeError::Endpoint)?;

        let identity_dir = IdentityDir::new(&config.data_dir);
        let identity = match identity_dir.load()? {
            Some(identity) => identity,
            None => {
                let token = config.token.as_deref().ok_or(NodeError::NoToken)?;
                let token = JoinToken::parse(token)?;
                join_with_retry(&endpoint, addr, &token, &config.name, &identity_dir).await?
            }
        };

        let engine = Engine::new(EngineConfig {
            cache_dir: Some(config.data_dir.join("compiled")),
            compile_with: config.compile_with.clone(),
            ..EngineConfig::default()
        })?;
        let (connection_tx, connection_rx) = watch::channel(None);
        let (connected_tx, connected_rx) = watch::channel(false);
        let images = NodeImages::open(
            engine.clone(),
            &config.data_dir.join("components"),
            connection_rx,
        )
        .map_err(io("open", config.data_dir.join("components")))?;
        let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
        let outbox = Arc::new(Outbox::default());
        let forward = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                while let Some(report) = reports_rx.recv().await {
                    outbox.push(report);
                }
            })
        };
        let protected: Vec<PathBuf> = std::iter::once(config.data_dir.clone())
            .chain(config.protected_dirs.iter().cloned())
            .collect();
        let host_paths = HostPathPolicy::new(&config.allowed_host_paths, &protected)?;
        let supervisor = Arc::new(PodSupervisor::new(
            engine,
            Arc::new(images),
            reports_tx,
            SupervisorConfig {
                node_name: config.name.clone(),
                pods_dir: config.data_dir.join("pods"),
                restart_backoff_base: config.restart_backoff,
                host_ip: Some(config.address),
                host_paths,
                allocatable: allocatable(&config),
                memory_dir: memory_dir(&config),
                ..SupervisorConfig::default()
            },
        ));
        if let Some(cidr) = identity_dir.pod_cidr() {
            supervisor.set_pod_cidr(cidr);
        }
        // Before any pod starts: a port in use fails the start cleanly.
        let mut registry = prometheus_client::registry::Registry::default();
        let proxy = Arc::new(crate::proxy::Proxy::start(
            &config.name,
            config.address,
            config.proxy_port,
            config.http_port,
            &identity,
            supervisor.clone(),
            &mut registry,
        )?);
        let http_addr = proxy.http_addr();
        let mut tasks = Vec::new();
        if let Some(port) = config.metrics_port {
            let addr = SocketAddr::new(config.address, port);
            match crate::metrics::serve(addr, Arc::new(registry)).await {
                Ok((addr, task)) => {
                    tracing::info!(%addr, "serving metrics at http://{addr}/metrics");
                    tasks.push(task);
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot open the metrics port; running without metrics");
                }
            }
        }
        let local = LocalPods::open(&config.data_dir.join("state").join("pods"))
            .map_err(io("open", config.data_dir.join("state")))?;
        // Edge autonomy: what the node ran before, it runs again now, without
        // waiting for the control plane.
        let recorded: Vec<_> = local.all().into_iter().filter_map(agent::typed).collect();
        if !recorded.is_empty() {
            tracing::info!(
                pods = recorded.len(),
                "restarting the pods recorded on this node"
            );
            supervisor.sync(recorded);
        }
        let agent = Arc::new(Agent {
            addr,
            endpoint: endpoint.clone(),
            identity: std::sync::RwLock::new(Arc::new(identity)),
            identity_dir,
            hello: hello(&config, proxy.peer_port()),
            supervisor: supervisor.clone(),
            outbox,
            proxy,
            local: Arc::new(Mutex::new(local)),
            connection: connection_tx,
            connected: connected_tx,
        });
        let run = tokio::spawn(agent.run());
        Ok(Node {
            name: config.name,
            supervisor,
            connected: connected_rx,
            http_addr,
            tasks: {
                tasks.extend([run, forward]);
                tasks
            },
            endpoint,
        })
    }
}

async fn join_with_retry(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    token: &JoinToken,
    name: &str,
    identity_dir: &IdentityDir,
) -> Result<crate::identity::Identity, NodeError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match agent::join(endpoint, addr, token, name, identity_dir).await {
            Ok(identity) => {
                tracing::info!(node = name, control_plane = %addr, "joined the cluster");
                return Ok(identity);
            }
            Err(AgentError::Link(e)) => {
                tracing::warn!(node = name, error = %e, "cannot reach the control plane yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the node says about itself when it connects.
pub(crate) fn hello(config: &NodeConfig, proxy_port: u16) -> Hello {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), config.name.clone()),
        ("kubernetes.io/os".to_string(), "wasi".to_string()),
        ("kubernetes.io/arch".to_string(), "wasm32".to_string()),
    ]);
    labels.extend(config.labels.clone());
    let offered = allocatable(config);
    let (memory, cpu) = (offered.memory_bytes, offered.cpu_millis);
    let cpu = if cpu.is_multiple_of(1000) {
        (cpu / 1000).to_string()
    } else {
        format!("{cpu}m")
    };
    let resources = json!({
        "cpu": cpu,
        "memory": format!("{}Ki", memory / 1024),
        "pods": config.max_pods.to_string(),
    });
    let status: Value = json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": config.address.to_string()},
            {"type": "Hostname", "address": config.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": proxy_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "Skiff",
            "containerRuntimeVersion": "wasmtime://48",
            "kubeletVersion": concat!("v1.33.0-skiff.", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "operatingSystem": "wasi",
            "architecture": "wasm32",
        },
    });
    Hello {
        version: PROTOCOL_VERSION,
        node_name: config.name.clone(),
        labels,
        status,
        running: Vec::new(),
    }
}

/// Total memory of the machine (Linux `/proc/meminfo`), or 1 GiB if unknown.
/// The node's memory directory, made, checked and emptied: `None` (with a
/// warning) when it is not on a memory file system, so that no Secret is
/// written to a disk.
fn memory_dir(config: &NodeConfig) -> Option<PathBuf> {
    let dir = match &config.memory_dir {
        Some(dir) => dir.clone(),
        None => default_memory_dir(&config.data_dir),
    };
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    if let Err(e) = made {
        tracing::warn!(dir = %dir.display(), error = %e, "no memory directory: pods on this node cannot mount Secrets");
        return None;
    }
    match rustix::fs::statfs(&dir) {
        // tmpfs and ramfs.
        Ok(fs) if matches!(fs.f_type as u64, 0x0102_1994 | 0x8584_58f6) => {}
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "the memory directory is not on a memory file system (tmpfs): pods on this node cannot mount Secrets");
            return None;
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "no memory directory: pods on this node cannot mount Secrets");
            return None;
        }
    }
    // What a previous run left (it was stopped before its pods).
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Some(dir)
}

/// `/dev/shm/skiff-node-<12 hex digits of the data directory's hash>`: one
/// per data directory, the same across restarts.
pub fn default_memory_dir(data_dir: &Path) -> PathBuf {
    use sha2::Digest as _;
    let canonical = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("/dev/shm/skiff-node-{hex}"))
}

/// What the node offers its pods: its configured CPU and memory, or the
/// machine's.
fn allocatable(config: &NodeConfig) -> Allocatable {
    let memory = config.memory_bytes.unwrap_or_else(machine_memory);
    let cpu = config.cpu_millis.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64) * 1000
    });
    // The data directory's file system holds the pods' volumes and logs.
    let disk = rustix::fs::statvfs(&config.data_dir)
        .map(|s| s.f_blocks.saturating_mul(s.f_frsize))
        .unwrap_or(0);
    Allocatable {
        cpu_millis: cpu,
        memory_bytes: memory,
        ephemeral_storage_bytes: disk,
    }
}

fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(1 << 30)
}
