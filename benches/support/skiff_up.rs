//! The all-in-one `skiff up` the `pods` and `config` benchmarks run: started
//! on free ports with its data on the real disk, ready once its node says it
//! is up, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::api_client::Endpoint;

/// The binary under test.
pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");
/// The name of its node.
pub const NODE: &str = "bench-node";
/// How long it may take to say its node is up.
const DEADLINE: Duration = Duration::from_secs(120);

/// A running `skiff up` process and where it serves.
pub struct SkiffUp {
    child: Child,
    pub api: Endpoint,
}

impl SkiffUp {
    /// Starts `skiff up` on free ports with its data in `dir` and waits until
    /// its node has said it is up. Its logs go to `dir/skiff.log`.
    pub fn start(dir: &Path, max_pods: usize) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join("skiff.log")).context("create the log file")?;
        let mut child = Command::new(SKIFF)
            .arg("up")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--api-addr", "127.0.0.1:0", "--quic-addr", "127.0.0.1:0"])
            .args(["--name", NODE, "--http-port", "0"])
            // Free ports, so a run beside another cluster on this host works.
            .args(["--proxy-port", "0", "--metrics-port", "0"])
            .arg("--max-pods")
            .arg(max_pods.max(1).to_string())
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {SKIFF} up"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no stdout of the child");
        };
        // From here on, dropping `starting` stops the process.
        let mut starting = Starting(Some(child));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining stdout so the process never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let mut api = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).with_context(|| {
                format!(
                    "skiff up did not say its node is up within {DEADLINE:?} (log: {})",
                    dir.join("skiff.log").display()
                )
            })?;
            if let Some(addr) = line.trim().strip_prefix("Skiff API on https://") {
                let addr: SocketAddr = addr.parse().context("parse the API address")?;
                api = Some(Endpoint::from_kubeconfig(
                    &dir.join("data").join("kubeconfig"),
                    addr,
                )?);
            }
            if line.trim() == format!("Node {NODE} is up") {
                break;
            }
        }
        let api = api.context("skiff up printed no API address")?;
        let child = starting.0.take().context("the child")?;
        Ok(SkiffUp { child, api })
    }
}

/// A `skiff up` that has not said it is up yet: stopped if starting fails.
struct Starting(Option<Child>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SkiffUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SkiffUp {
    /// The process id (for its resident memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
