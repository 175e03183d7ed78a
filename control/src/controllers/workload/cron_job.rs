//! The CronJob controller, as Kubernetes' (`pkg/controller/cronjob`, v2): at
//! each scheduled time it creates a Job from the template, named
//! `<cronjob>-<scheduled time in Unix minutes>` (so one time never makes two
//! Jobs), annotated with `batch.kubernetes.io/cronjob-scheduled-timestamp` and
//! controlled by the CronJob. It honours `timeZone`, `suspend`,
//! `startingDeadlineSeconds` and `concurrencyPolicy` (Allow, Forbid, Replace),
//! keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, and
//! deletes finished Jobs beyond `successfulJobsHistoryLimit` and
//! `failedJobsHistoryLimit`, oldest first. Between times it sleeps until the
//! next one (`Action::RequeueAfter`), never polls.

mod due;
pub mod schedule;

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};

use self::due::{History, Missed};
use self::schedule::Schedule;
use super::job::conditions::{Finished, finished};
use super::pod_control::{controller_ref_to, controller_uid_of};
use super::typed::{name, namespace, uid};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_typed_status;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{DeleteOptions, PropagationPolicy, Registry, WriteOptions};

pub const NAME: &str = "cronjob-controller";
const FIELD_MANAGER: &str = "skiff-cronjob-controller";
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What a reconcile needs.
pub struct Context {
    pub registry: Registry,
    pub cron_jobs: Informer<CronJob>,
    pub jobs: Informer<Job>,
    pub events: EventRecorder,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let (registry, cron_jobs, jobs, events) = (
        deps.registry,
        deps.informers.cron_jobs,
        deps.informers.jobs,
        deps.events,
    );
    let ctx = Arc::new(Context {
        registry,
        cron_jobs,
        jobs,
        events,
    });
    Controller::new(NAME, &ctx.cron_jobs)
        .owns(&ctx.jobs)
        .run(2, ctx, reconcile)
        .await;
}

fn jobs_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("batch/v1", "Job").ok_or_else(|| ApiError::internal("no Job kind"))
}

/// A Job as the store returned it.
fn decode_job(job: Value) -> Result<Job, ApiError> {
    crate::informer::decode_as(&job)
}

/// `<cronjob>-<scheduled time in Unix minutes>` (`getJobName`).
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 in the CronJob's zone, as Go's `time.RFC3339` writes it (`Z` for UTC).
fn scheduled_stamp(scheduled: Timestamp, tz: &TimeZone) -> String {
    let zoned = scheduled.to_zoned(tz.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The `status.active` entry for a Job (`getRef`).
fn job_ref(job: &Job) -> ObjectReference {
    let meta = &job.metadata;
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        namespace: Some(namespace(meta).into()),
        name: Some(name(meta).into()),
        uid: Some(uid(meta).into()),
        resource_version: Some(meta.resource_version.clone().unwrap_or_default()),
        field_path: None,
    }
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(cj) = ctx.cron_jobs.get_typed(&key.0, &key.1) else {
        return Ok(Action::Done); // Gone: the garbage collector takes its Jobs.
    };
    let uid = uid(&cj.metadata);
    let jobs = ctx.jobs.list_typed(Some(&key.0), |j| {
        controller_uid_of(&j.metadata) == Some(uid)
    });
    let mut sync = Sync {
        ctx: &ctx,
        cj: &cj,
        status: cj.status.clone().unwrap_or_default(),
    };
    sync.track_active(&jobs).await?;
    let requeue = sync.schedule().await;
    let written = write_typed_status(
        &ctx.registry,
        cj.as_ref(),
        cj.status.as_ref(),
        &sync.status,
        FIELD_MANAGER,
    )
    .await?;
    cleanup_history(&ctx, &cj, &jobs).await?;
    if let Some(revision) = written.as_ref().and_then(crate::store::object_revision) {
        // Read our own write before the next look, or a Job just created
        // would look like one we did not make.
        ctx.cron_jobs.wait_for(revision).await;
    }
    Ok(match requeue? {
        Some(wait) => Action::RequeueAfter(wait),
        None => Action::Done,
    })
}

/// One reconcile of one CronJob: the status being built.
struct Sync<'a> {
    ctx: &'a Context,
    cj: &'a CronJob,
    status: CronJobStatus,
}

