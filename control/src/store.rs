//! The durable store of the cluster's desired state, behind the [`Store`] trait.
//!
//! The store is a key-value store of API objects (as JSON) with one monotonic
//! revision for the whole store, in the manner of etcd: every committed change gets
//! the next revision, which becomes the object's `metadata.resourceVersion`; an
//! event log keyed by revision backs watch; a watch from a revision older than the
//! compaction window fails with [`StoreError::Compacted`] (410 Gone in the API).
//! The store knows nothing of Kubernetes semantics beyond `resourceVersion`: the
//! API server decides what to write and the store makes it atomic and durable.
//!
//! [`redb::RedbStore`] is the backend for one machine; a distributed backend (etcd)
//! can implement the same trait.

pub mod encryption;
pub mod redb;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;
use skiff_api::json::Pointer as _;

pub use watch::WatchItem;

/// A store revision; `resourceVersion` is its decimal string.
pub type Revision = u64;

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Errors a store operation can end with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    #[error("{0} not found")]
    NotFound(ObjectKey),
    #[error("{key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: ObjectKey,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available is {oldest})")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("the store is closed")]
    Closed,
    /// The store cannot write now (a storage error, e.g. a full disk); it
    /// recovers by itself once the cause is gone.
    #[error("the store cannot write: {0}")]
    Unavailable(String),
    /// The object would be larger than the store keeps
    /// ([`skiff_api::resource::MAX_OBJECT_BYTES`]); nothing was written.
    #[error("{key} would be {size} bytes, more than the limit of {max}")]
    TooLarge {
        key: ObjectKey,
        size: usize,
        max: usize,
    },
    #[error("store backend: {0}")]
    Backend(String),
    #[error("stored object {0} is corrupt: {1}")]
    Corrupt(String, String),
    /// A sealed value (a Secret) could not be opened, or plaintext was found
    /// where only sealed values may be: never passed on as it is.
    #[error("stored object {0}: {1}")]
    Sealed(String, encryption::EncryptionError),
}

/// Identifies one object: resource (`deployments.apps`), namespace (empty for
/// cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ObjectKey {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key as stored: `resource/namespace/name`. Names, namespaces and resource
    /// ids never contain `/`, so the encoding is unambiguous and prefix scans work.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.resource, self.namespace, self.name)
    }

    /// The inverse of [`ObjectKey::encode`].
    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '/');
        Some(ObjectKey::new(parts.next()?, parts.next()?, parts.next()?))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {:?}", self.resource, self.name)
        } else {
            write!(f, "{} {}/{}", self.resource, self.namespace, self.name)
        }
    }
}

/// A set of keys: one resource, optionally one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix {
    pub resource: String,
    pub namespace: Option<String>,
}

impl KeyPrefix {
    pub fn new(resource: impl Into<String>, namespace: Option<String>) -> Self {
        KeyPrefix {
            resource: resource.into(),
            namespace,
        }
    }

    /// Every key of every resource.
    pub fn everything() -> Self {
        KeyPrefix {
            resource: String::new(),
            namespace: None,
        }
    }

    /// The encoded prefix every key in the set starts with.
    pub fn encode(&self) -> String {
        match (&self.resource[..], &self.namespace) {
            ("", _) => String::new(),
            (r, None) => format!("{r}/"),
            (r, Some(ns)) => format!("{r}/{ns}/"),
        }
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        (self.resource.is_empty() || self.resource == key.resource)
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}

/// What must hold for an [`Op`] to apply; checked inside the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Apply whatever the current state.
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist.
    Exists,
    /// The key must exist at exactly this revision (optimistic concurrency).
    Revision(Revision),
}

/// What an [`Op`] does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store this object; the store sets `metadata.resourceVersion`.
    Put(Value),
    /// Remove the key.
    Delete,
}

/// One change within a commit. The ops of one commit apply all or none.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub key: ObjectKey,
    pub precondition: Precondition,
    pub action: Action,
    /// With [`Precondition::Revision`]: the caller's copy of the object at that
    /// revision, if it has one. It becomes the event's `prev` without the store
    /// decoding the object again; it is ignored under other preconditions.
    pub prev: Option<Arc<Value>>,
}

/// The result of one applied [`Op`].
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub revision: Revision,
    /// The object as stored (for a put) or as it was when deleted, stamped with
    /// the deletion's revision (for a delete). Shared with the watch event.
    pub object: Arc<Value>,
    /// The object before this op, if it existed.
    pub prev: Option<Arc<Value>>,
}

/// The kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "ADDED")]
    Added,
    #[serde(rename = "MODIFIED")]
    Modified,
    #[serde(rename = "DELETED")]
    Deleted,
}

/// One committed change, as watch delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub revision: Revision,
    pub event_type: EventType,
    pub key: ObjectKey,
    /// The object after the change (for a delete: the last state, stamped with the
    /// deletion's revision).
    pub object: Arc<Value>,
    /// The object before the change, for modifications and deletions.
    pub prev: Option<Arc<Value>>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    /// The store revision the page was read at: watch from it to see later changes.
    pub revision: Revision,
    /// Where the next page starts, if the list stopped at its limit.
    pub continue_after: Option<ObjectKey>,
}

/// What to list.
pub struct ListRequest<'a> {
    pub prefix: KeyPrefix,
    /// Start after this key (paging).
    pub after: Option<ObjectKey>,
    /// Stop after this many matching items.
    pub limit: Option<usize>,
    /// Only items for which this returns true are returned and counted.
    pub filter: &'a (dyn Fn(&Value) -> bool + Sync),
}

/// A stream of watch items; ends with an error when the watcher fell behind the
/// compaction window or the store closed.
pub type WatchStream = BoxStream<'static, Result<WatchItem>>;

/// The store of API objects.
pub trait Store: Send + Sync + 'static {
    /// The object at `key`, if any.
    fn get(&self, key: &ObjectKey) -> Result<Option<Value>>;

    /// The object at `key` as stored (JSON), for a caller that reads a field or
    /// two and need not build the whole object.
    fn get_raw(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>>;

    /// A page of objects under a prefix, in key order, read at one revision.
    fn list(&self, request: &ListRequest<'_>) -> Result<ListPage>;

    /// Applies `ops` atomically and durably: when the future resolves `Ok`, the
    /// change survives a crash. Concurrent commits may share one disk sync.
    fn commit(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<Vec<Committed>>>;

    /// Changes under `prefix` after revision `from`, in revision order, followed by
    /// live changes. When `progress` is set, a [`WatchItem::Progress`] is yielded
    /// after that much idle time, carrying a revision up to which every change has
    /// been delivered (for bookmarks).
    fn watch(
        &self,
        prefix: KeyPrefix,
        from: Revision,
        progress: Option<Duration>,
    ) -> Result<WatchStream>;

    /// The latest committed revision.
    fn revision(&self) -> Revision;

    /// The oldest revision a watch can start from.
    fn oldest_watchable(&self) -> Revision;

    /// Whether writes can be made now: false after a write failed for want of
    /// disk (or any storage error) until the store has recovered, which it does
    /// by itself once the cause is gone. `/readyz` reports it.
    fn writable(&self) -> bool {
        true
    }
}

/// Reads `metadata.resourceVersion` as a revision.
pub fn object_revision(obj: &Value) -> Option<Revision> {
    obj.at("/metadata/resourceVersion")?.as_str()?.parse().ok()
}
