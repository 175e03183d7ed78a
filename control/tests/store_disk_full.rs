//! The store on a disk that fills up: writes fail with `Unavailable` and the
//! store says it cannot write (what `/readyz` reports); once space is freed,
//! writes resume by themselves, without reopening the store by hand, and
//! nothing acknowledged before is lost.
//!
//! The disk is an 8 MiB tmpfs, which needs root (`mount`); where mounting is
//! not permitted the test says so and checks nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use skiff_control::store::redb::{RedbStore, StoreConfig};
use skiff_control::store::{Action, ObjectKey, Op, Precondition, Store, StoreError};

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { path, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn put(name: &str, filler: &str) -> Op {
    Op {
        key: ObjectKey::new("configmaps", "default", name),
        precondition: Precondition::None,
        action: Action::Put(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"filler": filler},
        })),
        prev: None,
    }
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ballast(disk: &Path, bytes: usize) -> PathBuf {
    let path = disk.join("ballast");
    std::fs::write(&path, vec![1u8; bytes]).expect("write ballast");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_the_disk_had_filled() {
    let Some(disk) = Tmpfs::mount("8m") else {
        eprintln!("cannot mount a tmpfs here (not root?): nothing to check");
        return;
    };
    // Most of the disk goes to a file the test frees later.
    let ballast = ballast(&disk.path, 4 * 1024 * 1024);
    let store =
        RedbStore::open(&disk.path.join("store.redb"), StoreConfig::default()).expect("open store");
    assert!(store.writable());
    let filler = "f".repeat(64 * 1024);
    let mut acknowledged = Vec::new();
    let mut failure = None;
    for i in 0..200 {
        let name = format!("cm{i}");
        match store.commit(vec![put(&name, &filler)]).await {
            Ok(_) => acknowledged.push(name),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("the disk never filled");
    assert!(
        matches!(failure, StoreError::Unavailable(_)),
        "a full disk is reported as Unavailable, not {failure:?}"
    );
    assert!(
        !acknowledged.is_empty(),
        "nothing fitted before the disk filled"
    );
    assert!(
        !store.writable(),
        "the store says it can write on a full disk"
    );
    let refused = store.commit(vec![put("while-full", "x")]).await;
    assert!(refused.is_err(), "a write went through on a full disk");
    assert!(!store.writable());

    std::fs::remove_file(&ballast).expect("free the ballast");
    wait_until("the store can write again", || store.writable());
    store
        .commit(vec![put("after", "x")])
        .await
        .expect("a write after space was freed");
    for name in &acknowledged {
        let key = ObjectKey::new("configmaps", "default", name.as_str());
        assert!(
            store.get(&key).expect("read").is_some(),
            "acknowledged {name} was lost"
        );
    }
    drop(store);
}
