//! Counting a Job's pods as Kubernetes' job controller counts them, without I/O.
//!
//! Every pod a Job creates carries the `batch.kubernetes.io/job-tracking`
//! finalizer, so a finished pod cannot disappear before it is counted. A
//! finished pod is counted in two steps that survive a crash between them: its
//! uid goes into `status.uncountedTerminatedPods` (written), then its finalizer
//! comes off, then it moves into `succeeded` or `failed` (written). A pod being
//! deleted before it succeeded counts as failed (podReplacementPolicy
//! `TerminatingOrFailed`), so an orphaned or evicted pod is never lost.
//!
//! The Job's side is typed ([`JobStatus`]); pods stay the stored JSON, as the
//! Job controller hands them to `pod_control`'s helpers too.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;

/// The finalizer that holds a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Kubernetes' `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
const FAILURE_BACKOFF: Duration = Duration::from_secs(10);
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(360);

/// How a pod counts for its Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unfinished,
    Succeeded,
    Failed,
}

/// The Job's counts of finished pods, from its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracking {
    pub succeeded: i64,
    pub failed: i64,
    pub uncounted_succeeded: Vec<String>,
    pub uncounted_failed: Vec<String>,
}

pub fn has_tracking_finalizer(pod: &Value) -> bool {
    meta::finalizers(pod).contains(&TRACKING_FINALIZER)
}

/// How a pod counts (`isPodFailed` and the Succeeded phase). With
/// podReplacementPolicy `Failed` (`only_failed`), a pod being deleted counts
/// only once it failed, or once its node has stopped it (grace period 0).
pub fn outcome(pod: &Value, only_failed: bool) -> Outcome {
    match pod.at("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => Outcome::Succeeded,
        Some("Failed") => Outcome::Failed,
        _ if meta::deletion_timestamp(pod).is_some() => {
            let stopped = pod
                .at("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                == Some(0);
            if !only_failed || stopped {
                Outcome::Failed
            } else {
                Outcome::Unfinished
            }
        }
        _ => Outcome::Unfinished,
    }
}

impl Tracking {
    pub fn of(job: &Job) -> Tracking {
        let status = job.status.as_ref();
        let count = |n: Option<i32>| i64::from(n.unwrap_or(0));
        let uncounted = status.and_then(|s| s.uncounted_terminated_pods.as_ref());
        Tracking {
            succeeded: count(status.and_then(|s| s.succeeded)),
            failed: count(status.and_then(|s| s.failed)),
            uncounted_succeeded: uncounted
                .and_then(|u| u.succeeded.clone())
                .unwrap_or_default(),
            uncounted_failed: uncounted.and_then(|u| u.failed.clone()).unwrap_or_default(),
        }
    }

    /// Notes the finished pods that still carry the finalizer and are not yet
    /// noted. Returns whether any was added (then the status must be written
    /// before their finalizers come off).
    pub fn observe(&mut self, pods: &[Arc<Value>], only_failed: bool) -> bool {
        let mut added = false;
        for pod in pods.iter().filter(|p| has_tracking_finalizer(p)) {
            let uid = meta::uid(pod).unwrap_or_default().to_string();
            if self.is_uncounted(&uid) {
                continue;
            }
            let list = match outcome(pod, only_failed) {
                Outcome::Succeeded => &mut self.uncounted_succeeded,
                Outcome::Failed => &mut self.uncounted_failed,
                Outcome::Unfinished => continue,
            };
            list.push(uid);
            added = true;
        }
        added
    }

    /// The pods noted as finished whose finalizer is still on.
    pub fn to_release<'a>(&self, pods: &'a [Arc<Value>]) -> Vec<&'a Arc<Value>> {
        pods.iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter(|p| self.is_uncounted(meta::uid(p).unwrap_or_default()))
            .collect()
    }

    /// Counts the noted pods whose finalizer is off (or that are gone).
    pub fn settle(&mut self, pods: &[Arc<Value>]) {
        let held = |uid: &String| {
            pods.iter()
                .any(|p| meta::uid(p) == Some(uid.as_str()) && has_tracking_finalizer(p))
        };
        let before = self.uncounted_succeeded.len();
        self.uncounted_succeeded.retain(held);
        self.succeeded = self
            .succeeded
            .saturating_add(count(before - self.uncounted_succeeded.len()));
        let before = self.uncounted_failed.len();
        self.uncounted_failed.retain(held);
        self.failed = self
            .failed
            .saturating_add(count(before - self.uncounted_failed.len()));
    }

    /// Succeeded pods, counted or not yet.
    pub fn total_succeeded(&self) -> i64 {
        self.succeeded
            .saturating_add(count(self.uncounted_succeeded.len()))
    }

    /// Failed pods, counted or not yet.
    pub fn total_failed(&self) -> i64 {
        self.failed
            .saturating_add(count(self.uncounted_failed.len()))
    }

    /// Whether every finished pod is counted.
    pub fn is_settled(&self) -> bool {
        self.uncounted_succeeded.is_empty() && self.uncounted_failed.is_empty()
    }

    /// Writes the counts into a status: zero counts omitted, as Kubernetes'
    /// writes them, and `uncountedTerminatedPods` always present (`{}` when
    /// empty).
    pub fn write_into(&self, status: &mut JobStatus) {
        let count = |n: i64| (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX));
        status.succeeded = count(self.succeeded);
        status.failed = count(self.failed);
        let uids = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: uids(&self.uncounted_succeeded),
            failed: uids(&self.uncounted_failed),
        });
    }

    fn is_uncounted(&self, uid: &str) -> bool {
        self.uncounted_succeeded.iter().any(|u| u == uid)
            || self.uncounted_failed.iter().any(|u| u == uid)
    }
}

