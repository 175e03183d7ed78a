//! `skiff server`: the control plane on its own.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use skiff_control::{ControlPlane, ControlPlaneConfig};

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where the store, components and kubeconfig live [default: $SKIFF_DATA_DIR or ~/.skiff].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the Kubernetes API.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// Address (UDP) where nodes join and connect over QUIC.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub quic_addr: SocketAddr,
    /// How long a node may be silent before it is marked NotReady (e.g. 3s, 40s).
    #[arg(long, default_value = "3s", value_parser = crate::duration::parse)]
    pub node_monitor_grace_period: std::time::Duration,
    /// How long the pods of a lost (unreachable or not-ready) node wait before
    /// they are evicted and replaced elsewhere, unless they set their own
    /// tolerations (Kubernetes: 300).
    #[arg(long, default_value_t = skiff_control::DEFAULT_TOLERATION_SECONDS, value_name = "SECONDS")]
    pub default_unreachable_toleration_seconds: i64,
    /// Another name (DNS name or IP address) clients may reach the API by;
    /// the serving certificate is valid for it too. Repeatable.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let plane = start(args).await?;
    serve_until_signal(plane).await
}

/// Starts a control plane from the shared flags and says where it is.
pub async fn start(args: ServerArgs) -> anyhow::Result<ControlPlane> {
    let data_dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    let config = ControlPlaneConfig {
        api_addr: args.api_addr,
        quic_addr: args.quic_addr,
        node_grace_period: args.node_monitor_grace_period,
        default_toleration_seconds: args.default_unreachable_toleration_seconds,
        tls_sans: args.tls_sans,
        ..ControlPlaneConfig::new(data_dir)
    };
    let plane = ControlPlane::start(config)
        .await
        .context("start the control plane")?;
    println!("Skiff API on https://{}", plane.api_addr());
    println!("Node gateway on quic://{}", plane.quic_addr());
    println!(
        "kubectl --kubeconfig {} get namespaces",
        plane.kubeconfig().display()
    );
    Ok(plane)
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    }
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve_until_signal(plane: ControlPlane) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listen for SIGTERM")?;
    tokio::select! {
        result = plane.wait() => result.context("API server stopped"),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    }
}
