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
use serde_json::{Map, Value, json};
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::ApiError;

use super::runtime::{Action, WorkQueue, run_workers};
use crate::admission::resource_quota::{compute, quota_type};
use crate::admission::resources::{ResourceList, list_at, show};
use crate::informer::{Change, Informer, ObjectRef, object_ref};
use crate::registry::{Registry, prefix};
use crate::store::WatchItem;

const NAME: &str = "resourcequota-controller";

/// A full recount of every quota this often, for what no watch covers (a
/// pod stuck terminating past its grace period, kinds counted by
/// `count/<resource>` only). Kubernetes' default is 5 minutes.
const RESYNC: Duration = Duration::from_secs(30);

/// Kinds whose changes requeue their namespace's quotas at once, besides pods.
const WATCHED: [&str; 4] = ["Service", "ConfigMap", "Secret", "PersistentVolumeClaim"];

/// Runs the controller until the process ends.
pub async fn run(registry: Registry, pods: Informer) {
    let Some(quota_rt) = quota_type() else {
        return;
    };
    let quotas = Informer::start(&registry, quota_rt);
    let queue: Arc<WorkQueue<ObjectRef>> = WorkQueue::new();
    tokio::spawn(feed(quotas.clone(), pods, queue.clone()));
    for kind in WATCHED {
        if let Some(rt) = by_kind("v1", kind) {
            tokio::spawn(watch_kind(
                registry.clone(),
                rt,
                quotas.clone(),
                queue.clone(),
            ));
        }
    }
    run_workers(NAME, queue, 2, move |key| reconcile(registry.clone(), key)).await;
}

/// Queues every quota of `namespace`.
fn requeue_namespace(quotas: &Informer, queue: &WorkQueue<ObjectRef>, namespace: &str) {
    for quota in quotas.list(Some(namespace), |_| true) {
        queue.add(object_ref(&quota));
    }
}

async fn feed(quotas: Informer, pods: Informer, queue: Arc<WorkQueue<ObjectRef>>) {
    let mut quota_changes = quotas.subscribe();
    let mut pod_changes = pods.subscribe();
    quotas.synced().await;
    let all = |queue: &WorkQueue<ObjectRef>| {
        for quota in quotas.list(None, |_| true) {
            queue.add(object_ref(&quota));
        }
    };
    all(&queue);
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            change = quota_changes.next() => match change {
                Some(Change::Object { object, .. }) => queue.add(object_ref(&object)),
                Some(Change::Resync) => all(&queue),
                None => return,
            },
            change = pod_changes.next() => match change {
                Some(Change::Object { object, .. }) => {
                    requeue_namespace(&quotas, &queue, meta::namespace(&object).unwrap_or_default());
                }
                Some(Change::Resync) => all(&queue),
                None => return,
            },
            _ = resync.tick() => all(&queue),
        }
    }
}

/// Requeues a namespace's quotas on every change of one kind, watched
/// straight from the store (no cache of the objects is needed).
async fn watch_kind(
    registry: Registry,
    rt: &'static ResourceType,
    quotas: Informer,
    queue: Arc<WorkQueue<ObjectRef>>,
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
                requeue_namespace(&quotas, &queue, &event.key.namespace);
            }
        }
        // The watch broke (compacted, or the store is closing): a recount of
        // everything covers what was missed.
        for quota in quotas.list(None, |_| true) {
            queue.add(object_ref(&quota));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reconcile(registry: Registry, key: ObjectRef) -> Result<Action, ApiError> {
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
    super::write_status(&registry, &quota, status, NAME).await?;
    Ok(Action::Done)
}
