//! The namespace controller: empties a terminating namespace, then finalizes it.
//!
//! Deleting a namespace marks it Terminating (the registry does that); this controller
//! deletes every object inside it, waits until they are gone (finalizers and
//! graceful pod deletion included), and removes the `kubernetes` finalizer so the
//! namespace itself goes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{RESOURCES, ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};

use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::registry::{DeleteOptions, PropagationPolicy, Registry};

/// How long to wait before looking again at a namespace that is not empty yet.
const RETRY: Duration = Duration::from_millis(250);

/// Kubernetes' namespace controller waits (5 s there) before emptying a
/// terminating namespace, so that writes racing with the deletion are seen and
/// clients deleting a manifest that lists the namespace first can still delete
/// its other objects themselves.
const DELETION_GRACE: Duration = Duration::from_secs(2);

pub const NAME: &str = "namespace-controller";

/// Runs until the process ends.
pub async fn run(deps: Deps) {
    let registry = deps.registry;
    let Some(ns_type) = by_kind("v1", "Namespace") else {
        return;
    };
    Controller::new(NAME, &deps.informers.namespaces)
        .for_primaries_where(|ns| meta::deletion_timestamp(ns).is_some())
        .run(
            2,
            Arc::new(registry),
            move |registry, (_, name)| async move {
                match reconcile(&registry, ns_type, &name).await {
                    Ok(true) => Ok(Action::await_change()),
                    Ok(false) => Ok(Action::requeue_after(RETRY)),
                    Err(e) => Err(e),
                }
            },
        )
        .await;
}

/// Deletes what is left in a terminating namespace; finalizes it when empty.
/// Returns whether the namespace is done.
async fn reconcile(
    registry: &Registry,
    ns_type: &ResourceType,
    name: &str,
) -> Result<bool, ApiError> {
    let Some(ns) = registry.try_get(ns_type, "", name)? else {
        return Ok(true);
    };
    let Some(since) = meta::deletion_timestamp(&ns).and_then(meta::parse_timestamp) else {
        return Ok(true);
    };
    let waited = jiff::Timestamp::now().duration_since(since);
    if waited < jiff::SignedDuration::try_from(DELETION_GRACE).unwrap_or_default() {
        return Ok(false);
    }
    let mut remaining = 0usize;
    let opts = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    for rt in RESOURCES.iter().filter(|r| r.namespaced) {
        let page = registry.list(rt, Some(name), None, None, &|_| true)?;
        for item in page.items {
            remaining += 1;
            if meta::deletion_timestamp(&item).is_some() {
                continue; // Already going; wait for its finalizers or its node.
            }
            let item_name = meta::name(&item).unwrap_or_default();
            match registry.delete(rt, name, item_name, &opts).await {
                Ok(deleted) if deleted.gone => remaining -= 1,
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => remaining -= 1,
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    let finalizers: Vec<Value> = ns
        .at("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter(|v| v.as_str() != Some("kubernetes"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    match registry.finalize_namespace(name, json!(finalizers)).await {
        Ok(_) => Ok(true),
        Err(e) if e.reason == Reason::NotFound => Ok(true),
        Err(e) if e.reason == Reason::Conflict => Ok(false),
        Err(e) => Err(e),
    }
}
