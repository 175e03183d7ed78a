//! Where the benchmarks keep their data: under `SKIFF_BENCH_DIR` when set,
//! otherwise the target's tmp dir, on the real disk as for a user (`/tmp` can
//! be tmpfs, where an fsync costs nothing).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The directory the benchmarks' own directories go under.
pub fn parent() -> PathBuf {
    std::env::var_os("SKIFF_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// A fresh directory `<prefix>XXXXXX` under `parent`, removed when dropped
/// (`TempDir::keep` keeps it, with its logs, after a failure).
pub fn fresh(parent: &Path, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .with_context(|| format!("create a {prefix}* directory under {}", parent.display()))
}
