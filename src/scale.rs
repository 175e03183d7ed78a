//! `skiff scale`: set the replica count of a Deployment, ReplicaSet or
//! StatefulSet through its `scale` subresource, as `kubectl scale` does.

use anyhow::bail;
use bytes::Bytes;
use serde_json::json;

use crate::client::ClusterArgs;
use skiff_client::discovery::Discovery;

/// Set a new size for a Deployment, ReplicaSet or StatefulSet
///
/// Examples:
///   skiff scale deployment/web --replicas=3
///   skiff scale rs web-7d9f --replicas 0 -n demo
///   skiff scale deploy/web --replicas=5 --current-replicas=3
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// TYPE/NAME or TYPE NAME
    #[arg(value_name = "TYPE[/NAME]", required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: u32,
    /// Only scale if the object has this many replicas now.
    #[arg(long)]
    pub current_replicas: Option<u32>,
    /// Namespace of the object [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let discovery = Discovery::load(&client).await?;
    let (resource, name) = discovery.one_object(&args.target)?;
    if !["Deployment", "ReplicaSet", "StatefulSet"].contains(&resource.kind.as_str()) {
        bail!(
            "{} cannot be scaled: scale a Deployment, ReplicaSet or StatefulSet",
            resource.type_name()
        );
    }
    let namespace = client.namespace(args.namespace.as_deref());
    let path = format!("{}/scale", resource.object_path(Some(namespace), &name));
    let scale = client.get_json(&path).await?;
    if let Some(want) = args.current_replicas {
        let now = scale["spec"]["replicas"].as_u64().unwrap_or(0);
        if now != u64::from(want) {
            bail!("expected replicas to be {want}, was {now}");
        }
    }
    // The resourceVersion makes the update conditional on what was read.
    let patch = json!({
        "metadata": {"resourceVersion": scale["metadata"]["resourceVersion"]},
        "spec": {"replicas": args.replicas},
    });
    client
        .send(
            http::Method::PATCH,
            &path,
            "application/merge-patch+json",
            Bytes::from(serde_json::to_vec(&patch)?),
        )
        .await?
        .json()?;
    println!("{}/{name} scaled", resource.type_name());
    Ok(())
}
