//! Printers for the kinds that route traffic: Service, Endpoints, EndpointSlice,
//! Ingress, IngressClass.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::labels::format_labels;
use super::{
    AGE, Column, NAME, Printer, age_cell, arr_at, int_at, is_set, name_cell, obj_at, opt_int,
    opt_str, str_at,
};

pub(super) const SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Type",
            "string",
            "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
        ),
        Column::new(
            "Cluster-IP",
            "string",
            "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
        ),
        Column::new(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
        ),
        Column::new(
            "Port(s)",
            "string",
            "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
        ),
        AGE,
        Column::new(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
        )
        .wide(),
    ],
    cells: service_cells,
};

pub(super) const ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
        ),
        AGE,
    ],
    cells: endpoints_cells,
};

pub(super) const ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.",
        ),
        Column::new(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.",
        ),
        Column::new(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
        ),
        AGE,
    ],
    cells: endpoint_slice_cells,
};

pub(super) const INGRESS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column::new(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        Column::new(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        Column::new("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: ingress_cells,
};

pub(super) const INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        Column::new(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    cells: ingress_class_cells,
};

/// How many items a list cell names before `+ N more...`.
const LIST_MAX: usize = 3;

/// `printService`: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE | SELECTOR.
fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    // Kubernetes defaults the type to ClusterIP on write.
    let ty = opt_str(svc, "/spec/type")
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP");
    let cluster_ip = opt_str(svc, "/spec/clusterIPs/0")
        .filter(|ip| !ip.is_empty())
        .or_else(|| opt_str(svc, "/spec/clusterIP").filter(|ip| !ip.is_empty()))
        .unwrap_or("<none>");

    let ports: Vec<String> = arr_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let protocol = opt_str(p, "/protocol")
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = super::or_none(&ports.join(","));

    vec![
        name_cell(svc),
        Value::from(ty),
        Value::from(cluster_ip),
        Value::from(external_ip(svc, ty)),
        Value::from(ports),
        age_cell(svc, now),
        Value::from(format_labels(obj_at(svc, "/spec/selector"))),
    ]
}

/// `getServiceExternalIP`, wide (load-balancer addresses are never clipped: the
/// server always prints wide).
fn external_ip(svc: &Value, ty: &str) -> String {
    let external_ips: Vec<&str> = arr_at(svc, "/spec/externalIPs")
        .iter()
        .map(|ip| ip.as_str().unwrap_or(""))
        .collect();
    match ty {
        "ClusterIP" | "NodePort" => super::or_none(&external_ips.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(arr_at(svc, "/status/loadBalancer/ingress"));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(','));
                }
                all.extend(external_ips);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `loadBalancerStatusStringer`: the distinct IPs (or else hostnames), sorted.
fn load_balancer_addresses(ingress: &[Value]) -> String {
    let addresses: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|i| {
            opt_str(i, "/ip")
                .filter(|ip| !ip.is_empty())
                .or_else(|| opt_str(i, "/hostname").filter(|h| !h.is_empty()))
        })
        .collect();
    addresses.into_iter().collect::<Vec<_>>().join(",")
}

/// `printEndpoints`: NAME ENDPOINTS AGE, with `formatEndpoints`.
fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_cell(ep),
        Value::from(format_endpoints(arr_at(ep, "/subsets"))),
        age_cell(ep, now),
    ]
}

/// `formatEndpoints`: up to three ready `ip:port`s, then `+ N more...`.
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = arr_at(subset, "/addresses");
        let ports = arr_at(subset, "/ports");
        if ports.is_empty() {
            // A headless service may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == LIST_MAX {
                    more = true;
                    break;
                }
                list.push(str_at(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == LIST_MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(address, "/ip"),
                    int_at(port, "/port"),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - LIST_MAX)
    } else {
        joined
    }
}

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `printEndpointSlice`: NAME ADDRESSTYPE PORTS ENDPOINTS AGE.
fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = arr_at(slice, "/ports")
        .iter()
        .map(|p| match (opt_int(p, "/port"), opt_str(p, "/name")) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(slice, "/endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "/addresses"))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    vec![
        name_cell(slice),
        Value::from(str_at(slice, "/addressType")),
        Value::from(list_with_more(&ports)),
        Value::from(list_with_more(&addresses)),
        age_cell(slice, now),
    ]
}

/// `listWithMoreString`: the first three, `+ N more...`, or `<unset>` if none.
fn list_with_more(items: &[String]) -> String {
    if items.len() > LIST_MAX {
        return format!(
            "{} + {} more...",
            items[..LIST_MAX].join(","),
            items.len() - LIST_MAX
        );
    }
    if items.is_empty() {
        return "<unset>".to_string();
    }
    items.join(",")
}

/// `printIngress`: NAME CLASS HOSTS ADDRESS PORTS AGE.
fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = opt_str(ing, "/spec/ingressClassName").unwrap_or("<none>");
    let ports = if arr_at(ing, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name_cell(ing),
        Value::from(class),
        Value::from(format_hosts(arr_at(ing, "/spec/rules"))),
        Value::from(load_balancer_addresses(arr_at(
            ing,
            "/status/loadBalancer/ingress",
        ))),
        Value::from(ports),
        age_cell(ing, now),
    ]
}

