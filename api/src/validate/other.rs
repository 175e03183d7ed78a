//! HorizontalPodAutoscaler, Lease, RBAC, and Skiff's Component.

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricTarget};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use super::decode::ComponentObject;
use super::pod::validate_quantity;
use super::{Errors, child, index, invalid_each, names};
use crate::component::{ComponentRef, object_name};
use crate::status::FieldError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const METRIC_SOURCE_TYPES: &[&str] = &[
    "Object",
    "Pods",
    "Resource",
    "External",
    "ContainerResource",
];

/// HorizontalPodAutoscaler (autoscaling/v2): Kubernetes'
/// `validateHorizontalPodAutoscalerSpec`.
pub(crate) fn validate_hpa(hpa: &HorizontalPodAutoscaler, errs: &mut Errors) {
    let default = Default::default();
    let spec = hpa.spec.as_ref().unwrap_or(&default);
    if let Some(min) = spec.min_replicas
        && min < 1
    {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        ));
    }
    if spec.max_replicas < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            spec.max_replicas,
            "must be greater than 0",
        ));
    }
    if let Some(min) = spec.min_replicas
        && spec.max_replicas < min
    {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = &spec.scale_target_ref;
    for (field, value) in [("kind", &target.kind), ("name", &target.name)] {
        let p = child("spec.scaleTargetRef", field);
        if value.is_empty() {
            errs.push(FieldError::required(p, ""));
        } else {
            invalid_each(&p, value, names::is_valid_path_segment_name(value), errs);
        }
    }
    for (i, metric) in spec.metrics.iter().flatten().enumerate() {
        validate_metric(metric, &index("spec.metrics", i), errs);
    }
}

fn validate_metric(m: &MetricSpec, path: &str, errs: &mut Errors) {
    let type_path = child(path, "type");
    if m.type_.is_empty() {
        errs.push(FieldError::required(
            &type_path,
            "must specify a metric source type",
        ));
    }
    let present = [
        ("object", "Object", m.object.is_some()),
        ("pods", "Pods", m.pods.is_some()),
        ("resource", "Resource", m.resource.is_some()),
        ("external", "External", m.external.is_some()),
        (
            "containerResource",
            "ContainerResource",
            m.container_resource.is_some(),
        ),
    ];
    match present.iter().find(|(_, t, _)| *t == m.type_) {
        None => errs.push(FieldError::not_supported(
            &type_path,
            m.type_.as_str(),
            METRIC_SOURCE_TYPES,
        )),
        Some((field, _, false)) => errs.push(FieldError::required(
            child(path, field),
            "must populate information for the given metric source",
        )),
        Some(_) => {}
    }
    for (field, t, is_set) in present {
        if is_set && t != m.type_ {
            errs.push(FieldError::forbidden(
                child(path, field),
                "must populate the given metric source only",
            ));
        }
    }
    if let Some(r) = &m.resource {
        let p = child(path, "resource");
        if r.name.is_empty() {
            errs.push(FieldError::required(
                child(&p, "name"),
                "must specify a resource name",
            ));
        }
        validate_resource_target(&r.target, &child(&p, "target"), errs);
    }
    if let Some(r) = &m.container_resource {
        let p = child(path, "containerResource");
        if r.name.is_empty() {
            errs.push(FieldError::required(
                child(&p, "name"),
                "must specify a resource name",
            ));
        }
        if r.container.is_empty() {
            errs.push(FieldError::required(
                child(&p, "container"),
                "must specify a container",
            ));
        } else {
            invalid_each(
                &child(&p, "container"),
                &r.container,
                names::is_dns1123_label(&r.container),
                errs,
            );
        }
        validate_resource_target(&r.target, &child(&p, "target"), errs);
    }
    let named = [
        ("pods", m.pods.as_ref().map(|s| (&s.metric.name, &s.target))),
        (
            "object",
            m.object.as_ref().map(|s| (&s.metric.name, &s.target)),
        ),
        (
            "external",
            m.external.as_ref().map(|s| (&s.metric.name, &s.target)),
        ),
    ];
    for (field, source) in named {
        let Some((name, target)) = source else {
            continue;
        };
        let p = child(path, field);
        if name.is_empty() {
            errs.push(FieldError::required(
                child(&p, "metric.name"),
                "must specify a metric name",
            ));
        }
        validate_metric_target(target, &child(&p, "target"), errs);
    }
    if let Some(object) = &m.object {
        let p = child(path, "object.describedObject");
        for (field, value) in [
            ("kind", &object.described_object.kind),
            ("name", &object.described_object.name),
        ] {
            if value.is_empty() {
                errs.push(FieldError::required(child(&p, field), ""));
            }
        }
    }
}

