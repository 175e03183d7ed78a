//! The ConfigMaps and Secrets this node's pods refer to, as the control plane
//! sends them (only those; it takes them back when the last pod using one
//! goes). Held in memory only: a Secret's value is never written to this
//! node's disk by holding it. Containers waiting for one that is missing wait
//! on [`PodObjects::changed`] and try again when it arrives.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;
use skiff_api::wire::ObjectName;
use tokio::sync::watch;

/// One object held.
#[derive(Clone)]
enum Held {
    ConfigMap(Arc<ConfigMap>),
    Secret(Arc<Secret>),
}

/// The objects held, and a counter bumped on every change.
pub struct PodObjects {
    held: Mutex<HashMap<ObjectName, Held>>,
    version: watch::Sender<u64>,
}

impl Default for PodObjects {
    fn default() -> Self {
        PodObjects {
            held: Mutex::default(),
            version: watch::Sender::new(0),
        }
    }
}

/// A lookup that failed: Kubernetes' words for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} \"{name}\" not found")]
pub(super) struct NotFound {
    /// `configmap` or `secret`, as the kubelet's managers name them.
    kind: &'static str,
    name: String,
}

impl PodObjects {
    /// Holds `object` (a ConfigMap or Secret), replacing the one of its name.
    /// An object that does not decode is dropped with a warning: the API
    /// server validated it, so that means a version skew.
    pub fn upsert(&self, object: Value) {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let held = match kind {
            "ConfigMap" => serde_json::from_value(object).map(|o| Held::ConfigMap(Arc::new(o))),
            "Secret" => serde_json::from_value(object).map(|o| Held::Secret(Arc::new(o))),
            other => {
                tracing::warn!(
                    kind = other,
                    "ignoring an object of a kind pods do not refer to"
                );
                return;
            }
        };
        let held = match held {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an object this node cannot read");
                return;
            }
        };
        let Some(name) = name_of(&held) else {
            return;
        };
        super::lock(&self.held).insert(name, held);
        self.bump();
    }

    /// Forgets one object.
    pub fn remove(&self, name: &ObjectName) {
        if super::lock(&self.held).remove(name).is_some() {
            self.bump();
        }
    }

    /// Forgets every object not in `names`.
    pub fn keep_only(&self, names: &[ObjectName]) {
        let keep: HashSet<&ObjectName> = names.iter().collect();
        let mut held = super::lock(&self.held);
        let before = held.len();
        held.retain(|name, _| keep.contains(name));
        let changed = held.len() != before;
        drop(held);
        if changed {
            self.bump();
        }
    }

    /// How many objects are held (for tests and metrics).
    pub fn len(&self) -> usize {
        super::lock(&self.held).len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ticks on every change of what is held.
    pub(super) fn changed(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The ConfigMap `namespace/name`.
    pub(super) fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<ConfigMap>, NotFound> {
        match self.get("ConfigMap", namespace, name) {
            Some(Held::ConfigMap(c)) => Ok(c),
            _ => Err(NotFound {
                kind: "configmap",
                name: name.to_string(),
            }),
        }
    }

    /// The Secret `namespace/name`.
    pub(super) fn secret(&self, namespace: &str, name: &str) -> Result<Arc<Secret>, NotFound> {
        match self.get("Secret", namespace, name) {
            Some(Held::Secret(s)) => Ok(s),
            _ => Err(NotFound {
                kind: "secret",
                name: name.to_string(),
            }),
        }
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Held> {
        let key = ObjectName {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        super::lock(&self.held).get(&key).cloned()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

fn name_of(held: &Held) -> Option<ObjectName> {
    let (kind, meta) = match held {
        Held::ConfigMap(c) => ("ConfigMap", &c.metadata),
        Held::Secret(s) => ("Secret", &s.metadata),
    };
    Some(ObjectName {
        kind: kind.to_string(),
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_are_found_by_kind_and_forgotten() {
        let objects = PodObjects::default();
        let changed = objects.changed();
        objects.upsert(
            json!({"kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "a"},
                              "data": {"k": "v"}}),
        );
        objects.upsert(
            json!({"kind": "Secret", "metadata": {"namespace": "ns", "name": "b"},
                              "data": {"k": "dg=="}}),
        );
        assert!(changed.has_changed().unwrap_or(false));
        let cm = objects.config_map("ns", "a").expect("held");
        assert_eq!(
            cm.data
                .as_ref()
                .and_then(|d| d.get("k"))
                .map(String::as_str),
            Some("v")
        );
        let secret = objects.secret("ns", "b").expect("held");
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(|b| b.0.clone());
        assert_eq!(value.as_deref(), Some(&b"v"[..]), "decoded from base64");
        assert_eq!(
            objects
                .secret("ns", "a")
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "secret \"a\" not found"
        );
        assert_eq!(
            objects
                .config_map("other", "a")
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "configmap \"a\" not found"
        );
        objects.keep_only(&[ObjectName {
            kind: "Secret".into(),
            namespace: "ns".into(),
            name: "b".into(),
        }]);
        assert!(objects.config_map("ns", "a").is_err());
        assert_eq!(objects.len(), 1);
    }
}
