//! Skiff's runtime: the only crate that knows wasmtime. It turns a component plus a
//! pod's container spec into a running thing a node can supervise: an HTTP handler
//! ([`HttpContainer`]) or a command ([`CommandContainer`]).
//!
//! One [`Engine`] per node; [`Engine::load`] compiles a component (or reads it from
//! the on-disk cache) and detects its [`Kind`] from its exports.
//!
//! What a pod may use of its host comes from capabilities, one file each under
//! `capability/` (cli, volumes, outbound HTTP, limits); [`PodSpec`] has a group
//! of fields for each.

mod body;
mod cache;
mod capability;
mod command;
pub mod compile_worker;
mod engine;
mod error;
mod host;
mod http;
mod kind;
mod logs;

pub use body::{Body, BodyError};
pub use capability::cli::Cli;
pub use capability::config::{ConfigSource, StaticConfig};
pub use capability::limits::{InstanceReuse, Limits};
pub use capability::outbound_http::{OutboundFuture, OutboundHttp, OutboundRoute};
pub use capability::volumes::Mount;
pub use command::{CommandContainer, CommandMetrics, Exit, Stopper};
pub use engine::{Component, Engine, EngineConfig, KEEP_RESIDENT, LoadSource};
pub use error::{Result, RuntimeError};
pub use host::PodSpec;
pub use http::{HttpContainer, HttpMetrics};
pub use kind::Kind;
/// Helpers to make [`Body`]s.
pub mod bodies {
    pub use crate::body::{boxed, empty, full};
}
pub use logs::{LogBuffer, LogLine, LogStream};
