//! What nodes report, written to the store: pod status (coalesced per pod, many
//! pods in parallel so their commits share disk syncs), Events (aggregated by
//! reason and message, as Kubernetes counts repeats), and the final removal of a
//! pod whose node has stopped it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};
use skiff_api::wire::EventReport;

use super::nodes::FIELD_MANAGER;
use crate::events::{EventRecorder, EventType, Involved, Source};
use crate::registry::{DeleteOptions, Registry, WriteOptions};

/// A status waiting to be written.
struct Pending {
    namespace: String,
    name: String,
    status: Value,
    /// The pod as the node authorizer checked it: the object to write over
    /// first, saving a read of the store when it is still current.
    seen: Arc<Value>,
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

    /// Queues `status` for the pod, last `seen` as it is; returns at once.
    pub fn report(
        &self,
        namespace: String,
        name: String,
        uid: String,
        status: Value,
        seen: Arc<Value>,
    ) {
        let pending = Pending {
            namespace,
            name,
            status,
            seen,
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
            // What this loop last wrote: the base for the next status, newer
            // than what a report queued meanwhile was checked against.
            let mut written: Option<Value> = None;
            while let Some(p) = next {
                let base = written.take().unwrap_or_else(|| Value::clone(&p.seen));
                match write_status(&writer.registry, &p, &uid, base).await {
                    Ok(object) => written = object,
                    Err(e) => tracing::debug!(pod = %p.name, error = %e, "pod status not written"),
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

/// Writes `p`'s status over `base`, the pod as last seen; when another write
/// got there first, over the pod read again. The pod as written, if it was.
async fn write_status(
    registry: &Registry,
    p: &Pending,
    uid: &str,
    base: Value,
) -> Result<Option<Value>, ApiError> {
    let rt = by_kind("v1", "Pod").ok_or_else(|| ApiError::internal("no Pod kind"))?;
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let mut base = Some(base);
    for _ in 0..8 {
        let (pod, read) = match base.take() {
            Some(pod) => (pod, false),
            None => match registry.try_get(rt, &p.namespace, &p.name)? {
                Some(pod) => (pod, true),
                None => return Ok(None), // Gone: nothing to report on.
            },
        };
        if meta::uid(&pod) != Some(uid) {
            return Ok(None); // A new pod of the same name.
        }
        if pod.get("status") == Some(&p.status) {
            // Nothing to write only if the store says so: the control plane
            // may have changed the status since `base` (a lost node's pods
            // are marked not ready), and the node will not say it again.
            if read {
                return Ok(Some(pod));
            }
            continue;
        }
        match registry
            .update_status_from(rt, pod, p.status.clone(), &opts)
            .await
        {
            Ok(written) => return Ok(Some(written.object)),
            Err(e) if e.reason == Reason::Conflict => continue,
            Err(e) if e.reason == Reason::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::new(Reason::Conflict, "the pod kept changing"))
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

/// Writes the Events nodes report, as the kubelet's recorder would.
#[derive(Clone)]
pub struct EventWriter {
    recorder: EventRecorder,
}

impl EventWriter {
    pub fn new(registry: Registry) -> Self {
        EventWriter {
            recorder: EventRecorder::new(registry, FIELD_MANAGER),
        }
    }

    /// Records `event` from `node`; returns at once.
    pub fn report(&self, node: &str, event: EventReport) {
        let involved = Involved {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: event.namespace,
            name: event.pod_name,
            uid: event.pod_uid,
            field_path: event.field_path,
        };
        let source = Source {
            component: "kubelet".into(),
            host: Some(node.to_string()),
        };
        self.recorder.record_about(
            involved,
            source,
            EventType::parse(&event.event_type),
            &event.reason,
            event.message,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Subresource;
    use crate::store::redb::{RedbStore, StoreConfig};

    /// A node says again what the pod's status was when it was checked, but
    /// the control plane has changed it since (a lost node's pod marked not
    /// ready): the report is written, not skipped as "unchanged".
    #[tokio::test]
    async fn a_report_equal_to_a_stale_copy_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            RedbStore::open(&dir.path().join("store.redb"), StoreConfig::default()).unwrap();
        let registry = Registry::new(Arc::new(store));
        let opts = WriteOptions::default();
        let ns = by_kind("v1", "Namespace").unwrap();
        let pods = by_kind("v1", "Pod").unwrap();
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        registry.create(ns, "", namespace, &opts).await.unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "hello:v1"}]}});
        registry.create(pods, "default", pod, &opts).await.unwrap();
        let ready =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        let stored = registry.get(pods, "default", "p").unwrap();
        let seen = registry
            .update_status_from(pods, stored, ready.clone(), &opts)
            .await
            .unwrap()
            .object;
        let uid = meta::uid(&seen).unwrap().to_string();
        // The control plane marks it not ready.
        let mut lost = registry.get(pods, "default", "p").unwrap();
        lost["status"]["conditions"][0]["status"] = json!("False");
        registry
            .update(pods, "default", "p", lost, Subresource::Status, &opts)
            .await
            .unwrap();

        let report = Pending {
            namespace: "default".into(),
            name: "p".into(),
            status: ready.clone(),
            seen: Arc::new(seen.clone()),
        };
        write_status(&registry, &report, &uid, seen).await.unwrap();
        let now = registry.get(pods, "default", "p").unwrap();
        assert_eq!(now["status"]["conditions"][0]["status"], "True", "{now}");
    }
}
