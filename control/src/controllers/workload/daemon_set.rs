//! The DaemonSet controller, as Kubernetes' (`pkg/controller/daemon`): one pod
//! per eligible node (by the template's node selector, required node affinity
//! and tolerations against the node's taints), none on the others. Since
//! Kubernetes 1.12 the controller does not bind: each pod carries a required
//! node affinity on `metadata.name` naming its node, and the scheduler places it
//! there. A node that stops qualifying loses its pod (a NoSchedule taint only
//! keeps new pods off; NoExecute evicts), a new node gets one, and a deleted
//! node's pod is removed by the pod garbage collector.
//!
//! Pods carry the `controller-revision-hash` of the template they were made
//! from (Skiff serves no ControllerRevision kind; the hash alone tells old
//! pods from new ones). `updateStrategy` RollingUpdate replaces old pods within
//! `maxUnavailable` (or surges within `maxSurge`); OnDelete leaves them until
//! a user deletes them. Status has the counts `kubectl rollout status` reads.
//!
//! The decisions are pure functions ([`eligibility`], [`plan`]); this file
//! reads the caches, writes pods and status, and records Events.

pub mod eligibility;
pub mod plan;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;
use skiff_api::meta;
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Reason};
use tokio::time::Instant;

use super::deployment::{template_hash, template_json};
use super::pod_control::{Owner as _, PodControl, controller_uid};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_typed_status;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::Registry;
use crate::store::{EventType as WatchEventType, Revision};
use eligibility::{Eligibility, NodeFit};
use plan::{Counts, Plan};

pub const NAME: &str = "daemonset-controller";
const FIELD_MANAGER: &str = "skiff-daemonset-controller";
/// Kubernetes' failed-pod backoff: 1 s, doubling up to 15 minutes.
const FAILED_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// What a reconcile needs.
pub struct Context {
    pub registry: Registry,
    pub daemon_sets: Informer<DaemonSet>,
    pub nodes: Informer<Node>,
    pub pods: Informer<Pod>,
    pub events: EventRecorder,
    pub pod_control: PodControl,
    failed: FailedPodBackoff,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let (registry, daemon_sets, nodes, pods, events) = (
        deps.registry,
        deps.informers.daemon_sets,
        deps.informers.nodes,
        deps.informers.pods,
        deps.events,
    );
    let ctx = Arc::new(Context {
        pod_control: PodControl::new(registry.clone(), FIELD_MANAGER),
        registry,
        daemon_sets,
        nodes,
        pods,
        events,
        failed: FailedPodBackoff::default(),
    });
    Controller::new(NAME, &ctx.daemon_sets)
        .owns_or_adopts(&ctx.pods, "/spec/selector")
        .reconciles_all_when(&ctx.nodes, |event, node, before| {
            event != WatchEventType::Modified || before.is_none_or(|b| placement_changed(b, node))
        })
        .run(2, ctx, reconcile)
        .await;
}

/// Whether a node change can change where daemon pods belong: its labels or
/// spec (taints, cordon). Heartbeats and other status updates cannot.
fn placement_changed(prev: &Value, node: &Value) -> bool {
    meta::labels(prev) != meta::labels(node) || prev.get("spec") != node.get("spec")
}

fn selector(ds: &DaemonSet) -> Result<LabelSelector, ApiError> {
    super::typed::selector(ds.spec.as_ref().map(|s| &s.selector))
}

fn min_ready_seconds(ds: &DaemonSet) -> i64 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .map_or(0, i64::from)
}

/// The DaemonSet's pod template as JSON.
fn template(ds: &DaemonSet) -> Value {
    ds.spec.as_ref().map_or_else(
        || Value::Object(Default::default()),
        |s| template_json(&s.template),
    )
}

