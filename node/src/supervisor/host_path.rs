//! The node's half of the hostPath policy (the API server's half, and why
//! the check is split, is in `control/src/admission/host_path.rs`).
//!
//! A pod sees a host directory only if it lies under one its operator
//! allowed (`skiff node --allow-host-path DIR[:rw]`), and never the node's
//! own data directory (its identity key, other pods' volumes), neither inside
//! it nor above it. Paths are resolved on this node's disk one component at
//! a time, each checked to stay under the allowed directory, so neither a
//! symlink in the path or in a `subPath` (which the pod itself may have
//! planted in a writable volume) nor a directory created on the way escapes
//! it. The resolved directory is then opened and held ([`PinnedDir`]), and
//! where the opened directory really is gets checked once more: a pod that
//! swaps a directory on the way for a symlink between the walk and the open
//! is refused, and one that does so later changes nothing, because the
//! runtime preopens the held directory, not its path. From there the sandbox
//! keeps the guest inside. A mount is read-only unless its directory was
//! allowed `:rw`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

/// A directory pods may mount through hostPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHostPath {
    pub path: PathBuf,
    /// Whether pods may write to it (`DIR:rw`); read-only otherwise.
    pub writable: bool,
}

/// Why `--allow-host-path` was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    #[error("--allow-host-path {0}: must be an absolute path")]
    NotAbsolute(String),
    #[error("--allow-host-path {0}: the root directory cannot be allowed")]
    Root(String),
    #[error("--allow-host-path {0}: {1}")]
    Io(String, io::Error),
}

/// Why a pod may not mount a hostPath; the message is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum HostPathRefused {
    #[error("hostPath {0} must be an absolute path without '..'")]
    NotAbsolute(String),
    #[error(
        "hostPath {0} is not under a directory this node allows (skiff node --allow-host-path DIR)"
    )]
    NotAllowed(String),
    #[error("hostPath {path}: {source}")]
    Resolve { path: String, source: ResolveError },
    #[error("hostPath {0} holds or is inside this node's data directory")]
    HoldsDataDir(String),
}

/// Why a path does not resolve to a directory within its base
/// ([`resolve_within`]).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{} must be a relative path without '..'", .0.display())]
    NotRelative(PathBuf),
    #[error("{} is inside this node's data directory", .0.display())]
    Protected(PathBuf),
    #[error("{} does not exist on this node", .0.display())]
    Missing(PathBuf),
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot resolve {}: {source}", path.display())]
    Canonicalize { path: PathBuf, source: io::Error },
    /// A symlink on the way leads out of the base.
    #[error("{} resolves to {}, outside {}", path.display(), real.display(), base.display())]
    Outside {
        path: PathBuf,
        real: PathBuf,
        base: PathBuf,
    },
    #[error("{} is not a directory on this node", .0.display())]
    NotDirectory(PathBuf),
    /// The directory was replaced (by a symlink, say) after it was resolved.
    #[error("{} changed while it was being opened", .0.display())]
    Changed(PathBuf),
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
}

/// A directory resolved for a pod and held open: the pod gets this very
/// directory, wherever it is moved later and whatever is put at its path.
#[derive(Debug, Clone)]
pub struct PinnedDir {
    /// Where the directory was when it was opened.
    pub path: PathBuf,
    /// The open directory, kept for as long as a mount uses it.
    pub fd: Arc<OwnedFd>,
}

impl PinnedDir {
    /// Opens `dir`, which must not be a symlink, and checks where the opened
    /// directory really is: under `base` and outside `avoid`.
    pub fn open(dir: &Path, base: &Path, avoid: &[PathBuf]) -> Result<PinnedDir, ResolveError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let symlink = || std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_symlink());
        let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| match e {
            // Linux says ENOTDIR for a symlink under O_DIRECTORY | O_NOFOLLOW.
            rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP if symlink() => {
                ResolveError::Changed(dir.to_path_buf())
            }
            rustix::io::Errno::NOTDIR => ResolveError::NotDirectory(dir.to_path_buf()),
            e => ResolveError::Open {
                path: dir.to_path_buf(),
                source: e.into(),
            },
        })?;
        let real = fd_path(&fd).map_err(|source| ResolveError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        if avoid.iter().any(|a| real.starts_with(a)) {
            return Err(ResolveError::Protected(real));
        }
        if !real.starts_with(base) {
            return Err(ResolveError::Outside {
                path: dir.to_path_buf(),
                real,
                base: base.to_path_buf(),
            });
        }
        Ok(PinnedDir {
            path: real,
            fd: Arc::new(fd),
        })
    }
}

