//! A Service's `v1 Endpoints` subsets from its pod endpoints, packed as
//! Kubernetes packs them (`RepackSubsets`): addresses that serve the same set
//! of ports share a subset, ready ones under `addresses` and the rest under
//! `notReadyAddresses`; past 1000 addresses the list is truncated as
//! Kubernetes' endpoints controller truncates it. Pure: values in, JSON out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::super::service_endpoints::{EndpointPort, PodEndpoint, ip_family};

/// The most addresses an Endpoints object carries (`maxCapacity`).
pub const MAX_ADDRESSES: usize = 1000;

/// An address as subsets key it: its IP and its pod's uid.
type AddressKey = (String, String);

/// The subsets of a Service's Endpoints. Terminating pods are left out unless
/// the Service publishes not-ready addresses; `address_type` picks which of a
/// dual-stack pod's IPs is used (the first one when `None`).
pub fn subsets(
    endpoints: &[PodEndpoint],
    address_type: Option<&str>,
    service_has_ports: bool,
    publish_not_ready: bool,
) -> Vec<Value> {
    let mut addresses: BTreeMap<AddressKey, Value> = BTreeMap::new();
    // Each port (None for a headless Service without ports) with the
    // addresses serving it and whether each is ready.
    let mut by_port: BTreeMap<Option<EndpointPort>, BTreeSet<(AddressKey, bool)>> = BTreeMap::new();
    for e in endpoints {
        if e.terminating && !publish_not_ready {
            continue;
        }
        let ip = match address_type {
            Some(t) => e.ips.iter().find(|ip| ip_family(ip) == Some(t)),
            None => e.ips.first(),
        };
        let Some(ip) = ip else { continue };
        let key = (ip.clone(), e.pod.uid.clone());
        let mut address = json!({"ip": ip});
        if let Some(hostname) = &e.hostname {
            address["hostname"] = json!(hostname);
        }
        if let Some(node) = &e.node_name {
            address["nodeName"] = json!(node);
        }
        address["targetRef"] = e.pod.to_json();
        if service_has_ports {
            for port in &e.ports {
                by_port
                    .entry(Some(port.clone()))
                    .or_default()
                    .insert((key.clone(), e.ready));
            }
            if e.ports.is_empty() {
                continue; // No port of the Service resolves on this pod.
            }
        } else {
            by_port
                .entry(None)
                .or_default()
                .insert((key.clone(), e.ready));
        }
        addresses.insert(key, address);
    }

    // Ports served by exactly the same addresses share a subset.
    let mut by_addresses: BTreeMap<BTreeSet<(AddressKey, bool)>, Vec<EndpointPort>> =
        BTreeMap::new();
    for (port, set) in by_port {
        let ports = by_addresses.entry(set).or_default();
        if let Some(port) = port {
            ports.push(port);
        }
    }
    by_addresses
        .into_iter()
        .map(|(set, ports)| {
            let pick = |ready: bool| -> Vec<Value> {
                set.iter()
                    .filter(|(_, r)| *r == ready)
                    .filter_map(|(k, _)| addresses.get(k).cloned())
                    .collect()
            };
            let mut subset = json!({});
            let (ready, not_ready) = (pick(true), pick(false));
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            if !ports.is_empty() {
                subset["ports"] = Value::Array(ports.iter().map(port_json).collect());
            }
            subset
        })
        .collect()
}

fn port_json(p: &EndpointPort) -> Value {
    let mut port = json!({"port": p.port, "protocol": p.protocol});
    if !p.name.is_empty() {
        port["name"] = json!(p.name);
    }
    if let Some(app) = &p.app_protocol {
        port["appProtocol"] = json!(app);
    }
    port
}

