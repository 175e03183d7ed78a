//! A Job's `status.conditions`, read and written as Kubernetes' job controller
//! does (`ensureJobConditionStatus`), and whether a Job has finished (what the
//! CronJob and TTL-after-finished controllers ask).

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUSPENDED: &str = "Suspended";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";

/// How a Job ended: `Complete` or `Failed`, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub condition: &'static str,
    pub at: Option<Timestamp>,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        self.condition == COMPLETE
    }
}

/// Whether the Job has finished (`IsJobFinished`): a `Complete` or `Failed`
/// condition that is `True`.
pub fn finished(job: &Value) -> Option<Finished> {
    [COMPLETE, FAILED].into_iter().find_map(|kind| {
        let c = true_condition(job, kind)?;
        Some(Finished {
            condition: kind,
            at: c
                .get("lastTransitionTime")
                .and_then(Value::as_str)
                .and_then(meta::parse_timestamp),
        })
    })
}

/// The condition of type `kind` if its status is `True`.
pub fn true_condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job.at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// Sets a condition's status (`ensureJobConditionStatus`): nothing changes
/// when it already has that truth; an existing one is replaced, a missing one
/// added unless it would be `False`. Returns whether the list changed.
pub fn ensure(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let existing = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    let is_true = existing.is_some_and(|i| conditions[i]["status"] == "True");
    if is_true == status {
        return false;
    }
    let stamp = meta::format_timestamp(now);
    let condition = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    });
    match existing {
        Some(i) => conditions[i] = condition,
        None if status => conditions.push(condition),
        None => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_is_set_once_and_only_flipped_after() {
        let now: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let mut list = Vec::new();
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            false,
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(list.is_empty(), "a False condition is not added");
        assert!(ensure(
            &mut list,
            SUSPENDED,
            true,
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            true,
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure(
            &mut list,
            SUSPENDED,
            false,
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["status"], "False");
        assert_eq!(list[0]["reason"], "JobResumed");
        assert_eq!(list[0]["lastTransitionTime"], "2024-05-01T10:00:00Z");
    }

    #[test]
    fn finished_reads_complete_or_failed() {
        let job = json!({"status": {"conditions": [
            {"type": SUCCESS_CRITERIA_MET, "status": "True"},
            {"type": COMPLETE, "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"},
        ]}});
        let f = finished(&job).unwrap();
        assert!(f.succeeded());
        assert_eq!(f.at, Some("2024-05-01T10:00:00Z".parse().unwrap()));
        let running =
            json!({"status": {"conditions": [{"type": FAILURE_TARGET, "status": "True"}]}});
        assert_eq!(finished(&running), None);
        let failed = json!({"status": {"conditions": [{"type": FAILED, "status": "True"}]}});
        assert!(!finished(&failed).unwrap().succeeded());
    }
}
