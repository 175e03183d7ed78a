//! Watch caches (informers, in client-go's words; reflectors in kube-rs'): one
//! resource kept in memory by a list and then a watch, so that the scheduler and
//! the controllers read without touching the store.
//!
//! An [`Informer`] has a reader side ([`Cache::list`], [`Cache::get`]) and a
//! change feed ([`Cache::subscribe`]). A watcher that falls behind the store's
//! compaction window lists again; a subscriber that falls behind the feed is told
//! to resync (look at everything again), never silently given a gap.
//!
//! An informer is typed by the kind it caches (`Informer<Pod>`), so caches of
//! different kinds cannot be swapped by mistake; [`Informer::get_typed`] and
//! [`Informer::list_typed`] give the cached objects as their `k8s-openapi`
//! types, each decoded at most once per revision and shared by every reader.
//! [`Cache`] is the same cache without its type, for code that handles caches
//! of several kinds alike (the controller runtime's triggers).
//!
//! [`Cache::wait_for`] gives a controller read-your-writes: after a write at
//! revision R, it waits until the cache has seen R, so the next reconcile does not
//! act again on what it already did (client-go's "expectations", done by
//! revision because the store has one revision for everything).

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skiff_api::meta;
use skiff_api::resource::ResourceType;
use skiff_api::status::ApiError;
use tokio::sync::{broadcast, watch};

use crate::registry::{Registry, prefix};
use crate::store::{EventType, Revision, StoreError, WatchItem};

/// How many changes a subscriber may fall behind before it must resync.
const FEED_CAPACITY: usize = 16_384;
/// How often an idle watch reports progress (moves the observed revision on).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// The pause before listing again after the watch broke.
const RELIST_PAUSE: Duration = Duration::from_millis(200);

/// (namespace, name); the namespace is empty for cluster-scoped objects.
pub type ObjectRef = (String, String);

