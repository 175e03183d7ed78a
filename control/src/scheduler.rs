//! The scheduler: binds pending pods to nodes, as kube-scheduler does.
//!
//! It keeps its picture of the cluster ([`cluster::ClusterState`]) from the Node
//! and Pod watch caches, decides with the pure [`fit::schedule`], and binds in
//! batches: one store commit sets `spec.nodeName` (and `PodScheduled=True`) on
//! many pods, so binding shares disk syncs. A pod that fits nowhere gets
//! `PodScheduled=False` (`Unschedulable`) and a `FailedScheduling` Event saying
//! why per group of nodes, and waits until the cluster changes in a way that
//! could let it in (a node added or changed, a pod gone).
//!
//! Pods naming another `schedulerName` are left alone, as are pods that already
//! name their node (`spec.nodeName` set by the user runs there directly).

pub mod cluster;
pub mod fit;
pub mod requirements;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use crate::events::{EventRecorder, EventType};
use crate::informer::{Change, Informer, ObjectRef, object_ref};
use crate::registry::{Registry, Subresource, WriteOptions, key};
use crate::store::{Action, EventType as WatchEventType, Op, Precondition, StoreError};
use cluster::ClusterState;
use fit::{Cursor, FitError, schedule};
use requirements::{DEFAULT_SCHEDULER, PodRequirements};

/// The scheduler's name, in Events and among the controllers.
pub const NAME: &str = "default-scheduler";
const COMPONENT: &str = NAME;
const FIELD_MANAGER: &str = "skiff-scheduler";
/// Pods bound per store commit at most.
const BATCH: usize = 1024;
/// How long an unschedulable pod waits at most before it is tried again even
/// if nothing seems to have changed (kube-scheduler: 5 minutes).
const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(60);
/// The pause before a pod whose binding failed is tried again.
const BIND_RETRY: Duration = Duration::from_millis(100);

