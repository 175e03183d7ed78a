//! ClusterRole aggregation (Kubernetes' clusterrole-aggregation controller):
//! a ClusterRole with an `aggregationRule` gets, as its `rules`, the union of
//! the rules of every ClusterRole its selectors match, kept current as those
//! change. The computation is [`bootstrap::aggregated_rules`]; this loop
//! writes it.

use serde_json::Value;
use skiff_api::meta;

use crate::auth::rbac::bootstrap;
use crate::informer::Informer;
use crate::registry::{Registry, Subresource, WriteOptions};

/// Runs until the process ends.
pub async fn run(registry: Registry, cluster_roles: Informer) {
    let mut feed = cluster_roles.subscribe();
    cluster_roles.synced().await;
    let opts = WriteOptions {
        field_manager: "clusterrole-aggregation-controller".into(),
        ..Default::default()
    };
    loop {
        let roles: Vec<Value> = cluster_roles
            .list(None, |_| true)
            .iter()
            .map(|r| r.as_ref().clone())
            .collect();
        for role in &roles {
            let Some(rules) = bootstrap::aggregated_rules(role, &roles) else {
                continue;
            };
            let rules = Value::Array(rules);
            if role.get("rules") == Some(&rules) {
                continue;
            }
            let mut updated = role.clone();
            updated["rules"] = rules;
            let name = meta::name(role).unwrap_or_default();
            match registry
                .update(
                    cluster_roles.resource(),
                    "",
                    name,
                    updated,
                    Subresource::Main,
                    &opts,
                )
                .await
            {
                Ok(written) => {
                    if let Some(revision) = crate::store::object_revision(&written.object) {
                        cluster_roles.wait_for(revision).await;
                    }
                }
                // A conflict or a deletion: the next change brings the role again.
                Err(e) => tracing::debug!(role = name, error = %e, "aggregate ClusterRole"),
            }
        }
        if feed.next().await.is_none() {
            return;
        }
    }
}