/// The hash of the DaemonSet's current template (the `controller-revision-hash`).
fn current_hash(ds: &DaemonSet) -> String {
    let collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    template_hash(&template(ds), i64::from(collisions))
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(ds) = ctx.daemon_sets.get_typed(&key.0, &key.1) else {
        return Ok(Action::Done); // Gone: the garbage collector takes its pods.
    };
    if ds.metadata.deletion_timestamp.is_some() {
        // As Kubernetes: a DaemonSet being deleted is neither synced nor given
        // status; its pods are orphaned or collected per the propagation policy.
        return Ok(Action::Done);
    }
    let selector = selector(&ds)?;
    if selector.is_empty() {
        ctx.events.record_typed(
            ds.as_ref(),
            NAME,
            EventType::Warning,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        );
        return Ok(Action::Done);
    }
    let claimed = claim(&ctx, &ds, &selector).await?;
    if claimed > 0 {
        ctx.pods.wait_for(claimed).await;
    }

    let hash = current_hash(&ds);
    let min_ready = min_ready_seconds(&ds);
    let eligibility = Eligibility::of(&ds);
    let fits: Vec<(String, NodeFit)> = ctx
        .nodes
        .list(None, |_| true)
        .iter()
        .filter_map(|n| Some((meta::name(n)?.to_string(), eligibility.check(n))))
        .collect();
    let desired = fits.iter().filter(|(_, f)| f.should_run).count();
    let now = jiff::Timestamp::now();

    let layout = plan::group(&fits, owned_pods(&ctx, &ds, &selector));
    let mut todo = plan::manage(&layout, &hash, plan::allows_surge(&ds), min_ready, now);
    let mut retry_failed: Option<Duration> = None;
    // Roll only once the pods are where they belong (Kubernetes waits for
    // manage's writes to be observed before it rolls).
    if todo.is_empty()
        && let Some(bounds) = plan::bounds(&ds, desired)
    {
        todo = plan::rolling_update(&layout, &hash, bounds, desired, min_ready, now);
    }
    let written = execute(&ctx, &ds, &hash, todo, &mut retry_failed).await?;
    if written > 0 {
        // Read our own writes before counting.
        ctx.pods.wait_for(written).await;
    }

    let layout = plan::group(&fits, owned_pods(&ctx, &ds, &selector));
    let (counts, until_available) = plan::status(&layout, &hash, min_ready, jiff::Timestamp::now());
    let status = status_of(&ds, &counts);
    write_typed_status(
        &ctx.registry,
        ds.as_ref(),
        ds.status.as_ref(),
        &status,
        FIELD_MANAGER,
    )
    .await?;
    let next = [until_available, retry_failed]
        .into_iter()
        .flatten()
        .min()
        .map(|d| d + Duration::from_millis(10));
    Ok(next.map_or(Action::Done, Action::RequeueAfter))
}