impl Sync<'_> {
    fn active(&self) -> Vec<ObjectReference> {
        self.status.active.clone().unwrap_or_default()
    }

    fn set_active(&mut self, active: Vec<ObjectReference>) {
        self.status.active = (!active.is_empty()).then_some(active);
    }

    fn record(&self, event_type: EventType, reason: &str, message: String) {
        self.ctx
            .events
            .record_typed(self.cj, NAME, event_type, reason, message);
    }

    /// Brings `status.active` and `lastSuccessfulTime` up to date with the Jobs.
    async fn track_active(&mut self, jobs: &[Arc<Job>]) -> Result<(), ApiError> {
        let mut active = self.active();
        let in_active = |active: &[ObjectReference], uid: &str| {
            active.iter().any(|r| r.uid.as_deref() == Some(uid))
        };
        for job in jobs {
            let uid = uid(&job.metadata);
            let name = name(&job.metadata);
            let finished = finished(job);
            match (&finished, in_active(&active, uid)) {
                (None, false) => self.record(
                    EventType::Warning,
                    "UnexpectedJob",
                    format!("Saw a job that the controller did not create or forgot: {name}"),
                ),
                (Some(Finished { condition, .. }), true) => {
                    active.retain(|r| r.uid.as_deref() != Some(uid));
                    self.record(
                        EventType::Normal,
                        "SawCompletedJob",
                        format!("Saw completed job: {name}, condition: {condition}"),
                    );
                }
                _ => {}
            }
            if finished.as_ref().is_some_and(Finished::succeeded)
                && let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.as_ref())
                && self
                    .status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|last| done.0 > last.0)
            {
                self.status.last_successful_time = Some(done.clone());
            }
        }
        // An active Job that is no longer there (ask the store, not the cache).
        let mut kept = Vec::new();
        for r in active {
            let uid = r.uid.as_deref().unwrap_or_default();
            if jobs.iter().any(|j| j.metadata.uid.as_deref() == Some(uid)) {
                kept.push(r);
                continue;
            }
            let name = r.name.as_deref().unwrap_or_default();
            let namespace = namespace(&self.cj.metadata);
            let stored = self.ctx.registry.try_get(jobs_type()?, namespace, name)?;
            match stored.map(decode_job).transpose()? {
                Some(job) if job.metadata.uid.as_deref() == Some(uid) => kept.push(r),
                _ => self.record(
                    EventType::Normal,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                ),
            }
        }
        self.set_active(kept);
        Ok(())
    }

    /// Creates the Job the schedule owes, if any; returns when to look again.
    async fn schedule(&mut self) -> Result<Option<std::time::Duration>, ApiError> {
        let cj = self.cj;
        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let no_spec = CronJobSpec::default();
        let spec = cj.spec.as_ref().unwrap_or(&no_spec);
        let tz = match spec.time_zone.as_deref() {
            None => TimeZone::system(),
            Some(name) => match TimeZone::get(name) {
                Ok(tz) => tz,
                Err(e) => {
                    self.record(
                        EventType::Warning,
                        "UnknownTimeZone",
                        format!("invalid timeZone: {name:?}: {e}"),
                    );
                    return Ok(None);
                }
            },
        };
        if spec.suspend == Some(true) {
            return Ok(None);
        }
        let schedule = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.record(
                    EventType::Warning,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        let now = Timestamp::now();
        // `status.lastScheduleTime` is as stored: tracking the active Jobs
        // does not move it.
        let history = History::of(cj, now);
        let next = |history: &History| due::requeue_after(&schedule, &tz, history, now);
        let due = match due::most_recent(&schedule, &tz, &history, now, true) {
            Ok(due) => due,
            Err(e) => {
                self.record(
                    EventType::Warning,
                    "InvalidSchedule",
                    format!("invalid schedule: {} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        if due.missed == Missed::Many {
            self.record(
                EventType::Warning,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
            );
        }
        let Some(scheduled) = due.most_recent.filter(|t| *t <= now) else {
            return Ok(next(&history));
        };
        if let Some(deadline) = history.starting_deadline_seconds
            && scheduled
                .checked_add(jiff::SignedDuration::from_secs(deadline))
                .is_ok_and(|latest| latest < now)
        {
            self.record(
                EventType::Warning,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
                ),
            );
            return Ok(next(&history));
        }
        let name = job_name(name(&cj.metadata), scheduled);
        let mut active = self.active();
        if active
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
            || history.last_schedule == Some(scheduled)
        {
            return Ok(next(&history));
        }
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !active.is_empty() => {
                self.record(
                    EventType::Normal,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                );
                return Ok(next(&history));
            }
            Some("Replace") => {
                for r in std::mem::take(&mut active) {
                    let job_name = r.name.as_deref().unwrap_or_default();
                    delete_job(self.ctx, cj, job_name, r.uid.as_deref()).await?;
                }
                self.set_active(Vec::new());
            }
            _ => {}
        }

        let job = serde_json::to_value(job_from_template(cj, &name, scheduled, &tz))
            .map_err(|e| ApiError::internal(format!("encoding a Job: {e}")))?;
        let opts = WriteOptions {
            field_manager: FIELD_MANAGER.into(),
            ..Default::default()
        };
        let namespace = cj.metadata.namespace.as_deref().unwrap_or("default");
        let created = match self
            .ctx
            .registry
            .create(jobs_type()?, namespace, job, &opts)
            .await
        {
            Ok(written) => {
                self.record(
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                );
                decode_job(written.object)?
            }
            Err(e) if e.reason == Reason::AlreadyExists => {
                // Made by an earlier look whose status write was lost, or by
                // someone else (then it is theirs to track).
                let existing =
                    decode_job(self.ctx.registry.get(jobs_type()?, namespace, &name)?)?;
                if controller_uid_of(&existing.metadata) != cj.metadata.uid.as_deref()
                    || active
                        .iter()
                        .any(|r| r.uid.is_some() && r.uid == existing.metadata.uid)
                {
                    // Nothing to add; wake up for the next time all the same.
                    return Ok(next(&history));
                }
                existing
            }
            Err(e) => {
                self.record(
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating job: {}", e.message),
                );
                return Err(e);
            }
        };
        active.push(job_ref(&created));
        self.set_active(active);
        self.status.last_schedule_time = Some(Time(scheduled));
        let history = History {
            last_schedule: Some(scheduled),
            ..history
        };
        Ok(next(&history))
    }
}

/// The Job for one scheduled time (`getJobFromTemplate2`): the template's
/// labels, annotations and spec, named for the time and controlled by `cj`.
fn job_from_template(cj: &CronJob, name: &str, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj.spec.as_ref().map(|s| &s.job_template);
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    let mut annotations = template_meta
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), scheduled_stamp(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: template_meta.and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref_to(cj)]),
            ..Default::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

