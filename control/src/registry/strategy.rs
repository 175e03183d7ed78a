//! Per-kind rules of the lifecycle: what the server owns, when `generation`
//! moves, what a new object's status starts as (Kubernetes' "strategies").

use serde_json::{Map, Value, json};
use skiff_api::json::{Pointer as _, equal_except};
use skiff_api::meta;
use skiff_api::resource::ResourceType;

/// Kinds whose `metadata.generation` counts spec changes (the ones with a
/// controller that reports `status.observedGeneration`).
pub fn tracks_generation(rt: &ResourceType) -> bool {
    matches!(
        rt.group,
        "apps" | "batch" | "autoscaling" | "networking.k8s.io" | "policy"
    ) || matches!(rt.kind, "Pod" | "PersistentVolumeClaim")
}

/// The taints a node gets when it is lost (Ready=Unknown) or not ready.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Skiff's default `tolerationSeconds` for those taints. Kubernetes waits
/// 300 s; Skiff's failover budget (a lost node's pods running elsewhere within
/// 5 s, DESIGN.md) leaves 1 s after the node grace period.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 1;

/// Kubernetes' DefaultTolerationSeconds admission: a pod that does not
/// tolerate the not-ready and unreachable NoExecute taints itself gets a
/// toleration of each for `seconds`, so its node's loss evicts it after that.
pub fn add_default_tolerations(pod: &mut Value, seconds: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        return; // Validation reports it.
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        let covered = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let t_key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
            (effect.is_empty() || effect == "NoExecute")
                && (t_key == key || (t_key.is_empty() && exists))
        });
        if !covered {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": seconds,
            }));
        }
    }
}

/// Server-side defaults and initial status of a new object.
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    if rt.status_subresource {
        // Clients do not set status on create; controllers report it later.
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    }
    skiff_api::defaults::apply(rt, obj);
    match rt.kind {
        "Namespace" => {
            set_path(obj, &["status", "phase"], json!("Active"));
            if obj.at("/spec/finalizers").is_none() {
                set_path(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            }
        }
        "Pod" => {
            set_path(obj, &["status", "phase"], json!("Pending"));
            set_path(
                obj,
                &["status", "qosClass"],
                json!(skiff_api::defaults::qos_class(obj)),
            );
        }
        "Secret" => merge_string_data(obj),
        _ => {}
    }
    // Kubernetes answers a create with the kind's empty status, and clients
    // read it at once (`deployment.status.ready_replicas`).
    if rt.status_subresource && obj.get("status").is_none_or(|s| !s.is_object()) {
        let empty = match rt.kind {
            "Service" => json!({"loadBalancer": {}}),
            _ => json!({}),
        };
        set_path(obj, &["status"], empty);
    }
}

/// A Secret's `stringData` is write-only: the API server folds it into `data`
/// (base64), its keys winning, and stores no `stringData`.
pub fn merge_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                base64::engine::general_purpose::STANDARD
                    .encode(text)
                    .into(),
            );
        }
    }
}

/// A write to the main resource leaves status as it was.
pub fn keep_status(old: &Value, new: &mut Value) {
    let Some(map) = new.as_object_mut() else {
        return;
    };
    match old.get("status") {
        Some(status) => {
            map.insert("status".into(), status.clone());
        }
        None => {
            map.remove("status");
        }
    }
}

/// A write to the status subresource changes only status (and, as in
/// Kubernetes, nothing of spec or metadata).
pub fn status_update(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    if let (Some(map), Some(status)) = (out.as_object_mut(), new.get("status")) {
        map.insert("status".into(), status.clone());
    }
    // Carry the client's resourceVersion precondition through.
    if let Some(rv) = meta::resource_version(new) {
        meta::set(&mut out, "resourceVersion", rv.to_string());
    }
    out
}

