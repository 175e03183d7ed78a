//! The redb store against a reference model (a `BTreeMap`) under random
//! operations: every commit's outcome, every read, every list page and the watch
//! history must agree with the model, also across a reopen of the file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use skiff_control::store::redb::{RedbStore, StoreConfig};
use skiff_control::store::{
    Action, EventType, KeyPrefix, ListRequest, ObjectKey, Op, Precondition, Store, StoreError,
    WatchItem, object_revision,
};

/// The model: key -> (object without resourceVersion, revision), plus history.
#[derive(Default)]
struct Model {
    objects: BTreeMap<ObjectKey, (Value, u64)>,
    revision: u64,
    history: Vec<(u64, EventType, ObjectKey)>,
}

fn key(rng: &mut StdRng) -> ObjectKey {
    let resource = ["pods", "deployments.apps"][rng.random_range(0..2)];
    let ns = ["default", "dev"][rng.random_range(0..2)];
    ObjectKey::new(resource, ns, format!("o{}", rng.random_range(0..12)))
}

fn object(key: &ObjectKey, n: u64) -> Value {
    json!({"metadata": {"name": key.name, "namespace": key.namespace}, "data": {"n": n}})
}

fn with_rv(v: &Value, revision: u64) -> Value {
    let mut v = v.clone();
    v["metadata"]["resourceVersion"] = json!(revision.to_string());
    v
}

