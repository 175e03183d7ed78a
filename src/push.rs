//! `skiff push FILE --name NAME:TAG`: upload a Wasm component.

use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;

use crate::client::ApiClient;

#[derive(clap::Args)]
pub struct Args {
    /// The `.wasm` component to push.
    pub file: PathBuf,
    /// Name and tag to push it under (`hello:v1`; the tag defaults to `latest`).
    #[arg(long)]
    pub name: String,
    /// Kubeconfig of the cluster [default: $KUBECONFIG, else the default data directory's].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("read {}", args.file.display()))?;
    let client = ApiClient::discover(args.kubeconfig.as_deref())?;
    let path = format!(
        "/apis/skiff.dev/v1alpha1/components?name={}",
        urlencode(&args.name)
    );
    let response = client
        .send(
            http::Method::POST,
            &path,
            "application/wasm",
            Bytes::from(bytes),
        )
        .await?;
    let component = response
        .json()
        .with_context(|| format!("push {}", args.file.display()))?;
    let spec = &component["spec"];
    println!(
        "pushed {}:{} {} ({} bytes, {})",
        spec["name"].as_str().unwrap_or("?"),
        spec["tag"].as_str().unwrap_or("?"),
        spec["digest"].as_str().unwrap_or("?"),
        spec["size"],
        spec["kind"].as_str().unwrap_or("?"),
    );
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