/// Adopts matching orphans and releases owned pods that stopped matching
/// (`ClaimPods`). Returns the revision of the last write, or 0.
async fn claim(
    ctx: &Context,
    ds: &DaemonSet,
    selector: &LabelSelector,
) -> Result<Revision, ApiError> {
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let mut last = 0;
    for pod in ctx.pods.list(Some(ds.namespace()), |_| true) {
        let matches = selector.matches_object(&pod);
        match controller_uid(&pod) {
            Some(owner) if owner == uid && !matches => {
                match ctx.pod_control.release(uid, &pod).await {
                    Ok(rev) => last = last.max(rev),
                    Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            None if matches && meta::deletion_timestamp(&pod).is_none() => {
                match ctx.pod_control.adopt(ds, &pod).await {
                    Ok(rev) => last = last.max(rev),
                    Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    Ok(last)
}

/// The DaemonSet's pods, from the cache.
fn owned_pods(ctx: &Context, ds: &DaemonSet, selector: &LabelSelector) -> Vec<Arc<Value>> {
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    ctx.pods.list(Some(ds.namespace()), |p| {
        controller_uid(p) == Some(uid) && selector.matches_object(p)
    })
}

/// Creates and deletes what the plan says; a failed pod is deleted only when
/// its node is not in backoff (else `retry` says when to look again).
/// Returns the revision of the last write, or 0.
async fn execute(
    ctx: &Context,
    ds: &DaemonSet,
    hash: &str,
    plan: Plan,
    retry: &mut Option<Duration>,
) -> Result<Revision, ApiError> {
    let Plan {
        create_on,
        mut delete,
        failed,
    } = plan;
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    for (node, pod) in failed {
        match ctx.failed.check(uid, &node, Instant::now()) {
            Some(wait) => *retry = Some(retry.map_or(wait, |r| r.min(wait))),
            None => {
                ctx.events.record_typed(
                    ds,
                    NAME,
                    EventType::Warning,
                    "FailedDaemonPod",
                    format!(
                        "Found failed daemon pod {}/{} on node {node}, will try to kill it",
                        meta::namespace(&pod).unwrap_or_default(),
                        meta::name(&pod).unwrap_or_default()
                    ),
                );
                delete.push(pod);
            }
        }
    }
    let mut last = create_pods(ctx, ds, hash, &create_on).await?;
    let results = join_all(delete.iter().map(|p| ctx.pod_control.delete(p))).await;
    let mut first_error = None;
    for (pod, result) in delete.iter().zip(results) {
        match result {
            Ok(Some(rev)) => {
                last = last.max(rev);
                ctx.events.record_typed(
                    ds,
                    NAME,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", meta::name(pod).unwrap_or_default()),
                );
            }
            Ok(None) => {}
            Err(e) => {
                ctx.events.record_typed(
                    ds,
                    NAME,
                    EventType::Warning,
                    "FailedDelete",
                    format!("Error deleting: {}", e.message),
                );
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => {
            if last > 0 {
                ctx.pods.wait_for(last).await;
            }
            Err(e)
        }
        None => Ok(last),
    }
}

/// Creates a pod on each node, in slow-start batches
/// ([`PodControl::create_all`]).
async fn create_pods(
    ctx: &Context,
    ds: &DaemonSet,
    hash: &str,
    nodes: &[String],
) -> Result<Revision, ApiError> {
    let template = template(ds);
    let for_node = |i: usize| {
        let node = nodes.get(i).map_or("", String::as_str);
        Cow::Owned(eligibility::pod_template(&template, node, hash))
    };
    let created = ctx
        .pod_control
        .create_all(ds, nodes.len(), for_node, &ctx.events, NAME)
        .await;
    created.settled(&ctx.pods).await
}

/// The status to write: the counts, with the fields Kubernetes omits when
/// zero left out, and what the controller does not own kept.
fn status_of(ds: &DaemonSet, c: &Counts) -> DaemonSetStatus {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let unless_zero = |n: usize| (n > 0).then(|| count(n));
    let stored = ds.status.as_ref();
    DaemonSetStatus {
        current_number_scheduled: count(c.current),
        number_misscheduled: count(c.misscheduled),
        desired_number_scheduled: count(c.desired),
        number_ready: count(c.ready),
        observed_generation: Some(ds.metadata.generation.unwrap_or(0)),
        updated_number_scheduled: unless_zero(c.updated),
        number_available: unless_zero(c.available),
        number_unavailable: unless_zero(c.unavailable),
        collision_count: stored.and_then(|s| s.collision_count),
        conditions: stored.and_then(|s| s.conditions.clone()),
    }
}

/// Per (DaemonSet, node) backoff for deleting failed pods, as Kubernetes'
/// `failedPodsBackoff`: a node that keeps failing its daemon pod gets a
/// replacement after 1 s, then 2 s, 4 s, ... up to 15 minutes.
#[derive(Default)]
struct FailedPodBackoff {
    entries: Mutex<HashMap<(String, String), (Instant, Duration)>>,
}

impl FailedPodBackoff {
    /// `None` when the failed pod may be deleted now (and the backoff grows),
    /// else how long until it may.
    fn check(&self, ds_uid: &str, node: &str, now: Instant) -> Option<Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (ds_uid.to_string(), node.to_string());
        let delay = match entries.get(&key) {
            Some(&(at, delay)) => {
                let since = now.saturating_duration_since(at);
                if since < delay {
                    return Some(delay - since);
                }
                // Quiet for long enough: start over.
                if since > FAILED_BACKOFF_MAX * 2 {
                    FAILED_BACKOFF_FIRST
                } else {
                    (delay * 2).min(FAILED_BACKOFF_MAX)
                }
            }
            None => FAILED_BACKOFF_FIRST,
        };
        entries.insert(key, (now, delay));
        // Bounded: forgetting a node only restarts its backoff.
        if entries.len() > 10_000 {
            entries
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < FAILED_BACKOFF_MAX * 2);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn failed_pods_back_off_per_node() {
        let backoff = FailedPodBackoff::default();
        let t0 = Instant::now();
        assert_eq!(backoff.check("ds", "a", t0), None);
        assert_eq!(
            backoff.check("ds", "a", t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(backoff.check("ds", "b", t0), None, "another node");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(backoff.check("ds", "a", t1), None);
        assert_eq!(
            backoff.check("ds", "a", t1 + Duration::from_secs(1)),
            Some(Duration::from_secs(1)),
            "the second delay is twice the first"
        );
    }

    #[test]
    fn status_omits_what_kubernetes_omits_and_keeps_the_collision_count() {
        let ds = |d: Value| -> DaemonSet { serde_json::from_value(d).unwrap() };
        let with_collision = ds(json!({"metadata": {"generation": 3},
            "status": {"collisionCount": 1, "currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                "numberMisscheduled": 0, "numberReady": 0}}));
        let counts = Counts {
            desired: 2,
            current: 2,
            ready: 1,
            updated: 2,
            available: 1,
            unavailable: 1,
            misscheduled: 0,
        };
        assert_eq!(
            serde_json::to_value(status_of(&with_collision, &counts)).unwrap(),
            json!({"currentNumberScheduled": 2, "numberMisscheduled": 0, "desiredNumberScheduled": 2,
                "numberReady": 1, "observedGeneration": 3, "updatedNumberScheduled": 2,
                "numberAvailable": 1, "numberUnavailable": 1, "collisionCount": 1})
        );
        let none = status_of(
            &ds(json!({"metadata": {"generation": 1}})),
            &Counts::default(),
        );
        assert_eq!(
            serde_json::to_value(none).unwrap(),
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                "numberReady": 0, "observedGeneration": 1})
        );
    }

    #[test]
    fn heartbeats_do_not_move_daemon_pods_but_labels_and_taints_do() {
        let node = json!({"metadata": {"name": "n", "labels": {"a": "1"}}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]}});
        let mut beat = node.clone();
        beat["status"]["conditions"][0]["lastHeartbeatTime"] = json!("t2");
        assert!(!placement_changed(&node, &beat));
        let mut labeled = node.clone();
        labeled["metadata"]["labels"]["b"] = json!("2");
        assert!(placement_changed(&node, &labeled));
        let mut tainted = node.clone();
        tainted["spec"]["taints"] = json!([{"key": "k", "effect": "NoSchedule"}]);
        assert!(placement_changed(&node, &tainted));
    }
}
