//! Sealed values checked at open, and rewritten offline under the current key.
//!
//! [`verify`] runs when a store opens: every object of a sealed resource must
//! open with the configured keys, so that a missing or wrong key stops the
//! start with a clear error instead of failing some later read (or, worse,
//! being taken for plaintext).
//!
//! [`OfflineStore::reseal`] is key rotation's and first encryption's second
//! half (the first is the configuration naming the new key first): it seals
//! every object and event-log entry of a sealed resource with the current key.
//! It writes a new store file and renames it over the old one rather than
//! rewriting values in place, because redb is copy-on-write: a value rewritten
//! in place leaves its old bytes (sealed under the old key, or plaintext) in
//! freed pages of the file until they happen to be reused.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

use super::{
    EVENTS, LoggedTime, META, OBJECTS, backend, create_database, log_entry, read_log_entry,
};
use crate::store::encryption::Encryption;
use crate::store::{Result, StoreError};

/// Resources whose stored values are always checked, configured or not: a
/// store that holds sealed Secrets must not open without their key.
const ALWAYS_CHECKED: &[&str] = &["secrets"];

/// What a re-seal rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Objects sealed again under the current key (or first sealed).
    pub objects: usize,
    /// Event-log entries likewise.
    pub events: usize,
}

/// A store file opened by no server: this process holds its lock.
pub struct OfflineStore {
    db: Database,
    path: PathBuf,
}

/// Only the key of a logged event.
#[derive(serde::Deserialize)]
struct LoggedKey {
    #[serde(rename = "k")]
    key: String,
}

impl OfflineStore {
    /// Opens the store file at `path` (which must exist); fails, saying so,
    /// while a server has it open.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(StoreError::Backend(format!(
                "{} does not exist",
                path.display()
            )));
        }
        Ok(OfflineStore {
            db: create_database(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Checks that every sealed object and event-log entry opens with
    /// `encryption`'s keys.
    pub fn verify_all(&self, encryption: &Encryption) -> Result<()> {
        verify(&self.db, encryption)?;
        let resources = checked_resources(encryption);
        let txn = self.db.begin_read().map_err(|e| backend("begin read", e))?;
        let Some(events) = existing(txn.open_table(EVENTS))? else {
            return Ok(());
        };
        for entry in events.iter().map_err(|e| backend("scan events", e))? {
            let (revision, bytes) = entry.map_err(|e| backend("scan events", e))?;
            let (revision, bytes) = (revision.value(), bytes.value());
            if in_resources(&resources, &logged_key(revision, bytes)?) {
                read_log_entry(encryption, revision, bytes)?;
            }
        }
        Ok(())
    }

    /// Seals every value of a sealed resource that is not sealed with
    /// `encryption`'s current key (first sealing plaintext, or moving off a
    /// rotated-out key), and puts the rewritten file in place of the old one.
    pub fn reseal(self, encryption: &Encryption) -> Result<Resealed> {
        let OfflineStore { db, path } = self;
        let tmp = path.with_extension("redb.reseal");
        let io = |what: &str, e: std::io::Error| backend(&format!("{what} {}", tmp.display()), e);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", e)),
        }
        let resealed = {
            let out = Database::create(&tmp).map_err(|e| backend("create store copy", e))?;
            copy(&db, &out, encryption)?
        };
        // The new file gets the old one's permissions (the data dir's files
        // are the owner's only).
        let permissions = std::fs::metadata(&path)
            .map_err(|e| io("read permissions for", e))?
            .permissions();
        std::fs::set_permissions(&tmp, permissions).map_err(|e| io("set permissions of", e))?;
        // Renamed while the old file is still open and locked, so no server can
        // open the old file in between and write to it unseen.
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("sync the directory of", e))?;
        }
        drop(db);
        Ok(resealed)
    }
}

/// Every resource whose objects [`verify`] and [`copy`] look at.
fn checked_resources(encryption: &Encryption) -> Vec<&str> {
    let mut resources: Vec<&str> = encryption.resources().collect();
    for r in ALWAYS_CHECKED {
        if !resources.contains(r) {
            resources.push(r);
        }
    }
    resources
}

/// Checks that every object of a sealed (or always checked) resource opens.
pub(super) fn verify(db: &Database, encryption: &Encryption) -> Result<()> {
    let txn = db.begin_read().map_err(|e| backend("begin read", e))?;
    let Some(objects) = existing(txn.open_table(OBJECTS))? else {
        return Ok(());
    };
    for resource in checked_resources(encryption) {
        let prefix = format!("{resource}/");
        for entry in objects
            .range(prefix.as_str()..)
            .map_err(|e| backend("scan", e))?
        {
            let (key, bytes) = entry.map_err(|e| backend("scan", e))?;
            let key = key.value();
            if !key.starts_with(&prefix) {
                break;
            }
            encryption
                .open(key, key.as_bytes(), bytes.value())
                .map_err(|e| StoreError::Sealed(key.to_string(), e))?;
        }
    }
    Ok(())
}

