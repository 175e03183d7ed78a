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
use std::time::Duration;

use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Reason};

use super::pod_control::{controller_of, controller_uid, revision_of};
use super::runtime::{Action, Controller};
use super::write_status;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{DeleteOptions, Registry, Subresource, WriteOptions};
use crate::store::Revision;

const NAME: &str = "deployment-controller";
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
    pub deployments: Informer,
    pub replica_sets: Informer,
    pub pods: Informer,
    pub events: EventRecorder,
}

/// Runs the controller until the process ends.
pub async fn run(
    registry: Registry,
    deployments: Informer,
    replica_sets: Informer,
    pods: Informer,
    events: EventRecorder,
) {
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

fn int(v: &Value, path: &str) -> i64 {
    v.at(path).and_then(Value::as_i64).unwrap_or(0)
}

fn replicas_of(rs: &Value) -> i64 {
    int(rs, "/spec/replicas")
}

/// The pods of a ReplicaSet that can be counted on as available: its status
/// lags a scale-down (the pods being removed still count there until the
/// ReplicaSet controller has looked again), and a set keeps no more than its
/// size. Counting the surplus would scale old sets down twice for one new pod.
fn available_of(rs: &Value) -> i64 {
    int(rs, "/status/availableReplicas").min(replicas_of(rs).max(0))
}

fn revision(rs: &Value) -> i64 {
    meta::annotations(rs)
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The rollout's bounds: (maxSurge, maxUnavailable) as pod counts.
fn surge_and_unavailable(d: &Value) -> (i64, i64) {
    let replicas = int(d, "/spec/replicas");
    if d.at("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate") {
        return (0, 0);
    }
    let resolve = |v: Option<&Value>, default: &str, round_up: bool| -> i64 {
        match v {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(s)) => percent(s, replicas, round_up),
            _ => percent(default, replicas, round_up),
        }
    };
    let surge = resolve(d.at("/spec/strategy/rollingUpdate/maxSurge"), "25%", true);
    let mut unavailable = resolve(
        d.at("/spec/strategy/rollingUpdate/maxUnavailable"),
        "25%",
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1; // Otherwise nothing could ever move.
    }
    (surge, unavailable.min(replicas))
}

fn percent(s: &str, total: i64, round_up: bool) -> i64 {
    match s
        .strip_suffix('%')
        .and_then(|p| p.trim().parse::<i64>().ok())
    {
        Some(p) if round_up => (p * total + 99) / 100,
        Some(p) => p * total / 100,
        None => s.parse().unwrap_or(0),
    }
}

/// A pod template in a canonical form, for hashing and comparing: keys in a
/// fixed order, and null, empty-object and empty-array fields dropped (typed
/// Kubernetes objects cannot tell them from absent ones, and kubectl's
/// `rollout undo` sends `creationTimestamp: null`).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .filter(|(_, v)| !is_empty(v))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The template's hash as Kubernetes renders `pod-template-hash`: FNV-1a (32
/// bits) of the template, in the alphabet of `rand.SafeEncodeString`.
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let text = canonical(template).to_string();
    let mut hash: u32 = 0x811c_9dc5;
    for b in text.bytes().chain(collision_count.to_string().bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d - b'0') % ALPHABET.len()] as char)
        .collect()
}

