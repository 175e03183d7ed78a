//! What a Service's endpoints are, worked out from its pods once for both the
//! EndpointSlice and the (legacy) Endpoints controllers: which pods count, their
//! addresses, readiness conditions and the ports a Service port resolves to on
//! each, as Kubernetes' `endpointslice/util` and `podutil.FindPort` do.
//! Pure: objects in, values out.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;

use crate::controllers::workload::pod_control;

/// The node label an endpoint's `zone` comes from.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// The label Kubernetes puts on the endpoints of a Service without a cluster IP.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// A port an endpoint serves a Service port on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointPort {
    /// The Service port's name (empty when it has one port).
    pub name: String,
    pub port: i64,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

/// The pod an endpoint stands for (`targetRef`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// One pod as an endpoint of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEndpoint {
    /// `status.podIPs` (or `status.podIP`), in the pod's order.
    pub ips: Vec<String>,
    pub node_name: Option<String>,
    /// Set only where the pod's `hostname` and `subdomain` name this Service.
    pub hostname: Option<String>,
    pub pod: PodRef,
    /// Whether traffic should go to it: Ready and not terminating, or the
    /// Service publishes not-ready addresses.
    pub ready: bool,
    /// Whether the pod is Ready, terminating or not.
    pub serving: bool,
    pub terminating: bool,
    /// Each Service port resolved on this pod, in the Service's order; a port
    /// that does not resolve (a named `targetPort` the pod lacks) is left out.
    pub ports: Vec<EndpointPort>,
}

impl PodRef {
    /// `targetRef`, as both kinds of endpoint write it.
    pub fn to_json(&self) -> Value {
        json!({
            "kind": "Pod",
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        })
    }
}

impl PodEndpoint {
    /// The pod's addresses of one family (`IPv4` or `IPv6`).
    pub fn addresses(&self, address_type: &str) -> Vec<String> {
        self.ips
            .iter()
            .filter(|ip| ip_family(ip) == Some(address_type))
            .cloned()
            .collect()
    }
}

