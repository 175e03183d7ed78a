//! The garbage collector: acts on `ownerReferences` as Kubernetes' does.
//!
//! - A dependent whose owners are all gone is deleted (background propagation).
//! - An owner being deleted with the `orphan` finalizer has its reference removed
//!   from every dependent, then the finalizer is removed.
//! - An owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted first (foreground too, so whole trees go bottom-up); the
//!   finalizer is removed once none is left.
//!
//! It keeps an index of every object's uid and owners (Kubernetes' graph
//! builder), fed by one watch over the whole store; the objects a change
//! touched go to the controller runtime's work queue, keyed by store key since
//! they are of any kind, and are reconciled there with its backoff, panic
//! recovery and metrics.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::patch::PatchType;
use skiff_api::resource::{RESOURCES, ResourceType, by_resource_id};
use skiff_api::status::{ApiError, Reason};

use crate::controllers::Deps;
use crate::controllers::runtime::{Action, WorkQueue, run_workers};
use crate::registry::{DeleteOptions, PropagationPolicy, Registry, Subresource, WriteOptions};
use crate::registry::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::store::{EventType, KeyPrefix, ObjectKey, StoreError, WatchItem};

pub const NAME: &str = "garbage-collector";
const FIELD_MANAGER: &str = "skiff-garbage-collector";
/// How soon an owner in foreground deletion is looked at again while its
/// dependents are still going (their own deletions wake it too).
const DEPENDENTS_PENDING: Duration = Duration::from_millis(500);
const WORKERS: usize = 2;

