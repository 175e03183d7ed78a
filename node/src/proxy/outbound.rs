//! A pod's outbound HTTP. A request to a Service's name (`http://NAME`,
//! `NAME.NAMESPACE`, `NAME.NAMESPACE.svc`, `NAME.NAMESPACE.svc.cluster.local`,
//! with one of the Service's ports, 80 when none is given) goes through the
//! proxy (`forward`), as a Kubernetes pod reaches a Service by its DNS name.
//! Any other host is refused unless the pod's
//! `skiff.dev/allowed-outbound-hosts` annotation lists it (`allowed_hosts`);
//! then it goes to the network as addressed.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::uri::Scheme;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use skiff_runtime::{OutboundFuture, OutboundHttp, OutboundRoute};

use super::Shared;
use super::allowed_hosts::AllowedHosts;
use super::forward::forward;
use super::table::{RoutingTable, ServiceKey};
use crate::supervisor::OutboundRouter;

/// The annotation listing the outside hosts a pod may call.
const ALLOWED_HOSTS_ANNOTATION: &str = "skiff.dev/allowed-outbound-hosts";

/// Largest response a pod's call to a Service takes (the runtime's hook
/// hands the guest whole responses).
const MAX_RESPONSE: usize = 64 << 20;

/// Makes each pod's hook; held by the supervisor.
pub(super) struct Router {
    /// Weak: the proxy owns the supervisor, which owns this router.
    pub(super) shared: Weak<Shared>,
}

impl OutboundRouter for Router {
    fn for_pod(&self, pod: &Pod, pod_ip: Option<IpAddr>) -> Arc<dyn OutboundHttp> {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let listed = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(ALLOWED_HOSTS_ANNOTATION))
            .map_or("", String::as_str);
        let (allowed, rejected) = AllowedHosts::parse(listed);
        for entry in rejected {
            tracing::warn!(
                pod = %format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default()),
                entry,
                "ignoring an entry of {ALLOWED_HOSTS_ANNOTATION} that is not [scheme://]host[:port]"
            );
        }
        Arc::new(PodOutbound {
            shared: self.shared.clone(),
            client: pod_ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            namespace,
            allowed,
        })
    }
}

/// One pod's outbound hook.
struct PodOutbound {
    shared: Weak<Shared>,
    namespace: String,
    /// The pod's address: who asks, for the Service's ClientIP affinity.
    client: IpAddr,
    allowed: AllowedHosts,
}

impl OutboundHttp for PodOutbound {
    fn route(&self, uri: &Uri) -> OutboundRoute {
        let Some(shared) = self.shared.upgrade() else {
            return OutboundRoute::Denied("the node is stopping".into());
        };
        if service_of(&shared.table(), uri, &self.namespace).is_some() {
            if uri.scheme() == Some(&Scheme::HTTPS) {
                return OutboundRoute::Denied(format!(
                    "{uri}: Services are reached over http:// (the proxy speaks HTTP to pods)"
                ));
            }
            return OutboundRoute::Embedder;
        }
        if self.allowed.allows(uri) {
            OutboundRoute::Network
        } else {
            OutboundRoute::Denied(format!(
                "{uri}: not a Service and not listed in the pod's {ALLOWED_HOSTS_ANNOTATION}"
            ))
        }
    }

    fn send(&self, request: Request<Bytes>) -> OutboundFuture {
        let shared = self.shared.clone();
        let namespace = self.namespace.clone();
        let client = self.client;
        Box::pin(async move {
            let shared = shared.upgrade().ok_or("the node is stopping")?;
            let table = shared.table();
            let uri = request.uri().clone();
            let (key, port) = service_of(&table, &uri, &namespace)
                .ok_or_else(|| format!("{uri}: no such Service"))?;
            let route = table
                .services
                .get(&key)
                .ok_or_else(|| format!("{uri}: no such Service"))?;
            let port_name = route
                .ports
                .iter()
                .find(|p| p.port == port)
                .map(|p| p.name.as_str())
                .ok_or_else(|| format!("service {key} has no port {port}"))?;
            let (mut parts, body) = request.into_parts();
            if !parts.headers.contains_key(header::HOST)
                && let Some(authority) = uri.authority()
                && let Ok(host) = HeaderValue::from_str(authority.as_str())
            {
                parts.headers.insert(header::HOST, host);
            }
            let request = Request::from_parts(parts, http_body_util::Full::new(body));
            let response = forward(&shared, route, port_name, client, request).await;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| format!("{uri}: response body: {e}"))?;
            Ok(Response::from_parts(parts, body.to_bytes()))
        })
    }
}

/// The Service (and its port) that `uri` names from a pod in `namespace`, if
/// the table has it. Like cluster DNS with its search path, `NAME.OTHER` is a
/// Service only when namespace `OTHER` has Service `NAME`; otherwise it is an
/// outside host.
fn service_of(table: &RoutingTable, uri: &Uri, namespace: &str) -> Option<(ServiceKey, u16)> {
    let host = uri.host()?.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let (name, namespace) = match labels.as_slice() {
        [name] => (*name, namespace),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => (*name, *ns),
        _ => return None,
    };
    let key = ServiceKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    if !table.services.contains_key(&key) {
        return None;
    }
    let port = uri.port_u16().unwrap_or(80);
    Some((key, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::table::{RoutingObjects, tests::service};
    use serde_json::json;
    use skiff_api::wire::Downstream;

    fn table() -> RoutingTable {
        let mut objects = RoutingObjects::default();
        for (ns, name) in [("default", "hello"), ("shop", "cart")] {
            let mut svc = service(name, json!({}), json!({"ports": [{"port": 80}]}));
            svc["metadata"]["namespace"] = json!(ns);
            objects.apply(Downstream::RoutingUpsert { object: svc });
        }
        objects.table()
    }

    fn resolve(uri: &str, namespace: &str) -> Option<(String, u16)> {
        let uri: Uri = uri.parse().expect("uri");
        service_of(&table(), &uri, namespace).map(|(k, p)| (k.to_string(), p))
    }

    #[test]
    fn service_names_resolve_as_cluster_dns_would() {
        let hello = Some(("default/hello".to_string(), 80));
        assert_eq!(resolve("http://hello/", "default"), hello);
        assert_eq!(resolve("http://hello.default/x", "shop"), hello);
        assert_eq!(resolve("http://hello.default.svc/", "shop"), hello);
        assert_eq!(
            resolve("http://HELLO.default.svc.cluster.local./", "shop"),
            hello
        );
        assert_eq!(
            resolve("http://cart:8080/", "shop"),
            Some(("shop/cart".to_string(), 8080))
        );
        // Not in this namespace, or not a Service at all: an outside host.
        assert_eq!(resolve("http://hello/", "shop"), None);
        assert_eq!(resolve("http://hello.com/", "default"), None);
        assert_eq!(
            resolve("http://hello.default.svc.example.org/", "default"),
            None
        );
    }
}
