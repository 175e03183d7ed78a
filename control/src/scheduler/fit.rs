//! The scheduling decision, a pure function over the cluster state: filter the
//! nodes a pod may run on, score the ones that pass, pick the best (ties broken
//! round-robin, so replicas spread), or say per reason why no node fits, in
//! Kubernetes' words ("0/3 nodes are available: 2 Insufficient memory, ...").
//!
//! Filters and scores follow kube-scheduler's default plugins: NodeUnschedulable,
//! NodeAffinity, TaintToleration, NodeResourcesFit, InterPodAffinity and
//! PodTopologySpread as filters; NodeResourcesFit (least allocated),
//! NodeResourcesBalancedAllocation, NodeAffinity, TaintToleration,
//! InterPodAffinity and PodTopologySpread (with default spreading of a
//! controller's pods over nodes) as scores, with the same weights. Like it, only
//! enough feasible nodes are scored in a large cluster
//! (`percentageOfNodesToScore`), starting where the last pod's search stopped.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::cluster::{ClusterState, NodeInfo, TAINT_UNSCHEDULABLE};
use super::requirements::{AffinityTerm, PodRequirements};

/// Why a node was filtered out, as kube-scheduler words it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unfit {
    Unschedulable,
    NodeAffinity,
    Taint(String),
    InsufficientCpu,
    InsufficientMemory,
    TooManyPods,
    PodAffinity,
    PodAntiAffinity,
    ExistingAntiAffinity,
    TopologySpread,
}

impl Unfit {
    pub fn message(&self) -> String {
        match self {
            Unfit::Unschedulable => "node(s) were unschedulable".into(),
            Unfit::NodeAffinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Unfit::Taint(t) => format!("node(s) had untolerated taint {t}"),
            Unfit::InsufficientCpu => "Insufficient cpu".into(),
            Unfit::InsufficientMemory => "Insufficient memory".into(),
            Unfit::TooManyPods => "Too many pods".into(),
            Unfit::PodAffinity => "node(s) didn't match pod affinity rules".into(),
            Unfit::PodAntiAffinity => "node(s) didn't match pod anti-affinity rules".into(),
            Unfit::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules".into()
            }
            Unfit::TopologySpread => "node(s) didn't match pod topology spread constraints".into(),
        }
    }
}

/// No node fits: how many nodes were looked at, and how many failed for each reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl std::fmt::Display for FitError {
    /// `0/3 nodes are available: 1 Insufficient memory, 2 node(s) had untolerated taint {k: v}.`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.nodes,
            parts.join(", ")
        )
    }
}

/// Where the scheduler is in its walk over the nodes, carried from pod to pod.
#[derive(Debug, Default)]
pub struct Cursor {
    next_start: usize,
    ties: usize,
}

/// Score weights of kube-scheduler's default profile.
const WEIGHT_RESOURCES: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_TAINTS: i64 = 3;
const WEIGHT_POD_AFFINITY: i64 = 2;
const WEIGHT_SPREAD: i64 = 2;
const MAX_SCORE: i64 = 100;

/// How many feasible nodes to find before scoring, as kube-scheduler's
/// adaptive `percentageOfNodesToScore`: every node below 100, else 50% less
/// 1% per 125 nodes, never below 5% nor 100 nodes.
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let percentage = (50 - (all / 125) as i64).max(5) as usize;
    (all * percentage / 100).max(100)
}

