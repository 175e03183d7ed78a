//! Admission: what the API server fills in and refuses on a create, after the
//! object's defaults and around its validation, as Kubernetes' admission
//! plugins do. The registry calls it, so every create passes, whoever sends
//! it: a user, or a controller making a ReplicaSet's pods.
//!
//! - `service_account.rs`: a pod runs as `default` unless it names a
//!   ServiceAccount, and the one it names must exist.
//! - `limit_range.rs` (rules in `limit_range/compute.rs`): LimitRange
//!   defaults and bounds for pods.
//! - `resource_quota.rs` (rules in `resource_quota/compute.rs`, shared with
//!   the quota controller): a create past a ResourceQuota is refused, one
//!   within is charged in the object's own commit; so is what an update of
//!   a Service or a claim adds.
//! - `host_path.rs`: the API server's half of the hostPath policy (it
//!   explains the split with the node).
//! - `resources.rs`: resource lists (quantities summed, compared, printed).
//!
//! Order, as Kubernetes': [`mutate`] (after defaults, before validation),
//! then the object's validation, then [`validate`], which ends with the quota
//! so that only what is otherwise admitted is charged.

mod host_path;
mod limit_range;
pub mod resource_quota;
pub mod resources;
pub mod service_account;

use serde_json::Value;
use skiff_api::meta;
use skiff_api::resource::ResourceType;
use skiff_api::status::{ApiError, Details, Reason};

use crate::registry::{Registry, Result};
use crate::store::Op;

fn is_pod(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Pod"
}

/// The mutating stage of a create: a pod's ServiceAccount and LimitRange
/// defaults.
pub fn mutate(registry: &Registry, rt: &ResourceType, obj: &mut Value) -> Result<()> {
    if is_pod(rt) {
        service_account::default_name(obj);
        limit_range::apply_defaults(registry, obj)?;
        // The defaults may change the pod's QoS class (set before admission).
        let qos = skiff_api::defaults::qos_class(obj);
        if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("qosClass".into(), qos.into());
        }
    }
    Ok(())
}

/// Whether [`validate`] may refuse or charge a create of `rt` (pods, and
/// whatever a ResourceQuota counts); a kind it never reads can be created
/// in another write's commit ([`Registry::create_op`]).
pub fn validates(rt: &ResourceType) -> bool {
    is_pod(rt) || resource_quota::counts(rt)
}

/// The validating stage of a create; returns the quota charges to commit
/// with the object.
pub async fn validate(registry: &Registry, rt: &ResourceType, obj: &Value) -> Result<Vec<Op>> {
    if is_pod(rt) {
        if let Some(why) = host_path::refusal(obj) {
            return Err(forbidden(rt, meta::name(obj).unwrap_or_default(), why));
        }
        limit_range::validate(registry, rt, obj)?;
        service_account::check_exists(registry, rt, obj).await?;
    }
    resource_quota::charge(registry, rt, None, obj)
}

/// The validating stage of an update of `old` to `new`: the quota charges
/// for what it adds, to commit with the object.
pub fn validate_update(
    registry: &Registry,
    rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> Result<Vec<Op>> {
    resource_quota::charge(registry, rt, Some(old), new)
}

/// `admission.NewForbidden`: 403 with `<resource> "<name>" is forbidden: <why>`.
pub fn forbidden(rt: &ResourceType, name: &str, why: impl std::fmt::Display) -> ApiError {
    let resource = rt.qualified_resource();
    let message = if name.is_empty() {
        format!("{resource} is forbidden: {why}")
    } else {
        format!("{resource} \"{name}\" is forbidden: {why}")
    };
    let mut err = ApiError::new(Reason::Forbidden, message);
    err.details = Some(Box::new(Details::object(rt, name, Vec::new())));
    err
}
