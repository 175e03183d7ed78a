//! What the workload controllers do to pods, in one place: create one from a
//! template with its controller reference, delete one, adopt an orphan or
//! release a pod that no longer matches, and read a pod's readiness, as
//! Kubernetes' `controller.PodControl` and `podutil` do.

use std::borrow::Cow;
use std::cmp::Ordering;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::patch::PatchType;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};

use crate::events::{EventRecorder, EventType, Involved, Source};
use crate::informer::Cache;
use crate::registry::{DeleteOptions, Registry, WriteOptions};
use crate::store::Revision;

/// The `ownerReferences` entry naming `owner` as a pod's controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": meta::name(owner).unwrap_or_default(),
        "uid": meta::uid(owner).unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The object a controller writes pods for: what a pod's `controllerRef`
/// and the Events about it name. Implemented for stored JSON and for the
/// typed workload kinds.
pub trait Owner {
    /// The `ownerReferences` entry naming it as a pod's controller.
    fn controller_ref(&self) -> Value;
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
    /// The object the Events about its pods are about.
    fn involved(&self) -> Involved;
}

impl Owner for Value {
    fn controller_ref(&self) -> Value {
        controller_ref(self)
    }
    fn namespace(&self) -> &str {
        meta::namespace(self).unwrap_or_default()
    }
    fn name(&self) -> &str {
        meta::name(self).unwrap_or_default()
    }
    fn involved(&self) -> Involved {
        Involved::of(self)
    }
}

impl<T: Owner + ?Sized> Owner for std::sync::Arc<T> {
    fn controller_ref(&self) -> Value {
        (**self).controller_ref()
    }
    fn namespace(&self) -> &str {
        (**self).namespace()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn involved(&self) -> Involved {
        (**self).involved()
    }
}

/// [`Owner`] for typed kinds (one impl each: a blanket impl over
/// `k8s_openapi::Resource` would overlap the one for `Value`).
macro_rules! typed_owner {
    ($($kind:ty),*) => {$(
        impl Owner for $kind {
            fn controller_ref(&self) -> Value {
                serde_json::to_value(controller_ref_to(self)).unwrap_or(Value::Null)
            }
            fn namespace(&self) -> &str {
                self.metadata.namespace.as_deref().unwrap_or_default()
            }
            fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or_default()
            }
            fn involved(&self) -> Involved {
                Involved::of_typed(self)
            }
        }
    )*};
}

typed_owner!(ReplicaSet, DaemonSet, Job);

/// The uid of the object's controller, if it has one.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    meta::owner_references(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// The `ownerReferences` entry naming a typed `owner` as a child's controller.
pub fn controller_ref_to<K>(owner: &K) -> OwnerReference
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The uid of a typed object's controller, if it has one.
pub fn controller_uid_of(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

pub use crate::controllers::runtime::controller_of;

pub fn pods_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("v1", "Pod").ok_or_else(|| ApiError::internal("no Pod kind"))
}

/// A pod not finished and not being deleted (Kubernetes' `IsPodActive`).
pub fn is_active(pod: &Value) -> bool {
    let phase = pod
        .at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && meta::deletion_timestamp(pod).is_none()
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Value) -> bool {
    ready_since(pod).is_some()
}

/// When the pod became ready, if it is.
pub fn ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    let c = pod
        .at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?;
    if c.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    Some(
        c.get("lastTransitionTime")
            .and_then(Value::as_str)
            .and_then(meta::parse_timestamp)
            .unwrap_or_else(jiff::Timestamp::now),
    )
}

/// Ready for at least `min_ready_seconds` (`IsPodAvailable`). When ready but
/// not yet available, also how long until it is.
pub fn availability(
    pod: &Value,
    min_ready_seconds: i64,
    now: jiff::Timestamp,
) -> (bool, Option<std::time::Duration>) {
    let Some(since) = ready_since(pod) else {
        return (false, None);
    };
    if min_ready_seconds <= 0 {
        return (true, None);
    }
    let Ok(available_at) = since.checked_add(jiff::SignedDuration::from_secs(min_ready_seconds))
    else {
        return (false, None);
    };
    if available_at <= now {
        (true, None)
    } else {
        let wait = available_at.duration_since(now).unsigned_abs();
        (false, Some(wait))
    }
}

