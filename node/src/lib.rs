//! Skiff node: the agent that joins a control plane over QUIC ([`agent`]),
//! supervises pods in the runtime ([`supervisor`]), keeps its pods and
//! components on local disk so it carries on while the control plane is away,
//! and (later) proxies Service traffic. A library first: [`Node::builder`]
//! embeds a node in any program; `skiff node` wraps it. [`hollow`] nodes join
//! and report pods like a node but run nothing, for measuring the control plane.

mod agent;
pub mod hollow;
mod identity;
mod images;
mod node;
mod outbox;
mod state;
pub mod supervisor;

pub use agent::AgentError;
pub use node::{DEFAULT_MAX_PODS, Node, NodeBuilder, NodeConfig, NodeError};
