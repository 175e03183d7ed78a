//! Controllers: level-triggered reconcile loops that move observed state toward
//! desired state (in the style of kube-runtime). Each reads the current state
//! from the store, never trusts that an event tells the whole story, and is safe
//! to run twice.
//!
//! A controller is a reconcile function on the [`runtime`], in the folder of
//! its concern ([`workload`], [`service`], [`node`], [`cluster`], [`access`]),
//! and one line in [`ALL`], from which the control plane starts every one.

pub mod access;
pub mod cluster;
pub mod node;
pub mod runtime;
pub mod service;
pub mod workload;

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_api::meta;
use skiff_api::status::{ApiError, Reason};

use crate::events::EventRecorder;
use crate::gateway::NodeLiveness;
use crate::informer::{Informer, Informers};
use crate::registry::{Registry, Subresource, WriteOptions};

/// What controllers are started with: the store, the shared caches, and
/// what the gateway knows of nodes. Each takes what it needs.
#[derive(Clone)]
pub struct Deps {
    pub registry: Registry,
    pub informers: Informers,
    pub events: EventRecorder,
    /// The RBAC authorizer's ClusterRole cache.
    pub cluster_roles: Informer<ClusterRole>,
    /// When each node was last heard from.
    pub liveness: NodeLiveness,
    /// How long a silent node stays Ready.
    pub node_grace_period: Duration,
}

/// How a controller is started: it runs until the process ends.
pub type Start = fn(Deps) -> BoxFuture<'static, ()>;

/// Every controller of the control plane, by its name in logs and metrics.
/// A new controller is one line here.
pub const ALL: &[(&str, Start)] = &[
    (crate::scheduler::NAME, |d| {
        Box::pin(crate::scheduler::run(d))
    }),
    (workload::replica_set::NAME, |d| {
        Box::pin(workload::replica_set::run(d))
    }),
    (workload::deployment::NAME, |d| {
        Box::pin(workload::deployment::run(d))
    }),
    (workload::daemon_set::NAME, |d| {
        Box::pin(workload::daemon_set::run(d))
    }),
    (workload::job::NAME, |d| Box::pin(workload::job::run(d))),
    (workload::cron_job::NAME, |d| {
        Box::pin(workload::cron_job::run(d))
    }),
    (workload::ttl_after_finished::NAME, |d| {
        Box::pin(workload::ttl_after_finished::run(d))
    }),
    (service::endpoint_slice::NAME, |d| {
        Box::pin(service::endpoint_slice::run(d))
    }),
    (service::endpoints::NAME, |d| {
        Box::pin(service::endpoints::run(d))
    }),
    (service::ingress_status::NAME, |d| {
        Box::pin(service::ingress_status::run(d))
    }),
    (service::service_load_balancer::NAME, |d| {
        Box::pin(service::service_load_balancer::run(d))
    }),
    (node::node_lifecycle::NAME, |d| {
        Box::pin(node::node_lifecycle::run(d))
    }),
    (node::taint_eviction::NAME, |d| {
        Box::pin(node::taint_eviction::run(d))
    }),
    (node::pod_gc::NAME, |d| Box::pin(node::pod_gc::run(d))),
    (cluster::namespace::NAME, |d| {
        Box::pin(cluster::namespace::run(d))
    }),
    (cluster::garbage_collector::NAME, |d| {
        Box::pin(cluster::garbage_collector::run(d))
    }),
    (cluster::resource_quota::NAME, |d| {
        Box::pin(cluster::resource_quota::run(d))
    }),
    (access::service_account::NAME, |d| {
        Box::pin(access::service_account::run(d))
    }),
    (access::cluster_role_aggregation::NAME, |d| {
        Box::pin(access::cluster_role_aggregation::run(d))
    }),
];

/// Writes a workload's status when it differs from what is stored. A
/// conflict is an error (retried with backoff): the object changed, so look again.
pub async fn write_status(
    registry: &Registry,
    obj: &Value,
    status: Value,
    field_manager: &str,
) -> Result<(), ApiError> {
    replace_status(registry, obj, status, field_manager)
        .await
        .map(drop)
}

/// [`write_status`] for a typed object: writes `status` unless it is
/// `current`, the status stored now. Returns the object as written (`None`:
/// unchanged, or the object is gone), for a controller that must read its
/// own write or write again.
pub async fn write_typed_status<K, S>(
    registry: &Registry,
    obj: &K,
    current: Option<&S>,
    status: &S,
    field_manager: &str,
) -> Result<Option<Value>, ApiError>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    S: serde::Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let status = serde_json::to_value(status)
        .map_err(|e| ApiError::internal(format!("encoding a status: {e}")))?;
    // The status subresource takes only the status (and the resourceVersion
    // precondition) from the body; the rest stays as stored.
    let meta = obj.metadata();
    let updated = serde_json::json!({
        "apiVersion": K::API_VERSION,
        "kind": K::KIND,
        "metadata": {"name": meta.name, "namespace": meta.namespace,
            "resourceVersion": meta.resource_version},
        "status": status,
    });
    put_status(registry, updated, field_manager).await
}

/// [`write_status`], returning the object as stored afterwards (`obj` with the
/// new status and resourceVersion) when it wrote, so that a controller can
/// write again without waiting for its cache. `None`: unchanged, or gone.
pub async fn replace_status(
    registry: &Registry,
    obj: &Value,
    status: Value,
    field_manager: &str,
) -> Result<Option<Value>, ApiError> {
    if obj.get("status") == Some(&status) {
        return Ok(None);
    }
    let mut updated = obj.clone();
    updated["status"] = status;
    put_status(registry, updated, field_manager).await
}

/// Writes `updated` through its status subresource; `None` if it is gone.
async fn put_status(
    registry: &Registry,
    updated: Value,
    field_manager: &str,
) -> Result<Option<Value>, ApiError> {
    let rt = skiff_api::resource::by_kind(
        updated
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        updated
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
    .ok_or_else(|| ApiError::internal("unknown kind"))?;
    let opts = WriteOptions {
        field_manager: field_manager.into(),
        ..Default::default()
    };
    let namespace = meta::namespace(&updated).unwrap_or_default().to_string();
    let name = meta::name(&updated).unwrap_or_default().to_string();
    match registry
        .update(rt, &namespace, &name, updated, Subresource::Status, &opts)
        .await
    {
        Ok(written) => Ok(Some(written.object)),
        Err(e) if e.reason == Reason::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