/// Picks the node for `pod`, or says why none fits.
pub fn schedule(
    state: &ClusterState,
    pod: &PodRequirements,
    cursor: &mut Cursor,
) -> Result<usize, FitError> {
    let nodes = state.nodes();
    let known = nodes.iter().filter(|n| n.known).count();
    let context = PodContext::new(state, pod);
    let want = feasible_nodes_to_find(known);
    let mut feasible: Vec<usize> = Vec::with_capacity(want.min(nodes.len()));
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let len = nodes.len();
    let start = if len == 0 { 0 } else { cursor.next_start % len };
    let mut visited = 0;
    for step in 0..len {
        let i = (start + step) % len;
        visited = step + 1;
        let node = &nodes[i];
        if !node.known {
            continue;
        }
        let unfit = filter(node, pod, &context);
        if unfit.is_empty() {
            feasible.push(i);
            if feasible.len() >= want {
                break;
            }
        } else {
            for u in unfit {
                *reasons.entry(u.message()).or_insert(0) += 1;
            }
        }
    }
    cursor.next_start = start + visited;
    if feasible.is_empty() {
        return Err(FitError {
            nodes: known,
            reasons,
        });
    }
    if feasible.len() == 1 {
        return Ok(feasible[0]);
    }
    let scores = score(nodes, &feasible, pod, &context);
    let best = scores.iter().copied().max().unwrap_or(0);
    let ties: Vec<usize> = feasible
        .iter()
        .zip(&scores)
        .filter(|(_, s)| **s == best)
        .map(|(i, _)| *i)
        .collect();
    cursor.ties = cursor.ties.wrapping_add(1);
    Ok(ties[cursor.ties % ties.len()])
}

/// What is computed once per pod, not per node: pods in each topology domain
/// that the pod's (anti-)affinity and spread constraints count.
struct PodContext {
    /// Per required affinity term: topology value -> whether a matching pod runs there.
    affinity_domains: Vec<HashMap<String, usize>>,
    /// Whether any pod anywhere matches each required affinity term.
    affinity_any: Vec<bool>,
    /// Per required anti-affinity term: topology value -> matching pods there.
    anti_domains: Vec<HashMap<String, usize>>,
    /// Topology values (key, value) where an existing pod's required
    /// anti-affinity forbids this pod.
    forbidden: Vec<(String, String)>,
    /// Per spread constraint: domain -> matching pods, and the smallest count.
    spread: Vec<(HashMap<String, i64>, i64)>,
    /// Per preferred term (affinity positive, anti negative): domain -> weight.
    preferred: Vec<(String, HashMap<String, i64>)>,
}

impl PodContext {
    fn new(state: &ClusterState, pod: &PodRequirements) -> PodContext {
        let count_domains = |term: &AffinityTerm| {
            let mut domains: HashMap<String, usize> = HashMap::new();
            for node in state.nodes() {
                let Some(value) = label(node, &term.topology_key) else {
                    continue;
                };
                let n = node
                    .pods
                    .values()
                    .filter(|p| term.matches(&pod.namespace, &p.namespace, &p.labels))
                    .count();
                if n > 0 {
                    *domains.entry(value.to_string()).or_insert(0) += n;
                }
            }
            domains
        };
        let affinity_domains: Vec<_> = pod.affinity_required.iter().map(count_domains).collect();
        let affinity_any = affinity_domains.iter().map(|d| !d.is_empty()).collect();
        let anti_domains = pod
            .anti_affinity_required
            .iter()
            .map(count_domains)
            .collect();
        let mut forbidden = Vec::new();
        for node in state.nodes() {
            if node.required_anti_affinity_pods == 0 {
                continue;
            }
            for existing in node.pods.values() {
                for term in &existing.anti_affinity_required {
                    if term.matches(&existing.namespace, &pod.namespace, &pod.labels)
                        && let Some(value) = label(node, &term.topology_key)
                    {
                        forbidden.push((term.topology_key.clone(), value.to_string()));
                    }
                }
            }
        }
        let spread = pod
            .spread
            .iter()
            .map(|c| {
                let mut domains: HashMap<String, i64> = HashMap::new();
                for node in state.nodes() {
                    if !node.known || !pod.matches_node(&node.name, &node.labels) {
                        continue;
                    }
                    let Some(value) = label(node, &c.topology_key) else {
                        continue;
                    };
                    let n = node
                        .pods
                        .values()
                        .filter(|p| p.namespace == pod.namespace && c.selector.matches(&p.labels))
                        .count() as i64;
                    *domains.entry(value.to_string()).or_insert(0) += n;
                }
                let min = domains.values().copied().min().unwrap_or(0);
                (domains, min)
            })
            .collect();
        let weighted = |term: &AffinityTerm, sign: i64| {
            let domains = count_domains(term)
                .into_iter()
                .map(|(k, n)| (k, sign * term.weight * n as i64))
                .collect();
            (term.topology_key.clone(), domains)
        };
        let preferred = pod
            .affinity_preferred
            .iter()
            .map(|t| weighted(t, 1))
            .chain(pod.anti_affinity_preferred.iter().map(|t| weighted(t, -1)))
            .collect();
        PodContext {
            affinity_domains,
            affinity_any,
            anti_domains,
            forbidden,
            spread,
            preferred,
        }
    }
}

