//! Skiff's control plane: the durable store, the Kubernetes API server, and (in
//! later issues) the scheduler, the controllers and the node gateway.

pub mod apiserver;
