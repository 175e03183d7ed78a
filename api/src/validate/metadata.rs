//! `metadata` rules shared by every kind: Kubernetes' `ValidateObjectMeta` and
//! `ValidateObjectMetaUpdate`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use super::names::{self, NameRule};
use super::{Errors, immutable, invalid_each};
use crate::resource::{ResourceType, split_api_version};
use crate::status::{ApiError, FieldError};

/// The most bytes all annotations of one object may hold (keys plus values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Puts the request path's namespace on `obj`, as Kubernetes does before
/// validating: a namespaced object without one gets the request's; one that
/// names a different namespace is a 400; a cluster-scoped object's namespace is
/// cleared.
pub fn ensure_namespace(
    rt: &ResourceType,
    request_namespace: Option<&str>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let request = if rt.namespaced {
        request_namespace.unwrap_or("")
    } else {
        ""
    };
    let current = crate::meta::namespace(obj).unwrap_or("").to_string();
    if current == request {
        return Ok(());
    }
    if current.is_empty() {
        crate::meta::set(obj, "namespace", request);
        return Ok(());
    }
    if request.is_empty() {
        crate::meta::remove(obj, "namespace");
        return Ok(());
    }
    Err(ApiError::bad_request(
        "the namespace of the provided object does not match the namespace sent on the request",
    ))
}

