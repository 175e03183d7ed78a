//! Which EndpointSlices a Service needs, planned as Kubernetes' endpointslice
//! reconciler plans them (`reconcileByPortMapping`): endpoints are grouped by
//! address type and by the set of ports they serve (a pod lacking a named port
//! serves a different set, so it lands in a different slice); existing slices
//! are updated in place where their endpoints changed, emptied ones deleted,
//! new endpoints fill slices already being written before any other, and a
//! slice holds at most `max` endpoints. A Service with no endpoints keeps one
//! empty placeholder slice per address type. Pure: objects in, a plan out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use super::super::service_endpoints::{EndpointPort, PodEndpoint, address_types, inherited_labels};
use crate::controllers::workload::pod_control::controller_ref;

/// `--max-endpoints-per-slice`'s default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The `managed-by` value of the slices this controller owns.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// The writes that bring a Service's slices up to date.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (with `generateName`).
    pub create: Vec<Value>,
    /// Existing slices, changed, each with the `resourceVersion` it was read at.
    pub update: Vec<Value>,
    pub delete: Vec<Arc<Value>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// What identifies an endpoint across slices (Kubernetes' endpoint hash): the
/// pod and its addresses. The rest of it (conditions, zone) may change in place.
type EndpointKey = (String, String, Vec<String>, String);

/// Ports as a set, the key endpoints are grouped by.
type PortKey = Vec<EndpointPort>;

/// Endpoints that serve the same ports, with those ports in the Service's order.
struct Group {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<EndpointKey, Value>,
}

/// Plans the slices of `service`. `existing` are the slices labelled as this
/// controller's for the Service; `endpoints` its pods on known nodes; `zones`
/// the zone of each node that has one.
pub fn plan(
    service: &Value,
    existing: &[Arc<Value>],
    endpoints: &[PodEndpoint],
    zones: &HashMap<String, String>,
    max: usize,
) -> Plan {
    let max = max.max(1);
    let mut out = Plan::default();
    let types = address_types(service);
    let mut owned_by_type: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
    for slice in existing {
        let address_type = slice
            .get("addressType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if owned_by(slice, service) && types.contains(&address_type) {
            owned_by_type
                .entry(address_type.to_string())
                .or_default()
                .push(slice.clone());
        } else {
            // Left from an earlier Service of the same name, or of an address
            // type the Service no longer has.
            out.delete.push(slice.clone());
        }
    }
    for address_type in types {
        let owned = owned_by_type.remove(address_type).unwrap_or_default();
        let mut typed = Plan::default();
        let mut by_ports: BTreeMap<PortKey, Vec<Arc<Value>>> = BTreeMap::new();
        for slice in &owned {
            by_ports
                .entry(slice_port_key(slice))
                .or_default()
                .push(slice.clone());
        }
        let groups = desired_groups(endpoints, address_type, zones);
        for (key, slices) in &by_ports {
            if !groups.contains_key(key) {
                typed.delete.extend(slices.iter().cloned());
            }
        }
        for (key, group) in groups {
            let slices = by_ports.get(&key).map(Vec::as_slice).unwrap_or_default();
            plan_group(service, address_type, group, slices, max, &mut typed);
        }
        keep_a_placeholder(service, address_type, owned.len(), &mut typed);
        out.create.extend(typed.create);
        out.update.extend(typed.update);
        out.delete.extend(typed.delete);
    }
    reuse_deleted_for_created(service, &mut out);
    out
}

/// Whether a slice is one of this controller's for some Service.
pub fn is_managed(slice: &Value) -> bool {
    label(slice, LABEL_MANAGED_BY) == Some(MANAGED_BY)
}

