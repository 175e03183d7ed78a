//! Where the benchmarks keep their data: under `SKIFF_BENCH_DIR` when set,
//! otherwise the target's tmp dir, on the real disk as for a user (`/tmp` can
//! be tmpfs, where an fsync costs nothing).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use anyhow::Context;

/// The directory the benchmarks' own directories go under.
pub fn parent() -> PathBuf {
    std::env::var_os("SKIFF_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// A fresh directory `<prefix>XXXXXX` under `parent`, removed when dropped
/// (`TempDir::keep` keeps it, with its logs, after a failure).
pub fn fresh(parent: &Path, prefix: &str) -> anyhow::Result<TempDir> {
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .with_context(|| format!("create a {prefix}* directory under {}", parent.display()))
}

/// `result`, keeping `dir` (and the logs in it) when it is an error, and
/// saying where; on success `dir` is removed.
pub fn keep_on_error<T>(result: anyhow::Result<T>, dir: TempDir) -> anyhow::Result<T> {
    if result.is_err() {
        eprintln!("the logs are kept in {}", dir.keep().display());
    }
    result
}
