//! LimitRange admission for pods: the namespace's LimitRanges fill in
//! defaults, then bound what the pod states. The rules are in `compute.rs`.

mod compute;

use serde_json::Value;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};

use super::forbidden;
use crate::registry::Registry;
use crate::registry::Result;

/// The namespace's LimitRanges.
fn ranges(registry: &Registry, namespace: &str) -> Result<Vec<Value>> {
    let Some(rt) = by_kind("v1", "LimitRange") else {
        return Ok(Vec::new());
    };
    Ok(registry
        .list(rt, Some(namespace), None, None, &|_| true)?
        .items)
}

/// Fills the defaults of the namespace's LimitRanges into `pod`.
pub fn apply_defaults(registry: &Registry, pod: &mut Value) -> Result<()> {
    let ranges = ranges(registry, meta::namespace(pod).unwrap_or_default())?;
    compute::apply_defaults(&ranges, pod);
    Ok(())
}

/// Refuses `pod` if it breaks a bound of one of the namespace's LimitRanges.
pub fn validate(registry: &Registry, rt: &ResourceType, pod: &Value) -> Result<()> {
    for range in ranges(registry, meta::namespace(pod).unwrap_or_default())? {
        if let Some(message) = compute::aggregate(&compute::validate(&range, pod)) {
            return Err(forbidden(rt, meta::name(pod).unwrap_or_default(), message));
        }
    }
    Ok(())
}
