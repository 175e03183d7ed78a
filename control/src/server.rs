//! Starting the control plane: store, component storage, API server,
//! controllers, and the kubeconfig that points clients at it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

use crate::apiserver::listener::{self, ListenerLimits};
use crate::apiserver::{self, ApiState};
use crate::auth::service_account_token::TokenSigner;
use crate::auth::user::{ADMIN, MASTERS};
use crate::auth::{ClientCredentials, ClusterCa};
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
    /// More names (DNS or IP) the API's serving certificate is valid for
    /// (`--tls-san`), beside loopback, the hostname and the API address.
    pub tls_sans: Vec<String>,
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
            tls_sans: Vec::new(),
            store: StoreConfig::default(),
            node_cert_validity: skiff_api::join::NODE_CERT_VALIDITY,
        }
    }
}

/// Kubernetes' default is 40 s (node-monitor-grace-period); a node's session
/// sends a heartbeat every second, so three missed ones are a lost node. The
/// failover budget (a lost node's pods running elsewhere in 5 s, DESIGN.md)
/// needs it this short: 3 s silent, 1 s of toleration, then the replacements.
pub const DEFAULT_NODE_GRACE_PERIOD: Duration = Duration::from_secs(3);

/// Why a control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("open store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("encryption at rest: {0}")]
    Encryption(#[from] Box<crate::at_rest::AtRestError>),
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
    #[error("API TLS: {0}")]
    Tls(#[from] crate::apiserver::listener::TlsSetupError),
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
        create_private_dir(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
        let metrics = Metrics::new();
        // Secrets are always sealed with the data directory's keys.
        let encryption = crate::at_rest::prepare(&config.data_dir).map_err(Box::new)?;
        let store_config = StoreConfig {
            metrics: Some(metrics.clone()),
            encryption: Arc::new(encryption),
            ..config.store.clone()
        };
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(
            &config.data_dir.join(crate::at_rest::STORE_FILE),
            store_config,
        )?);
        let components = ComponentStore::open(&config.data_dir.join("components"))
            .map_err(StartError::Components)?;
        let registry =
            Registry::new(store).with_default_toleration_seconds(config.default_toleration_seconds);
        bootstrap(&registry).await.map_err(StartError::Bootstrap)?;
        let pki = config.data_dir.join("pki");
        let ca = Arc::new(
            ClusterCa::load_or_create(&pki)?.with_node_cert_validity(config.node_cert_validity),
        );
        publish_cluster_info(&registry, &ca)
            .await
            .map_err(StartError::Bootstrap)?;
        crate::auth::rbac::bootstrap::reconcile(&registry)
            .await
            .map_err(StartError::Bootstrap)?;
        let admin = ca.load_or_issue_client(&pki, "admin", ADMIN, &[MASTERS])?;
        let tokens = Arc::new(TokenSigner::load_or_create(&pki)?);
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
        let tls = listener::tls_config(
            &ca,
            ca.api_serving_identity(&serving_names(api_addr, &config.tls_sans))?,
        )?;
        let kubeconfig = config.data_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, reachable(api_addr), &ca, &admin)?;

        let mut state = ApiState::new(registry.clone(), components, metrics, tokens);
        state.nodes = Some(gateway.calls());
        let state = Arc::new(state);
        let app = apiserver::router(state.clone());
        let server = tokio::spawn(listener::serve(
            listener,
            Arc::new(tls),
            app,
            ListenerLimits::default(),
        ));
        let deps = crate::controllers::Deps {
            registry: registry.clone(),
            informers: informers.clone(),
            events: EventRecorder::new(registry.clone(), "skiff-controller-manager"),
            cluster_roles: state.authorizer.informers().cluster_roles.clone(),
            liveness: gateway.liveness(),
            node_grace_period: config.node_grace_period,
        };
        let controllers = crate::controllers::ALL
            .iter()
            .map(|(_, start)| tokio::spawn(start(deps.clone())))
            .collect();
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

/// Writes the admin's kubeconfig (readable by its owner only): the
/// `https://` address, the CA to check the server with, the admin's client
/// certificate and key.
fn write_kubeconfig(
    path: &Path,
    server: SocketAddr,
    ca: &ClusterCa,
    admin: &ClientCredentials,
) -> Result<(), StartError> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let err = |e: String| StartError::Kubeconfig(path.to_path_buf(), e);
    let mut config = Kubeconfig::single("skiff", &format!("https://{server}"));
    for cluster in &mut config.clusters {
        cluster.cluster.certificate_authority_data = Some(b64(ca.cert_pem()));
    }
    for user in &mut config.users {
        user.user.client_certificate_data = Some(b64(&admin.cert_pem));
        user.user.client_key_data = Some(b64(&admin.key_pem));
    }
    let text = serde_yaml_ng::to_string(&config).map_err(|e| err(e.to_string()))?;
    crate::auth::write_private(path, &text).map_err(|e| err(e.to_string()))
}

/// The address a client on this machine reaches the API at: loopback when
/// the API listens on every address (`0.0.0.0`, `::`).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// The names the API's serving certificate is valid for, as K3s gives them:
/// loopback, `localhost`, the hostname, the API's address (every interface's
/// when it listens on all), and the `--tls-san` names.
fn serving_names(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    if addr.ip().is_unspecified() {
        for interface in if_addrs::get_if_addrs().unwrap_or_default() {
            names.push(interface.ip().to_string());
        }
    } else {
        names.push(addr.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Creates `dir` (and its parents) and makes it readable by its owner only:
/// it holds the CA key, the store and the admin's credentials.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_never_points_at_an_unspecified_address() {
        let any: SocketAddr = "0.0.0.0:6443".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:6443".parse().unwrap());
        let any6: SocketAddr = "[::]:6443".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:6443".parse().unwrap());
        let one: SocketAddr = "10.1.2.3:6443".parse().unwrap();
        assert_eq!(reachable(one), one);
    }

    #[test]
    fn the_serving_certificate_names_loopback_the_address_and_extra_names() {
        let names = serving_names("10.1.2.3:6443".parse().unwrap(), &["cp.example.com".into()]);
        for want in ["127.0.0.1", "localhost", "10.1.2.3", "cp.example.com"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        let all = serving_names("0.0.0.0:6443".parse().unwrap(), &[]);
        assert!(all.iter().any(|n| n == "127.0.0.1"), "{all:?}");
        assert!(!all.iter().any(|n| n == "0.0.0.0"), "{all:?}");
        let mut dedup = all.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len());
    }
}