/// Deletes a Job of the CronJob, its pods in the background (`deleteJob`).
async fn delete_job(
    ctx: &Context,
    cj: &CronJob,
    name: &str,
    uid: Option<&str>,
) -> Result<(), ApiError> {
    let opts = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        precondition_uid: uid.map(str::to_string),
        ..Default::default()
    };
    match ctx
        .registry
        .delete(jobs_type()?, namespace(&cj.metadata), name, &opts)
        .await
    {
        Ok(_) => {
            ctx.events.record_typed(
                cj,
                NAME,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted job {name}"),
            );
            Ok(())
        }
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The finished Jobs beyond a history limit, oldest first
/// (`cleanupFinishedJobs`): ordered by start time as Kubernetes orders them.
fn beyond_limit(jobs: &[Arc<Job>], succeeded: bool, limit: i32) -> Vec<&Job> {
    let mut finished: Vec<&Job> = jobs
        .iter()
        .map(Arc::as_ref)
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| finished(j).is_some_and(|f| f.succeeded() == succeeded))
        .collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if finished.len() <= limit {
        return Vec::new();
    }
    // Jobs without a start time sort last; equal times by name.
    finished.sort_by(|a, b| {
        let start = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
        };
        match (start(a), start(b)) {
            (Some(x), Some(y)) if x != y => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            _ => a.metadata.name.cmp(&b.metadata.name),
        }
    });
    let excess = finished.len() - limit;
    finished.truncate(excess);
    finished
}