/// Copies every table of `from` into `to`, sealing what is not sealed as
/// `encryption` would seal it now. A table this code does not know is an
/// error: copying must not drop anything.
fn copy(from: &Database, to: &Database, encryption: &Encryption) -> Result<Resealed> {
    let read = from.begin_read().map_err(|e| backend("begin read", e))?;
    for table in read.list_tables().map_err(|e| backend("list tables", e))? {
        let name = table.name();
        if ![OBJECTS.name(), EVENTS.name(), META.name()].contains(&name) {
            return Err(backend(
                "re-seal",
                format!("the store has a table {name:?} this version of Skiff does not know"),
            ));
        }
    }
    let resources = checked_resources(encryption);
    let sealed = |key: &str| in_resources(&resources, key);
    let mut resealed = Resealed::default();
    let write = to.begin_write().map_err(|e| backend("begin write", e))?;
    {
        let mut objects = write
            .open_table(OBJECTS)
            .map_err(|e| backend("open objects", e))?;
        if let Some(table) = existing(read.open_table(OBJECTS))? {
            for entry in table.iter().map_err(|e| backend("scan", e))? {
                let (key, bytes) = entry.map_err(|e| backend("scan", e))?;
                let (key, bytes) = (key.value(), bytes.value());
                if sealed(key) && !encryption.is_current(key, bytes) {
                    let err = |e| StoreError::Sealed(key.to_string(), e);
                    let plain = encryption.open(key, key.as_bytes(), bytes).map_err(err)?;
                    let stored = encryption.seal(key, key.as_bytes(), &plain).map_err(err)?;
                    objects
                        .insert(key, &*stored)
                        .map_err(|e| backend("write", e))?;
                    resealed.objects += 1;
                } else {
                    objects
                        .insert(key, bytes)
                        .map_err(|e| backend("write", e))?;
                }
            }
        }

        let mut events = write
            .open_table(EVENTS)
            .map_err(|e| backend("open events", e))?;
        if let Some(table) = existing(read.open_table(EVENTS))? {
            for entry in table.iter().map_err(|e| backend("scan events", e))? {
                let (revision, bytes) = entry.map_err(|e| backend("scan events", e))?;
                let (revision, bytes) = (revision.value(), bytes.value());
                let out = match reseal_event(encryption, &sealed, revision, bytes)? {
                    Some(out) => {
                        resealed.events += 1;
                        std::borrow::Cow::Owned(out)
                    }
                    None => std::borrow::Cow::Borrowed(bytes),
                };
                events
                    .insert(revision, &*out)
                    .map_err(|e| backend("write event", e))?;
            }
        }

        let mut meta = write
            .open_table(META)
            .map_err(|e| backend("open meta", e))?;
        if let Some(table) = existing(read.open_table(META))? {
            for entry in table.iter().map_err(|e| backend("scan meta", e))? {
                let (key, value) = entry.map_err(|e| backend("scan meta", e))?;
                meta.insert(key.value(), value.value())
                    .map_err(|e| backend("write meta", e))?;
            }
        }
    }
    write.commit().map_err(|e| backend("commit", e))?;
    Ok(resealed)
}

/// The log entry at `revision` as it is written now, if it is not already.
fn reseal_event(
    encryption: &Encryption,
    sealed: &impl Fn(&str) -> bool,
    revision: u64,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>> {
    let corrupt = |e: String| StoreError::Corrupt(format!("event {revision}"), e);
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<LoggedKey>();
    let key = match values.next() {
        Some(Ok(logged)) => logged.key,
        Some(Err(e)) => return Err(corrupt(e.to_string())),
        None => return Err(corrupt("empty".into())),
    };
    if !sealed(&key) {
        return Ok(None);
    }
    // The sealed objects, if any, follow the header.
    let rest = &bytes[values.byte_offset()..];
    let current = if rest.is_empty() {
        !encryption.seals(&key)
    } else {
        encryption.is_current(&key, rest)
    };
    if current {
        return Ok(None);
    }
    let logged = read_log_entry(encryption, revision, bytes)?;
    let unix_ms = {
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<LoggedTime>();
        match values.next() {
            Some(Ok(time)) => time.unix_ms,
            _ => return Err(corrupt("no time".into())),
        }
    };
    let encode = |e: serde_json::Error| backend("encode event", e);
    let object = serde_json::to_vec(&logged.object).map_err(encode)?;
    let prev = match &logged.prev {
        Some(prev) => Some(serde_json::to_vec(prev).map_err(encode)?),
        None => None,
    };
    log_entry(
        encryption,
        revision,
        logged.event_type,
        &key,
        &object,
        prev.as_deref(),
        unix_ms,
    )
    .map(Some)
}

/// Whether a storage key belongs to one of `resources`.
fn in_resources(resources: &[&str], key: &str) -> bool {
    resources.contains(&key.split('/').next().unwrap_or(key))
}

/// The key of a logged event, read without its objects.
fn logged_key(revision: u64, bytes: &[u8]) -> Result<String> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<LoggedKey>();
    match values.next() {
        Some(Ok(logged)) => Ok(logged.key),
        Some(Err(e)) => Err(StoreError::Corrupt(
            format!("event {revision}"),
            e.to_string(),
        )),
        None => Err(StoreError::Corrupt(
            format!("event {revision}"),
            "empty".into(),
        )),
    }
}

/// A table of a file that may not have it yet (never written to).
fn existing<T>(opened: std::result::Result<T, redb::TableError>) -> Result<Option<T>> {
    match opened {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend("open table", e)),
    }
}
