//! Skiff's control plane (being assembled).

pub mod apiserver;
pub mod components;
pub mod store;
