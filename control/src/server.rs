//! Starting the control plane: store, component storage, API server,
//! controllers, and the kubeconfig that points clients at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::kubeconfig::Kubeconfig;
use skiff_api::resource::by_kind;
use skiff_api::status::Reason;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::apiserver::{self, ApiState};
use crate::auth::ClusterCa;
use crate::components::ComponentStore;
use crate::events::EventRecorder;
use crate::gateway::Gateway;
use crate::informer::Informers;
use crate::metrics::Metrics;
use crate::registry::{Registry, WriteOptions};
use crate::store::Store;
use crate::store::redb::{RedbStore, StoreConfig};

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How to run a control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Where the store, components and kubeconfig live.
    pub data_dir: PathBuf,
    /// Where the API listens (port 0 picks a free port).
    pub api_addr: SocketAddr,
    /// Where the node gateway listens (UDP; port 0 picks a free port).
    pub quic_addr: SocketAddr,
    /// How long a node may be silent before it is marked NotReady.
    pub node_grace_period: Duration,
    /// How long a lost node's pods stay bound to it before they are evicted
    /// (the default `tolerationSeconds` of the not-ready/unreachable taints).
    pub default_toleration_seconds: i64,
    pub store: StoreConfig,
    /// How long the node certificates the CA issues are valid (a year; nodes
    /// renew them before they expire).
    pub node_cert_validity: Duration,
}

impl ControlPlaneConfig {
    /// The defaults for one machine, with data in `data_dir`: API on
    /// 127.0.0.1:6443 (TCP), node gateway on 127.0.0.1:6443 (UDP).
    pub fn new(data_dir: PathBuf) -> Self {
        ControlPlaneConfig {
            data_dir,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 6443)),
            quic_addr: SocketAddr::from(([127, 0, 0, 1], 6443)),
            node_grace_period: DEFAULT_NODE_GRACE_PERIOD,
            default_toleration_seconds: crate::registry::strategy::DEFAULT_TOLERATION_SECONDS,
            store: StoreConfig::default(),
            node_cert_validity: skiff_api::join::NODE_CERT_VALIDITY,
        }
    }
}

