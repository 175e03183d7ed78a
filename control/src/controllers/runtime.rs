//! The controller runtime every controller runs on, after kube-runtime's
//! `Controller`: a controller names its primary kind's cache and what else
//! should queue a primary, and supplies one reconcile function:
//!
//! ```text
//! Controller::new(NAME, &informers.replica_sets)
//!     .owns_or_adopts(&informers.pods, "/spec/selector")
//!     .run(4, ctx, reconcile)
//!     .await;
//! ```
//!
//! The runtime feeds a [`WorkQueue`] (deduplicated keys, one reconcile in
//! flight per key, per-key backoff, panics caught and retried): every primary
//! once its caches have synced and again on any resync, a primary on its own
//! changes, a primary named by a child's `controllerRef` ([`Controller::owns`]),
//! an orphan's adopters by label selector ([`Controller::owns_or_adopts`]),
//! whatever a mapping names ([`Controller::watches`]), and every primary
//! periodically ([`Controller::resync_every`]). A reconcile returns
//! [`Action::await_change`] or [`Action::requeue_after`]. Per-controller
//! metrics (reconciles by result, latency, queue depth) are served at
//! `/metrics` ([`metrics`]).

pub mod metrics;
mod queue;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::selector::LabelSelector;
use tokio::sync::mpsc;

pub use queue::{Action, WorkQueue, run_workers};

use crate::informer::{Cache, Change, ObjectRef, object_ref};
use crate::store::EventType;

/// The primaries a change (its type, the object, and the object before)
/// queues.
type ChangeMapper = Arc<dyn Fn(EventType, &Value, Option<&Value>) -> Vec<ObjectRef> + Send + Sync>;

/// Whether an object concerns a controller.
type Predicate = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// Whether a change (its type, the object, and the object before) matters.
type ChangeFilter = Arc<dyn Fn(EventType, &Value, Option<&Value>) -> bool + Send + Sync>;

/// What a change to another cache does.
enum Trigger {
    /// Queues the primaries it names.
    Map(ChangeMapper),
    /// Queues every primary when it holds.
    All(ChangeFilter),
}

/// A cache whose changes queue primaries.
struct Source {
    informer: Cache,
    trigger: Trigger,
}

/// A controller, before it runs: its primary cache and its triggers.
pub struct Controller {
    name: &'static str,
    primary: Cache,
    sources: Vec<Source>,
    resync: Option<Duration>,
    /// Caches whose keys are queued with every primary's.
    leftovers: Vec<Cache>,
    /// Which primaries are queued on their own changes and on a resync.
    concerns: Option<Predicate>,
    /// Keys sent from outside the caches.
    external: Option<mpsc::UnboundedReceiver<ObjectRef>>,
}

impl Controller {
    /// A controller reconciling the objects of `primary`, named `name` in
    /// logs and metrics (Kubernetes' controller names: `replicaset-controller`).
    pub fn new(name: &'static str, primary: &Cache) -> Self {
        Controller {
            name,
            primary: primary.clone(),
            sources: Vec::new(),
            resync: None,
            leftovers: Vec::new(),
            concerns: None,
            external: None,
        }
    }

    /// Only primaries for which `concerns` holds are queued, on their own
    /// changes and on a resync (an Ingress of another class, a Job without a
    /// TTL); keys other triggers name are queued as they are.
    pub fn for_primaries_where(
        mut self,
        concerns: impl Fn(&Value) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.concerns = Some(Arc::new(concerns));
        self
    }

    /// A change to an object of `children` queues the primary its
    /// `controllerRef` names (before and after the change, so a child that
    /// moves owner queues both).
    pub fn owns(self, children: &Cache) -> Self {
        let kind = self.primary.resource().kind;
        self.watches(children, move |child| owner(kind, child))
    }

    /// As [`Controller::owns`]; and a child that no controller owns queues
    /// every primary in its namespace whose label selector (at the JSON
    /// pointer `selector`) matches it, so that a primary can adopt it.
    pub fn owns_or_adopts(self, children: &Cache, selector: &'static str) -> Self {
        let kind = self.primary.resource().kind;
        let primaries = self.primary.clone();
        self.watches(children, move |child| {
            if controller_of(child).is_some() {
                return owner(kind, child);
            }
            adopters(&primaries, selector, child)
        })
    }

