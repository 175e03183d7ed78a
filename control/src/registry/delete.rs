//! Deletion: preconditions, finalizers, propagation policy and graceful pod
//! deletion, as Kubernetes does it.
//!
//! An object with finalizers is not removed: it gets `deletionTimestamp` and stays
//! until the last finalizer is taken off (by an update), then goes. The
//! propagation policy becomes a finalizer (`orphan`, `foregroundDeletion`) that
//! the garbage collector acts on. A pod bound to a node is deleted gracefully: it
//! gets `deletionTimestamp` and `deletionGracePeriodSeconds`, and the node removes
//! it once its containers have stopped. A namespace is deleted by the namespace
//! controller after everything in it is gone.

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::ResourceType;
use skiff_api::status::{ApiError, Details, FieldError, Reason};
use skiff_api::validate;

use super::{Registry, Result, key, store_error};
use crate::store::{Action, Op, Precondition, StoreError, object_revision};

/// Finalizer the garbage collector uses to orphan dependents.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer the garbage collector uses to delete dependents first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// How dependents (by `ownerReferences`) are treated when their owner goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Dependents stay; their owner reference is removed.
    Orphan,
    /// The owner goes now; the garbage collector deletes dependents after.
    Background,
    /// Dependents are deleted first; the owner goes after them.
    Foreground,
}

impl PropagationPolicy {
    /// Parses Kubernetes' spelling.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "Orphan" => Ok(PropagationPolicy::Orphan),
            "Background" => Ok(PropagationPolicy::Background),
            "Foreground" => Ok(PropagationPolicy::Foreground),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }
}

/// `DeleteOptions`, from the query and the body.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<PropagationPolicy>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Refuses a grace period whose deadline cannot be represented, with 422
    /// naming the field, as Kubernetes' `ValidateDeleteOptions` words its
    /// errors (Kubernetes itself lets the deadline overflow; see
    /// [`validate::MAX_DURATION_SECONDS`]).
    pub fn validate(&self) -> Result<()> {
        let Some(grace) = self.grace_period_seconds else {
            return Ok(());
        };
        if grace <= validate::MAX_DURATION_SECONDS {
            return Ok(());
        }
        let cause = FieldError::invalid(
            "gracePeriodSeconds",
            grace,
            format!(
                "must be less than or equal to {}",
                validate::MAX_DURATION_SECONDS
            ),
        );
        let mut err = ApiError::new(
            Reason::Invalid,
            format!("DeleteOptions.meta.k8s.io \"\" is invalid: {cause}"),
        );
        err.details = Some(Box::new(Details {
            name: String::new(),
            group: "meta.k8s.io".into(),
            kind: "DeleteOptions".into(),
            causes: vec![cause],
            retry_after_seconds: None,
        }));
        Err(err)
    }
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The object as last stored (with the deletion's revision when gone).
    pub object: Value,
    /// Whether the object is gone now (else it awaits finalizers or its node).
    pub gone: bool,
}

const DELETE_RETRIES: usize = 8;

/// One try at a delete: done, or lost a race with another write.
enum Attempt {
    Done(Deleted),
    Raced,
}