/// Kubernetes' `ValidateObjectMeta`, with the name rule of `rt`.
pub(crate) fn validate_object_meta(rt: &ResourceType, meta: &ObjectMeta, errs: &mut Errors) {
    let rule = NameRule::for_resource(rt);
    let name = meta.name.as_deref().unwrap_or("");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        invalid_each(
            "metadata.generateName",
            generate_name,
            rule.check(generate_name, true),
            errs,
        );
    }
    if name.is_empty() {
        // The server makes a name from generateName when it stores the object.
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        invalid_each("metadata.name", name, rule.check(name, false), errs);
    }
    // A cluster-scoped object's namespace is cleared and a namespaced one's comes
    // from the request path ([`ensure_namespace`]); only its form is checked here.
    if rt.namespaced
        && let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty())
    {
        invalid_each("metadata.namespace", ns, names::is_dns1123_label(ns), errs);
    }
    if let Some(generation) = meta.generation
        && generation < 0
    {
        errs.push(FieldError::invalid(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = &meta.labels {
        validate_labels(labels, "metadata.labels", errs);
    }
    if let Some(annotations) = &meta.annotations {
        validate_annotations(annotations, "metadata.annotations", errs);
    }
    if let Some(refs) = &meta.owner_references {
        validate_owner_references(refs, "metadata.ownerReferences", errs);
    }
    if let Some(finalizers) = &meta.finalizers {
        validate_finalizers(finalizers, "metadata.finalizers", errs);
    }
}

/// Kubernetes' `ValidateObjectMetaUpdate`: identity and timestamps stay put.
/// Fields absent from `new` are taken as unchanged, since the server carries
/// them over from the stored object (as Kubernetes' `BeforeUpdate` does).
pub(crate) fn validate_object_meta_update(
    rt: &ResourceType,
    old: &ObjectMeta,
    new: &ObjectMeta,
    errs: &mut Errors,
) {
    let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let old_name = set(&old.name);
    let new_name = set(&new.name);
    if new_name.is_some() && new_name != old_name {
        errs.push(immutable("metadata.name", new_name.unwrap_or_default()));
    }
    if rt.namespaced {
        let new_ns = set(&new.namespace);
        if new_ns.is_some() && new_ns != set(&old.namespace) {
            errs.push(immutable("metadata.namespace", new_ns.unwrap_or_default()));
        }
    }
    let new_uid = set(&new.uid);
    if new_uid.is_some() && new_uid != set(&old.uid) {
        errs.push(immutable("metadata.uid", new_uid.unwrap_or_default()));
    }
    if let (Some(o), Some(n)) = (&old.creation_timestamp, &new.creation_timestamp)
        && o != n
    {
        errs.push(immutable("metadata.creationTimestamp", n.0.to_string()));
    }
    if let (Some(o), Some(n)) = (&old.deletion_timestamp, &new.deletion_timestamp)
        && o != n
    {
        errs.push(immutable("metadata.deletionTimestamp", n.0.to_string()));
    }
    if let (Some(o), Some(n)) = (
        old.deletion_grace_period_seconds,
        new.deletion_grace_period_seconds,
    ) && o != n
    {
        errs.push(immutable("metadata.deletionGracePeriodSeconds", n));
    }
    // Finalizers may not be added to an object that is being deleted.
    if old.deletion_timestamp.is_some() {
        let old_f = old.finalizers.as_deref().unwrap_or_default();
        let mut extra: Vec<&str> = new
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|f| !old_f.contains(f))
            .map(String::as_str)
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
}

/// Kubernetes' `ValidateLabels`: keys are qualified names, values label values.
/// Causes name the map (`metadata.labels`), as Kubernetes does.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &str, errs: &mut Vec<FieldError>) {
    for (k, v) in labels {
        invalid_each(path, k, names::is_qualified_name(k), errs);
        invalid_each(path, v, names::is_valid_label_value(v), errs);
    }
}

/// Kubernetes' `ValidateAnnotations`: keys are qualified names in any case, and
/// all of them together hold at most 256 KiB.
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut total = 0usize;
    for (k, v) in annotations {
        invalid_each(path, k, names::is_qualified_name(&k.to_lowercase()), errs);
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

/// Kubernetes' `ValidateFinalizers`: each is a qualified name, and orphaning and
/// foreground deletion exclude each other.
pub fn validate_finalizers(finalizers: &[String], path: &str, errs: &mut Vec<FieldError>) {
    for f in finalizers {
        invalid_each(path, f, names::is_qualified_name(f), errs);
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        errs.push(FieldError::invalid(
            path,
            Value::from(finalizers.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// Kubernetes' `ValidateOwnerReferences`. Causes name the list, not the entry,
/// as Kubernetes does.
fn validate_owner_references(refs: &[OwnerReference], path: &str, errs: &mut Errors) {
    let mut first_controller: Option<String> = None;
    for r in refs {
        let (_, version) = split_api_version(&r.api_version);
        if version.is_empty() {
            errs.push(FieldError::invalid(
                super::child(path, "apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                super::child(path, "kind"),
                "",
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                super::child(path, "name"),
                "",
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                super::child(path, "uid"),
                "",
                "uid must not be empty",
            ));
        }
        if r.api_version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                super::to_json(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    super::to_json(&refs.to_vec()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => first_controller = Some(this),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;
    use serde_json::json;

    fn meta(v: Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    fn check(kind: (&str, &str), v: Value) -> Errors {
        let mut errs = Errors::new();
        validate_object_meta(by_kind(kind.0, kind.1).unwrap(), &meta(v), &mut errs);
        errs
    }

    #[test]
    fn names_follow_the_kind() {
        let errs = check(("apps/v1", "Deployment"), json!({"name": "Bad_Name"}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.name");
        assert!(errs[0].to_string().starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert!(check(("apps/v1", "Deployment"), json!({"name": "web.v1"})).is_empty());
        assert_eq!(
            check(("v1", "Service"), json!({"name": "web.v1"}))[0].field,
            "metadata.name"
        );
        assert_eq!(
            check(("v1", "Namespace"), json!({"name": "a.b"}))[0].to_string(),
            "metadata.name: Invalid value: \"a.b\": must not contain dots"
        );
        assert_eq!(
            check(("v1", "Pod"), json!({}))[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert!(check(("v1", "Pod"), json!({"generateName": "web-"})).is_empty());
        assert_eq!(
            check(("v1", "Pod"), json!({"generateName": "Web-"}))[0].field,
            "metadata.generateName"
        );
    }

    #[test]
    fn namespace_labels_annotations_finalizers_owners() {
        let errs = check(
            ("v1", "Pod"),
            json!({
                "name": "p", "namespace": "Bad",
                "labels": {"app": "web", "bad key!": "v", "k": "-bad"},
                "annotations": {"Example.com/Thing": "ok"},
                "finalizers": ["example.com/cleanup", "bad finalizer"],
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": true},
                    {"apiVersion": "", "kind": "ReplicaSet", "name": "", "uid": "", "controller": true}
                ]
            }),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.namespace",
                "metadata.labels",
                "metadata.labels",
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid",
                "metadata.ownerReferences",
                "metadata.finalizers",
            ]
        );
        assert!(errs[6].detail.starts_with("Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/rs and ReplicaSet/"));
        // Namespace on a cluster-scoped kind is cleared by the server, not refused.
        assert!(check(("v1", "Node"), json!({"name": "n", "namespace": "default"})).is_empty());
    }

    #[test]
    fn annotation_size_limit() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let errs = check(
            ("v1", "ConfigMap"),
            json!({"name": "c", "annotations": {"a": big}}),
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn update_keeps_identity() {
        let rt = by_kind("v1", "ConfigMap").unwrap();
        let old = meta(
            json!({"name": "c", "namespace": "default", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"}),
        );
        let mut errs = Errors::new();
        validate_object_meta_update(rt, &old, &meta(json!({"name": "c"})), &mut errs);
        assert!(errs.is_empty(), "absent fields are carried over");
        validate_object_meta_update(
            rt,
            &old,
            &meta(
                json!({"name": "d", "namespace": "other", "uid": "u2", "creationTimestamp": "2025-01-01T00:00:00Z"}),
            ),
            &mut errs,
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "metadata.namespace",
                "metadata.uid",
                "metadata.creationTimestamp"
            ]
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"d\": field is immutable"
        );

        let deleting = meta(
            json!({"name": "c", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a/b"]}),
        );
        let mut errs = Errors::new();
        validate_object_meta_update(
            rt,
            &deleting,
            &meta(json!({"name": "c", "finalizers": ["a/b", "c/d"]})),
            &mut errs,
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\"}"
        );
    }

    #[test]
    fn namespace_from_the_request() {
        let pods = by_kind("v1", "Pod").unwrap();
        let mut p = json!({"metadata": {"name": "p"}});
        ensure_namespace(pods, Some("dev"), &mut p).unwrap();
        assert_eq!(p["metadata"]["namespace"], "dev");
        assert!(ensure_namespace(pods, Some("prod"), &mut p).is_err());
        let nodes = by_kind("v1", "Node").unwrap();
        let mut n = json!({"metadata": {"name": "n", "namespace": "dev"}});
        ensure_namespace(nodes, None, &mut n).unwrap();
        assert!(n["metadata"].get("namespace").is_none());
    }
}
