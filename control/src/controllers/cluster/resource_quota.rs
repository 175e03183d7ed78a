//! The ResourceQuota controller, as Kubernetes' (`pkg/controller/resourcequota`):
//! keeps each quota's `status.hard` (its `spec.hard`) and `status.used` (what
//! the namespace's objects use now, counted as `admission/resource_quota/compute.rs`
//! says). Admission charges a quota as it admits; this recount is what gives
//! back what deleted and finished objects held.
//!
//! A recount reads the quota before the objects and writes on the quota's
//! revision: a create charged in between changes that revision, so the write
//! fails and the count is taken again, never losing a charge.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ResourceQuota;
use serde_json::{Map, Value, json};
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::ApiError;
use tokio::sync::mpsc;

use crate::admission::resource_quota::{compute, quota_type};
use crate::admission::resources::{ResourceList, list_at, show};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::informer::{Informer, ObjectRef, object_ref};
use crate::registry::{Registry, prefix};
use crate::store::WatchItem;

pub const NAME: &str = "resourcequota-controller";

/// A full recount of every quota this often, for what no watch covers (a
/// pod stuck terminating past its grace period, kinds counted by
/// `count/<resource>` only). Kubernetes' default is 5 minutes.
const RESYNC: Duration = Duration::from_secs(30);

/// Kinds whose changes requeue their namespace's quotas at once, besides pods.
const WATCHED: [&str; 4] = ["Service", "ConfigMap", "Secret", "PersistentVolumeClaim"];

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let (registry, pods) = (deps.registry, deps.informers.pods);
    let quotas: Informer<ResourceQuota> = Informer::start(&registry);
    let (keys, triggered) = mpsc::unbounded_channel();
    for kind in WATCHED {
        if let Some(rt) = by_kind("v1", kind) {
            tokio::spawn(watch_kind(
                registry.clone(),
                rt,
                quotas.clone(),
                keys.clone(),
            ));
        }
    }
    let by_namespace = quotas.clone();
    Controller::new(NAME, &quotas)
        // What a namespace's pods use changes with any of them.
        .watches(&pods, move |pod| {
            quotas_of(&by_namespace, meta::namespace(pod).unwrap_or_default())
        })
        .triggered_by(triggered)
        .resync_every(RESYNC)
        .run(2, Arc::new(registry), |registry, key| async move {
            reconcile(&registry, key).await
        })
        .await;
}

/// Every quota of `namespace`.
fn quotas_of(quotas: &Informer<ResourceQuota>, namespace: &str) -> Vec<ObjectRef> {
    quotas
        .list(Some(namespace), |_| true)
        .iter()
        .map(|quota| object_ref(quota))
        .collect()
}

/// Requeues a namespace's quotas on every change of one kind, watched
/// straight from the store (no cache of the objects is needed).
async fn watch_kind(
    registry: Registry,
    rt: &'static ResourceType,
    quotas: Informer<ResourceQuota>,
    keys: mpsc::UnboundedSender<ObjectRef>,
) {
    loop {
        let from = match registry.list(rt, None, None, Some(1), &|_| true) {
            Ok(page) => page.revision,
            Err(e) => {
                tracing::debug!(controller = NAME, error = %e, "list failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(mut watch) = registry.store().watch(prefix(rt, None), from, None) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok(item)) = watch.next().await {
            if let WatchItem::Event(event) = item {
                for key in quotas_of(&quotas, &event.key.namespace) {
                    if keys.send(key).is_err() {
                        return; // The controller has stopped.
                    }
                }
            }
        }
        // The watch broke (compacted, or the store is closing): a recount of
        // everything covers what was missed.
        for quota in quotas.list(None, |_| true) {
            if keys.send(object_ref(&quota)).is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reconcile(registry: &Registry, key: ObjectRef) -> Result<Action, ApiError> {
    let quota_rt = quota_type().ok_or_else(|| ApiError::internal("no ResourceQuota kind"))?;
    // Read the quota first (see the module comment), from the store: the
    // cache may be behind a charge.
    let Some(quota) = registry.try_get(quota_rt, &key.0, &key.1)? else {
        return Ok(Action::Done);
    };
    let hard: ResourceList = list_at(&quota, "/spec/hard")
        .into_iter()
        .map(|(k, v)| (k, show(&v)))
        .collect();
    let scopes = compute::Quota::from_status(&quota).scopes;
    let mut objects: Vec<(&'static ResourceType, Value)> = Vec::new();
    for rt in compute::kinds_for(&hard) {
        let page = registry.list(rt, Some(&key.0), None, None, &|_| true)?;
        objects.extend(page.items.into_iter().map(|o| (rt, o)));
    }
    let used = compute::namespace_usage(
        &hard,
        &scopes,
        objects.iter().map(|(rt, o)| (*rt, o)),
        jiff::Timestamp::now(),
    );
    let to_map = |list: ResourceList| -> Map<String, Value> {
        list.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    };
    let status = json!({"hard": to_map(hard), "used": to_map(used)});
    crate::controllers::write_status(registry, &quota, status, NAME).await?;
    Ok(Action::Done)
}
