//! Which pods each node must run: one watch of all pods, fanned out by
//! `spec.nodeName` to the node sessions (a snapshot at subscribe, then changes),
//! so the cost of a pod change does not grow with the number of nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::json::{Pointer as _, equal_except};
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::wire::Downstream;
use tokio::sync::mpsc;

use crate::registry::{Registry, prefix};
use crate::store::{EventType, WatchItem};

/// The node a pod is bound to, if any.
pub fn node_of(pod: &Value) -> Option<&str> {
    pod.at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

#[derive(Default)]
struct State {
    /// node -> pod uid -> pod.
    pods: HashMap<String, HashMap<String, Arc<Value>>>,
    /// node -> its session's channel (one session per node).
    subscribers: HashMap<String, (u64, mpsc::UnboundedSender<Downstream>)>,
    next_id: u64,
}

/// Pods by node, kept current by a watch.
#[derive(Clone, Default)]
pub struct PodDispatcher {
    state: Arc<Mutex<State>>,
}

/// A node session's subscription; unsubscribes when dropped.
pub struct Subscription {
    pub changes: mpsc::UnboundedReceiver<Downstream>,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.lock();
        let pods = snapshot(&state, node);
        let _ = tx.send(Downstream::Snapshot { pods });
        state.next_id += 1;
        let id = state.next_id;
        state.subscribers.insert(node.to_string(), (id, tx));
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

    /// Runs the watch until the store closes, re-listing when it falls behind.
    pub async fn run(self, registry: Registry) {
        loop {
            if let Err(e) = self.run_once(&registry).await {
                tracing::debug!(error = %e, "pod dispatcher re-listing");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    async fn run_once(&self, registry: &Registry) -> Result<(), String> {
        let pod_type = by_kind("v1", "Pod").ok_or("no Pod kind")?;
        let page = registry
            .list(pod_type, None, None, None, &|p| node_of(p).is_some())
            .map_err(|e| e.to_string())?;
        {
            let mut state = self.lock();
            state.pods.clear();
            for pod in page.items {
                insert(&mut state, Arc::new(pod));
            }
            // Every session learns the fresh truth.
            let State {
                pods, subscribers, ..
            } = &*state;
            for (node, (_, tx)) in subscribers {
                let list = pods
                    .get(node)
                    .map(|m| m.values().map(|p| (**p).clone()).collect())
                    .unwrap_or_default();
                let _ = tx.send(Downstream::Snapshot { pods: list });
            }
        }
        let mut watch = registry
            .store()
            .watch(prefix(pod_type, None), page.revision, None)
            .map_err(|e| e.to_string())?;
        while let Some(item) = watch.next().await {
            let event = match item.map_err(|e| e.to_string())? {
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
                        remove(&mut state, &node, &uid);
                        send(&state, &node, Downstream::Remove { uid });
                    }
                }
                EventType::Added | EventType::Modified => {
                    let Some(node) = new_node else { continue };
                    let reported_only = old_node.as_deref() == Some(node.as_str())
                        && event
                            .prev
                            .as_deref()
                            .is_some_and(|prev| only_status_changed(prev, &event.object));
                    insert(&mut state, event.object.clone());
                    if reported_only {
                        // A node acts on spec and metadata; status is its own
                        // report (or the control plane's note on it).
                        continue;
                    }
                    let pod = (*event.object).clone();
                    send(&state, &node, Downstream::Upsert { pod });
                }
            }
        }
        Err("pod watch ended".into())
    }
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

fn insert(state: &mut State, pod: Arc<Value>) {
    let Some(node) = node_of(&pod).map(str::to_string) else {
        return;
    };
    let uid = meta::uid(&pod).unwrap_or_default().to_string();
    state.pods.entry(node).or_default().insert(uid, pod);
}

fn remove(state: &mut State, node: &str, uid: &str) {
    if let Some(pods) = state.pods.get_mut(node) {
        pods.remove(uid);
        if pods.is_empty() {
            state.pods.remove(node);
        }
    }
}

fn send(state: &State, node: &str, message: Downstream) {
    if let Some((_, tx)) = state.subscribers.get(node) {
        let _ = tx.send(message);
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
