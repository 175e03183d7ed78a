//! The node lifecycle controller: a node that has not been heard from for the
//! grace period gets `Ready=Unknown` (Kubernetes' `node-monitor-grace-period`;
//! `kubectl get nodes` shows it `NotReady`). The gateway marks it `Ready` again
//! when it reconnects. Evicting the pods of a lost node comes with the scheduler.

use std::time::{Duration, Instant};

use skiff_api::meta;
use skiff_api::resource::by_kind;

use crate::gateway::NodeLiveness;
use crate::gateway::nodes::{is_ready, mark_unknown};
use crate::registry::Registry;

/// How often nodes are checked.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Runs until the process ends.
pub async fn run(registry: Registry, liveness: NodeLiveness, grace: Duration) {
    let Some(node_type) = by_kind("v1", "Node") else {
        return;
    };
    // Nodes known from before this control plane started get the grace period
    // from now to reconnect.
    let started = Instant::now();
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let page = match registry.list(node_type, None, None, None, &|n| is_ready(n)) {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "node lifecycle: list nodes");
                continue;
            }
        };
        for node in page.items {
            let Some(name) = meta::name(&node) else {
                continue;
            };
            let silent_for = match liveness.get(name) {
                Some(l) => l.last_seen.elapsed(),
                None => started.elapsed(),
            };
            if silent_for <= grace {
                continue;
            }
            match mark_unknown(&registry, name).await {
                Ok(true) => {
                    tracing::warn!(node = name, silent_for = ?silent_for, "node stopped posting status; marked NotReady")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(node = name, error = %e, "node lifecycle: mark NotReady"),
            }
        }
    }
}
