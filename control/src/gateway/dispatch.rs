//! Which pods each node must run: one watch of all pods, fanned out by
//! `spec.nodeName` to the node sessions (a snapshot at subscribe, then changes),
//! so the cost of a pod change does not grow with the number of nodes. With
//! the pods go the ConfigMaps and Secrets they refer to ([`objects`]), each
//! sent before the first pod that needs it and kept current by a watch of its
//! own kind.
//!
//! Each session's queue is bounded ([`SESSION_QUEUE`]): a node that stops
//! reading is unsubscribed when its queue fills, its session closes, and it
//! gets a full snapshot when it reconnects, instead of the control plane
//! buffering for it without end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::json::{Pointer as _, equal_except};
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::ApiError;
use skiff_api::wire::Downstream;
use tokio::sync::mpsc;

use crate::informer::RelistError;

mod objects;
use crate::registry::{Registry, prefix};
use crate::store::{EventType, WatchItem};

/// The node a pod is bound to, if any.
pub fn node_of(pod: &Value) -> Option<&str> {
    pod.at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Messages queued for one node session at most: far more than a burst of
/// pod changes a reading node lets pile up, few enough that a node that stops
/// reading costs a bounded amount of memory.
pub const SESSION_QUEUE: usize = 8192;

#[derive(Default)]
struct State {
    /// node -> pod uid -> pod.
    pods: HashMap<String, HashMap<String, Arc<Value>>>,
    /// The ConfigMaps and Secrets, and which of them each node holds.
    objects: objects::Objects,
    /// node -> its session's channel (one session per node).
    subscribers: HashMap<String, (u64, mpsc::Sender<Downstream>)>,
    next_id: u64,
}

/// Pods by node, kept current by a watch.
#[derive(Clone, Default)]
pub struct PodDispatcher {
    state: Arc<Mutex<State>>,
}

/// A node session's subscription; unsubscribes when dropped. `changes` ends
/// when a newer session replaced this one or this one fell behind.
pub struct Subscription {
    pub changes: mpsc::Receiver<Downstream>,
    node: String,
    id: u64,
    dispatcher: PodDispatcher,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.dispatcher.lock();
        if state.subscribers.get(&self.node).map(|(id, _)| *id) == Some(self.id) {
            state.subscribers.remove(&self.node);
        }
    }
}

