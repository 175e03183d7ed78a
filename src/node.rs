//! `skiff node`: run a node that joins a control plane (a thin wrapper over
//! `skiff_node::Node`), and `skiff node revoke NAME` ([`revoke`]).

mod revoke;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use skiff_node::{Node, NodeConfig};

/// Run a node: join a control plane and run the pods it is given.
///
/// The first start needs a token (`skiff token create` on the control plane);
/// the node keeps the certificate it gets in its data directory and reconnects
/// with it from then on.
///
/// Example:
///   skiff node --join 10.0.0.1:6443 --token "$(skiff token create)" --name edge-1 --labels zone=a
///   skiff node revoke edge-1
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
    /// The control plane's node address (UDP), as `skiff server` prints it:
    /// `IP:PORT` or `HOST:PORT` (resolved once, at start).
    #[arg(long, value_name = "ADDR", required = true, value_parser = resolve_join)]
    pub join: Option<SocketAddr>,
    /// A join token (needed only until the node has its certificate).
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The node's name [default: this machine's hostname].
    #[arg(long)]
    pub name: Option<String>,
    /// Where the node keeps its identity, components and pods [default: $SKIFF_DATA_DIR/node-NAME or ~/.skiff/node-NAME].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeFlags,
}

#[derive(clap::Subcommand)]
pub enum NodeCommand {
    Revoke(revoke::Args),
}

/// Flags of a node shared by `skiff node` and `skiff up`.
#[derive(clap::Args, Clone)]
pub struct NodeFlags {
    /// Labels for the Node object, e.g. `zone=a,disk=ssd`.
    #[arg(long, value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The node's address: its Node's InternalIP, where its proxy and NodePorts listen.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// The UDP port other nodes' proxies reach this node at (0: any free port).
    #[arg(long, default_value_t = skiff_node::DEFAULT_PROXY_PORT)]
    pub proxy_port: u16,
    /// The TCP port (on --address) where the node serves the cluster's Ingresses (0: any free port).
    #[arg(long, default_value_t = skiff_node::DEFAULT_HTTP_PORT)]
    pub http_port: u16,
    /// Open no HTTP port: this node serves no Ingresses.
    #[arg(long, conflicts_with = "http_port")]
    pub no_http_port: bool,
    /// The TCP port (on --address) where the node serves Prometheus metrics at `/metrics` (kube-proxy's port by default; 0: any free port).
    #[arg(long, default_value_t = skiff_node::DEFAULT_METRICS_PORT)]
    pub metrics_port: u16,
    /// Serve no metrics.
    #[arg(long, conflicts_with = "metrics_port")]
    pub no_metrics_port: bool,
    /// Most pods the node runs at once.
    #[arg(long, default_value_t = skiff_node::DEFAULT_MAX_PODS)]
    pub max_pods: u32,
    /// First delay before restarting a failing container; doubles up to 5 minutes (Kubernetes: 10s).
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse)]
    pub restart_backoff: Duration,
    /// Memory the node offers pods (its Node's capacity), e.g. `512Mi` [default: the machine's].
    #[arg(long, value_name = "QUANTITY", value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// CPU the node offers pods, e.g. `2` or `500m` [default: the machine's cores].
    #[arg(long, value_name = "QUANTITY", value_parser = parse_cpu)]
    pub cpu: Option<u64>,
    /// Let pods mount DIR (or a directory under it) through hostPath volumes,
    /// read-only, or read-write as `DIR:rw`. Repeatable. None by default; `/`
    /// and the node's data directory never.
    #[arg(long = "allow-host-path", value_name = "DIR[:rw]")]
    pub allow_host_path: Vec<skiff_node::AllowedHostPath>,
    /// Where the files of volumes that may hold Secrets live: a directory on
    /// a memory file system (tmpfs), since Secrets never go to disk.
    /// Default: /dev/shm/skiff-node-<hash of the data directory>.
    #[arg(long, value_name = "DIR")]
    pub memory_dir: Option<PathBuf>,
}