/// The Service a slice is labelled with.
pub fn service_name(slice: &Value) -> Option<&str> {
    label(slice, LABEL_SERVICE_NAME)
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    meta::labels(obj)
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

fn owned_by(slice: &Value, service: &Value) -> bool {
    let uid = meta::uid(service).unwrap_or_default();
    meta::owner_references(slice).iter().any(|r| {
        r.get("uid").and_then(Value::as_str) == Some(uid)
            && r.get("kind").and_then(Value::as_str) == Some("Service")
            && r.get("apiVersion").and_then(Value::as_str) == Some("v1")
    })
}

/// The labels a Service's slices carry: the Service's own (but not the ones
/// reserved for slices) and the two that tie the slice to it.
fn slice_labels(service: &Value) -> Map<String, Value> {
    let mut labels = inherited_labels(service);
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        json!(meta::name(service).unwrap_or_default()),
    );
    labels.insert(LABEL_MANAGED_BY.into(), json!(MANAGED_BY));
    labels
}

fn desired_groups(
    endpoints: &[PodEndpoint],
    address_type: &str,
    zones: &HashMap<String, String>,
) -> BTreeMap<PortKey, Group> {
    let mut groups: BTreeMap<PortKey, Group> = BTreeMap::new();
    for e in endpoints {
        let addresses = e.addresses(address_type);
        if addresses.is_empty() {
            continue;
        }
        let mut key = e.ports.clone();
        key.sort();
        let ep = endpoint_json(e, addresses, zones);
        groups
            .entry(key)
            .or_insert_with(|| Group {
                ports: e.ports.clone(),
                endpoints: BTreeMap::new(),
            })
            .endpoints
            .insert(endpoint_key(&ep), ep);
    }
    groups
}

fn endpoint_json(
    e: &PodEndpoint,
    addresses: Vec<String>,
    zones: &HashMap<String, String>,
) -> Value {
    let mut ep = json!({
        "addresses": addresses,
        "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
        "targetRef": e.pod.to_json(),
    });
    if let Some(node) = &e.node_name {
        ep["nodeName"] = json!(node);
        if let Some(zone) = zones.get(node) {
            ep["zone"] = json!(zone);
        }
    }
    if let Some(hostname) = &e.hostname {
        ep["hostname"] = json!(hostname);
    }
    ep
}

fn endpoint_key(ep: &Value) -> EndpointKey {
    let text = |path: &str| {
        ep.at(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut addresses: Vec<String> = ep
        .get("addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    addresses.sort();
    (
        text("/targetRef/namespace"),
        text("/targetRef/name"),
        addresses,
        text("/hostname"),
    )
}

fn ports_json(ports: &[EndpointPort]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                let mut port = json!({"name": p.name, "port": p.port, "protocol": p.protocol});
                if let Some(app) = &p.app_protocol {
                    port["appProtocol"] = json!(app);
                }
                port
            })
            .collect(),
    )
}

/// A slice's ports as a set (unset fields read as their defaults).
fn slice_port_key(slice: &Value) -> PortKey {
    let mut key: PortKey = slice
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| EndpointPort {
            name: p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            port: p.get("port").and_then(Value::as_i64).unwrap_or(0),
            protocol: p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string(),
            app_protocol: p
                .get("appProtocol")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect();
    key.sort();
    key
}

fn slice_endpoints(slice: &Value) -> &[Value] {
    slice
        .get("endpoints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn endpoint_count(slice: &Value) -> usize {
    slice_endpoints(slice).len()
}

fn new_slice(service: &Value, address_type: &str, ports: &[EndpointPort]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", meta::name(service).unwrap_or_default()),
            "namespace": meta::namespace(service).unwrap_or_default(),
            "labels": slice_labels(service),
            "ownerReferences": [controller_ref(service)],
        },
        "addressType": address_type,
        "endpoints": [],
        "ports": ports_json(ports),
    })
}

fn with_labels(slice: &Value, labels: &Map<String, Value>) -> Value {
    let mut s = slice.clone();
    meta::set(&mut s, "labels", Value::Object(labels.clone()));
    s
}

fn push_endpoint(slice: &mut Value, ep: Value) {
    if !slice.get("endpoints").is_some_and(Value::is_array) {
        slice["endpoints"] = json!([]);
    }
    if let Some(list) = slice.get_mut("endpoints").and_then(Value::as_array_mut) {
        list.push(ep);
    }
}

