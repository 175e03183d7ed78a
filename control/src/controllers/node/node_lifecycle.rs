//! The node lifecycle controller, as Kubernetes' (`pkg/controller/nodelifecycle`):
//! a node that has not been heard from for the grace period gets `Ready=Unknown`
//! (Kubernetes' `node-monitor-grace-period`; `kubectl get nodes` shows it
//! `NotReady`), its pods are marked not ready (so Services stop sending them
//! requests), and the node is tainted by its condition: `unreachable` (Ready
//! Unknown) or `not-ready` (Ready False), each with `NoSchedule` (the scheduler
//! keeps new pods off) and `NoExecute` (the taint eviction controller moves its
//! pods elsewhere once their toleration runs out); `spec.unschedulable` (a
//! cordon) gets `node.kubernetes.io/unschedulable:NoSchedule`. The gateway marks
//! a node `Ready` again when it reconnects, and the taints go.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::events::{EventRecorder, EventType};
use crate::gateway::NodeLiveness;
use crate::gateway::nodes::{is_ready, mark_unknown};
use crate::informer::{Informer, ObjectRef};
use crate::registry::strategy::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use crate::registry::{Registry, Subresource, WriteOptions};

pub const NAME: &str = "node-controller";
const FIELD_MANAGER: &str = "skiff-node-lifecycle-controller";
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// How often a node that is not ready is looked at again (its pods marked
/// not ready, should one have been missed).
const NOT_READY_RECHECK: Duration = Duration::from_millis(250);
/// Past the grace period, a heartbeat this late still counts as on time: the
/// check runs just after the deadline, not just before it.
const SLACK: Duration = Duration::from_millis(10);

struct Context {
    registry: Registry,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    events: EventRecorder,
    liveness: NodeLiveness,
    grace: Duration,
    /// Nodes known from before this control plane started get the grace
    /// period from then to reconnect.
    started: Instant,
}

/// Runs until the process ends.
pub async fn run(deps: Deps) {
    let (registry, nodes, pods, events, liveness, grace) = (
        deps.registry,
        deps.informers.nodes,
        deps.informers.pods,
        deps.events,
        deps.liveness,
        deps.node_grace_period,
    );
    let ctx = Arc::new(Context {
        registry,
        nodes: nodes.clone(),
        pods,
        events,
        liveness,
        grace,
        started: Instant::now(),
    });
    // Heartbeats are not in the store: each ready node asks to be looked at
    // again when its grace period would run out.
    Controller::new(NAME, &nodes).run(4, ctx, reconcile).await;
}

