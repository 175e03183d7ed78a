//! `skiff push FILE --name NAME:TAG`: upload a Wasm component.
//!
//! [`push_component`] is also what `skiff apply` calls for images that name a
//! local file.

use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;

use crate::client::ClusterArgs;
use skiff_client::{ApiClient, urlencode};

/// Push a Wasm component to the cluster under NAME:TAG.
///
/// Example: skiff push target/wasm32-wasip2/release/hello.wasm --name hello:v1
#[derive(clap::Args)]
pub struct Args {
    /// The `.wasm` component to push.
    pub file: PathBuf,
    /// Name and tag to push it under (`hello:v1`; the tag defaults to `latest`).
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// What the cluster stored for a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub name: String,
    pub tag: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    /// `Http`, `Command` or `Unknown`.
    pub kind: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("read {}", args.file.display()))?;
    let client = args.cluster.connect()?;
    let pushed = push_component(&client, bytes, &args.name)
        .await
        .with_context(|| format!("push {}", args.file.display()))?;
    println!(
        "pushed {}:{} {} ({} bytes, {})",
        pushed.name, pushed.tag, pushed.digest, pushed.size, pushed.kind,
    );
    Ok(())
}

/// Uploads a component's bytes as `reference` (`name:tag`); the cluster
/// validates that they are a component.
pub async fn push_component(
    client: &ApiClient,
    bytes: Vec<u8>,
    reference: &str,
) -> anyhow::Result<Pushed> {
    let path = format!(
        "/apis/skiff.dev/v1alpha1/components?name={}",
        urlencode(reference)
    );
    let component = client
        .send(
            http::Method::POST,
            &path,
            "application/wasm",
            Bytes::from(bytes),
        )
        .await?
        .json()?;
    let spec = &component["spec"];
    let text = |key: &str| spec[key].as_str().unwrap_or("?").to_string();
    Ok(Pushed {
        name: text("name"),
        tag: text("tag"),
        digest: text("digest"),
        size: spec["size"].as_u64().unwrap_or(0),
        kind: text("kind"),
    })
}
