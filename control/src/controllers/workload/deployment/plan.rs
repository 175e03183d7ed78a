//! What a Deployment's rollout does next, as pure functions of its spec and
//! its ReplicaSets' sizes (Kubernetes' `rolling.go`, `recreate.go`,
//! `sync.go`): the controller reads the caches, asks here, and writes what
//! comes back.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::REVISION;

/// A ReplicaSet as a rollout counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSize {
    /// `spec.replicas`.
    pub replicas: i64,
    /// Pods that can be counted on as available ([`available_of`]).
    pub available: i64,
}

impl SetSize {
    pub fn of(rs: &ReplicaSet) -> SetSize {
        SetSize {
            replicas: replicas_of(rs),
            available: available_of(rs),
        }
    }
}

/// The Deployment's `spec.replicas` (defaulted to 1 on write).
pub fn replicas(d: &Deployment) -> i64 {
    d.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(0, i64::from)
}

pub fn replicas_of(rs: &ReplicaSet) -> i64 {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(0, i64::from)
}

/// A ReplicaSet's `status.replicas`: the pods it has now.
pub fn status_replicas(rs: &ReplicaSet) -> i64 {
    rs.status.as_ref().map_or(0, |s| i64::from(s.replicas))
}

/// The pods of a ReplicaSet that can be counted on as available: its status
/// lags a scale-down (the pods being removed still count there until the
/// ReplicaSet controller has looked again), and a set keeps no more than its
/// size. Counting the surplus would scale old sets down twice for one new pod.
pub fn available_of(rs: &ReplicaSet) -> i64 {
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .map_or(0, i64::from);
    available.min(replicas_of(rs).max(0))
}

/// A ReplicaSet's `deployment.kubernetes.io/revision`.
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether the Deployment rolls by recreating (`strategy.type: Recreate`).
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// The rollout's bounds: (maxSurge, maxUnavailable) as pod counts.
pub fn surge_and_unavailable(d: &Deployment) -> (i64, i64) {
    let replicas = replicas(d);
    if is_recreate(d) {
        return (0, 0);
    }
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let resolve = |v: Option<&IntOrString>, round_up: bool| -> i64 {
        match v {
            Some(IntOrString::Int(n)) => i64::from(*n),
            Some(IntOrString::String(s)) => percent(s, replicas, round_up),
            None => percent("25%", replicas, round_up),
        }
    };
    let surge = resolve(rolling.and_then(|r| r.max_surge.as_ref()), true);
    let mut unavailable = resolve(rolling.and_then(|r| r.max_unavailable.as_ref()), false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1; // Otherwise nothing could ever move.
    }
    (surge, unavailable.min(replicas))
}

/// `N%` of `total` (rounded up or down), or `N` itself.
fn percent(s: &str, total: i64, round_up: bool) -> i64 {
    match s
        .strip_suffix('%')
        .and_then(|p| p.trim().parse::<i64>().ok())
    {
        Some(p) => {
            let scaled = p.saturating_mul(total);
            if round_up {
                scaled.saturating_add(99) / 100
            } else {
                scaled / 100
            }
        }
        None => s.parse().unwrap_or(0),
    }
}

/// RollingUpdate, the new set: the size to create it with if it is missing,
/// and its size now. It grows by what `maxSurge` leaves room for above
/// `replicas`, never past `replicas`; a first rollout (no set at all) starts
/// at full size.
pub fn rolling_new(replicas: i64, surge: i64, new: Option<i64>, old_total: i64) -> (i64, i64) {
    let new_now = new.unwrap_or(0);
    let up = if new.is_none() && old_total == 0 {
        replicas
    } else {
        let total = old_total.saturating_add(new_now);
        let room = (replicas.saturating_add(surge) - total).max(0);
        (new_now + room.min((replicas - new_now).max(0))).min(replicas)
    };
    let current = new.unwrap_or(up);
    let target = if current < up {
        up
    } else {
        current.min(replicas)
    };
    (up, target)
}

/// RollingUpdate, the old sets (oldest first): their sizes after scaling
/// down as far as `maxUnavailable` allows, unavailable pods first (they serve
/// nobody), then available ones while `replicas - maxUnavailable` stay
/// available. `new` is the new set as it was before this step.
pub fn rolling_old(
    replicas: i64,
    max_unavailable: i64,
    new_replicas: i64,
    new: SetSize,
    old: &[SetSize],
) -> Vec<i64> {
    let mut sizes: Vec<i64> = old.iter().map(|s| s.replicas).collect();
    let min_available = replicas - max_unavailable;
    let all_pods: i64 = sizes.iter().sum::<i64>() + new_replicas;
    let new_unavailable = (new_replicas - new.available).max(0);
    let mut budget = all_pods - min_available - new_unavailable;
    if budget <= 0 {
        return sizes;
    }
    for (set, size) in old.iter().zip(sizes.iter_mut()) {
        if budget <= 0 {
            break;
        }
        let unhealthy = (*size - set.available).max(0);
        let cut = unhealthy.min(budget);
        *size -= cut;
        budget -= cut;
    }
    let old_available: i64 = old
        .iter()
        .zip(&sizes)
        .map(|(set, size)| set.available.min(*size))
        .sum();
    let mut scale_down = old_available + new.available - min_available;
    for size in sizes.iter_mut() {
        if scale_down <= 0 {
            break;
        }
        let cut = (*size).min(scale_down);
        *size -= cut;
        scale_down -= cut;
    }
    sizes
}

