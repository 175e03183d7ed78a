//! The scheduler's picture of the cluster: every node with what is bound to it,
//! kept up to date from the Node and Pod watch caches, plus the pods the
//! scheduler has placed but whose binding is not yet seen ("assumed", as
//! Kubernetes' scheduler cache calls them), so a batch never double-books a node.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Taint;
use serde_json::{Map, Value};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use super::requirements::{PodRequirements, Resources};

/// Taints Kubernetes puts on nodes that are not ready or unreachable.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// A Node object exists (a pod may name a node that is not registered).
    pub known: bool,
    pub labels: Map<String, Value>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// Sum of the requests of the pods bound here.
    pub requested: Resources,
    /// The same with default requests for pods that ask nothing (for scoring).
    pub nonzero_requested: Resources,
    /// The pods bound here, by uid.
    pub pods: HashMap<String, Arc<PodRequirements>>,
    /// How many pods of each controller (by its uid) are bound here.
    pub owner_counts: HashMap<String, u32>,
    /// How many of the pods here have required anti-affinity terms, so that
    /// checking a new pod against them skips the nodes that have none
    /// (kube-scheduler's `PodsWithRequiredAntiAffinity`): without it, every
    /// placement would look at every pod in the cluster.
    pub required_anti_affinity_pods: usize,
}

impl NodeInfo {
    fn placeholder(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            known: false,
            labels: Map::new(),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resources::default(),
            requested: Resources::default(),
            nonzero_requested: Resources::default(),
            pods: HashMap::new(),
            owner_counts: HashMap::new(),
            required_anti_affinity_pods: 0,
        }
    }

    fn add_pod(&mut self, pod: Arc<PodRequirements>) {
        self.requested.add(&pod.requests);
        self.nonzero_requested.add(&pod.nonzero);
        if !pod.anti_affinity_required.is_empty() {
            self.required_anti_affinity_pods += 1;
        }
        if let Some(owner) = &pod.owner {
            *self.owner_counts.entry(owner.clone()).or_insert(0) += 1;
        }
        if let Some(old) = self.pods.insert(pod.uid.clone(), pod) {
            self.forget(&old);
        }
    }

    fn remove_pod(&mut self, uid: &str) {
        if let Some(old) = self.pods.remove(uid) {
            self.forget(&old);
        }
    }

    fn forget(&mut self, pod: &PodRequirements) {
        self.requested.sub(&pod.requests);
        self.nonzero_requested.sub(&pod.nonzero);
        if !pod.anti_affinity_required.is_empty() {
            self.required_anti_affinity_pods = self.required_anti_affinity_pods.saturating_sub(1);
        }
        if let Some(owner) = &pod.owner
            && let Some(n) = self.owner_counts.get_mut(owner)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owner_counts.remove(owner);
            }
        }
    }
}

/// Every node, indexable by position (the order the scheduler walks them in).
#[derive(Debug, Default)]
pub struct ClusterState {
    nodes: Vec<NodeInfo>,
    by_name: HashMap<String, usize>,
    /// Bound (or assumed) pod uid -> node name.
    placement: HashMap<String, String>,
}