fn label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    node.labels.get(key).and_then(Value::as_str)
}

/// Every reason `node` cannot take `pod` (empty: it can).
fn filter(node: &NodeInfo, pod: &PodRequirements, ctx: &PodContext) -> Vec<Unfit> {
    let mut unfit = Vec::new();
    if node.unschedulable
        && !pod.tolerations.iter().any(|t| {
            t.key.as_deref() == Some(TAINT_UNSCHEDULABLE) && t.operator.as_deref() == Some("Exists")
        })
    {
        unfit.push(Unfit::Unschedulable);
        return unfit;
    }
    if !pod.matches_node(&node.name, &node.labels) {
        unfit.push(Unfit::NodeAffinity);
        return unfit;
    }
    if let Some(taint) = node
        .taints
        .iter()
        .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !pod.tolerates(t))
    {
        let value = taint.value.as_deref().unwrap_or("");
        unfit.push(Unfit::Taint(format!("{{{}: {}}}", taint.key, value)));
        return unfit;
    }
    let free = |alloc: i64, used: i64| alloc - used;
    if pod.requests.pods > free(node.allocatable.pods, node.requested.pods) {
        unfit.push(Unfit::TooManyPods);
    }
    if pod.requests.milli_cpu > 0
        && pod.requests.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu)
    {
        unfit.push(Unfit::InsufficientCpu);
    }
    if pod.requests.memory > 0
        && pod.requests.memory > free(node.allocatable.memory, node.requested.memory)
    {
        unfit.push(Unfit::InsufficientMemory);
    }
    if !unfit.is_empty() {
        return unfit;
    }
    // Required pod affinity: a matching pod in the node's domain, unless no pod
    // matches anywhere and the pod matches its own term (the first of a group).
    for (i, term) in pod.affinity_required.iter().enumerate() {
        let present = label(node, &term.topology_key)
            .is_some_and(|v| ctx.affinity_domains[i].contains_key(v));
        let first_of_group =
            !ctx.affinity_any[i] && term.matches(&pod.namespace, &pod.namespace, &pod.labels);
        if !present && !first_of_group {
            unfit.push(Unfit::PodAffinity);
            return unfit;
        }
    }
    for (i, term) in pod.anti_affinity_required.iter().enumerate() {
        if label(node, &term.topology_key).is_some_and(|v| ctx.anti_domains[i].contains_key(v)) {
            unfit.push(Unfit::PodAntiAffinity);
            return unfit;
        }
    }
    if ctx
        .forbidden
        .iter()
        .any(|(key, value)| label(node, key) == Some(value.as_str()))
    {
        unfit.push(Unfit::ExistingAntiAffinity);
        return unfit;
    }
    for (c, (domains, min)) in pod.spread.iter().zip(&ctx.spread) {
        if !c.hard {
            continue;
        }
        let Some(value) = label(node, &c.topology_key) else {
            unfit.push(Unfit::TopologySpread);
            return unfit;
        };
        let own = i64::from(c.selector.matches(&pod.labels));
        let here = domains.get(value).copied().unwrap_or(0);
        if here + own - min > c.max_skew {
            unfit.push(Unfit::TopologySpread);
            return unfit;
        }
    }
    unfit
}

