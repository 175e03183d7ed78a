//! `skiff up`: the embedded default, one process for the whole cluster.
//!
//! Today it runs the control plane with the defaults for one machine; the
//! node (which runs pods) joins it in-process once it exists (issue 4).

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::server::ServerArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plane = crate::server::start(args.server).await?;
    crate::server::serve_until_signal(plane).await
}
