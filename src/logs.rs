//! `skiff logs POD`: print a pod's container logs, streaming them as they
//! arrive.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::client::ClusterArgs;
use skiff_client::query;

/// Print the logs of a container in a pod
///
/// Examples:
///   skiff logs hello
///   skiff logs hello -c web --tail 20 -f
///   skiff logs pod/hello --since 10m --timestamps
///   skiff logs hello --previous      # the run before the last restart
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container [default: the pod's only container].
    #[arg(short, long)]
    pub container: Option<String>,
    /// Keep printing new lines as they are written.
    #[arg(short, long)]
    pub follow: bool,
    /// Print only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Print only lines newer than this, e.g. 10s, 5m, 1h.
    #[arg(long, value_parser = crate::duration::parse)]
    pub since: Option<Duration>,
    /// Prefix each line with its RFC 3339 time.
    #[arg(long)]
    pub timestamps: bool,
    /// The logs of the previous run of the container (before its last restart).
    #[arg(short, long)]
    pub previous: bool,
    /// Namespace of the pod [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let name = match args.pod.split_once('/') {
        Some((kind, name))
            if matches!(kind.to_ascii_lowercase().as_str(), "pod" | "pods" | "po") =>
        {
            name
        }
        Some((kind, _)) => {
            bail!("skiff logs reads pods; {kind:?} is not a pod type (pass POD or pod/POD)")
        }
        None => args.pod.as_str(),
    };
    let client = args.cluster.connect()?;
    let namespace = client.namespace(args.namespace.as_deref());
    let path = format!(
        "/api/v1/namespaces/{namespace}/pods/{name}/log{}",
        query(&params(&args))
    );
    let mut stream = client
        .stream(&path, "text/plain, application/json, */*")
        .await?;
    while let Some(chunk) = stream.chunk().await? {
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&chunk).and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // The reader went away (`| head`): stop quietly, as kubectl does.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("write the logs"),
        }
    }
    Ok(())
}

/// The query parameters of `PodLogOptions`.
fn params(args: &Args) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(c) = &args.container {
        out.push(("container", c.clone()));
    }
    if args.follow {
        out.push(("follow", "true".into()));
    }
    if args.tail >= 0 {
        out.push(("tailLines", args.tail.to_string()));
    }
    if let Some(since) = args.since {
        // Whole seconds, rounded up, at least one: the API's unit.
        let seconds = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        out.push(("sinceSeconds", seconds.max(1).to_string()));
    }
    if args.timestamps {
        out.push(("timestamps", "true".into()));
    }
    if args.previous {
        out.push(("previous", "true".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_become_pod_log_options() {
        let cli = Cli::parse_from([
            "logs",
            "hello",
            "-c",
            "web",
            "-f",
            "--tail",
            "20",
            "--since",
            "1m30s",
            "--timestamps",
            "-p",
        ]);
        assert_eq!(
            query(&params(&cli.args)),
            "?container=web&follow=true&tailLines=20&sinceSeconds=90&timestamps=true&previous=true"
        );
        let cli = Cli::parse_from(["logs", "hello"]);
        assert_eq!(query(&params(&cli.args)), "");
    }
}
