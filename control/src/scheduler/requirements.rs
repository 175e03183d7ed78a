//! What a pod asks of a node, read once from its JSON: resource requests,
//! node selector and affinity, tolerations, pod (anti-)affinity and topology
//! spread. Selectors are compiled here, so filtering and scoring only compare.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm, Taint,
    Toleration, TopologySpreadConstraint,
};
use serde_json::{Map, Value};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::quantity::Quantity;
use skiff_api::selector::LabelSelector;

/// The scheduler's name for pods that name none.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Requests counted for scoring when a container requests nothing, as
/// Kubernetes' `DefaultMilliCPURequest` / `DefaultMemoryRequest`.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

/// Amounts of the resources the scheduler packs by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub pods: i64,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
    }

    /// Reads a `ResourceList` (`{"cpu": "2", "memory": "4Gi", "pods": "110"}`).
    pub fn from_list(list: Option<&Value>) -> Resources {
        let q = |k: &str| {
            list.and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .and_then(|s| Quantity::parse(s).ok())
        };
        Resources {
            milli_cpu: q("cpu").map(Quantity::milli_value).unwrap_or(0),
            memory: q("memory").map(Quantity::value).unwrap_or(0),
            pods: q("pods").map(Quantity::value).unwrap_or(0),
        }
    }
}

/// A pod-affinity term with its selector compiled.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub selector: LabelSelector,
    /// Namespaces whose pods count; empty means the pod's own.
    pub namespaces: Vec<String>,
    pub topology_key: String,
    pub weight: i64,
}

impl AffinityTerm {
    /// Whether an existing pod is one this term is about.
    pub fn matches(
        &self,
        own_namespace: &str,
        pod_namespace: &str,
        labels: &Map<String, Value>,
    ) -> bool {
        let in_scope = if self.namespaces.is_empty() {
            pod_namespace == own_namespace
        } else {
            self.namespaces.iter().any(|n| n == pod_namespace)
        };
        in_scope && self.selector.matches(labels)
    }
}

/// A topology spread constraint with its selector compiled.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `DoNotSchedule` (a filter) or `ScheduleAnyway` (a score).
    pub hard: bool,
    pub selector: LabelSelector,
}

/// Everything the scheduler needs to know about a pod.
#[derive(Debug, Clone)]
pub struct PodRequirements {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Map<String, Value>,
    /// What it asks for (containers summed, the largest init container if more).
    pub requests: Resources,
    /// Requests with the defaults for containers that ask nothing (for scoring).
    pub nonzero: Resources,
    /// The controller owning it (its uid), which default spreading groups by.
    pub owner: Option<String>,
    pub node_selector: Map<String, Value>,
    pub required_node_terms: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_terms: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub affinity_required: Vec<AffinityTerm>,
    pub affinity_preferred: Vec<AffinityTerm>,
    pub anti_affinity_required: Vec<AffinityTerm>,
    pub anti_affinity_preferred: Vec<AffinityTerm>,
    pub spread: Vec<SpreadConstraint>,
}

