//! The TTL-after-finished controller, as Kubernetes' (`pkg/controller/ttlafterfinished`):
//! a finished Job with `ttlSecondsAfterFinished` is deleted (its pods in the
//! background, by the garbage collector) that many seconds after its
//! `Complete` or `Failed` condition turned true. It sleeps until then.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use super::job::conditions;
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{DeleteOptions, PropagationPolicy, Registry};

pub const NAME: &str = "ttl-after-finished-controller";

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let (registry, jobs) = (deps.registry, deps.informers.jobs);
    let ctx = Arc::new(Context {
        registry,
        jobs: jobs.clone(),
    });
    Controller::new(NAME, &jobs)
        .for_primaries_where(has_ttl)
        .run(1, ctx, reconcile)
        .await;
}

struct Context {
    registry: Registry,
    jobs: Informer<Job>,
}

/// Which Jobs the controller looks at. The runtime's filter sees the Job as
/// stored, before any reconcile decodes it.
fn has_ttl(job: &Value) -> bool {
    job.at("/spec/ttlSecondsAfterFinished").is_some()
}

/// How long until a finished Job expires (zero once it has), or `None` while
/// it has no TTL, has not finished, or is being deleted.
fn time_left(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = conditions::finished(job)?.at?;
    // Past the end of time: never expires.
    let expires = finished
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
        .ok()?;
    let left = expires.duration_since(now);
    Some(if left.is_positive() {
        left.unsigned_abs()
    } else {
        Duration::ZERO
    })
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let (registry, jobs) = (&ctx.registry, &ctx.jobs);
    let Some(job) = jobs.get_typed(&key.0, &key.1) else {
        return Ok(Action::Done);
    };
    let rt = by_kind("batch/v1", "Job").ok_or_else(|| ApiError::internal("no Job kind"))?;
    match time_left(&job, jiff::Timestamp::now()) {
        None => return Ok(Action::Done),
        Some(left) if !left.is_zero() => return Ok(Action::RequeueAfter(left)),
        Some(_) => {}
    }
    // The cache may be behind a user who just changed the TTL: look again at
    // the stored Job, and delete exactly that version of it.
    let Some(fresh) = registry.try_get(rt, &key.0, &key.1)? else {
        return Ok(Action::Done);
    };
    let fresh = crate::informer::decode_as::<Job>(&fresh)?;
    if fresh.metadata.uid != job.metadata.uid {
        return Ok(Action::Done);
    }
    match time_left(&fresh, jiff::Timestamp::now()) {
        None => return Ok(Action::Done),
        Some(left) if !left.is_zero() => return Ok(Action::RequeueAfter(left)),
        Some(_) => {}
    }
    let opts = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        // As `meta::resource_version`: an empty one is no precondition.
        precondition_resource_version: fresh.metadata.resource_version.filter(|v| !v.is_empty()),
        ..Default::default()
    };
    match registry.delete(rt, &key.0, &key.1, &opts).await {
        Ok(_) => Ok(Action::Done),
        Err(e) if e.reason == Reason::NotFound => Ok(Action::Done),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A Job from its JSON, with the fields its type requires filled in.
    fn job(mut v: Value) -> Job {
        v["metadata"]["name"] = json!("pi");
        v["spec"]["template"] = json!({});
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_finished_job_expires_its_ttl_after_its_end() {
        let now: jiff::Timestamp = "2024-05-01T10:00:30Z".parse().unwrap();
        let mut finished = json!({"spec": {"ttlSecondsAfterFinished": 60}, "status": {"conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}]}});
        assert_eq!(
            time_left(&job(finished.clone()), now),
            Some(Duration::from_secs(30))
        );
        let later: jiff::Timestamp = "2024-05-01T10:05:00Z".parse().unwrap();
        assert_eq!(
            time_left(&job(finished.clone()), later),
            Some(Duration::ZERO)
        );
        let mut no_ttl = finished.clone();
        no_ttl["spec"] = json!({});
        assert_eq!(time_left(&job(no_ttl), later), None);
        finished["metadata"] = json!({"deletionTimestamp": "2024-05-01T10:04:00Z"});
        assert_eq!(time_left(&job(finished), later), None);
        let running = json!({"spec": {"ttlSecondsAfterFinished": 0}, "status": {}});
        assert_eq!(time_left(&job(running), now), None);
    }
}
