//! The ConfigMaps and Secrets each node holds: exactly those its pods refer
//! to (the node authorizer's graph, [`super::super::node_authorizer`]), kept
//! current as the objects change, and forgotten by a node when its last pod
//! that refers to one goes. A Secret never reaches a node that runs no pod
//! using it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use skiff_api::meta;
use skiff_api::wire::{Downstream, ObjectName};

use crate::gateway::node_authorizer::{PodReferenceKind, pod_references};

/// The kinds a node is given, with the reference kind that names them.
pub(super) const KINDS: [(&str, PodReferenceKind); 2] = [
    ("ConfigMap", PodReferenceKind::ConfigMap),
    ("Secret", PodReferenceKind::Secret),
];

/// Every ConfigMap and Secret a pod refers to, each once.
pub(super) fn referenced(pod: &Value) -> Vec<ObjectName> {
    let namespace = meta::namespace(pod).unwrap_or_default();
    let mut names: Vec<ObjectName> = KINDS
        .iter()
        .flat_map(|(kind, reference)| {
            pod_references(pod, *reference).map(move |name| ObjectName {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The name of a stored ConfigMap or Secret.
pub(super) fn name_of(object: &Value) -> Option<ObjectName> {
    Some(ObjectName {
        kind: object.get("kind")?.as_str()?.to_string(),
        namespace: meta::namespace(object)?.to_string(),
        name: meta::name(object)?.to_string(),
    })
}

/// The objects, and which nodes hold which.
#[derive(Default)]
pub(super) struct Objects {
    /// Every ConfigMap and Secret, as last listed or watched.
    current: HashMap<ObjectName, Arc<Value>>,
    /// node -> object -> how many of the node's pods refer to it.
    held: HashMap<String, HashMap<ObjectName, usize>>,
}

impl Objects {
    /// `node` runs a new pod referring to `names`: the objects it did not hold
    /// yet, to send before the pod.
    pub(super) fn refer(&mut self, node: &str, names: Vec<ObjectName>) -> Vec<Downstream> {
        let held = self.held.entry(node.to_string()).or_default();
        let mut sends = Vec::new();
        for name in names {
            let count = held.entry(name.clone()).or_insert(0);
            *count += 1;
            if *count == 1
                && let Some(object) = self.current.get(&name)
            {
                sends.push(upsert(object));
            }
        }
        sends
    }

    /// A pod of `node` referring to `names` is gone: what the node must forget.
    pub(super) fn release(&mut self, node: &str, names: Vec<ObjectName>) -> Vec<Downstream> {
        let Some(held) = self.held.get_mut(node) else {
            return Vec::new();
        };
        let mut sends = Vec::new();
        for name in names {
            let Some(count) = held.get_mut(&name) else {
                continue;
            };
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&name);
                sends.push(Downstream::ObjectRemove(name));
            }
        }
        if held.is_empty() {
            self.held.remove(node);
        }
        sends
    }

    /// Forgets which objects nodes hold (the pods are being listed again).
    pub(super) fn clear_held(&mut self) {
        self.held.clear();
    }

    /// An object was added or changed: the nodes holding it, with the upsert.
    pub(super) fn put(&mut self, object: Arc<Value>) -> Vec<(String, Downstream)> {
        let Some(name) = name_of(&object) else {
            return Vec::new();
        };
        let sends = self
            .holders(&name)
            .map(|node| (node, upsert(&object)))
            .collect();
        self.current.insert(name, object);
        sends
    }

    /// An object was deleted: the nodes holding it, told to forget it. They
    /// still count it as referred to, and get it again if it comes back.
    pub(super) fn delete(&mut self, object: &Value) -> Vec<(String, Downstream)> {
        let Some(name) = name_of(object) else {
            return Vec::new();
        };
        self.current.remove(&name);
        self.holders(&name)
            .map(|node| (node, Downstream::ObjectRemove(name.clone())))
            .collect()
    }

    /// Replaces every object of `kind` with `objects` (a fresh list).
    pub(super) fn replace_kind(&mut self, kind: &str, objects: Vec<Value>) {
        self.current.retain(|name, _| name.kind != kind);
        for object in objects {
            if let Some(name) = name_of(&object) {
                self.current.insert(name, Arc::new(object));
            }
        }
    }

    /// What `node` must hold, from nothing: every object it refers to that
    /// exists, then the list of them.
    pub(super) fn snapshot(&self, node: &str) -> Vec<Downstream> {
        let mut sends = Vec::new();
        let mut names = Vec::new();
        for name in self.held.get(node).into_iter().flat_map(|h| h.keys()) {
            if let Some(object) = self.current.get(name) {
                sends.push(upsert(object));
                names.push(name.clone());
            }
        }
        names.sort();
        sends.push(Downstream::ObjectsHeld { objects: names });
        sends
    }

    fn holders<'a>(&'a self, name: &'a ObjectName) -> impl Iterator<Item = String> + 'a {
        self.held
            .iter()
            .filter(move |(_, held)| held.contains_key(name))
            .map(|(node, _)| node.clone())
    }
}

fn upsert(object: &Arc<Value>) -> Downstream {
    Downstream::ObjectUpsert {
        object: Value::clone(object),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(uses: Value) -> Value {
        json!({"metadata": {"namespace": "ns", "name": "p"},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "env": uses}]}})
    }

    fn config_map(name: &str, value: &str) -> Arc<Value> {
        Arc::new(
            json!({"kind": "ConfigMap", "metadata": {"namespace": "ns", "name": name},
                        "data": {"k": value}}),
        )
    }

    fn secret_env(name: &str) -> Value {
        json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": name, "key": "k"}}}])
    }

    fn names(sends: &[Downstream]) -> Vec<String> {
        sends
            .iter()
            .map(|d| match d {
                Downstream::ObjectUpsert { object } => {
                    format!("+{}", meta::name(object).unwrap_or_default())
                }
                Downstream::ObjectRemove(n) => format!("-{}", n.name),
                Downstream::ObjectsHeld { objects } => format!(
                    "={}",
                    objects
                        .iter()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_pod_refers_to_each_object_once_with_its_kind() {
        let p = pod(json!([
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}},
            {"name": "C", "valueFrom": {"secretKeyRef": {"name": "cfg", "key": "c"}}},
        ]));
        let refs = referenced(&p);
        let kinds: Vec<_> = refs
            .iter()
            .map(|n| format!("{}/{}/{}", n.kind, n.namespace, n.name))
            .collect();
        assert_eq!(kinds, ["ConfigMap/ns/cfg", "Secret/ns/cfg"]);
    }

    /// A node gets an object with its first pod that uses it, keeps it while
    /// any pod does, and forgets it with the last; a node running no pod
    /// that uses a Secret never gets it, even when it changes.
    #[test]
    fn a_node_holds_an_object_while_one_of_its_pods_uses_it() {
        let mut objects = Objects::default();
        objects.put(config_map("db", "v1"));
        let db = referenced(&pod(secret_env("db")));
        assert!(
            names(&objects.refer("n1", db.clone())).is_empty(),
            "a Secret db does not exist yet; the ConfigMap db is not referred to"
        );
        let uses = |name: &str| {
            referenced(&pod(
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": name, "key": "k"}}}]),
            ))
        };
        assert_eq!(names(&objects.refer("n1", uses("db"))), ["+db"]);
        assert!(objects.refer("n1", uses("db")).is_empty(), "held already");
        let changed = objects.put(config_map("db", "v2"));
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, "n1");
        assert!(objects.put(config_map("other", "x")).is_empty());
        assert!(objects.release("n1", uses("db")).is_empty(), "one pod left");
        assert_eq!(names(&objects.release("n1", uses("db"))), ["-db"]);
        assert!(
            objects.put(config_map("db", "v3")).is_empty(),
            "n1 forgot it"
        );
        assert_eq!(names(&objects.snapshot("n1")), ["="]);
    }

    #[test]
    fn a_snapshot_sends_what_exists_then_names_it() {
        let mut objects = Objects::default();
        objects.replace_kind("ConfigMap", vec![(*config_map("a", "1")).clone()]);
        let uses = referenced(&pod(json!([
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "a", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}},
        ])));
        objects.refer("n1", uses);
        assert_eq!(names(&objects.snapshot("n1")), ["+a", "=a"]);
        let gone = objects.delete(&config_map("a", "1"));
        assert_eq!(names(&[gone[0].1.clone()]), ["-a"]);
        assert_eq!(names(&objects.snapshot("n1")), ["="]);
    }
}