    /// A change to an object of `other` queues the primaries `map` names for
    /// the object as it is and as it was.
    pub fn watches(
        self,
        other: &Cache,
        map: impl Fn(&Value) -> Vec<ObjectRef> + Send + Sync + 'static,
    ) -> Self {
        self.watches_changes(other, move |_, object, prev| {
            let mut keys = map(object);
            keys.extend(prev.map(&map).unwrap_or_default());
            keys
        })
    }

    /// As [`Controller::watches`], for deletions only.
    pub fn watches_deletions(
        self,
        other: &Cache,
        map: impl Fn(&Value) -> Vec<ObjectRef> + Send + Sync + 'static,
    ) -> Self {
        self.watches_changes(other, move |event, object, _| {
            if event == EventType::Deleted {
                map(object)
            } else {
                Vec::new()
            }
        })
    }

    /// A change to an object of `other` queues the primaries `map` names,
    /// given the change's type, the object and the object before (so that a
    /// change that cannot matter, as most pod status writes, queues none).
    pub fn watches_changes(
        mut self,
        other: &Cache,
        map: impl Fn(EventType, &Value, Option<&Value>) -> Vec<ObjectRef> + Send + Sync + 'static,
    ) -> Self {
        self.sources.push(Source {
            informer: other.clone(),
            trigger: Trigger::Map(Arc::new(map)),
        });
        self
    }

