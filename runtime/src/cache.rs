//! The on-disk cache of compiled components, keyed by the component's sha256 and the
//! engine's compatibility fingerprint, so that a node restart does not recompile.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::error::{Result, RuntimeError};

/// A directory of `<fingerprint>/<sha256>.cwasm` files.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache under `root` for artifacts compiled by `engine`.
    pub fn new(root: &Path, engine: &wasmtime::Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir: root.join(format!("{:016x}", h.finish())),
        }
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The cached component for `digest`, if there is a usable one.
    pub fn get(&self, engine: &wasmtime::Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be a wasmtime artifact that
        // this engine configuration produced. Skiff wrote it itself (see `put`),
        // under its own data directory, with a name that includes the engine's
        // compatibility fingerprint; it is written to a temporary name and renamed,
        // so it is never seen half-written. wasmtime still checks the header
        // (version, target, flags) and refuses an incompatible file.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Store the compiled form of `component` under `digest`.
    pub fn put(&self, digest: &str, component: &Component) -> Result<()> {
        let bytes = component.serialize().map_err(RuntimeError::Compile)?;
        self.put_artifact(digest, &bytes)
    }

    /// Store a serialized artifact under `digest`.
    pub fn put_artifact(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Cache { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(err(&self.dir))?;
        let path = self.path(digest);
        let tmp = self
            .dir
            .join(format!(".{digest}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
        Ok(())
    }
}
