//! Skiff's resource model, shared by the control plane, the node and the CLI.
//!
//! Everything here is data and pure functions over it, with no I/O: the kinds the
//! API serves ([`resource`]), `Status` errors ([`status`]), object metadata
//! ([`meta`]), label and field selectors ([`selector`]), the patch formats
//! Kubernetes clients send ([`patch`]), resource quantities ([`quantity`]),
//! validation ([`validate`]), server-side table printing ([`table`]), Skiff's own
//! `Component` kind ([`component`]) and which Ingresses Skiff serves ([`ingress`]).
//! Objects are handled as `serde_json::Value` in their API JSON form; typed views
//! come from `k8s-openapi`.

pub mod component;
pub mod cron;
pub mod defaults;
pub mod duration;
mod generated;
pub mod ingress;
pub mod join;
pub mod json;
pub mod kubeconfig;
pub mod limits;
pub mod meta;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod resource;
pub mod selector;
pub mod status;
pub mod table;
pub mod validate;
pub mod wasi_config;
pub mod wire;

pub use k8s_openapi;
pub use status::{ApiError, FieldError, Reason};