    /// A change to an object of `other` for which `matters` holds (given the
    /// change's type, the object, and the object before) queues every
    /// primary: for what all of them depend on, as DaemonSets on the Nodes.
    pub fn reconciles_all_when(
        mut self,
        other: &Cache,
        matters: impl Fn(EventType, &Value, Option<&Value>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.sources.push(Source {
            informer: other.clone(),
            trigger: Trigger::All(Arc::new(matters)),
        });
        self
    }

    /// Whenever every primary is queued (at start, on a resync), the keys of
    /// `other`'s objects are queued too: for objects a primary leaves behind
    /// under its own name (Endpoints of a Service deleted while the control
    /// plane was down), which the reconcile of that key removes.
    pub fn queues_leftovers_of(mut self, other: &Cache) -> Self {
        self.leftovers.push(other.clone());
        self
    }

    /// Keys sent on `keys` are queued: for triggers that are not caches (a
    /// store watch of kinds not worth caching, as the quota controller's).
    pub fn triggered_by(mut self, keys: mpsc::UnboundedReceiver<ObjectRef>) -> Self {
        self.external = Some(keys);
        self
    }

    /// Queues every primary every `period` (for what no event announces:
    /// the passing of time).
    pub fn resync_every(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// Runs `workers` reconciles at a time until the process ends.
    pub async fn run<C, F, Fut, E>(self, workers: usize, ctx: Arc<C>, reconcile: F)
    where
        C: Send + Sync + 'static,
        F: Fn(Arc<C>, ObjectRef) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send,
        E: std::fmt::Display,
    {
        let name = self.name;
        let queue: Arc<WorkQueue<ObjectRef>> = WorkQueue::named(name);
        let feed = tokio::spawn(self.feed(queue.clone()));
        run_workers(name, queue, workers, move |key| reconcile(ctx.clone(), key)).await;
        feed.abort();
    }

    /// Queues what the caches' changes concern, until they stop.
    async fn feed(mut self, queue: Arc<WorkQueue<ObjectRef>>) {
        let mut external = self.external.take();
        let mut own = self.primary.subscribe();
        let mut others: Vec<_> = self
            .sources
            .iter()
            .map(|source| (source.informer.subscribe(), source))
            .collect();
        self.primary.synced().await;
        for source in &self.sources {
            source.informer.synced().await;
        }
        for informer in &self.leftovers {
            informer.synced().await;
        }
        let concerned = |obj: &Value| self.concerns.as_ref().is_none_or(|c| c(obj));
        let all = |queue: &WorkQueue<ObjectRef>| {
            for obj in self.primary.list(None, concerned) {
                queue.add(object_ref(&obj));
            }
            for informer in &self.leftovers {
                for obj in informer.list(None, |_| true) {
                    queue.add(object_ref(&obj));
                }
            }
        };
        all(&queue);
        let mut tick = self.resync.map(|period| {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        loop {
            let other_change = async {
                if others.is_empty() {
                    return std::future::pending().await;
                }
                let nexts = others
                    .iter_mut()
                    .map(|(sub, source)| Box::pin(async move { (sub.next().await, *source) }));
                futures::future::select_all(nexts).await.0
            };
            let sent = async {
                match external.as_mut() {
                    Some(keys) => keys.recv().await,
                    None => std::future::pending().await,
                }
            };
            let periodic = async {
                match tick.as_mut() {
                    Some(tick) => tick.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = own.next() => match change {
                    Some(Change::Object { object, .. }) => {
                        if concerned(&object) {
                            queue.add(object_ref(&object));
                        }
                    }
                    Some(Change::Resync) => all(&queue),
                    None => return,
                },
                (change, source) = other_change => match change {
                    Some(Change::Object { event_type, object, prev }) => match &source.trigger {
                        Trigger::Map(map) => {
                            for key in map(event_type, &object, prev.as_deref()) {
                                queue.add(key);
                            }
                        }
                        Trigger::All(matters) => {
                            if matters(event_type, &object, prev.as_deref()) {
                                all(&queue);
                            }
                        }
                    },
                    Some(Change::Resync) => all(&queue),
                    None => return,
                },
                _ = periodic => all(&queue),
                key = sent => match key {
                    Some(key) => queue.add(key),
                    None => external = None,
                },
            }
        }
    }
}

/// The kind and name of the controller an object's `ownerReferences` name.
pub fn controller_of(obj: &Value) -> Option<(&str, &str)> {
    let r = meta::owner_references(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    Some((
        r.get("kind").and_then(Value::as_str)?,
        r.get("name").and_then(Value::as_str)?,
    ))
}

/// The primary of kind `kind` that controls `child`, if one does.
fn owner(kind: &str, child: &Value) -> Vec<ObjectRef> {
    match controller_of(child) {
        Some((k, name)) if k == kind => vec![(
            meta::namespace(child).unwrap_or_default().to_string(),
            name.to_string(),
        )],
        _ => Vec::new(),
    }
}

/// The primaries in `child`'s namespace whose non-empty selector at
/// `selector` matches it.
fn adopters(primaries: &Cache, selector: &str, child: &Value) -> Vec<ObjectRef> {
    let namespace = meta::namespace(child).unwrap_or_default();
    primaries
        .list(Some(namespace), |primary| {
            LabelSelector::from_object_at(primary.at(selector), "selector")
                .is_ok_and(|s| !s.is_empty() && s.matches_object(child))
        })
        .iter()
        .map(|primary| object_ref(primary))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;
    use skiff_api::resource::by_kind;

    use super::metrics::METRICS;
    use super::*;
    use crate::informer::Informer;
    use crate::registry::{Registry, WriteOptions};
    use crate::store::redb::{RedbStore, StoreConfig};

    const DEADLINE: Duration = Duration::from_secs(10);

    fn registry(dir: &std::path::Path) -> Registry {
        let store = RedbStore::open(&dir.join("store.redb"), StoreConfig::default())
            .expect("open the store");
        Registry::new(Arc::new(store))
    }

    async fn create(registry: &Registry, api_version: &str, kind: &str, obj: Value) {
        let rt = by_kind(api_version, kind).expect("a built-in kind");
        let ns_type = by_kind("v1", "Namespace").expect("namespaces");
        if registry
            .try_get(ns_type, "", "default")
            .expect("read")
            .is_none()
        {
            let ns =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
            registry
                .create(ns_type, "", ns, &WriteOptions::default())
                .await
                .expect("create the namespace");
        }
        registry
            .create(rt, "default", obj, &WriteOptions::default())
            .await
            .expect("create");
    }

    fn replica_set(name: &str, app: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "c", "image": "x:v1"}]}
                }
            }
        })
    }

    fn pod(name: &str, app: &str, owner: Option<&str>) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "x:v1"}]}
        });
        if let Some(owner) = owner {
            pod["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true
            }]);
        }
        pod
    }

    /// Every key reconciled, in order; a reconcile can ask for a requeue.
    #[derive(Default)]
    struct Seen {
        keys: Mutex<Vec<String>>,
        requeue: Mutex<Option<(String, Duration)>>,
    }

    impl Seen {
        fn count(&self, name: &str) -> usize {
            self.keys
                .lock()
                .unwrap()
                .iter()
                .filter(|k| *k == name)
                .count()
        }

        async fn wait(&self, what: &str, check: impl Fn(&Seen) -> bool) {
            tokio::time::timeout(DEADLINE, async {
                while !check(self) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{what}: saw {:?}", self.keys.lock().unwrap()));
        }
    }

    async fn record(seen: Arc<Seen>, (_, name): ObjectRef) -> Result<Action, String> {
        seen.keys.lock().unwrap().push(name.clone());
        match seen.requeue.lock().unwrap().as_ref() {
            Some((key, delay)) if *key == name => Ok(Action::requeue_after(*delay)),
            _ => Ok(Action::await_change()),
        }
    }

    /// A store with ReplicaSets `web` and `db`, caches of ReplicaSets and Pods,
    /// and nothing seen yet.
    async fn two_replica_sets() -> (
        tempfile::TempDir,
        Registry,
        Informer<ReplicaSet>,
        Informer<Pod>,
        Arc<Seen>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        for app in ["web", "db"] {
            create(&registry, "apps/v1", "ReplicaSet", replica_set(app, app)).await;
        }
        let sets = Informer::start(&registry);
        let pods = Informer::start(&registry);
        (dir, registry, sets, pods, Arc::new(Seen::default()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_and_adoptable_children_queue_their_primaries() {
        let (_dir, registry, sets, pods, seen) = two_replica_sets().await;
        let controller = tokio::spawn(
            Controller::new("test-owners", &sets)
                .owns_or_adopts(&pods, "/spec/selector")
                .run(1, seen.clone(), record),
        );
        seen.wait("each primary once at start", |s| {
            s.count("web") == 1 && s.count("db") == 1
        })
        .await;

        // An owned pod queues its owner only, whatever its labels say.
        create(&registry, "v1", "Pod", pod("owned", "db", Some("web"))).await;
        seen.wait("the owner is queued", |s| s.count("web") == 2)
            .await;
        // An orphan queues the primaries whose selector matches it.
        create(&registry, "v1", "Pod", pod("orphan", "db", None)).await;
        seen.wait("the adopter is queued", |s| s.count("db") == 2)
            .await;
        let keys: BTreeSet<String> = seen.keys.lock().unwrap().iter().cloned().collect();
        assert_eq!(keys, BTreeSet::from(["web".into(), "db".into()]));
        assert_eq!(seen.count("web"), 2, "the orphan did not queue web");
        controller.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requeues_resyncs_and_mapped_triggers() {
        let (_dir, registry, sets, pods, seen) = two_replica_sets().await;
        *seen.requeue.lock().unwrap() = Some(("db".into(), Duration::from_millis(50)));
        let controller = tokio::spawn(
            Controller::new("test-triggers", &sets)
                // Any pod named after a primary queues that primary.
                .watches(&pods, |pod| {
                    vec![("default".into(), meta::name(pod).unwrap_or("").into())]
                })
                .resync_every(Duration::from_millis(300))
                .run(2, seen.clone(), record),
        );
        seen.wait("db asked to be run again, and is", |s| s.count("db") >= 3)
            .await;
        *seen.requeue.lock().unwrap() = None;
        let before = seen.count("web");
        create(&registry, "v1", "Pod", pod("web", "other", None)).await;
        seen.wait("the mapped primary is queued", |s| s.count("web") > before)
            .await;
        let before = seen.count("web");
        seen.wait("a periodic resync queues every primary", |s| {
            s.count("web") > before
        })
        .await;
        assert!(
            METRICS.reconciles("test-triggers", "requeue_after") >= 2,
            "requeues are counted"
        );
        controller.abort();
    }
}
