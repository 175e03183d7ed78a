//! A pod template's identity: its canonical form and its hash, the
//! `pod-template-hash` that names a Deployment's ReplicaSets.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Value, json};

use super::POD_TEMPLATE_HASH;

/// A pod template in a canonical form, for hashing and comparing: keys in a
/// fixed order, and null, empty-object and empty-array fields dropped (typed
/// Kubernetes objects cannot tell them from absent ones, and kubectl's
/// `rollout undo` sends `creationTimestamp: null`).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .filter(|(_, v)| !is_empty(v))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The template's hash as Kubernetes renders `pod-template-hash`: FNV-1a (32
/// bits) of the template, in the alphabet of `rand.SafeEncodeString`.
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let text = canonical(template).to_string();
    let mut hash: u32 = 0x811c_9dc5;
    for b in text.bytes().chain(collision_count.to_string().bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d - b'0') % ALPHABET.len()] as char)
        .collect()
}

/// A typed template as the JSON it is stored as.
pub fn as_json(template: &PodTemplateSpec) -> Value {
    serde_json::to_value(template).unwrap_or(Value::Null)
}

/// A typed template's identity: what two templates must share to be the
/// same, the `pod-template-hash` label aside (Kubernetes' `EqualIgnoreHash`,
/// where empty and absent are equal too).
pub fn identity(template: Option<&PodTemplateSpec>) -> Value {
    without_hash(template.map(as_json).as_ref())
}

/// The template without the `pod-template-hash` label (to compare templates).
pub fn without_hash(template: Option<&Value>) -> Value {
    let mut t = template.cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty()
            && let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("labels");
        }
    }
    canonical(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_hash_ignores_key_order_and_the_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "hello:v1"}]}});
        let b = json!({"spec": {"containers": [{"image": "hello:v1", "name": "c", "env": []}]},
            "metadata": {"labels": {"app": "web"}, "creationTimestamp": null}});
        assert_eq!(template_hash(&a, 0), template_hash(&b, 0));
        assert_eq!(without_hash(Some(&a)), without_hash(Some(&b)));
        assert_ne!(template_hash(&a, 0), template_hash(&a, 1));
        let mut labeled = a.clone();
        labeled["metadata"]["labels"][POD_TEMPLATE_HASH] = json!("x");
        assert_eq!(without_hash(Some(&labeled)), without_hash(Some(&a)));
        assert!(
            template_hash(&a, 0)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    /// A Deployment's template, as stored, read as k8s-openapi's
    /// `PodTemplateSpec` and written back, keeps its hash: the typed
    /// controller names new ReplicaSets as the JSON one did. Quantities sent
    /// as JSON numbers (`memory: 1048576`, `cpu: 0.25`) are stored as their
    /// canonical strings, as Kubernetes stores them, so they round-trip too.
    #[test]
    fn a_typed_round_trip_keeps_the_template_hash() {
        use k8s_openapi::api::core::v1::PodTemplateSpec;
        use skiff_api::validate::{FieldValidation, decode_and_prune};

        let rt = skiff_api::resource::by_kind("apps/v1", "Deployment").unwrap();
        let manifest = include_str!("../../../../../tests/manifests/app.yaml");
        let from_manifest = manifest
            .split("\n---")
            .map(|doc| serde_yaml_ng::from_str::<Value>(doc).unwrap())
            .find(|doc| doc["kind"] == "Deployment")
            .unwrap();
        let wide = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "wide"},
            "spec": {"selector": {"matchLabels": {"app": "wide"}}, "template": {
                "metadata": {"labels": {"app": "wide"}, "annotations": {"a": "b"}, "creationTimestamp": null},
                "spec": {"containers": [{"name": "c", "image": "hello:v1",
                    "args": ["--x"], "env": [{"name": "N", "value": "1"}],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "1Mi"}, "requests": {"cpu": 0.25, "memory": 1048576}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]}],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "64Mi"}}],
                    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
                    "terminationGracePeriodSeconds": 5}}}});
        for mut d in [from_manifest, wide] {
            decode_and_prune(rt, &mut d, FieldValidation::Strict).unwrap();
            skiff_api::defaults::apply(rt, &mut d);
            let stored = d["spec"]["template"].clone();
            let typed: PodTemplateSpec = serde_json::from_value(stored.clone()).unwrap();
            let back = serde_json::to_value(&typed).unwrap();
            assert_eq!(
                template_hash(&stored, 0),
                template_hash(&back, 0),
                "{stored}\n{back}"
            );
            assert_eq!(without_hash(Some(&stored)), without_hash(Some(&back)));
        }
    }
}
