//! What every node's proxy routes by: the Services, EndpointSlices, the Nodes
//! an EndpointSlice names (each reduced to its name, addresses and daemon
//! endpoints) and the Ingresses Skiff serves (an Ingress that moves to another
//! class is removed from the nodes), fanned out from the watch caches to every
//! node session: a snapshot when the session opens, then changes.
//!
//! Objects are reduced to what a proxy reads and sent only when that changed,
//! so that a Node's heartbeats or an object's bookkeeping (managedFields,
//! resourceVersion) cost the sessions nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Map, Value, json};
use skiff_api::ingress::is_skiff_ingress;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::wire::Downstream;
use tokio::sync::mpsc;

use super::dispatch::SESSION_QUEUE;
use crate::informer::{Cache, Change, Informer};
use crate::store::EventType;

/// (kind, namespace, name).
type Key = (String, String, String);

#[derive(Default)]
struct State {
    /// What the nodes have: Services, EndpointSlices, Ingresses, and the Nodes
    /// that some EndpointSlice names.
    objects: HashMap<Key, Value>,
    /// Every Node, reduced. A node's proxy needs a peer's address only to
    /// reach an endpoint there, so a Node goes out only while an EndpointSlice
    /// names it: sending every Node to every node would cost N² messages as a
    /// cluster of N nodes joins.
    nodes: HashMap<String, Value>,
    /// How many EndpointSlices name each node.
    named: HashMap<String, usize>,
    subscribers: HashMap<u64, mpsc::Sender<Downstream>>,
    next_id: u64,
}

/// The routing objects, kept current from the watch caches.
#[derive(Clone, Default)]
pub struct RoutingFeed {
    state: Arc<Mutex<State>>,
}

/// A session's subscription; unsubscribes when dropped.
pub struct RoutingSubscription {
    pub changes: mpsc::Receiver<Downstream>,
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
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut state = self.lock();
        let objects = state.objects.values().cloned().collect();
        // The queue is new and empty: this cannot be full.
        let _ = tx.try_send(Downstream::RoutingSnapshot { objects });
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
        services: Informer<Service>,
        slices: Informer<EndpointSlice>,
        nodes: Informer<Node>,
        ingresses: Informer<Ingress>,
    ) {
        let informers = [
            services.cache(),
            slices.cache(),
            nodes.cache(),
            ingresses.cache(),
        ];
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
        let reduced = (event_type != EventType::Deleted && routed(object)).then(|| reduce(object));
        self.lock().set(key, reduced);
    }

    /// Brings one kind in line with its cache: whatever differs is sent.
    fn resync(&self, informer: &Cache) {
        let kind = informer.resource().kind;
        let now: HashMap<Key, Value> = informer
            .list(None, |_| true)
            .iter()
            .filter(|o| routed(o))
            .filter_map(|o| Some((key_of(o)?, reduce(o))))
            .collect();
        let mut state = self.lock();
        let gone: Vec<Key> = state
            .keys_of_kind(kind)
            .into_iter()
            .filter(|k| !now.contains_key(k))
            .collect();
        for key in gone {
            state.set(key, None);
        }
        for (key, object) in now {
            state.set(key, Some(object));
        }
    }
}

impl State {
    /// Records `object` (None: gone) under `key` and sends what the nodes
    /// must learn of it.
    fn set(&mut self, key: Key, object: Option<Value>) {
        match key.0.as_str() {
            "Node" => {
                let name = key.2.clone();
                match object {
                    Some(node) => self.nodes.insert(name.clone(), node),
                    None => self.nodes.remove(&name),
                };
                if self.named.contains_key(&name) {
                    let node = self.nodes.get(&name).cloned();
                    self.publish(key, node);
                }
            }
            "EndpointSlice" => {
                let before = nodes_named(self.objects.get(&key));
                let after = nodes_named(object.as_ref());
                // A newly named node goes out before the slice that names it.
                for name in after.difference(&before) {
                    self.name_node(name, 1);
                }
                self.publish(key, object);
                for name in before.difference(&after) {
                    self.name_node(name, -1);
                }
            }
            _ => self.publish(key, object),
        }
    }

    /// Counts one more (or one fewer) EndpointSlice naming node `name`, and
    /// sends or withdraws the Node when that count leaves or reaches zero.
    fn name_node(&mut self, name: &str, by: isize) {
        let count = self.named.entry(name.to_string()).or_default();
        let was = *count;
        *count = count.saturating_add_signed(by);
        let now = *count;
        if now == 0 {
            self.named.remove(name);
        }
        let key = ("Node".to_string(), String::new(), name.to_string());
        if was == 0 && now > 0 {
            let node = self.nodes.get(name).cloned();
            self.publish(key, node);
        } else if was > 0 && now == 0 {
            self.publish(key, None);
        }
    }