/// Where the file open at `fd` is now, as the kernel knows it (Linux's
/// `/proc`; elsewhere the mount is refused with the error).
fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl std::str::FromStr for AllowedHostPath {
    type Err = HostPathError;

    /// `DIR` (read-only) or `DIR:rw`, as the flag takes it (`DIR:ro` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (dir, writable) = match s.rsplit_once(':') {
            Some((dir, "rw")) => (dir, true),
            Some((dir, "ro")) => (dir, false),
            _ => (s, false),
        };
        let path = PathBuf::from(dir);
        if !path.is_absolute() {
            return Err(HostPathError::NotAbsolute(s.to_string()));
        }
        if path.components().all(|c| c == Component::RootDir) {
            return Err(HostPathError::Root(s.to_string()));
        }
        Ok(AllowedHostPath { path, writable })
    }
}

/// The policy a node applies to hostPath volumes.
#[derive(Debug, Clone, Default)]
pub struct HostPathPolicy {
    /// (as given, as resolved, writable).
    allowed: Vec<(PathBuf, PathBuf, bool)>,
    /// The node's data directory, and any other it must keep to itself,
    /// resolved.
    protected: Vec<PathBuf>,
}

impl HostPathPolicy {
    /// The policy for `allowed` directories (each must exist) on a node whose
    /// data lives in `protected` directories (its data directory first).
    pub fn new(allowed: &[AllowedHostPath], protected: &[PathBuf]) -> Result<Self, HostPathError> {
        let show = |p: &Path| p.display().to_string();
        let mut resolved = Vec::new();
        for a in allowed {
            let real =
                std::fs::canonicalize(&a.path).map_err(|e| HostPathError::Io(show(&a.path), e))?;
            if real.parent().is_none() {
                return Err(HostPathError::Root(show(&a.path)));
            }
            resolved.push((normalize(&a.path), real, a.writable));
        }
        Ok(HostPathPolicy {
            allowed: resolved,
            protected: protected
                .iter()
                .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| normalize(d)))
                .collect(),
        })
    }

    /// The directory to preopen for hostPath `path` (`create`: for
    /// `DirectoryOrCreate`), held open, and whether it must be mounted
    /// read-only; or why the pod may not have it.
    pub fn resolve(&self, path: &str, create: bool) -> Result<(PinnedDir, bool), HostPathRefused> {
        let requested = Path::new(path);
        if !requested.is_absolute() || requested.components().any(|c| c == Component::ParentDir) {
            return Err(HostPathRefused::NotAbsolute(path.to_string()));
        }
        let requested = normalize(requested);
        let Some((root, rest, writable)) = self.allowed.iter().find_map(|(given, real, w)| {
            let rest = requested
                .strip_prefix(given)
                .or_else(|_| requested.strip_prefix(real))
                .ok()?;
            Some((real, rest, *w))
        }) else {
            return Err(HostPathRefused::NotAllowed(path.to_string()));
        };
        let dir = resolve_within(root, rest, create, &self.protected).map_err(|source| {
            HostPathRefused::Resolve {
                path: path.to_string(),
                source,
            }
        })?;
        if self
            .protected
            .iter()
            .any(|data| data.starts_with(&dir.path))
        {
            return Err(HostPathRefused::HoldsDataDir(path.to_string()));
        }
        Ok((dir, !writable))
    }
}

/// `base/rel`, resolved on disk: each component is followed (symlinks
/// included) and must stay under `base` (itself resolved) and out of
/// `avoid`; a missing one is created when `create`. The result is a
/// directory, held open ([`PinnedDir::open`]).
pub fn resolve_within(
    base: &Path,
    rel: &Path,
    create: bool,
    avoid: &[PathBuf],
) -> Result<PinnedDir, ResolveError> {
    let inside_avoided = |p: &Path| avoid.iter().any(|a| p.starts_with(a));
    let mut current = base.to_path_buf();
    for component in rel.components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::CurDir => continue,
            _ => return Err(ResolveError::NotRelative(rel.to_path_buf())),
        };
        let next = current.join(name);
        if inside_avoided(&next) {
            return Err(ResolveError::Protected(next));
        }
        if std::fs::symlink_metadata(&next).is_err() {
            if !create {
                return Err(ResolveError::Missing(next));
            }
            match std::fs::create_dir(&next) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(ResolveError::Create { path: next, source }),
            }
        }
        let real = match std::fs::canonicalize(&next) {
            Ok(real) => real,
            Err(source) => return Err(ResolveError::Canonicalize { path: next, source }),
        };
        if inside_avoided(&real) {
            return Err(ResolveError::Protected(real));
        }
        if !real.starts_with(base) {
            return Err(ResolveError::Outside {
                path: next,
                real,
                base: base.to_path_buf(),
            });
        }
        current = real;
    }
    PinnedDir::open(&current, base, avoid)
}

