//! The garbage collector: acts on `ownerReferences` as Kubernetes' does.
//!
//! - A dependent whose owners are all gone is deleted (background propagation).
//! - An owner being deleted with the `orphan` finalizer has its reference removed
//!   from every dependent, then the finalizer is removed.
//! - An owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted first (foreground too, so whole trees go bottom-up); the
//!   finalizer is removed once none is left.
//!
//! It keeps an index of every object's uid and owners, fed by one watch over the
//! whole store, and reconciles only the objects a change touched.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::patch::PatchType;
use skiff_api::resource::{RESOURCES, ResourceType, by_resource_id};
use skiff_api::status::Reason;

use crate::controllers::Deps;
use crate::registry::{DeleteOptions, PropagationPolicy, Registry, Subresource, WriteOptions};
use crate::registry::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::store::{EventType, KeyPrefix, ObjectKey, WatchItem};

pub const NAME: &str = "garbage-collector";
const FIELD_MANAGER: &str = "skiff-garbage-collector";
/// How long to wait before retrying work that could not finish.
const RETRY: Duration = Duration::from_millis(500);

/// Runs until the store closes.
pub async fn run(deps: Deps) {
    let registry = deps.registry;
    loop {
        if let Err(e) = run_once(&registry).await {
            tracing::warn!(error = %e, "garbage collector restarting");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
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

async fn run_once(registry: &Registry) -> Result<(), String> {
    let mut index = Index::default();
    let mut dirty: BTreeSet<ObjectKey> = BTreeSet::new();
    // Subscribe first at the current revision, then list: nothing falls between.
    let start = registry.store().revision();
    let mut watch = registry
        .store()
        .watch(KeyPrefix::everything(), start, None)
        .map_err(|e| e.to_string())?;
    for rt in RESOURCES {
        let page = registry
            .list(rt, None, None, None, &|_| true)
            .map_err(|e| e.to_string())?;
        for obj in page.items {
            let key = crate::registry::key(
                rt,
                meta::namespace(&obj).unwrap_or_default(),
                meta::name(&obj).unwrap_or_default(),
            );
            index.insert(&key, &obj);
            if needs_attention(&obj) {
                dirty.insert(key);
            }
        }
    }
    // Work that could not finish is retried after RETRY, not at every watch
    // event: an owner waiting for its pods would otherwise be looked at again
    // for each status update those pods make while they stop.
    let mut retry: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        while let Some(key) = dirty.pop_first() {
            match reconcile(registry, &index, &key).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(%key, error = %e, "garbage collection will retry");
                    retry.insert(key);
                }
            }
        }
        if !retry.is_empty() && retry_at.is_none() {
            retry_at = Some(tokio::time::Instant::now() + RETRY);
        }
        let next = match retry_at {
            None => watch.next().await,
            Some(at) => match tokio::time::timeout_at(at, watch.next()).await {
                Ok(item) => item,
                Err(_) => {
                    dirty.append(&mut retry);
                    retry_at = None;
                    continue;
                }
            },
        };
        let event = match next {
            Some(Ok(WatchItem::Event(event))) => event,
            Some(Ok(WatchItem::Progress(_))) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("watch ended".into()),
        };
        match event.event_type {
            EventType::Deleted => {
                if let Some(uid) = index.remove(&event.key) {
                    // Its dependents may now be orphans.
                    dirty.extend(index.dependents_of(&uid));
                }
                // An owner waiting in foreground deletion may be done now.
                for owner in meta::owner_references(&event.object) {
                    if let Some(owner_key) = owner
                        .get("uid")
                        .and_then(Value::as_str)
                        .and_then(|u| index.by_uid.get(u))
                    {
                        dirty.insert(owner_key.clone());
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
                    dirty.insert(event.key.clone());
                }
            }
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

fn resource_of(key: &ObjectKey) -> Result<&'static ResourceType, String> {
    by_resource_id(&key.resource).ok_or_else(|| format!("unknown resource {}", key.resource))
}

async fn reconcile(registry: &Registry, index: &Index, key: &ObjectKey) -> Result<(), String> {
    let rt = resource_of(key)?;
    let Some(obj) = registry
        .try_get(rt, &key.namespace, &key.name)
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let uid = meta::uid(&obj).unwrap_or_default().to_string();
    let finalizers = meta::finalizers(&obj);
    if meta::deletion_timestamp(&obj).is_some() {
        if finalizers.contains(&ORPHAN_FINALIZER) {
            for dependent in index.dependents_of(&uid) {
                remove_owner_reference(registry, &dependent, &uid).await?;
            }
            return remove_finalizer(registry, rt, &obj, ORPHAN_FINALIZER).await;
        }
        if finalizers.contains(&FOREGROUND_FINALIZER) {
            let mut left = 0;
            for dependent in &index.dependents_of(&uid) {
                if delete_dependent(registry, index, dependent).await? {
                    left += 1;
                }
            }
            if left == 0 {
                return remove_finalizer(registry, rt, &obj, FOREGROUND_FINALIZER).await;
            }
            return Err(format!("{left} dependents still being deleted"));
        }
    }
    // A dependent: delete it when every owner is gone.
    let refs = meta::owner_references(&obj);
    if refs.is_empty() {
        return Ok(());
    }
    let any_owner_alive = refs.iter().any(|r| {
        r.get("uid")
            .and_then(Value::as_str)
            .is_some_and(|u| index.by_uid.contains_key(u))
    });
    if any_owner_alive || meta::deletion_timestamp(&obj).is_some() {
        return Ok(());
    }
    let opts = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match registry.delete(rt, &key.namespace, &key.name, &opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
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
    index: &Index,
    dependent: &ObjectKey,
) -> Result<bool, String> {
    let rt = resource_of(dependent)?;
    let Some(obj) = registry
        .try_get(rt, &dependent.namespace, &dependent.name)
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    if meta::deletion_timestamp(&obj).is_some() {
        return Ok(true);
    }
    let uid = meta::uid(&obj).unwrap_or_default();
    let policy = if index.dependents_of(uid).is_empty() {
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
        Err(e) => Err(e.to_string()),
    }
}

/// Removes the owner reference with `owner_uid` from a dependent.
async fn remove_owner_reference(
    registry: &Registry,
    dependent: &ObjectKey,
    owner_uid: &str,
) -> Result<(), String> {
    let rt = resource_of(dependent)?;
    let Some(obj) = registry
        .try_get(rt, &dependent.namespace, &dependent.name)
        .map_err(|e| e.to_string())?
    else {
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
) -> Result<(), String> {
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
) -> Result<(), String> {
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
        Err(e) => Err(e.to_string()),
    }
}
