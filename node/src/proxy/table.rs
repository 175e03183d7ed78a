//! The routing table: what the proxy needs of the Services, EndpointSlices,
//! Nodes and Ingresses the control plane streams, in the shape a request is
//! routed by. Pure: objects in, a table out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::wire::Downstream;

use super::ingress::IngressTable;

/// Label naming the Service a slice belongs to.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Annotation choosing a Service's balancing policy.
pub const POLICY_ANNOTATION: &str = "skiff.dev/load-balancer";
/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10800);

/// `namespace/name` of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How a Service spreads requests over its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    RoundRobin,
    /// Power of two choices over in-flight requests.
    LeastRequest,
}

/// One Service as the proxy routes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRoute {
    pub key: ServiceKey,
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`.
    pub service_type: String,
    pub ports: Vec<ServicePortRoute>,
    /// `Some(timeout)` for `sessionAffinity: ClientIP`.
    pub affinity: Option<Duration>,
    pub policy: Policy,
    /// Sorted by address, so that round-robin order does not depend on the
    /// order the slices arrived in.
    pub endpoints: Vec<EndpointRoute>,
}

/// A port of a Service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePortRoute {
    /// Empty for the single unnamed port.
    pub name: String,
    pub port: u16,
    pub node_port: Option<u16>,
    /// As written in the Service; the slices carry it resolved per endpoint.
    pub target_port: Option<String>,
}

/// A pod behind a Service.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRoute {
    pub ip: IpAddr,
    pub node_name: Option<String>,
    /// The pod (`targetRef`), when the endpoint is one.
    pub pod: Option<PodRef>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Service port name -> the target (container) port on this endpoint.
    pub ports: BTreeMap<String, u16>,
}

/// `namespace/name` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// A node a remote endpoint lives on.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRoute {
    pub address: Option<IpAddr>,
    /// Where its peer proxy listens (UDP), from `daemonEndpoints.kubeletEndpoint.Port`.
    pub proxy_port: Option<u16>,
}

/// Everything the proxy routes by.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    pub services: HashMap<ServiceKey, Arc<ServiceRoute>>,
    /// nodePort -> the Service and its port's name.
    pub node_ports: BTreeMap<u16, (ServiceKey, String)>,
    pub nodes: HashMap<String, NodeRoute>,
    /// What the node's HTTP port serves.
    pub ingress: IngressTable,
}

/// The routing objects as the control plane sent them.
#[derive(Debug, Default)]
pub struct RoutingObjects {
    services: BTreeMap<ServiceKey, Value>,
    slices: BTreeMap<ServiceKey, Value>,
    nodes: BTreeMap<String, Value>,
    /// Only Skiff's: the control plane sends no other class.
    ingresses: BTreeMap<ServiceKey, Value>,
}

impl RoutingObjects {
    /// Applies a routing message; false when it is not one.
    pub fn apply(&mut self, message: Downstream) -> bool {
        match message {
            Downstream::RoutingSnapshot { objects } => {
                *self = RoutingObjects::default();
                for object in objects {
                    self.put(object);
                }
            }
            Downstream::RoutingUpsert { object } => self.put(object),
            Downstream::RoutingRemove {
                kind,
                namespace,
                name,
            } => {
                let key = ServiceKey { namespace, name };
                match kind.as_str() {
                    "Service" => {
                        self.services.remove(&key);
                    }
                    "EndpointSlice" => {
                        self.slices.remove(&key);
                    }
                    "Node" => {
                        self.nodes.remove(&key.name);
                    }
                    "Ingress" => {
                        self.ingresses.remove(&key);
                    }
                    _ => {}
                }
            }
            _ => return false,
        }
        true
    }

    fn put(&mut self, object: Value) {
        let text = |p: &str| object.at(p).and_then(Value::as_str).map(str::to_string);
        let (Some(kind), Some(name)) = (text("/kind"), text("/metadata/name")) else {
            return;
        };
        let key = ServiceKey {
            namespace: text("/metadata/namespace").unwrap_or_default(),
            name,
        };
        match kind.as_str() {
            "Service" => {
                self.services.insert(key, object);
            }
            "EndpointSlice" => {
                self.slices.insert(key, object);
            }
            "Node" => {
                self.nodes.insert(key.name, object);
            }
            "Ingress" => {
                self.ingresses.insert(key, object);
            }
            _ => {}
        }
    }

    /// The table these objects make. Rebuilt whole on every change: simple,
    /// and cheap next to a request at the sizes a cluster of Wasm nodes has;
    /// an incremental table can come when a profile says so.
    pub fn table(&self) -> RoutingTable {
        let mut endpoints: HashMap<ServiceKey, Vec<EndpointRoute>> = HashMap::new();
        for (key, object) in &self.slices {
            let Some(slice) = decode::<EndpointSlice>(object, "EndpointSlice", key) else {
                continue;
            };
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let service = ServiceKey {
                namespace: key.namespace.clone(),
                name: service.clone(),
            };
            endpoints
                .entry(service)
                .or_default()
                .extend(slice_endpoints(&slice));
        }
        let mut table = RoutingTable::default();
        for (key, object) in &self.services {
            let Some(service) = decode::<Service>(object, "Service", key) else {
                continue;
            };
            let mut route = service_route(key.clone(), &service);
            let mut eps = endpoints.remove(key).unwrap_or_default();
            eps.sort_by_key(|a| a.ip);
            // A pod listed in two slices (during a slice rewrite) counts once.
            eps.dedup_by(|a, b| a.ip == b.ip);
            route.endpoints = eps;
            if matches!(route.service_type.as_str(), "NodePort" | "LoadBalancer") {
                for port in &route.ports {
                    if let Some(node_port) = port.node_port {
                        table
                            .node_ports
                            .insert(node_port, (key.clone(), port.name.clone()));
                    }
                }
            }
            table.services.insert(key.clone(), Arc::new(route));
        }
        for (name, object) in &self.nodes {
            table.nodes.insert(name.clone(), node_route(object));
        }
        let ingresses: Vec<Ingress> = self
            .ingresses
            .iter()
            .filter_map(|(key, object)| decode(object, "Ingress", key))
            .collect();
        table.ingress = IngressTable::compile(&ingresses);
        table
    }
}

impl ServiceRoute {
    /// The endpoints a request for `port_name` may go to: ready ones (never a
    /// terminating one) that have that port.
    pub fn ready_endpoints(&self, port_name: &str) -> Vec<&EndpointRoute> {
        self.endpoints
            .iter()
            .filter(|e| e.ready && !e.terminating && e.ports.contains_key(port_name))
            .collect()
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    object: &Value,
    kind: &str,
    key: &ServiceKey,
) -> Option<T> {
    match serde_json::from_value(object.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(%key, kind, error = %e, "skipping a routing object this node cannot read");
            None
        }
    }
}

fn service_route(key: ServiceKey, service: &Service) -> ServiceRoute {
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePortRoute {
                name: p.name.clone().unwrap_or_default(),
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                target_port: p.target_port.as_ref().map(|t| match t {
                    IntOrString::Int(i) => i.to_string(),
                    IntOrString::String(s) => s.clone(),
                }),
            })
        })
        .collect();
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
    });
    let policy = match service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POLICY_ANNOTATION))
        .map(String::as_str)
    {
        Some("least-request") => Policy::LeastRequest,
        _ => Policy::RoundRobin,
    };
    ServiceRoute {
        key,
        service_type: spec.type_.unwrap_or_else(|| "ClusterIP".to_string()),
        ports,
        affinity,
        policy,
        endpoints: Vec::new(),
    }
}

fn slice_endpoints(slice: &EndpointSlice) -> Vec<EndpointRoute> {
    let ports: BTreeMap<String, u16> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok()?;
            Some((p.name.clone().unwrap_or_default(), port))
        })
        .collect();
    slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let ip = e.addresses.first()?.parse().ok()?;
            let conditions = e.conditions.clone().unwrap_or_default();
            // Kubernetes: an unset `ready` or `serving` means true, an unset
            // `terminating` false.
            Some(EndpointRoute {
                ip,
                node_name: e.node_name.clone(),
                pod: e.target_ref.as_ref().and_then(|r| {
                    (r.kind.as_deref().is_none_or(|k| k == "Pod")).then(|| PodRef {
                        namespace: r
                            .namespace
                            .clone()
                            .or_else(|| slice.metadata.namespace.clone())
                            .unwrap_or_default(),
                        name: r.name.clone().unwrap_or_default(),
                    })
                }),
                ready: conditions.ready.unwrap_or(true),
                serving: conditions.serving.unwrap_or(true),
                terminating: conditions.terminating.unwrap_or(false),
                ports: ports.clone(),
            })
        })
        .collect()
}

fn node_route(object: &Value) -> NodeRoute {
    let address = object
        .at("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .and_then(|a| a.get("address")?.as_str()?.parse().ok());
    let proxy_port = object
        .at("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0);
    NodeRoute {
        address,
        proxy_port,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn service(name: &str, annotations: Value, spec: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": spec,
        })
    }

    fn slice(name: &str, service: &str, endpoints: Value) -> Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        })
    }

    fn endpoint(ip: &str, pod: &str, ready: bool, terminating: bool) -> Value {
        json!({
            "addresses": [ip], "nodeName": "n1",
            "conditions": {"ready": ready, "serving": true, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": "default", "name": pod},
        })
    }

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn web() -> Value {
        service(
            "web",
            json!({"skiff.dev/load-balancer": "least-request"}),
            json!({
                "type": "NodePort",
                "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            }),
        )
    }

    #[test]
    fn services_get_ports_policy_affinity_and_endpoints() {
        let mut objects = RoutingObjects::default();
        objects.apply(Downstream::RoutingSnapshot {
            objects: vec![
                web(),
                slice(
                    "web-a",
                    "web",
                    json!([endpoint("10.0.0.2", "p2", true, false)]),
                ),
                slice(
                    "web-b",
                    "web",
                    json!([
                        endpoint("10.0.0.1", "p1", true, false),
                        endpoint("10.0.0.3", "p3", false, true)
                    ]),
                ),
                json!({"kind": "Node", "metadata": {"name": "n1"}, "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.2"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 4321}}}}),
            ],
        });
        let table = objects.table();
        let route = &table.services[&key("web")];
        assert_eq!(route.policy, Policy::LeastRequest);
        assert_eq!(route.affinity, Some(Duration::from_secs(10800)));
        assert_eq!(
            route.ports,
            vec![ServicePortRoute {
                name: "http".into(),
                port: 80,
                node_port: Some(30080),
                target_port: Some("8080".into()),
            }]
        );
        let ips: Vec<String> = route.endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(route.endpoints[0].ports["http"], 8080);
        assert_eq!(
            route.endpoints[0].pod,
            Some(PodRef {
                namespace: "default".into(),
                name: "p1".into()
            })
        );
        let ready: Vec<_> = route
            .ready_endpoints("http")
            .iter()
            .map(|e| e.ip.to_string())
            .collect();
        assert_eq!(ready, ["10.0.0.1", "10.0.0.2"]);
        assert!(route.ready_endpoints("grpc").is_empty());
        assert_eq!(table.node_ports[&30080], (key("web"), "http".to_string()));
        assert_eq!(
            table.nodes["n1"],
            NodeRoute {
                address: Some("127.0.0.2".parse().unwrap()),
                proxy_port: Some(4321),
            }
        );
    }

    #[test]
    fn defaults_changes_and_removals() {
        let mut objects = RoutingObjects::default();
        let internal = service(
            "internal",
            json!({}),
            json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
        );
        objects.apply(Downstream::RoutingUpsert { object: internal });
        objects.apply(Downstream::RoutingUpsert { object: web() });
        let table = objects.table();
        let route = &table.services[&key("internal")];
        assert_eq!(route.service_type, "ClusterIP");
        assert_eq!(route.policy, Policy::RoundRobin);
        assert_eq!(route.affinity, Some(Duration::from_secs(60)));
        // A ClusterIP Service opens no node port.
        assert_eq!(table.node_ports.len(), 1);

        objects.apply(Downstream::RoutingRemove {
            kind: "Service".into(),
            namespace: "default".into(),
            name: "web".into(),
        });
        let table = objects.table();
        assert!(table.node_ports.is_empty());
        assert!(!table.services.contains_key(&key("web")));

        // A snapshot replaces everything held before.
        objects.apply(Downstream::RoutingSnapshot { objects: vec![] });
        assert!(objects.table().services.is_empty());
        assert!(!objects.apply(Downstream::Remove { uid: "x".into() }));
    }

    #[test]
    fn ingresses_come_and_go() {
        let mut objects = RoutingObjects::default();
        let ingress = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"rules": [{"host": "shop.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
        });
        objects.apply(Downstream::RoutingUpsert { object: ingress });
        let table = objects.table();
        let backend = table.ingress.route("shop.example", "/").cloned();
        assert_eq!(backend.map(|b| b.service), Some(key("web")));
        objects.apply(Downstream::RoutingRemove {
            kind: "Ingress".into(),
            namespace: "default".into(),
            name: "shop".into(),
        });
        assert!(objects.table().ingress.route("shop.example", "/").is_none());
    }
}
