//! The Deployment controller, as Kubernetes' (`pkg/controller/deployment`): one
//! ReplicaSet per pod template (named by the template's hash, carrying the
//! `deployment.kubernetes.io/revision` annotation), rolled from old to new by
//! the strategy — RollingUpdate within `maxSurge` / `maxUnavailable`, or
//! Recreate — and status with the conditions `kubectl rollout status` reads:
//! `Available` and `Progressing` (`NewReplicaSetCreated`, `ReplicaSetUpdated`,
//! `NewReplicaSetAvailable`, `ProgressDeadlineExceeded`, `DeploymentPaused`).
//! A paused Deployment is scaled but not rolled; old ReplicaSets beyond
//! `revisionHistoryLimit` are deleted once the rollout is complete.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Reason};

use super::pod_control::{
    can_adopt, controller_of, controller_ref_to, controller_uid_of, revision_of,
};
use super::typed::{self, name, namespace, uid};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_typed_status;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef, decode_as};
use crate::registry::{DeleteOptions, Registry, WriteOptions};
use crate::store::Revision;

mod plan;
mod status;
mod template;

pub use template::{as_json as template_json, template_hash};

use plan::{
    Recreate, SetSize, is_recreate, replicas, replicas_of, revision, status_replicas,
    surge_and_unavailable,
};
use status::{compute_status, is_complete};
use template::identity;

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

fn selector(d: &Deployment) -> Result<LabelSelector, ApiError> {
    typed::selector(d.spec.as_ref().map(|s| &s.selector))
}

fn rs_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("apps/v1", "ReplicaSet").ok_or_else(|| ApiError::internal("no ReplicaSet kind"))
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(d) = ctx.deployments.get_typed(&key.0, &key.1) else {
        return Ok(Action::Done);
    };
    if d.metadata.deletion_timestamp.is_some() {
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
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused {
        rollout.scale_only().await?;
    } else if is_recreate(&d) {
        rollout.recreate().await?;
    } else {
        rollout.rolling().await?;
    }
    if rollout.last_write > 0 {
        ctx.replica_sets.wait_for(rollout.last_write).await;
    }
    let sets = owned_sets(&ctx, &d);
    let new_set = rollout.new.as_ref().map(|rs| name(&rs.metadata));
    let (status, requeue) = compute_status(
        &d,
        &sets,
        new_set,
        rollout.created.as_deref(),
        paused,
        jiff::Timestamp::now(),
    );
    let complete = is_complete(&d, &status);
    write_typed_status(
        &ctx.registry,
        d.as_ref(),
        d.status.as_ref(),
        &status,
        FIELD_MANAGER,
    )
    .await?;
    if complete && !paused {
        cleanup_history(&ctx, &d, &sets, new_set).await?;
    }
    Ok(requeue.map_or(Action::Done, Action::RequeueAfter))
}

/// The ReplicaSets `d` controls, from the cache.
fn owned_sets(ctx: &Context, d: &Deployment) -> Vec<Arc<ReplicaSet>> {
    let uid = uid(&d.metadata);
    ctx.replica_sets
        .list_typed(Some(namespace(&d.metadata)), |rs| {
            controller_uid_of(&rs.metadata) == Some(uid)
        })
}

/// A ReplicaSet's pod template's identity (see [`identity`]).
fn rs_template(rs: &ReplicaSet) -> Value {
    identity(rs.spec.as_ref().and_then(|s| s.template.as_ref()))
}

/// The Deployment's pod template's identity (see [`identity`]).
fn d_template(d: &Deployment) -> Value {
    identity(d.spec.as_ref().map(|s| &s.template))
}

fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// One reconcile's view of a Deployment and its ReplicaSets.
struct Rollout<'a> {
    ctx: &'a Context,
    d: &'a Deployment,
    new: Option<Arc<ReplicaSet>>,
    old: Vec<Arc<ReplicaSet>>,
    /// The name of the ReplicaSet created by this reconcile, if any.
    created: Option<String>,
    last_write: Revision,
}

