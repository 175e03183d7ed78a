//! `counter`: state that outlives an instance. Every request (except the probe
//! path `/healthz`) reads a count from `$COUNTER_DIR/count` (default `/data`, a
//! volume mount), adds one, writes it back and answers with the new count. HTTP
//! pods get a fresh instance per request, so the count only grows because it
//! lives in the file: a new instance, a restarted pod or another node with the
//! same volume carries on from it.
//!
//! Requests run in concurrent instances and WASI has no file locks, so an
//! increment holds a lock file, `count.lock`, created exclusively (`O_EXCL`)
//! and removed afterwards; a lock older than 5 s is left from an instance that
//! was killed while holding it, and is broken. The new count is written to a
//! temporary file and renamed over the old one, so a reader never sees a torn
//! file.
//!
//! When the directory is not mounted (not preopened) the answer is `500` with
//! the error, not a trap.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use guest_http::{path_of, path_with_query, respond};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

const TEXT: &str = "text/plain; charset=utf-8";

struct Counter;

impl Guest for Counter {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if path_of(&path_with_query(&request)) == "/healthz" {
            return respond(out, 200, TEXT, b"ok\n");
        }
        let dir = std::env::var("COUNTER_DIR").unwrap_or_else(|_| "/data".into());
        match increment(Path::new(&dir)) {
            Ok(count) => respond(out, 200, TEXT, format!("{count}\n").as_bytes()),
            Err(e) => respond(out, 500, TEXT, format!("counter: {e}\n").as_bytes()),
        }
    }
}

wasip2::http::proxy::export!(Counter);

fn increment(dir: &Path) -> Result<u64, String> {
    let _lock = CountLock::acquire(dir)?;
    let file = dir.join("count");
    let previous = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("read {}: {e}", file.display())),
    };
    let count = next_count(&previous).ok_or_else(|| {
        format!(
            "{} holds {:?}, not a count",
            file.display(),
            previous.trim()
        )
    })?;
    let temp = dir.join("count.tmp");
    fs::write(&temp, format!("{count}\n")).map_err(|e| format!("write {}: {e}", temp.display()))?;
    fs::rename(&temp, &file)
        .map_err(|e| format!("rename {} to {}: {e}", temp.display(), file.display()))?;
    Ok(count)
}

/// Held while the count is read and replaced; removes the lock file on drop.
struct CountLock {
    path: PathBuf,
}

impl CountLock {
    /// A lock this old was left by an instance that died holding it.
    const STALE: Duration = Duration::from_secs(5);
    const GIVE_UP: Duration = Duration::from_secs(10);

    fn acquire(dir: &Path) -> Result<Self, String> {
        let path = dir.join("count.lock");
        let started = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(CountLock { path }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if Self::is_stale(&path) {
                        let _ = fs::remove_file(&path);
                    } else if started.elapsed() > Self::GIVE_UP {
                        return Err(format!(
                            "{} held for over {:?}",
                            path.display(),
                            Self::GIVE_UP
                        ));
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                Err(e) => return Err(format!("create {}: {e}", path.display())),
            }
        }
    }

    fn is_stale(path: &Path) -> bool {
        let modified = fs::metadata(path).and_then(|m| m.modified());
        modified
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age > Self::STALE)
    }
}

impl Drop for CountLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The count after `previous`, the file's text (empty for a new volume).
fn next_count(previous: &str) -> Option<u64> {
    let previous = previous.trim();
    if previous.is_empty() {
        return Some(1);
    }
    previous.parse::<u64>().ok()?.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_on_from_the_file() {
        assert_eq!(next_count(""), Some(1));
        assert_eq!(next_count("41\n"), Some(42));
        assert_eq!(next_count("not a number"), None);
        assert_eq!(next_count(&u64::MAX.to_string()), None);
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "skiff-counter-{name}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_file_carries_the_count() {
        let dir = TempDir::new("sequential");
        assert_eq!(increment(&dir.0), Ok(1));
        assert_eq!(increment(&dir.0), Ok(2));
        assert_eq!(fs::read_to_string(dir.0.join("count")).unwrap(), "2\n");
        assert!(!dir.0.join("count.lock").exists());
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let dir = TempDir::new("concurrent");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        increment(&dir.0).expect("increment");
                    }
                });
            }
        });
        assert_eq!(increment(&dir.0), Ok(201));
    }

    #[test]
    fn a_stale_lock_is_broken() {
        let dir = TempDir::new("stale");
        let lock = fs::File::create(dir.0.join("count.lock")).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(60);
        lock.set_modified(long_ago).unwrap();
        assert_eq!(increment(&dir.0), Ok(1));
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = TempDir::new("missing");
        let err = increment(&dir.0.join("absent")).unwrap_err();
        assert!(err.contains("count.lock"), "{err}");
    }
}
