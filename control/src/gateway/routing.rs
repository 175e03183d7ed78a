//! What every node's proxy routes by: the Services, EndpointSlices, Nodes
//! (each Node reduced to its name, addresses and daemon endpoints) and the
//! Ingresses Skiff serves (an Ingress that moves to another class is removed
//! from the nodes), fanned out from the watch caches to every node session: a
//! snapshot when the session opens, then changes.
//!
//! Objects are reduced to what a proxy reads and sent only when that changed,
//! so that a Node's heartbeats or an object's bookkeeping (managedFields,
//! resourceVersion) cost the sessions nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use skiff_api::ingress::is_skiff_ingress;
use skiff_api::meta;
use skiff_api::wire::Downstream;
use tokio::sync::mpsc;

use crate::informer::{Change, Informer};
use crate::store::EventType;

/// (kind, namespace, name).
type Key = (String, String, String);

#[derive(Default)]
struct State {
    objects: HashMap<Key, Value>,
    subscribers: HashMap<u64, mpsc::UnboundedSender<Downstream>>,
    next_id: u64,
}

/// The routing objects, kept current from the watch caches.
#[derive(Clone, Default)]
pub struct RoutingFeed {
    state: Arc<Mutex<State>>,
}

/// A session's subscription; unsubscribes when dropped.
pub struct RoutingSubscription {
    pub changes: mpsc::UnboundedReceiver<Downstream>,
    id: u64,
    feed: RoutingFeed,
}

impl Drop for RoutingSubscription {
    fn drop(&mut self) {
        self.feed.lock().subscribers.remove(&self.id);
    }
}

impl RoutingFeed {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes a session: its first message is a
    /// [`Downstream::RoutingSnapshot`], then every change after it.
    pub fn subscribe(&self) -> RoutingSubscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.lock();
        let objects = state.objects.values().cloned().collect();
        let _ = tx.send(Downstream::RoutingSnapshot { objects });
        state.next_id += 1;
        let id = state.next_id;
        state.subscribers.insert(id, tx);
        RoutingSubscription {
            changes: rx,
            id,
            feed: self.clone(),
        }
    }

    /// Follows the caches until they stop.
    pub async fn run(
        self,
        services: Informer,
        slices: Informer,
        nodes: Informer,
        ingresses: Informer,
    ) {
        let informers = [&services, &slices, &nodes, &ingresses];
        let mut feeds: Vec<_> = informers.iter().map(|i| i.subscribe()).collect();
        for informer in informers {
            informer.synced().await;
        }
        for informer in informers {
            self.resync(informer);
        }
        loop {
            let (index, change) = {
                let [s, e, n, i] = &mut feeds[..] else {
                    return;
                };
                tokio::select! {
                    c = s.next() => (0, c),
                    c = e.next() => (1, c),
                    c = n.next() => (2, c),
                    c = i.next() => (3, c),
                }
            };
            match change {
                Some(Change::Object {
                    event_type, object, ..
                }) => self.apply(event_type, &object),
                Some(Change::Resync) => self.resync(informers[index]),
                None => return,
            }
        }
    }

    fn apply(&self, event_type: EventType, object: &Value) {
        let Some(key) = key_of(object) else {
            return;
        };
        let mut state = self.lock();
        if event_type == EventType::Deleted || !routed(object) {
            if state.objects.remove(&key).is_some() {
                broadcast(&mut state, removed(&key));
            }
            return;
        }
        let reduced = reduce(object);
        if state.objects.get(&key) != Some(&reduced) {
            state.objects.insert(key, reduced.clone());
            broadcast(&mut state, Downstream::RoutingUpsert { object: reduced });
        }
    }

    /// Brings one kind in line with its cache: whatever differs is sent.
    fn resync(&self, informer: &Informer) {
        let kind = informer.resource().kind;
        let now: HashMap<Key, Value> = informer
            .list(None, |_| true)
            .iter()
            .filter(|o| routed(o))
            .filter_map(|o| Some((key_of(o)?, reduce(o))))
            .collect();
        let mut state = self.lock();
        let gone: Vec<Key> = state
            .objects
            .keys()
            .filter(|k| k.0 == kind && !now.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            state.objects.remove(&key);
            broadcast(&mut state, removed(&key));
        }
        for (key, object) in now {
            if state.objects.get(&key) != Some(&object) {
                state.objects.insert(key, object.clone());
                broadcast(&mut state, Downstream::RoutingUpsert { object });
            }
        }
    }
}

fn broadcast(state: &mut State, message: Downstream) {
    state
        .subscribers
        .retain(|_, tx| tx.send(message.clone()).is_ok());
}

