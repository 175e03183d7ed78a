//! `skiff secrets rotate-key`: seal every stored Secret under a new key.

use std::path::PathBuf;

use anyhow::Context;

/// Manage how Secrets are sealed at rest.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(clap::Subcommand)]
pub enum SecretsCommand {
    /// Seal every Secret under a new key and remove the old one
    ///
    /// Secrets are stored sealed with AES-256-GCM under the key in
    /// <data-dir>/encryption-config.yaml (a Kubernetes EncryptionConfiguration).
    /// This adds a new random key first in that file, seals every Secret and
    /// every entry of the watch history that holds one under it, then removes
    /// the old key. The server on the data directory must be stopped: the
    /// store is locked while it runs.
    ///
    /// Example:
    ///   skiff secrets rotate-key --data-dir ~/.skiff
    #[command(verbatim_doc_comment)]
    RotateKey(RotateKeyArgs),
}

#[derive(clap::Args)]
pub struct RotateKeyArgs {
    /// The server's data directory [default: $SKIFF_DATA_DIR or ~/.skiff].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        SecretsCommand::RotateKey(args) => rotate_key(args),
    }
}

fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    let rotation = skiff_control::at_rest::rotate_key(&data_dir)
        .with_context(|| format!("rotate the Secrets key in {}", data_dir.display()))?;
    println!(
        "Secrets are sealed with key {:?} ({} Secrets and {} watch-history entries sealed again); removed {}",
        rotation.key,
        rotation.resealed.objects,
        rotation.resealed.events,
        match &rotation.removed[..] {
            [] => "no key".to_string(),
            keys => format!("key {}", keys.join(", ")),
        }
    );
    Ok(())
}
