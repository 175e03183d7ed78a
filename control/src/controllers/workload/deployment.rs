//! The Deployment controller, as Kubernetes' (`pkg/controller/deployment`): one
//! ReplicaSet per pod template (named by the template's hash, carrying the
//! `deployment.kubernetes.io/revision` annotation), rolled from old to new by
//! the strategy — RollingUpdate within `maxSurge` / `maxUnavailable`, or
//! Recreate — and status with the conditions `kubectl rollout status` reads:
//! `Available` and `Progressing` (`NewReplicaSetCreated`, `ReplicaSetUpdated`,
//! `NewReplicaSetAvailable`, `ProgressDeadlineExceeded`, `DeploymentPaused`).
//! A paused Deployment is scaled but not rolled; old ReplicaSets beyond
//! `revisionHistoryLimit` are deleted once the rollout is complete.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Reason};

use super::pod_control::{controller_of, controller_uid, revision_of};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_status;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{DeleteOptions, Registry, Subresource, WriteOptions};
use crate::store::Revision;

mod plan;
mod status;
mod template;

pub use template::template_hash;

use plan::{Recreate, SetSize, int, replicas_of, revision, surge_and_unavailable};
use status::{compute_status, is_complete};
use template::without_hash;

pub const NAME: &str = "deployment-controller";
const FIELD_MANAGER: &str = "skiff-deployment-controller";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotations of a Deployment not copied onto its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

pub struct Context {
    pub registry: Registry,
    pub deployments: Informer<Deployment>,
    pub replica_sets: Informer<ReplicaSet>,
    pub pods: Informer<Pod>,
    pub events: EventRecorder,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let (registry, deployments, replica_sets, pods, events) = (
        deps.registry,
        deps.informers.deployments,
        deps.informers.replica_sets,
        deps.informers.pods,
        deps.events,
    );
    let ctx = Arc::new(Context {
        registry,
        deployments,
        replica_sets,
        pods,
        events,
    });
    let sets = ctx.replica_sets.clone();
    Controller::new(NAME, &ctx.deployments)
        .owns_or_adopts(&ctx.replica_sets, "/spec/selector")
        // A Recreate rollout waits for old pods to be gone.
        .watches_deletions(&ctx.pods, move |pod| {
            let ns = meta::namespace(pod).unwrap_or_default();
            match controller_of(pod) {
                Some(("ReplicaSet", rs)) => sets
                    .get(ns, rs)
                    .and_then(|rs| match controller_of(&rs) {
                        Some(("Deployment", d)) => Some((ns.to_string(), d.to_string())),
                        _ => None,
                    })
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            }
        })
        .run(4, ctx, reconcile)
        .await;
}

fn selector(d: &Value) -> Result<LabelSelector, ApiError> {
    LabelSelector::from_object_at(d.at("/spec/selector"), "spec.selector")
        .map_err(|_| ApiError::bad_request("invalid selector"))
}

fn rs_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("apps/v1", "ReplicaSet").ok_or_else(|| ApiError::internal("no ReplicaSet kind"))
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(d) = ctx.deployments.get(&key.0, &key.1) else {
        return Ok(Action::Done);
    };
    if meta::deletion_timestamp(&d).is_some() {
        return Ok(Action::Done); // The garbage collector takes its ReplicaSets.
    }
    let selector = selector(&d)?;
    if selector.is_empty() {
        return Ok(Action::Done); // Selects everything: Kubernetes refuses to act too.
    }
    let mut rollout = Rollout::load(&ctx, &d, &selector).await?;
    if rollout.last_write > 0 {
        ctx.replica_sets.wait_for(rollout.last_write).await;
        rollout = Rollout::load(&ctx, &d, &selector).await?;
    }
    let paused = d
        .at("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if paused {
        rollout.scale_only().await?;
    } else if d.at("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate") {
        rollout.recreate().await?;
    } else {
        rollout.rolling().await?;
    }
    if rollout.last_write > 0 {
        ctx.replica_sets.wait_for(rollout.last_write).await;
    }
    let sets = owned_sets(&ctx, &d);
    let (status, requeue) = compute_status(
        &d,
        &sets,
        rollout.created.as_deref(),
        paused,
        jiff::Timestamp::now(),
    );
    let complete = is_complete(&d, &status);
    write_status(&ctx.registry, &d, status, FIELD_MANAGER).await?;
    if complete && !paused {
        cleanup_history(&ctx, &d, &sets).await?;
    }
    Ok(requeue.map_or(Action::Done, Action::RequeueAfter))
}

