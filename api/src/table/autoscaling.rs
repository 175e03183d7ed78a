//! The HorizontalPodAutoscaler printer (autoscaling/v2).

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::json::Pointer as _;
use crate::quantity::quantity_string;

use super::{
    AGE, Column, NAME, Printer, age_cell, arr_at, int_at, name_cell, obj_at, opt_int, str_at,
};

pub(super) const HORIZONTAL_POD_AUTOSCALER: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Reference",
            "string",
            "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
        ),
        Column::new(
            "Targets",
            "string",
            "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.",
        ),
        Column::new(
            "MinPods",
            "string",
            "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.",
        ),
        Column::new(
            "MaxPods",
            "string",
            "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.",
        ),
        Column::new(
            "Replicas",
            "string",
            "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
        ),
        AGE,
    ],
    cells: horizontal_pod_autoscaler_cells,
};

/// How many metrics the TARGETS cell names before `+ N more...`.
const METRICS_MAX: usize = 2;

/// `printHorizontalPodAutoscaler`: NAME REFERENCE TARGETS MINPODS MAXPODS
/// REPLICAS AGE.
fn horizontal_pod_autoscaler_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(hpa, "/spec/scaleTargetRef/kind"),
        str_at(hpa, "/spec/scaleTargetRef/name")
    );
    // Kubernetes defaults minReplicas to 1 and the metrics to 80% average CPU.
    let min_pods = opt_int(hpa, "/spec/minReplicas").unwrap_or(1);
    let specs = arr_at(hpa, "/spec/metrics");
    let default_metrics = [json!({
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
    })];
    let specs = if specs.is_empty() {
        &default_metrics[..]
    } else {
        specs
    };
    vec![
        name_cell(hpa),
        Value::from(reference),
        Value::from(format_metrics(specs, arr_at(hpa, "/status/currentMetrics"))),
        Value::from(min_pods.to_string()),
        Value::from(int_at(hpa, "/spec/maxReplicas")),
        Value::from(int_at(hpa, "/status/currentReplicas")),
        age_cell(hpa, now),
    ]
}

/// `formatHPAMetrics`: `current/target` per metric (the status at the same
/// index is the current value), the first two, then `+ N more...`.
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i).unwrap_or(&Value::Null);
            match str_at(spec, "/type") {
                "External" => value_metric(spec, status, "external"),
                "Object" => value_metric(spec, status, "object"),
                "Pods" => {
                    let current = match obj_at(status, "/pods") {
                        Some(_) => quantity_ptr_string(status.at("/pods/current/averageValue")),
                        None => "<unknown>".to_string(),
                    };
                    let target = quantity_ptr_string(spec.at("/pods/target/averageValue"));
                    format!("{current}/{target}")
                }
                "Resource" => resource_metric(spec, status, "resource"),
                "ContainerResource" => resource_metric(spec, status, "containerResource"),
                _ => "<unknown type>".to_string(),
            }
        })
        .collect();
    if list.len() > METRICS_MAX {
        format!(
            "{} + {} more...",
            list[..METRICS_MAX].join(", "),
            list.len() - METRICS_MAX
        )
    } else {
        list.join(", ")
    }
}

/// An `External` or `Object` metric: `current/target`, or
/// `current/target (avg)` for an average-value target.
fn value_metric(spec: &Value, status: &Value, source: &str) -> String {
    let target_avg = spec.at(&format!("/{source}/target/averageValue"));
    let status_source = obj_at(status, &format!("/{source}"));
    if target_avg.is_some_and(|v| !v.is_null()) {
        let current = status
            .at(&format!("/{source}/current/averageValue"))
            .filter(|v| status_source.is_some() && !v.is_null())
            .map(|v| quantity_ptr_string(Some(v)))
            .unwrap_or_else(|| "<unknown>".to_string());
        format!("{current}/{} (avg)", quantity_ptr_string(target_avg))
    } else {
        let current = match status_source {
            Some(_) => quantity_ptr_string(status.at(&format!("/{source}/current/value"))),
            None => "<unknown>".to_string(),
        };
        let target = quantity_ptr_string(spec.at(&format!("/{source}/target/value")));
        format!("{current}/{target}")
    }
}

/// A `Resource` or `ContainerResource` metric: `cpu: 35%/80%`, or
/// `memory: 120Mi/200Mi` for an average-value target.
fn resource_metric(spec: &Value, status: &Value, source: &str) -> String {
    let name = str_at(spec, &format!("/{source}/name"));
    let status_source = obj_at(status, &format!("/{source}"));
    let target_avg = spec.at(&format!("/{source}/target/averageValue"));
    if target_avg.is_some_and(|v| !v.is_null()) {
        let current = match status_source {
            Some(_) => quantity_ptr_string(status.at(&format!("/{source}/current/averageValue"))),
            None => "<unknown>".to_string(),
        };
        format!("{name}: {current}/{}", quantity_ptr_string(target_avg))
    } else {
        let current = status_source
            .and_then(|_| opt_int(status, &format!("/{source}/current/averageUtilization")))
            .map(|u| format!("{u}%"))
            .unwrap_or_else(|| "<unknown>".to_string());
        let target = opt_int(spec, &format!("/{source}/target/averageUtilization"))
            .map(|u| format!("{u}%"))
            .unwrap_or_else(|| "<auto>".to_string());
        format!("{name}: {current}/{target}")
    }
}

/// `Quantity.String()` of `value`, or `<nil>` for a missing one: what Go
/// prints for a nil `*Quantity`.
fn quantity_ptr_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "<nil>".to_string(),
        some => quantity_string(some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn autoscalers() {
        let hpa = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "200Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                ],
            },
            "status": {
                "currentReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "350m"}}},
                    {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "125829120"}}},
                ],
            },
        });
        assert_eq!(
            horizontal_pod_autoscaler_cells(&hpa, now()),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 35%/80%, memory: 125829120/200Mi + 1 more..."),
                json!("2"),
                json!(10),
                json!(3),
                json!("120m"),
            ]
        );

        // Defaults: minReplicas 1, 80% CPU; no status yet.
        let fresh = json!({
            "metadata": {"name": "api"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 5},
        });
        assert_eq!(
            horizontal_pod_autoscaler_cells(&fresh, now())[2..6],
            [json!("cpu: <unknown>/80%"), json!("1"), json!(5), json!(0)]
        );
    }

    #[test]
    fn external_object_and_pods_metrics() {
        let specs = [
            json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}}),
            json!({"type": "Object", "object": {"metric": {"name": "hits"}, "target": {"type": "Value", "value": "10k"}}}),
        ];
        let statuses = [
            json!({"type": "External", "external": {"current": {"averageValue": "12"}}}),
            json!({"type": "Object", "object": {"current": {"value": "2500"}}}),
        ];
        assert_eq!(format_metrics(&specs, &statuses), "12/30 (avg), 2500/10k");
        assert_eq!(
            format_metrics(&specs, &[]),
            "<unknown>/30 (avg), <unknown>/10k"
        );
        let pods = [json!({"type": "Pods", "pods": {"target": {"averageValue": "100"}}})];
        assert_eq!(format_metrics(&pods, &[]), "<unknown>/100");
        let odd = [json!({"type": "Quantum"})];
        assert_eq!(format_metrics(&odd, &[]), "<unknown type>");
        let auto = [
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {}}}),
        ];
        assert_eq!(format_metrics(&auto, &[]), "cpu: <unknown>/<auto>");
    }
}