/// Recreate: what to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recreate {
    /// Scale every old set to zero.
    ScaleOldDown,
    /// The old sets are at zero; their pods are still stopping.
    WaitForOldPods,
    /// Nothing old is left: run the new set at full size.
    RunNew,
}

pub fn recreate(old_sets_with_replicas: bool, old_pods_left: bool) -> Recreate {
    if old_sets_with_replicas {
        Recreate::ScaleOldDown
    } else if old_pods_left {
        Recreate::WaitForOldPods
    } else {
        Recreate::RunNew
    }
}

/// Paused: the size of the set that takes `spec.replicas` (the new one, or
/// else the newest old one with pods), given what the others hold.
pub fn paused_size(replicas: i64, others: i64) -> i64 {
    (replicas - others).max(0)
}

/// History: of the old, empty sets (in any order), the ones beyond
/// `revisionHistoryLimit`, oldest revision first.
pub fn history_to_delete<T: Clone>(limit: usize, mut candidates: Vec<(i64, T)>) -> Vec<T> {
    if candidates.len() <= limit {
        return Vec::new();
    }
    candidates.sort_by_key(|(revision, _)| *revision);
    let excess = candidates.len() - limit;
    candidates
        .into_iter()
        .take(excess)
        .map(|(_, set)| set)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A Deployment with `spec` as given (and the fields its type requires).
    fn deployment(mut d: serde_json::Value) -> Deployment {
        d["spec"]["selector"] = json!({});
        d["spec"]["template"] = json!({});
        serde_json::from_value(d).unwrap()
    }

    fn set(replicas: i64, available: i64) -> SetSize {
        SetSize {
            replicas,
            available,
        }
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let d = deployment(
            json!({"spec": {"replicas": 6, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
        );
        assert_eq!(surge_and_unavailable(&d), (2, 1));
        let d = deployment(
            json!({"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}),
        );
        assert_eq!(surge_and_unavailable(&d), (0, 1));
        let d = deployment(json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}}));
        assert_eq!(surge_and_unavailable(&d), (0, 0));
        // A percentage far past any sense does not overflow.
        let d = deployment(
            json!({"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": "9223372036854775807%"}}}}),
        );
        assert!(surge_and_unavailable(&d).0 > 0);
    }

    #[test]
    fn a_first_rollout_starts_at_full_size() {
        assert_eq!(rolling_new(6, 2, None, 0), (6, 6));
    }

    #[test]
    fn the_new_set_grows_within_max_surge() {
        // 6 replicas, surge 2: the old set holds 6, so the new one may have 2.
        assert_eq!(rolling_new(6, 2, None, 6), (2, 2));
        assert_eq!(rolling_new(6, 2, Some(2), 6), (2, 2));
        // The old set came down to 4: room for 2 more.
        assert_eq!(rolling_new(6, 2, Some(2), 4), (4, 4));
        // Never past replicas, even with room.
        assert_eq!(rolling_new(6, 10, Some(5), 0), (6, 6));
        // A new set larger than replicas (scaled down since) is cut to it.
        assert_eq!(rolling_new(3, 1, Some(5), 0), (3, 3));
    }

    #[test]
    fn old_sets_shrink_unavailable_pods_first_then_within_max_unavailable() {
        // 6 replicas, maxUnavailable 1; new set 2 (none available yet); one
        // old set of 6, all available: only 1 may go.
        assert_eq!(rolling_old(6, 1, 2, set(2, 0), &[set(6, 6)]), vec![5]);
        // The new pods became available: the old set may go down to 4... and
        // 2 unavailable old pods go first, whatever availability says.
        assert_eq!(rolling_old(6, 1, 2, set(2, 2), &[set(6, 4)]), vec![3]);
        // Nothing to give: everything is needed for availability.
        assert_eq!(rolling_old(6, 0, 6, set(6, 0), &[set(6, 6)]), vec![6]);
        // Oldest first.
        assert_eq!(
            rolling_old(4, 1, 4, set(4, 4), &[set(2, 2), set(2, 2)]),
            vec![0, 0]
        );
        assert_eq!(
            rolling_old(4, 1, 4, set(4, 2), &[set(2, 2), set(2, 2)]),
            vec![0, 1]
        );
    }

    #[test]
    fn recreate_waits_for_old_pods_before_the_new_set() {
        assert_eq!(recreate(true, true), Recreate::ScaleOldDown);
        assert_eq!(recreate(false, true), Recreate::WaitForOldPods);
        assert_eq!(recreate(false, false), Recreate::RunNew);
    }

    #[test]
    fn paused_deployments_only_scale() {
        assert_eq!(paused_size(5, 2), 3);
        assert_eq!(paused_size(1, 4), 0);
    }

    #[test]
    fn history_keeps_the_newest_revisions() {
        let candidates = vec![(3, "c"), (1, "a"), (4, "d"), (2, "b")];
        assert_eq!(history_to_delete(2, candidates.clone()), vec!["a", "b"]);
        assert_eq!(history_to_delete(4, candidates.clone()), Vec::<&str>::new());
        assert_eq!(history_to_delete(0, candidates), vec!["a", "b", "c", "d"]);
    }
}