impl NodeFlags {
    /// A node configuration from these flags.
    pub fn config(
        &self,
        name: String,
        data_dir: PathBuf,
        join: SocketAddr,
        token: Option<String>,
    ) -> NodeConfig {
        NodeConfig {
            name,
            control_plane: Some(join),
            token,
            data_dir,
            labels: self.labels.iter().cloned().collect(),
            address: self.address,
            proxy_port: self.proxy_port,
            http_port: (!self.no_http_port).then_some(self.http_port),
            metrics_port: (!self.no_metrics_port).then_some(self.metrics_port),
            max_pods: self.max_pods,
            restart_backoff: self.restart_backoff,
            memory_bytes: self.memory,
            cpu_millis: self.cpu,
            allowed_host_paths: self.allow_host_path.clone(),
            protected_dirs: Vec::new(),
            memory_dir: self.memory_dir.clone(),
            // This binary compiles components in a child of its own.
            compile_with: std::env::current_exe().ok(),
        }
    }
}

/// Why a flag's value was refused; clap prints it after the flag.
#[derive(Debug, thiserror::Error)]
enum FlagError {
    #[error("{text:?}: {why}")]
    Quantity {
        text: String,
        why: skiff_api::quantity::QuantityError,
    },
    #[error("{0:?} must be more than zero")]
    NotPositive(String),
    #[error("label {0:?} must be KEY=VALUE")]
    NotKeyValue(String),
    #[error("label {0:?} has an empty key")]
    EmptyKey(String),
    #[error("cannot resolve {text:?} (HOST:PORT or IP:PORT): {source}")]
    Resolve {
        text: String,
        source: std::io::Error,
    },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
}

fn parse_quantity(s: &str) -> Result<skiff_api::quantity::Quantity, FlagError> {
    let q = skiff_api::quantity::Quantity::parse(s).map_err(|why| FlagError::Quantity {
        text: s.to_string(),
        why,
    })?;
    if !q.is_positive() {
        return Err(FlagError::NotPositive(s.to_string()));
    }
    Ok(q)
}

fn parse_memory(s: &str) -> Result<u64, FlagError> {
    Ok(parse_quantity(s)?.value().unsigned_abs())
}

fn parse_cpu(s: &str) -> Result<u64, FlagError> {
    Ok(parse_quantity(s)?.milli_value().unsigned_abs())
}

fn parse_label(s: &str) -> Result<(String, String), FlagError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| FlagError::NotKeyValue(s.to_string()))?;
    if k.is_empty() {
        return Err(FlagError::EmptyKey(s.to_string()));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Says where the node serves Ingresses, if it does.
pub fn print_http_addr(node: &Node) {
    if let Some(addr) = node.http_addr() {
        println!("Ingresses on http://{addr}");
    }
}

/// This machine's hostname, lower-cased (a valid node name on most machines).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "skiff-node".to_string())
}

/// `IP:PORT` or `HOST:PORT`, resolved to the first address.
fn resolve_join(text: &str) -> Result<SocketAddr, FlagError> {
    use std::net::ToSocketAddrs;
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|source| FlagError::Resolve {
            text: text.to_string(),
            source,
        })?;
    addrs
        .next()
        .ok_or_else(|| FlagError::NoAddress(text.to_string()))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(NodeCommand::Revoke(revoke)) = args.command {
        return revoke::run(revoke).await;
    }
    let join = args.join.context("--join ADDR is required")?;
    let name = args.name.unwrap_or_else(hostname);
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| crate::default_data_dir().join(format!("node-{name}")));
    let config = args.node.config(name, data_dir.clone(), join, args.token);
    let node = Node::builder()
        .config(config)
        .start()
        .await
        .with_context(|| format!("start node (data in {})", data_dir.display()))?;
    println!("Node {} started; joining {}", node.name(), join);
    print_http_addr(&node);
    crate::server::wait_for_signal().await
}
