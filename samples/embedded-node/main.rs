//! A program that embeds a Skiff node: the way an edge device's own software
//! (a gateway, a kiosk, a controller) joins a cluster and runs the Wasm pods the
//! control plane gives it, with no separate agent to install.
//!
//! Build and run it next to a control plane:
//!
//! ```sh
//! skiff server --data-dir /tmp/cp &                      # or: skiff up
//! TOKEN=$(skiff --kubeconfig /tmp/cp/kubeconfig token create)
//! cargo run --example embedded-node -- 127.0.0.1:6443 "$TOKEN" /tmp/edge-1 edge-1
//! ```
//!
//! The node keeps its certificate in its data directory: later starts need no
//! token. It runs until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(control_plane), token, Some(data_dir)) = (args.next(), args.next(), args.next())
    else {
        bail!("usage: embedded-node CONTROL_PLANE_ADDR TOKEN|- DATA_DIR [NODE_NAME]");
    };
    let name = args.next().unwrap_or_else(|| "edge-1".to_string());
    let control_plane: SocketAddr = control_plane
        .parse()
        .with_context(|| format!("{control_plane:?} is not an address like 127.0.0.1:6443"))?;

    // The whole embedding: name, control plane, token, data directory, labels.
    let mut builder = skiff_node::Node::builder()
        .name(name)
        .control_plane(control_plane)
        .data_dir(PathBuf::from(&data_dir))
        .label("skiff.dev/embedded", "true");
    if let Some(token) = token.filter(|t| t != "-") {
        builder = builder.token(token);
    }
    let node = builder.start().await.context("start the embedded node")?;
    node.wait_connected().await;
    println!("embedded node {} joined {control_plane}", node.name());

    tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    node.shutdown().await;
    Ok(())
}
