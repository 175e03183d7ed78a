//! Writes a volume's files so that a reader sees all of the old set or all
//! of the new one, as the kubelet's `AtomicWriter`
//! (`pkg/volume/util/atomic_writer.go`) does:
//!
//! ```text
//! <dir>/..2026_12_07_22_51_26.123456789/   the files, written in full first
//! <dir>/..data -> ..2026_12_07_22_51_26.123456789   swapped by one rename
//! <dir>/app.conf -> ..data/app.conf         one link per top-level entry
//! ```
//!
//! The links are relative and stay inside the directory, so the sandbox
//! (which preopens `<dir>`) follows them.

use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

use super::Files;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Why a volume could not be written.
#[derive(Debug, thiserror::Error)]
pub(in crate::supervisor) enum WriteError {
    #[error("invalid file path {0:?}: must be relative, without '..'")]
    Path(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Makes `dir` hold exactly `files` (creating `dir` if needed).
pub(in crate::supervisor) fn write(dir: &Path, files: &Files) -> Result<(), WriteError> {
    for path in files.keys() {
        if !is_relative_inside(path) {
            return Err(WriteError::Path(path.clone()));
        }
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let old = std::fs::read_link(dir.join(DATA)).ok();

    // 1. The new set, complete, in a directory of its own.
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let mut name = stamp.clone();
    let mut n = 0u32;
    while dir.join(&name).exists() {
        n = n.saturating_add(1);
        name = format!("{stamp}_{n}");
    }
    let new = dir.join(&name);
    std::fs::create_dir(&new).map_err(io("create", &new))?;
    for (path, file) in files {
        let target = new.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&target, &file.data).map_err(io("write", &target))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))
            .map_err(io("chmod", &target))?;
    }

    // 2. One rename swaps the whole set.
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp).map_err(io("link", &tmp))?;
    std::fs::rename(&tmp, dir.join(DATA)).map_err(io("rename", &tmp))?;

    // 3. A link per top-level entry, and none for what is gone.
    let top: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|p| p.split('/').next()).collect();
    for entry in &top {
        let link = dir.join(entry);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(entry), &link).map_err(io("link", &link))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))?.flatten() {
        let file_name = entry.file_name();
        let Some(entry_name) = file_name.to_str() else {
            continue;
        };
        if entry_name.starts_with("..") || top.contains(entry_name) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }

    // 4. The old set goes.
    if let Some(old) = old.filter(|o| o.as_os_str() != name.as_str()) {
        let old = dir.join(old);
        if old.parent() == Some(dir) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(())
}

fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::super::FileContent;
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, t)| {
                (
                    p.to_string(),
                    FileContent {
                        data: t.as_bytes().to_vec(),
                        mode: 0o644,
                    },
                )
            })
            .collect()
    }

    fn read(dir: &Path, path: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(path)).ok()
    }

    #[test]
    fn a_new_set_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = dir.path().join("vol");
        write(&v, &files(&[("a", "1"), ("conf/b", "2")])).expect("write");
        assert_eq!(read(&v, "a").as_deref(), Some("1"));
        assert_eq!(read(&v, "conf/b").as_deref(), Some("2"));
        let first = std::fs::read_link(v.join(DATA)).expect("..data");

        write(&v, &files(&[("a", "one"), ("c", "3")])).expect("write");
        assert_eq!(read(&v, "a").as_deref(), Some("one"));
        assert_eq!(read(&v, "c").as_deref(), Some("3"));
        assert_eq!(read(&v, "conf/b"), None, "gone with the old set");
        assert!(!v.join(&first).exists(), "the old set was removed");
        let entries: Vec<String> = std::fs::read_dir(&v)
            .expect("read")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with(".."))
            .collect();
        let mut entries = entries;
        entries.sort();
        assert_eq!(entries, ["a", "c"]);
    }

    #[test]
    fn paths_that_leave_the_volume_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", ""] {
            assert!(
                matches!(
                    write(dir.path(), &files(&[(bad, "x")])),
                    Err(WriteError::Path(_))
                ),
                "{bad}"
            );
        }
    }
}
