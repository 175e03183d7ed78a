//! Validation of objects before the API server stores them.
//!
//! The API server runs two checks on every write, as Kubernetes does:
//!
//! 1. [`decode_check`]: the body must decode into its kind's typed form. A value
//!    of the wrong JSON type is a 400 BadRequest naming the field
//!    (`spec.replicas`); fields the kind does not declare are refused, returned as
//!    warnings or ignored, per the request's [`FieldValidation`].
//! 2. [`validate_create`] / [`validate_update`]: Kubernetes' semantic rules for the
//!    kind (names, selectors, ports, immutable fields ...). Every violation is
//!    collected into one 422 Invalid whose causes name the fields, worded as
//!    Kubernetes words them, so `kubectl` users read familiar messages.
//!
//! Skiff's own rules are few and explicit: a container's `image` names a
//! component (`name:tag` or `sha256:<hex>`), and probes must be `httpGet`,
//! because a pod is a WebAssembly component, with no process to exec into and
//! no socket to connect to.
//!
//! Objects are validated as the API server holds them before storing: a
//! namespaced object's namespace comes from the request path
//! ([`ensure_namespace`]), so only its form is checked, and defaults may not be
//! filled in yet, so an absent field is read as its Kubernetes default. Name
//! rules per kind are in [`names`]; the `metadata` rules in [`metadata`].

// Every failure here is the `Status` the API server answers with, so the error
// type is `ApiError` (and `FieldError` for a cause) by design; boxing it would
// only move the allocation to every caller.

use serde_json::Value;

use crate::resource::ResourceType;
use crate::status::{ApiError, FieldError};

mod apps;
mod autoscaling;
mod batch;
mod coordination;
mod core;
mod cron;
mod decode;
mod label_selector;
pub mod metadata;
pub mod names;
mod networking;
mod pod;
mod rbac;
mod skiff;

use decode::Typed;

pub use decode::{
    FieldValidation, decode_and_prune, decode_and_prune_status, decode_check, prune_unknown_fields,
    status_checked_alone,
};
pub use metadata::ensure_namespace;
pub use names::NameRule;

/// Causes collected while validating one object.
type Errors = Vec<FieldError>;

/// Validates an object about to be created: its metadata and its kind's rules.
/// Fails like [`decode_check`] (400) when it does not decode, and otherwise with
/// one 422 Invalid listing every cause.
pub fn validate_create(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    validate_object(rt, obj, Op::Create)
}

/// The checks of one object on its own: it decodes, its metadata, its kind's rules.
fn validate_object(rt: &ResourceType, obj: &Value, op: Op) -> Result<(), ApiError> {
    let typed = decode::decode_typed(rt, obj)?.object;
    let mut errs = Errors::new();
    metadata::validate_object_meta(rt, typed.metadata(), &mut errs);
    validate_kind(&typed, obj, op, &mut errs);
    finish(rt, obj, errs)
}

/// Validates `new` replacing `old`: everything [`validate_create`] checks, plus
/// the fields Kubernetes will not let an update change (metadata identity,
/// workload selectors, a Job's template, a Service's `clusterIP`, data of an
/// `immutable` ConfigMap or Secret, a Pod's spec beyond image, deadline and
/// tolerations ...).
pub fn validate_update(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let new_typed = decode::decode_typed(rt, new)?.object;
    let mut errs = Errors::new();
    metadata::validate_object_meta(rt, new_typed.metadata(), &mut errs);
    validate_kind(&new_typed, new, Op::Update, &mut errs);
    // The stored object decoded when it was written. Should it no longer (a
    // schema change), the comparisons are skipped rather than blocking every
    // write to it.
    if let Ok(old_decoded) = decode::decode_typed(rt, old) {
        let old_typed = old_decoded.object;
        metadata::validate_object_meta_update(
            rt,
            old_typed.metadata(),
            new_typed.metadata(),
            &mut errs,
        );
        validate_kind_update(&old_typed, old, &new_typed, new, &mut errs);
    }
    finish(rt, new, errs)
}

/// Validates `new` written through the `status` subresource. Its metadata and
/// spec are the stored object's (the status strategy takes only `status` from
/// the request), so the rules that compare them with the old object cannot
/// fail and are not run; the object itself is checked as on any update.
pub fn validate_status_update(rt: &ResourceType, new: &Value) -> Result<(), ApiError> {
    validate_object(rt, new, Op::Update)
}

/// Whether an object is being created or replaced; a few rules apply to one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
}

fn finish(rt: &ResourceType, obj: &Value, errs: Errors) -> Result<(), ApiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, decode::object_name(obj), errs))
    }
}