/// `formatHosts`: up to three rule hosts, `*` if no rule names one.
fn format_hosts(rules: &[Value]) -> String {
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == LIST_MAX {
            more = true;
        }
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let joined = list.join(",");
    if more {
        // As Kubernetes counts it: rules beyond the third, with or without hosts.
        format!("{joined} + {} more...", rules.len() - LIST_MAX)
    } else {
        joined
    }
}

/// `printIngressClass`: NAME CONTROLLER PARAMETERS AGE.
fn ingress_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = if is_set(class, "/spec/parameters") {
        let mut p = str_at(class, "/spec/parameters/kind").to_string();
        if let Some(group) = opt_str(class, "/spec/parameters/apiGroup") {
            p.push('.');
            p.push_str(group);
        }
        p.push('/');
        p.push_str(str_at(class, "/spec/parameters/name"));
        p
    } else {
        "<none>".to_string()
    };
    vec![
        name_cell(class),
        Value::from(str_at(class, "/spec/controller")),
        Value::from(parameters),
        age_cell(class, now),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn node_port_service() {
        let svc = json!({
            "metadata": {"name": "hello", "creationTimestamp": "2024-05-01T11:58:30Z"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "selector": {"app": "hello"},
                "ports": [
                    {"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"},
                ],
            },
        });
        assert_eq!(
            service_cells(&svc, now()),
            vec![
                json!("hello"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("90s"),
                json!("app=hello"),
            ]
        );
    }

    #[test]
    fn service_defaults_and_types() {
        // No type, no protocol, no clusterIPs: as Kubernetes defaults them.
        let svc = json!({
            "metadata": {"name": "api"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]},
        });
        assert_eq!(
            service_cells(&svc, now())[1..7],
            [
                json!("ClusterIP"),
                json!("10.96.0.1"),
                json!("<none>"),
                json!("443/TCP"),
                json!("<unknown>"),
                json!("<none>"),
            ]
        );

        let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(
            service_cells(&headless, now())[2..5],
            [json!("None"), json!("<none>"), json!("<none>")]
        );

        let external = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(
            service_cells(&external, now())[2..4],
            [json!("<none>"), json!("db.example.com")]
        );

        let pending =
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 31000}]}});
        assert_eq!(service_cells(&pending, now())[3], json!("<pending>"));

        let lb = json!({
            "spec": {"type": "LoadBalancer", "externalIPs": ["198.51.100.7"]},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"},
            ]}},
        });
        assert_eq!(
            service_cells(&lb, now())[3],
            json!("203.0.113.9,lb.example.com,198.51.100.7")
        );
    }

    #[test]
    fn endpoints() {
        let ep = json!({
            "metadata": {"name": "hello"},
            "subsets": [
                {
                    "addresses": [{"ip": "10.42.0.7"}, {"ip": "10.42.0.8"}],
                    "notReadyAddresses": [{"ip": "10.42.0.9"}],
                    "ports": [{"port": 8080}, {"port": 9090}],
                },
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
            ],
        });
        assert_eq!(
            endpoints_cells(&ep, now())[1],
            json!("10.42.0.7:8080,10.42.0.8:8080,10.42.0.7:9090 + 2 more...")
        );
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(endpoints_cells(&v6, now())[1], json!("[fd00::1]:80"));
        let none = json!({"metadata": {"name": "x"}});
        assert_eq!(endpoints_cells(&none, now())[1], json!("<none>"));
        let headless = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(endpoints_cells(&headless, now())[1], json!("10.0.0.1"));
    }

    #[test]
    fn endpoint_slices() {
        let slice = json!({
            "metadata": {"name": "hello-abc12"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics"}, {}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "conditions": {"ready": true}},
                {"addresses": ["10.42.0.8"]},
                {"addresses": ["10.42.0.9"]},
                {"addresses": ["10.42.0.10"]},
            ],
        });
        assert_eq!(
            endpoint_slice_cells(&slice, now())[1..4],
            [
                json!("IPv4"),
                json!("8080,metrics,*"),
                json!("10.42.0.7,10.42.0.8,10.42.0.9 + 1 more..."),
            ]
        );
        let empty = json!({"addressType": "IPv4"});
        assert_eq!(
            endpoint_slice_cells(&empty, now())[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }

    #[test]
    fn ingresses() {
        let ing = json!({
            "metadata": {"name": "web"},
            "spec": {
                "ingressClassName": "skiff",
                "tls": [{"hosts": ["a.example.com"]}],
                "rules": [
                    {"host": "a.example.com"}, {}, {"host": "b.example.com"},
                    {"host": "c.example.com"}, {"host": "d.example.com"},
                ],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}},
        });
        assert_eq!(
            ingress_cells(&ing, now())[1..5],
            [
                json!("skiff"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("127.0.0.1"),
                json!("80, 443"),
            ]
        );
        let bare = json!({"metadata": {"name": "any"}, "spec": {"defaultBackend": {}}});
        assert_eq!(
            ingress_cells(&bare, now())[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }

    #[test]
    fn ingress_classes() {
        let class = json!({
            "metadata": {"name": "skiff"},
            "spec": {
                "controller": "skiff.dev/ingress",
                "parameters": {"apiGroup": "skiff.dev", "kind": "IngressParameters", "name": "default"},
            },
        });
        assert_eq!(
            ingress_class_cells(&class, now())[1..3],
            [
                json!("skiff.dev/ingress"),
                json!("IngressParameters.skiff.dev/default"),
            ]
        );
        let plain = json!({"spec": {"controller": "x"}});
        assert_eq!(ingress_class_cells(&plain, now())[2], json!("<none>"));
    }
}
