//! The Job controller, as Kubernetes' (`pkg/controller/job`) for `NonIndexed`
//! Jobs: it runs pods from the template until `completions` of them succeeded
//! (or, without `completions`, until one succeeded and none runs), at most
//! `parallelism` at a time, replacing failed pods after a back-off. More than
//! `backoffLimit` failures, or running longer than `activeDeadlineSeconds`,
//! fails the Job and deletes its active pods; `suspend` deletes them and waits.
//!
//! Pods are counted through the `batch.kubernetes.io/job-tracking` finalizer
//! (see [`tally`]), so a finished pod that is deleted is still counted. The
//! end is written as Kubernetes 1.31+ writes it: first the interim condition
//! (`SuccessCriteriaMet` or `FailureTarget`), then, once no pod is left
//! running or terminating and every pod is counted, `Complete` (with
//! `completionTime`) or `Failed`.
//!
//! The Job is read typed (`Arc<Job>` from the cache) and its status computed
//! as a [`JobStatus`]; its pods stay the stored JSON, which is what
//! `pod_control` and [`tally`] take.

pub mod conditions;
mod tally;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::patch::PatchType;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Reason};

use self::conditions::{COMPLETE, FAILED, FAILURE_TARGET, SUCCESS_CRITERIA_MET, SUSPENDED};
use self::tally::{Tracking, has_tracking_finalizer};
use super::pod_control::{
    self, PodControl, controller_of, controller_uid, deletion_order, is_active, revision_of,
};
use super::typed;
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef, decode_as};
use crate::registry::{Registry, Subresource, WriteOptions};
use crate::store::Revision;

pub use self::tally::TRACKING_FINALIZER;

pub const NAME: &str = "job-controller";
/// The part that releases pods whose Job is gone.
const ORPHANS: &str = "job-controller-orphan-pods";
const FIELD_MANAGER: &str = "skiff-job-controller";
/// Kubernetes' `MaxPodCreateDeletePerSync`.
const MAX_PODS_PER_SYNC: usize = 500;

/// What a reconcile needs.
pub struct Context {
    pub registry: Registry,
    pub jobs: Informer<Job>,
    pub pods: Informer<Pod>,
    pub events: EventRecorder,
    pub pod_control: PodControl,
}

/// Why a Job is ending: the interim condition it gets at once and the final
/// one it gets when its pods are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ending {
    interim: &'static str,
    last: &'static str,
    reason: &'static str,
    message: &'static str,
}

const COMPLETIONS_REACHED: Ending = Ending {
    interim: SUCCESS_CRITERIA_MET,
    last: COMPLETE,
    reason: "CompletionsReached",
    message: "Reached expected number of succeeded pods",
};
const BACKOFF_LIMIT_EXCEEDED: Ending = Ending {
    interim: FAILURE_TARGET,
    last: FAILED,
    reason: "BackoffLimitExceeded",
    message: "Job has reached the specified backoff limit",
};
const DEADLINE_EXCEEDED: Ending = Ending {
    interim: FAILURE_TARGET,
    last: FAILED,
    reason: "DeadlineExceeded",
    message: "Job was active longer than specified deadline",
};

/// The spec fields the controller acts on, with Kubernetes' defaults.
struct Spec {
    completions: Option<i64>,
    parallelism: i64,
    backoff_limit: i64,
    active_deadline_seconds: Option<i64>,
    suspend: bool,
    restart_on_failure: bool,
    /// podReplacementPolicy `Failed`: replace a pod only once it has failed.
    only_failed: bool,
    indexed: bool,
}

