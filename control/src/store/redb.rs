//! The redb backend of the [`Store`]: one file, durable commits, group commit.
//!
//! Reads run on the caller's thread in a redb read transaction (MVCC, never
//! blocked by the writer). Writes go to one writer thread, which takes every
//! request waiting in its queue, applies them in one write transaction and commits
//! once: concurrent writers share the fsync, so throughput grows with concurrency
//! instead of being capped at one fsync per write. After the commit the writer
//! answers each request and publishes the events to live watchers.
//!
//! A storage error (a full disk, a failed fsync) fails the batch it hit, and
//! redb then refuses all further I/O on that handle. So the writer marks the
//! store not writable (`/readyz` fails) and closes the database; every
//! [`REOPEN_INTERVAL`] it reopens the file (redb repairs it to its last
//! commit) and, once the file system has room for the largest object again,
//! proves a commit works before writes resume. Writes meanwhile fail at once
//! with [`StoreError::Unavailable`] rather than queue.
//!
//! Values of the resources the [`Encryption`] names (Secrets) are sealed on
//! their way to disk and opened on their way back, here and nowhere else: in
//! the objects table, and in the event log, whose entries then keep only the
//! type, key and time in the clear (compaction and watch filtering read those)
//! and seal the object and previous object together. Callers, watchers and the
//! live fan-out see plaintext. [`reseal`] rewrites sealed values offline
//! under the current key (key rotation).

mod reseal;

pub use reseal::{OfflineStore, Resealed};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use skiff_api::json::encoded_len_at_most;
use skiff_api::resource::MAX_OBJECT_BYTES;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::encryption::Encryption;
use super::watch::{EventLog, watch_stream};
use super::{
    Action, Committed, Event, EventType, KeyPrefix, ListPage, ListRequest, ObjectKey, Op,
    Precondition, Result, Revision, Store, StoreError, WatchStream,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Room left under the object limit for the `resourceVersion` the store sets
/// (a 20-digit revision and its key), when objects are measured before it is.
const RESOURCE_VERSION_MARGIN: usize = 64;

/// How often a store that cannot write tries to recover.
const REOPEN_INTERVAL: Duration = Duration::from_millis(500);
/// A probe commit writes here while recovering.
const META_PROBE: &str = "probe";

/// Most requests one commit takes; bounds the latency a batch adds.
const MAX_BATCH: usize = 2048;
/// Most log events one commit compacts (see `Writer::compact`).
const COMPACTION_STEP: usize = 512;

/// Settings of a [`RedbStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long watch history is kept; a watch from an older revision gets 410.
    pub history: Duration,
    /// At most this many events are kept, whatever their age.
    pub max_history_events: u64,
    /// How often the writer compacts the event log.
    pub compaction_interval: Duration,
    /// Capacity of the in-memory fan-out to live watchers; a watcher that falls
    /// further behind catches up from the event log.
    pub live_buffer: usize,
    /// Where commit counts, batch sizes and latencies are recorded.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// How values are sealed on disk; the default seals nothing (and refuses to
    /// read a sealed value).
    pub encryption: Arc<Encryption>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: Duration::from_secs(5 * 60),
            max_history_events: 200_000,
            compaction_interval: Duration::from_secs(10),
            live_buffer: 16 * 1024,
            metrics: None,
            encryption: Arc::new(Encryption::none()),
        }
    }
}

