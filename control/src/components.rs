//! Pushed Wasm components: checked at push, stored once by sha256 digest.
//!
//! Bytes live in files under `<data-dir>/components/sha256/<hex>`, written to a
//! temporary file, synced and renamed into place, so a crash never leaves a
//! partial component under its digest. The `Component` objects in the store
//! name them.

pub mod inspect;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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

    /// Starts storing a component that arrives in pieces: the bytes go to a
    /// temporary file as they come, hashed on the way, and are never held in
    /// memory whole. Dropping the [`Upload`] before [`Upload::commit`]
    /// removes the file.
    pub async fn begin(&self) -> std::io::Result<Upload> {
        let tmp = self.dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        Ok(Upload {
            dir: self.dir.clone(),
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Stores bytes durably and returns their digest. Storing the same bytes
    /// twice is a no-op.
    pub async fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let mut upload = self.begin().await?;
        upload.write(bytes).await?;
        match upload
            .commit(|_| Ok::<_, std::convert::Infallible>(()))
            .await
        {
            Ok((digest, ())) => Ok(digest),
            Err(CommitError::Io(e)) => Err(e),
            Err(CommitError::Refused(never)) => match never {},
        }
    }

    /// The component stored under a digest, opened for reading, if any.
    pub async fn read(&self, digest: &str) -> std::io::Result<Option<Stored>> {
        let Some(path) = self.path_of(digest) else {
            return Ok(None);
        };
        match tokio::fs::File::open(path).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some(Stored { size, file }))
            }
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

/// How much of a stored component is read at once when it is served.
const PIECE: usize = 256 << 10;

/// A stored component, open: served a piece at a time, never whole.
#[derive(Debug)]
pub struct Stored {
    pub size: u64,
    file: tokio::fs::File,
}

impl Stored {
    /// The bytes, in pieces.
    pub fn into_pieces(
        self,
    ) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
        futures::stream::try_unfold(self.file, |mut file| async move {
            let mut piece = vec![0; PIECE];
            let n = file.read(&mut piece).await?;
            if n == 0 {
                return Ok(None);
            }
            piece.truncate(n);
            Ok(Some((bytes::Bytes::from(piece), file)))
        })
    }
}

/// A component being received: a temporary file and the hash of what has
/// been written to it so far.
#[derive(Debug)]
pub struct Upload {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError<E> {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The check given to [`Upload::commit`] refused the bytes.
    #[error("{0}")]
    Refused(E),
}

impl Upload {
    /// Appends a piece.
    pub async fn write(&mut self, piece: &[u8]) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already committed"))?;
        file.write_all(piece).await?;
        self.hasher.update(piece);
        self.size = self.size.saturating_add(piece.len() as u64);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the file, runs `check` over its bytes (mapped from the file, so
    /// a large component costs page cache, not heap), and moves it under its
    /// digest. A refused or failed upload leaves nothing behind.
    pub async fn commit<T, E>(
        mut self,
        check: impl FnOnce(&[u8]) -> Result<T, E> + Send + 'static,
    ) -> Result<(String, T), CommitError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let Some(mut file) = self.file.take() else {
            return Err(std::io::Error::other("upload already committed").into());
        };
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let digest = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        let (dir, tmp) = (self.dir.clone(), self.tmp.clone());
        let hex = digest.trim_start_matches("sha256:").to_string();
        let result = tokio::task::spawn_blocking(move || -> Result<T, CommitError<E>> {
            let found = {
                let file = std::fs::File::open(&tmp)?;
                if file.metadata()?.len() == 0 {
                    check(&[])
                } else {
                    // SAFETY: the file is this upload's own, under the 0700
                    // data dir, and nothing writes to it while it is mapped.
                    let map = unsafe { memmap2::Mmap::map(&file)? };
                    check(&map)
                }
            }
            .map_err(CommitError::Refused)?;
            let path = dir.join(&hex);
            if !path.exists() {
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&dir)?.sync_all()?;
            }
            Ok(found)
        })
        .await
        .map_err(|e| std::io::Error::other(format!("store component: {e}")))??;
        Ok((digest, result))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // After a successful commit the file has been renamed away.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;

    use super::*;

    #[tokio::test]
    async fn stores_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path()).unwrap();
        let digest = store.put(b"hello").await.unwrap();
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let stored = store.read(&digest).await.unwrap().unwrap();
        assert_eq!(stored.size, 5);
        let pieces: Vec<bytes::Bytes> = stored.into_pieces().try_collect().await.unwrap();
        assert_eq!(pieces.concat(), b"hello");
        assert_eq!(store.put(b"hello").await.unwrap(), digest);
        assert!(
            store
                .read("sha256:../../etc/passwd")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_refused_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path()).unwrap();
        let mut upload = store.begin().await.unwrap();
        upload.write(b"not ").await.unwrap();
        upload.write(b"wasm").await.unwrap();
        assert_eq!(upload.size(), 8);
        let refused = upload
            .commit(|bytes| {
                assert_eq!(bytes, b"not wasm");
                Err::<(), _>("no")
            })
            .await;
        assert!(matches!(refused, Err(CommitError::Refused("no"))));
        let left = std::fs::read_dir(dir.path().join("sha256"))
            .unwrap()
            .count();
        assert_eq!(left, 0, "nothing stays behind");
        drop(store.begin().await.unwrap());
        let left = std::fs::read_dir(dir.path().join("sha256"))
            .unwrap()
            .count();
        assert_eq!(left, 0, "an abandoned upload is removed");
    }
}