/// Orders pods so the ones to delete first come first, as Kubernetes'
/// `ActivePods` sort: unassigned before assigned, Pending before Unknown
/// before Running, not ready before ready, recently ready before long ready,
/// more restarts before fewer, newer before older.
pub fn deletion_order(a: &Value, b: &Value) -> Ordering {
    let assigned = |p: &Value| {
        !p.at("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
    };
    let phase_rank = |p: &Value| match p.at("/status/phase").and_then(Value::as_str) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let restarts = |p: &Value| {
        p.at("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let created = |p: &Value| meta::creation_timestamp(p).unwrap_or("").to_string();
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// What [`PodControl::create_all`] did: the pods created, the revision of the
/// last create (0 if none), and the error that stopped it.
#[derive(Debug, Default)]
pub struct Created {
    pub count: usize,
    pub last: Revision,
    pub error: Option<ApiError>,
}

impl Created {
    /// The revision of the last create, or the error that stopped creating,
    /// once `pods` has seen the creates that did happen (so the next
    /// reconcile counts them and does not create them again).
    pub async fn settled(self, pods: &Cache) -> Result<Revision, ApiError> {
        match self.error {
            Some(e) => {
                if self.last > 0 {
                    pods.wait_for(self.last).await;
                }
                Err(e)
            }
            None => Ok(self.last),
        }
    }
}

/// Writes pods on behalf of one controller.
#[derive(Clone)]
pub struct PodControl {
    registry: Registry,
    field_manager: &'static str,
}

impl PodControl {
    pub fn new(registry: Registry, field_manager: &'static str) -> Self {
        PodControl {
            registry,
            field_manager,
        }
    }

    fn opts(&self) -> WriteOptions {
        WriteOptions {
            field_manager: self.field_manager.into(),
            ..Default::default()
        }
    }

    /// Creates a pod from `template` (a `PodTemplateSpec`) owned by `owner`,
    /// named `generate_name` plus five random characters (or exactly `name`).
    /// Returns the created pod and its revision.
    pub async fn create(
        &self,
        owner: &(impl Owner + ?Sized),
        template: &Value,
        generate_name: &str,
        name: Option<&str>,
        extra_labels: &[(&str, &str)],
    ) -> Result<(Value, Revision), ApiError> {
        let namespace = match owner.namespace() {
            "" => "default",
            ns => ns,
        };
        let mut metadata = template
            .get("metadata")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        for key in [
            "name",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "namespace",
        ] {
            if let Some(m) = metadata.as_object_mut() {
                m.remove(key);
            }
        }
        match name {
            Some(n) => metadata["name"] = json!(n),
            None => metadata["generateName"] = json!(generate_name),
        }
        if !extra_labels.is_empty() {
            if !metadata.get("labels").is_some_and(Value::is_object) {
                metadata["labels"] = json!({});
            }
            for (k, v) in extra_labels {
                metadata["labels"][*k] = json!(v);
            }
        }
        metadata["ownerReferences"] = json!([owner.controller_ref()]);
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        });
        let written = self
            .registry
            .create(pods_type()?, namespace, pod, &self.opts())
            .await?;
        let revision = revision_of(&written.object);
        Ok((written.object, revision))
    }

    /// Creates `count` pods owned by `owner`, pod `i` from `template(i)`, in
    /// batches of 1, 2, 4, ... (Kubernetes' `slowStartBatch`), recording a
    /// `SuccessfulCreate` or `FailedCreate` Event about the owner for each as
    /// `component`. Stops after the first batch with an error, so a workload
    /// whose pods are all refused (a quota, a bad template) makes one failing
    /// call, not one per pod.
    pub async fn create_all<'t>(
        &self,
        owner: &(impl Owner + ?Sized),
        count: usize,
        template: impl Fn(usize) -> Cow<'t, Value>,
        events: &EventRecorder,
        component: &str,
    ) -> Created {
        let generate_name = format!("{}-", owner.name());
        let record = |event_type, reason: &str, message: String| {
            let source = Source {
                component: component.to_string(),
                host: None,
            };
            events.record_about(owner.involved(), source, event_type, reason, message);
        };
        let mut done = Created::default();
        let mut batch = 1;
        let mut next = 0;
        while next < count && done.error.is_none() {
            let n = batch.min(count - next);
            let templates: Vec<Cow<'t, Value>> = (next..next + n).map(&template).collect();
            next += n;
            batch *= 2;
            let results = join_all(
                templates
                    .iter()
                    .map(|t| self.create(owner, t, &generate_name, None, &[])),
            )
            .await;
            for result in results {
                match result {
                    Ok((pod, revision)) => {
                        done.count += 1;
                        done.last = done.last.max(revision);
                        let name = meta::name(&pod).unwrap_or_default();
                        record(
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        record(
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {}", e.message),
                        );
                        done.error.get_or_insert(e);
                    }
                }
            }
        }
        done
    }

    /// Deletes a pod (gracefully, as a user's delete would), by uid.
    /// Returns the revision of the change, or `None` if it was already gone.
    pub async fn delete(&self, pod: &Value) -> Result<Option<Revision>, ApiError> {
        let opts = DeleteOptions {
            precondition_uid: meta::uid(pod).map(str::to_string),
            ..Default::default()
        };
        let (ns, name) = (
            meta::namespace(pod).unwrap_or_default(),
            meta::name(pod).unwrap_or_default(),
        );
        match self.registry.delete(pods_type()?, ns, name, &opts).await {
            Ok(d) => Ok(Some(revision_of(&d.object))),
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes `owner` the controller of an orphan pod (`ClaimPods`' adoption),
    /// guarded by the pod's resourceVersion so a pod changed meanwhile is not
    /// adopted blindly.
    ///
    /// The owner is read afresh first, as Kubernetes' `RecheckDeletionTimestamp`
    /// does: a cache can lag behind the owner's deletion, and an owner deleted
    /// with `--cascade=orphan` must not take back what the garbage collector
    /// has just released (its deletion would then take it along). An owner
    /// gone or being deleted adopts nothing: a Conflict.
    pub async fn adopt(
        &self,
        owner: &(impl Owner + ?Sized),
        pod: &Value,
    ) -> Result<Revision, ApiError> {
        let controller = owner.controller_ref();
        if !can_adopt(&self.registry, &controller, owner.namespace()).await? {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("{} is being deleted: it adopts nothing", owner.name()),
            ));
        }
        let mut refs: Vec<Value> = meta::owner_references(pod).to_vec();
        refs.push(controller);
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": meta::resource_version(pod).unwrap_or_default(),
        }});
        self.patch(pod, patch).await
    }

    /// Removes `owner` from a pod that no longer matches its selector.
    pub async fn release(&self, owner_uid: &str, pod: &Value) -> Result<Revision, ApiError> {
        let refs: Vec<Value> = meta::owner_references(pod)
            .iter()
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
            .cloned()
            .collect();
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": meta::resource_version(pod).unwrap_or_default(),
        }});
        self.patch(pod, patch).await
    }

    async fn patch(&self, pod: &Value, patch: Value) -> Result<Revision, ApiError> {
        let written = self
            .registry
            .patch(
                pods_type()?,
                meta::namespace(pod).unwrap_or_default(),
                meta::name(pod).unwrap_or_default(),
                PatchType::Merge,
                patch,
                crate::registry::Subresource::Main,
                &self.opts(),
            )
            .await?;
        Ok(revision_of(&written.object))
    }
}