impl PodDispatcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes `node`: its first message is a [`Downstream::Snapshot`]. A newer
    /// subscription for the same node replaces an older one.
    pub fn subscribe(&self, node: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.subscribers.insert(node.to_string(), (id, tx));
        send_snapshots(&mut state, node);
        Subscription {
            changes: rx,
            node: node.to_string(),
            id,
            dispatcher: self.clone(),
        }
    }

    /// The pod with `uid`, if it is bound to `node`.
    pub fn pod(&self, node: &str, uid: &str) -> Option<Arc<Value>> {
        self.lock().pods.get(node)?.get(uid).cloned()
    }

    /// The pods bound to `node` now.
    pub fn pods_of(&self, node: &str) -> Vec<Value> {
        snapshot(&self.lock(), node)
    }

    /// Runs the watches until the store closes, re-listing when one falls
    /// behind. The objects are listed before the pods, so that a pod's first
    /// dispatch carries what it refers to.
    pub async fn run(self, registry: Registry) {
        let mut watches = Vec::new();
        for (kind, _) in objects::KINDS {
            let listed = loop {
                match self.list_objects(&registry, kind) {
                    Ok(revision) => break revision,
                    Err(e) => {
                        tracing::debug!(kind, error = %e, "listing objects for nodes");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            watches.push(self.clone().run_objects(registry.clone(), kind, listed));
        }
        let pods = async {
            loop {
                if let Err(e) = self.run_once(&registry).await {
                    tracing::debug!(error = %e, "pod dispatcher re-listing");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        tokio::join!(pods, futures::future::join_all(watches));
    }

    async fn run_once(&self, registry: &Registry) -> Result<(), RelistError> {
        let pod_type = by_kind("v1", "Pod").ok_or_else(|| ApiError::internal("no Pod kind"))?;
        let page = registry.list(pod_type, None, None, None, &|p| node_of(p).is_some())?;
        {
            let mut state = self.lock();
            state.pods.clear();
            state.objects.clear_held();
            for pod in page.items {
                insert(&mut state, Arc::new(pod));
            }
            // Every session learns the fresh truth.
            let nodes: Vec<String> = state.subscribers.keys().cloned().collect();
            for node in nodes {
                send_snapshots(&mut state, &node);
            }
        }
        let mut watch = registry
            .store()
            .watch(prefix(pod_type, None), page.revision, None)?;
        while let Some(item) = watch.next().await {
            let event = match item? {
                WatchItem::Event(event) => event,
                WatchItem::Progress(_) => continue,
            };
            let mut state = self.lock();
            let uid = meta::uid(&event.object).unwrap_or_default().to_string();
            // A pod is only ever bound once, so the old node is the new node (or none).
            let old_node = event.prev.as_deref().and_then(node_of).map(str::to_string);
            let new_node = node_of(&event.object).map(str::to_string);
            match event.event_type {
                EventType::Deleted => {
                    if let Some(node) = new_node.or(old_node) {
                        let forget = remove(&mut state, &node, &uid);
                        send(&mut state, &node, Downstream::Remove { uid });
                        for message in forget {
                            send(&mut state, &node, message);
                        }
                    }
                }
                EventType::Added | EventType::Modified => {
                    let Some(node) = new_node else { continue };
                    let reported_only = old_node.as_deref() == Some(node.as_str())
                        && event
                            .prev
                            .as_deref()
                            .is_some_and(|prev| only_status_changed(prev, &event.object));
                    let needed = insert(&mut state, event.object.clone());
                    for message in needed {
                        send(&mut state, &node, message);
                    }
                    if reported_only {
                        // A node acts on spec and metadata; status is its own
                        // report (or the control plane's note on it).
                        continue;
                    }
                    let pod = (*event.object).clone();
                    send(&mut state, &node, Downstream::Upsert { pod });
                }
            }
        }
        Err(RelistError::Ended("pod watch"))
    }

    /// Lists every object of `kind` (`ConfigMap` or `Secret`) into the
    /// cache; returns the revision listed at. Nodes learn of a change from
    /// the list when their session is next snapshotted (a re-list of pods),
    /// and of later changes from the watch.
    fn list_objects(&self, registry: &Registry, kind: &str) -> Result<u64, RelistError> {
        let rt = by_kind("v1", kind).ok_or_else(|| ApiError::internal("no such kind"))?;
        let page = registry.list(rt, None, None, None, &|_| true)?;
        let mut state = self.lock();
        state.objects.replace_kind(kind, page.items);
        let nodes: Vec<String> = state.subscribers.keys().cloned().collect();
        for node in nodes {
            for message in state.objects.snapshot(&node) {
                send(&mut state, &node, message);
            }
        }
        Ok(page.revision)
    }

    /// Watches `kind` from `revision`, re-listing when the watch falls behind.
    async fn run_objects(self, registry: Registry, kind: &'static str, mut revision: u64) {
        loop {
            if let Err(e) = self.watch_objects(&registry, kind, revision).await {
                tracing::debug!(kind, error = %e, "object dispatcher re-listing");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match self.list_objects(&registry, kind) {
                Ok(listed) => revision = listed,
                Err(e) => tracing::debug!(kind, error = %e, "listing objects for nodes"),
            }
        }
    }

    async fn watch_objects(
        &self,
        registry: &Registry,
        kind: &str,
        revision: u64,
    ) -> Result<(), RelistError> {
        let rt = by_kind("v1", kind).ok_or_else(|| ApiError::internal("no such kind"))?;
        let mut watch = registry.store().watch(prefix(rt, None), revision, None)?;
        while let Some(item) = watch.next().await {
            let event = match item? {
                WatchItem::Event(event) => event,
                WatchItem::Progress(_) => continue,
            };
            let mut state = self.lock();
            let sends = match event.event_type {
                EventType::Deleted => state.objects.delete(&event.object),
                EventType::Added | EventType::Modified => state.objects.put(event.object.clone()),
            };
            for (node, message) in sends {
                send(&mut state, &node, message);
            }
        }
        Err(RelistError::Ended("object watch"))
    }
}

/// Queues for `node` everything it must hold and run, from nothing: the
/// objects its pods refer to, then its pods.
fn send_snapshots(state: &mut State, node: &str) {
    for message in state.objects.snapshot(node) {
        send(state, node, message);
    }
    let pods = snapshot(state, node);
    send(state, node, Downstream::Snapshot { pods });
}

/// Whether `new` differs from `old` only in `status` and in what every write
/// changes (`resourceVersion`, `managedFields`). A node acts on a pod's spec and
/// metadata; its status is what the node itself reports.
fn only_status_changed(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    if !equal_except(old, new, &["status", "metadata"]) {
        return false;
    }
    match (old.get("metadata"), new.get("metadata")) {
        (Some(Value::Object(old)), Some(Value::Object(new))) => {
            equal_except(old, new, &["resourceVersion", "managedFields"])
        }
        (old, new) => old == new,
    }
}

fn snapshot(state: &State, node: &str) -> Vec<Value> {
    state
        .pods
        .get(node)
        .map(|m| m.values().map(|p| (**p).clone()).collect())
        .unwrap_or_default()
}

/// Keeps `pod` under its node; returns the objects the node must be sent
/// first, when the pod is new there. (What a pod refers to is in its spec,
/// which does not change in ways that matter here.)
fn insert(state: &mut State, pod: Arc<Value>) -> Vec<Downstream> {
    let Some(node) = node_of(&pod).map(str::to_string) else {
        return Vec::new();
    };
    let uid = meta::uid(&pod).unwrap_or_default().to_string();
    // Read only for a pod new here: status reports re-insert pods all the time.
    let refs = (!state.pods.get(&node).is_some_and(|p| p.contains_key(&uid)))
        .then(|| objects::referenced(&pod));
    state.pods.entry(node.clone()).or_default().insert(uid, pod);
    match refs {
        Some(refs) => state.objects.refer(&node, refs),
        None => Vec::new(),
    }
}

/// Forgets the pod; returns the objects its node must now forget.
fn remove(state: &mut State, node: &str, uid: &str) -> Vec<Downstream> {
    let Some(pods) = state.pods.get_mut(node) else {
        return Vec::new();
    };
    let removed = pods.remove(uid);
    if pods.is_empty() {
        state.pods.remove(node);
    }
    match removed {
        Some(pod) => state.objects.release(node, objects::referenced(&pod)),
        None => Vec::new(),
    }
}

/// Queues `message` for `node`'s session; a session whose queue is full is
/// unsubscribed (it resyncs from a snapshot when its node reconnects).
fn send(state: &mut State, node: &str, message: Downstream) {
    let Some((_, tx)) = state.subscribers.get(node) else {
        return;
    };
    match tx.try_send(message) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                node,
                queued = SESSION_QUEUE,
                "node is not reading its pods; closing its session for a resync"
            );
            state.subscribers.remove(node);
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            state.subscribers.remove(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(rv: &str, phase: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "uid": "u1", "resourceVersion": rv,
                         "managedFields": [{"manager": rv}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "hello"}]},
            "status": {"phase": phase},
        })
    }

    /// A node that stops reading is unsubscribed once its queue is full: what
    /// was queued drains, then its changes end, which closes its session.
    #[tokio::test]
    async fn a_node_that_stops_reading_is_unsubscribed_not_buffered() {
        let dispatcher = PodDispatcher::default();
        let mut sub = dispatcher.subscribe("n1");
        for i in 0..SESSION_QUEUE + 10 {
            let mut state = dispatcher.lock();
            send(&mut state, "n1", Downstream::Remove { uid: i.to_string() });
        }
        assert!(!dispatcher.lock().subscribers.contains_key("n1"));
        let mut received = 0;
        while sub.changes.recv().await.is_some() {
            received += 1;
        }
        assert_eq!(received, SESSION_QUEUE, "the snapshot and what fitted");
        // Its node reconnects and starts again from a snapshot: the objects
        // it holds (none), then its pods.
        let mut again = dispatcher.subscribe("n1");
        assert!(matches!(
            again.changes.recv().await,
            Some(Downstream::ObjectsHeld { objects }) if objects.is_empty()
        ));
        assert!(matches!(
            again.changes.recv().await,
            Some(Downstream::Snapshot { .. })
        ));
    }

    #[test]
    fn a_status_report_is_not_sent_back_to_its_node() {
        assert!(only_status_changed(
            &pod("1", "Pending"),
            &pod("2", "Running")
        ));
    }

    #[test]
    fn spec_and_metadata_changes_are_sent() {
        let old = pod("1", "Running");
        let mut deleting = pod("2", "Running");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-04T00:00:00Z");
        assert!(!only_status_changed(&old, &deleting));
        let mut labelled = pod("2", "Running");
        labelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(!only_status_changed(&old, &labelled));
        let mut respecced = pod("2", "Running");
        respecced["spec"]["activeDeadlineSeconds"] = json!(5);
        assert!(!only_status_changed(&old, &respecced));
        let mut unlabelled = labelled.clone();
        unlabelled["metadata"]
            .as_object_mut()
            .map(|m| m.remove("labels"));
        assert!(!only_status_changed(&labelled, &unlabelled));
    }
}
