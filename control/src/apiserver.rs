//! The Kubernetes API server (axum).

pub mod discovery;
pub mod openapi;
