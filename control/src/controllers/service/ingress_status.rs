//! The status of the Ingresses Skiff serves (class `skiff`, or none: Skiff's
//! is the default class): every node's proxy serves them on its HTTP port, so
//! `status.loadBalancer.ingress` lists the Ready nodes' InternalIPs, which
//! `kubectl get ingress` shows as ADDRESS. Kept current as nodes come, go, or
//! change readiness, by the same rule as a LoadBalancer Service's addresses
//! (`service_load_balancer`). Ingresses of other classes are their
//! controllers' to write.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};
use skiff_api::ingress::is_skiff_ingress;
use skiff_api::status::ApiError;

use super::service_load_balancer::{load_balancer_status, node_ingress};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::write_status;
use crate::informer::{Informer, ObjectRef};
use crate::registry::Registry;
use crate::store::EventType as StoreEvent;

pub const NAME: &str = "ingress-status-controller";
const FIELD_MANAGER: &str = "skiff-ingress-controller";

/// What a reconcile needs.
struct Context {
    pub registry: Registry,
    pub ingresses: Informer<Ingress>,
    pub nodes: Informer<Node>,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let ctx = Arc::new(Context {
        registry: deps.registry,
        ingresses: deps.informers.ingresses,
        nodes: deps.informers.nodes,
    });
    Controller::new(NAME, &ctx.ingresses)
        .for_primaries_where(is_skiff_ingress)
        // Nodes' addresses are every Skiff Ingress's status.
        .reconciles_all_when(&ctx.nodes, |event, node, before| {
            let before = before.filter(|_| event != StoreEvent::Added);
            let now = (event != StoreEvent::Deleted).then_some(node);
            before.and_then(node_ingress) != now.and_then(node_ingress)
        })
        .run(1, ctx, reconcile)
        .await;
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(ingress) = ctx.ingresses.get(&key.0, &key.1) else {
        return Ok(Action::Done);
    };
    if !is_skiff_ingress(&ingress) {
        return Ok(Action::Done);
    }
    let nodes = ctx.nodes.list(None, |_| true);
    let status = ingress_status(&ingress, nodes.iter().map(|n| &**n));
    write_status(&ctx.registry, &ingress, status, FIELD_MANAGER).await?;
    Ok(Action::Done)
}

/// The Ingress's status with `loadBalancer` set to the nodes' addresses
/// (empty until a node is Ready: `kubectl` shows no ADDRESS).
fn ingress_status<'a>(ingress: &Value, nodes: impl Iterator<Item = &'a Value>) -> Value {
    let mut status = ingress
        .get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    status["loadBalancer"] = load_balancer_status(nodes);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_every_ready_node() {
        let node = |ip: &str, ready: &str| {
            json!({"metadata": {"name": ip}, "status": {
                "conditions": [{"type": "Ready", "status": ready}],
                "addresses": [{"type": "InternalIP", "address": ip}]}})
        };
        let nodes = [
            node("127.0.0.3", "True"),
            node("127.0.0.2", "True"),
            node("127.0.0.4", "False"),
        ];
        let ingress = json!({"metadata": {"name": "shop"}, "status": "junk"});
        assert_eq!(
            ingress_status(&ingress, nodes.iter()),
            json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.2"}, {"ip": "127.0.0.3"}]}})
        );
        assert_eq!(
            ingress_status(&ingress, nodes[2..].iter()),
            json!({"loadBalancer": {}})
        );
    }
}
