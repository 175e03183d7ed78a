//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the
//! selector, as Kubernetes' does. It adopts matching orphans and releases pods
//! that stopped matching (by `ownerReferences`), creates missing pods from the
//! template, deletes the surplus (unready and newest first), and reports
//! `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
//! with `minReadySeconds`, observedGeneration).

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_api::meta;
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Reason};

use super::pod_control::{
    self, Owner as _, PodControl, availability, controller_uid, deletion_order, is_active,
};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_typed_status;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::Registry;
use crate::store::Revision;

pub const NAME: &str = "replicaset-controller";
const FIELD_MANAGER: &str = "skiff-replicaset-controller";
/// Pods deleted concurrently at most, per reconcile.
const BURST: usize = 100;

/// What a reconcile needs.
pub struct Context {
    pub registry: Registry,
    pub replica_sets: Informer<ReplicaSet>,
    pub pods: Informer<Pod>,
    pub events: EventRecorder,
    pub pod_control: PodControl,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let ctx = Arc::new(Context {
        pod_control: PodControl::new(deps.registry.clone(), FIELD_MANAGER),
        registry: deps.registry,
        replica_sets: deps.informers.replica_sets,
        pods: deps.informers.pods,
        events: deps.events,
    });
    Controller::new(NAME, &ctx.replica_sets)
        .owns_or_adopts(&ctx.pods, "/spec/selector")
        .run(4, ctx, reconcile)
        .await;
}

fn selector(rs: &ReplicaSet) -> Result<LabelSelector, ApiError> {
    super::typed::selector(rs.spec.as_ref().map(|s| &s.selector))
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(rs) = ctx.replica_sets.get_typed(&key.0, &key.1) else {
        return Ok(Action::Done); // Gone: the garbage collector takes its pods.
    };
    let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
    let selector = selector(&rs)?;
    let mut last_write: Revision = 0;

    // Claim: adopt matching orphans, release owned pods that no longer match.
    let mut owned: Vec<Arc<Value>> = Vec::new();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    for pod in ctx.pods.list(Some(&key.0), |_| true) {
        let matches = !selector.is_empty() && selector.matches_object(&pod);
        match controller_uid(&pod) {
            Some(uid) if uid == rs_uid => {
                if matches || deleting {
                    owned.push(pod);
                } else {
                    last_write = last_write.max(ctx.pod_control.release(&rs_uid, &pod).await?);
                }
            }
            None if matches && !deleting && meta::deletion_timestamp(&pod).is_none() => {
                match ctx.pod_control.adopt(&rs, &pod).await {
                    Ok(rev) => {
                        last_write = last_write.max(rev);
                        owned.push(pod);
                    }
                    Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    let active: Vec<Arc<Value>> = owned.iter().filter(|p| is_active(p)).cloned().collect();

    if !deleting {
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let want = usize::try_from(want).unwrap_or(0);
        if active.len() < want {
            last_write = last_write.max(create_pods(&ctx, &rs, want - active.len()).await?);
        } else if active.len() > want {
            let mut victims = active.clone();
            victims.sort_by(|a, b| deletion_order(a, b));
            victims.truncate(active.len() - want);
            last_write = last_write.max(delete_pods(&ctx, &rs, &victims).await?);
        }
    }
    if last_write > 0 {
        // Read our own writes before the next look at this set.
        ctx.pods.wait_for(last_write).await;
    }
    update_status(&ctx, &rs, &selector).await
}

async fn create_pods(ctx: &Context, rs: &ReplicaSet, count: usize) -> Result<Revision, ApiError> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| ApiError::internal(format!("encoding a pod template: {e}")))?
        .unwrap_or_else(|| Value::Object(Default::default()));
    let created = ctx
        .pod_control
        .create_all(rs, count, |_| Cow::Borrowed(&template), &ctx.events, NAME)
        .await;
    created.settled(&ctx.pods).await
}

async fn delete_pods(
    ctx: &Context,
    rs: &ReplicaSet,
    victims: &[Arc<Value>],
) -> Result<Revision, ApiError> {
    let mut last = 0;
    for chunk in victims.chunks(BURST) {
        let results = join_all(chunk.iter().map(|p| ctx.pod_control.delete(p))).await;
        for (pod, r) in chunk.iter().zip(results) {
            if let Some(rev) = r? {
                last = last.max(rev);
                ctx.events.record_typed(
                    rs,
                    NAME,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", meta::name(pod).unwrap_or_default()),
                );
            }
        }
    }
    Ok(last)
}

/// Writes `status` from the pods now in the cache; asks to run again when a
/// ready pod will become available (minReadySeconds).
async fn update_status(
    ctx: &Context,
    rs: &ReplicaSet,
    selector: &LabelSelector,
) -> Result<Action, ApiError> {
    let rs_uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let pods = ctx.pods.list(Some(rs.namespace()), |p| {
        controller_uid(p) == Some(rs_uid) && is_active(p) && selector.matches_object(p)
    });
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).map_or(0, i64::from);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let now = jiff::Timestamp::now();
    let mut ready = 0;
    let mut available = 0;
    let mut fully_labeled = 0;
    let mut next: Option<std::time::Duration> = None;
    for pod in &pods {
        let labels = meta::labels(pod);
        if template_labels
            .into_iter()
            .flatten()
            .all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v.as_str()))
        {
            fully_labeled += 1;
        }
        if pod_control::is_ready(pod) {
            ready += 1;
        }
        match availability(pod, min_ready, now) {
            (true, _) => available += 1,
            (false, Some(wait)) => next = Some(next.map_or(wait, |n| n.min(wait))),
            _ => {}
        }
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let status = ReplicaSetStatus {
        replicas: count(pods.len()),
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: Some(rs.metadata.generation.unwrap_or(0)),
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    write_typed_status(
        &ctx.registry,
        rs,
        rs.status.as_ref(),
        &status,
        FIELD_MANAGER,
    )
    .await?;
    Ok(match next {
        Some(wait) => Action::RequeueAfter(wait + std::time::Duration::from_millis(10)),
        None => Action::Done,
    })
}