/// Why a list and watch stopped, and is started again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelistError {
    /// The list failed.
    #[error(transparent)]
    List(#[from] ApiError),
    /// The watch did not start, or broke (e.g. fell behind compaction).
    #[error(transparent)]
    Watch(#[from] StoreError),
    /// The watch ended (the store closed); names which watch.
    #[error("{0} ended")]
    Ended(&'static str),
}

/// One change seen by an informer.
#[derive(Debug, Clone)]
pub enum Change {
    /// An object was added, modified or deleted.
    Object {
        event_type: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    },
    /// The cache was (re)filled from a list, or the subscriber fell behind:
    /// anything may have changed.
    Resync,
}

impl Change {
    /// The object the change is about (the last state, for a delete).
    pub fn object(&self) -> Option<&Value> {
        match self {
            Change::Object { object, .. } => Some(object),
            Change::Resync => None,
        }
    }
}

/// A subscription to an informer's changes.
pub struct Subscription {
    rx: broadcast::Receiver<Change>,
}

impl Subscription {
    /// The next change; `None` when the informer has stopped.
    pub async fn next(&mut self) -> Option<Change> {
        match self.rx.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A kind an [`Informer`] caches: a `k8s-openapi` type the API serves.
pub trait Kind: k8s_openapi::Resource + DeserializeOwned + Send + Sync + 'static {}

impl<K: k8s_openapi::Resource + DeserializeOwned + Send + Sync + 'static> Kind for K {}

/// A watch cache of the objects of kind `K`; derefs to its untyped [`Cache`].
pub struct Informer<K> {
    cache: Cache,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            cache: self.cache.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Deref for Informer<K> {
    type Target = Cache;

    fn deref(&self) -> &Cache {
        &self.cache
    }
}

impl<K: Kind> Informer<K> {
    /// Starts caching the objects of `K`: lists, then watches, until the
    /// process ends.
    pub fn start(registry: &Registry) -> Informer<K> {
        let rt = skiff_api::resource::by_kind(K::API_VERSION, K::KIND).unwrap_or_else(|| {
            panic!(
                "{} {} is not a kind the API serves",
                K::API_VERSION,
                K::KIND
            )
        });
        Informer {
            cache: Cache::start(registry, rt),
            kind: PhantomData,
        }
    }

    /// One object as its type, decoded once for its revision.
    pub fn get_typed(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let entry = read(&self.cache.inner.objects)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()?;
        entry.typed::<K>()
    }

    /// Every object (in one namespace when given) for which `keep` holds, as
    /// its type.
    pub fn list_typed(&self, namespace: Option<&str>, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        let entries: Vec<Entry> = read(&self.cache.inner.objects)
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, entry)| entry.clone())
            .collect();
        entries
            .iter()
            .filter_map(Entry::typed::<K>)
            .filter(|obj| keep(obj))
            .collect()
    }

    /// The untyped cache, for code that handles caches of several kinds alike.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

/// One cached object: as stored, and as its type once someone asked.
#[derive(Clone)]
struct Entry {
    value: Arc<Value>,
    typed: Arc<OnceLock<Option<Arc<dyn Any + Send + Sync>>>>,
}

impl Entry {
    fn new(value: Arc<Value>) -> Entry {
        Entry {
            value,
            typed: Arc::default(),
        }
    }

    /// The object as `K`, decoded by the first reader of this revision. A
    /// stored object that does not decode (it was checked against the same
    /// type when written) is left out, and logged once.
    fn typed<K: Kind>(&self) -> Option<Arc<K>> {
        let typed = self.typed.get_or_init(|| match decode_as::<K>(&self.value) {
            Ok(obj) => Some(Arc::new(obj) as Arc<dyn Any + Send + Sync>),
            Err(error) => {
                let (namespace, name) = object_ref(&self.value);
                tracing::warn!(kind = K::KIND, %namespace, %name, %error, "a cached object does not decode as its kind");
                None
            }
        });
        typed.clone()?.downcast::<K>().ok()
    }
}

/// `obj` (a stored object, e.g. one a write just returned) as its type,
/// decoded as the caches decode: through `&Value`, so that every kind's
/// decoder is compiled once.
pub fn decode_as<K: Kind>(obj: &Value) -> Result<K, ApiError> {
    K::deserialize(obj)
        .map_err(|e| ApiError::internal(format!("decoding a stored {}: {e}", K::KIND)))
}

/// A watch cache of one resource type, untyped.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    rt: &'static ResourceType,
    objects: RwLock<HashMap<ObjectRef, Entry>>,
    feed: broadcast::Sender<Change>,
    /// Every change up to this revision is in the cache (0 until the first list).
    observed: watch::Sender<Revision>,
}

impl Cache {
    /// Starts caching `rt`: lists, then watches, until the process ends.
    fn start(registry: &Registry, rt: &'static ResourceType) -> Cache {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let inner = Arc::new(Inner {
            rt,
            objects: RwLock::default(),
            feed,
            observed: watch::Sender::new(0),
        });
        tokio::spawn(run(registry.clone(), inner.clone()));
        Cache { inner }
    }

    /// The resource type cached.
    pub fn resource(&self) -> &'static ResourceType {
        self.inner.rt
    }

    /// Subscribes to changes from now on. Subscribe before reading the cache, so
    /// that nothing changes unseen in between.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.inner.feed.subscribe(),
        }
    }

    /// Resolves once the first list is in the cache.
    pub async fn synced(&self) {
        self.wait_for(1).await;
    }

    /// Resolves once the cache has seen every change up to `revision`.
    pub async fn wait_for(&self, revision: Revision) {
        let mut rx = self.inner.observed.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(|r| *r >= revision).await;
    }

    /// The revision up to which the cache is complete.
    pub fn observed(&self) -> Revision {
        *self.inner.observed.borrow()
    }

    /// One object.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        read(&self.inner.objects)
            .get(&(namespace.to_string(), name.to_string()))
            .map(|entry| entry.value.clone())
    }

    /// Every object (in one namespace when given) for which `keep` holds.
    pub fn list(&self, namespace: Option<&str>, keep: impl Fn(&Value) -> bool) -> Vec<Arc<Value>> {
        read(&self.inner.objects)
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .filter(|(_, entry)| keep(&entry.value))
            .map(|(_, entry)| entry.value.clone())
            .collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        read(&self.inner.objects).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of an object in a cache.
pub fn object_ref(obj: &Value) -> ObjectRef {
    (
        meta::namespace(obj).unwrap_or_default().to_string(),
        meta::name(obj).unwrap_or_default().to_string(),
    )
}

async fn run(registry: Registry, inner: Arc<Inner>) {
    loop {
        if let Err(e) = list_and_watch(&registry, &inner).await {
            tracing::debug!(resource = inner.rt.plural, error = %e, "informer relisting");
        }
        if inner.feed.receiver_count() == 0 && Arc::strong_count(&inner) == 1 {
            return; // Nobody holds the informer any more.
        }
        tokio::time::sleep(RELIST_PAUSE).await;
    }
}

async fn list_and_watch(registry: &Registry, inner: &Arc<Inner>) -> Result<(), RelistError> {
    let page = registry.list(inner.rt, None, None, None, &|_| true)?;
    let mut watch =
        registry
            .store()
            .watch(prefix(inner.rt, None), page.revision, Some(PROGRESS_EVERY))?;
    {
        let mut objects = write(&inner.objects);
        objects.clear();
        for obj in page.items {
            objects.insert(object_ref(&obj), Entry::new(Arc::new(obj)));
        }
    }
    let _ = inner.feed.send(Change::Resync);
    inner.observed.send_replace(page.revision.max(1));
    while let Some(item) = watch.next().await {
        if Arc::strong_count(inner) == 1 {
            return Ok(()); // Every informer handle is gone.
        }
        match item? {
            WatchItem::Event(event) => {
                let key = object_ref(&event.object);
                {
                    let mut objects = write(&inner.objects);
                    match event.event_type {
                        EventType::Deleted => objects.remove(&key),
                        _ => objects.insert(key, Entry::new(event.object.clone())),
                    };
                }
                let _ = inner.feed.send(Change::Object {
                    event_type: event.event_type,
                    object: event.object.clone(),
                    prev: event.prev.clone(),
                });
                inner.observed.send_replace(event.revision);
            }
            WatchItem::Progress(revision) => {
                inner.observed.send_if_modified(|r| {
                    let moved = revision > *r;
                    if moved {
                        *r = revision;
                    }
                    moved
                });
            }
        }
    }
    Err(RelistError::Ended("the watch"))
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// The watch caches the control plane's scheduler and controllers share.
#[derive(Clone)]
pub struct Informers {
    pub namespaces: Informer<Namespace>,
    pub nodes: Informer<Node>,
    pub pods: Informer<Pod>,
    pub replica_sets: Informer<ReplicaSet>,
    pub deployments: Informer<Deployment>,
    pub daemon_sets: Informer<DaemonSet>,
    pub jobs: Informer<Job>,
    pub cron_jobs: Informer<CronJob>,
    pub services: Informer<Service>,
    pub endpoints: Informer<Endpoints>,
    pub endpoint_slices: Informer<EndpointSlice>,
    pub ingresses: Informer<Ingress>,
}

impl Informers {
    /// Starts every cache.
    pub fn start(registry: &Registry) -> Informers {
        Informers {
            namespaces: Informer::start(registry),
            nodes: Informer::start(registry),
            pods: Informer::start(registry),
            replica_sets: Informer::start(registry),
            deployments: Informer::start(registry),
            daemon_sets: Informer::start(registry),
            jobs: Informer::start(registry),
            cron_jobs: Informer::start(registry),
            services: Informer::start(registry),
            endpoints: Informer::start(registry),
            endpoint_slices: Informer::start(registry),
            ingresses: Informer::start(registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::*;
    use crate::registry::WriteOptions;
    use crate::store::redb::{RedbStore, StoreConfig};

    const DEADLINE: Duration = Duration::from_secs(10);

    async fn registry_with_namespace(dir: &std::path::Path) -> Registry {
        let store = RedbStore::open(&dir.join("store.redb"), StoreConfig::default())
            .expect("open the store");
        let registry = Registry::new(Arc::new(store));
        let ns_type = skiff_api::resource::by_kind("v1", "Namespace").expect("namespaces");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        registry
            .create(ns_type, "", ns, &WriteOptions::default())
            .await
            .expect("create the namespace");
        registry
    }

    async fn put(registry: &Registry, name: &str, value: &str) -> Revision {
        let rt = skiff_api::resource::by_kind("v1", "ConfigMap").expect("configmaps");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"k": value}});
        let opts = WriteOptions::default();
        let written = match registry.try_get(rt, "default", name).expect("read") {
            None => registry.create(rt, "default", cm, &opts).await,
            Some(_) => {
                let update = crate::registry::Subresource::Main;
                registry
                    .update(rt, "default", name, cm, update, &opts)
                    .await
            }
        };
        crate::store::object_revision(&written.expect("write").object).expect("a revision")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn typed_reads_decode_once_per_revision_and_follow_changes() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let registry = registry_with_namespace(dir.path()).await;
        let first = put(&registry, "settings", "one").await;
        let maps: Informer<ConfigMap> = Informer::start(&registry);
        tokio::time::timeout(DEADLINE, maps.wait_for(first))
            .await
            .expect("the cache catches up");

        let a = maps.get_typed("default", "settings").expect("cached");
        let b = maps.get_typed("default", "settings").expect("cached");
        assert_eq!(
            a.data.as_ref().and_then(|d| d.get("k")).map(String::as_str),
            Some("one")
        );
        assert!(
            Arc::ptr_eq(&a, &b),
            "one decode is shared by every reader of a revision"
        );

        let second = put(&registry, "settings", "two").await;
        tokio::time::timeout(DEADLINE, maps.wait_for(second))
            .await
            .expect("the cache catches up");
        let c = maps.get_typed("default", "settings").expect("cached");
        assert_eq!(
            c.data.as_ref().and_then(|d| d.get("k")).map(String::as_str),
            Some("two")
        );
        assert_eq!(
            a.data.as_ref().and_then(|d| d.get("k")).map(String::as_str),
            Some("one")
        );

        put(&registry, "other", "x").await;
        let third = put(&registry, "settings", "three").await;
        tokio::time::timeout(DEADLINE, maps.wait_for(third))
            .await
            .expect("the cache catches up");
        let mut listed: Vec<String> = maps
            .list_typed(Some("default"), |cm| {
                cm.data
                    .as_ref()
                    .and_then(|d| d.get("k"))
                    .is_some_and(|v| v != "x")
            })
            .iter()
            .filter_map(|cm| cm.metadata.name.clone())
            .collect();
        listed.sort();
        assert_eq!(listed, ["settings"]);
        assert!(maps.list_typed(Some("elsewhere"), |_| true).is_empty());
        assert!(maps.get_typed("default", "missing").is_none());
    }
}