/// `spec.selector`, or `None` when the Service has none: its endpoints are
/// then managed by someone else and left alone. An empty map counts as none,
/// as it does in Kubernetes (where it does not survive storage).
pub fn selector(service: &Value) -> Option<&Map<String, Value>> {
    service
        .at("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

/// Whether the Service selects the pod (same namespace, labels match).
pub fn selects(service: &Value, pod: &Value) -> bool {
    let Some(selector) = selector(service) else {
        return false;
    };
    if meta::namespace(service) != meta::namespace(pod) {
        return false;
    }
    let labels = meta::labels(pod);
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the Service has a cluster IP (is not headless).
pub fn has_cluster_ip(service: &Value) -> bool {
    service
        .at("/spec/clusterIP")
        .and_then(Value::as_str)
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The labels endpoints of a Service carry: the Service's own, plus the
/// headless marker when it has no cluster IP.
pub fn inherited_labels(service: &Value) -> Map<String, Value> {
    let mut labels = meta::labels(service).cloned().unwrap_or_default();
    if has_cluster_ip(service) {
        labels.remove(LABEL_HEADLESS);
    } else {
        labels.insert(LABEL_HEADLESS.into(), json!(""));
    }
    labels
}

/// `IPv4` or `IPv6`, or `None` for what is not an IP.
pub fn ip_family(ip: &str) -> Option<&'static str> {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => Some("IPv4"),
        Ok(std::net::IpAddr::V6(_)) => Some("IPv6"),
        Err(_) => None,
    }
}

/// The address types a Service's endpoints are published in
/// (`getAddressTypesForService`): its `ipFamilies`, else its cluster IP's
/// family, else (headless, from before dual stack) both.
pub fn address_types(service: &Value) -> Vec<&'static str> {
    let mut types: Vec<&'static str> = Vec::new();
    for family in service
        .at("/spec/ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let t = match family {
            "IPv4" => "IPv4",
            "IPv6" => "IPv6",
            _ => continue,
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if !types.is_empty() {
        return types;
    }
    if has_cluster_ip(service) {
        let ip = service
            .at("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return vec![ip_family(ip).unwrap_or("IPv4")];
    }
    vec!["IPv4", "IPv6"]
}

/// The endpoints of `service` among `pods` (which may include pods it does
/// not select). Terminating pods are included (marked so); pods without an IP
/// or finished for good are not (`ShouldPodBeInEndpoints`).
pub fn pod_endpoints(service: &Value, pods: &[Arc<Value>]) -> Vec<PodEndpoint> {
    let publish_not_ready = service
        .at("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out: Vec<PodEndpoint> = pods
        .iter()
        .filter(|p| selects(service, p) && should_be_in_endpoints(p))
        .map(|pod| {
            let serving = pod_control::is_ready(pod);
            let terminating = meta::deletion_timestamp(pod).is_some();
            PodEndpoint {
                ips: pod_ips(pod),
                node_name: pod
                    .at("/spec/nodeName")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
                hostname: hostname_for(service, pod),
                pod: PodRef {
                    namespace: meta::namespace(pod).unwrap_or_default().to_string(),
                    name: meta::name(pod).unwrap_or_default().to_string(),
                    uid: meta::uid(pod).unwrap_or_default().to_string(),
                },
                ready: publish_not_ready || (serving && !terminating),
                serving,
                terminating,
                ports: endpoint_ports(service, pod),
            }
        })
        .collect();
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    out
}

/// Whether a pod belongs in a Service's endpoints at all: it has an IP, and
/// its restart policy does not make its phase final.
fn should_be_in_endpoints(pod: &Value) -> bool {
    if pod_ips(pod).is_empty() {
        return false;
    }
    let phase = pod
        .at("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    match pod
        .at("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
    {
        "Never" => phase != "Failed" && phase != "Succeeded",
        "OnFailure" => phase != "Succeeded",
        _ => true,
    }
}

fn pod_ips(pod: &Value) -> Vec<String> {
    let listed: Vec<String> = pod
        .at("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("ip").and_then(Value::as_str))
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    pod.at("/status/podIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .map(|ip| vec![ip.to_string()])
        .unwrap_or_default()
}

/// `ShouldSetHostname`: a pod with a hostname whose subdomain is this Service.
fn hostname_for(service: &Value, pod: &Value) -> Option<String> {
    let hostname = pod.at("/spec/hostname").and_then(Value::as_str)?;
    let subdomain = pod.at("/spec/subdomain").and_then(Value::as_str)?;
    (!hostname.is_empty() && Some(subdomain) == meta::name(service)).then(|| hostname.to_string())
}

/// Each Service port resolved on the pod, in the Service's order.
pub fn endpoint_ports(service: &Value, pod: &Value) -> Vec<EndpointPort> {
    service
        .at("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let protocol = protocol(sp);
            Some(EndpointPort {
                name: sp
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                port: find_port(pod, sp, protocol)?,
                protocol: protocol.to_string(),
                app_protocol: sp
                    .get("appProtocol")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .collect()
}

fn protocol(port: &Value) -> &str {
    port.get("protocol")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or("TCP")
}

/// `podutil.FindPort`: a numeric `targetPort` as it is (the Service port when
/// unset); a named one is the container port of that name and protocol, in a
/// container or a sidecar (an init container that keeps running).
fn find_port(pod: &Value, service_port: &Value, protocol: &str) -> Option<i64> {
    let target = service_port
        .get("targetPort")
        .or_else(|| service_port.get("port"))?;
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let name = target.as_str()?;
    let containers = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let sidecars = pod
        .at("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"));
    containers
        .chain(sidecars)
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| {
            p.get("name").and_then(Value::as_str) == Some(name) && self::protocol(p) == protocol
        })
        .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn service(selector: Value, ports: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"selector": selector, "ports": ports, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"]},
        })
    }

    /// A pod labelled `app: web` on node n1, with a named container port.
    pub fn pod(name: &str, ip: Option<&str>, ready: bool) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if let Some(ip) = ip {
            p["status"]["podIP"] = json!(ip);
            p["status"]["podIPs"] = json!([{"ip": ip}]);
        }
        p
    }

    fn arcs(pods: Vec<Value>) -> Vec<Arc<Value>> {
        pods.into_iter().map(Arc::new).collect()
    }

    fn port(name: &str, port: i64) -> EndpointPort {
        EndpointPort {
            name: name.into(),
            port,
            protocol: "TCP".into(),
            app_protocol: None,
        }
    }

    #[test]
    fn ports_resolve_by_number_or_by_the_pods_container_port_name() {
        let svc = service(
            json!({"app": "web"}),
            json!([
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": 9000, "targetPort": 9090, "protocol": "TCP"},
                {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"},
                {"name": "dns", "port": 53, "targetPort": "http", "protocol": "UDP"},
            ]),
        );
        let p = pod("a", Some("10.244.0.5"), true);
        // "metrics" is not a port of the pod, and "http" is TCP only.
        assert_eq!(
            endpoint_ports(&svc, &p),
            vec![port("http", 8080), port("admin", 9090)]
        );
        let mut sidecar = p.clone();
        sidecar["spec"]["initContainers"] = json!([{"name": "s", "restartPolicy": "Always",
            "ports": [{"name": "metrics", "containerPort": 9102, "protocol": "TCP"}]}]);
        assert_eq!(endpoint_ports(&svc, &sidecar)[2], port("metrics", 9102));
    }

    #[test]
    fn pods_without_an_ip_or_finished_for_good_are_left_out() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"port": 80, "targetPort": 80}]),
        );
        let mut done = pod("done", Some("10.244.0.7"), false);
        done["spec"]["restartPolicy"] = json!("Never");
        done["status"]["phase"] = json!("Succeeded");
        let mut other = pod("other", Some("10.244.0.8"), true);
        other["metadata"]["labels"] = json!({"app": "db"});
        let eps = pod_endpoints(
            &svc,
            &arcs(vec![
                pod("b", Some("10.244.0.6"), true),
                pod("no-ip", None, true),
                done,
                other,
                pod("a", Some("10.244.0.5"), false),
            ]),
        );
        let names: Vec<&str> = eps.iter().map(|e| e.pod.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(eps[1].ips, ["10.244.0.6"]);
        assert_eq!(eps[1].node_name.as_deref(), Some("n1"));
        assert_eq!(eps[1].pod.uid, "uid-b");
    }

    #[test]
    fn conditions_follow_readiness_termination_and_publish_not_ready() {
        let svc = service(json!({"app": "web"}), json!([{"port": 80}]));
        let mut leaving = pod("leaving", Some("10.244.0.9"), true);
        leaving["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = arcs(vec![
            pod("ready", Some("10.244.0.5"), true),
            pod("unready", Some("10.244.0.6"), false),
            leaving,
        ]);
        let cond = |eps: &[PodEndpoint], name: &str| {
            let e = eps.iter().find(|e| e.pod.name == name).expect("endpoint");
            (e.ready, e.serving, e.terminating)
        };
        let eps = pod_endpoints(&svc, &pods);
        assert_eq!(cond(&eps, "ready"), (true, true, false));
        assert_eq!(cond(&eps, "unready"), (false, false, false));
        assert_eq!(cond(&eps, "leaving"), (false, true, true));
        let mut publish = svc.clone();
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let eps = pod_endpoints(&publish, &pods);
        assert_eq!(cond(&eps, "unready"), (true, false, false));
        assert_eq!(cond(&eps, "leaving"), (true, true, true));
    }

    #[test]
    fn a_service_without_a_selector_selects_nothing() {
        let p = pod("a", Some("10.244.0.5"), true);
        assert!(!selects(&service(json!({}), json!([])), &p));
        assert!(!selects(&service(Value::Null, json!([])), &p));
        assert!(selects(&service(json!({"app": "web"}), json!([])), &p));
    }

    #[test]
    fn address_types_come_from_ip_families_or_the_cluster_ip() {
        let mut svc = service(json!({"app": "web"}), json!([]));
        assert_eq!(address_types(&svc), ["IPv4"]);
        svc["spec"]["ipFamilies"] = json!(["IPv6", "IPv4"]);
        assert_eq!(address_types(&svc), ["IPv6", "IPv4"]);
        svc["spec"]["ipFamilies"] = json!([]);
        svc["spec"]["clusterIP"] = json!("fd00::10");
        assert_eq!(address_types(&svc), ["IPv6"]);
        svc["spec"]["clusterIP"] = json!("None");
        assert_eq!(address_types(&svc), ["IPv4", "IPv6"]);
    }
}