/// One port group of one address type: the three steps of
/// `reconcileByPortMapping`.
fn plan_group(
    service: &Value,
    address_type: &str,
    group: Group,
    existing: &[Arc<Value>],
    max: usize,
    out: &mut Plan,
) {
    let labels = slice_labels(service);
    let mut desired = group.endpoints;
    let mut to_update: Vec<Value> = Vec::new();
    let mut unchanged: Vec<Arc<Value>> = Vec::new();

    // 1. Keep what is still wanted where it is, as it is now.
    for slice in existing {
        let old = slice_endpoints(slice);
        let mut kept: Vec<Value> = Vec::new();
        let mut changed = false;
        for ep in old {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                changed |= &want != ep;
                kept.push(want);
            }
        }
        let labels_changed = meta::labels(slice) != Some(&labels);
        if changed || kept.len() != old.len() {
            if kept.is_empty() {
                out.delete.push(slice.clone());
            } else {
                let mut s = with_labels(slice, &labels);
                s["endpoints"] = Value::Array(kept);
                to_update.push(s);
            }
        } else if labels_changed {
            to_update.push(with_labels(slice, &labels));
        } else {
            unchanged.push(slice.clone());
        }
    }

    // 2. New endpoints go first into slices written anyway, fullest first.
    to_update.sort_by_key(|s| std::cmp::Reverse(endpoint_count(s)));
    for slice in &mut to_update {
        while endpoint_count(slice) < max {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            push_endpoint(slice, ep);
        }
    }

    // 3. The rest: a last partial batch into the unchanged slice it fits best,
    // anything else into new slices.
    while !desired.is_empty() {
        let best_fit = if desired.len() < max {
            unchanged
                .iter()
                .enumerate()
                .filter(|(_, s)| endpoint_count(s) + desired.len() <= max)
                .min_by_key(|(_, s)| max - endpoint_count(s) - desired.len())
                .map(|(i, _)| i)
        } else {
            None
        };
        let (mut slice, is_new) = match best_fit {
            Some(i) => (with_labels(&unchanged.remove(i), &labels), false),
            None => (new_slice(service, address_type, &group.ports), true),
        };
        while endpoint_count(&slice) < max {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            push_endpoint(&mut slice, ep);
        }
        if is_new {
            out.create.push(slice);
        } else {
            to_update.push(slice);
        }
    }
    out.update.extend(to_update);
}