/// The store on a redb file.
pub struct RedbStore {
    shared: Arc<Shared>,
    /// `None` once dropped; the writer stops when the last sender goes.
    requests: Option<mpsc::UnboundedSender<WriteRequest>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// What readers, watchers and the writer share.
pub(super) struct Shared {
    /// `None` while the writer reopens the file after a storage error.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    /// False from a failed commit until the file has been reopened.
    writable: AtomicBool,
    /// Latest committed (and published) revision.
    committed: watch::Sender<Revision>,
    /// Highest revision removed from the event log.
    compacted: AtomicU64,
    live: broadcast::Sender<Arc<Event>>,
    encryption: Arc<Encryption>,
}

struct WriteRequest {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Vec<Committed>>>,
}

/// An event as read back from the log (see [`log_entry`]).
#[derive(Debug, PartialEq)]
struct LoggedEvent {
    event_type: EventType,
    key: String,
    object: Value,
    prev: Option<Value>,
}

/// The part of a log entry in the clear: all of it, or for a sealed resource
/// all but the objects, which follow it sealed.
#[derive(serde::Deserialize)]
struct LoggedHeader {
    #[serde(rename = "t")]
    event_type: EventType,
    #[serde(rename = "k")]
    key: String,
    /// `Some` whenever the field is there, even as `null`.
    #[serde(rename = "o", default, deserialize_with = "present")]
    object: Option<Value>,
    #[serde(rename = "p", default)]
    prev: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// What a sealed log entry seals.
#[derive(serde::Deserialize)]
struct LoggedObjects {
    #[serde(rename = "o")]
    object: Value,
    #[serde(rename = "p", default)]
    prev: Option<Value>,
}

/// Only the commit time of a logged event (milliseconds since the Unix
/// epoch), for compaction by age.
#[derive(serde::Deserialize)]
struct LoggedTime {
    #[serde(rename = "ms")]
    unix_ms: u64,
}

impl RedbStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    /// Fails with a clear message when another process holds the file.
    /// Every sealed object must open with the configured keys, so that a
    /// missing or wrong key is an error at start rather than at some read.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self> {
        let db = create_database(path)?;
        let (revision, compacted) = {
            let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
            let (revision, compacted) = {
                txn.open_table(OBJECTS)
                    .map_err(|e| backend("open objects", e))?;
                txn.open_table(EVENTS)
                    .map_err(|e| backend("open events", e))?;
                let meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
                (
                    read_meta(&meta, META_REVISION)?,
                    read_meta(&meta, META_COMPACTED)?,
                )
            };
            txn.commit().map_err(|e| backend("commit", e))?;
            (revision, compacted)
        };
        reseal::verify(&db, &config.encryption)?;
        let (live, _) = broadcast::channel(config.live_buffer.max(16));
        let (committed, _) = watch::channel(revision);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(Arc::new(db))),
            path: path.to_path_buf(),
            writable: AtomicBool::new(true),
            committed,
            compacted: AtomicU64::new(compacted),
            live,
            encryption: config.encryption.clone(),
        });
        let (requests, receiver) = mpsc::unbounded_channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || Writer::new(writer_shared, config, revision).run(receiver))
            .map_err(|e| backend("spawn writer", e))?;
        Ok(RedbStore {
            shared,
            requests: Some(requests),
            writer: Some(writer),
        })
    }
}

impl Drop for RedbStore {
    /// Stops the writer after it has committed what it was given. The file
    /// closes when the last watcher lets go of it too.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl RedbStore {
    /// Reads the stored bytes at `key` and hands them to `f`.
    fn read<T>(
        &self,
        key: &ObjectKey,
        f: impl FnOnce(&str, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let txn = self
            .shared
            .db()?
            .begin_read()
            .map_err(|e| backend("begin read", e))?;
        let table = txn
            .open_table(OBJECTS)
            .map_err(|e| backend("open objects", e))?;
        let encoded = key.encode();
        match table
            .get(encoded.as_str())
            .map_err(|e| backend("read", e))?
        {
            Some(bytes) => {
                let plain = open_object(&self.shared.encryption, &encoded, bytes.value())?;
                Ok(Some(f(&encoded, &plain)?))
            }
            None => Ok(None),
        }
    }
}

impl Store for RedbStore {
    fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        self.read(key, decode)
    }

    fn get_raw(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>> {
        self.read(key, |_, bytes| Ok(bytes.to_vec()))
    }

    fn list(&self, request: &ListRequest<'_>) -> Result<ListPage> {
        let txn = self
            .shared
            .db()?
            .begin_read()
            .map_err(|e| backend("begin read", e))?;
        let meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
        let revision = read_meta(&meta, META_REVISION)?;
        let table = txn
            .open_table(OBJECTS)
            .map_err(|e| backend("open objects", e))?;
        let prefix = request.prefix.encode();
        let start = match &request.after {
            // The smallest string greater than the key: the key followed by NUL.
            Some(after) => format!("{}\0", after.encode()),
            None => prefix.clone(),
        };
        let mut items = Vec::new();
        let mut last_key: Option<String> = None;
        let mut continue_after = None;
        let limit = request.limit.filter(|l| *l > 0);
        for entry in table
            .range(start.as_str()..)
            .map_err(|e| backend("scan", e))?
        {
            let (key, bytes) = entry.map_err(|e| backend("scan", e))?;
            let key = key.value();
            if !key.starts_with(&prefix) {
                break;
            }
            let plain = open_object(&self.shared.encryption, key, bytes.value())?;
            let object = decode(key, &plain)?;
            if !(request.filter)(&object) {
                continue;
            }
            if let Some(limit) = limit
                && items.len() == limit
            {
                // There is at least one more match: the page ends at the last item.
                continue_after = last_key.as_deref().and_then(ObjectKey::decode);
                break;
            }
            items.push(object);
            last_key = Some(key.to_string());
        }
        Ok(ListPage {
            items,
            revision,
            continue_after,
        })
    }

    fn commit(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<Vec<Committed>>> {
        let (reply, answer) = oneshot::channel();
        let sent = match &self.requests {
            Some(requests) => requests.send(WriteRequest { ops, reply }).is_ok(),
            None => false,
        };
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            answer.await.map_err(|_| StoreError::Closed)?
        }
        .boxed()
    }

    fn watch(
        &self,
        prefix: KeyPrefix,
        from: Revision,
        progress: Option<Duration>,
    ) -> Result<WatchStream> {
        watch_stream(self.shared.clone(), prefix, from, progress)
    }

    fn revision(&self) -> Revision {
        *self.shared.committed.borrow()
    }

    fn oldest_watchable(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    fn writable(&self) -> bool {
        self.shared.writable.load(Ordering::Acquire)
    }
}

impl Shared {
    /// The open database, unless it is being reopened.
    fn db(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("reopening after a storage error".into()))
    }
}

impl EventLog for Shared {
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    fn committed(&self) -> watch::Receiver<Revision> {
        self.committed.subscribe()
    }

