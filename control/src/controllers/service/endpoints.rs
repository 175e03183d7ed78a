//! The Endpoints controller, as Kubernetes' (`pkg/controller/endpoint`): the
//! legacy `v1 Endpoints` object of every Service with a selector, named as the
//! Service, for clients that predate EndpointSlices. It is computed from the
//! same pod endpoints as the slices ([`super::service_endpoints`]) and packed
//! into subsets ([`subsets`]). Services without a selector keep whatever
//! Endpoints their users write; a deleted Service's Endpoints are deleted
//! (they carry no owner reference, as in Kubernetes).

pub mod subsets;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde_json::{Map, Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};

use super::service_endpoints::{
    PodEndpoint, address_types, has_cluster_ip, inherited_labels, pod_endpoints, selector, selects,
};
use super::service_triggers::services_for_pod_change;
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::workload::pod_control::revision_of;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef, object_ref};
use crate::registry::{DeleteOptions, Registry, Subresource, WriteOptions};

pub const NAME: &str = "endpoint-controller";
const FIELD_MANAGER: &str = "skiff-endpoint-controller";
/// Set on an Endpoints object whose addresses were cut to the capacity.
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// What a reconcile needs.
struct Context {
    pub registry: Registry,
    pub services: Informer<Service>,
    pub pods: Informer<Pod>,
    pub endpoints: Informer<Endpoints>,
    pub events: EventRecorder,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let ctx = Arc::new(Context {
        registry: deps.registry,
        services: deps.informers.services,
        pods: deps.informers.pods,
        endpoints: deps.informers.endpoints,
        events: deps.events,
    });
    let services = ctx.services.clone();
    Controller::new(NAME, &ctx.services)
        .watches_changes(&ctx.pods, move |event, pod, prev| {
            services_for_pod_change(&services, event, pod, prev)
        })
        // Deleted by someone: recreated if its Service still wants it.
        .watches_deletions(&ctx.endpoints, |endpoints| vec![object_ref(endpoints)])
        // After a (re)list every Endpoints object is looked at too, so one
        // left by a Service deleted unseen goes (`checkLeftoverEndpoints`).
        .queues_leftovers_of(&ctx.endpoints)
        .run(4, ctx, reconcile)
        .await;
}

fn endpoints_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("v1", "Endpoints").ok_or_else(|| ApiError::internal("no Endpoints kind"))
}

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    }
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let rt = endpoints_type()?;
    let current = ctx.endpoints.get(&key.0, &key.1);
    let Some(service) = ctx.services.get(&key.0, &key.1) else {
        if let Some(current) = current {
            let opts = DeleteOptions {
                precondition_uid: meta::uid(&current).map(str::to_string),
                ..Default::default()
            };
            match ctx.registry.delete(rt, &key.0, &key.1, &opts).await {
                Ok(deleted) => ctx.endpoints.wait_for(revision_of(&deleted.object)).await,
                Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(Action::Done);
    };
    if selector(&service).is_none() {
        return Ok(Action::Done);
    }
    let pods = ctx.pods.list(Some(&key.0), |p| selects(&service, p));
    let want = desired(
        &service,
        current.as_deref(),
        &pod_endpoints(&service, &pods),
    );
    if current.as_deref() == Some(&want) {
        return Ok(Action::Done);
    }
    let written = match &current {
        Some(_) => {
            ctx.registry
                .update(rt, &key.0, &key.1, want, Subresource::Main, &opts())
                .await
        }
        None => ctx.registry.create(rt, &key.0, want, &opts()).await,
    };
    match written {
        Ok(w) => {
            ctx.endpoints.wait_for(revision_of(&w.object)).await;
            Ok(Action::Done)
        }
        // The namespace is being deleted, and the Service with it.
        Err(e) if e.reason == Reason::Forbidden => Ok(Action::Done),
        Err(e) => {
            if !matches!(e.reason, Reason::Conflict | Reason::AlreadyExists) {
                ctx.events.record(
                    &service,
                    NAME,
                    EventType::Warning,
                    "FailedToUpdateEndpoint",
                    format!(
                        "Failed to update endpoint {}/{}: {}",
                        key.0, key.1, e.message
                    ),
                );
            }
            Err(e)
        }
    }
}

/// The Endpoints object the Service should have: the current one (if any)
/// with its subsets, labels and capacity annotation brought up to date.
fn desired(service: &Value, current: Option<&Value>, endpoints: &[PodEndpoint]) -> Value {
    let publish_not_ready = service
        .at("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let service_has_ports = service
        .at("/spec/ports")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let address_type = address_type(service);
    let mut subsets = subsets::subsets(
        endpoints,
        address_type,
        service_has_ports,
        publish_not_ready,
    );
    let truncated = subsets::truncate(&mut subsets);

    let mut obj = match current {
        Some(c) => c.clone(),
        None => json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": meta::name(service).unwrap_or_default(),
                "namespace": meta::namespace(service).unwrap_or_default(),
            },
        }),
    };
    let labels = inherited_labels(service);
    if labels.is_empty() {
        meta::remove(&mut obj, "labels");
    } else {
        meta::set(&mut obj, "labels", Value::Object(labels));
    }
    let mut annotations: Map<String, Value> = meta::annotations(&obj).cloned().unwrap_or_default();
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), json!("truncated"));
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    if annotations.is_empty() {
        meta::remove(&mut obj, "annotations");
    } else {
        meta::set(&mut obj, "annotations", Value::Object(annotations));
    }
    match obj.as_object_mut() {
        Some(map) if subsets.is_empty() => {
            map.remove("subsets");
        }
        Some(map) => {
            map.insert("subsets".into(), Value::Array(subsets));
        }
        None => {}
    }
    obj
}

/// The family of the address each pod is listed by: the Service's first, or
/// for a headless Service from before dual stack, whatever the pod has first.
fn address_type(service: &Value) -> Option<&'static str> {
    let families_set = service
        .at("/spec/ipFamilies")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if families_set || has_cluster_ip(service) {
        address_types(service).first().copied()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::service_endpoints::tests::{pod, service};
    use super::*;

    #[test]
    fn the_endpoints_object_carries_the_services_labels_and_its_subsets() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"}]),
        );
        let pods = vec![Arc::new(pod("a", Some("10.244.0.5"), true))];
        let eps = desired(&svc, None, &pod_endpoints(&svc, &pods));
        assert_eq!(eps["metadata"]["name"], "web");
        assert_eq!(eps["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "10.244.0.5");
        assert_eq!(
            eps["subsets"][0]["ports"],
            json!([{"port": 8080, "protocol": "TCP"}])
        );
        // Nothing changes the second time round.
        assert_eq!(desired(&svc, Some(&eps), &pod_endpoints(&svc, &pods)), eps);
        // No pods: no subsets at all; headless: the marker label.
        let mut headless = svc.clone();
        headless["spec"]["clusterIP"] = json!("None");
        let empty = desired(&headless, Some(&eps), &[]);
        assert!(empty.get("subsets").is_none());
        assert_eq!(
            empty["metadata"]["labels"]["service.kubernetes.io/headless"],
            ""
        );
    }
}