/// The template without the `pod-template-hash` label (to compare templates).
fn without_hash(template: Option<&Value>) -> Value {
    let mut t = template.cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty()
            && let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("labels");
        }
    }
    canonical(&t)
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
    let (status, requeue) = compute_status(&d, &sets, rollout.created.as_deref(), paused);
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
            let want = (self.replicas() - others).max(0);
            self.scale(&rs, want).await?;
        }
        Ok(())
    }

    /// Recreate: every old pod gone, then the new set at full size.
    async fn recreate(&mut self) -> Result<(), ApiError> {
        let old: Vec<Arc<Value>> = self.active_old().cloned().collect();
        for rs in &old {
            self.scale(rs, 0).await?;
        }
        let old_pods_left = self.old.iter().any(|rs| {
            let uid = meta::uid(rs).unwrap_or_default();
            !self
                .ctx
                .pods
                .list(meta::namespace(rs), |p| controller_uid(p) == Some(uid))
                .is_empty()
        });
        if !old.is_empty() || old_pods_left {
            return Ok(());
        }
        let new = self.new_set(self.replicas()).await?;
        self.scale(&new, self.replicas()).await
    }

    /// RollingUpdate: scale the new set up within maxSurge, the old ones down
    /// within maxUnavailable.
    async fn rolling(&mut self) -> Result<(), ApiError> {
        let replicas = self.replicas();
        let (surge, max_unavailable) = surge_and_unavailable(self.d);
        let total: i64 = self.all().map(|rs| replicas_of(rs)).sum();
        let new_now = self.new.as_ref().map(|rs| replicas_of(rs)).unwrap_or(0);
        let up = if self.new.is_none() && self.old.is_empty() {
            replicas // The first rollout: nothing to keep within bounds.
        } else {
            let room = (replicas + surge - total).max(0);
            (new_now + room.min((replicas - new_now).max(0))).min(replicas)
        };
        let new = self.new_set(up).await?;
        let current_new = replicas_of(&new);
        let new_replicas = if current_new < up {
            up
        } else {
            current_new.min(replicas)
        };
        if new_replicas != current_new {
            self.scale(&new, new_replicas).await?;
        }
        let new_available = available_of(&new);

        // Scale old sets down, keeping at least replicas - maxUnavailable available.
        let min_available = replicas - max_unavailable;
        let mut old: Vec<Arc<Value>> = self.active_old().cloned().collect();
        old.sort_by(|a, b| meta::creation_timestamp(a).cmp(&meta::creation_timestamp(b)));
        let mut sizes: Vec<i64> = old.iter().map(|rs| replicas_of(rs)).collect();
        let all_pods: i64 = sizes.iter().sum::<i64>() + new_replicas;
        let new_unavailable = (new_replicas - new_available).max(0);
        let mut budget = all_pods - min_available - new_unavailable;
        if budget <= 0 {
            return Ok(());
        }
        // Unavailable old pods go first: they serve nobody.
        for (rs, size) in old.iter().zip(sizes.iter_mut()) {
            if budget <= 0 {
                break;
            }
            let unhealthy = (*size - available_of(rs)).max(0);
            let cut = unhealthy.min(budget);
            if cut > 0 {
                *size -= cut;
                self.scale(rs, *size).await?;
                budget -= cut;
            }
        }
        // Then available ones, as far as availability allows.
        let old_available: i64 = old
            .iter()
            .zip(&sizes)
            .map(|(rs, size)| available_of(rs).min(*size))
            .sum();
        let mut scale_down = old_available + new_available - min_available;
        for (rs, size) in old.iter().zip(sizes.iter_mut()) {
            if scale_down <= 0 {
                break;
            }
            let cut = (*size).min(scale_down);
            if cut > 0 {
                *size -= cut;
                self.scale(rs, *size).await?;
                scale_down -= cut;
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

/// Whether every replica is updated and available and no old pod is left.
fn is_complete(d: &Value, status: &Value) -> bool {
    let replicas = int(d, "/spec/replicas");
    int(status, "/updatedReplicas") == replicas
        && int(status, "/replicas") == replicas
        && int(status, "/availableReplicas") == replicas
        && int(status, "/observedGeneration") >= meta::generation(d)
}

/// The Deployment's status from its sets, and when to look again (the
/// progress deadline).
fn compute_status(
    d: &Value,
    sets: &[Arc<Value>],
    created: Option<&str>,
    paused: bool,
) -> (Value, Option<Duration>) {
    let template = without_hash(d.at("/spec/template"));
    let new = sets
        .iter()
        .find(|rs| without_hash(rs.at("/spec/template")) == template);
    let sum = |path: &str| sets.iter().map(|rs| int(rs, path)).sum::<i64>();
    let replicas = int(d, "/spec/replicas");
    let (_, max_unavailable) = surge_and_unavailable(d);
    let available = sum("/status/availableReplicas");
    let mut status = json!({
        "observedGeneration": meta::generation(d),
        "replicas": sum("/status/replicas"),
        "updatedReplicas": new.map(|rs| int(rs, "/status/replicas")).unwrap_or(0),
        "readyReplicas": sum("/status/readyReplicas"),
        "availableReplicas": available,
    });
    let unavailable = (replicas - available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    if let Some(c) = d.at("/status/collisionCount") {
        status["collisionCount"] = c.clone();
    }
    let now = meta::now_timestamp();
    let old_conditions: Vec<Value> = d
        .at("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_of = |kind: &str| {
        old_conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .cloned()
    };
    let available_ok = available >= replicas - max_unavailable;
    let available_cond = if available_ok {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let new_name = new
        .and_then(|rs| meta::name(rs))
        .unwrap_or_default()
        .to_string();
    let old_progressing = old_of("Progressing");
    let old_reason = old_progressing
        .as_ref()
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let moved = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .any(|k| d.at(&format!("/status/{k}")) != status.get(*k))
        || created.is_some();
    let complete = is_complete(d, &status);
    let deadline = d
        .at("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(600);
    let mut requeue = None;
    let progressing = if paused {
        Some(condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        ))
    } else if old_reason == "DeploymentPaused" {
        Some(condition(
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed",
        ))
    } else if complete {
        Some(condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        ))
    } else if let Some(name) = created {
        Some(condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{name}\""),
        ))
    } else if moved || old_progressing.is_none() || old_reason == "NewReplicaSetAvailable" {
        Some(condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
        ))
    } else if old_reason == "ProgressDeadlineExceeded" {
        None // Stays as it is until something moves.
    } else {
        // No progress since the last update: has the deadline passed?
        let last = old_progressing
            .as_ref()
            .and_then(|c| c.get("lastUpdateTime"))
            .and_then(Value::as_str)
            .and_then(meta::parse_timestamp);
        let elapsed = last
            .map(|t| jiff::Timestamp::now().duration_since(t).as_secs())
            .unwrap_or(0);
        if elapsed >= deadline {
            Some(condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            ))
        } else {
            requeue = Some(Duration::from_secs(
                deadline.saturating_sub(elapsed).max(1) as u64
            ));
            None
        }
    };
    if progressing.is_some() && !complete && !paused && requeue.is_none() {
        requeue = Some(Duration::from_secs(deadline.max(1) as u64));
    }
    let mut conditions = Vec::new();
    conditions.push(stamp(available_cond, old_of("Available"), &now));
    match progressing {
        Some(p) => conditions.push(stamp(p, old_progressing, &now)),
        None => {
            if let Some(p) = old_progressing {
                conditions.push(p);
            }
        }
    }
    status["conditions"] = Value::Array(conditions);
    (status, requeue)
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}

