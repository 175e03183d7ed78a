//! Pushed Wasm components: checked at push, stored once by sha256 digest.
//!
//! Bytes live in files under `<data-dir>/components/sha256/<hex>`, written to a
//! temporary file, synced and renamed into place, so a crash never leaves a
//! partial component under its digest. The `Component` objects in the store
//! name them.

pub mod inspect;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use inspect::{Inspection, inspect};

/// Content-addressed component bytes on disk.
#[derive(Debug, Clone)]
pub struct ComponentStore {
    dir: PathBuf,
}

impl ComponentStore {
    /// Opens (creating if needed) the store under `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let dir = dir.join("sha256");
        std::fs::create_dir_all(&dir)?;
        Ok(ComponentStore { dir })
    }

    /// The digest (`sha256:<hex>`) of some bytes.
    pub fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// Stores bytes durably and returns their digest. Storing the same bytes
    /// twice is a no-op.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = Self::digest(bytes);
        let path = self
            .path_of(&digest)
            .ok_or_else(|| std::io::Error::other("bad digest"))?;
        if path.exists() {
            return Ok(digest);
        }
        let tmp = self.dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| digest)
    }

    /// The bytes stored under a digest, if any.
    pub fn get(&self, digest: &str) -> std::io::Result<Option<Vec<u8>>> {
        let Some(path) = self.path_of(digest) else {
            return Ok(None);
        };
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file of a digest; `None` for a malformed digest.
    pub fn path_of(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| self.dir.join(hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path()).unwrap();
        let digest = store.put(b"hello").unwrap();
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.get(&digest).unwrap().unwrap(), b"hello");
        assert_eq!(store.put(b"hello").unwrap(), digest);
        assert!(store.get("sha256:../../etc/passwd").unwrap().is_none());
    }
}