/// Why a garbage collection step failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
enum GcError {
    #[error("unknown resource {0}")]
    UnknownResource(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("watch the store: {0}")]
    Store(#[from] StoreError),
    #[error("the store's watch ended")]
    WatchEnded,
}

type Result<T, E = GcError> = std::result::Result<T, E>;

/// Runs until the process ends.
pub async fn run(deps: Deps) {
    let registry = deps.registry;
    let index = Arc::new(Graph::default());
    let queue: Arc<WorkQueue<ObjectKey>> = WorkQueue::named(NAME);
    let feed = {
        let (registry, index, queue) = (registry.clone(), index.clone(), queue.clone());
        async move {
            loop {
                if let Err(e) = follow(&registry, &index, &queue).await {
                    tracing::warn!(error = %e, "garbage collector re-listing");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    let workers = run_workers(NAME, queue, WORKERS, move |key| {
        let (registry, index) = (registry.clone(), index.clone());
        async move { reconcile(&registry, &index, &key).await }
    });
    tokio::join!(feed, workers);
}

/// The index, shared by the feed (the only writer) and the reconciles.
#[derive(Default)]
struct Graph {
    inner: RwLock<Index>,
}

impl Graph {
    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the collector knows of every object.
#[derive(Default)]
struct Index {
    /// uid -> key.
    by_uid: HashMap<String, ObjectKey>,
    /// owner uid -> dependents.
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
    /// key -> (uid, owner uids).
    owners: HashMap<ObjectKey, (String, Vec<String>)>,
}

impl Index {
    fn insert(&mut self, key: &ObjectKey, obj: &Value) {
        self.remove(key);
        let uid = meta::uid(obj).unwrap_or_default().to_string();
        let owners: Vec<String> = meta::owner_references(obj)
            .iter()
            .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
            .collect();
        for owner in &owners {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
        }
        self.by_uid.insert(uid.clone(), key.clone());
        self.owners.insert(key.clone(), (uid, owners));
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<String> {
        let (uid, owners) = self.owners.remove(key)?;
        for owner in owners {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
        if self.by_uid.get(&uid) == Some(key) {
            self.by_uid.remove(&uid);
        }
        Some(uid)
    }

    fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Lists every object into the index, then follows the store's changes,
/// queueing the objects each change touched. Returns when the watch fails.
async fn follow(registry: &Registry, graph: &Graph, queue: &WorkQueue<ObjectKey>) -> Result<()> {
    // Subscribe first at the current revision, then list: nothing falls between.
    let start = registry.store().revision();
    let mut watch = registry
        .store()
        .watch(KeyPrefix::everything(), start, None)?;
    let mut listed = Index::default();
    let mut dirty = Vec::new();
    for rt in RESOURCES {
        let page = registry.list(rt, None, None, None, &|_| true)?;
        for obj in page.items {
            let key = crate::registry::key(
                rt,
                meta::namespace(&obj).unwrap_or_default(),
                meta::name(&obj).unwrap_or_default(),
            );
            listed.insert(&key, &obj);
            if needs_attention(&obj) {
                dirty.push(key);
            }
        }
    }
    *graph.write() = listed;
    for key in dirty {
        queue.add(key);
    }
    loop {
        let event = match watch.next().await {
            Some(Ok(WatchItem::Event(event))) => event,
            Some(Ok(WatchItem::Progress(_))) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(GcError::WatchEnded),
        };
        let mut touched = Vec::new();
        {
            let mut index = graph.write();
            match event.event_type {
                EventType::Deleted => {
                    if let Some(uid) = index.remove(&event.key) {
                        // Its dependents may now be orphans.
                        touched.extend(index.dependents_of(&uid));
                    }
                    // An owner waiting in foreground deletion may be done now.
                    for owner in meta::owner_references(&event.object) {
                        if let Some(owner_key) = owner
                            .get("uid")
                            .and_then(Value::as_str)
                            .and_then(|u| index.by_uid.get(u))
                        {
                            touched.push(owner_key.clone());
                        }
                    }
                }
                EventType::Added | EventType::Modified => {
                    index.insert(&event.key, &event.object);
                    let owners_changed = event.prev.as_ref().is_none_or(|p| {
                        meta::owner_references(p) != meta::owner_references(&event.object)
                    });
                    if needs_attention(&event.object)
                        && (owners_changed || meta::deletion_timestamp(&event.object).is_some())
                    {
                        touched.push(event.key.clone());
                    }
                }
            }
        }
        for key in touched {
            queue.add(key);
        }
    }
}

/// Whether an object may have garbage-collection work: it has owners, or it is
/// being deleted with a propagation finalizer.
fn needs_attention(obj: &Value) -> bool {
    !meta::owner_references(obj).is_empty() || has_propagation_finalizer(obj)
}

fn has_propagation_finalizer(obj: &Value) -> bool {
    meta::deletion_timestamp(obj).is_some()
        && meta::finalizers(obj)
            .iter()
            .any(|f| *f == ORPHAN_FINALIZER || *f == FOREGROUND_FINALIZER)
}

fn resource_of(key: &ObjectKey) -> Result<&'static ResourceType> {
    by_resource_id(&key.resource).ok_or_else(|| GcError::UnknownResource(key.resource.clone()))
}

async fn reconcile(registry: &Registry, graph: &Graph, key: &ObjectKey) -> Result<Action> {
    let done = Action::await_change();
    let rt = resource_of(key)?;
    let Some(obj) = registry.try_get(rt, &key.namespace, &key.name)? else {
        return Ok(done);
    };
    let uid = meta::uid(&obj).unwrap_or_default().to_string();
    let finalizers = meta::finalizers(&obj);
    if meta::deletion_timestamp(&obj).is_some() {
        if finalizers.contains(&ORPHAN_FINALIZER) {
            let dependents = graph.read().dependents_of(&uid);
            for dependent in dependents {
                remove_owner_reference(registry, &dependent, &uid).await?;
            }
            remove_finalizer(registry, rt, &obj, ORPHAN_FINALIZER).await?;
            return Ok(done);
        }
        if finalizers.contains(&FOREGROUND_FINALIZER) {
            let dependents = graph.read().dependents_of(&uid);
            let mut left = 0;
            for dependent in &dependents {
                if delete_dependent(registry, graph, dependent).await? {
                    left += 1;
                }
            }
            if left == 0 {
                remove_finalizer(registry, rt, &obj, FOREGROUND_FINALIZER).await?;
                return Ok(done);
            }
            tracing::debug!(%key, left, "dependents still being deleted");
            return Ok(Action::requeue_after(DEPENDENTS_PENDING));
        }
    }
    // A dependent: delete it when every owner is gone.
    let refs = meta::owner_references(&obj);
    if refs.is_empty() {
        return Ok(done);
    }
    let any_owner_alive = {
        let index = graph.read();
        refs.iter().any(|r| {
            r.get("uid")
                .and_then(Value::as_str)
                .is_some_and(|u| index.by_uid.contains_key(u))
        })
    };
    if any_owner_alive || meta::deletion_timestamp(&obj).is_some() {
        return Ok(done);
    }
    let opts = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match registry.delete(rt, &key.namespace, &key.name, &opts).await {
        Ok(_) => Ok(done),
        Err(e) if e.reason == Reason::NotFound => Ok(done),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a dependent of an owner in foreground deletion; returns whether it
/// is still there. One already being deleted is left to finish (its node, its
/// own finalizers): deleting it again would add `foregroundDeletion` back
/// after it was taken off, and a gracefully deleted pod would then never go.
/// As in Kubernetes, only a dependent with dependents of its own is deleted in
/// the foreground; a leaf goes in the background.
async fn delete_dependent(
    registry: &Registry,
    graph: &Graph,
    dependent: &ObjectKey,
) -> Result<bool> {
    let rt = resource_of(dependent)?;
    let Some(obj) = registry.try_get(rt, &dependent.namespace, &dependent.name)? else {
        return Ok(false);
    };
    if meta::deletion_timestamp(&obj).is_some() {
        return Ok(true);
    }
    let uid = meta::uid(&obj).unwrap_or_default();
    let leaf = graph.read().dependents_of(uid).is_empty();
    let policy = if leaf {
        PropagationPolicy::Background
    } else {
        PropagationPolicy::Foreground
    };
    let opts = DeleteOptions {
        propagation_policy: Some(policy),
        precondition_uid: Some(uid.to_string()),
        ..Default::default()
    };
    match registry
        .delete(rt, &dependent.namespace, &dependent.name, &opts)
        .await
    {
        Ok(d) => Ok(!d.gone),
        Err(e) if e.reason == Reason::NotFound => Ok(false),
        // Replaced meanwhile, or racing other writes: look again later.
        Err(e) if e.reason == Reason::Conflict => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Removes the owner reference with `owner_uid` from a dependent.
async fn remove_owner_reference(
    registry: &Registry,
    dependent: &ObjectKey,
    owner_uid: &str,
) -> Result<()> {
    let rt = resource_of(dependent)?;
    let Some(obj) = registry.try_get(rt, &dependent.namespace, &dependent.name)? else {
        return Ok(());
    };
    let refs: Vec<Value> = meta::owner_references(&obj)
        .iter()
        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
        .cloned()
        .collect();
    let patch = json!({
        "metadata": {
            "resourceVersion": meta::resource_version(&obj),
            "ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) },
        }
    });
    write_patch(registry, rt, &obj, patch).await
}

async fn remove_finalizer(
    registry: &Registry,
    rt: &ResourceType,
    obj: &Value,
    finalizer: &str,
) -> Result<()> {
    let rest: Vec<&str> = meta::finalizers(obj)
        .into_iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = json!({
        "metadata": {
            "resourceVersion": meta::resource_version(obj),
            "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        }
    });
    write_patch(registry, rt, obj, patch).await
}

async fn write_patch(
    registry: &Registry,
    rt: &ResourceType,
    obj: &Value,
    patch: Value,
) -> Result<()> {
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let ns = meta::namespace(obj).unwrap_or_default();
    let name = meta::name(obj).unwrap_or_default();
    match registry
        .patch(
            rt,
            ns,
            name,
            PatchType::Merge,
            patch,
            Subresource::Main,
            &opts,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
