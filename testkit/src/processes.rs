//! A real cluster of processes on loopback, for tests and benchmarks that
//! need more than one node: `skiff server` and one `skiff node` per name and address.

use std::path::Path;

use crate::cluster::{Server, Skiff};
use crate::node::NodeProcess;
use crate::objects::{push_samples, token, wait_node_ready};

/// `skiff server` with its data in `dir/cp` and `samples` pushed as
/// `NAME:v1`, and a node per `(name, address)` with its data in `dir/<name>`,
/// each Ready before the next starts.
pub fn start(dir: &Path, samples: &[&str], nodes: &[(&str, &str)]) -> (Server, Vec<NodeProcess>) {
    let server = Server::start(&dir.join("cp"));
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, samples);
    let token = token(&skiff);
    let mut started = Vec::new();
    for (name, address) in nodes {
        started.push(NodeProcess::start(
            server.quic_addr(),
            name,
            &dir.join(name),
            Some(&token),
            &["--address", address],
        ));
        wait_node_ready(&server, name);
    }
    (server, started)
}
