//! A Deployment's status from its ReplicaSets, as Kubernetes computes it
//! (`sync.go`, `progress.go`): the counts, and the conditions `kubectl
//! rollout status` reads, `Available` and `Progressing`, with the progress
//! deadline. Pure: the time is an argument.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::{replicas, status_replicas, surge_and_unavailable};

/// Whether every replica is updated and available and no old pod is left.
pub fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = replicas(d);
    count(status.updated_replicas) == replicas
        && count(status.replicas) == replicas
        && count(status.available_replicas) == replicas
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

fn count(n: Option<i32>) -> i64 {
    n.map_or(0, i64::from)
}

/// The Deployment's status from its sets (`new_set`: the name of the one of
/// its current template, if any), and when to look again (the progress
/// deadline).
pub fn compute_status(
    d: &Deployment,
    sets: &[Arc<ReplicaSet>],
    new_set: Option<&str>,
    created: Option<&str>,
    paused: bool,
    now: Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let spec = d.spec.as_ref();
    let new = new_set.and_then(|name| {
        sets.iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
    });
    let sum = |of: fn(&ReplicaSet) -> i64| sets.iter().map(|rs| of(rs)).sum::<i64>();
    let ready = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| count(s.ready_replicas));
    let available_in = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .map_or(0, |s| count(s.available_replicas))
    };
    let replicas = replicas(d);
    let (_, max_unavailable) = surge_and_unavailable(d);
    let available = sum(available_in);
    let old = d.status.as_ref();
    let mut status = DeploymentStatus {
        observed_generation: Some(d.metadata.generation.unwrap_or(0)),
        replicas: Some(clamp(sum(status_replicas))),
        updated_replicas: Some(clamp(new.map_or(0, |rs| status_replicas(rs)))),
        ready_replicas: Some(clamp(sum(ready))),
        available_replicas: Some(clamp(available)),
        collision_count: old.and_then(|s| s.collision_count),
        ..Default::default()
    };
    let unavailable = (replicas - available).max(0);
    if unavailable > 0 {
        status.unavailable_replicas = Some(clamp(unavailable));
    }
    let old_conditions: &[DeploymentCondition] = old
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let old_of = |kind: &str| old_conditions.iter().find(|c| c.type_ == kind).cloned();
    let available_ok = available >= replicas - max_unavailable;
    let available_cond = if available_ok {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let new_name = new
        .and_then(|rs| rs.metadata.name.clone())
        .unwrap_or_default();
    let old_progressing = old_of("Progressing");
    let old_reason = old_progressing
        .as_ref()
        .and_then(|c| c.reason.clone())
        .unwrap_or_default();
    let moved = old.is_none_or(|o| {
        o.replicas != status.replicas
            || o.updated_replicas != status.updated_replicas
            || o.ready_replicas != status.ready_replicas
            || o.available_replicas != status.available_replicas
    }) || created.is_some();
    let complete = is_complete(d, &status);
    let deadline = spec
        .and_then(|s| s.progress_deadline_seconds)
        .map_or(600, i64::from);
    let mut requeue = None;
    let progressing = if paused {
        Some(condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        ))
    } else if old_reason == "DeploymentPaused" {
        Some(condition(
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed",
        ))
    } else if complete {
        Some(condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        ))
    } else if let Some(name) = created {
        Some(condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{name}\""),
        ))
    } else if moved || old_progressing.is_none() || old_reason == "NewReplicaSetAvailable" {
        Some(condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
        ))
    } else if old_reason == "ProgressDeadlineExceeded" {
        None // Stays as it is until something moves.
    } else {
        // No progress since the last update: has the deadline passed?
        let last = old_progressing
            .as_ref()
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0);
        let elapsed = last.map(|t| now.duration_since(t).as_secs()).unwrap_or(0);
        if elapsed >= deadline {
            Some(condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            ))
        } else {
            requeue = Some(Duration::from_secs(
                deadline.saturating_sub(elapsed).max(1) as u64
            ));
            None
        }
    };
    if progressing.is_some() && !complete && !paused && requeue.is_none() {
        requeue = Some(Duration::from_secs(deadline.max(1) as u64));
    }
    let mut conditions = vec![stamp(available_cond, old_of("Available"), now)];
    match progressing {
        Some(p) => conditions.push(stamp(p, old_progressing, now)),
        None => conditions.extend(old_progressing),
    }
    status.conditions = Some(conditions);
    (status, requeue)
}

/// A count as the int32 the status field holds (counts of pods never come
/// near its limit; a sum that did would be capped, not wrapped).
fn clamp(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        ..Default::default()
    }
}

