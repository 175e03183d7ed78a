//! Watch caches (informers, in client-go's words; reflectors in kube-rs'): one
//! resource kept in memory by a list and then a watch, so that the scheduler and
//! the controllers read without touching the store.
//!
//! An [`Informer`] has a reader side ([`Informer::list`], [`Informer::get`]) and a
//! change feed ([`Informer::subscribe`]). A watcher that falls behind the store's
//! compaction window lists again; a subscriber that falls behind the feed is told
//! to resync (look at everything again), never silently given a gap.
//!
//! [`Informer::wait_for`] gives a controller read-your-writes: after a write at
//! revision R, it waits until the cache has seen R, so the next reconcile does not
//! act again on what it already did (client-go's "expectations", done by
//! revision because the store has one revision for everything).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
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

/// A watch cache of one resource type.
#[derive(Clone)]
pub struct Informer {
    inner: Arc<Inner>,
}

struct Inner {
    rt: &'static ResourceType,
    objects: RwLock<HashMap<ObjectRef, Arc<Value>>>,
    feed: broadcast::Sender<Change>,
    /// Every change up to this revision is in the cache (0 until the first list).
    observed: watch::Sender<Revision>,
}

impl Informer {
    /// Starts caching `rt`: lists, then watches, until the process ends.
    pub fn start(registry: &Registry, rt: &'static ResourceType) -> Informer {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let inner = Arc::new(Inner {
            rt,
            objects: RwLock::default(),
            feed,
            observed: watch::Sender::new(0),
        });
        tokio::spawn(run(registry.clone(), inner.clone()));
        Informer { inner }
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
            .cloned()
    }

    /// Every object (in one namespace when given) for which `keep` holds.
    pub fn list(&self, namespace: Option<&str>, keep: impl Fn(&Value) -> bool) -> Vec<Arc<Value>> {
        read(&self.inner.objects)
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .filter(|(_, obj)| keep(obj))
            .map(|(_, obj)| obj.clone())
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
            objects.insert(object_ref(&obj), Arc::new(obj));
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
                        _ => objects.insert(key, event.object.clone()),
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
    pub namespaces: Informer,
    pub nodes: Informer,
    pub pods: Informer,
    pub replica_sets: Informer,
    pub deployments: Informer,
    pub daemon_sets: Informer,
    pub jobs: Informer,
    pub cron_jobs: Informer,
    pub services: Informer,
    pub endpoints: Informer,
    pub endpoint_slices: Informer,
    pub ingresses: Informer,
}

impl Informers {
    /// Starts every cache.
    pub fn start(registry: &Registry) -> Informers {
        let start = |api_version: &str, kind: &str| {
            let rt = skiff_api::resource::by_kind(api_version, kind)
                .unwrap_or_else(|| panic!("{api_version} {kind} is a built-in kind"));
            Informer::start(registry, rt)
        };
        Informers {
            namespaces: start("v1", "Namespace"),
            nodes: start("v1", "Node"),
            pods: start("v1", "Pod"),
            replica_sets: start("apps/v1", "ReplicaSet"),
            deployments: start("apps/v1", "Deployment"),
            daemon_sets: start("apps/v1", "DaemonSet"),
            jobs: start("batch/v1", "Job"),
            cron_jobs: start("batch/v1", "CronJob"),
            services: start("v1", "Service"),
            endpoints: start("v1", "Endpoints"),
            endpoint_slices: start("discovery.k8s.io/v1", "EndpointSlice"),
            ingresses: start("networking.k8s.io/v1", "Ingress"),
        }
    }
}
