//! The EndpointSlice controller, as Kubernetes' (`pkg/controller/endpointslice`):
//! for every Service with a selector, its pods that have an IP are published
//! as endpoints (`discovery.k8s.io/v1` EndpointSlices labelled
//! `kubernetes.io/service-name` and owned by the Service), with `ready`,
//! `serving` and `terminating` conditions, the node and its zone, and each
//! Service port resolved on the pod. This is what every node's proxy reads to
//! route Service traffic. Services without a selector are left to whoever
//! manages their slices; a deleted Service's slices go with it through the
//! garbage collector (they are owned by it).
//!
//! The planning itself is pure ([`plan`]); this module reads the caches,
//! queues Services on the changes that concern them, and writes the plan.

pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, Reason};

use super::service_endpoints::{LABEL_ZONE, PodEndpoint, pod_endpoints, selector, selects};
use super::service_triggers::{services_for_node_change, services_for_pod_change};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::controllers::workload::pod_control::revision_of;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{DeleteOptions, Registry, Subresource, WriteOptions};
use crate::store::Revision;

pub const NAME: &str = "endpointslice-controller";
const FIELD_MANAGER: &str = "skiff-endpointslice-controller";
/// How soon a Service is looked at again while a pod of it names a node not
/// (yet) known; the node's arrival queues it sooner.
const MISSING_NODE_RETRY: Duration = Duration::from_secs(5);

/// What a reconcile needs.
struct Context {
    pub registry: Registry,
    pub services: Informer<Service>,
    pub pods: Informer<Pod>,
    pub nodes: Informer<Node>,
    pub endpoint_slices: Informer<EndpointSlice>,
    pub events: EventRecorder,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let ctx = Arc::new(Context {
        registry: deps.registry,
        services: deps.informers.services,
        pods: deps.informers.pods,
        nodes: deps.informers.nodes,
        endpoint_slices: deps.informers.endpoint_slices,
        events: deps.events,
    });
    let (services, pods) = (ctx.services.clone(), ctx.pods.clone());
    let services_of_pods = services.clone();
    Controller::new(NAME, &ctx.services)
        .watches_changes(&ctx.pods, move |event, pod, prev| {
            services_for_pod_change(&services_of_pods, event, pod, prev)
        })
        .watches_changes(&ctx.nodes, move |event, node, prev| {
            services_for_node_change(&services, &pods, event, node, prev)
        })
        // A slice changed or deleted by anyone else is put right.
        .watches(&ctx.endpoint_slices, |slice| {
            match (plan::is_managed(slice), plan::service_name(slice)) {
                (true, Some(service)) => vec![(
                    meta::namespace(slice).unwrap_or_default().to_string(),
                    service.to_string(),
                )],
                _ => Vec::new(),
            }
        })
        .run(4, ctx, reconcile)
        .await;
}

fn slices_type() -> Result<&'static ResourceType, ApiError> {
    by_kind("discovery.k8s.io/v1", "EndpointSlice")
        .ok_or_else(|| ApiError::internal("no EndpointSlice kind"))
}

