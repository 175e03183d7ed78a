//! The taint eviction controller, as Kubernetes' (`pkg/controller/tainteviction`):
//! a pod bound to a node with a `NoExecute` taint it does not tolerate is
//! deleted at once; one it tolerates for `tolerationSeconds` is deleted when
//! that time has passed since the taint was added; a toleration without
//! seconds keeps it there. This is how a lost node's pods are replaced
//! elsewhere: the node lifecycle controller taints the node, every pod carries
//! the default not-ready/unreachable tolerations (2 s in Skiff), and the pods'
//! controllers create replacements as soon as the old ones are terminating.
//!
//! A tainted node is reconciled when its taints change and when a pod is
//! bound to it; the reconcile evicts what is due and asks to come back when
//! the next toleration runs out (Kubernetes' timed workers).

use k8s_openapi::api::core::v1::{Node, Pod};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Taint, Toleration};
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{DeleteOptions, Registry};
use crate::scheduler::requirements::tolerates;
use crate::store::EventType as StoreEvent;

pub const NAME: &str = "taint-eviction-controller";

/// When a pod on a tainted node must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every NoExecute taint for good.
    Never,
    /// At this instant (in the past: now).
    At(Timestamp),
}

struct Context {
    registry: Registry,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    events: EventRecorder,
}

/// Runs until the process ends.
pub async fn run(deps: Deps) {
    let (registry, nodes, pods, events) = (
        deps.registry,
        deps.informers.nodes,
        deps.informers.pods,
        deps.events,
    );
    let ctx = Arc::new(Context {
        registry,
        nodes: nodes.clone(),
        pods: pods.clone(),
        events,
    });
    let tainted = nodes.clone();
    Controller::new(NAME, &nodes)
        .for_primaries_where(|node| !no_execute_taints(node).is_empty())
        // A pod bound to a tainted node, or whose tolerations changed there.
        .watches_changes(&pods, move |event, pod, before| {
            let Some(node) = node_of(pod) else {
                return Vec::new();
            };
            let changed = event == StoreEvent::Added
                || before.is_none_or(|b| {
                    node_of(b) != Some(node)
                        || b.at("/spec/tolerations") != pod.at("/spec/tolerations")
                });
            let is_tainted = || {
                tainted
                    .get("", node)
                    .is_some_and(|n| !no_execute_taints(&n).is_empty())
            };
            if event != StoreEvent::Deleted && changed && is_tainted() {
                vec![(String::new(), node.to_string())]
            } else {
                Vec::new()
            }
        })
        .run(2, ctx, reconcile)
        .await;
}

fn node_of(pod: &Value) -> Option<&str> {
    pod.at("/spec/nodeName").and_then(Value::as_str)
}

/// Evicts the pods of a NoExecute-tainted node that must go now, and comes
/// back when the next one must.
async fn reconcile(ctx: Arc<Context>, (_, node): ObjectRef) -> Result<Action, ApiError> {
    let Some(object) = ctx.nodes.get("", &node) else {
        return Ok(Action::await_change());
    };
    let taints = no_execute_taints(&object);
    if taints.is_empty() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let mut next: Option<Timestamp> = None;
    let pods = ctx.pods.list(None, |p| {
        meta::deletion_timestamp(p).is_none() && node_of(p) == Some(node.as_str())
    });
    for pod in pods {
        match eviction(&pod, &taints, now) {
            Eviction::At(t) if t <= now => evict(&ctx.registry, &ctx.events, &pod).await,
            Eviction::At(t) => next = Some(next.map_or(t, |n| n.min(t))),
            Eviction::Never => {}
        }
    }
    Ok(match next {
        Some(t) => Action::requeue_after(t.duration_since(now).unsigned_abs()),
        None => Action::await_change(),
    })
}

/// The node's NoExecute taints.
fn no_execute_taints(node: &Value) -> Vec<Taint> {
    node.at("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| serde_json::from_value::<Taint>(t.clone()).ok())
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// When `pod` must leave a node with `taints` (all NoExecute), as the
/// Kubernetes taint manager decides: an untolerated taint evicts now; else the
/// shortest `tolerationSeconds` among the tolerations used, counted from when
/// its taint was added.
pub fn eviction(pod: &Value, taints: &[Taint], now: Timestamp) -> Eviction {
    let tolerations: Vec<Toleration> = pod
        .at("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| serde_json::from_value(t.clone()).ok())
        .collect();
    let mut earliest: Option<Timestamp> = None;
    for taint in taints {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Eviction::At(now);
        }
        // The toleration that lets the pod stay longest wins; one without
        // seconds lets it stay for good.
        if used.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let seconds = used
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .max()
            .unwrap_or(0)
            .max(0);
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        let at = added
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap_or(now);
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest.map_or(Eviction::Never, Eviction::At)
}

async fn evict(registry: &Registry, events: &EventRecorder, pod: &Value) {
    let Some(rt) = by_kind("v1", "Pod") else {
        return;
    };
    let (ns, name) = (
        meta::namespace(pod).unwrap_or_default(),
        meta::name(pod).unwrap_or_default(),
    );
    let opts = DeleteOptions {
        precondition_uid: meta::uid(pod).map(str::to_string),
        ..Default::default()
    };
    match registry.delete(rt, ns, name, &opts).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{ns}/{name}"), "evicted from a NoExecute-tainted node");
            events.record(
                pod,
                NAME,
                EventType::Normal,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{name}"),
            );
        }
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "evict pod"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn taint(key: &str, added: &str) -> Taint {
        serde_json::from_value(json!({"key": key, "effect": "NoExecute", "timeAdded": added}))
            .expect("taint")
    }

    fn pod(tolerations: Value) -> Value {
        json!({"spec": {"nodeName": "n1", "tolerations": tolerations}})
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn untolerated_goes_now_tolerated_waits_its_seconds_forever_stays() {
        let now = at("2026-01-01T00:00:05Z");
        let lost = [taint(
            "node.kubernetes.io/unreachable",
            "2026-01-01T00:00:04Z",
        )];
        assert_eq!(eviction(&pod(json!([])), &lost, now), Eviction::At(now));
        let two_seconds = pod(json!([{"key": "node.kubernetes.io/unreachable",
            "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]));
        assert_eq!(
            eviction(&two_seconds, &lost, now),
            Eviction::At(at("2026-01-01T00:00:06Z"))
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction(&forever, &lost, now), Eviction::Never);
        // Another taint the pod does not tolerate still evicts it now.
        let both = [lost[0].clone(), taint("dedicated", "2026-01-01T00:00:00Z")];
        assert_eq!(eviction(&two_seconds, &both, now), Eviction::At(now));
    }
}
