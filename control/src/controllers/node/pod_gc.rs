//! The pod garbage collector, as Kubernetes' (`pkg/controller/podgc`) for
//! orphaned pods: a pod bound to a node that no longer exists is deleted at
//! once (grace period 0). No node will ever stop it and confirm its end, so a
//! graceful delete would leave it Terminating forever, and its controller
//! (a DaemonSet, a ReplicaSet) would count it.
//!
//! A node is taken as gone only when it has been missing from the cache for a
//! while and the store confirms it, so neither a lagging cache nor a pod
//! bound just before its node registers loses a pod.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};
use tokio::time::Instant;

use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::informer::{Informer, ObjectRef, object_ref};
use crate::registry::{DeleteOptions, Registry};

/// How long a node must be missing before its pods go. Kubernetes waits 40 s,
/// mostly against a lagging cache; Skiff asks the store itself before
/// deleting, so this only has to cover a node registering right after a pod
/// that names it.
const QUARANTINE: Duration = Duration::from_secs(3);
/// A node missing this long is forgotten (its pods have gone by then); one
/// still named later starts a new quarantine.
const FORGET_AFTER: Duration = Duration::from_secs(60);
pub const NAME: &str = "pod-garbage-collector";

struct Context {
    registry: Registry,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    missing: Mutex<MissingNodes>,
}

/// Runs until the process ends.
pub async fn run(deps: Deps) {
    let (registry, nodes, pods) = (deps.registry, deps.informers.nodes, deps.informers.pods);
    let ctx = Arc::new(Context {
        registry,
        nodes: nodes.clone(),
        pods: pods.clone(),
        missing: Mutex::default(),
    });
    let known = nodes.clone();
    let bound = pods.clone();
    Controller::new(NAME, &pods)
        .for_primaries_where(move |pod| node_of(pod).is_some_and(|n| known.get("", n).is_none()))
        // A deleted Node's pods.
        .watches_deletions(&nodes, move |node| {
            let name = meta::name(node).unwrap_or_default();
            bound
                .list(None, |p| node_of(p) == Some(name))
                .iter()
                .map(|p| object_ref(p))
                .collect()
        })
        .run(1, ctx, reconcile)
        .await;
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(pod) = ctx.pods.get(&key.0, &key.1) else {
        return Ok(Action::await_change());
    };
    let Some(node) = node_of(&pod) else {
        return Ok(Action::await_change());
    };
    if ctx.nodes.get("", node).is_some() {
        lock(&ctx.missing).forget(node);
        return Ok(Action::await_change());
    }
    if let Some(wait) = lock(&ctx.missing).wait(node, Instant::now()) {
        return Ok(Action::requeue_after(wait));
    }
    if node_exists(&ctx.registry, node) {
        lock(&ctx.missing).forget(node);
        return Ok(Action::await_change());
    }
    force_delete(&ctx.registry, &pod).await;
    Ok(Action::await_change())
}

fn lock(m: &Mutex<MissingNodes>) -> std::sync::MutexGuard<'_, MissingNodes> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn node_of(pod: &Value) -> Option<&str> {
    pod.at("/spec/nodeName").and_then(Value::as_str)
}

fn node_exists(registry: &Registry, name: &str) -> bool {
    let Some(rt) = by_kind("v1", "Node") else {
        return true;
    };
    // When the store cannot answer, assume the node is there: deleting is the
    // step that cannot be undone.
    !matches!(registry.try_get(rt, "", name), Ok(None))
}

async fn force_delete(registry: &Registry, pod: &Value) {
    let Some(rt) = by_kind("v1", "Pod") else {
        return;
    };
    let (ns, name) = (
        meta::namespace(pod).unwrap_or_default(),
        meta::name(pod).unwrap_or_default(),
    );
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        precondition_uid: meta::uid(pod).map(str::to_string),
        ..Default::default()
    };
    match registry.delete(rt, ns, name, &opts).await {
        Ok(_) => tracing::info!(
            pod = %format!("{ns}/{name}"),
            node = node_of(pod).unwrap_or_default(),
            "deleted a pod bound to a node that no longer exists"
        ),
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod gc: delete"),
    }
}

/// When each node that pods name was first seen missing.
#[derive(Default)]
struct MissingNodes {
    since: HashMap<String, Instant>,
}

impl MissingNodes {
    /// How much longer `node`, missing now, stays in quarantine; `None`
    /// once it has been missing for the whole of it.
    fn wait(&mut self, node: &str, now: Instant) -> Option<Duration> {
        self.since
            .retain(|_, t| now.saturating_duration_since(*t) < FORGET_AFTER);
        let since = *self.since.entry(node.to_string()).or_insert(now);
        let waited = now.saturating_duration_since(since);
        (waited < QUARANTINE).then(|| QUARANTINE - waited)
    }

    fn forget(&mut self, node: &str) {
        self.since.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_due_after_the_quarantine_and_forgotten_when_back() {
        let mut missing = MissingNodes::default();
        let t0 = Instant::now();
        assert_eq!(missing.wait("n3", t0), Some(QUARANTINE));
        assert_eq!(
            missing.wait("n3", t0 + QUARANTINE / 2),
            Some(QUARANTINE / 2)
        );
        assert_eq!(missing.wait("n3", t0 + QUARANTINE), None);
        // It came back: the clock starts over when it goes missing again.
        missing.forget("n3");
        assert_eq!(missing.wait("n3", t0 + QUARANTINE * 2), Some(QUARANTINE));
        // Long gone and named again: a new quarantine.
        assert_eq!(
            missing.wait("n3", t0 + QUARANTINE * 2 + FORGET_AFTER),
            Some(QUARANTINE)
        );
    }
}
