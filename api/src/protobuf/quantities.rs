//! Every `resource.Quantity` of an object rewritten in its canonical form, as
//! Kubernetes stores it after decoding the object into its Go type
//! (`memory: 1048576` becomes `"1048576"`, `cpu: "1000m"` becomes `"1"`).
//!
//! Where the quantities are comes from the kind's protobuf schema, the exact
//! Go types: the walk follows the object's JSON along its messages and only
//! enters fields with a `Quantity` somewhere below them. It runs on every
//! write, so it allocates nothing unless a value changes. A value that is not
//! a quantity is left as written, for validation to report.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::message::{Card, MAX_DEPTH, Message, Special, Ty};
use crate::generated::protobuf_schema::{KINDS, MESSAGES};
use crate::quantity::canonical;
use crate::resource::ResourceType;

/// Rewrites every quantity of `obj`, an object of `rt`, to its canonical
/// string. Kinds without a schema (Skiff's `Component`) are left alone.
pub(crate) fn canonicalize_quantities(rt: &ResourceType, obj: &mut Value) {
    if let Some(index) = kind_message(rt) {
        walk(index, obj, 0);
    }
}

/// The schema message of `rt`'s kind.
fn kind_message(rt: &ResourceType) -> Option<u16> {
    KINDS
        .iter()
        .find(|(api_version, kind, _)| {
            *kind == rt.kind
                && match api_version.split_once('/') {
                    Some((group, version)) => group == rt.group && version == rt.version,
                    None => rt.group.is_empty() && *api_version == rt.version,
                }
        })
        .map(|(_, _, index)| *index)
}

/// Whether the message at each index has a `Quantity` at or below it.
fn has_quantity(index: u16) -> bool {
    static HAS_QUANTITY: OnceLock<Vec<bool>> = OnceLock::new();
    let has = HAS_QUANTITY.get_or_init(|| {
        let mut has: Vec<bool> = MESSAGES
            .iter()
            .map(|m| m.special == Special::Quantity)
            .collect();
        // To a fixed point, as messages may refer to each other in cycles.
        let mut changed = true;
        while changed {
            changed = false;
            for (i, msg) in MESSAGES.iter().enumerate() {
                if has[i] {
                    continue;
                }
                let below = msg.fields.iter().any(|f| match f.ty {
                    Ty::Message(j) => has.get(usize::from(j)).copied().unwrap_or(false),
                    _ => false,
                });
                if below {
                    has[i] = true;
                    changed = true;
                }
            }
        }
        has
    });
    has.get(usize::from(index)).copied().unwrap_or(false)
}

fn walk(index: u16, value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH || !has_quantity(index) {
        return;
    }
    let Some(msg) = MESSAGES.get(usize::from(index)) else {
        return;
    };
    match (msg.special, value) {
        (Special::Quantity, value) => canonicalize(value),
        (Special::None, Value::Object(map)) => walk_fields(msg, map, depth),
        _ => {}
    }
}

fn walk_fields(msg: &Message, map: &mut Map<String, Value>, depth: usize) {
    for field in msg.fields {
        let Ty::Message(index) = field.ty else {
            continue;
        };
        if !has_quantity(index) {
            continue;
        }
        match field.card {
            // An embedded struct's fields are the parent's own.
            Card::Inline => {
                if let Some(inner) = MESSAGES.get(usize::from(index))
                    && inner.special == Special::None
                    && depth < MAX_DEPTH
                {
                    walk_fields(inner, map, depth + 1);
                }
            }
            Card::Optional | Card::Always => {
                if let Some(v) = map.get_mut(field.json) {
                    walk(index, v, depth + 1);
                }
            }
            Card::Repeated => {
                if let Some(Value::Array(items)) = map.get_mut(field.json) {
                    for item in items {
                        walk(index, item, depth + 1);
                    }
                }
            }
            Card::Map => {
                if let Some(Value::Object(entries)) = map.get_mut(field.json) {
                    for v in entries.values_mut() {
                        walk(index, v, depth + 1);
                    }
                }
            }
        }
    }
}

/// One quantity in canonical form: a string as Kubernetes prints it, a number
/// as the string of its decimal text.
fn canonicalize(value: &mut Value) {
    let text = match value {
        Value::String(s) => match canonical(s) {
            Some(c) if c != s.as_str() => c.into_owned(),
            _ => return,
        },
        Value::Number(n) => {
            let written = n.to_string();
            match canonical(&written) {
                Some(c) => c.into_owned(),
                None => return,
            }
        }
        _ => return,
    };
    *value = Value::String(text);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resource::by_kind;

    fn canonicalized(api_version: &str, kind: &str, mut obj: Value) -> Value {
        let rt = by_kind(api_version, kind).unwrap();
        canonicalize_quantities(rt, &mut obj);
        obj
    }

    #[test]
    fn every_served_kind_with_quantities_is_found() {
        for (api_version, kind) in [
            ("v1", "Pod"),
            ("v1", "Node"),
            ("v1", "ResourceQuota"),
            ("v1", "LimitRange"),
            ("v1", "PersistentVolumeClaim"),
            ("apps/v1", "Deployment"),
            ("batch/v1", "CronJob"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ] {
            let rt = by_kind(api_version, kind).unwrap();
            let index = kind_message(rt).unwrap();
            assert!(has_quantity(index), "{kind}");
        }
        let config_map = kind_message(by_kind("v1", "ConfigMap").unwrap()).unwrap();
        assert!(!has_quantity(config_map));
    }

    #[test]
    fn hpa_targets_and_pvc_requests() {
        let hpa = canonicalized(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "qps"},
                    "target": {"type": "AverageValue", "averageValue": 1000}}},
                {"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "2048Mi"}}}
            ]}}),
        );
        assert_eq!(
            hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"],
            "1k"
        );
        assert_eq!(
            hpa["spec"]["metrics"][1]["resource"]["target"]["averageValue"],
            "2Gi"
        );

        let pvc = canonicalized(
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {"resources": {"requests": {"storage": "1024Mi"}}}}),
        );
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    }

    #[test]
    fn wrong_shapes_are_left_alone() {
        let pod = json!({"spec": {"containers": {"not": "a list"},
            "overhead": [1, 2], "volumes": [{"emptyDir": {"sizeLimit": true}}]}});
        assert_eq!(canonicalized("v1", "Pod", pod.clone()), pod);
    }
}