/// Timestamps a condition: `lastTransitionTime` moves only when the status
/// changes; `lastUpdateTime` when anything about it does.
fn stamp(mut new: Value, old: Option<Value>, now: &str) -> Value {
    let same = |k: &str| old.as_ref().and_then(|o| o.get(k)) == new.get(k);
    let transition = match &old {
        Some(o) if same("status") => o.get("lastTransitionTime").cloned().unwrap_or(json!(now)),
        _ => json!(now),
    };
    let update = match &old {
        Some(o) if same("status") && same("reason") && same("message") => {
            o.get("lastUpdateTime").cloned().unwrap_or(json!(now))
        }
        _ => json!(now),
    };
    new["lastUpdateTime"] = update;
    new["lastTransitionTime"] = transition;
    new
}

/// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit` (oldest first).
async fn cleanup_history(ctx: &Context, d: &Value, sets: &[Arc<Value>]) -> Result<(), ApiError> {
    let limit = d
        .at("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10)
        .max(0) as usize;
    let template = without_hash(d.at("/spec/template"));
    let mut old: Vec<&Arc<Value>> = sets
        .iter()
        .filter(|rs| without_hash(rs.at("/spec/template")) != template)
        .filter(|rs| replicas_of(rs) == 0 && int(rs, "/status/replicas") == 0)
        .filter(|rs| meta::deletion_timestamp(rs).is_none())
        .collect();
    if old.len() <= limit {
        return Ok(());
    }
    old.sort_by_key(|rs| revision(rs));
    for rs in &old[..old.len() - limit] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let d = json!({"spec": {"replicas": 6, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        assert_eq!(surge_and_unavailable(&d), (2, 1));
        let d = json!({"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}});
        assert_eq!(surge_and_unavailable(&d), (0, 1));
    }

    #[test]
    fn the_template_hash_ignores_key_order_and_the_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "hello:v1"}]}});
        let b = json!({"spec": {"containers": [{"image": "hello:v1", "name": "c", "env": []}]},
            "metadata": {"labels": {"app": "web"}, "creationTimestamp": null}});
        assert_eq!(template_hash(&a, 0), template_hash(&b, 0));
        assert_eq!(without_hash(Some(&a)), without_hash(Some(&b)));
        assert_ne!(template_hash(&a, 0), template_hash(&a, 1));
        let mut labeled = a.clone();
        labeled["metadata"]["labels"][POD_TEMPLATE_HASH] = json!("x");
        assert_eq!(without_hash(Some(&labeled)), without_hash(Some(&a)));
        assert!(
            template_hash(&a, 0)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }
}