/// A number of pods as a count.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How many pods should run (`manageJob`): with `completions`, no more than
/// the completions left; without, `parallelism` until one pod succeeded, and
/// then no new ones.
pub fn want_active(completions: Option<i64>, parallelism: i64, succeeded: i64, active: i64) -> i64 {
    match completions {
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => c.saturating_sub(succeeded).min(parallelism).max(0),
    }
}

/// With restartPolicy OnFailure a failing container restarts in place, so its
/// restarts count against the backoff limit (`pastBackoffLimitOnFailure`).
pub fn past_backoff_limit_on_failure(active: &[Arc<Value>], backoff_limit: i64) -> bool {
    let restarts: i64 = active
        .iter()
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .into_iter()
                .filter_map(|k| p.at(&format!("/status/{k}")).and_then(Value::as_array))
                .flatten()
        })
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .fold(0, i64::saturating_add);
    if backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= backoff_limit
    }
}

/// How long new pods must still wait after the failures since the last
/// success: 10 s doubled per further failure, at most 6 minutes, from the
/// last failure (Kubernetes' pod failure back-off).
pub fn failure_backoff(pods: &[Arc<Value>], now: Timestamp, only_failed: bool) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| outcome(p, only_failed) == Outcome::Succeeded)
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| outcome(p, only_failed) == Outcome::Failed)
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = failures.iter().max()?;
    let mut backoff = FAILURE_BACKOFF;
    for _ in 1..failures.len() {
        backoff = (backoff * 2).min(MAX_FAILURE_BACKOFF);
    }
    let since = now.duration_since(*last);
    let since = if since.is_negative() {
        Duration::ZERO
    } else {
        since.unsigned_abs()
    };
    backoff.checked_sub(since).filter(|d| !d.is_zero())
}