/// Cuts the subsets down to [`MAX_ADDRESSES`] (`truncateEndpoints`): not-ready
/// addresses go first; each subset keeps its share. Returns whether anything
/// was cut.
pub fn truncate(subsets: &mut [Value]) -> bool {
    let count = |s: &Value, field: &str| s.get(field).and_then(Value::as_array).map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| count(s, "addresses")).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(s, "notReadyAddresses")).sum();
    if total_ready + total_not_ready <= MAX_ADDRESSES {
        return false;
    }
    let truncate_ready = total_ready > MAX_ADDRESSES;
    let (max, total, field) = if truncate_ready {
        (MAX_ADDRESSES, total_ready, "addresses")
    } else {
        (
            MAX_ADDRESSES - total_ready,
            total_not_ready,
            "notReadyAddresses",
        )
    };
    let mut can_add = max;
    for subset in subsets.iter_mut() {
        let share = (count(subset, field) * max).div_ceil(total.max(1));
        let keep = share.min(can_add);
        if let Some(list) = subset.get_mut(field).and_then(Value::as_array_mut) {
            list.truncate(keep);
            can_add -= list.len();
        }
        if truncate_ready && let Some(map) = subset.as_object_mut() {
            map.remove("notReadyAddresses");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::super::service_endpoints::tests::{pod, service};
    use super::super::super::service_endpoints::{PodRef, pod_endpoints};
    use super::*;
    use std::sync::Arc;

    #[test]
    fn ready_and_not_ready_addresses_share_a_subset_per_port_set() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                   {"name": "raw", "port": 81, "targetPort": 7000, "protocol": "TCP"}]),
        );
        let mut portless = pod("c", Some("10.244.0.7"), true);
        portless["spec"]["containers"][0]["ports"] = json!([]);
        let mut leaving = pod("d", Some("10.244.0.8"), true);
        leaving["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods: Vec<Arc<Value>> = [
            pod("a", Some("10.244.0.5"), true),
            pod("b", Some("10.244.0.6"), false),
            portless,
            leaving,
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let eps = pod_endpoints(&svc, &pods);
        let got = subsets(&eps, Some("IPv4"), true, false);
        let address = |name: &str, ip: &str| {
            json!({"ip": ip, "nodeName": "n1",
                   "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": format!("uid-{name}")}})
        };
        assert_eq!(
            got,
            vec![
                json!({
                    "addresses": [address("a", "10.244.0.5")],
                    "notReadyAddresses": [address("b", "10.244.0.6")],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }),
                // The pod without the named port serves only the numbered one.
                json!({
                    "addresses": [address("a", "10.244.0.5"), address("c", "10.244.0.7")],
                    "notReadyAddresses": [address("b", "10.244.0.6")],
                    "ports": [{"name": "raw", "port": 7000, "protocol": "TCP"}],
                }),
            ]
        );
        // Publishing not-ready addresses: all ready, the terminating one too.
        let mut publish = svc.clone();
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let eps = pod_endpoints(&publish, &pods);
        let got = subsets(&eps, Some("IPv4"), true, true);
        let raw = got
            .iter()
            .find(|s| s["ports"][0]["name"] == "raw")
            .expect("a subset of the numbered port");
        let ips: Vec<&str> = raw["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str())
            .collect();
        assert_eq!(
            ips,
            ["10.244.0.5", "10.244.0.6", "10.244.0.7", "10.244.0.8"]
        );
        assert!(raw.get("notReadyAddresses").is_none());
    }

    #[test]
    fn a_headless_service_without_ports_lists_addresses_alone() {
        let e = PodEndpoint {
            ips: vec!["10.244.0.5".into()],
            node_name: None,
            hostname: Some("db-0".into()),
            pod: PodRef {
                namespace: "default".into(),
                name: "db-0".into(),
                uid: "u".into(),
            },
            ready: true,
            serving: true,
            terminating: false,
            ports: Vec::new(),
        };
        let got = subsets(&[e], None, false, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["addresses"][0]["hostname"], "db-0");
        assert!(got[0].get("ports").is_none());
    }

    #[test]
    fn past_the_capacity_not_ready_addresses_go_first() {
        let addresses = |n: usize| {
            json!(
                (0..n)
                    .map(|i| json!({"ip": format!("10.0.{}.{}", i / 250, i % 250)}))
                    .collect::<Vec<_>>()
            )
        };
        let mut s = vec![
            json!({"addresses": addresses(600), "notReadyAddresses": addresses(300)}),
            json!({"addresses": addresses(200), "notReadyAddresses": addresses(300)}),
        ];
        assert!(truncate(&mut s));
        let n = |v: &Value, f: &str| v[f].as_array().map_or(0, Vec::len);
        assert_eq!(n(&s[0], "addresses") + n(&s[1], "addresses"), 800);
        assert_eq!(n(&s[0], "notReadyAddresses"), 100);
        assert_eq!(n(&s[1], "notReadyAddresses"), 100);
        let mut small = vec![json!({"addresses": addresses(3)})];
        assert!(!truncate(&mut small));
    }
}