impl Spec {
    fn of(job: &Job) -> Spec {
        let empty = JobSpec::default();
        let spec = job.spec.as_ref().unwrap_or(&empty);
        let restart_policy = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref());
        Spec {
            completions: spec.completions.map(i64::from),
            parallelism: i64::from(spec.parallelism.unwrap_or(1).max(0)),
            backoff_limit: i64::from(spec.backoff_limit.unwrap_or(6).max(0)),
            active_deadline_seconds: spec.active_deadline_seconds,
            suspend: spec.suspend == Some(true),
            restart_on_failure: restart_policy == Some("OnFailure"),
            only_failed: spec.pod_replacement_policy.as_deref() == Some("Failed"),
            indexed: spec.completion_mode.as_deref() == Some("Indexed"),
        }
    }
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let (registry, jobs, pods, events) = (
        deps.registry,
        deps.informers.jobs,
        deps.informers.pods,
        deps.events,
    );
    let ctx = Arc::new(Context {
        pod_control: PodControl::new(registry.clone(), FIELD_MANAGER),
        registry,
        jobs,
        pods,
        events,
    });
    let jobs = Controller::new(NAME, &ctx.jobs)
        .watches(&ctx.pods, {
            let ctx = ctx.clone();
            move |pod| jobs_of(&ctx, pod)
        })
        .run(4, ctx.clone(), reconcile);
    // Pods holding the tracking finalizer whose Job is gone are released
    // (Kubernetes' orphan queue in the same controller).
    let orphans = Controller::new(ORPHANS, &ctx.pods)
        .for_primaries_where({
            let ctx = ctx.clone();
            move |pod| has_tracking_finalizer(pod) && !has_known_job(&ctx, pod)
        })
        .run(1, ctx.clone(), release_orphan);
    tokio::join!(jobs, orphans);
}

/// Whether the Job that `pod` names as its controller is in the cache.
fn has_known_job(ctx: &Context, pod: &Value) -> bool {
    let namespace = meta::namespace(pod).unwrap_or_default();
    match controller_of(pod) {
        Some(("Job", name)) => ctx
            .jobs
            .get_typed(namespace, name)
            .is_some_and(|job| job.metadata.uid.as_deref() == controller_uid(pod)),
        _ => false,
    }
}

/// The Job that owns `pod`, or the unfinished Jobs that would adopt it.
fn jobs_of(ctx: &Context, pod: &Value) -> Vec<ObjectRef> {
    let namespace = meta::namespace(pod).unwrap_or_default();
    match controller_of(pod) {
        Some(("Job", name)) if has_known_job(ctx, pod) => {
            vec![(namespace.to_string(), name.to_string())]
        }
        Some(_) => Vec::new(),
        None => ctx
            .jobs
            .list_typed(Some(namespace), |job| {
                conditions::finished(job).is_none()
                    && selector(job).is_ok_and(|s| !s.is_empty() && s.matches_object(pod))
            })
            .iter()
            .map(|job| {
                (
                    typed::namespace(&job.metadata).to_string(),
                    typed::name(&job.metadata).to_string(),
                )
            })
            .collect(),
    }
}

fn selector(job: &Job) -> Result<LabelSelector, ApiError> {
    super::typed::selector(job.spec.as_ref().and_then(|s| s.selector.as_ref()))
}

fn jobs_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("batch/v1", "Job").ok_or_else(|| ApiError::internal("no Job kind"))
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(job) = ctx.jobs.get_typed(&key.0, &key.1) else {
        return Ok(Action::Done); // Gone: the garbage collector takes its pods.
    };
    let mut sync = Sync {
        ctx: &ctx,
        job,
        pod_write: 0,
        job_write: 0,
    };
    let result = sync.run().await;
    // Read our own writes before the next look at this Job.
    if sync.pod_write > 0 {
        ctx.pods.wait_for(sync.pod_write).await;
    }
    if sync.job_write > 0 {
        ctx.jobs.wait_for(sync.job_write).await;
    }
    result
}

/// Takes the tracking finalizer off a pod whose Job is gone, so that its
/// deletion can finish (Kubernetes' `handleOrphanPod`).
async fn release_orphan(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(pod) = ctx.pods.get(&key.0, &key.1) else {
        return Ok(Action::Done);
    };
    if !has_tracking_finalizer(&pod) {
        return Ok(Action::Done);
    }
    if let Some(("Job", name)) = controller_of(&pod) {
        // Ask the store, not the cache: a Job the cache has not seen yet is not gone.
        let job = ctx.registry.try_get(jobs_type()?, &key.0, name)?;
        if job.is_some_and(|j| meta::uid(&j) == controller_uid(&pod)) {
            return Ok(Action::Done); // Its Job counts and releases it.
        }
    }
    remove_finalizer(&ctx.registry, &pod).await?;
    Ok(Action::Done)
}

