//! Which nodes a DaemonSet runs on, and the pod it puts there, as Kubernetes'
//! daemon controller decides (`NodeShouldRunDaemonPod`, `NewPod`,
//! `AddOrUpdateDaemonPodTolerations`, `ReplaceDaemonSetPodNodeNameNodeAffinity`).
//!
//! A node is judged by the template's `nodeName`, `nodeSelector` and required
//! node affinity, and by its taints against the template's tolerations plus the
//! ones every daemon pod gets. Node selection and toleration matching are the
//! scheduler's own predicates, so the controller and the scheduler never
//! disagree about a node.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Taint;
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use crate::scheduler::requirements::PodRequirements;

/// The label carrying the hash of the template a daemon pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// The node field a daemon pod's node affinity names its node by.
const NAME_FIELD: &str = "metadata.name";

/// What a node means for a DaemonSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFit {
    /// A daemon pod should be there (created when missing).
    pub should_run: bool,
    /// A daemon pod already there may stay (a NoSchedule taint keeps new pods
    /// off but does not evict; NoExecute does).
    pub should_continue: bool,
}

impl NodeFit {
    pub const RUN: NodeFit = NodeFit {
        should_run: true,
        should_continue: true,
    };
    pub const NEVER: NodeFit = NodeFit {
        should_run: false,
        should_continue: false,
    };
}

/// A DaemonSet's node requirements, read once per reconcile.
pub struct Eligibility {
    requirements: Arc<PodRequirements>,
    /// The template's `spec.nodeName`, if it pins one.
    node_name: Option<String>,
}

impl Eligibility {
    /// Reads the DaemonSet's template as the pod it would create (with the
    /// daemon tolerations).
    pub fn of(ds: &DaemonSet) -> Eligibility {
        let template = ds.spec.as_ref().map(|s| &s.template);
        let pod_spec = template.and_then(|t| t.spec.as_ref());
        let mut spec = pod_spec
            .and_then(|s| serde_json::to_value(s).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        add_daemon_tolerations(&mut spec);
        let labels = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.as_ref());
        let namespace = match ds.metadata.namespace.as_deref() {
            None | Some("") => "default",
            Some(ns) => ns,
        };
        let pod = json!({
            "metadata": {"namespace": namespace, "labels": labels},
            "spec": spec,
        });
        let node_name = pod_spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        Eligibility {
            requirements: PodRequirements::of(&pod),
            node_name,
        }
    }

    /// Whether `node` should run the pod, and whether one there may stay.
    pub fn check(&self, node: &Value) -> NodeFit {
        let name = meta::name(node).unwrap_or_default();
        if self.node_name.as_deref().is_some_and(|n| n != name) {
            return NodeFit::NEVER;
        }
        let labels = meta::labels(node).cloned().unwrap_or_default();
        if !self.requirements.matches_node(name, &labels) {
            return NodeFit::NEVER;
        }
        let taints = node_taints(node);
        let untolerated = |effects: &[&str]| {
            taints
                .iter()
                .any(|t| effects.contains(&t.effect.as_str()) && !self.requirements.tolerates(t))
        };
        if untolerated(&["NoSchedule", "NoExecute"]) {
            return NodeFit {
                should_run: false,
                should_continue: !untolerated(&["NoExecute"]),
            };
        }
        NodeFit::RUN
    }
}

/// The node's `spec.taints` (what Kubernetes' daemon controller reads; the
/// node lifecycle controller turns conditions into taints there).
fn node_taints(node: &Value) -> Vec<Taint> {
    node.at("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| serde_json::from_value(t.clone()).ok())
        .collect()
}

/// Adds the tolerations Kubernetes gives every daemon pod: it stays on a node
/// that is not ready or unreachable (no `tolerationSeconds`), and it may go
/// where pressure or a cordon keeps other pods away.
pub fn add_daemon_tolerations(spec: &mut Value) {
    let no_execute = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ];
    let no_schedule = [
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ];
    let mut wanted: Vec<Value> = no_execute
        .iter()
        .map(|k| json!({"key": k, "operator": "Exists", "effect": "NoExecute"}))
        .chain(
            no_schedule
                .iter()
                .map(|k| json!({"key": k, "operator": "Exists", "effect": "NoSchedule"})),
        )
        .collect();
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        wanted.push(json!({"key": "node.kubernetes.io/network-unavailable",
            "operator": "Exists", "effect": "NoSchedule"}));
    }
    if !spec.is_object() {
        *spec = json!({});
    }
    let mut list: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for toleration in wanted {
        add_or_update_toleration(&mut list, toleration);
    }
    spec["tolerations"] = Value::Array(list);
}

