//! What nodes report, written to the store: pod status (coalesced per pod, many
//! pods in parallel so their commits share disk syncs), Events (aggregated by
//! reason and message, as Kubernetes counts repeats), and the final removal of a
//! pod whose node has stopped it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::Reason;
use skiff_api::wire::EventReport;

use super::nodes::FIELD_MANAGER;
use crate::registry::{DeleteOptions, Registry, Subresource, WriteOptions};

/// A status waiting to be written.
struct Pending {
    namespace: String,
    name: String,
    status: Value,
}

#[derive(Default)]
struct WriterState {
    /// uid -> newest status not yet written, for pods with a write in flight.
    queued: HashMap<String, Pending>,
    /// uids with a write in flight.
    writing: std::collections::HashSet<String>,
}

/// Writes pod statuses: per pod in order, the newest winning; across pods in parallel.
#[derive(Clone)]
pub struct StatusWriter {
    registry: Registry,
    state: Arc<Mutex<WriterState>>,
}

impl StatusWriter {
    pub fn new(registry: Registry) -> Self {
        StatusWriter {
            registry,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `status` for the pod; returns at once.
    pub fn report(&self, namespace: String, name: String, uid: String, status: Value) {
        let pending = Pending {
            namespace,
            name,
            status,
        };
        {
            let mut state = self.lock();
            if state.writing.contains(&uid) {
                state.queued.insert(uid, pending);
                return;
            }
            state.writing.insert(uid.clone());
        }
        let writer = self.clone();
        tokio::spawn(async move {
            let mut next = Some(pending);
            while let Some(p) = next {
                if let Err(e) = write_status(&writer.registry, &p, &uid).await {
                    tracing::debug!(pod = %p.name, error = %e, "pod status not written");
                }
                let mut state = writer.lock();
                next = state.queued.remove(&uid);
                if next.is_none() {
                    state.writing.remove(&uid);
                }
            }
        });
    }
}

async fn write_status(registry: &Registry, p: &Pending, uid: &str) -> Result<(), String> {
    let rt = by_kind("v1", "Pod").ok_or("no Pod kind")?;
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    for _ in 0..8 {
        let Some(mut pod) = registry
            .try_get(rt, &p.namespace, &p.name)
            .map_err(|e| e.to_string())?
        else {
            return Ok(()); // Gone: nothing to report on.
        };
        if meta::uid(&pod) != Some(uid) {
            return Ok(()); // A new pod of the same name.
        }
        if pod.get("status") == Some(&p.status) {
            return Ok(());
        }
        pod["status"] = p.status.clone();
        match registry
            .update(rt, &p.namespace, &p.name, pod, Subresource::Status, &opts)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.reason == Reason::Conflict => continue,
            Err(e) if e.reason == Reason::NotFound => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the pod kept changing".into())
}

/// Deletes a pod its node has stopped (grace period 0, only that pod by uid).
pub async fn pod_terminated(registry: &Registry, namespace: &str, name: &str, uid: &str) {
    let Some(rt) = by_kind("v1", "Pod") else {
        return;
    };
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        precondition_uid: Some(uid.to_string()),
        ..Default::default()
    };
    match registry.delete(rt, namespace, name, &opts).await {
        Ok(_) => {}
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "could not remove a stopped pod"),
    }
}

/// How many distinct Events are remembered for folding repeats.
const MAX_REMEMBERED_EVENTS: usize = 10_000;

/// (pod uid, reason, message): what makes two Events the same.
type EventKey = (String, String, String);

/// Writes Events, folding repeats of the same (pod, reason, message) into one
/// Event with a growing `count`, as Kubernetes' event recorder does.
#[derive(Clone)]
pub struct EventWriter {
    registry: Registry,
    seen: Arc<Mutex<HashMap<EventKey, String>>>,
}

impl EventWriter {
    pub fn new(registry: Registry) -> Self {
        EventWriter {
            registry,
            seen: Arc::default(),
        }
    }

    /// Records `event` from `node`; returns at once.
    pub fn report(&self, node: &str, event: EventReport) {
        let writer = self.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            if let Err(e) = writer.write(&node, &event).await {
                tracing::debug!(reason = %event.reason, error = %e, "event not written");
            }
        });
    }

    async fn write(&self, node: &str, e: &EventReport) -> Result<(), String> {
        let rt = by_kind("v1", "Event").ok_or("no Event kind")?;
        let opts = WriteOptions {
            field_manager: FIELD_MANAGER.into(),
            ..Default::default()
        };
        let now = meta::now_timestamp();
        let key = (e.pod_uid.clone(), e.reason.clone(), e.message.clone());
        let existing = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(name) = existing {
            for _ in 0..4 {
                let Some(mut event) = self
                    .registry
                    .try_get(rt, &e.namespace, &name)
                    .map_err(|e| e.to_string())?
                else {
                    break;
                };
                let count = event.get("count").and_then(Value::as_i64).unwrap_or(1);
                event["count"] = json!(count + 1);
                event["lastTimestamp"] = json!(now);
                match self
                    .registry
                    .update(rt, &e.namespace, &name, event, Subresource::Main, &opts)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(err) if err.reason == Reason::Conflict => continue,
                    Err(err) => return Err(err.to_string()),
                }
            }
        }
        let name = format!(
            "{}.{:x}",
            e.pod_name,
            jiff::Timestamp::now().as_nanosecond()
        );
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod",
            "name": e.pod_name, "namespace": e.namespace, "uid": e.pod_uid,
        });
        if let Some(path) = &e.field_path {
            involved["fieldPath"] = json!(path);
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": e.namespace},
            "involvedObject": involved,
            "reason": e.reason,
            "message": e.message,
            "type": e.event_type,
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet",
            "reportingInstance": node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        self.registry
            .create(rt, &e.namespace, event, &opts)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: forgetting only means the next repeat starts a new Event.
        if seen.len() >= MAX_REMEMBERED_EVENTS {
            seen.clear();
        }
        seen.insert(key, name);
        Ok(())
    }
}