/// Timestamps a condition: `lastTransitionTime` moves only when the status
/// changes; `lastUpdateTime` when anything about it does.
fn stamp(
    mut new: DeploymentCondition,
    old: Option<DeploymentCondition>,
    now: Timestamp,
) -> DeploymentCondition {
    let now = Time(now);
    let (transition, update) = match old {
        Some(o) if o.status == new.status => {
            let unchanged = o.reason == new.reason && o.message == new.message;
            let update = if unchanged { o.last_update_time } else { None };
            (o.last_transition_time, update)
        }
        _ => (None, None),
    };
    new.last_transition_time = Some(transition.unwrap_or_else(|| now.clone()));
    new.last_update_time = Some(update.unwrap_or(now));
    new
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(replicas: i64, status: DeploymentStatus) -> Deployment {
        let mut d: Deployment =
            serde_json::from_value(json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 60, "selector": {},
                "template": {"metadata": {"labels": {"app": "web"}}}}}))
            .unwrap();
        d.status = Some(status);
        d
    }

    fn set(name: &str, replicas: i64, available: i64) -> Arc<ReplicaSet> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {}, "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}})).unwrap())
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn reason(status: &DeploymentStatus, kind: &str) -> String {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind)
            .and_then(|c| c.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_complete_rollout_is_available_and_progressed() {
        let d = deployment(3, DeploymentStatus::default());
        let now = at("2026-01-01T00:00:00Z");
        let (status, requeue) =
            compute_status(&d, &[set("web-1", 3, 3)], Some("web-1"), None, false, now);
        assert_eq!(status.available_replicas, Some(3));
        assert_eq!(status.updated_replicas, Some(3));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(reason(&status, "Available"), "MinimumReplicasAvailable");
        assert_eq!(reason(&status, "Progressing"), "NewReplicaSetAvailable");
        assert_eq!(requeue, None);
        assert!(is_complete(&d, &status));
        // Only the set of the current template counts as updated.
        let sets = [set("web-old", 3, 3), set("web-1", 0, 0)];
        let (rolling, _) = compute_status(&d, &sets, Some("web-1"), None, false, now);
        assert_eq!(rolling.updated_replicas, Some(0));
        assert_eq!(rolling.replicas, Some(3));
        assert!(!is_complete(&d, &rolling));
    }

    #[test]
    fn a_stuck_rollout_misses_its_deadline_and_says_so() {
        let now = at("2026-01-01T00:00:00Z");
        let d = deployment(3, DeploymentStatus::default());
        let sets = [set("web-1", 3, 1)];
        let (first, requeue) = compute_status(&d, &sets, Some("web-1"), Some("web-1"), false, now);
        assert_eq!(reason(&first, "Progressing"), "NewReplicaSetCreated");
        assert_eq!(requeue, Some(Duration::from_secs(60)));
        assert_eq!(reason(&first, "Available"), "MinimumReplicasUnavailable");
        // Nothing moved for 30 s: still within the deadline, look again later.
        let d = deployment(3, first.clone());
        let (same, requeue) = compute_status(
            &d,
            &sets,
            Some("web-1"),
            None,
            false,
            at("2026-01-01T00:00:30Z"),
        );
        assert_eq!(reason(&same, "Progressing"), "NewReplicaSetCreated");
        assert_eq!(requeue, Some(Duration::from_secs(30)));
        // Past it.
        let (late, _) = compute_status(
            &d,
            &sets,
            Some("web-1"),
            None,
            false,
            at("2026-01-01T00:01:01Z"),
        );
        assert_eq!(reason(&late, "Progressing"), "ProgressDeadlineExceeded");
    }

    #[test]
    fn a_paused_deployment_says_so_and_then_that_it_resumed() {
        let now = at("2026-01-01T00:00:00Z");
        let d = deployment(3, DeploymentStatus::default());
        let (paused, requeue) =
            compute_status(&d, &[set("web-1", 3, 3)], Some("web-1"), None, true, now);
        assert_eq!(reason(&paused, "Progressing"), "DeploymentPaused");
        assert_eq!(requeue, None);
        let d = deployment(3, paused);
        let (resumed, _) =
            compute_status(&d, &[set("web-1", 3, 1)], Some("web-1"), None, false, now);
        assert_eq!(reason(&resumed, "Progressing"), "DeploymentResumed");
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let then = at("2026-01-01T00:00:00Z");
        let later = at("2026-02-01T00:00:00Z");
        let mut old = condition("Available", "True", "A", "m");
        old.last_transition_time = Some(Time(then));
        old.last_update_time = Some(Time(then));
        let same = stamp(
            condition("Available", "True", "A", "m"),
            Some(old.clone()),
            later,
        );
        assert_eq!(same.last_transition_time, Some(Time(then)));
        assert_eq!(same.last_update_time, Some(Time(then)));
        let reworded = stamp(
            condition("Available", "True", "B", "m"),
            Some(old.clone()),
            later,
        );
        assert_eq!(reworded.last_transition_time, Some(Time(then)));
        assert_eq!(reworded.last_update_time, Some(Time(later)));
        let flipped = stamp(condition("Available", "False", "A", "m"), Some(old), later);
        assert_eq!(flipped.last_transition_time, Some(Time(later)));
    }

    /// The status as stored reads as Kubernetes writes it: counts, and
    /// condition times to the second.
    #[test]
    fn the_status_is_written_as_kubernetes_writes_it() {
        let now = at("2026-01-01T00:00:00.75Z");
        let d = deployment(3, DeploymentStatus::default());
        let (status, _) =
            compute_status(&d, &[set("web-1", 3, 3)], Some("web-1"), None, false, now);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["replicas"], 3);
        assert_eq!(json["conditions"][0]["type"], "Available");
        assert_eq!(
            json["conditions"][0]["lastUpdateTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(json["conditions"][1]["reason"], "NewReplicaSetAvailable");
    }
}