    fn compacted(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }

    fn read_after(
        &self,
        prefix: &KeyPrefix,
        after: Revision,
        max: usize,
    ) -> Result<(Vec<Arc<Event>>, Revision)> {
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| backend("begin read", e))?;
        let meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
        let compacted = read_meta(&meta, META_COMPACTED)?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted,
            });
        }
        let head = read_meta(&meta, META_REVISION)?;
        let table = txn
            .open_table(EVENTS)
            .map_err(|e| backend("open events", e))?;
        let mut out = Vec::new();
        let mut scanned_to = after;
        for entry in table
            .range(after + 1..)
            .map_err(|e| backend("scan events", e))?
        {
            let (revision, bytes) = entry.map_err(|e| backend("scan events", e))?;
            let revision = revision.value();
            let logged = read_log_entry(&self.encryption, revision, bytes.value())?;
            scanned_to = revision;
            let Some(key) = ObjectKey::decode(&logged.key) else {
                return Err(StoreError::Corrupt(
                    format!("event {revision}"),
                    "bad key".into(),
                ));
            };
            if prefix.contains(&key) {
                out.push(Arc::new(Event {
                    revision,
                    event_type: logged.event_type,
                    key,
                    object: Arc::new(logged.object),
                    prev: logged.prev.map(Arc::new),
                }));
                if out.len() >= max {
                    return Ok((out, scanned_to));
                }
            }
        }
        Ok((out, scanned_to.max(head)))
    }
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    config: StoreConfig,
    revision: Revision,
    last_compaction: Instant,
    /// The last compaction stopped at its step limit: the next commit goes on.
    compaction_behind: bool,
}

impl Writer {
    fn new(shared: Arc<Shared>, config: StoreConfig, revision: Revision) -> Self {
        Writer {
            shared,
            config,
            revision,
            last_compaction: Instant::now(),
            compaction_behind: false,
        }
    }

