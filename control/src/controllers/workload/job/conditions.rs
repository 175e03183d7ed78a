//! A Job's `status.conditions`, read and written as Kubernetes' job controller
//! does (`ensureJobConditionStatus`), and whether a Job has finished (what the
//! CronJob and TTL-after-finished controllers ask).

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
pub fn finished(job: &Job) -> Option<Finished> {
    [COMPLETE, FAILED].into_iter().find_map(|kind| {
        let c = true_condition(job, kind)?;
        Some(Finished {
            condition: kind,
            at: c.last_transition_time.as_ref().map(|t| t.0),
        })
    })
}

/// The condition of type `kind` if its status is `True`.
pub fn true_condition<'a>(job: &'a Job, kind: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .filter(|c| c.status == "True")
}

/// Sets a condition's status (`ensureJobConditionStatus`): nothing changes
/// when it already has that truth; an existing one is replaced, a missing one
/// added unless it would be `False`. Returns whether the list changed.
pub fn ensure(
    conditions: &mut Vec<JobCondition>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let existing = conditions.iter().position(|c| c.type_ == kind);
    let is_true = existing
        .and_then(|i| conditions.get(i))
        .is_some_and(|c| c.status == "True");
    if is_true == status {
        return false;
    }
    let stamp = seconds(now);
    let condition = JobCondition {
        type_: kind.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        last_probe_time: Some(stamp.clone()),
        last_transition_time: Some(stamp),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    };
    match existing.and_then(|i| conditions.get_mut(i)) {
        Some(c) => *c = condition,
        None if status => conditions.push(condition),
        None => return false,
    }
    true
}

/// `now` as it is stored: to the second, as [`Time`] writes it, so that a
/// status compares equal to itself read back.
pub fn seconds(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn job(status: Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).unwrap()
    }

    #[test]
    fn a_condition_is_set_once_and_only_flipped_after() {
        let now: Timestamp = "2024-05-01T10:00:00.750Z".parse().unwrap();
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
        assert_eq!(
            serde_json::to_value(&list[0]).unwrap(),
            json!({"type": SUSPENDED, "status": "False",
                "lastProbeTime": "2024-05-01T10:00:00Z",
                "lastTransitionTime": "2024-05-01T10:00:00Z",
                "reason": "JobResumed", "message": "Job resumed"})
        );
        assert_eq!(
            list[0].last_transition_time,
            Some(Time("2024-05-01T10:00:00Z".parse().unwrap())),
            "kept to the second, as stored"
        );
    }

    #[test]
    fn finished_reads_complete_or_failed() {
        let status = json!({"conditions": [
            {"type": SUCCESS_CRITERIA_MET, "status": "True"},
            {"type": COMPLETE, "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"},
        ]});
        let f = finished(&job(status.clone())).unwrap();
        assert!(f.succeeded());
        assert_eq!(f.at, Some("2024-05-01T10:00:00Z".parse().unwrap()));
        let running = json!({"conditions": [{"type": FAILURE_TARGET, "status": "True"}]});
        assert_eq!(finished(&job(running.clone())), None);
        let failed = json!({"conditions": [{"type": FAILED, "status": "True"}]});
        assert!(!finished(&job(failed.clone())).unwrap().succeeded());
        let not_yet = json!({"conditions": [{"type": COMPLETE, "status": "False"}]});
        assert_eq!(finished(&job(not_yet)), None);
    }
}
