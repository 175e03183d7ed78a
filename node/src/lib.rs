//! Skiff node: the agent that joins a control plane over QUIC ([`agent`]),
//! supervises pods in the runtime ([`supervisor`]), keeps its pods and
//! components on local disk so it carries on while the control plane is away,
//! and proxies Service traffic ([`proxy`]: NodePorts, Ingresses on the node's
//! HTTP port, and pod to pod across nodes). A library first: [`Node::builder`] embeds a node in any program;
//! `skiff node` wraps it. [`hollow`] nodes join and report pods like a node but
//! run nothing, for measuring the control plane.

mod agent;
pub mod hollow;
mod identity;
mod images;
mod metrics;
mod node;
mod outbox;
mod proxy;
mod state;
pub mod supervisor;

pub use agent::AgentError;
pub use node::{
    DEFAULT_HTTP_PORT, DEFAULT_MAX_PODS, DEFAULT_METRICS_PORT, DEFAULT_PROXY_PORT, Node,
    NodeBuilder, NodeConfig, NodeError,
};
pub use proxy::ProxyError;
pub use supervisor::host_path::AllowedHostPath;
