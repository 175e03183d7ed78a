//! `skiff node` processes for end-to-end tests: started against a
//! [`Server`](crate::cluster::Server), logging to `<data_dir>.log`, killed and
//! reaped on drop (also when the test panics, with the log's tail printed).

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::cluster::skiff;

/// A running `skiff node`.
pub struct NodeProcess {
    child: Option<Child>,
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts `skiff node --join ADDR --name NAME --data-dir DIR [--token T] EXTRA...`.
    pub fn start(
        join: SocketAddr,
        name: &str,
        data_dir: &Path,
        token: Option<&str>,
        extra: &[&str],
    ) -> NodeProcess {
        let mut cmd = Command::new(skiff());
        cmd.arg("node")
            .args(["--join", &join.to_string(), "--name", name])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("SKIFF_TOKEN");
        // Nodes of concurrent tests share the machine: each takes a free
        // peer port, HTTP port and metrics port unless the test chose one.
        if !extra.contains(&"--proxy-port") {
            cmd.args(["--proxy-port", "0"]);
        }
        if !extra.contains(&"--http-port") && !extra.contains(&"--no-http-port") {
            cmd.args(["--http-port", "0"]);
        }
        if !extra.contains(&"--metrics-port") {
            cmd.args(["--metrics-port", "0"]);
        }
        if let Some(token) = token {
            cmd.args(["--token", token]);
        }
        if !extra.contains(&"--memory-dir") {
            cmd.arg("--memory-dir")
                .arg(crate::cluster::memory_dir(data_dir));
        }
        NodeProcess::spawn(cmd, name, data_dir)
    }

    /// Runs any program that runs a node (e.g. one embedding `skiff_node`),
    /// logging its stdout and stderr to `<data_dir>.log`.
    pub fn spawn(mut cmd: Command, name: &str, data_dir: &Path) -> NodeProcess {
        let log = data_dir.with_extension("log");
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open node log");
        let out = log_file.try_clone().expect("clone the log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        NodeProcess {
            child: Some(child),
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id, while the node runs (a benchmark reads its memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap: the node gets no chance to say goodbye.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the node was already killed");
        child.kill().expect("kill the node");
        child.wait().expect("wait for the killed node")
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::cluster::remove_memory_dir(&self.data_dir);
        if std::thread::panicking() {
            eprintln!("---- skiff node {} log, last 60 lines ----", self.name);
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
    }
}
