//! The load balancer of `type: LoadBalancer` Services, Skiff's stand-in for a
//! cloud provider's service controller: every node's proxy serves every
//! Service's NodePort, so the cluster's Ready nodes are the load balancer, and
//! `status.loadBalancer.ingress` lists each one's InternalIP. It is kept
//! current as nodes come, go, or change readiness; a node labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers` is left out, as
//! Kubernetes does. A Service that names a `loadBalancerClass` belongs to
//! another implementation and is left alone; one that stops being a
//! LoadBalancer has its ingress cleared.
//!
//! A controller of its own rather than part of the endpoint controllers: it
//! reads nodes, not pods, and writes the Service's status, not endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::status::ApiError;

use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_status;
use crate::informer::{Informer, ObjectRef};
use crate::registry::Registry;
use crate::store::EventType as StoreEvent;

pub const NAME: &str = "service-lb-controller";
const FIELD_MANAGER: &str = "skiff-service-lb-controller";
const LABEL_EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What a reconcile needs.
struct Context {
    pub registry: Registry,
    pub services: Informer<Service>,
    pub nodes: Informer<Node>,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let ctx = Arc::new(Context {
        registry: deps.registry,
        services: deps.informers.services,
        nodes: deps.informers.nodes,
    });
    Controller::new(NAME, &ctx.services)
        .for_primaries_where(concerned)
        // Nodes' addresses are every Skiff load balancer's status.
        .reconciles_all_when(&ctx.nodes, |event, node, before| {
            let before = before.filter(|_| event != StoreEvent::Added);
            let now = (event != StoreEvent::Deleted).then_some(node);
            before.and_then(node_ingress) != now.and_then(node_ingress)
        })
        .run(2, ctx, reconcile)
        .await;
}

/// A Service whose ingress this controller sets, or must clear (it is no
/// LoadBalancer any more).
fn concerned(svc: &Value) -> bool {
    let load_balancer = svc.at("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    is_ours(svc)
        || !load_balancer
            && svc
                .at("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
}

fn is_ours(svc: &Value) -> bool {
    svc.at("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
        && svc
            .at("/spec/loadBalancerClass")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(svc) = ctx.services.get(&key.0, &key.1) else {
        return Ok(Action::Done);
    };
    if !concerned(&svc) {
        return Ok(Action::Done); // Another implementation's, or nothing to do.
    }
    let load_balancer = if is_ours(&svc) {
        let nodes = ctx.nodes.list(None, |_| true);
        load_balancer_status(nodes.iter().map(|n| &**n))
    } else {
        json!({})
    };
    let mut status = svc.get("status").cloned().unwrap_or_else(|| json!({}));
    if !status.is_object() {
        status = json!({});
    }
    status["loadBalancer"] = load_balancer;
    write_status(&ctx.registry, &svc, status, FIELD_MANAGER).await?;
    Ok(Action::Done)
}

/// `status.loadBalancer` of a LoadBalancer Service: the InternalIPs of the
/// Ready nodes, sorted (empty until there is one: `kubectl` shows `<pending>`).
pub fn load_balancer_status<'a>(nodes: impl Iterator<Item = &'a Value>) -> Value {
    let ips: BTreeSet<String> = nodes.filter_map(node_ingress).flatten().collect();
    if ips.is_empty() {
        return json!({});
    }
    json!({"ingress": ips.into_iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()})
}

/// The addresses a node serves a load balancer at, or `None` when it serves
/// none (not Ready, or excluded).
pub(super) fn node_ingress(node: &Value) -> Option<Vec<String>> {
    let ready = node
        .at("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let excluded = skiff_api::meta::labels(node).is_some_and(|l| l.contains_key(LABEL_EXCLUDE));
    if !ready || excluded {
        return None;
    }
    let ips: Vec<String> = node
        .at("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .filter(|a| a["type"] == "InternalIP")
        .filter_map(|a| a.get("address").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    (!ips.is_empty()).then_some(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: &str, ip: &str) -> Value {
        json!({
            "metadata": {"name": name},
            "status": {
                "conditions": [{"type": "Ready", "status": ready}],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            },
        })
    }

    #[test]
    fn every_ready_node_that_is_not_excluded_is_an_ingress() {
        let mut excluded = node("n4", "True", "192.168.1.4");
        excluded["metadata"]["labels"] = json!({LABEL_EXCLUDE: ""});
        let nodes = [
            node("n2", "True", "192.168.1.2"),
            node("n1", "True", "192.168.1.1"),
            node("n3", "Unknown", "192.168.1.3"),
            excluded,
        ];
        assert_eq!(
            load_balancer_status(nodes.iter()),
            json!({"ingress": [{"ip": "192.168.1.1"}, {"ip": "192.168.1.2"}]})
        );
        assert_eq!(load_balancer_status(nodes[2..].iter()), json!({}));
    }

    #[test]
    fn only_plain_load_balancers_are_ours() {
        let mut svc = json!({"spec": {"type": "LoadBalancer"}});
        assert!(is_ours(&svc));
        svc["spec"]["loadBalancerClass"] = json!("example.com/lb");
        assert!(!is_ours(&svc));
        let was = json!({"spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.1"}]}}});
        assert!(!is_ours(&was) && concerned(&was));
        // Another implementation's ingress is not cleared.
        svc["status"] = was["status"].clone();
        assert!(!concerned(&svc));
    }
}
