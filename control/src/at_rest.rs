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
