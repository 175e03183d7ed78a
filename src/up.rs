//! `skiff up`: the embedded default, one process for the whole cluster: the
//! control plane and one node, with data under one directory.

use std::time::Duration;

use anyhow::Context;
use skiff_node::Node;

/// Run a whole cluster in one process: control plane and one node.
///
/// Example:
///   skiff up                 # then: kubectl --kubeconfig ~/.skiff/kubeconfig get nodes
///   skiff up --demo          # also runs the hello sample and says how to reach it
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::server::ServerArgs,
    #[command(flatten)]
    pub node: crate::node::NodeFlags,
    /// The node's name [default: this machine's hostname].
    #[arg(long)]
    pub name: Option<String>,
    /// Also deploy the hello sample (built by `samples/build.sh -p hello`).
    #[arg(long)]
    pub demo: bool,
    /// The component the demo runs [default: the hello sample's build output].
    #[arg(long, value_name = "FILE", requires = "demo")]
    pub demo_component: Option<std::path::PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args
        .server
        .data_dir
        .clone()
        .unwrap_or_else(crate::default_data_dir);
    let plane = crate::server::start(args.server).await?;
    let node_dir = data_dir.join("node");
    let name = args.name.unwrap_or_else(crate::node::hostname);
    // A node that joined before reconnects with its certificate.
    let token = if node_dir.join("identity").join("node.crt").exists() {
        None
    } else {
        Some(
            plane
                .create_join_token(Some(Duration::from_secs(600)), "skiff up's own node")
                .await
                .context("create a join token for the node")?,
        )
    };
    let mut config = args
        .node
        .config(name, node_dir.clone(), plane.quic_addr(), token);
    // The control plane's store, keys and components live beside the node's.
    config.protected_dirs.push(data_dir.clone());
    let node = Node::builder()
        .config(config)
        .start()
        .await
        .with_context(|| format!("start the node (data in {})", node_dir.display()))?;
    tokio::time::timeout(Duration::from_secs(30), node.wait_connected())
        .await
        .context("the node did not connect to the control plane within 30 s")?;
    println!("Node {} is up", node.name());
    crate::node::print_http_addr(&node);
    if args.demo {
        let component = match args.demo_component {
            Some(path) => path,
            None => default_demo_component(),
        };
        crate::demo::deploy(&plane, node.name(), &component).await?;
    }
    let result = crate::server::serve_until_signal(plane).await;
    drop(node);
    result
}

fn default_demo_component() -> std::path::PathBuf {
    // Where `samples/build.sh` leaves its output (and the tests look).
    let target = std::env::var_os("SKIFF_SAMPLES_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_default();
            home.join(".cache").join("skiff-samples-target")
        });
    target
        .join("wasm32-wasip2")
        .join("release")
        .join("hello.wasm")
}