fn removed(key: &Key) -> Downstream {
    Downstream::RoutingRemove {
        kind: key.0.clone(),
        namespace: key.1.clone(),
        name: key.2.clone(),
    }
}

fn key_of(object: &Value) -> Option<Key> {
    Some((
        object.get("kind")?.as_str()?.to_string(),
        meta::namespace(object).unwrap_or_default().to_string(),
        meta::name(object)?.to_string(),
    ))
}

/// Whether nodes route by `object`: an Ingress only when Skiff serves it.
fn routed(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) != Some("Ingress") || is_skiff_ingress(object)
}

/// What a proxy reads of an object.
fn reduce(object: &Value) -> Value {
    if object.get("kind").and_then(Value::as_str) == Some("Node") {
        return json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": meta::name(object).unwrap_or_default()},
            "status": {
                "addresses": object.pointer("/status/addresses").cloned().unwrap_or(json!([])),
                "daemonEndpoints": object.pointer("/status/daemonEndpoints").cloned().unwrap_or(json!({})),
            },
        });
    }
    let mut reduced = object.clone();
    if let Some(metadata) = reduced.get_mut("metadata").and_then(Value::as_object_mut) {
        let keep = ["name", "namespace", "uid", "labels", "annotations"];
        let kept: Map<String, Value> = metadata
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        *metadata = kept;
    }
    if reduced.get("kind").and_then(Value::as_str) == Some("Ingress")
        && let Some(fields) = reduced.as_object_mut()
    {
        // Written by the status controller: nothing a proxy reads.
        fields.remove("status");
    }
    reduced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(heartbeat: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "resourceVersion": heartbeat},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}],
                       "conditions": [{"type": "Ready", "lastHeartbeatTime": heartbeat}]}})
    }

    #[tokio::test]
    async fn a_session_gets_a_snapshot_then_only_what_a_proxy_would_notice() {
        let feed = RoutingFeed::default();
        feed.apply(EventType::Added, &node("1"));
        let mut sub = feed.subscribe();
        match sub.changes.recv().await {
            Some(Downstream::RoutingSnapshot { objects }) => {
                assert_eq!(objects.len(), 1);
                assert_eq!(objects[0]["status"]["addresses"][0]["address"], "127.0.0.2");
                assert!(objects[0]["status"].get("conditions").is_none());
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
        // A heartbeat changes nothing a proxy reads: nothing is sent.
        feed.apply(EventType::Modified, &node("2"));
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "managedFields": [{}], "resourceVersion": "9"},
            "spec": {"ports": [{"port": 80, "nodePort": 30080}]}});
        feed.apply(EventType::Added, &svc);
        match sub.changes.recv().await {
            Some(Downstream::RoutingUpsert { object }) => {
                assert_eq!(
                    object["metadata"],
                    json!({"name": "web", "namespace": "default"})
                );
                assert_eq!(object["spec"]["ports"][0]["nodePort"], 30080);
            }
            other => panic!("expected the Service, got {other:?}"),
        }
        feed.apply(EventType::Deleted, &svc);
        match sub.changes.recv().await {
            Some(Downstream::RoutingRemove {
                kind,
                namespace,
                name,
            }) => {
                assert_eq!(
                    (kind.as_str(), namespace.as_str(), name.as_str()),
                    ("Service", "default", "web")
                );
            }
            other => panic!("expected a removal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn only_skiffs_ingresses_reach_the_nodes() {
        let feed = RoutingFeed::default();
        let mut sub = feed.subscribe();
        assert!(matches!(
            sub.changes.recv().await,
            Some(Downstream::RoutingSnapshot { .. })
        ));
        let ingress = |class: &str| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "shop", "namespace": "default"},
                "spec": {"ingressClassName": class, "defaultBackend":
                    {"service": {"name": "web", "port": {"number": 80}}}},
                "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.2"}]}}})
        };
        feed.apply(EventType::Added, &ingress("nginx"));
        feed.apply(EventType::Modified, &ingress("skiff"));
        match sub.changes.recv().await {
            Some(Downstream::RoutingUpsert { object }) => {
                assert_eq!(object["spec"]["ingressClassName"], "skiff");
                assert!(object.get("status").is_none());
            }
            other => panic!("expected the Ingress, got {other:?}"),
        }
        // Moved to another class: gone from the nodes.
        feed.apply(EventType::Modified, &ingress("nginx"));
        match sub.changes.recv().await {
            Some(Downstream::RoutingRemove { kind, name, .. }) => {
                assert_eq!((kind.as_str(), name.as_str()), ("Ingress", "shop"));
            }
            other => panic!("expected a removal, got {other:?}"),
        }
    }
}
