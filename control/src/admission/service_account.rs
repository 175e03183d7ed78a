//! ServiceAccount admission for pods, as Kubernetes' `serviceaccount` plugin
//! (`plugin/pkg/admission/serviceaccount/admission.go`): a pod runs as the
//! ServiceAccount it names, or as `default`; one that names a ServiceAccount
//! that does not exist is refused.

use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::ApiError;

use super::forbidden;
use crate::registry::{Registry, Result};

/// The ServiceAccount every namespace has and pods run as unless they say.
pub const DEFAULT: &str = "default";

/// How often, and how far apart, `default` is looked up again before a pod
/// is refused: its controller may be about to create it (Kubernetes: 10
/// attempts, 100-200 ms apart).
const DEFAULT_ATTEMPTS: u32 = 10;
const RETRY_INTERVAL: Duration = Duration::from_millis(150);

/// The ServiceAccount kind.
pub fn service_account_type() -> Result<&'static ResourceType> {
    by_kind("v1", "ServiceAccount").ok_or_else(|| ApiError::internal("no ServiceAccount kind"))
}

/// The `default` ServiceAccount of `namespace`, as a create would store it.
pub fn default_object(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": DEFAULT,
            "namespace": namespace,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": meta::now_timestamp(),
        },
    })
}

/// Sets `spec.serviceAccountName` (from the deprecated `spec.serviceAccount`
/// when only that is given, else `default`) and mirrors it into
/// `spec.serviceAccount`, as the v1 conversion fills it.
pub fn default_name(pod: &mut Value) {
    let named = |field: &str| {
        pod.at(&format!("/spec/{field}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = named("serviceAccountName")
        .or_else(|| named("serviceAccount"))
        .unwrap_or_else(|| DEFAULT.to_string());
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("serviceAccountName".into(), name.clone().into());
        spec.insert("serviceAccount".into(), name.into());
    }
}

/// Refuses the pod if the ServiceAccount it runs as does not exist.
pub async fn check_exists(registry: &Registry, rt: &ResourceType, pod: &Value) -> Result<()> {
    let sa_type = service_account_type()?;
    let namespace = meta::namespace(pod).unwrap_or_default();
    let name = pod
        .at("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT);
    let attempts = if name == DEFAULT { DEFAULT_ATTEMPTS } else { 1 };
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
        if registry.try_get(sa_type, namespace, name)?.is_some() {
            return Ok(());
        }
    }
    Err(forbidden(
        rt,
        meta::name(pod).unwrap_or_default(),
        format!(
            "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_runs_as_default_unless_it_names_an_account() {
        let mut pod = json!({"spec": {"containers": []}});
        default_name(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["serviceAccount"], "default");
        let mut pod = json!({"spec": {"serviceAccount": "builder"}});
        default_name(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], "builder");
        let mut pod = json!({"spec": {"serviceAccountName": "app", "serviceAccount": "old"}});
        default_name(&mut pod);
        assert_eq!(pod["spec"]["serviceAccount"], "app");
    }
}