/// Kubernetes' default is 40 s (node-monitor-grace-period); a QUIC connection
/// notices a dead peer within seconds, so Skiff can afford a short one, which its
/// failover budget (a lost node's pods running elsewhere in 10 s) needs.
pub const DEFAULT_NODE_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Why a control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("open store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("open component storage: {0}")]
    Components(std::io::Error),
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("create initial objects: {0}")]
    Bootstrap(skiff_api::ApiError),
    #[error("write kubeconfig {0}: {1}")]
    Kubeconfig(PathBuf, String),
    #[error("cluster CA: {0}")]
    Ca(#[from] crate::auth::CaError),
    #[error("node gateway: {0}")]
    Gateway(#[from] crate::gateway::GatewayError),
}

/// A running control plane.
pub struct ControlPlane {
    api_addr: SocketAddr,
    gateway: Gateway,
    ca: Arc<ClusterCa>,
    kubeconfig: PathBuf,
    registry: Registry,
    server: JoinHandle<std::io::Result<()>>,
    controllers: Vec<JoinHandle<()>>,
}

impl ControlPlane {
    /// Opens the data directory and starts serving.
    pub async fn start(config: ControlPlaneConfig) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
        let metrics = Metrics::new();
        let store_config = StoreConfig {
            metrics: Some(metrics.clone()),
            ..config.store.clone()
        };
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(
            &config.data_dir.join("store.redb"),
            store_config,
        )?);
        let components = ComponentStore::open(&config.data_dir.join("components"))
            .map_err(StartError::Components)?;
        let registry =
            Registry::new(store).with_default_toleration_seconds(config.default_toleration_seconds);
        bootstrap(&registry).await.map_err(StartError::Bootstrap)?;
        let ca = Arc::new(
            ClusterCa::load_or_create(&config.data_dir.join("pki"))?
                .with_node_cert_validity(config.node_cert_validity),
        );
        publish_cluster_info(&registry, &ca)
            .await
            .map_err(StartError::Bootstrap)?;
        let components = Arc::new(components);
        let informers = Informers::start(&registry);
        let gateway = Gateway::start(
            config.quic_addr,
            ca.clone(),
            registry.clone(),
            components.clone(),
            &informers,
        )?;

        let listener = TcpListener::bind(config.api_addr)
            .await
            .map_err(|e| StartError::Listen(config.api_addr, e))?;
        let api_addr = listener
            .local_addr()
            .map_err(|e| StartError::Listen(config.api_addr, e))?;
        let kubeconfig = config.data_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("http://{api_addr}"))?;

        let mut state = ApiState::new(registry.clone(), components, metrics);
        state.nodes = Some(gateway.calls());
        let state = Arc::new(state);
        let app = apiserver::router(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let events = EventRecorder::new(registry.clone(), "skiff-controller-manager");
        let controllers = vec![
            tokio::spawn(crate::scheduler::run(
                registry.clone(),
                informers.nodes.clone(),
                informers.pods.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::replica_set::run(
                registry.clone(),
                informers.replica_sets.clone(),
                informers.pods.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::deployment::run(
                registry.clone(),
                informers.deployments.clone(),
                informers.replica_sets.clone(),
                informers.pods.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::daemon_set::run(
                registry.clone(),
                informers.daemon_sets.clone(),
                informers.nodes.clone(),
                informers.pods.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::pod_gc::run(
                registry.clone(),
                informers.nodes.clone(),
                informers.pods.clone(),
            )),
            tokio::spawn(crate::controllers::job::run(
                registry.clone(),
                informers.jobs.clone(),
                informers.pods.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::cron_job::run(
                registry.clone(),
                informers.cron_jobs.clone(),
                informers.jobs.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::ttl_after_finished::run(
                registry.clone(),
                informers.jobs.clone(),
            )),
            tokio::spawn(crate::controllers::namespace::run(registry.clone())),
            tokio::spawn(crate::controllers::garbage_collector::run(registry.clone())),
            tokio::spawn(crate::controllers::node_lifecycle::run(
                registry.clone(),
                informers.nodes.clone(),
                informers.pods.clone(),
                events.clone(),
                gateway.liveness(),
                config.node_grace_period,
            )),
            tokio::spawn(crate::controllers::taint_eviction::run(
                registry.clone(),
                informers.nodes.clone(),
                informers.pods.clone(),
                events.clone(),
            )),
            tokio::spawn(crate::controllers::endpoint_slice::run(
                crate::controllers::endpoint_slice::Context {
                    registry: registry.clone(),
                    services: informers.services.clone(),
                    pods: informers.pods.clone(),
                    nodes: informers.nodes.clone(),
                    endpoint_slices: informers.endpoint_slices.clone(),
                    events: events.clone(),
                },
            )),
            tokio::spawn(crate::controllers::endpoints::run(
                crate::controllers::endpoints::Context {
                    registry: registry.clone(),
                    services: informers.services.clone(),
                    pods: informers.pods.clone(),
                    endpoints: informers.endpoints.clone(),
                    events: events.clone(),
                },
            )),
            tokio::spawn(crate::controllers::ingress_status::run(
                crate::controllers::ingress_status::Context {
                    registry: registry.clone(),
                    ingresses: informers.ingresses.clone(),
                    nodes: informers.nodes.clone(),
                },
            )),
            tokio::spawn(crate::controllers::service_load_balancer::run(
                crate::controllers::service_load_balancer::Context {
                    registry: registry.clone(),
                    services: informers.services.clone(),
                    nodes: informers.nodes.clone(),
                },
            )),
        ];
        state.ready.store(true, Ordering::Release);
        tracing::info!(%api_addr, quic_addr = %gateway.addr(), data_dir = %config.data_dir.display(), "control plane serving");
        Ok(ControlPlane {
            api_addr,
            gateway,
            ca,
            kubeconfig,
            registry,
            server,
            controllers,
        })
    }

    /// The address the API listens on.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The UDP address nodes join and connect at.
    pub fn quic_addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    /// The cluster CA certificate (PEM), which nodes trust.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A new single-use bootstrap token for a node to join with (full form,
    /// with the CA hash).
    pub async fn create_join_token(
        &self,
        ttl: Option<Duration>,
        description: &str,
    ) -> Result<String, skiff_api::ApiError> {
        self.create_token(ttl, description, false).await
    }

    /// A new bootstrap token that any number of nodes may join with.
    pub async fn create_reusable_join_token(
        &self,
        ttl: Option<Duration>,
        description: &str,
    ) -> Result<String, skiff_api::ApiError> {
        self.create_token(ttl, description, true).await
    }

    async fn create_token(
        &self,
        ttl: Option<Duration>,
        description: &str,
        reusable: bool,
    ) -> Result<String, skiff_api::ApiError> {
        let token = crate::auth::tokens::create(&self.registry, ttl, description, reusable).await?;
        Ok(format!(
            "{}:{}:{token}",
            skiff_api::join::TOKEN_PREFIX,
            self.ca.hash()
        ))
    }

    /// The kubeconfig written for this control plane.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The registry, for embedding programs and tests.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Waits until the API server stops (it runs until the process ends).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = match self.server.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        };
        for c in self.controllers {
            c.abort();
        }
        result
    }
}

/// Creates what every cluster starts with, when missing: the initial
/// namespaces and Skiff's IngressClass (the default class).
pub async fn bootstrap(registry: &Registry) -> Result<(), skiff_api::ApiError> {
    let opts = WriteOptions {
        field_manager: "skiff-bootstrap".into(),
        ..Default::default()
    };
    for name in INITIAL_NAMESPACES {
        let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
        create_if_absent(registry, ns, &opts).await?;
    }
    create_if_absent(registry, skiff_api::ingress::skiff_ingress_class(), &opts).await
}

/// Creates the cluster-scoped `object` unless one of its name exists.
async fn create_if_absent(
    registry: &Registry,
    object: Value,
    opts: &WriteOptions,
) -> Result<(), skiff_api::ApiError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let Some(rt) = by_kind(api_version, kind) else {
        return Ok(());
    };
    let name = skiff_api::meta::name(&object).unwrap_or_default();
    if registry.try_get(rt, "", name)?.is_some() {
        return Ok(());
    }
    match registry.create(rt, "", object, opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Publishes the CA certificate in `kube-public/cluster-info` (as kubeadm does),
/// where `skiff token create` reads it to put its hash into tokens.
async fn publish_cluster_info(
    registry: &Registry,
    ca: &ClusterCa,
) -> Result<(), skiff_api::ApiError> {
    let Some(rt) = by_kind("v1", "ConfigMap") else {
        return Ok(());
    };
    let (namespace, name) = skiff_api::join::CLUSTER_INFO;
    let data = json!({ skiff_api::join::CLUSTER_INFO_CA_KEY: ca.cert_pem() });
    let opts = WriteOptions {
        field_manager: "skiff-bootstrap".into(),
        ..Default::default()
    };
    match registry.try_get(rt, namespace, name)? {
        Some(existing) if existing.get("data") == Some(&data) => Ok(()),
        Some(mut existing) => {
            existing["data"] = data;
            registry
                .update(
                    rt,
                    namespace,
                    name,
                    existing,
                    crate::registry::Subresource::Main,
                    &opts,
                )
                .await
                .map(drop)
        }
        None => {
            let object = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": data,
            });
            registry
                .create(rt, namespace, object, &opts)
                .await
                .map(drop)
        }
    }
}

/// Writes the kubeconfig atomically (temp file, then rename).
fn write_kubeconfig(path: &Path, server: &str) -> Result<(), StartError> {
    let err = |e: String| StartError::Kubeconfig(path.to_path_buf(), e);
    let config = Kubeconfig::single("skiff", server);
    let text = serde_yaml_ng::to_string(&config).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}
