//! Skiff's control plane: the durable store ([`store`]), the object lifecycle
//! ([`registry`]), the Kubernetes API server ([`apiserver`]), pushed components
//! ([`components`]) and controllers ([`controllers`]); [`server`] starts them
//! together with the watch caches ([`informer`]), the [`scheduler`], the node
//! [`gateway`] and [`events`]; [`at_rest`] keeps the keys Secrets are sealed
//! with on disk.

pub mod admission;
pub mod apiserver;
pub mod at_rest;
pub mod auth;
pub mod components;
pub mod controllers;
pub mod events;
pub mod gateway;
pub mod informer;
pub mod metrics;
pub mod registry;
pub mod scheduler;
pub mod server;
pub mod store;

pub use registry::strategy::DEFAULT_TOLERATION_SECONDS;
pub use server::{ControlPlane, ControlPlaneConfig};