fn validate_kind(typed: &Typed, obj: &Value, op: Op, errs: &mut Errors) {
    match typed {
        Typed::Namespace(o) => core::validate_namespace(o, errs),
        Typed::Node(o) => core::validate_node(o, errs),
        Typed::Pod(o) => pod::validate_pod(o, op, errs),
        Typed::Service(o) => core::validate_service(o, errs),
        Typed::Endpoints(o) => core::validate_endpoints(o, errs),
        Typed::Event(o) => core::validate_event(o, errs),
        Typed::ConfigMap(_) => core::validate_config_map(obj, errs),
        Typed::Secret(o) => core::validate_secret(o, obj, errs),
        Typed::ServiceAccount(_) => {}
        Typed::PersistentVolume(o) => core::validate_persistent_volume(o, errs),
        Typed::PersistentVolumeClaim(o) => core::validate_persistent_volume_claim(o, errs),
        Typed::ResourceQuota(o) => core::validate_resource_quota(o, errs),
        Typed::LimitRange(o) => core::validate_limit_range(o, errs),
        Typed::Deployment(o) => apps::validate_deployment(o, obj, errs),
        Typed::ReplicaSet(o) => apps::validate_replica_set(o, obj, errs),
        Typed::DaemonSet(o) => apps::validate_daemon_set(o, obj, errs),
        Typed::StatefulSet(o) => apps::validate_stateful_set(o, obj, errs),
        Typed::Job(o) => batch::validate_job(o, errs),
        Typed::CronJob(o) => batch::validate_cron_job(o, errs),
        Typed::HorizontalPodAutoscaler(o) => autoscaling::validate_hpa(o, errs),
        Typed::Ingress(o) => networking::validate_ingress(o, errs),
        Typed::IngressClass(o) => networking::validate_ingress_class(o, errs),
        Typed::EndpointSlice(o) => networking::validate_endpoint_slice(o, errs),
        Typed::Lease(o) => coordination::validate_lease(o, errs),
        Typed::Role(o) => rbac::validate_rules(o.rules.as_deref(), true, errs),
        Typed::ClusterRole(o) => rbac::validate_rules(o.rules.as_deref(), false, errs),
        Typed::RoleBinding(o) => {
            rbac::validate_role_binding(&o.role_ref, o.subjects.as_deref(), true, errs)
        }
        Typed::ClusterRoleBinding(o) => {
            rbac::validate_role_binding(&o.role_ref, o.subjects.as_deref(), false, errs)
        }
        Typed::Component(o) => skiff::validate_component(o, errs),
        Typed::Other(_) => {}
    }
}

fn validate_kind_update(
    old: &Typed,
    old_obj: &Value,
    new: &Typed,
    new_obj: &Value,
    errs: &mut Errors,
) {
    match (old, new) {
        (Typed::Pod(old), Typed::Pod(new)) => pod::validate_pod_update(old, new, errs),
        (Typed::Service(old), Typed::Service(new)) => core::validate_service_update(old, new, errs),
        (Typed::ConfigMap(_), Typed::ConfigMap(_)) => {
            core::validate_config_map_update(old_obj, new_obj, errs)
        }
        (Typed::Secret(_), Typed::Secret(_)) => {
            core::validate_secret_update(old_obj, new_obj, errs)
        }
        (Typed::PersistentVolumeClaim(old), Typed::PersistentVolumeClaim(new)) => {
            core::validate_persistent_volume_claim_update(old, new, errs)
        }
        (Typed::Deployment(old), Typed::Deployment(new)) => {
            apps::validate_deployment_update(old, new, errs)
        }
        (Typed::ReplicaSet(old), Typed::ReplicaSet(new)) => {
            apps::validate_replica_set_update(old, new, errs)
        }
        (Typed::DaemonSet(old), Typed::DaemonSet(new)) => {
            apps::validate_daemon_set_update(old, new, errs)
        }
        (Typed::StatefulSet(old), Typed::StatefulSet(new)) => {
            apps::validate_stateful_set_update(old, new, errs)
        }
        (Typed::Job(old), Typed::Job(new)) => batch::validate_job_update(old, new, errs),
        (Typed::EndpointSlice(old), Typed::EndpointSlice(new))
            if old.address_type != new.address_type =>
        {
            errs.push(immutable("addressType", new.address_type.as_str()));
        }
        (Typed::RoleBinding(old), Typed::RoleBinding(new)) => {
            rbac::validate_role_ref_update(&old.role_ref, &new.role_ref, errs)
        }
        (Typed::ClusterRoleBinding(old), Typed::ClusterRoleBinding(new)) => {
            rbac::validate_role_ref_update(&old.role_ref, &new.role_ref, errs)
        }
        _ => {}
    }
}

/// `parent.name`, or `name` at the root.
fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[i]`.
fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]`: an entry of a map, as Kubernetes prints it.
fn key(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

/// Kubernetes' `ValidateNonnegativeField`.
fn nonnegative(value: Option<impl Into<i64>>, path: &str, errs: &mut Errors) {
    if let Some(v) = value.map(Into::into)
        && v < 0
    {
        errs.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// The longest duration, in seconds, a user may give: Go's `time.Duration`
/// (int64 nanoseconds, about 292 years), which every Kubernetes component turns
/// these fields into; beyond it a deadline overflows. Kubernetes itself wraps
/// silently there; Skiff refuses the value with 422 instead, so that no
/// controller or node computes a deadline that cannot be represented.
pub const MAX_DURATION_SECONDS: i64 = i64::MAX / 1_000_000_000;

/// A number of seconds a deadline is computed from: at most
/// [`MAX_DURATION_SECONDS`].
fn duration_seconds(value: Option<i64>, path: &str, errs: &mut Errors) {
    if let Some(v) = value
        && v > MAX_DURATION_SECONDS
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("must be less than or equal to {MAX_DURATION_SECONDS}"),
        ));
    }
}

/// `field is immutable`, Kubernetes' `ValidateImmutableField`.
fn immutable(path: &str, new_value: impl Into<Value>) -> FieldError {
    FieldError::invalid(path, new_value, "field is immutable")
}

/// Adds one Invalid cause per message, the way Kubernetes reports a value that
/// breaks a format.
fn invalid_each(path: &str, value: &str, messages: Vec<String>, errs: &mut Errors) {
    errs.extend(
        messages
            .into_iter()
            .map(|m| FieldError::invalid(path, value, m)),
    );
}

/// The JSON form of a typed value, for messages that quote a whole structure.
fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
