//! What a DaemonSet's reconcile does, decided without I/O from the nodes and
//! the pods on them, as Kubernetes' daemon controller decides it: `manage`
//! (one pod per eligible node, none elsewhere), `rollingUpdate` (old pods
//! replaced within `maxUnavailable`, or surged within `maxSurge`) and
//! `updateDaemonSetStatus` (the counts `kubectl rollout status` reads).

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use super::eligibility::{NodeFit, is_updated, target_node};
use crate::controllers::workload::pod_control::{availability, is_ready};

/// A node and the DaemonSet's pods meant for it.
#[derive(Debug, Clone)]
pub struct NodePods {
    pub node: String,
    /// A Node object exists (pods may still name one that was deleted).
    pub exists: bool,
    pub fit: NodeFit,
    /// Oldest first, bound before unbound; finished pods being deleted are
    /// left out (the node or the pod garbage collector removes them).
    pub pods: Vec<Arc<Value>>,
}

/// The writes one reconcile makes.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes to create a daemon pod for.
    pub create_on: Vec<String>,
    pub delete: Vec<Arc<Value>>,
    /// Failed pods, by node: deleted unless their node is in backoff (a pod
    /// the node keeps failing would otherwise be replaced in a hot loop).
    pub failed: Vec<(String, Arc<Value>)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty() && self.failed.is_empty()
    }
}

/// A rolling update's bounds, in pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_surge: usize,
    pub max_unavailable: usize,
}

/// The status counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: usize,
    pub current: usize,
    pub misscheduled: usize,
    pub ready: usize,
    pub updated: usize,
    pub available: usize,
    pub unavailable: usize,
}