/// Removes the tracking finalizer from a pod (and nothing else).
async fn remove_finalizer(registry: &Registry, pod: &Value) -> Result<Revision, ApiError> {
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
    }});
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    match registry
        .patch(
            pod_control::pods_type()?,
            meta::namespace(pod).unwrap_or_default(),
            meta::name(pod).unwrap_or_default(),
            PatchType::StrategicMerge,
            patch,
            Subresource::Main,
            &opts,
        )
        .await
    {
        Ok(written) => Ok(revision_of(&written.object)),
        Err(e) if e.reason == Reason::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// One sync of one Job: the Job as last written, and the revisions of our
/// last writes (for read-your-writes).
struct Sync<'a> {
    ctx: &'a Context,
    job: Arc<Job>,
    pod_write: Revision,
    job_write: Revision,
}

impl Sync<'_> {
    async fn run(&mut self) -> Result<Action, ApiError> {
        let Ok(selector) = selector(&self.job) else {
            return Ok(Action::Done); // Refused by validation; nothing sensible to do.
        };
        if selector.is_empty() {
            return Ok(Action::Done); // Selects everything: Kubernetes refuses to act too.
        }
        let over = self.job.metadata.deletion_timestamp.is_some()
            || conditions::finished(&self.job).is_some();
        if !over {
            self.claim(&selector).await?;
        }
        let pods = self.pods().await;
        if over {
            // Nothing is counted any more: let every pod go.
            let held: Vec<&Arc<Value>> =
                pods.iter().filter(|p| has_tracking_finalizer(p)).collect();
            self.release(&held).await?;
            return Ok(Action::Done);
        }
        let spec = Spec::of(&self.job);
        if spec.indexed {
            self.ctx.events.record_typed(
                &*self.job,
                NAME,
                EventType::Warning,
                "UnsupportedCompletionMode",
                "Skiff runs NonIndexed Jobs only; completionMode Indexed is not supported",
            );
            return Ok(Action::Done);
        }

        // Count finished pods: note them, release them, then count them.
        let mut tracking = Tracking::of(&self.job);
        if tracking.observe(&pods, spec.only_failed) {
            let mut status = self.status();
            tracking.write_into(&mut status);
            self.write_status(status).await?;
        }
        let held = tracking.to_release(&pods);
        self.release(&held).await?;
        let pods = self.pods().await;
        tracking.settle(&pods);
        // Decide on this one snapshot of the pods: one that finished since the
        // first look is no longer active, so it must count already (it is
        // noted and released by the next sync, which its change queues).
        let mut seen = tracking.clone();
        seen.observe(&pods, spec.only_failed);

        let now = Timestamp::now();
        let mut status = self.status();
        let mut conds = status.conditions.clone().unwrap_or_default();
        let mut start_time = status.start_time.as_ref().map(|t| t.0);
        if start_time.is_none() && !spec.suspend {
            start_time = Some(now);
        }
        let active: Vec<Arc<Value>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        let (succeeded, failed) = (seen.total_succeeded(), seen.total_failed());
        let mut requeue: Option<Duration> = None;

        let mut ending = [
            COMPLETIONS_REACHED,
            BACKOFF_LIMIT_EXCEEDED,
            DEADLINE_EXCEEDED,
        ]
        .into_iter()
        .find(|e| {
            conditions::true_condition(&self.job, e.interim)
                .is_some_and(|c| c.reason.as_deref() == Some(e.reason))
        });
        if ending.is_none() {
            if failed > spec.backoff_limit
                || spec.restart_on_failure
                    && tally::past_backoff_limit_on_failure(&active, spec.backoff_limit)
            {
                ending = Some(BACKOFF_LIMIT_EXCEEDED);
            } else if let (Some(deadline), Some(start), false) =
                (spec.active_deadline_seconds, start_time, spec.suspend)
            {
                // Saturates: a start time far in the future (clock skew, or a
                // status written by hand) must not overflow the subtraction.
                let left = jiff::SignedDuration::from_secs(deadline)
                    .saturating_sub(now.duration_since(start));
                if left.is_positive() {
                    requeue = Some(left.unsigned_abs());
                } else {
                    ending = Some(DEADLINE_EXCEEDED);
                }
            }
        }

        match ending {
            Some(_) => self.delete_pods(&active).await?,
            None if spec.suspend => {
                self.delete_pods(&active).await?;
                if conditions::ensure(
                    &mut conds,
                    SUSPENDED,
                    true,
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    self.record(EventType::Normal, "Suspended", "Job suspended");
                }
            }
            None => {
                if conditions::ensure(
                    &mut conds,
                    SUSPENDED,
                    false,
                    "JobResumed",
                    "Job resumed",
                    now,
                ) {
                    // A resumed Job starts its deadline afresh.
                    start_time = Some(now);
                    self.record(EventType::Normal, "Resumed", "Job resumed");
                }
                let have = count(active.len());
                let want = tally::want_active(spec.completions, spec.parallelism, succeeded, have);
                let mut running = have;
                if have > want {
                    let mut victims = active.clone();
                    victims.sort_by(|a, b| deletion_order(a, b));
                    victims.truncate(usize::try_from(have.saturating_sub(want)).unwrap_or(0));
                    self.delete_pods(&victims).await?;
                    running = want;
                } else if have < want {
                    match tally::failure_backoff(&pods, now, spec.only_failed) {
                        Some(wait) => requeue = Some(requeue.map_or(wait, |r| r.min(wait))),
                        None => {
                            let terminating = if spec.only_failed {
                                count(pods.iter().filter(|p| is_terminating(p)).count())
                            } else {
                                0
                            };
                            let n = want.saturating_sub(have).saturating_sub(terminating);
                            let n = usize::try_from(n).unwrap_or(0).min(MAX_PODS_PER_SYNC);
                            let created = self.create_pods(n).await?;
                            running = running.saturating_add(count(created));
                        }
                    }
                }
                let complete = match spec.completions {
                    None => succeeded > 0 && running == 0,
                    Some(c) => succeeded >= c && running == 0,
                };
                if complete {
                    ending = Some(COMPLETIONS_REACHED);
                }
            }
        }

        // The status, from the pods as they are after this sync's writes.
        let pods = self.pods().await;
        let active_now = pods.iter().filter(|p| is_active(p)).count();
        let ready = pods
            .iter()
            .filter(|p| is_active(p) && pod_control::is_ready(p))
            .count();
        let terminating = pods.iter().filter(|p| is_terminating(p)).count();
        let mut finished = None;
        if let Some(e) = ending {
            conditions::ensure(&mut conds, e.interim, true, e.reason, e.message, now);
            // Every pod counted, none left to finish, as of the latest look.
            seen.observe(&pods, spec.only_failed);
            if seen.is_settled() && terminating == 0 && active_now == 0 {
                conditions::ensure(&mut conds, e.last, true, e.reason, e.message, now);
                if e.last == COMPLETE {
                    status.completion_time = Some(conditions::seconds(now));
                }
                finished = Some(e);
                requeue = None;
            }
        }
        status.conditions = (!conds.is_empty()).then_some(conds);
        status.start_time = start_time.map(conditions::seconds);
        status.active = (active_now > 0).then(|| count_i32(active_now));
        status.ready = Some(count_i32(ready));
        status.terminating = Some(count_i32(terminating));
        tracking.write_into(&mut status);
        self.write_status(status).await?;
        match finished {
            Some(e) if e.last == COMPLETE => {
                self.record(EventType::Normal, "Completed", "Job completed")
            }
            Some(e) => self.record(EventType::Warning, e.reason, e.message),
            None => {}
        }
        Ok(requeue.map_or(Action::Done, |wait| {
            Action::RequeueAfter(wait + Duration::from_millis(10))
        }))
    }

    /// The Job's status, to edit.
    fn status(&self) -> JobStatus {
        self.job.status.clone().unwrap_or_default()
    }

    fn record(&self, event_type: EventType, reason: &str, message: &str) {
        self.ctx
            .events
            .record_typed(&*self.job, NAME, event_type, reason, message.to_string());
    }

    /// The pods this Job controls, from the cache, once it has seen our writes.
    async fn pods(&self) -> Vec<Arc<Value>> {
        if self.pod_write > 0 {
            self.ctx.pods.wait_for(self.pod_write).await;
        }
        let uid = self.job.metadata.uid.as_deref().unwrap_or_default();
        self.ctx
            .pods
            .list(self.job.metadata.namespace.as_deref(), |p| {
                controller_uid(p) == Some(uid)
            })
    }

    /// Adopts matching orphans and releases owned pods that stopped matching
    /// (`ClaimPods`); only a Job with a manual selector can meet either.
    async fn claim(&mut self, selector: &LabelSelector) -> Result<(), ApiError> {
        let uid = self.job.metadata.uid.clone().unwrap_or_default();
        let candidates = self
            .ctx
            .pods
            .list(self.job.metadata.namespace.as_deref(), |p| {
                let matches = selector.matches_object(p);
                match controller_uid(p) {
                    Some(u) => u == uid && !matches,
                    None => matches && meta::deletion_timestamp(p).is_none(),
                }
            });
        for pod in candidates {
            let result = if controller_uid(&pod).is_some() {
                self.ctx.pod_control.release(&uid, &pod).await
            } else {
                self.ctx.pod_control.adopt(&self.job, &pod).await
            };
            match result {
                Ok(rev) => self.pod_write = self.pod_write.max(rev),
                Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Takes the tracking finalizer off `pods`.
    async fn release(&mut self, pods: &[&Arc<Value>]) -> Result<(), ApiError> {
        for chunk in pods.chunks(MAX_PODS_PER_SYNC) {
            let results = join_all(
                chunk
                    .iter()
                    .map(|p| remove_finalizer(&self.ctx.registry, p)),
            )
            .await;
            for rev in results {
                self.pod_write = self.pod_write.max(rev?);
            }
        }
        Ok(())
    }

    /// Writes the Job's status when it changed, and continues from the Job
    /// as written (a sync may write twice, the second over the first).
    async fn write_status(&mut self, status: JobStatus) -> Result<(), ApiError> {
        let written = crate::controllers::write_typed_status(
            &self.ctx.registry,
            self.job.as_ref(),
            self.job.status.as_ref(),
            &status,
            FIELD_MANAGER,
        )
        .await?;
        if let Some(written) = written {
            self.job_write = self.job_write.max(revision_of(&written));
            self.job = Arc::new(decode_as::<Job>(&written)?);
        }
        Ok(())
    }

    /// Creates `count` pods in slow-start batches
    /// ([`PodControl::create_all`]). Returns how many it created.
    async fn create_pods(&mut self, count: usize) -> Result<usize, ApiError> {
        let mut template = self
            .job
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .finalizers = Some(vec![TRACKING_FINALIZER.to_string()]);
        let template = serde_json::to_value(&template)
            .map_err(|e| ApiError::internal(format!("encoding a pod template: {e}")))?;
        let created = self
            .ctx
            .pod_control
            .create_all(
                &self.job,
                count,
                |_| Cow::Borrowed(&template),
                &self.ctx.events,
                NAME,
            )
            .await;
        self.pod_write = self.pod_write.max(created.last);
        match created.error {
            Some(e) => Err(e),
            None => Ok(created.count),
        }
    }

    async fn delete_pods(&mut self, victims: &[Arc<Value>]) -> Result<(), ApiError> {
        for chunk in victims.chunks(MAX_PODS_PER_SYNC) {
            let results = join_all(chunk.iter().map(|p| self.ctx.pod_control.delete(p))).await;
            for (pod, r) in chunk.iter().zip(results) {
                if let Some(rev) = r? {
                    self.pod_write = self.pod_write.max(rev);
                    let message = format!("Deleted pod: {}", meta::name(pod).unwrap_or_default());
                    self.record(EventType::Normal, "SuccessfulDelete", &message);
                }
            }
        }
        Ok(())
    }
}

/// A number of pods as a count.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A number of pods as a status field.
fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Being deleted and not yet finished (`status.terminating`).
fn is_terminating(pod: &Value) -> bool {
    meta::deletion_timestamp(pod).is_some()
        && !matches!(
            pod.at("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
}
