//! ClusterRole aggregation (Kubernetes' clusterrole-aggregation controller):
//! a ClusterRole with an `aggregationRule` gets, as its `rules`, the union of
//! the rules of every ClusterRole its selectors match, kept current as those
//! change. The computation is [`bootstrap::aggregated_rules`]; this
//! controller writes it.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::ClusterRole;
use serde_json::Value;
use skiff_api::status::ApiError;

use crate::auth::rbac::bootstrap;
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{Registry, Subresource, WriteOptions};

pub const NAME: &str = "clusterrole-aggregation-controller";

struct Context {
    registry: Registry,
    cluster_roles: Informer<ClusterRole>,
}

/// Runs until the process ends.
pub async fn run(deps: Deps) {
    let (registry, cluster_roles) = (deps.registry, deps.cluster_roles);
    let ctx = Arc::new(Context {
        registry,
        cluster_roles: cluster_roles.clone(),
    });
    Controller::new(NAME, &cluster_roles)
        // Any role may be one an aggregated role selects.
        .reconciles_all_when(&cluster_roles, |_, _, _| true)
        .run(1, ctx, reconcile)
        .await;
}

async fn reconcile(ctx: Arc<Context>, (_, name): ObjectRef) -> Result<Action, ApiError> {
    let Some(role) = ctx.cluster_roles.get("", &name) else {
        return Ok(Action::await_change());
    };
    let roles: Vec<Value> = ctx
        .cluster_roles
        .list(None, |_| true)
        .iter()
        .map(|r| r.as_ref().clone())
        .collect();
    let Some(rules) = bootstrap::aggregated_rules(&role, &roles) else {
        return Ok(Action::await_change());
    };
    let rules = Value::Array(rules);
    if role.get("rules") == Some(&rules) {
        return Ok(Action::await_change());
    }
    let mut updated = role.as_ref().clone();
    updated["rules"] = rules;
    let opts = WriteOptions {
        field_manager: NAME.into(),
        ..Default::default()
    };
    let written = ctx
        .registry
        .update(
            ctx.cluster_roles.resource(),
            "",
            &name,
            updated,
            Subresource::Main,
            &opts,
        )
        .await?;
    if let Some(revision) = crate::store::object_revision(&written.object) {
        ctx.cluster_roles.wait_for(revision).await;
    }
    Ok(Action::await_change())
}