/// The weighted total score of each feasible node, in `feasible`'s order.
fn score(
    nodes: &[NodeInfo],
    feasible: &[usize],
    pod: &PodRequirements,
    ctx: &PodContext,
) -> Vec<i64> {
    let candidates: Vec<&NodeInfo> = feasible.iter().map(|&i| &nodes[i]).collect();
    let mut total = vec![0i64; candidates.len()];
    let mut add = |weight: i64, scores: Vec<i64>| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += weight * s;
        }
    };
    add(
        WEIGHT_RESOURCES,
        candidates.iter().map(|n| least_allocated(n, pod)).collect(),
    );
    add(
        WEIGHT_BALANCED,
        candidates.iter().map(|n| balanced(n, pod)).collect(),
    );
    if !pod.preferred_node_terms.is_empty() {
        add(
            WEIGHT_NODE_AFFINITY,
            normalize(
                candidates
                    .iter()
                    .map(|n| pod.preferred_node_weight(&n.name, &n.labels))
                    .collect(),
                false,
            ),
        );
    }
    let prefer_no_schedule: Vec<i64> = candidates
        .iter()
        .map(|n| {
            n.taints
                .iter()
                .filter(|t| t.effect == "PreferNoSchedule" && !pod.tolerates(t))
                .count() as i64
        })
        .collect();
    if prefer_no_schedule.iter().any(|&c| c > 0) {
        add(WEIGHT_TAINTS, normalize(prefer_no_schedule, true));
    } else {
        add(WEIGHT_TAINTS, vec![MAX_SCORE; candidates.len()]);
    }
    if !ctx.preferred.is_empty() {
        let raw = candidates
            .iter()
            .map(|n| {
                ctx.preferred
                    .iter()
                    .map(|(key, domains)| {
                        label(n, key)
                            .and_then(|v| domains.get(v))
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum()
            })
            .collect();
        add(WEIGHT_POD_AFFINITY, normalize(raw, false));
    }
    // Spreading: the soft constraints, or by default the pod's siblings (same
    // controller) over nodes. Fewer already there scores higher.
    let soft: Vec<_> = pod
        .spread
        .iter()
        .zip(&ctx.spread)
        .filter(|(c, _)| !c.hard)
        .collect();
    let crowding: Vec<i64> = if !soft.is_empty() {
        candidates
            .iter()
            .map(|n| {
                soft.iter()
                    .map(|(c, (domains, _))| {
                        label(n, &c.topology_key)
                            .and_then(|v| domains.get(v))
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum()
            })
            .collect()
    } else if let Some(owner) = &pod.owner {
        candidates
            .iter()
            .map(|n| i64::from(n.owner_counts.get(owner).copied().unwrap_or(0)))
            .collect()
    } else {
        Vec::new()
    };
    if !crowding.is_empty() {
        add(WEIGHT_SPREAD, normalize(crowding, true));
    }
    total
}

/// Maps raw values onto 0..=100 by their range (lower is better when `invert`).
fn normalize(raw: Vec<i64>, invert: bool) -> Vec<i64> {
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    if max == min {
        return vec![MAX_SCORE; raw.len()];
    }
    raw.into_iter()
        .map(|v| {
            let s = (v - min) * MAX_SCORE / (max - min);
            if invert { MAX_SCORE - s } else { s }
        })
        .collect()
}

/// NodeResourcesFit's LeastAllocated: the share of cpu and memory left free
/// once the pod is placed.
fn least_allocated(node: &NodeInfo, pod: &PodRequirements) -> i64 {
    let part = |alloc: i64, used: i64| {
        if alloc <= 0 {
            return 0;
        }
        ((alloc - used).max(0) * MAX_SCORE) / alloc
    };
    let cpu = part(
        node.allocatable.milli_cpu,
        node.nonzero_requested.milli_cpu + pod.nonzero.milli_cpu,
    );
    let memory = part(
        node.allocatable.memory,
        node.nonzero_requested.memory + pod.nonzero.memory,
    );
    (cpu + memory) / 2
}

/// NodeResourcesBalancedAllocation: cpu and memory used in like proportion.
fn balanced(node: &NodeInfo, pod: &PodRequirements) -> i64 {
    let fraction = |alloc: i64, used: i64| {
        if alloc <= 0 {
            1.0
        } else {
            (used as f64 / alloc as f64).min(1.0)
        }
    };
    let cpu = fraction(
        node.allocatable.milli_cpu,
        node.nonzero_requested.milli_cpu + pod.nonzero.milli_cpu,
    );
    let memory = fraction(
        node.allocatable.memory,
        node.nonzero_requested.memory + pod.nonzero.memory,
    );
    // Two resources: the standard deviation is half their difference.
    let deviation = (cpu - memory).abs() / 2.0;
    ((1.0 - deviation) * MAX_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn node(name: &str, cpu: &str, memory: &str, extra: Value) -> Value {
        let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        skiff_api::patch::merge_patch(&mut n, &extra);
        n
    }

    fn pod(name: &str, spec: Value) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": "hello:v1"}]}});
        skiff_api::patch::merge_patch(&mut p, &json!({"spec": spec}));
        p
    }

    fn cluster(nodes: &[Value]) -> ClusterState {
        let mut state = ClusterState::default();
        for n in nodes {
            state.upsert_node(n);
        }
        state
    }

    /// Schedules `p` and records the placement, as the scheduler does.
    fn place(state: &mut ClusterState, cursor: &mut Cursor, p: &Value) -> Result<String, FitError> {
        let req = PodRequirements::of(p);
        let i = schedule(state, &req, cursor)?;
        let name = state.nodes()[i].name.clone();
        state.assume(req, &name);
        Ok(name)
    }

    fn requests(memory: &str) -> Value {
        json!({"containers": [{"name": "c", "image": "hello:v1", "resources": {"requests": {"memory": memory}}}]})
    }

    #[test]
    fn replicas_of_one_controller_spread_over_nodes() {
        let mut state = cluster(&[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
            node("c", "4", "8Gi", json!({})),
        ]);
        let mut cursor = Cursor::default();
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..6 {
            let mut p = pod(&format!("web-{i}"), json!({}));
            p["metadata"]["ownerReferences"] =
                json!([{"uid": "rs-1", "controller": true, "kind": "ReplicaSet", "name": "web"}]);
            *per_node
                .entry(place(&mut state, &mut cursor, &p).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2],
            "{per_node:?}"
        );
    }

    #[test]
    fn a_pod_that_fits_nowhere_says_why_per_node_group() {
        let mut state = cluster(&[
            node("a", "4", "1Gi", json!({})),
            node("b", "4", "1Gi", json!({})),
            node(
                "c",
                "4",
                "8Gi",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
            ),
        ]);
        let err = place(
            &mut state,
            &mut Cursor::default(),
            &pod("big", requests("4Gi")),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient memory."
        );
        // Tolerating the taint, it fits on c.
        let tolerant = pod(
            "big",
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"memory": "4Gi"}}}],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            place(&mut state, &mut Cursor::default(), &tolerant).unwrap(),
            "c"
        );
        // Now c is full too.
        let err = place(
            &mut state,
            &mut Cursor::default(),
            &pod("big2", requests("5Gi")),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("0/3 nodes are available:"),
            "{err}"
        );
    }

    #[test]
    fn not_ready_and_unschedulable_nodes_take_nothing() {
        let mut state = cluster(&[
            node(
                "a",
                "4",
                "8Gi",
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            ),
            node("b", "4", "8Gi", json!({"spec": {"unschedulable": true}})),
        ]);
        let err = place(&mut state, &mut Cursor::default(), &pod("p", json!({}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable."
        );
    }

    #[test]
    fn node_selector_and_preferred_affinity() {
        let mut state = cluster(&[
            node(
                "a",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"disk": "ssd", "zone": "z1"}}}),
            ),
            node(
                "b",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"disk": "ssd", "zone": "z2"}}}),
            ),
            node(
                "c",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"disk": "hdd", "zone": "z2"}}}),
            ),
        ]);
        let mut cursor = Cursor::default();
        for i in 0..4 {
            let p = pod(
                &format!("p{i}"),
                json!({"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}}]}}}),
            );
            assert_eq!(place(&mut state, &mut cursor, &p).unwrap(), "b");
        }
        let err = place(
            &mut state,
            &mut cursor,
            &pod("x", json!({"nodeSelector": {"disk": "nvme"}})),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn anti_affinity_puts_one_per_node_and_refuses_a_fourth() {
        let mut state = cluster(&[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
            node("c", "4", "8Gi", json!({})),
        ]);
        let mut cursor = Cursor::default();
        let spec = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
        let mut placed = Vec::new();
        for i in 0..3 {
            let mut p = pod(&format!("db-{i}"), spec.clone());
            p["metadata"]["labels"] = json!({"app": "db"});
            placed.push(place(&mut state, &mut cursor, &p).unwrap());
        }
        placed.sort();
        assert_eq!(placed, vec!["a", "b", "c"]);
        let mut p = pod("db-3", spec);
        p["metadata"]["labels"] = json!({"app": "db"});
        let err = place(&mut state, &mut cursor, &p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        );
        // An unrelated pod is not kept out by the db pods' rules.
        assert!(place(&mut state, &mut cursor, &pod("web", json!({}))).is_ok());
    }

    #[test]
    fn an_existing_pods_anti_affinity_keeps_matching_pods_away() {
        let mut state = cluster(&[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ]);
        let guard = pod(
            "guard",
            json!({"nodeName": "a", "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        state.upsert_pod(&guard);
        assert_eq!(
            state.node("a").map(|n| n.required_anti_affinity_pods),
            Some(1)
        );
        let web = |i: usize| {
            let mut p = pod(&format!("web-{i}"), json!({}));
            p["metadata"]["labels"] = json!({"app": "web"});
            p
        };
        let mut cursor = Cursor::default();
        for i in 0..3 {
            assert_eq!(place(&mut state, &mut cursor, &web(i)).unwrap(), "b");
        }
        // Gone, it keeps nobody away: the emptier node takes the next one.
        state.remove_pod("uid-guard");
        assert_eq!(
            state.node("a").map(|n| n.required_anti_affinity_pods),
            Some(0)
        );
        assert_eq!(place(&mut state, &mut cursor, &web(3)).unwrap(), "a");
    }

    #[test]
    fn pod_affinity_follows_its_peer() {
        let mut state = cluster(&[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ]);
        let mut cursor = Cursor::default();
        let mut cache = pod("cache", json!({"nodeName": "b"}));
        cache["metadata"]["labels"] = json!({"app": "cache"});
        state.upsert_pod(&cache);
        for i in 0..3 {
            let p = pod(
                &format!("web-{i}"),
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
            );
            assert_eq!(place(&mut state, &mut cursor, &p).unwrap(), "b");
        }
    }

    #[test]
    fn hard_topology_spread_keeps_the_skew() {
        let mut state = cluster(&[
            node(
                "a",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"zone": "z1"}}}),
            ),
            node(
                "b",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"zone": "z2"}}}),
            ),
        ]);
        let mut cursor = Cursor::default();
        let mut zones: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..6 {
            let mut p = pod(
                &format!("p{i}"),
                json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]}),
            );
            p["metadata"]["labels"] = json!({"app": "s"});
            *zones
                .entry(place(&mut state, &mut cursor, &p).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(zones.values().copied().collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn large_clusters_score_a_sample() {
        assert_eq!(feasible_nodes_to_find(50), 50);
        assert_eq!(feasible_nodes_to_find(1_000), 420);
        assert_eq!(feasible_nodes_to_find(5_000), 500);
    }
}
