//! Skiff end to end: real `skiff` server and node processes, the real kubectl,
//! real components built from source, one module per area. One binary, as
//! wasmtime's `tests/all`: cargo links it once, and
//! `cargo test --test e2e services::` runs one area.

mod admission;
mod api_limits;
mod auth;
mod batch;
mod cli;
mod cli_commands;
mod compile;
mod component_push;
mod config;
mod crash;
mod daemon_sets;
mod gateway;
mod hollow;
mod ingress;
mod instance_reuse;
mod invalid;
mod kubectl;
mod kubectl_create;
mod limits;
mod node_auth;
mod nodes;
mod secrets;
mod services;
mod workloads;
