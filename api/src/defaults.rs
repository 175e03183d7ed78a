//! Server-side defaults, as Kubernetes' `SetDefaults_*` functions apply them on
//! create and update, so that objects read back look as a Kubernetes user expects
//! (a Deployment has `replicas: 1` and a RollingUpdate strategy, a container port
//! has `protocol: TCP`, ...), and controllers can rely on the fields being set.

use serde_json::{Map, Value, json};

use crate::json::Pointer as _;
use crate::resource::ResourceType;

/// Fills in every defaulted field that is missing. Never overwrites a value.
pub fn apply(rt: &ResourceType, obj: &mut Value) {
    match (rt.group, rt.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec, true);
                requests_from_limits(spec);
            }
        }
        ("", "LimitRange") => {
            if let Some(Value::Array(limits)) = obj.pointer_mut("/spec/limits") {
                limits.iter_mut().for_each(limit_range_item);
            }
        }
        ("", "Service") => service(obj),
        ("", "Secret") => default(obj, "type", json!("Opaque")),
        ("apps", "Deployment") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "replicas", json!(1));
            update_strategy(
                spec,
                "strategy",
                json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            template(spec, true);
        }
        ("apps", "ReplicaSet") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "replicas", json!(1));
            template(spec, true);
        }
        ("apps", "DaemonSet") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            update_strategy(
                spec,
                "updateStrategy",
                json!({"maxUnavailable": 1, "maxSurge": 0}),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            template(spec, true);
        }
        ("apps", "StatefulSet") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            update_strategy(spec, "updateStrategy", json!({"partition": 0}));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            template(spec, true);
        }
        ("batch", "Job") => job(obj),
        ("batch", "CronJob") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(job_spec) = spec.pointer_mut("/jobTemplate/spec") {
                job_spec_defaults(job_spec);
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = obj.get_mut("spec") {
                default(spec, "minReplicas", json!(1));
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            if let Some(Value::Array(ports)) = obj.get_mut("ports") {
                for port in ports {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
        _ => {}
    }
}

/// The QoS class Kubernetes assigns a pod from its containers' resources.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.at(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.at("/resources/requests").and_then(Value::as_object);
        let limits = c.at("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed && !containers.is_empty()) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn service(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    default(spec, "type", json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return;
    }
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports {
            default(port, "protocol", json!("TCP"));
            if let Some(p) = port.get("port").cloned() {
                default(port, "targetPort", p);
            }
        }
    }
}

fn job(obj: &mut Value) {
    let uid = obj
        .at("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = obj
        .at("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    job_spec_defaults(spec);
    // Kubernetes generates a Job's selector from its uid unless the user asks to
    // manage it, and labels the template to match.
    let manual = spec
        .get("manualSelector")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let (false, Some(uid)) = (manual, uid) {
        let mut labels = Map::new();
        labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
        if spec.get("selector").is_none() {
            spec.as_object_mut()
                .map(|m| m.insert("selector".into(), json!({ "matchLabels": labels.clone() })));
        }
        if let Some(labels_obj) = spec
            .get_mut("template")
            .and_then(|t| entry_object(t, "metadata"))
            .and_then(|m| entry_object(m, "labels"))
        {
            default(labels_obj, "batch.kubernetes.io/controller-uid", json!(uid));
            default(labels_obj, "controller-uid", json!(uid));
            if let Some(name) = &name {
                default(labels_obj, "batch.kubernetes.io/job-name", json!(name));
                default(labels_obj, "job-name", json!(name));
            }
        }
    }
}

fn job_spec_defaults(spec: &mut Value) {
    if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
        default(spec, "completions", json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    template(spec, false);
}

fn template(spec: &mut Value, always_restart: bool) {
    if let Some(pod_spec_value) = spec.pointer_mut("/template/spec") {
        pod_spec(pod_spec_value, always_restart);
    }
}

fn pod_spec(spec: &mut Value, always_restart: bool) {
    if always_restart {
        default(spec, "restartPolicy", json!("Always"));
    }
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers {
                container(c);
            }
        }
    }
}

/// `SetDefaults_Pod`: a container with limits but no request for a resource
/// requests its limit. Only pods get this, never templates, as in Kubernetes.
fn requests_from_limits(spec: &mut Value) {
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers {
            let Some(resources) = c.get_mut("resources").filter(|r| r.is_object()) else {
                continue;
            };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            if limits.is_empty() {
                continue;
            }
            let Some(requests) = entry_object(resources, "requests") else {
                continue;
            };
            for (name, value) in limits {
                if let Some(map) = requests.as_object_mut() {
                    map.entry(name).or_insert(value);
                }
            }
        }
    }
}