    fn run(mut self, mut receiver: mpsc::UnboundedReceiver<WriteRequest>) {
        loop {
            if !self.shared.writable.load(Ordering::Acquire) && !self.recover() {
                // Still broken: refuse what waits rather than queue it.
                loop {
                    match receiver.try_recv() {
                        Ok(request) => {
                            let why = "a storage error (is the disk full?); retrying".into();
                            let _ = request.reply.send(Err(StoreError::Unavailable(why)));
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                std::thread::sleep(REOPEN_INTERVAL);
                continue;
            }
            let Some(first) = receiver.blocking_recv() else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        tracing::debug!("store writer stopped");
    }

    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let started = Instant::now();
        if let Some(m) = &self.config.metrics {
            m.store_batch_size.observe(batch.len() as f64);
        }
        let start_revision = self.revision;
        let compact = self.compaction_behind
            || self.last_compaction.elapsed() >= self.config.compaction_interval;
        let (ops, replies): (Vec<Vec<Op>>, Vec<_>) =
            batch.into_iter().map(|r| (r.ops, r.reply)).unzip();
        match self.apply(ops, compact) {
            Ok((results, events, compacted)) => {
                if compact {
                    self.last_compaction = Instant::now();
                }
                if let Some(m) = &self.config.metrics {
                    m.store_commits.inc();
                    m.store_commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
                if let Some(compacted) = compacted {
                    self.shared.compacted.store(compacted, Ordering::Release);
                }
                // Publish before answering, so that a client that saw its write
                // acknowledged and then starts a watch finds it in the log or live.
                for event in events {
                    // No receivers is fine: nobody is watching.
                    let _ = self.shared.live.send(event);
                }
                self.shared.committed.send_replace(self.revision);
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                self.revision = start_revision;
                tracing::error!(%error, "store commit failed; the store reopens its file before the next write");
                // redb fails every later operation on this handle after an
                // I/O error: close it, so that `reopen` can open it afresh.
                self.shared.writable.store(false, Ordering::Release);
                *self.shared.db.write().unwrap_or_else(|e| e.into_inner()) = None;
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(error.to_string())));
                }
            }
        }
    }

    /// After a failed commit: reopens the file if it is closed (redb rolls it
    /// back to its last commit, repairing it if need be), then, if the file
    /// system has room for the largest object, makes a probe commit. True
    /// once that worked: writes resume. False while the disk is still full,
    /// or a reader still holds the old handle.
    fn recover(&mut self) -> bool {
        let open = self
            .shared
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !open {
            let db = match Database::create(&self.shared.path) {
                Ok(db) => db,
                Err(e) => {
                    tracing::debug!(error = %e, "store not reopened yet");
                    return false;
                }
            };
            *self.shared.db.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
        }
        match room_for_an_object(&self.shared.path) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => tracing::debug!(error = %e, "free space unknown; probing"),
        }
        match self.probe() {
            Ok(revision) => {
                self.revision = revision;
                self.shared.writable.store(true, Ordering::Release);
                tracing::warn!(revision, "the store can write again");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "store probe commit failed");
                // The handle refuses I/O after a failed commit: close it.
                *self.shared.db.write().unwrap_or_else(|e| e.into_inner()) = None;
                false
            }
        }
    }

    /// A small durable commit; returns the store's revision, as the file has it.
    fn probe(&self) -> Result<Revision> {
        let db = self.shared.db()?;
        let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
        let revision = {
            let mut meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
            let probes = read_meta(&meta, META_PROBE)?;
            meta.insert(META_PROBE, probes.wrapping_add(1))
                .map_err(|e| backend("write meta", e))?;
            read_meta(&meta, META_REVISION)?
        };
        txn.commit().map_err(|e| backend("commit", e))?;
        Ok(revision)
    }

    /// Applies a batch in one write transaction and commits it. Per-request
    /// precondition failures are answered individually; a storage failure fails
    /// the whole batch.
    #[allow(clippy::type_complexity)]
    fn apply(
        &mut self,
        batch: Vec<Vec<Op>>,
        compact: bool,
    ) -> Result<(
        Vec<Result<Vec<Committed>>>,
        Vec<Arc<Event>>,
        Option<Revision>,
    )> {
        let txn = self
            .shared
            .db()?
            .begin_write()
            .map_err(|e| backend("begin write", e))?;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut compacted = None;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(|e| backend("open objects", e))?;
            let mut log = txn
                .open_table(EVENTS)
                .map_err(|e| backend("open events", e))?;
            let mut meta = txn.open_table(META).map_err(|e| backend("open meta", e))?;
            for ops in batch {
                match self.apply_request(&mut objects, &mut log, ops, unix_ms)? {
                    Ok((committed, request_events)) => {
                        results.push(Ok(committed));
                        events.extend(request_events);
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
            meta.insert(META_REVISION, self.revision)
                .map_err(|e| backend("write meta", e))?;
            if compact {
                compacted = self.compact(&mut log, &mut meta, unix_ms)?;
            }
        }
        txn.commit().map_err(|e| backend("commit", e))?;
        Ok((results, events, compacted))
    }

    /// Checks every precondition of one request, then applies its ops. The outer
    /// `Result` is a storage failure; the inner one this request's own failure.
    #[allow(clippy::type_complexity)]
    fn apply_request(
        &mut self,
        objects: &mut redb::Table<&str, &[u8]>,
        log: &mut redb::Table<u64, &[u8]>,
        ops: Vec<Op>,
        unix_ms: u64,
    ) -> Result<Result<(Vec<Committed>, Vec<Arc<Event>>)>> {
        let encryption = &*self.shared.encryption;
        // Check all preconditions first so the request applies all or nothing.
        let mut checked = Vec::with_capacity(ops.len());
        for op in &ops {
            let encoded = op.key.encode();
            let stored = read_raw(objects, &encoded, encryption)?;
            let failure = match (op.precondition, &stored) {
                (Precondition::Absent, Some(_)) => Some(StoreError::AlreadyExists(op.key.clone())),
                (Precondition::Exists | Precondition::Revision(_), None) => {
                    Some(StoreError::NotFound(op.key.clone()))
                }
                (Precondition::Revision(expected), Some(bytes)) => {
                    let actual = stored_revision(&encoded, bytes)?;
                    (actual != expected).then(|| StoreError::Conflict {
                        key: op.key.clone(),
                        expected,
                        actual,
                    })
                }
                _ => None,
            };
            if let Some(failure) = failure {
                return Ok(Err(failure));
            }
            if op.action == Action::Delete && stored.is_none() {
                return Ok(Err(StoreError::NotFound(op.key.clone())));
            }
            // A request of several ops is all or nothing, so its objects are
            // measured before any is written (the margin covers the
            // resourceVersion set below). A single op is measured where it is
            // encoded anyway, at no cost.
            if let (true, Action::Put(object)) = (ops.len() > 1, &op.action)
                && encoded_len_at_most(object, MAX_OBJECT_BYTES - RESOURCE_VERSION_MARGIN).is_none()
            {
                return Ok(Err(StoreError::TooLarge {
                    key: op.key.clone(),
                    size: serde_json::to_vec(object).map_or(0, |b| b.len()),
                    max: MAX_OBJECT_BYTES,
                }));
            }
            checked.push(stored);
        }
        let mut committed = Vec::with_capacity(ops.len());
        let mut events = Vec::with_capacity(ops.len());
        // Keys an earlier op of this request wrote (only a request of several
        // ops can have any; most have one).
        let several = ops.len() > 1;
        let mut written: HashSet<String> = HashSet::new();
        // The values are moved, not cloned: this thread is the store's bottleneck.
        for (op, checked_bytes) in ops.into_iter().zip(checked) {
            self.revision += 1;
            let revision = self.revision;
            let encoded = op.key.encode();
            let again = written.contains(&encoded);
            let prev_bytes = if again {
                read_raw(objects, &encoded, encryption)?
            } else {
                checked_bytes
            };
            // A caller that checked the revision may hand over its copy of the
            // object at that revision, which is the stored one: no decoding.
            let known = match op.precondition {
                Precondition::Revision(_) if !again => op.prev,
                _ => None,
            };
            let prev = match (known, &prev_bytes) {
                (_, None) => None,
                (Some(known), Some(_)) => Some(known),
                (None, Some(bytes)) => Some(Arc::new(decode(&encoded, bytes)?)),
            };
            let (event_type, mut object) = match op.action {
                Action::Put(object) => {
                    let kind = if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    (kind, object)
                }
                Action::Delete => (
                    EventType::Deleted,
                    prev.as_deref().cloned().unwrap_or(Value::Null),
                ),
            };
            skiff_api::meta::set(&mut object, "resourceVersion", revision.to_string());
            let bytes = serde_json::to_vec(&object).map_err(|e| backend("encode object", e))?;
            if bytes.len() > MAX_OBJECT_BYTES && event_type != EventType::Deleted {
                // Only a single op gets here (several were measured above), so
                // nothing of this request is written yet.
                self.revision -= 1;
                return Ok(Err(StoreError::TooLarge {
                    key: op.key,
                    size: bytes.len(),
                    max: MAX_OBJECT_BYTES,
                }));
            }
            if event_type == EventType::Deleted {
                objects
                    .remove(encoded.as_str())
                    .map_err(|e| backend("delete", e))?;
            } else {
                let stored = encryption
                    .seal(&encoded, encoded.as_bytes(), &bytes)
                    .map_err(|e| StoreError::Sealed(encoded.clone(), e))?;
                objects
                    .insert(encoded.as_str(), &*stored)
                    .map_err(|e| backend("write", e))?;
            }
            let logged = log_entry(
                encryption,
                revision,
                event_type,
                &encoded,
                &bytes,
                prev_bytes.as_deref(),
                unix_ms,
            )?;
            log.insert(revision, logged.as_slice())
                .map_err(|e| backend("write event", e))?;
            let object = Arc::new(object);
            if several {
                written.insert(encoded);
            }
            events.push(Arc::new(Event {
                revision,
                event_type,
                key: op.key,
                object: object.clone(),
                prev: prev.clone(),
            }));
            committed.push(Committed {
                revision,
                object,
                prev,
            });
        }
        Ok(Ok((committed, events)))
    }

    /// Drops events older than the history window, or beyond the count cap:
    /// at most [`COMPACTION_STEP`] per commit, so that a large backlog (a
    /// sustained burst of writes outgrowing the cap) is removed over many
    /// commits instead of stalling one for hundreds of milliseconds.
    fn compact(
        &mut self,
        log: &mut redb::Table<u64, &[u8]>,
        meta: &mut redb::Table<&str, u64>,
        unix_ms: u64,
    ) -> Result<Option<Revision>> {
        let cutoff_ms = unix_ms.saturating_sub(self.config.history.as_millis() as u64);
        let min_by_count = self.revision.saturating_sub(self.config.max_history_events);
        let mut last_removed = None;
        let mut removed = 0;
        self.compaction_behind = false;
        loop {
            if removed == COMPACTION_STEP {
                self.compaction_behind = true;
                break;
            }
            let (revision, old) = {
                let Some((revision, bytes)) = log.first().map_err(|e| backend("scan events", e))?
                else {
                    break;
                };
                let revision = revision.value();
                let old = revision <= min_by_count || {
                    logged_time(bytes.value()).is_none_or(|ms| ms < cutoff_ms)
                };
                (revision, old)
            };
            if !old {
                break;
            }
            log.remove(revision).map_err(|e| backend("compact", e))?;
            last_removed = Some(revision);
            removed += 1;
        }
        if let Some(revision) = last_removed {
            meta.insert(META_COMPACTED, revision)
                .map_err(|e| backend("write meta", e))?;
        }
        Ok(last_removed)
    }
}

/// Whether the file system holding `path` has room for the largest object
/// (twice: the object and its event).
fn room_for_an_object(path: &Path) -> std::io::Result<bool> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let needed = 2 * skiff_api::resource::MAX_OBJECT_BYTES as u64;
    Ok(free >= needed)
}