fn is_placeholder(slice: &Value) -> bool {
    endpoint_count(slice) == 0
        && slice
            .get("ports")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// A Service with a selector always has a slice per address type, if an empty
/// one, so that a reader can tell "no endpoints" from "not yet reconciled".
fn keep_a_placeholder(service: &Value, address_type: &str, owned: usize, typed: &mut Plan) {
    if owned != typed.delete.len() || !typed.create.is_empty() || !typed.update.is_empty() {
        return;
    }
    if let [only] = typed.delete.as_slice()
        && is_placeholder(only)
    {
        let labels = slice_labels(service);
        if meta::labels(only) != Some(&labels) {
            typed.update.push(with_labels(only, &labels));
        }
        typed.delete.clear();
        return;
    }
    let mut placeholder = new_slice(service, address_type, &[]);
    placeholder["ports"] = json!([]);
    typed.create.push(placeholder);
}

/// A slice to delete and one to create of the same address type become one
/// update of the first, which saves writes and keeps names stable.
fn reuse_deleted_for_created(service: &Value, plan: &mut Plan) {
    let mut creates = Vec::new();
    for new in std::mem::take(&mut plan.create) {
        let address_type = new.get("addressType").cloned();
        let reusable = plan.delete.iter().position(|old| {
            old.get("addressType") == address_type.as_ref() && owned_by(old, service)
        });
        match reusable {
            Some(i) => {
                let old = plan.delete.remove(i);
                let mut s = (*old).clone();
                for field in ["endpoints", "ports"] {
                    s[field] = new.get(field).cloned().unwrap_or_else(|| json!([]));
                }
                if let Some(labels) = new.at("/metadata/labels") {
                    meta::set(&mut s, "labels", labels.clone());
                }
                plan.update.push(s);
            }
            None => creates.push(new),
        }
    }
    plan.create = creates;
}

#[cfg(test)]
mod tests {
    use super::super::super::service_endpoints::pod_endpoints;
    use super::super::super::service_endpoints::tests::{pod, service};
    use super::*;

    fn svc() -> Value {
        let mut s = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
        );
        s["apiVersion"] = json!("v1");
        s["kind"] = json!("Service");
        s
    }

    fn pods(n: usize) -> Vec<Arc<Value>> {
        (0..n)
            .map(|i| {
                Arc::new(pod(
                    &format!("p{i:03}"),
                    Some(&format!("10.244.{}.{}", i / 200, i % 200 + 1)),
                    true,
                ))
            })
            .collect()
    }

    /// Turns planned creates into stored slices (named, versioned).
    fn stored(plan: Plan) -> Vec<Arc<Value>> {
        assert!(plan.delete.is_empty() && plan.update.is_empty());
        plan.create
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                meta::set(&mut s, "name", format!("web-{i}"));
                meta::set(&mut s, "resourceVersion", "1");
                Arc::new(s)
            })
            .collect()
    }

    fn counts(slices: &[Value]) -> Vec<usize> {
        slices.iter().map(endpoint_count).collect()
    }

    fn no_zones() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn endpoints_become_one_slice_with_the_resolved_ports_labels_and_owner() {
        let svc = svc();
        let eps = pod_endpoints(&svc, &pods(2));
        let zones = HashMap::from([("n1".to_string(), "zone-a".to_string())]);
        let plan = plan(&svc, &[], &eps, &zones, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(plan.create.len(), 1);
        let slice = &plan.create[0];
        assert_eq!(slice["metadata"]["generateName"], "web-");
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"app": "web", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: MANAGED_BY})
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
        assert_eq!(slice["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            slice["endpoints"][0],
            json!({
                "addresses": ["10.244.0.1"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": "default", "name": "p000", "uid": "uid-p000"},
                "nodeName": "n1",
                "zone": "zone-a",
            })
        );
    }

    #[test]
    fn pods_without_the_named_port_go_into_a_slice_of_their_own_ports() {
        let svc = svc();
        let mut all = pods(3);
        let mut odd = (*all[2]).clone();
        odd["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 9090}]);
        all[2] = Arc::new(odd);
        let mut portless = (*all[1]).clone();
        portless["spec"]["containers"][0]["ports"] = json!([]);
        all[1] = Arc::new(portless);
        let plan = plan(
            &svc,
            &[],
            &pod_endpoints(&svc, &all),
            &no_zones(),
            MAX_ENDPOINTS_PER_SLICE,
        );
        let mut by_ports: Vec<(String, usize)> = plan
            .create
            .iter()
            .map(|s| (s["ports"].to_string(), endpoint_count(s)))
            .collect();
        by_ports.sort();
        assert_eq!(
            by_ports,
            [
                // The pod lacking the port is still an endpoint, of no port.
                (json!([]).to_string(), 1),
                (
                    json!([{"name": "http", "port": 8080, "protocol": "TCP"}]).to_string(),
                    1
                ),
                (
                    json!([{"name": "http", "port": 9090, "protocol": "TCP"}]).to_string(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn slices_hold_at_most_the_maximum_and_new_endpoints_fill_what_is_written_anyway() {
        let svc = svc();
        let all = pods(250);
        let eps = pod_endpoints(&svc, &all);
        let first = plan(&svc, &[], &eps, &no_zones(), 100);
        assert_eq!(counts(&first.create), [100, 100, 50]);
        let slices = stored(first);

        // Settled: nothing to do.
        let again = plan(&svc, &slices, &eps, &no_zones(), 100);
        assert!(again.is_empty(), "{again:?}");

        // One pod goes, three come: the slice losing one is written anyway
        // and takes one, the other two go to the slice they fit best.
        let mut changed = eps.clone();
        changed.retain(|e| e.pod.name != "p010");
        let extra: Vec<Arc<Value>> = (0..3)
            .map(|i| {
                Arc::new(pod(
                    &format!("q{i}"),
                    Some(&format!("10.245.0.{}", i + 1)),
                    true,
                ))
            })
            .collect();
        changed.extend(pod_endpoints(&svc, &extra));
        let next = plan(&svc, &slices, &changed, &no_zones(), 100);
        assert!(next.create.is_empty() && next.delete.is_empty());
        let mut sizes = counts(&next.update);
        sizes.sort();
        assert_eq!(sizes, [52, 100]);
        assert!(next.update.iter().all(|s| meta::name(s).is_some()));
    }

    #[test]
    fn a_readiness_change_updates_the_endpoint_in_place() {
        let svc = svc();
        let all = pods(2);
        let slices = stored(plan(
            &svc,
            &[],
            &pod_endpoints(&svc, &all),
            &no_zones(),
            100,
        ));
        let mut unready = all.clone();
        unready[1] = Arc::new(pod("p001", Some("10.244.0.2"), false));
        let next = plan(
            &svc,
            &slices,
            &pod_endpoints(&svc, &unready),
            &no_zones(),
            100,
        );
        assert!(next.create.is_empty() && next.delete.is_empty());
        assert_eq!(next.update.len(), 1);
        assert_eq!(meta::name(&next.update[0]), Some("web-0"));
        assert_eq!(
            next.update[0]["endpoints"][1]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
    }

    #[test]
    fn no_endpoints_leave_one_placeholder_and_the_placeholder_is_reused() {
        let svc = svc();
        let empty = plan(&svc, &[], &[], &no_zones(), 100);
        assert_eq!(empty.create.len(), 1);
        assert_eq!(empty.create[0]["endpoints"], json!([]));
        assert_eq!(empty.create[0]["ports"], json!([]));
        let slices = stored(empty);
        assert!(plan(&svc, &slices, &[], &no_zones(), 100).is_empty());

        // The first endpoint reuses the placeholder instead of a new slice.
        let eps = pod_endpoints(&svc, &pods(1));
        let next = plan(&svc, &slices, &eps, &no_zones(), 100);
        assert!(next.create.is_empty() && next.delete.is_empty());
        assert_eq!(meta::name(&next.update[0]), Some("web-0"));
        assert_eq!(endpoint_count(&next.update[0]), 1);
        assert_eq!(next.update[0]["ports"][0]["port"], 8080);

        // And when the last goes, the slice stays as the placeholder.
        let full = stored(plan(&svc, &[], &eps, &no_zones(), 100));
        let gone = plan(&svc, &full, &[], &no_zones(), 100);
        assert!(gone.create.is_empty() && gone.delete.is_empty());
        assert_eq!(gone.update.len(), 1);
        assert_eq!(gone.update[0]["endpoints"], json!([]));
        assert_eq!(gone.update[0]["ports"], json!([]));
    }

    #[test]
    fn slices_of_another_service_uid_are_deleted() {
        let svc = svc();
        let eps = pod_endpoints(&svc, &pods(1));
        let slices = stored(plan(&svc, &[], &eps, &no_zones(), 100));
        let mut recreated = svc.clone();
        recreated["metadata"]["uid"] = json!("new-uid");
        let next = plan(&recreated, &slices, &eps, &no_zones(), 100);
        assert_eq!(next.delete.len(), 1);
        assert_eq!(next.create.len(), 1);
        assert_eq!(
            next.create[0]["metadata"]["ownerReferences"][0]["uid"],
            "new-uid"
        );
    }

    #[test]
    fn a_service_label_change_relabels_its_slices() {
        let svc = svc();
        let eps = pod_endpoints(&svc, &pods(1));
        let slices = stored(plan(&svc, &[], &eps, &no_zones(), 100));
        let mut relabelled = svc.clone();
        relabelled["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        let next = plan(&relabelled, &slices, &eps, &no_zones(), 100);
        assert_eq!(next.update.len(), 1);
        assert_eq!(next.update[0]["metadata"]["labels"]["tier"], "front");
    }
}
