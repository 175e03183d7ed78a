//! ResourceQuota admission: a create (or an update of a Service or a claim:
//! [`compute::checks_updates`]) that would take a namespace past one of its
//! quotas is refused; one that fits is charged to every quota it touches
//! in the same store commit as the object itself. Each charge is conditional
//! on the quota's revision, so of two creates racing for the last unit one
//! commit fails, is checked again against the quota it lost to, and is
//! refused (Kubernetes' quota admission serializes the same way, by updating
//! `status.used` with optimistic concurrency before it admits). The quota
//! controller later recounts `status.used` from the objects themselves,
//! which returns what deletions free. The rules are in `compute.rs`.

pub mod compute;

use std::sync::Arc;

use serde_json::Value;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};

use super::forbidden;
use crate::registry::{Registry, Result, key};
use crate::store::{Action, Op, Precondition, object_revision};

/// The ResourceQuota kind.
pub fn quota_type() -> Option<&'static ResourceType> {
    by_kind("v1", "ResourceQuota")
}

/// Kinds the quota admission ignores (Kubernetes' `DefaultIgnoredResources`).
fn ignored(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "events"
}

/// Whether a create of `rt` is checked against the namespace's quotas.
pub fn counts(rt: &ResourceType) -> bool {
    rt.namespaced && !ignored(rt)
}

/// Checks the write of `obj` (a create, or an update of `old`) against every
/// quota of its namespace; the ops that charge them, to commit with the
/// object.
pub fn charge(
    registry: &Registry,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &Value,
) -> Result<Vec<Op>> {
    let Some(quota_rt) = quota_type() else {
        return Ok(Vec::new());
    };
    if !counts(rt) || (old.is_some() && !compute::checks_updates(rt)) {
        return Ok(Vec::new());
    }
    let delta = compute::delta(rt, old, obj);
    if delta.is_empty() {
        return Ok(Vec::new());
    }
    let namespace = meta::namespace(obj).unwrap_or_default();
    let quotas = registry.list(quota_rt, Some(namespace), None, None, &|_| true)?;
    let mut ops = Vec::new();
    for quota in quotas.items {
        match compute::check(&compute::Quota::from_status(&quota), rt, obj, &delta) {
            compute::Check::Untouched => {}
            compute::Check::Refused(why) => {
                return Err(forbidden(rt, meta::name(obj).unwrap_or_default(), why));
            }
            compute::Check::Charge(used) => {
                let name = meta::name(&quota).unwrap_or_default().to_string();
                let revision = object_revision(&quota).unwrap_or(0);
                let mut charged = quota.clone();
                charged["status"]["used"] = serde_json::to_value(used)
                    .map_err(|e| skiff_api::ApiError::internal(e.to_string()))?;
                ops.push(Op {
                    key: key(quota_rt, namespace, &name),
                    precondition: Precondition::Revision(revision),
                    action: Action::Put(charged),
                    prev: Some(Arc::new(quota)),
                });
            }
        }
    }
    Ok(ops)
}
