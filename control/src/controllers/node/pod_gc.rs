//! The pod garbage collector, as Kubernetes' (`pkg/controller/podgc`) for
//! orphaned pods: a pod bound to a node that no longer exists is deleted at
//! once (grace period 0). No node will ever stop it and confirm its end, so a
//! graceful delete would leave it Terminating forever, and its controller
//! (a DaemonSet, a ReplicaSet) would count it.
//!
//! A node is taken as gone only when it has been missing from the cache for a
//! while and the store confirms it, so neither a lagging cache nor a pod
//! bound just before its node registers loses a pod.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::Reason;
use tokio::time::Instant;

use crate::informer::Informer;
use crate::registry::{DeleteOptions, Registry};

/// How often bound pods are checked against the nodes.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a node must be missing before its pods go. Kubernetes waits 40 s,
/// mostly against a lagging cache; Skiff asks the store itself before
/// deleting, so this only has to cover a node registering right after a pod
/// that names it.
const QUARANTINE: Duration = Duration::from_secs(3);

/// Runs until the process ends.
pub async fn run(registry: Registry, nodes: Informer, pods: Informer) {
    nodes.synced().await;
    pods.synced().await;
    let mut missing = MissingNodes::default();
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let known: HashSet<String> = nodes
            .list(None, |_| true)
            .iter()
            .filter_map(|n| meta::name(n).map(str::to_string))
            .collect();
        let orphans = pods.list(None, |p| node_of(p).is_some_and(|n| !known.contains(n)));
        let named: HashSet<&str> = orphans.iter().filter_map(|p| node_of(p)).collect();
        let due = missing.update(&named, Instant::now());
        for node in due {
            if node_exists(&registry, &node) {
                missing.forget(&node);
                continue;
            }
            for pod in orphans.iter().filter(|p| node_of(p) == Some(node.as_str())) {
                force_delete(&registry, pod).await;
            }
        }
    }
}

fn node_of(pod: &Value) -> Option<&str> {
    pod.at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
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
    /// Records the nodes missing now (forgetting the others) and returns the
    /// ones missing for at least the quarantine.
    fn update(&mut self, missing: &HashSet<&str>, now: Instant) -> Vec<String> {
        self.since.retain(|n, _| missing.contains(n.as_str()));
        for node in missing {
            self.since.entry((*node).to_string()).or_insert(now);
        }
        let mut due: Vec<String> = self
            .since
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= QUARANTINE)
            .map(|(n, _)| n.clone())
            .collect();
        due.sort();
        due
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
        let gone: HashSet<&str> = ["n3"].into();
        assert!(missing.update(&gone, t0).is_empty());
        assert!(missing.update(&gone, t0 + QUARANTINE / 2).is_empty());
        assert_eq!(missing.update(&gone, t0 + QUARANTINE), vec!["n3"]);
        // It came back (or its pods went): the clock starts over next time.
        assert!(missing.update(&HashSet::new(), t0 + QUARANTINE).is_empty());
        assert!(missing.update(&gone, t0 + QUARANTINE * 2).is_empty());
    }
}
