//! Encryption at rest for a data directory: the key file beside the store,
//! created at first start, read at every start, and rotated offline.
//!
//! The sealing itself is the store's (`store::encryption` seals values,
//! `store::redb` applies it to every copy it writes); this module decides which
//! keys a start uses. `<data>/encryption-config.yaml` is Kubernetes'
//! `EncryptionConfiguration`; without it Skiff never falls back to plaintext:
//!
//! - no file and no store: first start, a new random key is written (0600);
//! - no file but a store: a new key, unless the store holds Secrets sealed with
//!   a key (then the file was lost, and starting is refused saying so); Secrets
//!   the store kept in plaintext (written before Skiff sealed them) are sealed;
//! - a file that does not parse, or keys that do not open the stored Secrets:
//!   the start fails with the file's or the Secret's name.
//!
//! [`rotate_key`] needs the server stopped (the store file is locked while it
//! runs): it puts a new key first, seals every Secret and every event-log entry
//! of one with it into a fresh store file, then drops the old keys.

use std::path::{Path, PathBuf};

use crate::store::StoreError;
use crate::store::encryption::Encryption;
use crate::store::encryption::config::{ConfigError, EncryptionConfiguration};
use crate::store::redb::{OfflineStore, Resealed};

/// The encryption configuration's file name in the data directory.
pub const CONFIG_FILE: &str = "encryption-config.yaml";
/// The store's file name in the data directory.
pub const STORE_FILE: &str = "store.redb";

