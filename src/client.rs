//! The `--kubeconfig` flag of the commands that talk to a cluster, as kubectl
//! finds it: the flag, then `$KUBECONFIG`, then the default data directory's
//! kubeconfig. The client itself is the `skiff-client` crate.

use std::path::PathBuf;

use skiff_client::ApiClient;

/// The `--kubeconfig` flag every command that talks to a cluster takes.
#[derive(clap::Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Kubeconfig of the cluster [default: $KUBECONFIG, else $SKIFF_DATA_DIR/kubeconfig, else ~/.skiff/kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

impl ClusterArgs {
    /// A client of the cluster these flags name.
    pub fn connect(&self) -> anyhow::Result<ApiClient> {
        let default = crate::default_data_dir().join("kubeconfig");
        ApiClient::discover(self.kubeconfig.as_deref(), &default)
    }
}
