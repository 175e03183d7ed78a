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
use k8s_openapi::api::batch::v1::{CronJob, Job};
use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};

use self::due::{History, Missed};
use self::schedule::Schedule;
use super::job::conditions::{self, Finished};
use super::pod_control::{controller_ref, controller_uid, revision_of};
use crate::controllers::Deps;
use crate::controllers::replace_status;
use crate::controllers::runtime::{Action, Controller};
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
fn job_ref(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "namespace": meta::namespace(job).unwrap_or_default(),
        "name": meta::name(job).unwrap_or_default(),
        "uid": meta::uid(job).unwrap_or_default(),
        "resourceVersion": meta::resource_version(job).unwrap_or_default(),
    })
}

fn timestamp_at(obj: &Value, pointer: &str) -> Option<Timestamp> {
    obj.at(pointer)
        .and_then(Value::as_str)
        .and_then(meta::parse_timestamp)
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(cj) = ctx.cron_jobs.get(&key.0, &key.1) else {
        return Ok(Action::Done); // Gone: the garbage collector takes its Jobs.
    };
    let uid = meta::uid(&cj).unwrap_or_default().to_string();
    let jobs = ctx
        .jobs
        .list(Some(&key.0), |j| controller_uid(j) == Some(uid.as_str()));
    let mut sync = Sync {
        ctx: &ctx,
        cj: &cj,
        status: cj
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    sync.track_active(&jobs).await?;
    let requeue = sync.schedule().await;
    let status = Value::Object(sync.status.clone());
    let written = replace_status(&ctx.registry, &cj, status, FIELD_MANAGER).await?;
    cleanup_history(&ctx, &cj, &jobs).await?;
    if let Some(written) = written {
        // Read our own write before the next look, or a Job just created
        // would look like one we did not make.
        ctx.cron_jobs.wait_for(revision_of(&written)).await;
    }
    Ok(match requeue? {
        Some(wait) => Action::RequeueAfter(wait),
        None => Action::Done,
    })
}

/// One reconcile of one CronJob: the status being built.
struct Sync<'a> {
    ctx: &'a Context,
    cj: &'a Value,
    status: Map<String, Value>,
}

