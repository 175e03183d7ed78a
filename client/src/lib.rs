//! A client of Skiff's API, which is Kubernetes' own: used by the `skiff` CLI,
//! the end-to-end tests and the benchmarks, so all three reach a cluster the
//! same way.
//!
//! - [`tls`]: TLS settings and token from a kubeconfig, as client-go reads them.
//! - [`api`]: [`ApiClient`], requests and responses, [`StatusError`].
//! - [`discovery`]: which resources the server has, and their paths.
//! - [`watch`]: a watch's events as they arrive.

pub mod api;
pub mod discovery;
pub mod tls;
pub mod watch;

pub use api::{
    ACCEPT_JSON, ACCEPT_TABLE, ApiClient, ApiResponse, ResponseStream, StatusError, is_not_found,
    kubeconfig_path, query, urlencode,
};
pub use discovery::{Discovery, Resource};
pub use watch::{Watch, WatchEvent};