async fn reconcile(ctx: Arc<Context>, (_, name): ObjectRef) -> Result<Action, ApiError> {
    let Some(node) = ctx.nodes.get("", &name) else {
        return Ok(Action::await_change());
    };
    let mut next = None;
    if is_ready(&node) {
        let silent_for = match ctx.liveness.get(&name) {
            Some(l) => l.last_seen.elapsed(),
            None => ctx.started.elapsed(),
        };
        if silent_for > ctx.grace {
            if mark_unknown(&ctx.registry, &name).await? {
                ctx.liveness.marked_unknown(&name);
                tracing::warn!(node = name, silent_for = ?silent_for, "node stopped posting status; marked NotReady");
                ctx.events.record(
                    &node,
                    NAME,
                    EventType::Normal,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
                // The write brings the node back here, with its new condition
                // to taint by.
                return Ok(Action::await_change());
            }
        } else {
            next = Some(ctx.grace - silent_for + SLACK);
        }
    } else {
        mark_pods_not_ready(&ctx.registry, &ctx.pods, &name).await;
        next = Some(NOT_READY_RECHECK);
    }
    if let Some(taints) = updated_taints(&node, &meta::now_timestamp()) {
        set_taints(&ctx.registry, &node, taints).await?;
    }
    Ok(next.map_or(Action::await_change(), Action::requeue_after))
}

/// The condition taints a node must carry: (key, effect).
fn condition_taints(node: &Value) -> BTreeSet<(&'static str, &'static str)> {
    let ready = node
        .at("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    let mut out = BTreeSet::new();
    let lost = match ready {
        Some("True") => None,
        Some("False") => Some(TAINT_NOT_READY),
        Some(_) => Some(TAINT_UNREACHABLE),
        // A node that has not reported yet (its Node was just created).
        None => None,
    };
    if let Some(key) = lost {
        out.insert((key, "NoSchedule"));
        out.insert((key, "NoExecute"));
    }
    if node.at("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        out.insert((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    out
}

/// The node's taints with the condition taints brought up to date, or `None`
/// when they already are. Other taints (a user's) are kept as they are; a
/// kept condition taint keeps its `timeAdded`, which eviction counts from.
fn updated_taints(node: &Value, now: &str) -> Option<Vec<Value>> {
    let want = condition_taints(node);
    let have: Vec<Value> = node
        .at("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let managed = |t: &Value| {
        let key = t.get("key").and_then(Value::as_str).unwrap_or("");
        [TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE].contains(&key)
    };
    let key_of = |t: &Value| {
        (
            t.get("key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            t.get("effect")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    let mut out: Vec<Value> = Vec::new();
    let mut present = BTreeSet::new();
    for t in &have {
        if !managed(t) {
            out.push(t.clone());
            continue;
        }
        let (key, effect) = key_of(t);
        if want.contains(&(key.as_str(), effect.as_str())) && present.insert((key, effect)) {
            out.push(t.clone());
        }
    }
    for (key, effect) in &want {
        if !present.contains(&(key.to_string(), effect.to_string())) {
            let mut taint = json!({"key": key, "effect": effect});
            if *effect == "NoExecute" {
                taint["timeAdded"] = json!(now);
            }
            out.push(taint);
        }
    }
    (out != have).then_some(out)
}

async fn set_taints(
    registry: &Registry,
    node: &Value,
    taints: Vec<Value>,
) -> Result<(), skiff_api::ApiError> {
    let rt = by_kind("v1", "Node").ok_or_else(|| skiff_api::ApiError::internal("no Node kind"))?;
    let mut updated = node.clone();
    if !updated.get("spec").is_some_and(Value::is_object) {
        updated["spec"] = json!({});
    }
    if taints.is_empty() {
        if let Some(spec) = updated["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        updated["spec"]["taints"] = Value::Array(taints);
    }
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let name = meta::name(node).unwrap_or_default();
    match registry
        .update(rt, "", name, updated, Subresource::Main, &opts)
        .await
    {
        Ok(_) => Ok(()),
        // Changed meanwhile: the next check sees the new one.
        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets `Ready=False` on the pods of a node that is not ready, as Kubernetes'
/// `MarkPodsNotReady`: whatever the node last said, nobody can reach them now.
async fn mark_pods_not_ready(registry: &Registry, pods: &Informer<Pod>, node: &str) {
    let Some(rt) = by_kind("v1", "Pod") else {
        return;
    };
    let on_node = pods.list(None, |p| {
        p.at("/spec/nodeName").and_then(Value::as_str) == Some(node) && pod_is_ready(p)
    });
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let now = meta::now_timestamp();
    for pod in on_node {
        let mut updated = (*pod).clone();
        if let Some(list) = updated
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            for c in list.iter_mut().filter(|c| c["type"] == "Ready") {
                c["status"] = json!("False");
                c["reason"] = json!("NodeNotReady");
                c["message"] = json!(format!("Node {node} is not ready"));
                c["lastTransitionTime"] = json!(now);
            }
        }
        let (ns, name) = (
            meta::namespace(&pod).unwrap_or_default(),
            meta::name(&pod).unwrap_or_default(),
        );
        match registry
            .update(rt, ns, name, updated, Subresource::Status, &opts)
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "mark pod not ready")
            }
        }
    }
}

fn pod_is_ready(pod: &Value) -> bool {
    pod.at("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, taints: Value) -> Value {
        let mut n = json!({"metadata": {"name": "n1"}, "spec": {"taints": taints}});
        if let Some(status) = ready {
            n["status"] = json!({"conditions": [{"type": "Ready", "status": status}]});
        }
        n
    }

    #[test]
    fn a_lost_node_is_tainted_unreachable_and_a_ready_one_is_not() {
        let user = json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"});
        let lost = node(Some("Unknown"), json!([user]));
        let taints = updated_taints(&lost, "2026-01-01T00:00:00Z").expect("changed");
        assert_eq!(
            taints,
            vec![
                user.clone(),
                json!({"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}),
                json!({"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}),
            ]
        );
        // Applied once, nothing more to do, and timeAdded stays.
        let tainted = node(Some("Unknown"), Value::Array(taints.clone()));
        assert_eq!(updated_taints(&tainted, "2026-01-01T00:00:09Z"), None);
        // Back to Ready: only the user's taint is left.
        let back = node(Some("True"), Value::Array(taints));
        assert_eq!(
            updated_taints(&back, "2026-01-01T00:00:09Z"),
            Some(vec![user])
        );
    }

    #[test]
    fn not_ready_and_cordoned_nodes_get_their_taints() {
        let down = node(Some("False"), json!([]));
        let taints = updated_taints(&down, "t").expect("changed");
        assert!(
            taints
                .iter()
                .any(|t| t["key"] == TAINT_NOT_READY && t["effect"] == "NoExecute")
        );
        let mut cordoned = node(Some("True"), json!([]));
        cordoned["spec"]["unschedulable"] = json!(true);
        assert_eq!(
            updated_taints(&cordoned, "t"),
            Some(vec![
                json!({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"})
            ])
        );
    }
}
