//! Node objects and node liveness: a session registers its Node (labels, status
//! with the conditions the control plane owns), and every frame from the node
//! counts as a heartbeat in [`NodeLiveness`], which the node lifecycle controller
//! reads to mark silent nodes `Ready=Unknown`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};
use skiff_api::wire::Hello;

use crate::registry::{Registry, Subresource, WriteOptions};

/// The field manager of what the gateway writes.
pub const FIELD_MANAGER: &str = "skiff-node-gateway";

/// When each node was last heard from, and whether it is connected now.
#[derive(Clone, Default)]
pub struct NodeLiveness {
    inner: Arc<Mutex<HashMap<String, Liveness>>>,
}

/// One node's liveness.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub connected: bool,
    pub last_seen: Instant,
    /// The node lifecycle controller marked the Node `Ready=Unknown` since the
    /// node was last heard from: the next frame must post `Ready` again.
    pub marked_unknown: bool,
}

impl NodeLiveness {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Liveness>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node spoke (or connected). Returns whether its Node was marked
    /// `Ready=Unknown` while it was silent, so that its status must be posted
    /// now rather than at the next interval.
    pub fn seen(&self, node: &str) -> bool {
        let now = Liveness {
            connected: true,
            last_seen: Instant::now(),
            marked_unknown: false,
        };
        let mut map = self.lock();
        match map.get_mut(node) {
            Some(l) => std::mem::replace(l, now).marked_unknown,
            None => {
                map.insert(node.to_string(), now);
                false
            }
        }
    }

    /// The node's (current) session ended.
    pub fn disconnected(&self, node: &str) {
        if let Some(l) = self.lock().get_mut(node) {
            l.connected = false;
            l.last_seen = Instant::now();
        }
    }

    /// The node lifecycle controller marked the node `Ready=Unknown`.
    pub fn marked_unknown(&self, node: &str) {
        if let Some(l) = self.lock().get_mut(node) {
            l.marked_unknown = true;
        }
    }

    /// What is known of `node`.
    pub fn get(&self, node: &str) -> Option<Liveness> {
        self.lock().get(node).copied()
    }
}

fn node_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("v1", "Node").ok_or_else(|| ApiError::internal("no Node kind"))
}

/// The conditions of a node that is posting status.
pub fn ready_conditions(now: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "skiff node is posting ready status"
        ),
    ])
}

/// Creates or updates the Node of a session: labels the node sets are merged over
/// the ones users added, status is the node's own plus fresh conditions (keeping
/// each condition's `lastTransitionTime` when its status did not change).
pub async fn register(registry: &Registry, hello: &Hello) -> Result<(), ApiError> {
    let rt = node_type()?;
    let now = meta::now_timestamp();
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let mut status = hello.status.clone();
    if !status.is_object() {
        status = json!({});
    }
    for attempt in 0..8 {
        let existing = registry.try_get(rt, "", &hello.node_name)?;
        let Some(mut node) = existing else {
            let object = json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": hello.node_name, "labels": hello.labels},
                "spec": {},
            });
            match registry.create(rt, "", object, &opts).await {
                Ok(_) => continue, // Now set its status.
                Err(e) if e.reason == Reason::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        // Labels (main resource) first, when they differ.
        let mut labels: Map<String, Value> = meta::labels(&node).cloned().unwrap_or_default();
        let before = labels.clone();
        for (k, v) in &hello.labels {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
        if labels != before {
            meta::set(&mut node, "labels", Value::Object(labels));
            match registry
                .update(rt, "", &hello.node_name, node, Subresource::Main, &opts)
                .await
            {
                Ok(_) => continue,
                Err(e) if e.reason == Reason::Conflict && attempt < 7 => continue,
                Err(e) => return Err(e),
            }
        }
        let mut new_status = status.clone();
        new_status["conditions"] =
            merge_conditions(node.at("/status/conditions"), ready_conditions(&now));
        node["status"] = new_status;
        match registry
            .update(rt, "", &hello.node_name, node, Subresource::Status, &opts)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.reason == Reason::Conflict && attempt < 7 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::internal(
        "the Node kept changing while registering it",
    ))
}

/// Refreshes the heartbeat time of a connected node's conditions.
pub async fn heartbeat(registry: &Registry, node_name: &str) -> Result<(), ApiError> {
    let now = meta::now_timestamp();
    set_conditions(registry, node_name, |old| {
        merge_conditions(old, ready_conditions(&now))
    })
    .await
}

/// Marks a silent node `Ready=Unknown`, as Kubernetes' node lifecycle controller
/// does ("Kubelet stopped posting node status."). Returns whether it changed.
pub async fn mark_unknown(registry: &Registry, node_name: &str) -> Result<bool, ApiError> {
    let now = meta::now_timestamp();
    let mut changed = false;
    set_conditions(registry, node_name, |old| {
        let mut conditions = old.cloned().unwrap_or_else(|| json!([]));
        if let Some(list) = conditions.as_array_mut() {
            for c in list.iter_mut() {
                if c.get("status").and_then(Value::as_str) == Some("Unknown") {
                    continue;
                }
                changed = true;
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now);
            }
        }
        conditions
    })
    .await?;
    Ok(changed)
}

async fn set_conditions(
    registry: &Registry,
    node_name: &str,
    mut make: impl FnMut(Option<&Value>) -> Value,
) -> Result<(), ApiError> {
    let rt = node_type()?;
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    for attempt in 0..8 {
        let mut node = registry.get(rt, "", node_name)?;
        let conditions = make(node.at("/status/conditions"));
        if node.get("status").is_none_or(|s| !s.is_object()) {
            node["status"] = json!({});
        }
        node["status"]["conditions"] = conditions;
        match registry
            .update(rt, "", node_name, node, Subresource::Status, &opts)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.reason == Reason::Conflict && attempt < 7 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// New conditions, keeping `lastTransitionTime` of those whose status is unchanged.
fn merge_conditions(old: Option<&Value>, mut new: Value) -> Value {
    let old = old.and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(list) = new.as_array_mut() {
        for c in list.iter_mut() {
            let kind = c.get("type").cloned();
            if let Some(prev) = old.iter().find(|o| o.get("type") == kind.as_ref())
                && prev.get("status") == c.get("status")
                && let Some(t) = prev.get("lastTransitionTime")
            {
                c["lastTransitionTime"] = t.clone();
            }
        }
    }
    new
}

/// Whether the Node's `Ready` condition is `True`.
pub fn is_ready(node: &Value) -> bool {
    node.at("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_node_marked_unknown_is_told_once_when_it_speaks_again() {
        let liveness = NodeLiveness::default();
        assert!(!liveness.seen("n1"), "a new node was never marked");
        liveness.marked_unknown("n1");
        assert!(liveness.seen("n1"), "the first frame after the mark");
        assert!(!liveness.seen("n1"), "and only that one");
        // Marking a node never heard from records nothing.
        liveness.marked_unknown("ghost");
        assert!(liveness.get("ghost").is_none());
    }

    #[test]
    fn an_ended_session_leaves_the_node_disconnected_but_recently_seen() {
        let liveness = NodeLiveness::default();
        liveness.seen("n1");
        liveness.disconnected("n1");
        let l = liveness.get("n1").expect("known");
        assert!(!l.connected);
        assert!(l.last_seen.elapsed() < Duration::from_secs(5));
    }
}