fn validate_resource_target(t: &MetricTarget, path: &str, errs: &mut Errors) {
    validate_metric_target(t, path, errs);
    match (&t.average_utilization, &t.average_value) {
        (None, None) => errs.push(FieldError::required(
            child(path, "averageUtilization"),
            "must set either a target raw value or a target utilization",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            child(path, "averageValue"),
            "may not set both a target raw value and a target utilization",
        )),
        _ => {}
    }
}

fn validate_metric_target(t: &MetricTarget, path: &str, errs: &mut Errors) {
    let type_path = child(path, "type");
    if t.type_.is_empty() {
        errs.push(FieldError::required(
            &type_path,
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&t.type_.as_str()) {
        errs.push(FieldError::invalid(
            &type_path,
            t.type_.as_str(),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for (field, q) in [("value", &t.value), ("averageValue", &t.average_value)] {
        let Some(q) = q else { continue };
        let p = child(path, field);
        if let Some(v) = validate_quantity(q, &p, errs)
            && !v.is_positive()
        {
            errs.push(FieldError::invalid(&p, q.0.as_str(), "must be positive"));
        }
    }
    if let Some(u) = t.average_utilization
        && u < 1
    {
        errs.push(FieldError::invalid(
            child(path, "averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
}

/// Lease: positive duration, non-negative transitions.
pub(crate) fn validate_lease(lease: &Lease, errs: &mut Errors) {
    let Some(spec) = &lease.spec else { return };
    if let Some(d) = spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(strategy) = spec.strategy.as_deref() {
        invalid_each(
            "spec.strategy",
            strategy,
            names::is_qualified_name(strategy),
            errs,
        );
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        && spec.strategy.is_none()
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

/// Role and ClusterRole rules: Kubernetes' `ValidatePolicyRule`.
pub(crate) fn validate_rules(rules: Option<&[PolicyRule]>, namespaced: bool, errs: &mut Errors) {
    for (i, rule) in rules.unwrap_or_default().iter().enumerate() {
        let p = index("rules", i);
        if rule.verbs.is_empty() {
            errs.push(FieldError::required(
                child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let resource_names = rule.resource_names.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            let urls_json = serde_json::Value::from(urls.to_vec());
            if namespaced {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    urls_json.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() || !resource_names.is_empty() {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    urls_json,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errs.push(FieldError::required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errs.push(FieldError::required(
                child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// RoleBinding and ClusterRoleBinding: Kubernetes' `ValidateRoleBinding`.
pub(crate) fn validate_role_binding(
    role_ref: &RoleRef,
    subjects: Option<&[Subject]>,
    namespaced: bool,
    errs: &mut Errors,
) {
    if role_ref.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            role_ref.api_group.as_str(),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        invalid_each(
            "roleRef.name",
            &role_ref.name,
            names::is_valid_path_segment_name(&role_ref.name),
            errs,
        );
    }
    for (i, s) in subjects.unwrap_or_default().iter().enumerate() {
        validate_subject(s, namespaced, &index("subjects", i), errs);
    }
}

fn validate_subject(s: &Subject, namespaced: bool, path: &str, errs: &mut Errors) {
    if s.name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                invalid_each(
                    &child(path, "name"),
                    &s.name,
                    names::is_dns1123_subdomain(&s.name),
                    errs,
                );
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(
                    child(path, "apiGroup"),
                    group,
                    &[""],
                ));
            }
            if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(child(path, "namespace"), ""));
            }
        }
        // An absent apiGroup defaults to the RBAC group for users and groups.
        "User" | "Group" => {
            if !group.is_empty() && group != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    child(path, "apiGroup"),
                    group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            child(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// A binding's roleRef cannot change.
pub(crate) fn validate_role_ref_update(old: &RoleRef, new: &RoleRef, errs: &mut Errors) {
    if old != new {
        errs.push(FieldError::invalid(
            "roleRef",
            super::to_json(new),
            "cannot change roleRef",
        ));
    }
}

/// Component: `spec.name`, `spec.tag` and `spec.digest` are well-formed, and the
/// object is named `<spec.name>.<spec.tag>`.
pub(crate) fn validate_component(c: &ComponentObject, errs: &mut Errors) {
    let Some(spec) = &c.spec else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    let mut well_formed = true;
    if spec.name.is_empty() {
        well_formed = false;
        errs.push(FieldError::required("spec.name", ""));
    } else if let Err(why) = ComponentRef::parse(&spec.name).and_then(|_| {
        if spec.name.contains(':') {
            Err(format!(
                "component name {:?} may not contain ':'",
                spec.name
            ))
        } else {
            Ok(())
        }
    }) {
        well_formed = false;
        errs.push(FieldError::invalid("spec.name", spec.name.as_str(), why));
    }
    if spec.tag.is_empty() {
        well_formed = false;
        errs.push(FieldError::required("spec.tag", ""));
    } else if spec.tag.contains(':') || ComponentRef::parse(&format!("x:{}", spec.tag)).is_err() {
        well_formed = false;
        errs.push(FieldError::invalid(
            "spec.tag",
            spec.tag.as_str(),
            "must be 1-63 lower case alphanumeric characters, '-' or '.', starting with an alphanumeric character",
        ));
    }
    if spec.digest.is_empty() {
        errs.push(FieldError::required("spec.digest", ""));
    } else {
        match ComponentRef::parse(&spec.digest) {
            Ok(ComponentRef::Digest(_)) => {}
            Ok(ComponentRef::Tagged { .. }) => errs.push(FieldError::invalid(
                "spec.digest",
                spec.digest.as_str(),
                "must be sha256: and 64 lower-case hex digits",
            )),
            Err(why) => errs.push(FieldError::invalid(
                "spec.digest",
                spec.digest.as_str(),
                why,
            )),
        }
    }
    let name = c.metadata.name.as_deref().unwrap_or("");
    if well_formed && !name.is_empty() {
        let expected = object_name(&spec.name, &spec.tag);
        if name != expected {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("must be <spec.name>.<spec.tag>, {expected:?}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn strings(errs: &Errors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn hpas() {
        let hpa = |spec: Value| -> HorizontalPodAutoscaler {
            serde_json::from_value(json!({"metadata": {"name": "h"}, "spec": spec})).unwrap()
        };
        let good = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                          "minReplicas": 1, "maxReplicas": 5,
                          "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]});
        let mut errs = Errors::new();
        validate_hpa(&hpa(good), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let bad = json!({"scaleTargetRef": {"kind": "", "name": "a/b"}, "minReplicas": 3, "maxReplicas": 0,
                         "metrics": [{"type": "Resource"}, {"type": "Pods", "pods": {"metric": {"name": ""}, "target": {"type": "Bogus"}}, "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}}]});
        validate_hpa(&hpa(bad), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.maxReplicas: Invalid value: 0: must be greater than 0",
                "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.kind: Required value",
                "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'",
                "spec.metrics[0].resource: Required value: must populate information for the given metric source",
                "spec.metrics[1].resource: Forbidden: must populate the given metric source only",
                "spec.metrics[1].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
                "spec.metrics[1].pods.metric.name: Required value: must specify a metric name",
                "spec.metrics[1].pods.target.type: Invalid value: \"Bogus\": must be either Utilization, Value, or AverageValue",
            ]
        );
    }

    #[test]
    fn rbac() {
        let rules: Vec<PolicyRule> = serde_json::from_value(json!([
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": [], "apiGroups": []},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}
        ]))
        .unwrap();
        let mut errs = Errors::new();
        validate_rules(Some(&rules), true, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].resources: Required value: resource rules must supply at least one resource",
                "rules[2].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
                "rules[2].nonResourceURLs: Invalid value: [\"/healthz\"]: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
        let role_ref: RoleRef = serde_json::from_value(
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}),
        )
        .unwrap();
        let subjects: Vec<Subject> = serde_json::from_value(json!([
            {"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "r2"}
        ])).unwrap();
        let mut errs = Errors::new();
        validate_role_binding(&role_ref, Some(&subjects), false, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[1].namespace: Required value",
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
    }

    #[test]
    fn components() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let comp = |name: &str, spec: Value| -> ComponentObject {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
        };
        let spec = |n: &str, t: &str, d: &str| json!({"name": n, "tag": t, "digest": d, "size": 1, "exports": [], "kind": "Http"});
        let mut errs = Errors::new();
        validate_component(&comp("hello.v1", spec("hello", "v1", &digest)), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        validate_component(&comp("hello.v2", spec("hello", "v1", &digest)), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "metadata.name: Invalid value: \"hello.v2\": must be <spec.name>.<spec.tag>, \"hello.v1\""
            ]
        );
        let mut errs = Errors::new();
        validate_component(&comp("x", spec("Hello", "v1:2", "sha256:xyz")), &mut errs);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.name", "spec.tag", "spec.digest"]);
    }

    #[test]
    fn leases() {
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})).unwrap();
        let mut errs = Errors::new();
        validate_lease(&lease, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }
}