/// Why the keys could not be set up or rotated.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{config} is missing, but the store holds Secrets sealed with a key ({source}); restore the file from a backup, since without its keys they cannot be read"
    )]
    MissingConfig { config: PathBuf, source: StoreError },
    #[error("the stored Secrets do not open with the keys in {config}: {source}")]
    WrongKeys { config: PathBuf, source: StoreError },
    #[error(
        "no encryption configuration at {0}: start the server on this data directory once to create it"
    )]
    NoConfig(PathBuf),
    #[error("open the store {0} (stop the server on this data directory first): {1}")]
    OpenStore(PathBuf, StoreError),
    #[error("seal the stored Secrets again: {0}")]
    Reseal(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of [`rotate_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key every Secret is sealed with now.
    pub key: String,
    /// The keys removed from the configuration.
    pub removed: Vec<String>,
    pub resealed: Resealed,
}

/// The sealing a server on `data_dir` starts with, creating the key file when
/// there is none (see the module doc). Runs before the store is opened.
pub fn prepare(data_dir: &Path) -> Result<Encryption, AtRestError> {
    let config_path = data_dir.join(CONFIG_FILE);
    let store_path = data_dir.join(STORE_FILE);
    // `symlink_metadata`: a dangling link is a file that is there and broken,
    // which reading reports, not a missing one to write over.
    if std::fs::symlink_metadata(&config_path).is_ok() {
        let config = EncryptionConfiguration::read(&config_path)?;
        let encryption = config.encryption(&config_path)?;
        log_keys(&config, &config_path);
        return Ok(encryption);
    }
    let config = EncryptionConfiguration::generate()?;
    let encryption = config.encryption(&config_path)?;
    if !store_path.exists() {
        config.write(&config_path)?;
        log_keys(&config, &config_path);
        return Ok(encryption);
    }
    let store = OfflineStore::open(&store_path)?;
    store
        .verify_all(&encryption)
        .map_err(|source| AtRestError::MissingConfig {
            config: config_path.clone(),
            source,
        })?;
    // The key is on disk before anything is sealed with it.
    config.write(&config_path)?;
    let resealed = store.reseal(&encryption).map_err(AtRestError::Reseal)?;
    tracing::info!(
        objects = resealed.objects,
        events = resealed.events,
        "sealed the Secrets this store kept in plaintext"
    );
    log_keys(&config, &config_path);
    Ok(encryption)
}

/// Seals every Secret in `data_dir`'s store under a new key and drops the old
/// keys. The server must be stopped. A crash part-way leaves a configuration
/// that opens the store: the new key is written (beside the old ones) before
/// anything is sealed with it, and the old ones are dropped only after.
pub fn rotate_key(data_dir: &Path) -> Result<Rotation, AtRestError> {
    let config_path = data_dir.join(CONFIG_FILE);
    let store_path = data_dir.join(STORE_FILE);
    if std::fs::symlink_metadata(&config_path).is_err() {
        return Err(AtRestError::NoConfig(config_path));
    }
    let config = EncryptionConfiguration::read(&config_path)?;
    let store = if store_path.exists() {
        let store = OfflineStore::open(&store_path)
            .map_err(|e| AtRestError::OpenStore(store_path.clone(), e))?;
        store
            .verify_all(&config.encryption(&config_path)?)
            .map_err(|source| AtRestError::WrongKeys {
                config: config_path.clone(),
                source,
            })?;
        Some(store)
    } else {
        None
    };
    let (rotating, key) = config.with_new_key()?;
    let encryption = rotating.encryption(&config_path)?;
    rotating.write(&config_path)?;
    let resealed = match store {
        Some(store) => store.reseal(&encryption).map_err(AtRestError::Reseal)?,
        None => Resealed::default(),
    };
    let done = rotating.without_old_keys(&key);
    done.write(&config_path)?;
    let removed = config.key_names().into_iter().map(str::to_string).collect();
    Ok(Rotation {
        key,
        removed,
        resealed,
    })
}

fn log_keys(config: &EncryptionConfiguration, path: &Path) {
    match config.primary_key_name() {
        Some(key) => tracing::info!(key, config = %path.display(), "Secrets are sealed at rest"),
        None => tracing::warn!(
            config = %path.display(),
            "Secrets are stored unencrypted: the encryption configuration lists identity first"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt as _;
    use serde_json::{Value, json};

    use super::*;
    use crate::store::redb::{RedbStore, StoreConfig};
    use crate::store::{Action, KeyPrefix, ObjectKey, Op, Precondition, Store, WatchItem};

    fn open(dir: &Path, encryption: Encryption) -> RedbStore {
        let config = StoreConfig {
            encryption: Arc::new(encryption),
            ..StoreConfig::default()
        };
        RedbStore::open(&dir.join(STORE_FILE), config).unwrap()
    }

    async fn put(store: &RedbStore, name: &str, value: &str) {
        let object = json!({"metadata": {"name": name}, "data": {"token": value}});
        store
            .commit(vec![Op {
                key: ObjectKey::new("secrets", "default", name),
                precondition: Precondition::None,
                action: Action::Put(object),
                prev: None,
            }])
            .await
            .unwrap();
    }

    fn token(store: &RedbStore, name: &str) -> Value {
        let key = ObjectKey::new("secrets", "default", name);
        store.get(&key).unwrap().unwrap()["data"]["token"].clone()
    }

    /// Every Secret event from the start of the log, as watch replays it.
    async fn replayed(store: &RedbStore, count: usize) -> Vec<Value> {
        let mut watch = store
            .watch(KeyPrefix::new("secrets", None), 0, None)
            .unwrap();
        let mut seen = Vec::new();
        while seen.len() < count {
            match watch.next().await {
                Some(Ok(WatchItem::Event(e))) => seen.push(e.object["data"]["token"].clone()),
                Some(Ok(WatchItem::Progress(_))) => {}
                other => panic!("watch ended: {other:?}"),
            }
        }
        seen
    }

    fn store_contains(dir: &Path, needle: &str) -> bool {
        let bytes = std::fs::read(dir.join(STORE_FILE)).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[tokio::test]
    async fn first_start_writes_a_private_key_file_and_seals() {
        let dir = tempfile::tempdir().unwrap();
        let encryption = prepare(dir.path()).unwrap();
        assert!(encryption.seals("secrets/default/a"));
        let path = dir.path().join(CONFIG_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let written = std::fs::read(&path).unwrap();
        // A second start reads the same file and changes nothing.
        prepare(dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), written);
    }

    #[tokio::test]
    async fn a_lost_or_broken_key_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), prepare(dir.path()).unwrap());
        put(&store, "a", "dG9w").await;
        drop(store);
        let path = dir.path().join(CONFIG_FILE);

        std::fs::write(&path, "apiVersion: apiserver.config.k8s.io/v1\nkind: [").unwrap();
        let e = prepare(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CONFIG_FILE) && e.contains("not a valid"), "{e}");

        std::fs::remove_file(&path).unwrap();
        let e = prepare(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is missing") && e.contains("\"key1\""), "{e}");
        assert!(!path.exists(), "no new key was written over the lost one");
    }

    #[tokio::test]
    async fn a_store_from_before_sealing_is_sealed_at_its_first_start_with_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Encryption::none());
        put(&store, "a", "cGxhaW4tb2xk").await;
        put(&store, "a", "cGxhaW4tbmV3").await;
        drop(store);
        assert!(store_contains(dir.path(), "cGxhaW4tb2xk"));

        let encryption = prepare(dir.path()).unwrap();
        assert!(!store_contains(dir.path(), "cGxhaW4tb2xk"));
        assert!(!store_contains(dir.path(), "cGxhaW4tbmV3"));
        let store = open(dir.path(), encryption);
        assert_eq!(token(&store, "a"), "cGxhaW4tbmV3");
        assert_eq!(replayed(&store, 2).await, ["cGxhaW4tb2xk", "cGxhaW4tbmV3"]);
    }

    #[tokio::test]
    async fn rotation_reseals_objects_and_history_and_drops_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), prepare(dir.path()).unwrap());
        put(&store, "a", "Zmlyc3Q=").await;
        put(&store, "a", "c2Vjb25k").await;
        put(&store, "b", "dGhpcmQ=").await;
        // The store is locked while a server has it.
        let e = rotate_key(dir.path()).unwrap_err().to_string();
        assert!(e.contains("stop the server"), "{e}");
        drop(store);
        assert!(store_contains(dir.path(), "k8s:enc:aesgcm:v1:key1:"));

        let rotation = rotate_key(dir.path()).unwrap();
        assert_eq!(rotation.key, "key2");
        assert_eq!(rotation.removed, ["key1"]);
        assert_eq!(
            rotation.resealed,
            Resealed {
                objects: 2,
                events: 3
            }
        );
        let config = EncryptionConfiguration::read(&dir.path().join(CONFIG_FILE)).unwrap();
        assert_eq!(config.key_names(), ["key2"]);
        assert!(!store_contains(dir.path(), "k8s:enc:aesgcm:v1:key1:"));
        assert!(store_contains(dir.path(), "k8s:enc:aesgcm:v1:key2:"));

        let store = open(dir.path(), prepare(dir.path()).unwrap());
        assert_eq!(token(&store, "a"), "c2Vjb25k");
        assert_eq!(token(&store, "b"), "dGhpcmQ=");
        assert_eq!(
            replayed(&store, 3).await,
            ["Zmlyc3Q=", "c2Vjb25k", "dGhpcmQ="]
        );
        // Writes go on after it, at the revisions after the old ones.
        put(&store, "c", "Zm91cnRo").await;
        assert_eq!(store.revision(), 4);
    }
}