/// `path` without `.` components or a trailing separator (no disk access).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _root: tempfile::TempDir,
        allowed: PathBuf,
        writable: PathBuf,
        data: PathBuf,
        outside: PathBuf,
        policy: HostPathPolicy,
    }

    fn setup() -> Setup {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        let allowed = base.join("allowed");
        let writable = base.join("writable");
        let data = base.join("writable/node-data");
        let outside = base.join("outside");
        for d in [&allowed, &writable, &data, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        let policy = HostPathPolicy::new(
            &[
                format!("{}", allowed.display()).parse().unwrap(),
                format!("{}:rw", writable.display()).parse().unwrap(),
            ],
            std::slice::from_ref(&data),
        )
        .unwrap();
        Setup {
            _root: root,
            allowed,
            writable,
            data,
            outside,
            policy,
        }
    }

    #[test]
    fn flags_parse_and_refuse_the_root() {
        let a: AllowedHostPath = "/srv/data:rw".parse().unwrap();
        assert_eq!(
            a,
            AllowedHostPath {
                path: "/srv/data".into(),
                writable: true
            }
        );
        let a: AllowedHostPath = "/srv/data".parse().unwrap();
        assert!(!a.writable);
        assert!("/".parse::<AllowedHostPath>().is_err());
        assert!("/:rw".parse::<AllowedHostPath>().is_err());
        assert!("srv".parse::<AllowedHostPath>().is_err());
    }

    #[test]
    fn only_allowed_directories_resolve_and_read_only_unless_rw() {
        let s = setup();
        let sub = s.allowed.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let (dir, read_only) = s.policy.resolve(sub.to_str().unwrap(), false).unwrap();
        assert_eq!((dir.path, read_only), (sub.clone(), true));
        let w = s.writable.join("made");
        let (dir, read_only) = s.policy.resolve(w.to_str().unwrap(), true).unwrap();
        assert_eq!((dir.path, read_only), (w.clone(), false));
        assert!(w.is_dir(), "DirectoryOrCreate created it");
        for refused in ["/", "/etc", s.outside.to_str().unwrap(), "relative"] {
            assert!(s.policy.resolve(refused, false).is_err(), "{refused}");
        }
        let err = s
            .policy
            .resolve(s.data.join("pods").to_str().unwrap(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data directory"), "{err}");
        let err = s
            .policy
            .resolve(s.writable.to_str().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data directory"),
            "a directory holding the data dir: {err}"
        );
        assert!(
            !s.data.join("pods").exists(),
            "nothing created inside the data dir"
        );
    }

    #[test]
    fn symlinks_do_not_escape() {
        let s = setup();
        std::os::unix::fs::symlink(&s.outside, s.allowed.join("link")).unwrap();
        let err = s
            .policy
            .resolve(s.allowed.join("link").to_str().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside"), "{err}");
        std::os::unix::fs::symlink("../outside", s.writable.join("rel")).unwrap();
        assert!(
            s.policy
                .resolve(s.writable.join("rel/x").to_str().unwrap(), true)
                .is_err()
        );
        assert!(!s.outside.join("x").exists(), "nothing created outside");
        // A subPath planted by a pod in its own volume.
        let err = resolve_within(&s.writable, Path::new("rel"), true, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside"), "{err}");
        std::fs::create_dir(s.allowed.join("in")).unwrap();
        std::os::unix::fs::symlink("in", s.allowed.join("inner")).unwrap();
        assert_eq!(
            resolve_within(&s.allowed, Path::new("inner"), false, &[])
                .unwrap()
                .path,
            s.allowed.join("in")
        );
    }

    /// What a pod could do to its own writable volume between the walk and
    /// the open, and after it.
    #[test]
    fn a_directory_swapped_for_a_symlink_is_refused_or_changes_nothing() {
        let s = setup();
        std::fs::create_dir(s.writable.join("a")).unwrap();
        std::fs::create_dir(s.writable.join("a/b")).unwrap();
        std::fs::write(s.writable.join("a/b/mine"), "mine").unwrap();
        std::fs::write(s.outside.join("theirs"), "theirs").unwrap();
        // Swapped before the open: the last component is a symlink now.
        std::os::unix::fs::symlink(&s.outside, s.writable.join("last")).unwrap();
        let err = PinnedDir::open(&s.writable.join("last"), &s.writable, &[]).unwrap_err();
        assert!(matches!(err, ResolveError::Changed(_)), "{err}");
        // An earlier component is: the opened directory is outside.
        std::os::unix::fs::symlink(&s.outside, s.writable.join("mid")).unwrap();
        std::fs::create_dir(s.outside.join("b")).unwrap();
        let err = PinnedDir::open(&s.writable.join("mid/b"), &s.writable, &[]).unwrap_err();
        assert!(matches!(err, ResolveError::Outside { .. }), "{err}");

        // Swapped after: the held directory is still the one resolved.
        let pinned = resolve_within(&s.writable, Path::new("a/b"), false, &[]).unwrap();
        std::fs::rename(s.writable.join("a"), s.writable.join("moved")).unwrap();
        std::os::unix::fs::symlink(&s.outside, s.writable.join("a")).unwrap();
        let reopened = format!("/proc/self/fd/{}", pinned.fd.as_raw_fd());
        assert_eq!(
            std::fs::read_to_string(Path::new(&reopened).join("mine")).unwrap(),
            "mine"
        );
        assert!(!Path::new(&reopened).join("theirs").exists());
    }
}