/// Opens (or creates) the database file; another process holding it is an
/// error that says so.
fn create_database(path: &Path) -> Result<Database> {
    match Database::create(path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Backend(format!(
            "{} is in use by another process (is another Skiff running on this data directory?)",
            path.display()
        ))),
        Err(e) => Err(backend("open store", e)),
    }
}

fn read_meta(table: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64> {
    Ok(table
        .get(key)
        .map_err(|e| backend("read meta", e))?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// The plaintext of the object at `encoded`.
fn read_raw(
    objects: &redb::Table<&str, &[u8]>,
    encoded: &str,
    encryption: &Encryption,
) -> Result<Option<Vec<u8>>> {
    let Some(guard) = objects.get(encoded).map_err(|e| backend("read", e))? else {
        return Ok(None);
    };
    Ok(Some(
        open_object(encryption, encoded, guard.value())?.into_owned(),
    ))
}

/// The plaintext of an object as stored (sealed or not) at `encoded`.
fn open_object<'a>(
    encryption: &Encryption,
    encoded: &str,
    stored: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>> {
    encryption
        .open(encoded, encoded.as_bytes(), stored)
        .map_err(|e| StoreError::Sealed(encoded.to_string(), e))
}

/// What a precondition check reads of a stored object.
#[derive(serde::Deserialize)]
struct StoredMeta<'a> {
    #[serde(borrow, default)]
    metadata: Option<StoredRevision<'a>>,
}

#[derive(serde::Deserialize)]
struct StoredRevision<'a> {
    #[serde(rename = "resourceVersion", borrow, default)]
    resource_version: Option<std::borrow::Cow<'a, str>>,
}

/// The revision a stored object was written at (0 if it does not say),
/// read without building the object.
fn stored_revision(key: &str, bytes: &[u8]) -> Result<Revision> {
    let stored: StoredMeta<'_> = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(key.to_string(), e.to_string()))?;
    Ok(stored
        .metadata
        .and_then(|m| m.resource_version)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0))
}