/// Deletes the oldest finished Jobs beyond the history limits.
async fn cleanup_history(ctx: &Context, cj: &CronJob, jobs: &[Arc<Job>]) -> Result<(), ApiError> {
    let spec = cj.spec.as_ref();
    for (succeeded, limit) in [
        (true, spec.and_then(|s| s.successful_jobs_history_limit)),
        (false, spec.and_then(|s| s.failed_jobs_history_limit)),
    ] {
        let Some(limit) = limit else {
            continue;
        };
        for job in beyond_limit(jobs, succeeded, limit) {
            let meta = &job.metadata;
            delete_job(ctx, cj, name(meta), meta.uid.as_deref()).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controllers::workload::job::conditions::{COMPLETE, FAILED};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(name: &str, status: Value) -> Arc<Job> {
        let job = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "resourceVersion": "7"},
            "spec": {"template": {}},
            "status": status,
        }));
        Arc::new(job.unwrap())
    }

    fn done(condition: &str, started: Option<&str>) -> Value {
        json!({
            "startTime": started,
            "conditions": [{"type": condition, "status": "True",
                "lastTransitionTime": "2024-05-01T03:01:00Z"}],
        })
    }

    #[test]
    fn jobs_are_named_by_their_scheduled_minute() {
        let t = ts("2024-05-01T03:00:00Z");
        assert_eq!(job_name("nightly", t), "nightly-28575540");
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(scheduled_stamp(t, &berlin), "2024-05-01T05:00:00+02:00");
        assert_eq!(scheduled_stamp(t, &TimeZone::UTC), "2024-05-01T03:00:00Z");
    }

    #[test]
    fn a_job_from_the_template_is_controlled_by_its_cron_job() {
        let cj: CronJob = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {
                "metadata": {"name": "ignored", "labels": {"team": "a"}, "annotations": {"note": "x"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "pi", "image": "pi:v1", "args": ["50"], "resources": {}}]}}},
            }},
        }))
        .unwrap();
        let t = ts("2024-05-01T03:00:00Z");
        let job = job_from_template(&cj, "pi-28575540", t, &TimeZone::UTC);
        // Field for field what the controller wrote when it built the Job as JSON.
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "pi-28575540",
                    "labels": {"team": "a"},
                    "annotations": {"note": "x", SCHEDULED_TIMESTAMP: "2024-05-01T03:00:00Z"},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                        "name": "pi", "uid": "u1", "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "pi", "image": "pi:v1", "args": ["50"], "resources": {}}]}}},
            })
        );
        // No labels in the template: none on the Job; the annotation always.
        let bare: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "pi", "uid": "u1"},
            "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {}}}},
        }))
        .unwrap();
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let job = serde_json::to_value(job_from_template(&bare, "pi-1", t, &berlin)).unwrap();
        assert!(job["metadata"].get("labels").is_none(), "{job}");
        assert_eq!(
            job["metadata"]["annotations"],
            json!({SCHEDULED_TIMESTAMP: "2024-05-01T05:00:00+02:00"})
        );
    }

    #[test]
    fn the_status_is_written_as_kubernetes_writes_it() {
        let status = CronJobStatus {
            active: Some(vec![job_ref(&job("pi-1", Value::Null))]),
            last_schedule_time: Some(Time(ts("2024-05-01T03:00:00.250Z"))),
            last_successful_time: Some(Time(ts("2024-05-01T02:01:07Z"))),
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({
                "active": [{"apiVersion": "batch/v1", "kind": "Job", "namespace": "default",
                    "name": "pi-1", "uid": "uid-pi-1", "resourceVersion": "7"}],
                "lastScheduleTime": "2024-05-01T03:00:00Z",
                "lastSuccessfulTime": "2024-05-01T02:01:07Z",
            })
        );
        // Nothing active: no `active` at all, as an emptied list was removed.
        assert_eq!(
            serde_json::to_value(CronJobStatus::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn the_oldest_finished_jobs_beyond_the_limit_go_first() {
        let jobs = vec![
            job("late", done(COMPLETE, Some("2024-05-01T03:00:00Z"))),
            job("unstarted", done(COMPLETE, None)),
            job("early", done(COMPLETE, Some("2024-05-01T01:00:00Z"))),
            job("failed", done(FAILED, Some("2024-05-01T00:00:00Z"))),
            job("running", json!({"startTime": "2024-05-01T00:00:00Z"})),
        ];
        let names = |jobs: Vec<&Job>| -> Vec<String> {
            jobs.iter().map(|j| name(&j.metadata).to_string()).collect()
        };
        assert_eq!(names(beyond_limit(&jobs, true, 1)), ["early", "late"]);
        assert_eq!(
            names(beyond_limit(&jobs, true, 0)),
            ["early", "late", "unstarted"]
        );
        assert!(beyond_limit(&jobs, true, 3).is_empty());
        assert_eq!(names(beyond_limit(&jobs, false, -1)), ["failed"]);
        assert!(beyond_limit(&jobs, false, 1).is_empty());
    }
}