/// When a pod finished: its containers' last `finishedAt`, or its deletion.
fn finished_at(pod: &Value) -> Option<Timestamp> {
    let ended = ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .filter_map(|k| pod.at(&format!("/status/{k}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.at("/state/terminated/finishedAt").and_then(Value::as_str))
        .filter_map(meta::parse_timestamp)
        .max();
    ended.or_else(|| meta::deletion_timestamp(pod).and_then(meta::parse_timestamp))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(uid: &str, phase: &str, finalizer: bool) -> Arc<Value> {
        let mut p = json!({"metadata": {"uid": uid, "name": uid}, "status": {"phase": phase}});
        if finalizer {
            p["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
        }
        Arc::new(p)
    }

    fn ended(uid: &str, phase: &str, at: &str) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"uid": uid, "finalizers": [TRACKING_FINALIZER]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "c", "restartCount": 0, "state": {"terminated": {"finishedAt": at}}}]}}),
        )
    }

    #[test]
    fn finished_pods_are_noted_then_counted_once_their_finalizer_is_off() {
        let mut t = Tracking::default();
        let pods = vec![
            pod("a", "Succeeded", true),
            pod("b", "Failed", true),
            pod("c", "Running", true),
            pod("d", "Succeeded", false), // Counted before.
        ];
        assert!(t.observe(&pods, false));
        assert_eq!(t.uncounted_succeeded, ["a"]);
        assert_eq!(t.uncounted_failed, ["b"]);
        assert!(!t.observe(&pods, false), "noting twice changes nothing");
        assert_eq!((t.total_succeeded(), t.total_failed()), (1, 1));
        let release: Vec<_> = t.to_release(&pods).iter().map(|p| meta::uid(p)).collect();
        assert_eq!(release, [Some("a"), Some("b")]);

        // Still held: nothing moves.
        t.settle(&pods);
        assert_eq!((t.succeeded, t.failed), (0, 0));
        // "a" released, "b" gone.
        let pods = vec![pod("a", "Succeeded", false), pod("c", "Running", true)];
        t.settle(&pods);
        assert_eq!((t.succeeded, t.failed), (1, 1));
        assert!(t.is_settled());
        assert_eq!((t.total_succeeded(), t.total_failed()), (1, 1));
    }

    #[test]
    fn a_pod_deleted_before_it_succeeded_counts_as_failed() {
        let mut deleting = json!({"metadata": {"uid": "x", "deletionTimestamp": "2024-05-01T10:00:00Z",
            "deletionGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        assert_eq!(outcome(&deleting, false), Outcome::Failed);
        assert_eq!(outcome(&deleting, true), Outcome::Unfinished);
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        assert_eq!(
            outcome(&deleting, true),
            Outcome::Failed,
            "its node stopped it"
        );
        deleting["status"]["phase"] = json!("Succeeded");
        assert_eq!(outcome(&deleting, false), Outcome::Succeeded);
    }

    #[test]
    fn status_omits_zero_counts() {
        let t = Tracking {
            succeeded: 2,
            failed: 0,
            uncounted_succeeded: vec![],
            uncounted_failed: vec!["u".into()],
        };
        let mut status = JobStatus {
            failed: Some(1),
            ready: Some(0),
            ..Default::default()
        };
        t.write_into(&mut status);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"ready": 0, "succeeded": 2, "uncountedTerminatedPods": {"failed": ["u"]}})
        );
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "j"},
            "status": {"succeeded": 2, "uncountedTerminatedPods": {"failed": ["u"]}}}))
        .unwrap();
        assert_eq!(Tracking::of(&job), t);

        let mut status = JobStatus::default();
        Tracking::default().write_into(&mut status);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"uncountedTerminatedPods": {}})
        );
    }

    #[test]
    fn active_pods_wanted() {
        // completions 5, parallelism 2.
        assert_eq!(want_active(Some(5), 2, 0, 0), 2);
        assert_eq!(want_active(Some(5), 2, 4, 1), 1);
        assert_eq!(want_active(Some(5), 2, 5, 0), 0);
        assert_eq!(want_active(Some(5), 2, 7, 0), 0);
        // A work queue: parallelism until one succeeds, then only what runs.
        assert_eq!(want_active(None, 3, 0, 1), 3);
        assert_eq!(want_active(None, 3, 1, 2), 2);
    }

    #[test]
    fn restarts_count_against_the_backoff_limit_on_failure() {
        let restarted = |n: i64| {
            Arc::new(json!({"status": {"containerStatuses": [{"name": "c", "restartCount": n}]}}))
        };
        assert!(!past_backoff_limit_on_failure(&[restarted(1)], 2));
        assert!(past_backoff_limit_on_failure(
            &[restarted(1), restarted(1)],
            2
        ));
        assert!(!past_backoff_limit_on_failure(&[restarted(0)], 0));
        assert!(past_backoff_limit_on_failure(&[restarted(1)], 0));
    }

    #[test]
    fn failures_since_the_last_success_back_off_exponentially() {
        let now: Timestamp = "2024-05-01T10:00:05Z".parse().unwrap();
        let one = vec![ended("a", "Failed", "2024-05-01T10:00:00Z")];
        assert_eq!(
            failure_backoff(&one, now, false),
            Some(Duration::from_secs(5))
        );
        let two = vec![
            ended("a", "Failed", "2024-05-01T09:59:00Z"),
            ended("b", "Failed", "2024-05-01T10:00:00Z"),
        ];
        assert_eq!(
            failure_backoff(&two, now, false),
            Some(Duration::from_secs(15))
        );
        // A success after them resets the count.
        let healed = vec![
            ended("a", "Failed", "2024-05-01T09:59:00Z"),
            ended("b", "Succeeded", "2024-05-01T09:59:30Z"),
            ended("c", "Failed", "2024-05-01T10:00:00Z"),
        ];
        assert_eq!(
            failure_backoff(&healed, now, false),
            Some(Duration::from_secs(5))
        );
        let later: Timestamp = "2024-05-01T10:01:00Z".parse().unwrap();
        assert_eq!(failure_backoff(&one, later, false), None);
        assert_eq!(failure_backoff(&[], now, false), None);
    }
}