/// An event as written to the log (read back by [`read_log_entry`]):
/// `{"t":type,"k":key,"o":object,"p":prev,"ms":time}`. For a resource that is
/// sealed it is `{"t":type,"k":key,"ms":time}` followed by the sealed
/// `{"o":object,"p":prev}`, bound to the key and revision.
///
/// The object and the previous object go in as the bytes already encoded for
/// the objects table: this thread is the store's bottleneck, and encoding each
/// again cost as much as the table write.
fn log_entry(
    encryption: &Encryption,
    revision: Revision,
    event_type: EventType,
    key: &str,
    object: &[u8],
    prev: Option<&[u8]>,
    unix_ms: u64,
) -> Result<Vec<u8>> {
    let encode = |e: serde_json::Error| backend("encode event", e);
    let sealed = encryption.seals(key);
    let mut out = Vec::with_capacity(object.len() + prev.map_or(0, <[u8]>::len) + key.len() + 48);
    out.extend_from_slice(b"{\"t\":");
    serde_json::to_writer(&mut out, &event_type).map_err(encode)?;
    out.extend_from_slice(b",\"k\":");
    serde_json::to_writer(&mut out, key).map_err(encode)?;
    if !sealed {
        out.push(b',');
        objects_fields(&mut out, object, prev);
    }
    out.extend_from_slice(format!(",\"ms\":{unix_ms}}}").as_bytes());
    if sealed {
        let mut body = Vec::with_capacity(object.len() + prev.map_or(0, <[u8]>::len) + 16);
        body.push(b'{');
        objects_fields(&mut body, object, prev);
        body.push(b'}');
        let sealed = encryption
            .seal(key, log_aad(key, revision).as_bytes(), &body)
            .map_err(|e| StoreError::Sealed(key.to_string(), e))?;
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

/// `"o":object` and `,"p":prev` if there is one.
fn objects_fields(out: &mut Vec<u8>, object: &[u8], prev: Option<&[u8]>) {
    out.extend_from_slice(b"\"o\":");
    out.extend_from_slice(object);
    if let Some(prev) = prev {
        out.extend_from_slice(b",\"p\":");
        out.extend_from_slice(prev);
    }
}

/// What a sealed log entry is bound to: its key and revision, so that it
/// opens nowhere else (not as an object, not as another event).
fn log_aad(key: &str, revision: Revision) -> String {
    format!("{key}@{revision}")
}

/// Reads back an entry [`log_entry`] wrote at `revision`.
fn read_log_entry(
    encryption: &Encryption,
    revision: Revision,
    bytes: &[u8],
) -> Result<LoggedEvent> {
    let corrupt = |e: String| StoreError::Corrupt(format!("event {revision}"), e);
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<LoggedHeader>();
    let header = match values.next() {
        Some(Ok(header)) => header,
        Some(Err(e)) => return Err(corrupt(e.to_string())),
        None => return Err(corrupt("empty".into())),
    };
    let rest = &bytes[values.byte_offset()..];
    let sealed_err = |e| StoreError::Sealed(format!("{} (event {revision})", header.key), e);
    let (object, prev) = match (header.object, rest.is_empty()) {
        (Some(object), true) => {
            encryption
                .accepts_plaintext(&header.key)
                .map_err(sealed_err)?;
            (object, header.prev)
        }
        (None, false) => {
            let plain = encryption
                .open(&header.key, log_aad(&header.key, revision).as_bytes(), rest)
                .map_err(sealed_err)?;
            let objects: LoggedObjects =
                serde_json::from_slice(&plain).map_err(|e| corrupt(e.to_string()))?;
            (objects.object, objects.prev)
        }
        _ => return Err(corrupt("neither plaintext nor sealed objects".into())),
    };
    Ok(LoggedEvent {
        event_type: header.event_type,
        key: header.key,
        object,
        prev,
    })
}

/// The commit time of a logged event, read without the objects.
fn logged_time(bytes: &[u8]) -> Option<u64> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<LoggedTime>();
    Some(values.next()?.ok()?.unix_ms)
}

fn decode(key: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(key.to_string(), e.to_string()))
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{WatchItem, object_revision};
    use serde_json::json;

    #[test]
    fn a_log_entry_reads_back_as_the_event_it_records() {
        let object =
            json!({"metadata": {"name": "a\"b", "resourceVersion": "7"}, "data": {"k": "é"}});
        let prev = json!({"metadata": {"name": "a\"b", "resourceVersion": "6"}});
        let none = Encryption::none();
        let entry = log_entry(
            &none,
            7,
            EventType::Modified,
            "configmaps/default/a\"b",
            &serde_json::to_vec(&object).unwrap(),
            Some(&serde_json::to_vec(&prev).unwrap()),
            1_733_000_000_123,
        )
        .unwrap();
        let logged = read_log_entry(&none, 7, &entry).unwrap();
        assert_eq!(logged.event_type, EventType::Modified);
        assert_eq!(logged.key, "configmaps/default/a\"b");
        assert_eq!(logged.object, object);
        assert_eq!(logged.prev, Some(prev));
        assert_eq!(logged_time(&entry), Some(1_733_000_000_123));

        let added = log_entry(&none, 1, EventType::Added, "k/n/a", b"{}", None, 1).unwrap();
        let logged = read_log_entry(&none, 1, &added).unwrap();
        assert_eq!(logged.prev, None);
        // A null object is an object, not a missing one.
        let null = log_entry(&none, 2, EventType::Deleted, "k/n/a", b"null", None, 1).unwrap();
        assert_eq!(read_log_entry(&none, 2, &null).unwrap().object, Value::Null);
    }

    #[test]
    fn a_sealed_log_entry_keeps_only_type_key_and_time_in_the_clear() {
        let enc = test_encryption("key1", 7);
        let object = json!({"metadata": {"name": "s"}, "data": {"password": "c2VjcmV0LXZhbHVl"}});
        let prev = json!({"metadata": {"name": "s"}, "data": {"password": "b2xkLXZhbHVl"}});
        let entry = log_entry(
            &enc,
            9,
            EventType::Modified,
            "secrets/default/s",
            &serde_json::to_vec(&object).unwrap(),
            Some(&serde_json::to_vec(&prev).unwrap()),
            42,
        )
        .unwrap();
        assert!(entry.starts_with(
            b"{\"t\":\"MODIFIED\",\"k\":\"secrets/default/s\",\"ms\":42}k8s:enc:aesgcm:v1:key1:"
        ));
        for needle in [&b"c2VjcmV0"[..], b"b2xk", b"password"] {
            assert!(!entry.windows(needle.len()).any(|w| w == needle));
        }
        assert_eq!(logged_time(&entry), Some(42));
        let logged = read_log_entry(&enc, 9, &entry).unwrap();
        assert_eq!((logged.object, logged.prev), (object, Some(prev)));
        // Bound to its revision, and unreadable without the key.
        assert!(matches!(
            read_log_entry(&enc, 10, &entry),
            Err(StoreError::Sealed(..))
        ));
        assert!(matches!(
            read_log_entry(&Encryption::none(), 9, &entry),
            Err(StoreError::Sealed(..))
        ));
        // A plaintext Secret event reads only where identity is listed.
        let plain = log_entry(
            &Encryption::none(),
            3,
            EventType::Added,
            "secrets/default/s",
            b"{}",
            None,
            1,
        )
        .unwrap();
        assert!(matches!(
            read_log_entry(&enc, 3, &plain),
            Err(StoreError::Sealed(..))
        ));
    }

    fn put(key: &ObjectKey, object: Value) -> Op {
        Op {
            key: key.clone(),
            precondition: Precondition::None,
            action: Action::Put(object),
            prev: None,
        }
    }

    fn file_contains(path: &Path, needle: &[u8]) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    }

    fn config(encryption: Encryption) -> StoreConfig {
        StoreConfig {
            encryption: Arc::new(encryption),
            ..StoreConfig::default()
        }
    }

    #[tokio::test]
    async fn secrets_are_sealed_on_disk_and_plaintext_to_readers_and_watchers() {
        use futures::StreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let secret = ObjectKey::new("secrets", "default", "db");
        let map = ObjectKey::new("configmaps", "default", "db");
        // "c2VjcmV0LXZhbHVl" is base64 of "secret-value", as a Secret's data is.
        let v1 = json!({"metadata": {"name": "db"}, "data": {"password": "c2VjcmV0LXZhbHVl"}});
        let v2 = json!({"metadata": {"name": "db"}, "data": {"password": "bmV3LXZhbHVl"}});
        {
            let store = RedbStore::open(&path, config(test_encryption("key1", 1))).unwrap();
            let mut watch = store
                .watch(KeyPrefix::new("secrets", None), 0, None)
                .unwrap();
            store.commit(vec![put(&secret, v1.clone())]).await.unwrap();
            store.commit(vec![put(&secret, v2.clone())]).await.unwrap();
            store
                .commit(vec![put(
                    &map,
                    json!({"metadata": {"name": "db"}, "data": {"plain": "visible-value"}}),
                )])
                .await
                .unwrap();
            let read = store.get(&secret).unwrap().unwrap();
            assert_eq!(read["data"], v2["data"]);
            let raw = store.get_raw(&secret).unwrap().unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&raw).unwrap()["data"],
                v2["data"]
            );
            let page = store
                .list(&ListRequest {
                    prefix: KeyPrefix::new("secrets", None),
                    after: None,
                    limit: None,
                    filter: &|_| true,
                })
                .unwrap();
            assert_eq!(page.items[0]["data"], v2["data"]);
            // Live, and then replayed from the log by a watch from 0.
            for watch in [
                &mut watch,
                &mut store
                    .watch(KeyPrefix::new("secrets", None), 0, None)
                    .unwrap(),
            ] {
                let mut seen = Vec::new();
                while seen.len() < 2 {
                    if let Some(Ok(WatchItem::Event(e))) = watch.next().await {
                        seen.push(e);
                    }
                }
                assert_eq!(seen[0].object["data"], v1["data"]);
                assert_eq!(seen[1].object["data"], v2["data"]);
                assert_eq!(seen[1].prev.as_ref().unwrap()["data"], v1["data"]);
            }
            // A precondition on the sealed object's revision reads it back.
            let rv = object_revision(&read).unwrap();
            let deleted = store
                .commit(vec![Op {
                    key: secret.clone(),
                    precondition: Precondition::Revision(rv),
                    action: Action::Delete,
                    prev: None,
                }])
                .await
                .unwrap();
            assert_eq!(deleted[0].object["data"], v2["data"]);
            store.commit(vec![put(&secret, v1.clone())]).await.unwrap();
        }
        for needle in [
            &b"c2VjcmV0LXZhbHVl"[..],
            b"bmV3LXZhbHVl",
            b"secret-value",
            b"password",
        ] {
            assert!(
                !file_contains(&path, needle),
                "{} on disk",
                String::from_utf8_lossy(needle)
            );
        }
        assert!(file_contains(&path, b"k8s:enc:aesgcm:v1:key1:"));
        assert!(
            file_contains(&path, b"visible-value"),
            "only the sealed resource is sealed"
        );

        // Reopened with the key: the same plaintext.
        let store = RedbStore::open(&path, config(test_encryption("key1", 1))).unwrap();
        assert_eq!(store.get(&secret).unwrap().unwrap()["data"], v1["data"]);
        drop(store);
    }

    #[tokio::test]
    async fn a_store_with_sealed_secrets_does_not_open_without_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let secret = ObjectKey::new("secrets", "default", "db");
        {
            let store = RedbStore::open(&path, config(test_encryption("key1", 1))).unwrap();
            store
                .commit(vec![put(
                    &secret,
                    json!({"metadata": {"name": "db"}, "data": {"a": "Yg=="}}),
                )])
                .await
                .unwrap();
        }
        let refused = |encryption| match RedbStore::open(&path, config(encryption)) {
            Ok(_) => panic!("opened"),
            Err(e) => e.to_string(),
        };
        // No encryption at all: never read as plaintext.
        let e = refused(Encryption::none());
        assert!(
            e.contains("secrets/default/db") && e.contains("\"key1\""),
            "{e}"
        );
        // Same key name, other key bytes (a replaced key file).
        let e = refused(test_encryption("key1", 2));
        assert!(e.contains("does not open with key \"key1\""), "{e}");
        // Another key only.
        let e = refused(test_encryption("key2", 2));
        assert!(e.contains("does not list"), "{e}");
    }

    /// Secrets sealed under `name` (a key of `byte`s), with no identity provider.
    pub(super) fn test_encryption(name: &str, byte: u8) -> Encryption {
        use super::super::encryption::{AesKey, Provider, ResourceRule};
        Encryption::new(vec![ResourceRule {
            resources: vec!["secrets".into()],
            providers: vec![Provider::AesGcm(vec![
                AesKey::new(name, &[byte; 32]).unwrap(),
            ])],
        }])
    }
}