/// `SetDefaults_LimitRangeItem`: for a Container item, the default limit is the
/// max, the default request is the default limit, or else the min.
fn limit_range_item(item: &mut Value) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let field = |item: &Value, name: &str| {
        item.get(name)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let max = field(item, "max");
    let min = field(item, "min");
    let mut default_limit = field(item, "default");
    for (k, v) in max {
        default_limit.entry(k).or_insert(v);
    }
    let mut default_request = field(item, "defaultRequest");
    for (k, v) in default_limit.iter().chain(min.iter()) {
        default_request.entry(k.clone()).or_insert(v.clone());
    }
    if let Some(map) = item.as_object_mut() {
        if !default_limit.is_empty() {
            map.insert("default".into(), Value::Object(default_limit));
        }
        if !default_request.is_empty() {
            map.insert("defaultRequest".into(), Value::Object(default_request));
        }
    }
}

fn container(c: &mut Value) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "imagePullPolicy", json!("IfNotPresent"));
    default(c, "resources", json!({}));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for port in ports {
            default(port, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(http) = p.get_mut("httpGet") {
                default(http, "scheme", json!("HTTP"));
                default(http, "path", json!("/"));
            }
        }
    }
}

/// A workload's update strategy: type RollingUpdate unless set, and for
/// RollingUpdate the given `rollingUpdate` fields unless set. An empty `{}`
/// (as `kubectl create deployment` sends) is defaulted like an absent one.
fn update_strategy(spec: &mut Value, field: &str, rolling: Value) {
    let Some(strategy) = entry_object(spec, field) else {
        return;
    };
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) != Some("RollingUpdate") {
        return;
    }
    let Some(rolling_update) = entry_object(strategy, "rollingUpdate") else {
        return;
    };
    if let Some(fields) = rolling.as_object() {
        for (k, v) in fields {
            default(rolling_update, k, v.clone());
        }
    }
}

/// Sets `obj[key] = value` if `obj` is an object without `key`.
fn default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.entry(key.to_string()).or_insert(value);
    }
}

/// `obj[key]`, created as `{}` when missing; `None` when either is not an object.
fn entry_object<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let value = obj
        .as_object_mut()?
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    value.is_object().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;

    #[test]
    fn deployment_defaults() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}]}}}});
        apply(rt, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
    }

    #[test]
    fn explicit_values_win() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}});
        apply(rt, &mut d);
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn empty_strategy_is_defaulted() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = json!({"spec": {"strategy": {}}});
        apply(rt, &mut d);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
    }

    #[test]
    fn job_selector_is_generated() {
        let rt = by_kind("batch/v1", "Job").unwrap();
        let mut j = json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply(rt, &mut j);
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(j["spec"]["completions"], 1);
    }

    #[test]
    fn service_target_port_defaults_to_port() {
        let rt = by_kind("v1", "Service").unwrap();
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(rt, &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn pod_requests_default_to_limits_and_templates_do_not() {
        let rt = crate::resource::by_kind("v1", "Pod").unwrap();
        let mut pod = json!({"spec": {"containers": [{"name": "c",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}}]}});
        apply(rt, &mut pod);
        assert_eq!(
            pod.at("/spec/containers/0/resources/requests").unwrap(),
            &json!({"cpu": "100m", "memory": "1Gi"})
        );
        let rt = crate::resource::by_kind("apps/v1", "ReplicaSet").unwrap();
        let mut rs = json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
            "resources": {"limits": {"cpu": "1"}}}]}}}});
        apply(rt, &mut rs);
        assert!(
            rs.at("/spec/template/spec/containers/0/resources/requests")
                .is_none()
        );
    }

    #[test]
    fn limit_range_container_defaults_come_from_max_and_min() {
        let rt = crate::resource::by_kind("v1", "LimitRange").unwrap();
        let mut lr = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"memory": "4Mi"},
             "default": {"cpu": "500m"}},
            {"type": "Pod", "max": {"cpu": "4"}}]}});
        apply(rt, &mut lr);
        assert_eq!(
            lr.at("/spec/limits/0/default").unwrap(),
            &json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(
            lr.at("/spec/limits/0/defaultRequest").unwrap(),
            &json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert!(lr.at("/spec/limits/1/default").is_none());
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                &json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(
                &json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}})
            ),
            "Burstable"
        );
    }
}
