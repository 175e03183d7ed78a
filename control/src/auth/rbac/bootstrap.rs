//! The roles and bindings every cluster starts with ([`bootstrap.yaml`]),
//! written at start, and ClusterRole aggregation (`admin`, `edit`, `view` are
//! the union of the ClusterRoles their `aggregationRule` selects), as
//! Kubernetes' clusterrole-aggregation controller computes it.

use serde_json::{Value, json};
use skiff_api::resource::by_kind;
use skiff_api::selector::LabelSelector;
use skiff_api::status::Reason;

use crate::registry::{Registry, Subresource, WriteOptions};

const POLICY: &str = include_str!("bootstrap.yaml");
/// Bootstrap objects carry this label, as Kubernetes'.
const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// Set to "false" on a bootstrap object to keep one's own changes.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// The bootstrap ClusterRoles and ClusterRoleBindings, labelled and
/// annotated as Kubernetes' are.
pub fn objects() -> Result<Vec<Value>, serde_yaml_ng::Error> {
    let mut objects: Vec<Value> = serde_yaml_ng::from_str(POLICY)?;
    for object in &mut objects {
        let metadata = &mut object["metadata"];
        metadata["labels"][BOOTSTRAPPING_LABEL.0] = json!(BOOTSTRAPPING_LABEL.1);
        metadata["annotations"][AUTOUPDATE_ANNOTATION] = json!("true");
    }
    Ok(objects)
}

/// Creates the bootstrap objects that are missing and brings back those
/// changed while their autoupdate annotation is "true" (rules and subjects
/// of aggregated roles are left to aggregation).
pub async fn reconcile(registry: &Registry) -> Result<(), skiff_api::ApiError> {
    let objects = objects().map_err(|e| skiff_api::ApiError::internal(e.to_string()))?;
    let opts = WriteOptions {
        field_manager: "skiff-rbac-bootstrap".into(),
        ..Default::default()
    };
    for wanted in objects {
        let api_version = wanted["apiVersion"].as_str().unwrap_or_default();
        let kind = wanted["kind"].as_str().unwrap_or_default();
        let Some(rt) = by_kind(api_version, kind) else {
            continue;
        };
        let name = skiff_api::meta::name(&wanted)
            .unwrap_or_default()
            .to_string();
        match registry.try_get(rt, "", &name)? {
            None => match registry.create(rt, "", wanted, &opts).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::AlreadyExists => {}
                Err(e) => return Err(e),
            },
            Some(existing) => {
                let autoupdate = existing["metadata"]["annotations"][AUTOUPDATE_ANNOTATION]
                    .as_str()
                    .unwrap_or("true");
                if autoupdate != "true" {
                    continue;
                }
                let mut updated = existing.clone();
                let aggregated = wanted.get("aggregationRule").is_some();
                for field in ["rules", "roleRef", "subjects", "aggregationRule"] {
                    if field == "rules" && aggregated {
                        continue;
                    }
                    match wanted.get(field) {
                        Some(v) => updated[field] = v.clone(),
                        None => {
                            if let Some(map) = updated.as_object_mut() {
                                map.remove(field);
                            }
                        }
                    }
                }
                for part in ["labels", "annotations"] {
                    if let Some(map) = wanted["metadata"][part].as_object() {
                        for (k, v) in map {
                            updated["metadata"][part][k] = v.clone();
                        }
                    }
                }
                if updated != existing {
                    registry
                        .update(rt, "", &name, updated, Subresource::Main, &opts)
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// The rules an aggregated ClusterRole gets from `roles`: those of every
/// other ClusterRole its selectors match, in name order, without repeats.
/// `None` for a role without an `aggregationRule`.
pub fn aggregated_rules(role: &Value, roles: &[Value]) -> Option<Vec<Value>> {
    let selectors = role.get("aggregationRule")?.get("clusterRoleSelectors")?;
    let selectors: Vec<LabelSelector> = selectors
        .as_array()?
        .iter()
        .filter_map(|s| LabelSelector::from_object(s).ok())
        .collect();
    let me = skiff_api::meta::name(role).unwrap_or_default();
    let mut sources: Vec<&Value> = roles
        .iter()
        .filter(|r| skiff_api::meta::name(r).unwrap_or_default() != me)
        .filter(|r| {
            let labels = r["metadata"]["labels"].as_object();
            selectors.iter().any(|s| s.matches_labels(labels))
        })
        .collect();
    sources.sort_by_key(|r| skiff_api::meta::name(r).unwrap_or_default().to_string());
    let mut rules: Vec<Value> = Vec::new();
    for source in sources {
        for rule in source["rules"].as_array().into_iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

/// Fills every aggregated role of `roles` until nothing changes (an
/// aggregated role may select another: admin selects edit).
pub fn aggregate_all(roles: &mut [Value]) {
    for _ in 0..=roles.len() {
        let mut changed = false;
        for i in 0..roles.len() {
            if let Some(rules) = aggregated_rules(&roles[i], roles) {
                let rules = Value::Array(rules);
                if roles[i].get("rules") != Some(&rules) {
                    roles[i]["rules"] = rules;
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}