impl Sync<'_> {
    fn active(&self) -> Vec<Value> {
        self.status
            .get("active")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn set_active(&mut self, active: Vec<Value>) {
        if active.is_empty() {
            self.status.remove("active");
        } else {
            self.status.insert("active".into(), Value::Array(active));
        }
    }

    fn record(&self, event_type: EventType, reason: &str, message: String) {
        self.ctx
            .events
            .record(self.cj, NAME, event_type, reason, message);
    }

    /// Brings `status.active` and `lastSuccessfulTime` up to date with the Jobs.
    async fn track_active(&mut self, jobs: &[Arc<Value>]) -> Result<(), ApiError> {
        let mut active = self.active();
        let in_active = |active: &[Value], uid: &str| active.iter().any(|r| r["uid"] == uid);
        for job in jobs {
            let uid = meta::uid(job).unwrap_or_default();
            let name = meta::name(job).unwrap_or_default();
            let finished = conditions::finished(job);
            match (&finished, in_active(&active, uid)) {
                (None, false) => self.record(
                    EventType::Warning,
                    "UnexpectedJob",
                    format!("Saw a job that the controller did not create or forgot: {name}"),
                ),
                (Some(Finished { condition, .. }), true) => {
                    active.retain(|r| r["uid"] != uid);
                    self.record(
                        EventType::Normal,
                        "SawCompletedJob",
                        format!("Saw completed job: {name}, condition: {condition}"),
                    );
                }
                _ => {}
            }
            if finished.as_ref().is_some_and(Finished::succeeded)
                && let Some(done) = timestamp_at(job, "/status/completionTime")
                && timestamp_at(&Value::Object(self.status.clone()), "/lastSuccessfulTime")
                    .is_none_or(|last| done > last)
            {
                self.status.insert(
                    "lastSuccessfulTime".into(),
                    json!(meta::format_timestamp(done)),
                );
            }
        }
        // An active Job that is no longer there (ask the store, not the cache).
        let mut kept = Vec::new();
        for r in active {
            let uid = r["uid"].as_str().unwrap_or_default();
            if jobs.iter().any(|j| meta::uid(j) == Some(uid)) {
                kept.push(r);
                continue;
            }
            let name = r["name"].as_str().unwrap_or_default();
            let namespace = meta::namespace(self.cj).unwrap_or_default();
            match self.ctx.registry.try_get(jobs_type()?, namespace, name)? {
                Some(job) if meta::uid(&job) == Some(uid) => kept.push(r),
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
        if meta::deletion_timestamp(cj).is_some() {
            return Ok(None);
        }
        let tz = match cj.at("/spec/timeZone").and_then(Value::as_str) {
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
        if cj.at("/spec/suspend").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        let spec = cj
            .at("/spec/schedule")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let schedule = match Schedule::parse(spec) {
            Ok(s) => s,
            Err(e) => {
                self.record(
                    EventType::Warning,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {spec:?} : {e}"),
                );
                return Ok(None);
            }
        };
        let now = Timestamp::now();
        let history = History {
            created: timestamp_at(cj, "/metadata/creationTimestamp").unwrap_or(now),
            last_schedule: timestamp_at(&Value::Object(self.status.clone()), "/lastScheduleTime"),
            starting_deadline_seconds: cj
                .at("/spec/startingDeadlineSeconds")
                .and_then(Value::as_i64),
        };
        let next = |history: &History| due::requeue_after(&schedule, &tz, history, now);
        let due = match due::most_recent(&schedule, &tz, &history, now, true) {
            Ok(due) => due,
            Err(e) => {
                self.record(
                    EventType::Warning,
                    "InvalidSchedule",
                    format!("invalid schedule: {spec} : {e}"),
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
        let cj_name = meta::name(cj).unwrap_or_default();
        let name = job_name(cj_name, scheduled);
        let mut active = self.active();
        if active.iter().any(|r| r["name"] == name.as_str())
            || history.last_schedule == Some(scheduled)
        {
            return Ok(next(&history));
        }
        match cj.at("/spec/concurrencyPolicy").and_then(Value::as_str) {
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
                    let job_name = r["name"].as_str().unwrap_or_default();
                    delete_job(self.ctx, cj, job_name, r["uid"].as_str()).await?;
                }
                self.set_active(Vec::new());
            }
            _ => {}
        }

        let job = job_from_template(cj, &name, scheduled, &tz);
        let opts = WriteOptions {
            field_manager: FIELD_MANAGER.into(),
            ..Default::default()
        };
        let namespace = meta::namespace(cj).unwrap_or("default");
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
                written.object
            }
            Err(e) if e.reason == Reason::AlreadyExists => {
                // Made by an earlier look whose status write was lost, or by
                // someone else (then it is theirs to track).
                let existing = self.ctx.registry.get(jobs_type()?, namespace, &name)?;
                if controller_uid(&existing) != meta::uid(cj)
                    || active
                        .iter()
                        .any(|r| Some(&r["uid"]) == existing.at("/metadata/uid"))
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
        let stamp = meta::format_timestamp(scheduled);
        self.status.insert("lastScheduleTime".into(), json!(stamp));
        let history = History {
            last_schedule: Some(scheduled),
            ..history
        };
        Ok(next(&history))
    }
}

/// The Job for one scheduled time (`getJobFromTemplate2`).
fn job_from_template(cj: &Value, name: &str, scheduled: Timestamp, tz: &TimeZone) -> Value {
    let template = cj
        .at("/spec/jobTemplate")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut annotations = template
        .at("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        json!(scheduled_stamp(scheduled, tz)),
    );
    let mut metadata = json!({
        "name": name,
        "annotations": annotations,
        "ownerReferences": [controller_ref(cj)],
    });
    if let Some(labels) = template.at("/metadata/labels").filter(|l| l.is_object()) {
        metadata["labels"] = labels.clone();
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Deletes a Job of the CronJob, its pods in the background (`deleteJob`).
async fn delete_job(
    ctx: &Context,
    cj: &Value,
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
        .delete(
            jobs_type()?,
            meta::namespace(cj).unwrap_or_default(),
            name,
            &opts,
        )
        .await
    {
        Ok(_) => {
            ctx.events.record(
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

/// Deletes the oldest finished Jobs beyond the history limits
/// (`cleanupFinishedJobs`), ordered by start time as Kubernetes orders them.
async fn cleanup_history(ctx: &Context, cj: &Value, jobs: &[Arc<Value>]) -> Result<(), ApiError> {
    for (succeeded, limit) in [
        (true, "/spec/successfulJobsHistoryLimit"),
        (false, "/spec/failedJobsHistoryLimit"),
    ] {
        let Some(limit) = cj.at(limit).and_then(Value::as_i64) else {
            continue;
        };
        let mut finished: Vec<&Arc<Value>> = jobs
            .iter()
            .filter(|j| meta::deletion_timestamp(j).is_none())
            .filter(|j| conditions::finished(j).is_some_and(|f| f.succeeded() == succeeded))
            .collect();
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        if finished.len() <= limit {
            continue;
        }
        // Jobs without a start time sort last; equal times by name.
        finished.sort_by(|a, b| {
            let start = |j: &Value| timestamp_at(j, "/status/startTime");
            match (start(a), start(b)) {
                (Some(x), Some(y)) if x != y => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => meta::name(a).cmp(&meta::name(b)),
            }
        });
        for job in &finished[..finished.len() - limit] {
            delete_job(ctx, cj, meta::name(job).unwrap_or_default(), meta::uid(job)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_named_by_their_scheduled_minute() {
        let t: Timestamp = "2024-05-01T03:00:00Z".parse().unwrap();
        assert_eq!(job_name("nightly", t), "nightly-28575540");
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(scheduled_stamp(t, &berlin), "2024-05-01T05:00:00+02:00");
        assert_eq!(scheduled_stamp(t, &TimeZone::UTC), "2024-05-01T03:00:00Z");
    }

    #[test]
    fn a_job_from_the_template_is_controlled_by_its_cron_job() {
        let cj = json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "pi:v1"}]}}},
            }},
        });
        let t: Timestamp = "2024-05-01T03:00:00Z".parse().unwrap();
        let job = job_from_template(&cj, "pi-28575540", t, &TimeZone::UTC);
        assert_eq!(job["metadata"]["name"], "pi-28575540");
        assert_eq!(job["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(
            job["metadata"]["annotations"],
            json!({"note": "x", SCHEDULED_TIMESTAMP: "2024-05-01T03:00:00Z"})
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }
}