impl PodRequirements {
    /// Reads a pod; an unreadable optional part is taken as absent (validation
    /// has already refused malformed pods at the API).
    pub fn of(pod: &Value) -> Arc<PodRequirements> {
        let spec = pod.get("spec");
        let field = |k: &str| spec.and_then(|s| s.get(k));
        let namespace = meta::namespace(pod).unwrap_or("default").to_string();
        let affinity: Option<Affinity> =
            field("affinity").and_then(|v| serde_json::from_value(v.clone()).ok());
        let node_affinity = affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        let pod_affinity = affinity.as_ref().and_then(|a| a.pod_affinity.as_ref());
        let anti = affinity.as_ref().and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<k8s_openapi::api::core::v1::PodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .filter_map(|t| compile_term(t, 1))
                .collect::<Vec<_>>()
        };
        let preferred =
            |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                terms
                    .into_iter()
                    .flatten()
                    .filter_map(|w| compile_term(&w.pod_affinity_term, i64::from(w.weight)))
                    .collect::<Vec<_>>()
            };
        let (requests, nonzero) = pod_requests(spec);
        Arc::new(PodRequirements {
            uid: meta::uid(pod).unwrap_or_default().to_string(),
            name: meta::name(pod).unwrap_or_default().to_string(),
            labels: meta::labels(pod).cloned().unwrap_or_default(),
            requests,
            nonzero,
            owner: controller_uid(pod),
            node_selector: field("nodeSelector")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            required_node_terms: node_affinity
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|s| s.node_selector_terms.clone()),
            preferred_node_terms: node_affinity
                .and_then(|n| {
                    n.preferred_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            tolerations: field("tolerations")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            affinity_required: required(pod_affinity.and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            affinity_preferred: preferred(pod_affinity.and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            anti_affinity_required: required(anti.and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            anti_affinity_preferred: preferred(anti.and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            spread: field("topologySpreadConstraints")
                .and_then(|v| {
                    serde_json::from_value::<Vec<TopologySpreadConstraint>>(v.clone()).ok()
                })
                .unwrap_or_default()
                .iter()
                .filter_map(compile_spread)
                .collect(),
            namespace,
        })
    }

    /// Whether a node's labels (and name) meet the node selector and the
    /// required node affinity.
    pub fn matches_node(&self, name: &str, labels: &Map<String, Value>) -> bool {
        let selector_ok = self
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        selector_ok
            && self
                .required_node_terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| term_matches(t, name, labels)))
    }

    /// The sum of the weights of preferred node-affinity terms a node meets.
    pub fn preferred_node_weight(&self, name: &str, labels: &Map<String, Value>) -> i64 {
        self.preferred_node_terms
            .iter()
            .filter(|p| term_matches(&p.preference, name, labels))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    /// Whether the pod tolerates `taint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerations.iter().any(|t| tolerates(t, taint))
    }
}

/// Whether `toleration` tolerates `taint`, as `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The uid of the pod's controller (`ownerReferences[controller=true]`).
pub fn controller_uid(obj: &Value) -> Option<String> {
    meta::owner_references(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A pod's requests: the sum over its containers, or the largest init container
/// when that asks for more (init containers run one at a time, before the rest).
fn pod_requests(spec: Option<&Value>) -> (Resources, Resources) {
    let containers = |k: &str| {
        spec.and_then(|s| s.get(k))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let of = |c: &Value| {
        let r = Resources::from_list(c.at("/resources/requests"));
        let nonzero = Resources {
            milli_cpu: if r.milli_cpu == 0 {
                DEFAULT_MILLI_CPU
            } else {
                r.milli_cpu
            },
            memory: if r.memory == 0 {
                DEFAULT_MEMORY
            } else {
                r.memory
            },
            pods: 0,
        };
        (r, nonzero)
    };
    let mut sum = Resources::default();
    let mut nonzero = Resources::default();
    for c in containers("containers") {
        let (r, n) = of(&c);
        sum.add(&r);
        nonzero.add(&n);
    }
    for c in containers("initContainers") {
        let (r, _) = of(&c);
        sum.milli_cpu = sum.milli_cpu.max(r.milli_cpu);
        sum.memory = sum.memory.max(r.memory);
    }
    sum.pods = 1;
    nonzero.pods = 1;
    (sum, nonzero)
}

fn compile_term(
    term: &k8s_openapi::api::core::v1::PodAffinityTerm,
    weight: i64,
) -> Option<AffinityTerm> {
    let selector = match &term.label_selector {
        Some(s) => LabelSelector::from_object(&serde_json::to_value(s).ok()?).ok()?,
        // No selector selects no pods.
        None => LabelSelector::nothing(),
    };
    Some(AffinityTerm {
        selector,
        namespaces: term.namespaces.clone().unwrap_or_default(),
        topology_key: term.topology_key.clone(),
        weight,
    })
}

fn compile_spread(c: &TopologySpreadConstraint) -> Option<SpreadConstraint> {
    let selector = match &c.label_selector {
        Some(s) => LabelSelector::from_object(&serde_json::to_value(s).ok()?).ok()?,
        None => LabelSelector::nothing(),
    };
    Some(SpreadConstraint {
        max_skew: i64::from(c.max_skew.max(1)),
        topology_key: c.topology_key.clone(),
        hard: c.when_unsatisfiable != "ScheduleAnyway",
        selector,
    })
}

/// A node selector term: every expression holds (`matchFields` on the name).
fn term_matches(term: &NodeSelectorTerm, name: &str, labels: &Map<String, Value>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false; // An empty term matches nothing, as in Kubernetes.
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).and_then(Value::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name);
            requirement_matches(r, value)
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|s| number(s))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|s| number(s))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_sum_containers_and_take_the_largest_init_container() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {
        "initContainers": [{"name": "i", "resources": {"requests": {"memory": "1Gi"}}}],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "1"}}}
        ]}});
        let r = PodRequirements::of(&pod);
        assert_eq!(
            r.requests,
            Resources {
                milli_cpu: 1250,
                memory: 1 << 30,
                pods: 1
            }
        );
        assert_eq!(r.nonzero.memory, (128 << 20) + DEFAULT_MEMORY);
    }

    #[test]
    fn node_affinity_operators() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                                  {"key": "cores", "operator": "Gt", "values": ["4"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
        ]}}}}});
        let r = PodRequirements::of(&pod);
        let labels = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(r.matches_node(
            "n",
            &labels(json!({"disk": "ssd", "zone": "a", "cores": "8"}))
        ));
        assert!(!r.matches_node(
            "n",
            &labels(json!({"disk": "ssd", "zone": "a", "cores": "4"}))
        ));
        assert!(!r.matches_node(
            "n",
            &labels(json!({"disk": "hdd", "zone": "a", "cores": "8"}))
        ));
        assert!(r.matches_node("special", &labels(json!({"disk": "ssd"}))));
    }

    #[test]
    fn tolerations_match_as_kubernetes() {
        let taint = |k: &str, v: &str, e: &str| Taint {
            key: k.into(),
            value: Some(v.into()),
            effect: e.into(),
            time_added: None,
        };
        let t = |v: Value| serde_json::from_value::<Toleration>(v).unwrap();
        assert!(tolerates(
            &t(json!({"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"})),
            &taint("gpu", "yes", "NoSchedule")
        ));
        assert!(!tolerates(
            &t(json!({"key": "gpu", "value": "no"})),
            &taint("gpu", "yes", "NoSchedule")
        ));
        assert!(tolerates(
            &t(json!({"key": "gpu", "operator": "Exists"})),
            &taint("gpu", "yes", "NoExecute")
        ));
        assert!(!tolerates(
            &t(json!({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})),
            &taint("gpu", "yes", "NoExecute")
        ));
        assert!(tolerates(
            &t(json!({"operator": "Exists"})),
            &taint("anything", "", "NoExecute")
        ));
    }
}