/// `AddOrUpdateTolerationInPodSpec`: a toleration for the same key, operator,
/// value and effect is replaced (so a user's `tolerationSeconds` on it goes);
/// otherwise it is appended.
fn add_or_update_toleration(list: &mut Vec<Value>, toleration: Value) {
    let field = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let operator = |t: &Value| match field(t, "operator").as_str() {
        "" => "Equal".to_string(),
        other => other.to_string(),
    };
    let same = |t: &Value| {
        field(t, "key") == field(&toleration, "key")
            && field(t, "effect") == field(&toleration, "effect")
            && operator(t) == operator(&toleration)
            && field(t, "value") == field(&toleration, "value")
    };
    match list.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => list.push(toleration),
    }
}

/// The pod template for `node`: the DaemonSet's, with the daemon tolerations,
/// the template hash label, and a required node affinity naming the node
/// (`matchFields metadata.name In [node]`), which replaces any required node
/// terms of the template: the controller has already checked them, and the
/// scheduler now only has to place the pod on that one node.
pub fn pod_template(template: &Value, node: &str, hash: &str) -> Value {
    let mut t = template.clone();
    if !t.is_object() {
        t = json!({});
    }
    if !t.get("spec").is_some_and(Value::is_object) {
        t["spec"] = json!({});
    }
    add_daemon_tolerations(&mut t["spec"]);
    let term = json!({"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node]}]});
    let spec = &mut t["spec"];
    if !spec.get("affinity").is_some_and(Value::is_object) {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]
        .get("nodeAffinity")
        .is_some_and(Value::is_object)
    {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    let node_affinity = &mut spec["affinity"]["nodeAffinity"];
    if !node_affinity
        .get("requiredDuringSchedulingIgnoredDuringExecution")
        .is_some_and(Value::is_object)
    {
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = json!({});
    }
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] =
        json!([term]);
    if !t.get("metadata").is_some_and(Value::is_object) {
        t["metadata"] = json!({});
    }
    if !t["metadata"].get("labels").is_some_and(Value::is_object) {
        t["metadata"]["labels"] = json!({});
    }
    t["metadata"]["labels"][REVISION_HASH] = json!(hash);
    t
}

/// The node a daemon pod runs on, or the one its node affinity names while it
/// waits for the scheduler (`GetTargetNodeName`).
pub fn target_node(pod: &Value) -> Option<&str> {
    if let Some(node) = pod
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(node);
    }
    let terms = pod
        .at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    terms.iter().find_map(|term| {
        term.get("matchFields")?.as_array()?.iter().find_map(|r| {
            let values = r.get("values")?.as_array()?;
            (r.get("key")?.as_str()? == NAME_FIELD
                && r.get("operator")?.as_str()? == "In"
                && values.len() == 1)
                .then(|| values[0].as_str())
                .flatten()
        })
    })
}

/// Whether a pod was made from the template with `hash`.
pub fn is_updated(pod: &Value, hash: &str) -> bool {
    !hash.is_empty()
        && meta::labels(pod)
            .and_then(|l| l.get(REVISION_HASH))
            .and_then(Value::as_str)
            == Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(mut spec: Value) -> DaemonSet {
        if spec.get("containers").is_none() {
            spec["containers"] = json!([]);
        }
        serde_json::from_value(json!({"metadata": {"name": "agent", "namespace": "default"},
               "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}}))
        .unwrap()
    }

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn the_node_selector_and_required_affinity_choose_nodes() {
        let e = Eligibility::of(&ds(json!({
            "nodeSelector": {"agents": "yes"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "NotIn", "values": ["z9"]}]}]}}},
            "containers": [{"name": "main", "image": "hello:v1"}]
        })));
        assert_eq!(
            e.check(&node("a", json!({"agents": "yes"}), json!([]))),
            NodeFit::RUN
        );
        assert_eq!(
            e.check(&node("b", json!({"agents": "no"}), json!([]))),
            NodeFit::NEVER
        );
        assert_eq!(
            e.check(&node(
                "c",
                json!({"agents": "yes", "zone": "z9"}),
                json!([])
            )),
            NodeFit::NEVER
        );
        let pinned = Eligibility::of(&ds(json!({"nodeName": "a"})));
        assert_eq!(pinned.check(&node("a", json!({}), json!([]))), NodeFit::RUN);
        assert_eq!(
            pinned.check(&node("b", json!({}), json!([]))),
            NodeFit::NEVER
        );
    }

    #[test]
    fn no_schedule_keeps_new_pods_off_and_no_execute_evicts() {
        let e = Eligibility::of(&ds(json!({})));
        let no_schedule = node(
            "a",
            json!({}),
            json!([{"key": "maint", "value": "true", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            e.check(&no_schedule),
            NodeFit {
                should_run: false,
                should_continue: true
            }
        );
        let no_execute = node(
            "a",
            json!({}),
            json!([{"key": "maint", "value": "true", "effect": "NoExecute"}]),
        );
        assert_eq!(e.check(&no_execute), NodeFit::NEVER);
        let prefer = node(
            "a",
            json!({}),
            json!([{"key": "maint", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(e.check(&prefer), NodeFit::RUN);
        let tolerant = Eligibility::of(&ds(json!({"tolerations": [
            {"key": "maint", "operator": "Exists"}]})));
        assert_eq!(tolerant.check(&no_execute), NodeFit::RUN);
    }

    #[test]
    fn daemon_pods_tolerate_lost_cordoned_and_pressured_nodes_but_not_a_not_ready_one() {
        let e = Eligibility::of(&ds(json!({})));
        let taint =
            |k: &str, effect: &str| node("a", json!({}), json!([{"key": k, "effect": effect}]));
        for (key, effect) in [
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ] {
            assert_eq!(e.check(&taint(key, effect)), NodeFit::RUN, "{key}:{effect}");
        }
        // As on Kubernetes: a lost node takes no new daemon pod, but keeps its own.
        let lost = taint("node.kubernetes.io/unreachable", "NoSchedule");
        assert_eq!(
            e.check(&lost),
            NodeFit {
                should_run: false,
                should_continue: true
            }
        );
    }

    #[test]
    fn a_users_toleration_of_the_same_taint_is_replaced_and_others_are_kept() {
        let mut spec = json!({"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
            {"key": "gpu", "operator": "Exists"}]});
        add_daemon_tolerations(&mut spec);
        let list = spec["tolerations"].as_array().cloned().unwrap_or_default();
        assert_eq!(list.len(), 7);
        assert!(list.iter().all(|t| t.get("tolerationSeconds").is_none()));
        assert!(list.iter().any(|t| t["key"] == "gpu"));
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(7));
    }

    #[test]
    fn the_pod_names_its_node_by_match_fields_and_the_scheduler_reads_it() {
        let template = json!({"metadata": {"labels": {"app": "agent"}}, "spec": {
            "containers": [{"name": "main", "image": "hello:v1"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": []}}}});
        let t = pod_template(&template, "n2", "abc");
        assert_eq!(
            t.at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"),
            Some(&json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]))
        );
        assert_eq!(t["metadata"]["labels"][REVISION_HASH], "abc");
        assert_eq!(t["metadata"]["labels"]["app"], "agent");
        let pod = json!({"metadata": {"name": "p", "namespace": "default", "labels": t["metadata"]["labels"]},
            "spec": t["spec"]});
        assert_eq!(target_node(&pod), Some("n2"));
        assert!(is_updated(&pod, "abc"));
        assert!(!is_updated(&pod, "abd"));
        let requirements = PodRequirements::of(&pod);
        let labels = serde_json::Map::new();
        assert!(requirements.matches_node("n2", &labels));
        assert!(!requirements.matches_node("n1", &labels));
        let mut bound = pod.clone();
        bound["spec"]["nodeName"] = json!("n3");
        assert_eq!(target_node(&bound), Some("n3"));
    }
}
