//! Controllers: level-triggered reconcile loops that move observed state toward
//! desired state (in the style of kube-runtime). Each reads the current state
//! from the store, never trusts that an event tells the whole story, and is safe
//! to run twice.

pub mod cluster_role_aggregation;
pub mod cron_job;
pub mod daemon_set;
pub mod deployment;
pub mod endpoint_slice;
pub mod endpoints;
pub mod garbage_collector;
pub mod ingress_status;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod pod_control;
pub mod pod_gc;
pub mod replica_set;
pub mod resource_quota;
pub mod runtime;
pub mod service_account;
pub mod service_endpoints;
pub mod service_load_balancer;
pub mod service_triggers;
pub mod taint_eviction;
pub mod ttl_after_finished;

use serde_json::Value;
use skiff_api::meta;
use skiff_api::status::{ApiError, Reason};

use crate::registry::{Registry, Subresource, WriteOptions};

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
    let rt = skiff_api::resource::by_kind(
        obj.get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        obj.get("kind").and_then(Value::as_str).unwrap_or_default(),
    )
    .ok_or_else(|| ApiError::internal("unknown kind"))?;
    let mut updated = obj.clone();
    updated["status"] = status;
    let opts = WriteOptions {
        field_manager: field_manager.into(),
        ..Default::default()
    };
    match registry
        .update(
            rt,
            meta::namespace(obj).unwrap_or_default(),
            meta::name(obj).unwrap_or_default(),
            updated,
            Subresource::Status,
            &opts,
        )
        .await
    {
        Ok(written) => Ok(Some(written.object)),
        Err(e) if e.reason == Reason::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