/// Groups pods by the node they run on or are meant for; every node in
/// `nodes` gets an entry, and so does every other node a pod names.
pub fn group(nodes: &[(String, NodeFit)], pods: Vec<Arc<Value>>) -> Vec<NodePods> {
    let mut out: Vec<NodePods> = nodes
        .iter()
        .map(|(node, fit)| NodePods {
            node: node.clone(),
            exists: true,
            fit: *fit,
            pods: Vec::new(),
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    for pod in pods {
        if is_finished(&pod) && is_deleting(&pod) {
            continue;
        }
        let Some(node) = target_node(&pod).map(str::to_string) else {
            continue; // Not a pod this controller made; it can only wait for deletion.
        };
        match out.binary_search_by(|n| n.node.cmp(&node)) {
            Ok(i) => out[i].pods.push(pod),
            Err(i) => out.insert(
                i,
                NodePods {
                    node,
                    exists: false,
                    fit: NodeFit::NEVER,
                    pods: vec![pod],
                },
            ),
        }
    }
    for n in &mut out {
        n.pods.sort_by(|a, b| oldest_first(a, b));
    }
    out
}

/// Kubernetes' `podByCreationTimestampAndPhase`: bound pods first, then by
/// creation time, then by name.
fn oldest_first(a: &Value, b: &Value) -> Ordering {
    is_bound(b)
        .cmp(&is_bound(a))
        .then_with(|| {
            let t = |p: &Value| meta::creation_timestamp(p).and_then(meta::parse_timestamp);
            t(a).cmp(&t(b))
        })
        .then_with(|| meta::name(a).cmp(&meta::name(b)))
}

fn is_bound(pod: &Value) -> bool {
    pod.at("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

fn phase(pod: &Value) -> &str {
    pod.at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_finished(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_deleting(pod: &Value) -> bool {
    meta::deletion_timestamp(pod).is_some()
}

fn is_available(pod: &Value, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
    availability(pod, min_ready_seconds, now).0
}

/// Kubernetes' `manage`: a pod for every node that should run one and has
/// none; on a node whose pod may stay, finished pods go and only the oldest
/// running pod stays (with surge: the oldest old and the oldest new one, until
/// the new one is available); a node whose pod may not stay loses all of them.
/// A pod still waiting for a node that no longer exists goes too (a bound one
/// is the pod garbage collector's).
pub fn manage(
    nodes: &[NodePods],
    hash: &str,
    surge: bool,
    min_ready_seconds: i64,
    now: jiff::Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    for n in nodes {
        if !n.exists {
            plan.delete.extend(
                n.pods
                    .iter()
                    .filter(|p| !is_deleting(p) && !is_bound(p))
                    .cloned(),
            );
            continue;
        }
        let exists = !n.pods.is_empty();
        if n.fit.should_run && !exists {
            plan.create_on.push(n.node.clone());
        } else if n.fit.should_continue {
            let mut running: Vec<&Arc<Value>> = Vec::new();
            for pod in n.pods.iter().filter(|p| !is_deleting(p)) {
                match phase(pod) {
                    "Failed" => plan.failed.push((n.node.clone(), pod.clone())),
                    "Succeeded" => plan.delete.push(pod.clone()),
                    _ => running.push(pod),
                }
            }
            if !surge {
                plan.delete
                    .extend(running.iter().skip(1).map(|p| (*p).clone()));
                continue;
            }
            if running.len() <= 1 {
                if running.is_empty() && n.fit.should_run {
                    plan.create_on.push(n.node.clone());
                }
                continue;
            }
            // Surging: two pods only while the oldest new one is not yet
            // available and the oldest old one still serves.
            let mut oldest_new = None;
            let mut oldest_old = None;
            for pod in running {
                let slot = if is_updated(pod, hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    plan.delete.push(pod.clone());
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                && (!is_ready(old) || is_available(new, min_ready_seconds, now))
            {
                plan.delete.push(old.clone());
            }
        } else if exists {
            plan.delete
                .extend(n.pods.iter().filter(|p| !is_deleting(p)).cloned());
        }
    }
    plan
}

/// The rolling update's bounds for `desired` nodes, or `None` for `OnDelete`.
/// Percentages round up, as Kubernetes' `UnavailableCount` and `SurgeCount`;
/// when both come to zero, one pod may be unavailable so the update can move.
pub fn bounds(ds: &DaemonSet, desired: usize) -> Option<Bounds> {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return None;
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let scaled = |v: Option<&IntOrString>, default: usize| match v {
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<usize>()
                .map_or(0, |p| p.saturating_mul(desired).div_ceil(100)),
            None => s.trim().parse().unwrap_or(0),
        },
        None => default,
    };
    let max_surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), 0);
    let mut max_unavailable = scaled(rolling.and_then(|r| r.max_unavailable.as_ref()), 1);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Some(Bounds {
        max_surge,
        max_unavailable,
    })
}

/// Whether the DaemonSet surges at all (`AllowsSurge`: surge for one node).
pub fn allows_surge(ds: &DaemonSet) -> bool {
    bounds(ds, 1).is_some_and(|b| b.max_surge > 0)
}

/// A node's updated pod and old pod, each if any.
type Split<'a> = (Option<&'a Arc<Value>>, Option<&'a Arc<Value>>);

/// The node's not-deleting pods split into the updated one and the old one
/// (`findUpdatedPodsOnNode`); `None` when there are two of either kind, which
/// `manage` sorts out first.
fn updated_and_old<'a>(pods: &'a [Arc<Value>], hash: &str) -> Option<Split<'a>> {
    let mut new = None;
    let mut old = None;
    for pod in pods.iter().filter(|p| !is_deleting(p)) {
        let slot = if is_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// Kubernetes' `rollingUpdate`. Without surge: old pods are deleted (their
/// replacements are then created by `manage`) while no more than
/// `maxUnavailable` nodes lack an available updated pod; an old pod that is
/// not available anyway is replaced at once. With surge: an updated pod is
/// created next to an old one on up to `maxSurge` nodes, and the old one goes
/// once the new one is available.
pub fn rolling_update(
    nodes: &[NodePods],
    hash: &str,
    bounds: Bounds,
    desired: usize,
    min_ready_seconds: i64,
    now: jiff::Timestamp,
) -> Plan {
    let available = |p: &Value| is_available(p, min_ready_seconds, now);
    let mut plan = Plan::default();
    let with_pods = nodes.iter().filter(|n| !n.pods.is_empty());
    if bounds.max_surge == 0 {
        let mut unavailable = 0;
        let mut candidates: Vec<Arc<Value>> = Vec::new();
        for n in with_pods {
            match updated_and_old(&n.pods, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if available(old) {
                        candidates.push(old.clone());
                    } else {
                        plan.delete.push(old.clone());
                    }
                }
            }
        }
        let room = bounds
            .max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }

    let mut surging = 0;
    let mut available_nodes: usize = 0;
    let mut allowed_new: Vec<String> = Vec::new();
    let mut candidate_new: Vec<String> = Vec::new();
    let mut should_not_run: Vec<Arc<Value>> = Vec::new();
    for n in with_pods {
        let Some((new, old)) = updated_and_old(&n.pods, hash) else {
            surging += 1;
            continue;
        };
        if old.map(|p| available(p)).or(new.map(|p| available(p))) == Some(true) {
            available_nodes += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if n.fit.should_run {
                        allowed_new.push(n.node.clone());
                    } else {
                        plan.delete.push(old.clone());
                    }
                } else if !n.fit.should_run {
                    should_not_run.push(old.clone());
                } else if surging < bounds.max_surge {
                    candidate_new.push(n.node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    plan.delete.push(old.clone());
                } else {
                    surging += 1;
                }
            }
        }
    }
    // Pods on nodes the DaemonSet left go only as far as the pods elsewhere
    // keep every desired node served: surge promises full availability.
    let deletable = available_nodes
        .saturating_sub(desired)
        .min(should_not_run.len());
    plan.delete
        .extend(should_not_run.into_iter().take(deletable));
    let room = bounds
        .max_surge
        .saturating_sub(surging)
        .min(candidate_new.len());
    plan.create_on = allowed_new;
    plan.create_on.extend(candidate_new.into_iter().take(room));
    plan
}

/// Kubernetes' `updateDaemonSetStatus` counts (over existing nodes, looking
/// at each node's oldest pod), and how long until a ready pod becomes
/// available (`minReadySeconds`), if one will.
pub fn status(
    nodes: &[NodePods],
    hash: &str,
    min_ready_seconds: i64,
    now: jiff::Timestamp,
) -> (Counts, Option<Duration>) {
    let mut c = Counts::default();
    let mut next: Option<Duration> = None;
    for n in nodes.iter().filter(|n| n.exists) {
        let Some(pod) = n.pods.first() else {
            if n.fit.should_run {
                c.desired += 1;
            }
            continue;
        };
        if !n.fit.should_run {
            c.misscheduled += 1;
            continue;
        }
        c.desired += 1;
        c.current += 1;
        if is_ready(pod) {
            c.ready += 1;
            match availability(pod, min_ready_seconds, now) {
                (true, _) => c.available += 1,
                (false, Some(wait)) => next = Some(next.map_or(wait, |n| n.min(wait))),
                (false, None) => {}
            }
        }
        if is_updated(pod, hash) {
            c.updated += 1;
        }
    }
    c.unavailable = c.desired.saturating_sub(c.available);
    (c, next)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controllers::workload::daemon_set::eligibility::REVISION_HASH;

    const NOW: &str = "2026-01-01T00:01:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().expect("timestamp")
    }

    /// A daemon pod on `node` of template `hash`, created at second `created`.
    fn pod(name: &str, node: &str, hash: &str, created: u32, ready: bool) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "default",
                "creationTimestamp": format!("2026-01-01T00:00:{created:02}Z"),
                "labels": {REVISION_HASH: hash}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready",
                "status": if ready { "True" } else { "False" },
                "lastTransitionTime": "2026-01-01T00:00:30Z"}]},
        }))
    }

    fn deleting(p: Arc<Value>) -> Arc<Value> {
        let mut p = Arc::unwrap_or_clone(p);
        p["metadata"]["deletionTimestamp"] = json!(NOW);
        Arc::new(p)
    }

    fn with_phase(p: Arc<Value>, phase: &str) -> Arc<Value> {
        let mut p = Arc::unwrap_or_clone(p);
        p["status"]["phase"] = json!(phase);
        Arc::new(p)
    }

    fn nodes(names: &[(&str, NodeFit)]) -> Vec<(String, NodeFit)> {
        names.iter().map(|(n, f)| (n.to_string(), *f)).collect()
    }

    fn names(pods: &[Arc<Value>]) -> Vec<&str> {
        let mut out: Vec<&str> = pods.iter().filter_map(|p| meta::name(p)).collect();
        out.sort();
        out
    }

    const STAY: NodeFit = NodeFit {
        should_run: false,
        should_continue: true,
    };

    #[test]
    fn one_pod_per_eligible_node_and_none_elsewhere() {
        let layout = group(
            &nodes(&[
                ("a", NodeFit::RUN),
                ("b", NodeFit::RUN),
                ("c", NodeFit::NEVER),
                ("d", STAY),
                ("e", NodeFit::RUN),
            ]),
            vec![
                pod("b-old", "b", "h1", 1, true),
                pod("b-new", "b", "h1", 2, true),
                pod("c-1", "c", "h1", 1, true),
                pod("d-1", "d", "h1", 1, true),
                deleting(pod("e-1", "e", "h1", 1, true)),
                pod("gone-1", "gone", "h1", 1, true),
            ],
        );
        let plan = manage(&layout, "h1", false, 0, now());
        assert_eq!(plan.create_on, vec!["a"]);
        // The younger duplicate and the pod on the excluded node go; the one on
        // the NoSchedule-tainted node stays; the one being deleted is waited
        // for; the one bound to a deleted node is the pod GC's.
        assert_eq!(names(&plan.delete), vec!["b-new", "c-1"]);
        let (counts, _) = status(&layout, "h1", 0, now());
        assert_eq!(
            counts,
            Counts {
                desired: 3,
                current: 2,
                misscheduled: 2,
                ready: 2,
                updated: 2,
                available: 2,
                unavailable: 1,
            }
        );
    }

    #[test]
    fn finished_pods_are_replaced_and_an_unbound_pod_for_a_gone_node_goes() {
        let mut unbound = Arc::unwrap_or_clone(pod("u", "x", "h1", 1, false));
        unbound["spec"] = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gone"]}]}]}}}});
        let layout = group(
            &nodes(&[("a", NodeFit::RUN), ("b", NodeFit::RUN)]),
            vec![
                with_phase(pod("a-1", "a", "h1", 1, false), "Failed"),
                with_phase(pod("b-1", "b", "h1", 1, false), "Succeeded"),
                Arc::new(unbound),
            ],
        );
        let plan = manage(&layout, "h1", false, 0, now());
        assert!(
            plan.create_on.is_empty(),
            "replacements wait for the deletes"
        );
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].0, "a");
        assert_eq!(names(&plan.delete), vec!["b-1", "u"]);
    }

    #[test]
    fn bounds_default_round_up_and_never_stall() {
        let ds = |s: Value| -> DaemonSet {
            serde_json::from_value(
                json!({"spec": {"selector": {}, "template": {}, "updateStrategy": s}}),
            )
            .unwrap()
        };
        assert_eq!(
            bounds(&ds(json!({"type": "RollingUpdate"})), 5),
            Some(Bounds {
                max_surge: 0,
                max_unavailable: 1
            })
        );
        assert_eq!(
            bounds(
                &ds(
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "30%", "maxSurge": 0}})
                ),
                5
            ),
            Some(Bounds {
                max_surge: 0,
                max_unavailable: 2
            })
        );
        assert_eq!(
            bounds(
                &ds(json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})),
                3
            ),
            Some(Bounds {
                max_surge: 1,
                max_unavailable: 0
            })
        );
        assert_eq!(
            bounds(
                &ds(json!({"rollingUpdate": {"maxUnavailable": "0%", "maxSurge": 0}})),
                3
            ),
            Some(Bounds {
                max_surge: 0,
                max_unavailable: 1
            })
        );
        assert_eq!(bounds(&ds(json!({"type": "OnDelete"})), 3), None);
        assert!(allows_surge(&ds(
            json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})
        )));
        assert!(!allows_surge(&ds(json!({"type": "RollingUpdate"}))));
    }

    #[test]
    fn a_rolling_update_replaces_at_most_max_unavailable_at_a_time() {
        let fits = nodes(&[
            ("a", NodeFit::RUN),
            ("b", NodeFit::RUN),
            ("c", NodeFit::RUN),
            ("d", NodeFit::RUN),
        ]);
        let one = Bounds {
            max_surge: 0,
            max_unavailable: 1,
        };
        let all_old = group(
            &fits,
            ["a", "b", "c", "d"]
                .iter()
                .map(|n| pod(&format!("{n}-old"), n, "h1", 1, true))
                .collect(),
        );
        let plan = rolling_update(&all_old, "h2", one, 4, 0, now());
        assert_eq!(plan.delete.len(), 1);
        assert!(plan.create_on.is_empty());
        let two = Bounds {
            max_surge: 0,
            max_unavailable: 2,
        };
        assert_eq!(
            rolling_update(&all_old, "h2", two, 4, 0, now())
                .delete
                .len(),
            2
        );

        // a: being replaced (old pod deleting); b: new, not ready yet; c, d old.
        let moving = group(
            &fits,
            vec![
                deleting(pod("a-old", "a", "h1", 1, true)),
                pod("b-new", "b", "h2", 5, false),
                pod("c-old", "c", "h1", 1, true),
                pod("d-old", "d", "h1", 1, false),
            ],
        );
        let plan = rolling_update(&moving, "h2", one, 4, 0, now());
        // Two nodes are already down: only the unavailable old pod goes.
        assert_eq!(names(&plan.delete), vec!["d-old"]);
        let three = Bounds {
            max_surge: 0,
            max_unavailable: 3,
        };
        let plan = rolling_update(&moving, "h2", three, 4, 0, now());
        assert_eq!(names(&plan.delete), vec!["c-old", "d-old"]);
    }

    #[test]
    fn min_ready_seconds_hold_the_update_and_the_status_says_when_to_look_again() {
        let fits = nodes(&[("a", NodeFit::RUN), ("b", NodeFit::RUN)]);
        // a-new ready since 00:00:30 (now is 00:01:00), b-old for a day.
        let mut long_ready = Arc::unwrap_or_clone(pod("b-old", "b", "h1", 1, true));
        long_ready["status"]["conditions"][0]["lastTransitionTime"] = json!("2025-12-31T00:00:00Z");
        let layout = group(
            &fits,
            vec![pod("a-new", "a", "h2", 5, true), Arc::new(long_ready)],
        );
        let one = Bounds {
            max_surge: 0,
            max_unavailable: 1,
        };
        assert_eq!(
            names(&rolling_update(&layout, "h2", one, 2, 10, now()).delete),
            vec!["b-old"]
        );
        assert!(
            rolling_update(&layout, "h2", one, 2, 60, now())
                .delete
                .is_empty(),
            "a-new is not available for 60 s yet"
        );
        let (counts, next) = status(&layout, "h2", 60, now());
        assert_eq!((counts.ready, counts.available, counts.updated), (2, 1, 1));
        assert_eq!(next, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_surge_update_adds_new_pods_before_removing_old_ones() {
        let fits = nodes(&[
            ("a", NodeFit::RUN),
            ("b", NodeFit::RUN),
            ("c", NodeFit::RUN),
        ]);
        let surge = Bounds {
            max_surge: 1,
            max_unavailable: 0,
        };
        let all_old = group(
            &fits,
            ["a", "b", "c"]
                .iter()
                .map(|n| pod(&format!("{n}-old"), n, "h1", 1, true))
                .collect(),
        );
        let plan = rolling_update(&all_old, "h2", surge, 3, 0, now());
        assert!(plan.delete.is_empty());
        assert_eq!(plan.create_on, vec!["a"]);

        // a surged and its new pod is not available: nothing more; once it is,
        // the old one goes and the next node surges.
        let surged = |ready: bool| {
            group(
                &fits,
                vec![
                    pod("a-old", "a", "h1", 1, true),
                    pod("a-new", "a", "h2", 5, ready),
                    pod("b-old", "b", "h1", 1, true),
                    pod("c-old", "c", "h1", 1, true),
                ],
            )
        };
        let plan = rolling_update(&surged(false), "h2", surge, 3, 0, now());
        assert!(plan.delete.is_empty() && plan.create_on.is_empty());
        let plan = rolling_update(&surged(true), "h2", surge, 3, 0, now());
        assert_eq!(names(&plan.delete), vec!["a-old"]);
        assert_eq!(plan.create_on, vec!["b"]);
        // manage keeps both pods on a while the new one is not available.
        assert!(
            manage(&surged(false), "h2", true, 0, now())
                .delete
                .is_empty()
        );
        assert_eq!(
            names(&manage(&surged(true), "h2", true, 0, now()).delete),
            vec!["a-old"]
        );
    }
}
