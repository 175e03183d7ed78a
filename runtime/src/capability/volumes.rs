//! The volumes capability: the pod's volume mounts, as preopened directories.
//! It links nothing of its own: `wasi:filesystem` comes with WASI's base set
//! (see [`cli`](super::cli)), and without preopens it shows a guest nothing.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::{Capability, Instance};
use crate::error::{Result, RuntimeError};
use crate::host::PodSpec;

/// A host directory made visible to the guest (a volume mount).
#[derive(Debug, Clone)]
pub struct Mount {
    /// Directory on the host.
    pub host_path: PathBuf,
    /// Path the guest opens it at (e.g. `/data`).
    pub guest_path: String,
    /// Whether the guest may only read.
    pub read_only: bool,
    /// The directory, opened and checked by whoever made the mount. When
    /// set, every instance gets this very directory (reopened through
    /// `/proc/self/fd`), whatever is at `host_path` by then: a pod that
    /// swaps a directory of its volume for a symlink cannot lead the next
    /// instance elsewhere.
    pub pinned: Option<Arc<OwnedFd>>,
}

impl Mount {
    /// The path to open for an instance.
    fn open_path(&self) -> PathBuf {
        match &self.pinned {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.host_path.clone(),
        }
    }
}

pub(crate) struct VolumesCapability;

impl Capability for VolumesCapability {
    /// Open every mount once, so a bad mount fails at pod start.
    fn configure(&self, spec: &PodSpec) -> Result<()> {
        preopen(spec, &mut WasiCtxBuilder::new())
    }

    fn prepare(&self, spec: &PodSpec, instance: &mut Instance<'_>) -> Result<()> {
        preopen(spec, &mut instance.wasi)
    }
}

/// Preopen the mounts of `spec` in `b`.
fn preopen(spec: &PodSpec, b: &mut WasiCtxBuilder) -> Result<()> {
    for m in &spec.mounts {
        let perms = if m.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(m.open_path(), &m.guest_path, perms)
            .map_err(|e| RuntimeError::Mount {
                pod: spec.qualified_name(),
                host: m.host_path.clone(),
                guest: m.guest_path.clone(),
                reason: format!("{e:#}"),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_that_cannot_be_opened_fails_configure_naming_the_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let mut spec = PodSpec {
            name: "p".into(),
            namespace: "ns".into(),
            mounts: vec![Mount {
                host_path: dir.path().to_path_buf(),
                guest_path: "/data".into(),
                read_only: false,
                pinned: None,
            }],
            ..PodSpec::default()
        };
        VolumesCapability
            .configure(&spec)
            .expect("an existing directory");
        spec.mounts.push(Mount {
            host_path: missing.clone(),
            guest_path: "/gone".into(),
            read_only: true,
            pinned: None,
        });
        match VolumesCapability.configure(&spec) {
            Err(RuntimeError::Mount {
                pod, host, guest, ..
            }) => {
                assert_eq!(pod, "ns/p");
                assert_eq!(host, missing);
                assert_eq!(guest, "/gone");
            }
            other => panic!("expected a mount error, got {other:?}"),
        }
    }
}