/// Whether the owner `controller` (an `ownerReferences` entry) in
/// `namespace` may adopt: read afresh from the store, it still exists with
/// that uid and is not being deleted.
pub async fn can_adopt(
    registry: &Registry,
    controller: &Value,
    namespace: &str,
) -> Result<bool, ApiError> {
    let field = |k: &str| {
        controller
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let Some(rt) = by_kind(field("apiVersion"), field("kind")) else {
        return Ok(false);
    };
    let fresh = registry.try_get(rt, namespace, field("name"))?;
    Ok(fresh.is_some_and(|o| {
        meta::uid(&o) == Some(field("uid")) && meta::deletion_timestamp(&o).is_none()
    }))
}

/// The store revision an object was written at.
pub fn revision_of(obj: &Value) -> Revision {
    crate::store::object_revision(obj).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::PropagationPolicy;
    use crate::store::redb::{RedbStore, StoreConfig};

    /// An owner deleted with `--cascade=orphan` (its `orphan` finalizer
    /// holds it while the garbage collector releases its dependents) may not
    /// adopt, whatever a lagging cache says; nor may one that is gone, or a
    /// new object of the same name.
    #[tokio::test]
    async fn only_a_live_owner_of_that_uid_may_adopt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            RedbStore::open(&dir.path().join("store.redb"), StoreConfig::default()).expect("store");
        let registry = Registry::new(Arc::new(store));
        let opts = WriteOptions::default();
        let ns = by_kind("v1", "Namespace").expect("namespaces");
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}});
        registry
            .create(ns, "", namespace, &opts)
            .await
            .expect("namespace");
        let rs_type = by_kind("apps/v1", "ReplicaSet").expect("replica sets");
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "hello:v1"}]}}}});
        let rs = registry
            .create(rs_type, "ns", rs, &opts)
            .await
            .expect("rs")
            .object;
        let owner = controller_ref(&rs);
        assert!(can_adopt(&registry, &owner, "ns").await.expect("read"));

        let mut stranger = owner.clone();
        stranger["uid"] = json!("another-uid");
        assert!(!can_adopt(&registry, &stranger, "ns").await.expect("read"));

        let orphaning = DeleteOptions {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        };
        registry
            .delete(rs_type, "ns", "web", &orphaning)
            .await
            .expect("delete");
        assert!(
            registry
                .try_get(rs_type, "ns", "web")
                .expect("read")
                .is_some(),
            "held by its orphan finalizer"
        );
        assert!(!can_adopt(&registry, &owner, "ns").await.expect("read"));
        let mut gone = owner.clone();
        gone["name"] = json!("never-was");
        assert!(!can_adopt(&registry, &gone, "ns").await.expect("read"));
    }
}
