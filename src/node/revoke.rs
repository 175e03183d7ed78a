//! `skiff node revoke NAME`: removes a node from the cluster for good. The Node
//! object is deleted through the API; the control plane then revokes every
//! certificate it issued to that node, closes its session and refuses its
//! connections from then on. The machine may join again only with a new token
//! (and a fresh data directory), which gives it a new certificate.

use anyhow::bail;
use bytes::Bytes;

use crate::client::ClusterArgs;
use skiff_client::{ACCEPT_JSON, is_not_found};

/// Revoke a node: delete its Node, close its session and refuse its certificate from then on.
///
/// The node's pods are deleted by the pod garbage collector, as for any deleted
/// Node. To bring the machine back, remove its data directory and join it
/// again with a new token (`skiff token create`).
///
/// Example: skiff node revoke edge-7
#[derive(clap::Args)]
pub struct Args {
    /// The node's name.
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let path = format!("/api/v1/nodes/{}", args.name);
    let response = client
        .request(
            http::Method::DELETE,
            &path,
            ACCEPT_JSON,
            Some("application/json"),
            Bytes::from_static(b"{}"),
        )
        .await?;
    match response.json() {
        Ok(_) => {
            println!(
                "node \"{}\" revoked: its session is closed and its certificate is refused from now on",
                args.name
            );
            Ok(())
        }
        Err(e) if is_not_found(&e) => bail!("node \"{}\" not found", args.name),
        Err(e) => Err(e),
    }
}
