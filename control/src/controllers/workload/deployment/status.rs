//! A Deployment's status from its ReplicaSets, as Kubernetes computes it
//! (`sync.go`, `progress.go`): the counts, and the conditions `kubectl
//! rollout status` reads, `Available` and `Progressing`, with the progress
//! deadline. Pure: the time is an argument.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use super::plan::{int, surge_and_unavailable};
use super::template::without_hash;

/// Whether every replica is updated and available and no old pod is left.
pub fn is_complete(d: &Value, status: &Value) -> bool {
    let replicas = int(d, "/spec/replicas");
    int(status, "/updatedReplicas") == replicas
        && int(status, "/replicas") == replicas
        && int(status, "/availableReplicas") == replicas
        && int(status, "/observedGeneration") >= meta::generation(d)
}

/// The Deployment's status from its sets, and when to look again (the
/// progress deadline).
pub fn compute_status(
    d: &Value,
    sets: &[Arc<Value>],
    created: Option<&str>,
    paused: bool,
    now: Timestamp,
) -> (Value, Option<Duration>) {
    let template = without_hash(d.at("/spec/template"));
    let new = sets
        .iter()
        .find(|rs| without_hash(rs.at("/spec/template")) == template);
    let sum = |path: &str| sets.iter().map(|rs| int(rs, path)).sum::<i64>();
    let replicas = int(d, "/spec/replicas");
    let (_, max_unavailable) = surge_and_unavailable(d);
    let available = sum("/status/availableReplicas");
    let mut status = json!({
        "observedGeneration": meta::generation(d),
        "replicas": sum("/status/replicas"),
        "updatedReplicas": new.map(|rs| int(rs, "/status/replicas")).unwrap_or(0),
        "readyReplicas": sum("/status/readyReplicas"),
        "availableReplicas": available,
    });
    let unavailable = (replicas - available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    if let Some(c) = d.at("/status/collisionCount") {
        status["collisionCount"] = c.clone();
    }
    let now_text = meta::format_timestamp(now);
    let old_conditions: Vec<Value> = d
        .at("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_of = |kind: &str| {
        old_conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .cloned()
    };
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
        .and_then(|rs| meta::name(rs))
        .unwrap_or_default()
        .to_string();
    let old_progressing = old_of("Progressing");
    let old_reason = old_progressing
        .as_ref()
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let moved = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .any(|k| d.at(&format!("/status/{k}")) != status.get(*k))
        || created.is_some();
    let complete = is_complete(d, &status);
    let deadline = d
        .at("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(600);
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
            .and_then(|c| c.get("lastUpdateTime"))
            .and_then(Value::as_str)
            .and_then(meta::parse_timestamp);
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
    let mut conditions = Vec::new();
    conditions.push(stamp(available_cond, old_of("Available"), &now_text));
    match progressing {
        Some(p) => conditions.push(stamp(p, old_progressing, &now_text)),
        None => {
            if let Some(p) = old_progressing {
                conditions.push(p);
            }
        }
    }
    status["conditions"] = Value::Array(conditions);
    (status, requeue)
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}

/// Timestamps a condition: `lastTransitionTime` moves only when the status
/// changes; `lastUpdateTime` when anything about it does.
fn stamp(mut new: Value, old: Option<Value>, now: &str) -> Value {
    let same = |k: &str| old.as_ref().and_then(|o| o.get(k)) == new.get(k);
    let transition = match &old {
        Some(o) if same("status") => o.get("lastTransitionTime").cloned().unwrap_or(json!(now)),
        _ => json!(now),
    };
    let update = match &old {
        Some(o) if same("status") && same("reason") && same("message") => {
            o.get("lastUpdateTime").cloned().unwrap_or(json!(now))
        }
        _ => json!(now),
    };
    new["lastUpdateTime"] = update;
    new["lastTransitionTime"] = transition;
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 60,
                "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": status})
    }

    fn set(name: &str, replicas: i64, available: i64) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}}))
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn reason(status: &Value, kind: &str) -> String {
        status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == kind))
            .map(|c| c["reason"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_complete_rollout_is_available_and_progressed() {
        let d = deployment(3, json!({}));
        let now = at("2026-01-01T00:00:00Z");
        let (status, requeue) = compute_status(&d, &[set("web-1", 3, 3)], None, false, now);
        assert_eq!(status["availableReplicas"], 3);
        assert_eq!(status["updatedReplicas"], 3);
        assert_eq!(status["observedGeneration"], 2);
        assert_eq!(reason(&status, "Available"), "MinimumReplicasAvailable");
        assert_eq!(reason(&status, "Progressing"), "NewReplicaSetAvailable");
        assert_eq!(requeue, None);
        assert!(is_complete(&d, &status));
    }

    #[test]
    fn a_stuck_rollout_misses_its_deadline_and_says_so() {
        let now = at("2026-01-01T00:00:00Z");
        let d = deployment(3, json!({}));
        let sets = [set("web-1", 3, 1)];
        let (first, requeue) = compute_status(&d, &sets, Some("web-1"), false, now);
        assert_eq!(reason(&first, "Progressing"), "NewReplicaSetCreated");
        assert_eq!(requeue, Some(Duration::from_secs(60)));
        assert_eq!(reason(&first, "Available"), "MinimumReplicasUnavailable");
        // Nothing moved for 30 s: still within the deadline, look again later.
        let d = deployment(3, first.clone());
        let (same, requeue) = compute_status(&d, &sets, None, false, at("2026-01-01T00:00:30Z"));
        assert_eq!(reason(&same, "Progressing"), "NewReplicaSetCreated");
        assert_eq!(requeue, Some(Duration::from_secs(30)));
        // Past it.
        let (late, _) = compute_status(&d, &sets, None, false, at("2026-01-01T00:01:01Z"));
        assert_eq!(reason(&late, "Progressing"), "ProgressDeadlineExceeded");
    }

    #[test]
    fn a_paused_deployment_says_so_and_then_that_it_resumed() {
        let now = at("2026-01-01T00:00:00Z");
        let d = deployment(3, json!({}));
        let (paused, requeue) = compute_status(&d, &[set("web-1", 3, 3)], None, true, now);
        assert_eq!(reason(&paused, "Progressing"), "DeploymentPaused");
        assert_eq!(requeue, None);
        let d = deployment(3, paused);
        let (resumed, _) = compute_status(&d, &[set("web-1", 3, 1)], None, false, now);
        assert_eq!(reason(&resumed, "Progressing"), "DeploymentResumed");
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let old = json!({"type": "Available", "status": "True", "reason": "A", "message": "m",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z"});
        let same = stamp(
            condition("Available", "True", "A", "m"),
            Some(old.clone()),
            "2026-02-01T00:00:00Z",
        );
        assert_eq!(same["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(same["lastUpdateTime"], "2026-01-01T00:00:00Z");
        let reworded = stamp(
            condition("Available", "True", "B", "m"),
            Some(old.clone()),
            "2026-02-01T00:00:00Z",
        );
        assert_eq!(reworded["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(reworded["lastUpdateTime"], "2026-02-01T00:00:00Z");
        let flipped = stamp(
            condition("Available", "False", "A", "m"),
            Some(old),
            "2026-02-01T00:00:00Z",
        );
        assert_eq!(flipped["lastTransitionTime"], "2026-02-01T00:00:00Z");
    }
}