/// Runs the scheduler until the process ends.
pub async fn run(deps: crate::controllers::Deps) {
    let (registry, nodes, pods, events) = (
        deps.registry,
        deps.informers.nodes,
        deps.informers.pods,
        deps.events,
    );
    let mut scheduler = Scheduler {
        registry,
        pods: pods.clone(),
        events,
        state: ClusterState::default(),
        cursor: Cursor::default(),
        active: VecDeque::new(),
        queued: HashSet::new(),
        unschedulable: HashMap::new(),
    };
    let mut node_changes = nodes.subscribe();
    let mut pod_changes = pods.subscribe();
    nodes.synced().await;
    pods.synced().await;
    scheduler.resync(&nodes);
    let mut retry = tokio::time::interval(UNSCHEDULABLE_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retry.tick().await;
    let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef>();
    loop {
        // Take every change already waiting, then schedule what is pending.
        tokio::select! {
            biased;
            change = node_changes.next() => match change {
                Some(c) => scheduler.node_changed(c, &nodes),
                None => return,
            },
            change = pod_changes.next() => match change {
                Some(c) => scheduler.pod_changed(c, &nodes),
                None => return,
            },
            Some(key) = retry_rx.recv() => scheduler.enqueue(key),
            _ = retry.tick() => scheduler.flush_unschedulable(),
            _ = std::future::ready(()), if !scheduler.active.is_empty() => {
                scheduler.cycle(&retry_tx).await;
            }
        }
    }
}

struct Scheduler {
    registry: Registry,
    pods: Informer<Pod>,
    events: EventRecorder,
    state: ClusterState,
    cursor: Cursor,
    /// Pods to try, in order.
    active: VecDeque<ObjectRef>,
    queued: HashSet<ObjectRef>,
    /// Pods that fit nowhere, with the message they were given.
    unschedulable: HashMap<ObjectRef, String>,
}

/// Whether this scheduler should place `pod` now.
fn is_pending(pod: &Value) -> bool {
    let spec = pod.get("spec");
    let node = spec
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let scheduler = spec
        .and_then(|s| s.get("schedulerName"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_SCHEDULER);
    let phase = pod
        .at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    node.is_empty()
        && scheduler == DEFAULT_SCHEDULER
        && meta::deletion_timestamp(pod).is_none()
        && phase != "Succeeded"
        && phase != "Failed"
}

impl Scheduler {
    /// Rebuilds everything from the caches (at start, or after falling behind).
    fn resync(&mut self, nodes: &Informer<Node>) {
        self.state = ClusterState::default();
        for node in nodes.list(None, |_| true) {
            self.state.upsert_node(&node);
        }
        for pod in self.pods.list(None, |_| true) {
            self.state.upsert_pod(&pod);
            if is_pending(&pod) {
                self.enqueue(object_ref(&pod));
            }
        }
        self.flush_unschedulable();
    }

    fn enqueue(&mut self, key: ObjectRef) {
        self.unschedulable.remove(&key);
        if self.queued.insert(key.clone()) {
            self.active.push_back(key);
        }
    }

    /// Every waiting pod gets another try.
    fn flush_unschedulable(&mut self) {
        let keys: Vec<ObjectRef> = self.unschedulable.keys().cloned().collect();
        for key in keys {
            self.enqueue(key);
        }
    }

    fn node_changed(&mut self, change: Change, nodes: &Informer<Node>) {
        match change {
            Change::Resync => self.resync(nodes),
            Change::Object {
                event_type, object, ..
            } => {
                let opened = match event_type {
                    WatchEventType::Deleted => {
                        self.state
                            .remove_node(meta::name(&object).unwrap_or_default());
                        false
                    }
                    _ => self.state.upsert_node(&object),
                };
                if opened {
                    self.flush_unschedulable();
                }
            }
        }
    }

    fn pod_changed(&mut self, change: Change, nodes: &Informer<Node>) {
        let Change::Object {
            event_type,
            object,
            prev,
        } = change
        else {
            return self.resync(nodes);
        };
        let key = object_ref(&object);
        let freed = match event_type {
            WatchEventType::Deleted => {
                self.unschedulable.remove(&key);
                self.state
                    .remove_pod(meta::uid(&object).unwrap_or_default())
            }
            _ => self.state.upsert_pod(&object),
        };
        if freed {
            self.flush_unschedulable();
        }
        if event_type == WatchEventType::Deleted || !is_pending(&object) {
            return;
        }
        // A waiting pod is not tried again for its own status update (that is
        // the scheduler's own doing), only when what it asks for changes.
        let asks_the_same = prev.as_ref().is_some_and(|p| {
            p.get("spec") == object.get("spec") && meta::labels(p) == meta::labels(&object)
        });
        if self.unschedulable.contains_key(&key) && asks_the_same {
            return;
        }
        self.enqueue(key);
    }

    /// Places up to a batch of pending pods and binds them in one commit.
    async fn cycle(&mut self, retry: &tokio::sync::mpsc::UnboundedSender<ObjectRef>) {
        let mut binds: Vec<(Arc<Value>, String)> = Vec::new();
        while binds.len() < BATCH {
            let Some(key) = self.active.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            let Some(pod) = self.pods.get(&key.0, &key.1) else {
                continue;
            };
            if !is_pending(&pod) {
                continue;
            }
            let needs = PodRequirements::of(&pod);
            match schedule(&self.state, &needs, &mut self.cursor) {
                Ok(i) => {
                    let node = self.state.nodes()[i].name.clone();
                    self.state.assume(needs, &node);
                    binds.push((pod, node));
                }
                Err(e) => self.unschedulable(key, &pod, e),
            }
        }
        if binds.is_empty() {
            return;
        }
        let failed = self.bind(binds).await;
        for (pod, _) in failed {
            self.state.remove_pod(meta::uid(&pod).unwrap_or_default());
            let key = object_ref(&pod);
            let retry = retry.clone();
            tokio::spawn(async move {
                tokio::time::sleep(BIND_RETRY).await;
                let _ = retry.send(key);
            });
        }
    }

    /// Binds in one commit; if that fails (a pod changed meanwhile), each on its
    /// own. Returns the bindings that failed.
    async fn bind(&self, binds: Vec<(Arc<Value>, String)>) -> Vec<(Arc<Value>, String)> {
        let Some(rt) = self.pods_type() else {
            return binds;
        };
        let now = meta::now_timestamp();
        let op = |pod: &Arc<Value>, node: &str| -> Option<Op> {
            let revision = meta::resource_version(pod)?.parse().ok()?;
            let mut bound = (**pod).clone();
            bound["spec"]["nodeName"] = json!(node);
            set_scheduled_condition(&mut bound, "True", None, &now);
            Some(Op {
                key: key(
                    rt,
                    meta::namespace(pod).unwrap_or_default(),
                    meta::name(pod).unwrap_or_default(),
                ),
                precondition: Precondition::Revision(revision),
                action: Action::Put(bound),
                // The cached pod is the stored one at that revision.
                prev: Some(pod.clone()),
            })
        };
        // Each binding commits with its `Scheduled` Event.
        let with_event = |pod: &Arc<Value>, node: &str| -> Option<Vec<Op>> {
            let mut ops = vec![op(pod, node)?];
            match self.scheduled_event(pod, node) {
                Ok(event) => ops.push(event),
                Err(e) => tracing::debug!(error = %e, "scheduler: no Scheduled Event"),
            }
            Some(ops)
        };
        let ops: Option<Vec<Vec<Op>>> = binds.iter().map(|(p, n)| with_event(p, n)).collect();
        if let Some(ops) = ops {
            match self.registry.commit(ops.concat()).await {
                Ok(_) => return Vec::new(),
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: binding failed");
                    return binds;
                }
            }
        }
        let mut failed = Vec::new();
        for (pod, node) in binds {
            let Some(ops) = with_event(&pod, &node) else {
                failed.push((pod, node));
                continue;
            };
            if self.registry.commit(ops).await.is_err() {
                failed.push((pod, node));
            }
        }
        failed
    }

    /// The `Scheduled` Event of binding `pod` to `node`, as an op.
    fn scheduled_event(&self, pod: &Value, node: &str) -> Result<Op, skiff_api::status::ApiError> {
        let (ns, name) = object_ref(pod);
        self.events.create_op(
            pod,
            COMPONENT,
            EventType::Normal,
            "Scheduled",
            format!("Successfully assigned {ns}/{name} to {node}"),
        )
    }

    /// A pod that fits nowhere: its condition and an Event say why.
    fn unschedulable(&mut self, key: ObjectRef, pod: &Value, error: FitError) {
        let message = error.to_string();
        tracing::debug!(pod = %key.1, namespace = %key.0, %message, "unschedulable");
        self.events.record(
            pod,
            COMPONENT,
            EventType::Warning,
            "FailedScheduling",
            message.clone(),
        );
        self.unschedulable.insert(key.clone(), message.clone());
        let registry = self.registry.clone();
        let Some(rt) = self.pods_type() else {
            return;
        };
        tokio::spawn(async move {
            let opts = WriteOptions {
                field_manager: FIELD_MANAGER.into(),
                ..Default::default()
            };
            for _ in 0..4 {
                let Ok(Some(mut current)) = registry.try_get(rt, &key.0, &key.1) else {
                    return;
                };
                if !is_pending(&current) {
                    return;
                }
                let now = meta::now_timestamp();
                set_scheduled_condition(&mut current, "False", Some(&message), &now);
                if current.at("/status/phase").is_none() {
                    current["status"]["phase"] = json!("Pending");
                }
                match registry
                    .update(rt, &key.0, &key.1, current, Subresource::Status, &opts)
                    .await
                {
                    Err(e) if e.reason == skiff_api::Reason::Conflict => continue,
                    _ => return,
                }
            }
        });
    }

    fn pods_type(&self) -> Option<&'static skiff_api::resource::ResourceType> {
        Some(self.pods.resource())
    }
}

/// Sets the `PodScheduled` condition (keeping its transition time when the
/// status stays the same).
fn set_scheduled_condition(pod: &mut Value, status: &str, message: Option<&str>, now: &str) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    if pod["status"].get("phase").is_none() {
        pod["status"]["phase"] = json!("Pending");
    }
    let mut condition = json!({
        "type": "PodScheduled",
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": now,
    });
    if let Some(m) = message {
        condition["reason"] = json!("Unschedulable");
        condition["message"] = json!(m);
    }
    let conditions = pod["status"]
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = Vec::with_capacity(conditions.len() + 1);
    let mut replaced = false;
    for c in conditions {
        if c.get("type").and_then(Value::as_str) == Some("PodScheduled") {
            if c.get("status").and_then(Value::as_str) == Some(status)
                && let Some(t) = c.get("lastTransitionTime")
            {
                condition["lastTransitionTime"] = t.clone();
            }
            out.push(condition.clone());
            replaced = true;
        } else {
            out.push(c);
        }
    }
    if !replaced {
        out.push(condition);
    }
    pod["status"]["conditions"] = Value::Array(out);
}