/// The ReplicaSets `d` controls, from the cache.
fn owned_sets(ctx: &Context, d: &Value) -> Vec<Arc<Value>> {
    let uid = meta::uid(d).unwrap_or_default();
    ctx.replica_sets
        .list(meta::namespace(d), |rs| controller_uid(rs) == Some(uid))
}

/// One reconcile's view of a Deployment and its ReplicaSets.
struct Rollout<'a> {
    ctx: &'a Context,
    d: &'a Value,
    new: Option<Arc<Value>>,
    old: Vec<Arc<Value>>,
    /// The name of the ReplicaSet created by this reconcile, if any.
    created: Option<String>,
    last_write: Revision,
}

impl<'a> Rollout<'a> {
    /// Claims the ReplicaSets (adopting orphans that match) and tells the one
    /// of the current template from the old ones.
    async fn load(
        ctx: &'a Context,
        d: &'a Value,
        selector: &LabelSelector,
    ) -> Result<Rollout<'a>, ApiError> {
        let uid = meta::uid(d).unwrap_or_default();
        let mut last_write = 0;
        let mut sets = Vec::new();
        for rs in ctx.replica_sets.list(meta::namespace(d), |_| true) {
            match controller_uid(&rs) {
                Some(u) if u == uid => sets.push(rs),
                None if selector.matches_object(&rs) && meta::deletion_timestamp(&rs).is_none() => {
                    let mut refs = meta::owner_references(&rs).to_vec();
                    refs.push(super::pod_control::controller_ref(d));
                    let patch = json!({"metadata": {"ownerReferences": refs,
                        "resourceVersion": meta::resource_version(&rs).unwrap_or_default()}});
                    match patch_rs(ctx, &rs, patch).await {
                        Ok(rev) => last_write = last_write.max(rev),
                        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                _ => {}
            }
        }
        let template = without_hash(d.at("/spec/template"));
        let mut new = None;
        let mut old = Vec::new();
        // The oldest matching set is the new one, as Kubernetes picks it.
        sets.sort_by(|a, b| meta::creation_timestamp(a).cmp(&meta::creation_timestamp(b)));
        for rs in sets {
            if new.is_none() && without_hash(rs.at("/spec/template")) == template {
                new = Some(rs);
            } else {
                old.push(rs);
            }
        }
        Ok(Rollout {
            ctx,
            d,
            new,
            old,
            created: None,
            last_write,
        })
    }

    fn replicas(&self) -> i64 {
        int(self.d, "/spec/replicas").max(0)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Value>> {
        self.new.iter().chain(self.old.iter())
    }

    /// Old sets that still have pods.
    fn active_old(&self) -> impl Iterator<Item = &Arc<Value>> {
        self.old.iter().filter(|rs| replicas_of(rs) > 0)
    }

    fn max_old_revision(&self) -> i64 {
        self.old.iter().map(|rs| revision(rs)).max().unwrap_or(0)
    }

    /// Paused: no rollout, but `spec.replicas` still applies (to the newest set).
    async fn scale_only(&mut self) -> Result<(), ApiError> {
        let target = self
            .new
            .clone()
            .or_else(|| self.active_old().max_by_key(|rs| revision(rs)).cloned());
        if let Some(rs) = target {
            let others: i64 = self
                .all()
                .filter(|o| meta::uid(o) != meta::uid(&rs))
                .map(|o| replicas_of(o))
                .sum();
            self.scale(&rs, plan::paused_size(self.replicas(), others))
                .await?;
        }
        Ok(())
    }

    /// Recreate: every old pod gone, then the new set at full size.
    async fn recreate(&mut self) -> Result<(), ApiError> {
        let old: Vec<Arc<Value>> = self.active_old().cloned().collect();
        let old_pods_left = self.old.iter().any(|rs| {
            let uid = meta::uid(rs).unwrap_or_default();
            !self
                .ctx
                .pods
                .list(meta::namespace(rs), |p| controller_uid(p) == Some(uid))
                .is_empty()
        });
        match plan::recreate(!old.is_empty(), old_pods_left) {
            Recreate::ScaleOldDown => {
                for rs in &old {
                    self.scale(rs, 0).await?;
                }
                Ok(())
            }
            Recreate::WaitForOldPods => Ok(()),
            Recreate::RunNew => {
                let new = self.new_set(self.replicas()).await?;
                self.scale(&new, self.replicas()).await
            }
        }
    }

    /// RollingUpdate: scale the new set up within maxSurge, the old ones down
    /// within maxUnavailable.
    async fn rolling(&mut self) -> Result<(), ApiError> {
        let replicas = self.replicas();
        let (surge, max_unavailable) = surge_and_unavailable(self.d);
        let old_total: i64 = self.old.iter().map(|rs| replicas_of(rs)).sum();
        let new_now = self.new.as_ref().map(|rs| replicas_of(rs));
        let (create_with, new_replicas) = plan::rolling_new(replicas, surge, new_now, old_total);
        let new = self.new_set(create_with).await?;
        if new_replicas != replicas_of(&new) {
            self.scale(&new, new_replicas).await?;
        }
        let mut old: Vec<Arc<Value>> = self.active_old().cloned().collect();
        old.sort_by(|a, b| meta::creation_timestamp(a).cmp(&meta::creation_timestamp(b)));
        let sizes: Vec<SetSize> = old.iter().map(|rs| SetSize::of(rs)).collect();
        let targets = plan::rolling_old(
            replicas,
            max_unavailable,
            new_replicas,
            SetSize::of(&new),
            &sizes,
        );
        for (rs, target) in old.iter().zip(targets) {
            if target != replicas_of(rs) {
                self.scale(rs, target).await?;
            }
        }
        Ok(())
    }

    /// The set of the current template, created (with `replicas`) if missing,
    /// its revision annotation brought up to date.
    async fn new_set(&mut self, replicas: i64) -> Result<Arc<Value>, ApiError> {
        let want_revision = self.max_old_revision() + 1;
        if let Some(rs) = self.new.clone() {
            if revision(&rs) < want_revision || needs_annotations(self.d, &rs) {
                let annotations = rs_annotations(self.d, &rs, want_revision.max(revision(&rs)));
                let patch = json!({"metadata": {"annotations": annotations},
                    "spec": {"minReadySeconds": int(self.d, "/spec/minReadySeconds")}});
                self.last_write = self.last_write.max(patch_rs(self.ctx, &rs, patch).await?);
            }
            return Ok(rs);
        }
        let d = self.d;
        let collision = int(d, "/status/collisionCount");
        let mut template = d.at("/spec/template").cloned().unwrap_or_else(|| json!({}));
        let hash = template_hash(&template, collision);
        if !template.get("metadata").is_some_and(Value::is_object) {
            template["metadata"] = json!({});
        }
        if !template["metadata"]
            .get("labels")
            .is_some_and(Value::is_object)
        {
            template["metadata"]["labels"] = json!({});
        }
        template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
        let mut selector = d.at("/spec/selector").cloned().unwrap_or_else(|| json!({}));
        if !selector.get("matchLabels").is_some_and(Value::is_object) {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
        let name = format!("{}-{hash}", meta::name(d).unwrap_or_default());
        let mut labels: Map<String, Value> = template["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.into(), json!(hash));
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": rs_annotations(d, &json!({}), want_revision),
                "ownerReferences": [super::pod_control::controller_ref(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(d, "/spec/minReadySeconds"),
                "selector": selector,
                "template": template,
            },
        });
        let opts = WriteOptions {
            field_manager: FIELD_MANAGER.into(),
            ..Default::default()
        };
        let namespace = meta::namespace(d).unwrap_or("default");
        let written = match self
            .ctx
            .registry
            .create(rs_type()?, namespace, rs, &opts)
            .await
        {
            Ok(w) => w,
            Err(e) if e.reason == Reason::AlreadyExists => {
                // A set of that name that is not ours (or not yet seen): bump the
                // collision count so the next hash differs, as Kubernetes does.
                if let Some(existing) = self.ctx.replica_sets.get(namespace, &name)
                    && controller_uid(&existing) != meta::uid(d)
                {
                    let mut status = d.get("status").cloned().unwrap_or_else(|| json!({}));
                    status["collisionCount"] = json!(collision + 1);
                    write_status(&self.ctx.registry, d, status, FIELD_MANAGER).await?;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.last_write = self.last_write.max(revision_of(&written.object));
        self.ctx.events.record(
            d,
            NAME,
            EventType::Normal,
            "ScalingReplicaSet",
            format!("Scaled up replica set {name} from 0 to {replicas}"),
        );
        self.created = Some(name);
        let rs = Arc::new(written.object);
        self.new = Some(rs.clone());
        Ok(rs)
    }

    /// Sets a ReplicaSet's size (and the annotations recording the
    /// Deployment's size), with a ScalingReplicaSet Event.
    async fn scale(&mut self, rs: &Value, replicas: i64) -> Result<(), ApiError> {
        let current = replicas_of(rs);
        let replicas = replicas.max(0);
        let (surge, _) = surge_and_unavailable(self.d);
        let d_replicas = self.replicas();
        let desired = d_replicas.to_string();
        let max = (d_replicas + surge).to_string();
        let annotated = meta::annotations(rs).is_some_and(|a| {
            a.get(DESIRED_REPLICAS).and_then(Value::as_str) == Some(&desired)
                && a.get(MAX_REPLICAS).and_then(Value::as_str) == Some(&max)
        });
        if current == replicas && annotated {
            return Ok(());
        }
        let patch = json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: desired, MAX_REPLICAS: max}},
            "spec": {"replicas": replicas},
        });
        self.last_write = self.last_write.max(patch_rs(self.ctx, rs, patch).await?);
        if current != replicas {
            let direction = if replicas > current { "up" } else { "down" };
            self.ctx.events.record(
                self.d,
                NAME,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {current} to {replicas}",
                    meta::name(rs).unwrap_or_default()
                ),
            );
        }
        Ok(())
    }
}

/// Whether the Deployment's copied annotations differ from the set's.
fn needs_annotations(d: &Value, rs: &Value) -> bool {
    let want = rs_annotations(d, rs, revision(rs));
    let have = meta::annotations(rs).cloned().unwrap_or_default();
    want.iter().any(|(k, v)| have.get(k) != Some(v))
}

/// The annotations a ReplicaSet carries: the Deployment's own (but the
/// controller's bookkeeping ones), its revision and sizes.
fn rs_annotations(d: &Value, rs: &Value, revision: i64) -> Map<String, Value> {
    let mut out: Map<String, Value> = meta::annotations(rs).cloned().unwrap_or_default();
    if let Some(own) = meta::annotations(d) {
        for (k, v) in own {
            if !NOT_COPIED.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let (surge, _) = surge_and_unavailable(d);
    let replicas = int(d, "/spec/replicas");
    out.insert(REVISION.into(), json!(revision.to_string()));
    out.insert(DESIRED_REPLICAS.into(), json!(replicas.to_string()));
    out.insert(MAX_REPLICAS.into(), json!((replicas + surge).to_string()));
    out
}

async fn patch_rs(ctx: &Context, rs: &Value, patch: Value) -> Result<Revision, ApiError> {
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let written = ctx
        .registry
        .patch(
            rs_type()?,
            meta::namespace(rs).unwrap_or_default(),
            meta::name(rs).unwrap_or_default(),
            skiff_api::patch::PatchType::Merge,
            patch,
            Subresource::Main,
            &opts,
        )
        .await?;
    Ok(revision_of(&written.object))
}

/// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit` (oldest first).
async fn cleanup_history(ctx: &Context, d: &Value, sets: &[Arc<Value>]) -> Result<(), ApiError> {
    let limit = usize::try_from(
        d.at("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10)
            .max(0),
    )
    .unwrap_or(usize::MAX);
    let template = without_hash(d.at("/spec/template"));
    let candidates: Vec<(i64, &Arc<Value>)> = sets
        .iter()
        .filter(|rs| without_hash(rs.at("/spec/template")) != template)
        .filter(|rs| replicas_of(rs) == 0 && int(rs, "/status/replicas") == 0)
        .filter(|rs| meta::deletion_timestamp(rs).is_none())
        .map(|rs| (revision(rs), rs))
        .collect();
    for rs in plan::history_to_delete(limit, candidates) {
        let opts = DeleteOptions {
            precondition_uid: meta::uid(rs).map(str::to_string),
            ..Default::default()
        };
        match ctx
            .registry
            .delete(
                rs_type()?,
                meta::namespace(rs).unwrap_or_default(),
                meta::name(rs).unwrap_or_default(),
                &opts,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
