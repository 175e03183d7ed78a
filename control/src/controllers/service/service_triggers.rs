//! Which Services a pod or node change concerns, for the controllers that
//! publish a Service's endpoints. A pod change that cannot alter any endpoint
//! (most status writes of a running pod) concerns none, so a busy node's
//! reports do not recompute every Service.

use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use super::service_endpoints::{LABEL_ZONE, selects};
use crate::informer::{Informer, ObjectRef, object_ref};
use crate::store::EventType;

/// The Services selecting the pod before or after the change, if the change
/// can alter the pod's endpoint.
pub fn services_for_pod_change(
    services: &Informer<Service>,
    event_type: EventType,
    pod: &Value,
    prev: Option<&Value>,
) -> Vec<ObjectRef> {
    // A deletion carries the pod's last state as both.
    let modified = event_type == EventType::Modified;
    if modified && prev.is_some_and(|prev| !endpoint_may_differ(prev, pod)) {
        return Vec::new();
    }
    let namespace = meta::namespace(pod).unwrap_or_default();
    let mut keys: Vec<ObjectRef> = services
        .list(Some(namespace), |svc| {
            selects(svc, pod) || prev.is_some_and(|p| selects(svc, p))
        })
        .iter()
        .map(|svc| object_ref(svc))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The Services selecting a pod on the node, if the node came, went, or moved
/// to another zone (what an endpoint reads from its node).
pub fn services_for_node_change(
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    event_type: EventType,
    node: &Value,
    prev: Option<&Value>,
) -> Vec<ObjectRef> {
    let zone = |n: &Value| meta::labels(n).and_then(|l| l.get(LABEL_ZONE)).cloned();
    let modified = event_type == EventType::Modified;
    if modified && prev.is_some_and(|prev| zone(prev) == zone(node)) {
        return Vec::new();
    }
    let name = meta::name(node).unwrap_or_default();
    let mut keys: Vec<ObjectRef> = Vec::new();
    for pod in pods.list(None, |p| {
        p.at("/spec/nodeName").and_then(Value::as_str) == Some(name)
    }) {
        let namespace = meta::namespace(&pod).unwrap_or_default();
        keys.extend(
            services
                .list(Some(namespace), |svc| selects(svc, &pod))
                .iter()
                .map(|svc| object_ref(svc)),
        );
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Whether anything an endpoint is made of differs between two states of a
/// pod (`podEndpointsChanged`, and the labels a selector reads).
fn endpoint_may_differ(old: &Value, new: &Value) -> bool {
    const PATHS: &[&str] = &[
        "/metadata/labels",
        "/metadata/deletionTimestamp",
        "/spec/nodeName",
        "/spec/hostname",
        "/spec/subdomain",
        "/spec/containers",
        "/spec/initContainers",
        "/spec/restartPolicy",
        "/status/podIP",
        "/status/podIPs",
        "/status/phase",
    ];
    PATHS.iter().any(|p| old.at(p) != new.at(p)) || ready(old) != ready(new)
}

fn ready(pod: &Value) -> Option<&Value> {
    pod.at("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .and_then(|c| c.get("status"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_changes_an_endpoint_is_made_of_count() {
        let pod = json!({
            "metadata": {"name": "a", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.244.0.5",
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}],
                "containerStatuses": [{"restartCount": 0}]},
        });
        let mut restarted = pod.clone();
        restarted["status"]["containerStatuses"][0]["restartCount"] = json!(1);
        assert!(!endpoint_may_differ(&pod, &restarted));
        let mut unready = pod.clone();
        unready["status"]["conditions"][0]["status"] = json!("False");
        assert!(endpoint_may_differ(&pod, &unready));
        let mut relabelled = pod.clone();
        relabelled["metadata"]["labels"]["app"] = json!("db");
        assert!(endpoint_may_differ(&pod, &relabelled));
    }
}
