//! HorizontalPodAutoscaler (autoscaling/v2).

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricTarget};

use super::pod::validate_quantity;
use super::{Errors, child, index, invalid_each, names};
use crate::status::FieldError;

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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

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
}