/// Fields only the server sets keep their stored values.
pub fn keep_server_fields(rt: &ResourceType, old: &Value, new: &mut Value) {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old.get("metadata").and_then(|m| m.get(field)) {
            Some(v) => meta::set(new, field, v.clone()),
            None => {
                meta::remove(new, field);
            }
        }
    }
    for field in ["name", "namespace"] {
        if let Some(v) = old.get("metadata").and_then(|m| m.get(field)) {
            meta::set(new, field, v.clone());
        }
    }
    if let Some(map) = new.as_object_mut() {
        map.insert("apiVersion".into(), rt.api_version().into());
        map.insert("kind".into(), rt.kind.into());
    }
}

/// Bumps `generation` when anything but metadata and status changed.
pub fn prepare_for_update(rt: &ResourceType, old: &Value, new: &mut Value) {
    if rt.kind == "Secret" && rt.group.is_empty() {
        merge_string_data(new);
    }
    if !tracks_generation(rt) {
        return;
    }
    if spec_of(old) != spec_of(new) {
        meta::set(new, "generation", meta::generation(old) + 1);
    }
}

/// Whether an update would change nothing a client can see (then nothing is
/// written and `resourceVersion` does not move, as in Kubernetes).
pub fn unchanged(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    if !equal_except(old, new, &["metadata"]) {
        return false;
    }
    match (old.get("metadata"), new.get("metadata")) {
        (Some(Value::Object(old)), Some(Value::Object(new))) => {
            equal_except(old, new, &["resourceVersion", "managedFields"])
                && same_ownership(old.get("managedFields"), new.get("managedFields"))
        }
        (old, new) => old == new,
    }
}

/// Whether two `managedFields` record the same ownership: timestamps move on
/// every write; the ownership itself counts.
fn same_ownership(old: Option<&Value>, new: Option<&Value>) -> bool {
    match (old, new) {
        (Some(Value::Array(old)), Some(Value::Array(new))) => {
            old.len() == new.len()
                && old.iter().zip(new).all(|(a, b)| match (a, b) {
                    (Value::Object(a), Value::Object(b)) => equal_except(a, b, &["time"]),
                    _ => a == b,
                })
        }
        (old, new) => old == new,
    }
}

/// Everything but `metadata` and `status`.
fn spec_of(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets a nested field, creating objects on the way; stops at a non-object.
pub fn set_path(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for part in parents {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = cur.as_object_mut() {
        map.insert(last.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_the_lost_node_tolerations_unless_they_have_their_own() {
        let mut pod = json!({"spec": {"containers": []}});
        add_default_tolerations(&mut pod, 2);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
                {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
            ])
        );
        let own = json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60});
        let mut pod = json!({"spec": {"tolerations": [own.clone()]}});
        add_default_tolerations(&mut pod, 2);
        let list = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], own);
        assert_eq!(list[1]["key"], TAINT_NOT_READY);
        let mut anything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut anything, 2);
        assert_eq!(
            anything["spec"]["tolerations"].as_array().map(Vec::len),
            Some(1)
        );
    }

    /// A write that changes only what every write changes (the revision, the
    /// managedFields times) is no change: nothing is stored and
    /// `resourceVersion` stays, as in Kubernetes.
    #[test]
    fn a_write_of_the_same_object_is_unchanged() {
        let stored = json!({
            "metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "1"},
                         "managedFields": [{"manager": "kubectl", "time": "2026-12-04T00:00:00Z"}]},
            "data": {"k": "v"},
        });
        let mut again = stored.clone();
        again["metadata"]["resourceVersion"] = json!("8");
        again["metadata"]["managedFields"][0]["time"] = json!("2026-12-04T01:00:00Z");
        assert!(unchanged(&stored, &again));

        let mut relabelled = again.clone();
        relabelled["metadata"]["labels"]["x"] = json!("2");
        assert!(!unchanged(&stored, &relabelled));
        let mut new_data = again.clone();
        new_data["data"]["k"] = json!("w");
        assert!(!unchanged(&stored, &new_data));
        let mut other_owner = again.clone();
        other_owner["metadata"]["managedFields"][0]["manager"] = json!("skiff");
        assert!(!unchanged(&stored, &other_owner));
        let mut without_metadata = again;
        without_metadata
            .as_object_mut()
            .map(|m| m.remove("metadata"));
        assert!(!unchanged(&stored, &without_metadata));
    }
}
