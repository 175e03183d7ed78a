//! Skiff's control plane: the durable store ([`store`]), the object lifecycle
//! ([`registry`]), the Kubernetes API server ([`apiserver`]), pushed components
//! ([`components`]) and controllers ([`controllers`]); [`server`] starts them
//! together. The scheduler and node gateway come in later issues.

pub mod apiserver;
pub mod auth;
pub mod components;
pub mod controllers;
pub mod gateway;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod store;

pub use server::{ControlPlane, ControlPlaneConfig};