impl<'a> Rollout<'a> {
    /// Claims the ReplicaSets (adopting orphans that match) and tells the one
    /// of the current template from the old ones.
    async fn load(
        ctx: &'a Context,
        d: &'a Deployment,
        selector: &LabelSelector,
    ) -> Result<Rollout<'a>, ApiError> {
        let uid = uid(&d.metadata);
        let mut last_write = 0;
        let mut sets = Vec::new();
        // Read afresh, once, before the first adoption (see `PodControl::adopt`).
        let mut may_adopt: Option<bool> = None;
        for rs in ctx
            .replica_sets
            .list_typed(Some(namespace(&d.metadata)), |_| true)
        {
            let meta = &rs.metadata;
            match controller_uid_of(meta) {
                Some(u) if u == uid => sets.push(rs),
                None if selector.matches_strings(meta.labels.as_ref())
                    && meta.deletion_timestamp.is_none() =>
                {
                    if may_adopt.is_none() {
                        let owner = serde_json::to_value(controller_ref_to(d))
                            .map_err(|e| ApiError::internal(e.to_string()))?;
                        let ns = namespace(&d.metadata);
                        may_adopt = Some(can_adopt(&ctx.registry, &owner, ns).await?);
                    }
                    if may_adopt == Some(false) {
                        continue;
                    }
                    let mut refs = meta.owner_references.clone().unwrap_or_default();
                    refs.push(controller_ref_to(d));
                    let patch = json!({"metadata": {"ownerReferences": refs,
                        "resourceVersion": meta.resource_version.clone().unwrap_or_default()}});
                    match patch_rs(ctx, &rs, patch).await {
                        Ok(rev) => last_write = last_write.max(rev),
                        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                _ => {}
            }
        }
        let template = d_template(d);
        let mut new = None;
        let mut old = Vec::new();
        // The oldest matching set is the new one, as Kubernetes picks it.
        sets.sort_by(|a, b| {
            let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b))
        });
        for rs in sets {
            if new.is_none() && rs_template(&rs) == template {
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
        replicas(self.d).max(0)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<ReplicaSet>> {
        self.new.iter().chain(self.old.iter())
    }

    /// Old sets that still have pods.
    fn active_old(&self) -> impl Iterator<Item = &Arc<ReplicaSet>> {
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
                .filter(|o| o.metadata.uid != rs.metadata.uid)
                .map(|o| replicas_of(o))
                .sum();
            self.scale(&rs, plan::paused_size(self.replicas(), others))
                .await?;
        }
        Ok(())
    }

    /// Recreate: every old pod gone, then the new set at full size.
    async fn recreate(&mut self) -> Result<(), ApiError> {
        let old: Vec<Arc<ReplicaSet>> = self.active_old().cloned().collect();
        let old_pods_left = self.old.iter().any(|rs| {
            let uid = uid(&rs.metadata);
            !self
                .ctx
                .pods
                .list_typed(Some(namespace(&rs.metadata)), |p| {
                    controller_uid_of(&p.metadata) == Some(uid)
                })
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
        let mut old: Vec<Arc<ReplicaSet>> = self.active_old().cloned().collect();
        old.sort_by(|a, b| {
            let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b))
        });
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
    async fn new_set(&mut self, replicas: i64) -> Result<Arc<ReplicaSet>, ApiError> {
        let want_revision = self.max_old_revision() + 1;
        let d = self.d;
        if let Some(rs) = self.new.clone() {
            if revision(&rs) < want_revision || needs_annotations(d, &rs) {
                let annotations = rs_annotations(d, &rs, want_revision.max(revision(&rs)));
                let patch = json!({"metadata": {"annotations": annotations},
                    "spec": {"minReadySeconds": min_ready_seconds(d)}});
                self.last_write = self.last_write.max(patch_rs(self.ctx, &rs, patch).await?);
            }
            return Ok(rs);
        }
        let collision = d
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let spec = d.spec.clone().unwrap_or_default();
        let mut template = spec.template;
        let hash = template_hash(&template_json(&template), i64::from(collision));
        let metadata = template.metadata.get_or_insert_with(Default::default);
        metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = metadata.labels.clone();
        let mut selector = spec.selector;
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", name(&d.metadata));
        let empty = ReplicaSet::default();
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels,
                annotations: Some(rs_annotations(d, &empty, want_revision)),
                owner_references: Some(vec![controller_ref_to(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
                min_ready_seconds: Some(min_ready_seconds(d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let rs = serde_json::to_value(&rs)
            .map_err(|e| ApiError::internal(format!("encoding a ReplicaSet: {e}")))?;
        let opts = WriteOptions {
            field_manager: FIELD_MANAGER.into(),
            ..Default::default()
        };
        let namespace = match namespace(&d.metadata) {
            "" => "default",
            ns => ns,
        };
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
                if let Some(existing) = self.ctx.replica_sets.get_typed(namespace, &name)
                    && controller_uid_of(&existing.metadata) != d.metadata.uid.as_deref()
                {
                    let mut status = d.status.clone().unwrap_or_default();
                    status.collision_count = Some(collision.saturating_add(1));
                    write_typed_status(
                        &self.ctx.registry,
                        d,
                        d.status.as_ref(),
                        &status,
                        FIELD_MANAGER,
                    )
                    .await?;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.last_write = self.last_write.max(revision_of(&written.object));
        self.ctx.events.record_typed(
            d,
            NAME,
            EventType::Normal,
            "ScalingReplicaSet",
            format!("Scaled up replica set {name} from 0 to {replicas}"),
        );
        self.created = Some(name);
        let rs = Arc::new(decode_as::<ReplicaSet>(&written.object)?);
        self.new = Some(rs.clone());
        Ok(rs)
    }

    /// Sets a ReplicaSet's size (and the annotations recording the
    /// Deployment's size), with a ScalingReplicaSet Event.
    async fn scale(&mut self, rs: &ReplicaSet, replicas: i64) -> Result<(), ApiError> {
        let current = replicas_of(rs);
        let replicas = replicas.max(0);
        let (surge, _) = surge_and_unavailable(self.d);
        let d_replicas = self.replicas();
        let desired = d_replicas.to_string();
        let max = (d_replicas + surge).to_string();
        let annotated = rs.metadata.annotations.as_ref().is_some_and(|a| {
            a.get(DESIRED_REPLICAS) == Some(&desired) && a.get(MAX_REPLICAS) == Some(&max)
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
            self.ctx.events.record_typed(
                self.d,
                NAME,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {current} to {replicas}",
                    name(&rs.metadata)
                ),
            );
        }
        Ok(())
    }
}

/// Whether the Deployment's copied annotations differ from the set's.
fn needs_annotations(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = rs_annotations(d, rs, revision(rs));
    let have = rs.metadata.annotations.as_ref();
    want.iter()
        .any(|(k, v)| have.and_then(|h| h.get(k)) != Some(v))
}

/// The annotations a ReplicaSet carries: the Deployment's own (but the
/// controller's bookkeeping ones), its revision and sizes.
fn rs_annotations(d: &Deployment, rs: &ReplicaSet, revision: i64) -> BTreeMap<String, String> {
    let mut out = rs.metadata.annotations.clone().unwrap_or_default();
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if !NOT_COPIED.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let (surge, _) = surge_and_unavailable(d);
    let replicas = replicas(d);
    out.insert(REVISION.into(), revision.to_string());
    out.insert(DESIRED_REPLICAS.into(), replicas.to_string());
    out.insert(MAX_REPLICAS.into(), (replicas + surge).to_string());
    out
}

async fn patch_rs(ctx: &Context, rs: &ReplicaSet, patch: Value) -> Result<Revision, ApiError> {
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    let written = ctx
        .registry
        .patch(
            rs_type()?,
            namespace(&rs.metadata),
            name(&rs.metadata),
            skiff_api::patch::PatchType::Merge,
            patch,
            crate::registry::Subresource::Main,
            &opts,
        )
        .await?;
    Ok(revision_of(&written.object))
}

/// Deletes old, empty ReplicaSets (all but `new_set`) beyond
/// `revisionHistoryLimit`, oldest first.
async fn cleanup_history(
    ctx: &Context,
    d: &Deployment,
    sets: &[Arc<ReplicaSet>],
    new_set: Option<&str>,
) -> Result<(), ApiError> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let candidates: Vec<(i64, &Arc<ReplicaSet>)> = sets
        .iter()
        .filter(|rs| rs.metadata.name.as_deref() != new_set)
        .filter(|rs| replicas_of(rs) == 0 && status_replicas(rs) == 0)
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .map(|rs| (revision(rs), rs))
        .collect();
    for rs in plan::history_to_delete(limit, candidates) {
        let opts = DeleteOptions {
            precondition_uid: rs.metadata.uid.clone(),
            ..Default::default()
        };
        match ctx
            .registry
            .delete(
                rs_type()?,
                namespace(&rs.metadata),
                name(&rs.metadata),
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