impl ClusterState {
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.by_name.get(name) {
            Some(&i) => i,
            None => {
                self.nodes.push(NodeInfo::placeholder(name));
                let i = self.nodes.len() - 1;
                self.by_name.insert(name.to_string(), i);
                i
            }
        };
        &mut self.nodes[i]
    }

    /// A Node was added or changed. Returns whether the change could let a
    /// waiting pod fit (new node, labels, taints, capacity, schedulability).
    pub fn upsert_node(&mut self, node: &Value) -> bool {
        let Some(name) = meta::name(node) else {
            return false;
        };
        let labels = meta::labels(node).cloned().unwrap_or_default();
        let mut taints: Vec<Taint> = node
            .at("/spec/taints")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        let unschedulable = node
            .at("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // A node that is not Ready is tainted at once, before the lifecycle
        // controller writes the taint (Kubernetes' TaintNodesByCondition).
        if !crate::gateway::nodes::is_ready(node)
            && !taints
                .iter()
                .any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
        {
            taints.push(Taint {
                key: TAINT_NOT_READY.into(),
                value: None,
                effect: "NoSchedule".into(),
                time_added: None,
            });
        }
        let allocatable = Resources::from_list(
            node.at("/status/allocatable")
                .or_else(|| node.at("/status/capacity")),
        );
        let info = self.entry(name);
        let changed = !info.known
            || info.unschedulable != unschedulable
            || info.allocatable != allocatable
            || info.labels != labels
            || info.taints != taints;
        info.known = true;
        info.labels = labels;
        info.taints = taints;
        info.unschedulable = unschedulable;
        info.allocatable = allocatable;
        changed
    }

    /// A Node was deleted: its pods stay recorded (they are still bound to it)
    /// but it takes no more.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(&i) = self.by_name.get(name) {
            let node = &mut self.nodes[i];
            if node.pods.is_empty() {
                self.nodes.swap_remove(i);
                self.by_name.remove(name);
                if let Some(moved) = self.nodes.get(i) {
                    self.by_name.insert(moved.name.clone(), i);
                }
            } else {
                *node = NodeInfo {
                    pods: std::mem::take(&mut node.pods),
                    owner_counts: std::mem::take(&mut node.owner_counts),
                    requested: node.requested,
                    nonzero_requested: node.nonzero_requested,
                    required_anti_affinity_pods: node.required_anti_affinity_pods,
                    ..NodeInfo::placeholder(name)
                };
            }
        }
    }

    /// A pod was added or changed: bound and not finished, it counts on its
    /// node; otherwise it counts nowhere. Returns whether room was freed.
    pub fn upsert_pod(&mut self, pod: &Value) -> bool {
        let node = pod
            .at("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let phase = pod
            .at("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let uid = meta::uid(pod).unwrap_or_default();
        if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
            return self.remove_pod(uid);
        }
        if self.placement.get(uid).is_some_and(|n| n == node) {
            return false; // Already counted (assumed, or seen before).
        }
        self.remove_pod(uid);
        self.assume(PodRequirements::of(pod), node);
        false
    }

    /// A pod is gone. Returns whether it was counted on a node.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(node) = self.placement.remove(uid) else {
            return false;
        };
        if let Some(&i) = self.by_name.get(&node) {
            self.nodes[i].remove_pod(uid);
            if !self.nodes[i].known && self.nodes[i].pods.is_empty() {
                self.remove_node(&node);
            }
        }
        true
    }

    /// Counts `pod` on `node` (a placement made, not yet confirmed by a watch).
    pub fn assume(&mut self, pod: Arc<PodRequirements>, node: &str) {
        self.placement.insert(pod.uid.clone(), node.to_string());
        self.entry(node).add_pod(pod);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(uid: &str, node: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": uid, "namespace": "default", "uid": uid},
               "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    #[test]
    fn bound_pods_count_once_and_finished_pods_not_at_all() {
        let mut state = ClusterState::default();
        state.upsert_node(&json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "2", "pods": "10"},
            "conditions": [{"type": "Ready", "status": "True"}]}}));
        state.upsert_pod(&pod("a", "n1", "500m"));
        state.upsert_pod(&pod("a", "n1", "500m"));
        assert_eq!(state.node("n1").map(|n| n.requested.milli_cpu), Some(500));
        let mut done = pod("a", "n1", "500m");
        done["status"] = json!({"phase": "Succeeded"});
        assert!(state.upsert_pod(&done), "a finished pod frees its room");
        assert_eq!(state.node("n1").map(|n| n.requested.milli_cpu), Some(0));
    }

    #[test]
    fn a_heartbeat_is_not_a_change_but_a_taint_is() {
        let mut state = ClusterState::default();
        let mut node = json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "2"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]}});
        assert!(state.upsert_node(&node));
        node["status"]["conditions"][0]["lastHeartbeatTime"] = json!("t2");
        assert!(!state.upsert_node(&node));
        node["spec"] = json!({"taints": [{"key": "k", "effect": "NoSchedule"}]});
        assert!(state.upsert_node(&node));
    }
}