impl Registry {
    /// Deletes an object, honouring preconditions, finalizers and grace periods.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted> {
        opts.validate()?;
        // A write that raced another (the object's revision moved) is retried
        // on the fresh object: preconditions are checked again each time.
        for _ in 0..DELETE_RETRIES {
            if let Attempt::Done(deleted) = self.try_delete(rt, namespace, name, opts).await? {
                return Ok(deleted);
            }
        }
        Err(ApiError::conflict(rt, name, super::STALE))
    }

    async fn try_delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Attempt> {
        let old = self.get(rt, namespace, name)?;
        check_preconditions(rt, name, &old, opts)?;
        let revision = object_revision(&old).unwrap_or(0);
        let mut new = old.clone();

        apply_propagation(&mut new, opts.propagation_policy);
        let graceful = graceful_pod(rt, &old, opts);
        let pending = !meta::finalizers(&new).is_empty()
            || graceful.is_some()
            || rt.kind == "Namespace" && rt.group.is_empty();

        if !pending {
            if opts.dry_run {
                return Ok(Attempt::Done(Deleted {
                    object: old,
                    gone: true,
                }));
            }
            let op = Op {
                key: key(rt, namespace, name),
                precondition: Precondition::Revision(revision),
                action: Action::Delete,
                prev: None,
            };
            let committed = match self.commit(vec![op]).await {
                Err(StoreError::Conflict { .. }) => return Ok(Attempt::Raced),
                other => other.map_err(store_error(rt, name))?,
            };
            let object = committed
                .into_iter()
                .next()
                .map(|c| Arc::unwrap_or_clone(c.object))
                .unwrap_or(old);
            return Ok(Attempt::Done(Deleted { object, gone: true }));
        }

        match (meta::deletion_timestamp(&new).is_some(), graceful) {
            (false, grace) => mark_deleting(&mut new, grace.unwrap_or(0)),
            (true, Some(grace)) => {
                // A second delete may shorten the grace period, never lengthen it.
                let current = new
                    .at("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX);
                if grace < current {
                    mark_deleting(&mut new, grace);
                }
            }
            (true, None) => {}
        }
        if rt.kind == "Namespace" && rt.group.is_empty() {
            super::strategy::set_path(&mut new, &["status", "phase"], json!("Terminating"));
        }
        if new == old || opts.dry_run {
            return Ok(Attempt::Done(Deleted {
                object: new,
                gone: false,
            }));
        }
        let op = Op {
            key: key(rt, namespace, name),
            precondition: Precondition::Revision(revision),
            action: Action::Put(new),
            prev: None,
        };
        let committed = match self.commit(vec![op]).await {
            Err(StoreError::Conflict { .. }) => return Ok(Attempt::Raced),
            other => other.map_err(store_error(rt, name))?,
        };
        let object = committed
            .into_iter()
            .next()
            .map(|c| Arc::unwrap_or_clone(c.object))
            .unwrap_or(old);
        Ok(Attempt::Done(Deleted {
            object,
            gone: false,
        }))
    }
}

/// Sets `deletionTimestamp` to now plus the grace period, and the period.
fn mark_deleting(obj: &mut Value, grace_seconds: i64) {
    // Validation bounds the period; a stored pod's own period is saturated
    // rather than trusted not to overflow.
    let now = jiff::Timestamp::now();
    let at = now
        .checked_add(jiff::SignedDuration::from_secs(grace_seconds))
        .unwrap_or(jiff::Timestamp::MAX);
    meta::set(obj, "deletionTimestamp", meta::format_timestamp(at));
    meta::set(obj, "deletionGracePeriodSeconds", grace_seconds);
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    opts: &DeleteOptions,
) -> Result<()> {
    if let Some(uid) = &opts.precondition_uid {
        let actual = meta::uid(obj).unwrap_or_default();
        if uid != actual {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.precondition_resource_version {
        let actual = meta::resource_version(obj).unwrap_or_default();
        if rv != actual {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

/// Sets the finalizers a propagation policy asks for.
fn apply_propagation(obj: &mut Value, policy: Option<PropagationPolicy>) {
    let Some(policy) = policy else { return };
    let mut finalizers: Vec<String> = meta::finalizers(obj)
        .into_iter()
        .map(str::to_string)
        .collect();
    let before = finalizers.clone();
    finalizers.retain(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER);
    match policy {
        PropagationPolicy::Orphan => finalizers.push(ORPHAN_FINALIZER.into()),
        PropagationPolicy::Foreground => finalizers.push(FOREGROUND_FINALIZER.into()),
        PropagationPolicy::Background => {}
    }
    if finalizers != before {
        if finalizers.is_empty() {
            meta::remove(obj, "finalizers");
        } else {
            meta::set(obj, "finalizers", json!(finalizers));
        }
    }
}

/// The grace period for a pod that must stop on its node first, if any.
fn graceful_pod(rt: &ResourceType, pod: &Value, opts: &DeleteOptions) -> Option<i64> {
    if rt.kind != "Pod" || !rt.group.is_empty() {
        return None;
    }
    let node = pod
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let phase = pod
        .at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let grace = opts
        .grace_period_seconds
        .or_else(|| {
            pod.at("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    // Kubernetes treats a grace period of 0 on a bound pod as 1 unless forced;
    // Skiff takes 0 to mean "now".
    (grace > 0).then_some(grace)
}
