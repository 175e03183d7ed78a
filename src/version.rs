//! `skiff version`: the client's version and the cluster's.

use crate::client::ClusterArgs;

/// Print the client and server versions
///
/// Examples:
///   skiff version
///   skiff version --client      # without asking the cluster
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print only the client's version.
    #[arg(long)]
    pub client: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    if args.client {
        return Ok(());
    }
    let client = args.cluster.connect()?;
    let info = client.get_json("/version").await?;
    let server = info["gitVersion"].as_str().unwrap_or("unknown");
    println!("Server Version: {server}");
    Ok(())
}