    /// Puts `object` (None: removes it) where the nodes see it, and sends the
    /// change if there is one.
    fn publish(&mut self, key: Key, object: Option<Value>) {
        match object {
            Some(object) => {
                if self.objects.get(&key) != Some(&object) {
                    self.objects.insert(key, object.clone());
                    broadcast(self, Downstream::RoutingUpsert { object });
                }
            }
            None => {
                if self.objects.remove(&key).is_some() {
                    broadcast(self, removed(&key));
                }
            }
        }
    }

    /// The keys of `kind` this feed holds (for Nodes: every Node, sent or not).
    fn keys_of_kind(&self, kind: &str) -> Vec<Key> {
        if kind == "Node" {
            return self
                .nodes
                .keys()
                .map(|name| ("Node".to_string(), String::new(), name.clone()))
                .collect();
        }
        self.objects
            .keys()
            .filter(|k| k.0 == kind)
            .cloned()
            .collect()
    }
}

/// The nodes an EndpointSlice's endpoints are on.
fn nodes_named(slice: Option<&Value>) -> BTreeSet<String> {
    slice
        .and_then(|s| s.get("endpoints"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("nodeName").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Queues `message` for every session; one whose queue is full is
/// unsubscribed, which closes its session (its node resyncs on reconnecting).
fn broadcast(state: &mut State, message: Downstream) {
    state
        .subscribers
        .retain(|_, tx| match tx.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    queued = SESSION_QUEUE,
                    "a node is not reading its routing changes; closing its session for a resync"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
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
                "addresses": object.at("/status/addresses").cloned().unwrap_or(json!([])),
                "daemonEndpoints": object.at("/status/daemonEndpoints").cloned().unwrap_or(json!({})),
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

    fn slice(nodes: &[&str]) -> Value {
        let endpoints: Vec<Value> = nodes
            .iter()
            .map(|n| json!({"addresses": ["10.0.0.1"], "nodeName": n}))
            .collect();
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default"},
            "endpoints": endpoints})
    }

    #[tokio::test]
    async fn a_session_gets_a_snapshot_then_only_what_a_proxy_would_notice() {
        let feed = RoutingFeed::default();
        feed.apply(EventType::Added, &node("1"));
        feed.apply(EventType::Added, &slice(&["n1"]));
        let mut sub = feed.subscribe();
        match sub.changes.recv().await {
            Some(Downstream::RoutingSnapshot { objects }) => {
                assert_eq!(objects.len(), 2);
                let node = objects
                    .iter()
                    .find(|o| o["kind"] == "Node")
                    .expect("the named node is in the snapshot");
                assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.2");
                assert!(node["status"].get("conditions").is_none());
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
    async fn a_node_goes_out_only_while_an_endpoint_slice_names_it() {
        let feed = RoutingFeed::default();
        feed.apply(EventType::Added, &node("1"));
        let mut sub = feed.subscribe();
        match sub.changes.recv().await {
            Some(Downstream::RoutingSnapshot { objects }) => {
                assert!(objects.is_empty(), "no slice names n1: {objects:?}")
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
        // Named: the Node first, then the slice.
        feed.apply(EventType::Added, &slice(&["n1", "n2"]));
        let kinds: Vec<String> = (0..2)
            .map(|_| match sub.changes.try_recv() {
                Ok(Downstream::RoutingUpsert { object }) => object["kind"].to_string(),
                other => panic!("expected an upsert, got {other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["\"Node\"", "\"EndpointSlice\""]);
        // n2 is named but unknown until its Node arrives.
        let mut n2 = node("1");
        n2["metadata"]["name"] = json!("n2");
        feed.apply(EventType::Added, &n2);
        match sub.changes.try_recv() {
            Ok(Downstream::RoutingUpsert { object }) => {
                assert_eq!(object["metadata"]["name"], "n2")
            }
            other => panic!("expected n2, got {other:?}"),
        }
        // No longer named: withdrawn after the slice changes.
        feed.apply(EventType::Modified, &slice(&["n2"]));
        assert!(matches!(
            sub.changes.try_recv(),
            Ok(Downstream::RoutingUpsert { .. })
        ));
        match sub.changes.try_recv() {
            Ok(Downstream::RoutingRemove { kind, name, .. }) => {
                assert_eq!((kind.as_str(), name.as_str()), ("Node", "n1"))
            }
            other => panic!("expected n1 withdrawn, got {other:?}"),
        }
        // A heartbeat of a node no slice names sends nothing.
        feed.apply(EventType::Modified, &node("2"));
        assert!(sub.changes.try_recv().is_err());
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