async fn reconcile(ctx: Arc<Context>, key: ObjectRef) -> Result<Action, ApiError> {
    let Some(service) = ctx.services.get(&key.0, &key.1) else {
        return Ok(Action::Done); // Its slices are owned by it: collected with it.
    };
    let external_name = service.at("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    if selector(&service).is_none() || external_name {
        return Ok(Action::Done);
    }
    let pods = ctx.pods.list(Some(&key.0), |p| selects(&service, p));
    let (endpoints, zones, missing_nodes) =
        on_known_nodes(&ctx.nodes, pod_endpoints(&service, &pods));
    let existing = ctx.endpoint_slices.list(Some(&key.0), |s| {
        plan::is_managed(s) && plan::service_name(s) == Some(key.1.as_str())
    });
    let mut plan = plan::plan(
        &service,
        &existing,
        &endpoints,
        &zones,
        plan::MAX_ENDPOINTS_PER_SLICE,
    );
    if meta::deletion_timestamp(&service).is_some() {
        // Nothing new for a Service the garbage collector is taking apart:
        // it would only race it.
        plan.create.clear();
    }
    let (written, outcome) = write(&ctx, &plan).await;
    if written > 0 {
        // Read our own writes (those before a failure too) before the next
        // look at this Service, so that a slice just created is not created
        // again.
        ctx.endpoint_slices.wait_for(written).await;
    }
    match outcome {
        Ok(()) => {}
        // The namespace is being deleted, and the Service with it.
        Err(e) if e.reason == Reason::Forbidden => return Ok(Action::Done),
        Err(e) => {
            if e.reason != Reason::Conflict {
                ctx.events.record(
                    &service,
                    NAME,
                    EventType::Warning,
                    "FailedToUpdateEndpointSlices",
                    format!(
                        "Error updating Endpoint Slices for Service {}/{}: {}",
                        key.0, key.1, e.message
                    ),
                );
            }
            return Err(e);
        }
    }
    if missing_nodes > 0 {
        tracing::debug!(service = %format!("{}/{}", key.0, key.1), pods = missing_nodes, "pods on unknown nodes left out of the Service's endpoints");
        return Ok(Action::RequeueAfter(MISSING_NODE_RETRY));
    }
    Ok(Action::Done)
}

/// Keeps the endpoints whose node is known, with the zones of those nodes,
/// and counts the others: as in Kubernetes, a pod on a node that does not
/// exist is not published.
fn on_known_nodes(
    nodes: &Informer<Node>,
    endpoints: Vec<PodEndpoint>,
) -> (Vec<PodEndpoint>, HashMap<String, String>, usize) {
    let mut zones = HashMap::new();
    let mut missing = 0;
    let mut kept = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let node = e.node_name.as_deref().and_then(|n| nodes.get("", n));
        let Some(node) = node else {
            missing += 1;
            continue;
        };
        if let (Some(name), Some(zone)) = (
            &e.node_name,
            meta::labels(&node)
                .and_then(|l| l.get(LABEL_ZONE))
                .and_then(Value::as_str),
        ) {
            zones.insert(name.clone(), zone.to_string());
        }
        kept.push(e);
    }
    (kept, zones, missing)
}

/// Creates, then updates, then deletes (so that endpoints moving between
/// slices are never missing from all of them). Returns the revision of the
/// last write that succeeded, and how the writes ended.
async fn write(ctx: &Context, plan: &plan::Plan) -> (Revision, Result<(), ApiError>) {
    let mut last = 0;
    let outcome = write_each(ctx, plan, &mut last).await;
    (last, outcome)
}

async fn write_each(ctx: &Context, plan: &plan::Plan, last: &mut Revision) -> Result<(), ApiError> {
    let rt = slices_type()?;
    let opts = WriteOptions {
        field_manager: FIELD_MANAGER.into(),
        ..Default::default()
    };
    for slice in &plan.create {
        let namespace = meta::namespace(slice).unwrap_or_default();
        let written = ctx
            .registry
            .create(rt, namespace, slice.clone(), &opts)
            .await?;
        *last = (*last).max(revision_of(&written.object));
    }
    for slice in &plan.update {
        let (namespace, name) = (
            meta::namespace(slice).unwrap_or_default(),
            meta::name(slice).unwrap_or_default(),
        );
        let written = ctx
            .registry
            .update(rt, namespace, name, slice.clone(), Subresource::Main, &opts)
            .await?;
        *last = (*last).max(revision_of(&written.object));
    }
    for slice in &plan.delete {
        let opts = DeleteOptions {
            precondition_uid: meta::uid(slice).map(str::to_string),
            ..Default::default()
        };
        let (namespace, name) = (
            meta::namespace(slice).unwrap_or_default(),
            meta::name(slice).unwrap_or_default(),
        );
        match ctx.registry.delete(rt, namespace, name, &opts).await {
            Ok(deleted) => *last = (*last).max(revision_of(&deleted.object)),
            Err(e) if e.reason == Reason::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