fn strip_rv(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

/// Applies ops to the model with the store's all-or-nothing rule.
fn model_apply(model: &mut Model, ops: &[Op]) -> Result<Vec<u64>, &'static str> {
    for op in ops {
        let cur = model.objects.get(&op.key);
        match (op.precondition, cur) {
            (Precondition::Absent, Some(_)) => return Err("exists"),
            (Precondition::Exists | Precondition::Revision(_), None) => return Err("missing"),
            (Precondition::Revision(r), Some((_, rev))) if r != *rev => return Err("conflict"),
            _ => {}
        }
        if op.action == Action::Delete && cur.is_none() {
            return Err("missing");
        }
    }
    let mut revisions = Vec::new();
    for op in ops {
        model.revision += 1;
        let r = model.revision;
        match &op.action {
            Action::Put(v) => {
                let kind = if model.objects.contains_key(&op.key) {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                model.objects.insert(op.key.clone(), (v.clone(), r));
                model.history.push((r, kind, op.key.clone()));
            }
            Action::Delete => {
                model.objects.remove(&op.key);
                model.history.push((r, EventType::Deleted, op.key.clone()));
            }
        }
        revisions.push(r);
    }
    Ok(revisions)
}

fn check_matches(store: &RedbStore, model: &Model) {
    assert_eq!(store.revision(), model.revision, "store revision");
    for (k, (v, rev)) in &model.objects {
        let got = store.get(k).unwrap().expect("object the model has");
        assert_eq!(object_revision(&got), Some(*rev), "{k}");
        assert_eq!(strip_rv(got), *v, "{k}");
    }
    // Full list, and a paged list, per prefix.
    for resource in ["pods", "deployments.apps"] {
        for ns in [None, Some("default".to_string()), Some("dev".to_string())] {
            let prefix = KeyPrefix::new(resource, ns.clone());
            let expected: Vec<Value> = model
                .objects
                .iter()
                .filter(|(k, _)| prefix.contains(k))
                .map(|(_, (v, _))| v.clone())
                .collect();
            let all = store
                .list(&ListRequest {
                    prefix: prefix.clone(),
                    after: None,
                    limit: None,
                    filter: &|_| true,
                })
                .unwrap();
            assert_eq!(
                all.items.into_iter().map(strip_rv).collect::<Vec<_>>(),
                expected
            );
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list(&ListRequest {
                        prefix: prefix.clone(),
                        after: after.clone(),
                        limit: Some(3),
                        filter: &|_| true,
                    })
                    .unwrap();
                paged.extend(page.items.into_iter().map(strip_rv));
                match page.continue_after {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
            assert_eq!(paged, expected, "paged list of {prefix:?}");
        }
    }
}

async fn replay_matches(store: &RedbStore, model: &Model) {
    // A watch from revision 0 replays the whole history, in order.
    let mut watch = store.watch(KeyPrefix::everything(), 0, None).unwrap();
    for (rev, kind, key) in &model.history {
        let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let WatchItem::Event(e) = item else {
            panic!("expected an event")
        };
        assert_eq!((e.revision, e.event_type, &e.key), (*rev, *kind, key));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_agrees_with_model() {
    for seed in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model = Model::default();
        let store = Arc::new(RedbStore::open(&path, StoreConfig::default()).unwrap());
        for step in 0..300u64 {
            // Several requests at once, so some share a commit.
            let batch: Vec<Vec<Op>> = (0..rng.random_range(1..5))
                .map(|_| {
                    (0..rng.random_range(1..3))
                        .map(|_| {
                            let k = key(&mut rng);
                            let current = model.objects.get(&k).map(|(_, r)| *r);
                            let precondition = match rng.random_range(0..5) {
                                0 => Precondition::None,
                                1 => Precondition::Absent,
                                2 => Precondition::Exists,
                                3 => Precondition::Revision(current.unwrap_or(1)),
                                _ => Precondition::Revision(current.map(|r| r + 1).unwrap_or(7)),
                            };
                            let action = if rng.random_bool(0.25) {
                                Action::Delete
                            } else {
                                Action::Put(object(&k, step))
                            };
                            // A caller that read the object hands over its copy.
                            let prev = match precondition {
                                Precondition::Revision(r) => model
                                    .objects
                                    .get(&k)
                                    .filter(|(_, rev)| *rev == r)
                                    .map(|(o, rev)| Arc::new(with_rv(o, *rev))),
                                _ => None,
                            };
                            Op {
                                key: k,
                                precondition,
                                action,
                                prev,
                            }
                        })
                        .collect()
                })
                .collect();
            // The writer applies concurrently submitted requests in submission order.
            let futures: Vec<_> = batch.iter().map(|ops| store.commit(ops.clone())).collect();
            let results = futures::future::join_all(futures).await;
            for (ops, result) in batch.iter().zip(results) {
                let before = model.objects.clone();
                let expected = model_apply(&mut model, ops);
                match (result, expected) {
                    (Ok(committed), Ok(revisions)) => {
                        assert_eq!(
                            committed.iter().map(|c| c.revision).collect::<Vec<_>>(),
                            revisions
                        );
                        // Each op's previous object, where no earlier op of the
                        // request touched its key.
                        for (i, (op, c)) in ops.iter().zip(&committed).enumerate() {
                            if ops[..i].iter().any(|o| o.key == op.key) {
                                continue;
                            }
                            let want = before.get(&op.key).map(|(o, rev)| with_rv(o, *rev));
                            assert_eq!(
                                c.prev.as_deref(),
                                want.as_ref(),
                                "seed {seed} step {step}: prev of {:?}",
                                op.key
                            );
                        }
                    }
                    (Err(StoreError::AlreadyExists(_)), Err("exists")) => {}
                    (Err(StoreError::NotFound(_)), Err("missing")) => {}
                    (Err(StoreError::Conflict { .. }), Err("conflict")) => {}
                    (got, want) => panic!("seed {seed} step {step}: store {got:?}, model {want:?}"),
                }
            }
            if step % 50 == 0 {
                check_matches(&store, &model);
            }
        }
        check_matches(&store, &model);
        replay_matches(&store, &model).await;
        drop(store);
        // Reopen: the same state and history.
        let store = RedbStore::open(&path, StoreConfig::default()).unwrap();
        check_matches(&store, &model);
        replay_matches(&store, &model).await;
    }
}

/// A backlog of old events is compacted a step (512 events) per commit, not
/// in one long commit, and compaction goes on at each commit until it has
/// caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_backlog_is_spread_over_commits() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        max_history_events: 10,
        compaction_interval: Duration::ZERO,
        ..Default::default()
    };
    let store = RedbStore::open(&dir.path().join("s.redb"), config).unwrap();
    let put = |name: String| {
        let k = ObjectKey::new("pods", "default", name);
        Op {
            action: Action::Put(object(&k, 1)),
            key: k,
            precondition: Precondition::Absent,
            prev: None,
        }
    };
    // Revisions 1..=1500 in one commit, which then compacts its first step.
    store
        .commit((0..1500).map(|i| put(format!("p{i}"))).collect())
        .await
        .unwrap();
    let mut oldest = vec![store.oldest_watchable()];
    for i in 0..3 {
        store.commit(vec![put(format!("q{i}"))]).await.unwrap();
        oldest.push(store.oldest_watchable());
    }
    // 512, 1024, then the cap: 10 events behind the head (1502, 1503).
    assert_eq!(oldest, vec![512, 1024, 1492, 1493]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        max_history_events: 5,
        compaction_interval: Duration::ZERO,
        ..Default::default()
    };
    let store = RedbStore::open(&dir.path().join("s.redb"), config).unwrap();
    for i in 0..20 {
        let k = ObjectKey::new("pods", "default", format!("p{i}"));
        store
            .commit(vec![Op {
                key: k.clone(),
                precondition: Precondition::Absent,
                action: Action::Put(object(&k, i)),
                prev: None,
            }])
            .await
            .unwrap();
    }
    assert!(
        store.oldest_watchable() >= 10,
        "compacted to {}",
        store.oldest_watchable()
    );
    match store.watch(KeyPrefix::everything(), 2, None) {
        Err(StoreError::Compacted { requested: 2, .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a watch from a compacted revision must fail"),
    }
    // From a recent revision it works and then sees live changes.
    let mut watch = store
        .watch(KeyPrefix::everything(), store.revision(), None)
        .unwrap();
    let k = ObjectKey::new("pods", "default", "late");
    store
        .commit(vec![Op {
            key: k.clone(),
            precondition: Precondition::Absent,
            action: Action::Put(object(&k, 99)),
            prev: None,
        }])
        .await
        .unwrap();
    let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchItem::Event(e) = item else {
        panic!("expected an event")
    };
    assert_eq!(e.key, k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watch_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("s.redb"), StoreConfig::default()).unwrap();
    let k = ObjectKey::new("pods", "default", "a");
    store
        .commit(vec![Op {
            key: k.clone(),
            precondition: Precondition::Absent,
            action: Action::Put(object(&k, 1)),
            prev: None,
        }])
        .await
        .unwrap();
    // A watch on another resource sees no events, but progress up to the head.
    let mut watch = store
        .watch(
            KeyPrefix::new("services", None),
            0,
            Some(Duration::from_millis(50)),
        )
        .unwrap();
    let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match item {
        WatchItem::Progress(rev) => assert_eq!(rev, 1),
        WatchItem::Event(e) => panic!("unexpected event {e:?}"),
    }
}

#[test]
fn second_open_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let _first = RedbStore::open(&path, StoreConfig::default()).unwrap();
    match RedbStore::open(&path, StoreConfig::default()) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("in use"), "{msg}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a second open of the same file must fail"),
    }
}
