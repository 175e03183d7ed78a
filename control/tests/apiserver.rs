//! The API server through `Router::oneshot` (no socket), over a real redb store:
//! the REST semantics a Kubernetes client relies on.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skiff_control::apiserver::access::PeerUser;
use skiff_control::apiserver::{ApiState, router};
use skiff_control::auth::service_account_token::TokenSigner;
use skiff_control::components::ComponentStore;
use skiff_control::controllers::{Deps, cluster};
use skiff_control::informer::{Informer, Informers};
use skiff_control::registry::Registry;
use skiff_control::store::redb::{RedbStore, StoreConfig};
use tower::ServiceExt;

struct Api {
    router: Router,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn api_with(config: StoreConfig) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("store.redb"), config).unwrap();
    let registry = Registry::new(Arc::new(store));
    skiff_control::server::bootstrap(&registry).await.unwrap();
    let components = ComponentStore::open(&dir.path().join("components")).unwrap();
    let mut state = ApiState::new(
        registry.clone(),
        Arc::new(components),
        skiff_control::metrics::Metrics::new(),
        Arc::new(TokenSigner::ephemeral().unwrap()),
    );
    state.bookmark_interval = Duration::from_millis(200);
    let deps = Deps {
        registry: registry.clone(),
        informers: Informers::start(&registry),
        events: skiff_control::events::EventRecorder::new(registry.clone(), "test"),
        cluster_roles: Informer::start(&registry),
        liveness: skiff_control::gateway::NodeLiveness::default(),
        node_grace_period: Duration::from_secs(40),
    };
    let tasks = vec![
        tokio::spawn(cluster::namespace::run(deps.clone())),
        tokio::spawn(cluster::garbage_collector::run(deps)),
    ];
    Api {
        // Every request is the admin's, as if it came with the admin's
        // client certificate.
        router: router(Arc::new(state)).layer(axum::Extension(PeerUser::admin())),
        _dir: dir,
        tasks,
    }
}

async fn api() -> Api {
    api_with(StoreConfig::default()).await
}

struct Reply {
    status: StatusCode,
    body: Value,
    headers: http::HeaderMap,
}

impl Api {
    async fn call(&self, method: Method, uri: &str, content_type: &str, body: Value) -> Reply {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(serde_json::to_vec(&body).unwrap())
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .header("user-agent", "api-test/1.0")
            .body(body)
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, "application/json", Value::Null)
            .await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, "application/json", body).await
    }

    async fn put(&self, uri: &str, body: Value) -> Reply {
        self.call(Method::PUT, uri, "application/json", body).await
    }

    async fn patch(&self, uri: &str, content_type: &str, body: Value) -> Reply {
        self.call(Method::PATCH, uri, content_type, body).await
    }

    async fn delete(&self, uri: &str, body: Value) -> Reply {
        self.call(Method::DELETE, uri, "application/json", body)
            .await
    }

    /// Polls a GET until `done` holds, for up to 30 s.
    async fn eventually(&self, uri: &str, done: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.get(uri).await;
            if done(&reply) {
                return reply;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met on {uri}: {} {}",
                reply.status,
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens a watch and returns a reader of its events.
    async fn watch(&self, uri: &str) -> WatchReader {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        WatchReader {
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }
}

struct WatchReader {
    body: Body,
    buffer: Vec<u8>,
}

impl WatchReader {
    /// The next event, waiting up to 30 s.
    async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("watch event in time");
            let frame = frame.expect("watch stream open").unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next event that is not a bookmark.
    async fn next_event(&mut self) -> Value {
        loop {
            let e = self.next().await;
            if e["type"] != "BOOKMARK" {
                return e;
            }
        }
    }
}

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "hello:v1", "ports": [{"containerPort": 8080}],
                                         "env": [{"name": "A", "value": "1"}]}]}
            }
        }
    })
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn create_get_list_and_server_fields() {
    let api = api().await;
    let created = api.post(CMS, configmap("one", json!({"app": "a"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let meta = &created.body["metadata"];
    assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(meta["creationTimestamp"].as_str().is_some());
    assert_eq!(meta["namespace"], "default");
    let rv: u64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();

    let again = api.post(CMS, configmap("one", json!({}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["reason"], "AlreadyExists");

    let got = api.get(&format!("{CMS}/one")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["data"]["k"], "v");
    let missing = api.get(&format!("{CMS}/nope")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["kind"], "Status");
    assert_eq!(missing.body["message"], "configmaps \"nope\" not found");

    let list = api.get(CMS).await;
    assert_eq!(list.body["kind"], "ConfigMapList");
    let list_rv: u64 = list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(list_rv >= rv);

    // generateName
    let generated = api
        .post(
            CMS,
            json!({"metadata": {"generateName": "gen-"}, "data": {}}),
        )
        .await;
    assert_eq!(generated.status, StatusCode::CREATED, "{}", generated.body);
    let name = generated.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // A namespace that does not exist.
    let nowhere = api
        .post(
            "/api/v1/namespaces/nowhere/configmaps",
            configmap("x", json!({})),
        )
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.body["message"], "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn list_paging_and_selectors() {
    let api = api().await;
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        assert_eq!(
            api.post(
                CMS,
                configmap(&format!("cm{i}"), json!({"tier": tier, "n": i.to_string()}))
            )
            .await
            .status,
            StatusCode::CREATED
        );
    }
    let mut names = Vec::new();
    let mut uri = format!("{CMS}?limit=3");
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let page = api.get(&uri).await;
        pages += 1;
        let rv = page.body["metadata"]["resourceVersion"].clone();
        first_rv.get_or_insert(rv.clone());
        assert_eq!(Some(rv), first_rv);
        for item in page.body["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page.body["metadata"]["continue"].as_str() {
            Some(token) => uri = format!("{CMS}?limit=3&continue={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm{i}")).collect::<Vec<_>>());

    let front = api.get(&format!("{CMS}?labelSelector=tier%3Dfront")).await;
    assert_eq!(front.body["items"].as_array().unwrap().len(), 4);
    let set = api
        .get(&format!(
            "{CMS}?labelSelector=tier%20in%20(back),n%20notin%20(1)"
        ))
        .await;
    assert_eq!(set.body["items"].as_array().unwrap().len(), 2);
    let by_name = api
        .get(&format!("{CMS}?fieldSelector=metadata.name%3Dcm3"))
        .await;
    assert_eq!(by_name.body["items"][0]["metadata"]["name"], "cm3");
    let bad = api.get(&format!("{CMS}?fieldSelector=spec.nope%3Dx")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad_label = api.get(&format!("{CMS}?labelSelector=a%20in%20b")).await;
    assert_eq!(bad_label.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn update_conflicts_and_generation() {
    let api = api().await;
    let created = api.post(DEPLOYS, deployment("web", 2)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["metadata"]["generation"], 1);
    // Defaults were applied.
    assert_eq!(created.body["spec"]["strategy"]["type"], "RollingUpdate");

    let mut changed = created.body.clone();
    changed["spec"]["replicas"] = json!(4);
    let updated = api.put(&format!("{DEPLOYS}/web"), changed.clone()).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["metadata"]["generation"], 2);

    // The same body again carries a stale resourceVersion now.
    let stale = api.put(&format!("{DEPLOYS}/web"), changed).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["reason"], "Conflict");

    // A label change is not a spec change.
    let labeled = api
        .patch(
            &format!("{DEPLOYS}/web"),
            MERGE,
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    assert_eq!(labeled.status, StatusCode::OK, "{}", labeled.body);
    assert_eq!(labeled.body["metadata"]["generation"], 2);

    // Status goes only through the status subresource.
    let ignored = api
        .patch(
            &format!("{DEPLOYS}/web"),
            MERGE,
            json!({"status": {"replicas": 9}}),
        )
        .await;
    assert!(
        ignored.body["status"]["replicas"].is_null(),
        "{}",
        ignored.body
    );
    let status = api
        .patch(
            &format!("{DEPLOYS}/web/status"),
            MERGE,
            json!({"status": {"replicas": 9}, "spec": {"replicas": 1}}),
        )
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["status"]["replicas"], 9);
    assert_eq!(status.body["spec"]["replicas"], 4);
    assert_eq!(status.body["metadata"]["generation"], 2);
}

#[tokio::test]
async fn patch_types() {
    let api = api().await;
    api.post(DEPLOYS, deployment("web", 1)).await;
    let uri = format!("{DEPLOYS}/web");
    // Strategic merge: containers merge by name, env by name.
    let smp = api
        .patch(&uri, STRATEGIC, json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}}}}))
        .await;
    assert_eq!(smp.status, StatusCode::OK, "{}", smp.body);
    let c = &smp.body["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "hello:v1");
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, vec!["B", "A"]);
    // Merge patch replaces lists.
    let mp = api.patch(&uri, MERGE, json!({"spec": {"template": {"spec": {"containers": [{"name": "other", "image": "x:v1"}]}}}})).await;
    assert_eq!(mp.status, StatusCode::OK, "{}", mp.body);
    assert_eq!(
        mp.body["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        mp.body["spec"]["template"]["spec"]["containers"][0]["name"],
        "other"
    );
    // JSON patch, with a failing test op.
    let jp = api
        .patch(
            &uri,
            JSON_PATCH,
            json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
        )
        .await;
    assert_eq!(jp.body["spec"]["replicas"], 3);
    let failed = api
        .patch(
            &uri,
            JSON_PATCH,
            json!([{"op": "test", "path": "/spec/replicas", "value": 7}]),
        )
        .await;
    assert!(failed.status.is_client_error(), "{}", failed.status);
    // Unsupported content type.
    let unsupported = api.patch(&uri, "text/plain", json!({})).await;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn server_side_apply_tracks_managers() {
    let api = api().await;
    let uri = format!("{CMS}/applied?fieldManager=alice");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1", "b": "2"}});
    let first = api.patch(&uri, "application/apply-patch+yaml", body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let managers: Vec<&str> = first.body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["alice"]);
    // Alice stops applying b: it goes.
    let second = api
        .patch(&uri, "application/apply-patch+yaml", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(second.body["data"]["b"].is_null(), "{}", second.body);
    // Bob applying a different value for a is a conflict unless forced.
    let bob = format!("{CMS}/applied?fieldManager=bob");
    let clash = api
        .patch(&bob, "application/apply-patch+yaml", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "9"}}))
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.body);
    let forced = api
        .patch(&format!("{bob}&force=true"), "application/apply-patch+yaml", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "9"}}))
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    assert_eq!(forced.body["data"]["a"], "9");
    // Apply without a field manager is refused.
    let anonymous = api
        .patch(
            &format!("{CMS}/applied"),
            "application/apply-patch+yaml",
            json!({}),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scale_subresource() {
    let api = api().await;
    api.post(DEPLOYS, deployment("web", 2)).await;
    let scale = api.get(&format!("{DEPLOYS}/web/scale")).await;
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["spec"]["replicas"], 2);
    assert_eq!(scale.body["status"]["selector"], "app=web");
    let scaled = api
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            MERGE,
            json!({"spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.body);
    assert_eq!(
        api.get(&format!("{DEPLOYS}/web")).await.body["spec"]["replicas"],
        5
    );
    let negative = api
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            MERGE,
            json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Kubernetes answers a create with the kind's empty status, so a client
/// can read `status.readyReplicas` of the response at once.
#[tokio::test]
async fn a_created_object_comes_back_with_its_empty_status() {
    let api = api().await;
    let created = api.post(DEPLOYS, deployment("web", 1)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], json!({}), "{}", created.body);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let created = api.post("/api/v1/namespaces/default/services", svc).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], json!({"loadBalancer": {}}));
    // A kind without a status subresource has none.
    let cm = api
        .post(
            "/api/v1/namespaces/default/configmaps",
            configmap("c", json!({})),
        )
        .await;
    assert!(cm.body.get("status").is_none(), "{}", cm.body);
}

/// Quantities come back as Kubernetes stores them: canonical strings, also
/// after a patch that writes a number.
#[tokio::test]
async fn quantities_are_stored_canonical() {
    let api = api().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
        "spec": {"containers": [{"name": "w", "image": "hello:v1", "resources": {
            "limits": {"cpu": "1000m", "memory": "1024Mi"},
            "requests": {"cpu": 0.5, "memory": 1048576}}}]}});
    let created = api.post("/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let got = api.get("/api/v1/namespaces/default/pods/q").await;
    assert_eq!(
        got.body["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1", "memory": "1Gi"},
               "requests": {"cpu": "500m", "memory": "1048576"}}),
        "{}",
        got.body
    );

    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": 10}}});
    let uri = "/api/v1/namespaces/default/resourcequotas";
    let created = api.post(uri, quota).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["spec"]["hard"], json!({"pods": "10"}));
    let patched = api
        .patch(
            &format!("{uri}/q"),
            "application/merge-patch+json",
            json!({"spec": {"hard": {"requests.memory": 2147483648_u64}}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["spec"]["hard"],
        json!({"pods": "10", "requests.memory": "2147483648"})
    );
}

/// Writes without a client precondition are never refused for a write that
/// landed in between: a scale PATCH and a PUT without resourceVersion, while
/// a "controller" keeps writing the same Deployment's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_precondition_retry_instead_of_409() {
    let api = Arc::new(api().await);
    api.post(DEPLOYS, deployment("web", 1)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (api, stop) = (api.clone(), stop.clone());
        async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let status = json!({"status": {"observedGeneration": n}});
                api.patch(&format!("{DEPLOYS}/web/status"), MERGE, status)
                    .await;
            }
            n
        }
    });
    for replicas in 0..30 {
        let scaled = api
            .patch(
                &format!("{DEPLOYS}/web/scale"),
                MERGE,
                json!({"spec": {"replicas": replicas}}),
            )
            .await;
        assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.body);
        let mut body = api.get(&format!("{DEPLOYS}/web")).await.body;
        body["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("resourceVersion");
        body["metadata"]["labels"]["round"] = json!(replicas.to_string());
        let put = api.put(&format!("{DEPLOYS}/web"), body).await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let status_writes = writer.await.expect("writer");
    assert!(
        status_writes > 30,
        "the writer raced: {status_writes} writes"
    );
    // A pinned, stale resourceVersion is still the client's conflict.
    let stale = api
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            MERGE,
            json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let api = api().await;
    let mut cm = configmap("held", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/keep"]);
    api.post(CMS, cm).await;
    let deleted = api.delete(&format!("{CMS}/held"), Value::Null).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let still = api.get(&format!("{CMS}/held")).await;
    assert_eq!(still.status, StatusCode::OK);
    assert!(still.body["metadata"]["deletionTimestamp"].is_string());
    let released = api
        .patch(
            &format!("{CMS}/held"),
            MERGE,
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    assert_eq!(
        api.get(&format!("{CMS}/held")).await.status,
        StatusCode::NOT_FOUND
    );
    // Preconditions.
    api.post(CMS, configmap("pre", json!({}))).await;
    let wrong = api
        .delete(
            &format!("{CMS}/pre"),
            json!({"preconditions": {"uid": "not-it"}}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_gracefully_deleted_pod_stays_until_its_node_removes_it() {
    let api = api().await;
    const PODS: &str = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30,
                 "containers": [{"name": "c", "image": "hello:v1"}]}});
    assert_eq!(api.post(PODS, pod).await.status, StatusCode::CREATED);
    assert_eq!(
        api.delete(&format!("{PODS}/p"), Value::Null).await.status,
        StatusCode::OK
    );
    // The node reports the pod stopping: a status update keeps it, with its grace.
    let mut current = api.get(&format!("{PODS}/p")).await.body;
    assert_eq!(current["metadata"]["deletionGracePeriodSeconds"], 30);
    current["status"] =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]});
    let updated = api.put(&format!("{PODS}/p/status"), current).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let still = api.get(&format!("{PODS}/p")).await;
    assert_eq!(
        still.status,
        StatusCode::OK,
        "a status update removed a terminating pod"
    );
    // The node has stopped it: the delete with grace 0 removes it.
    let gone = api
        .delete(&format!("{PODS}/p"), json!({"gracePeriodSeconds": 0}))
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    assert_eq!(
        api.get(&format!("{PODS}/p")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn propagation_policies() {
    let api = api().await;
    let owner = api.post(CMS, configmap("owner", json!({}))).await.body;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    for name in ["dep1", "dep2"] {
        let mut cm = configmap(name, json!({}));
        cm["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]);
        assert_eq!(api.post(CMS, cm).await.status, StatusCode::CREATED);
    }
    // Orphan: dependents stay, without the reference.
    api.delete(
        &format!("{CMS}/owner"),
        json!({"propagationPolicy": "Orphan"}),
    )
    .await;
    api.eventually(&format!("{CMS}/owner"), |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;
    let dep = api
        .eventually(&format!("{CMS}/dep1"), |r| {
            r.body["metadata"]["ownerReferences"].is_null()
        })
        .await;
    assert_eq!(dep.status, StatusCode::OK);

    // Foreground: dependents go first, then the owner.
    let owner = api.post(CMS, configmap("owner2", json!({}))).await.body;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let mut dep = configmap("dep3", json!({}));
    dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": uid, "blockOwnerDeletion": true}]);
    api.post(CMS, dep).await;
    api.delete(
        &format!("{CMS}/owner2?propagationPolicy=Foreground"),
        Value::Null,
    )
    .await;
    api.eventually(&format!("{CMS}/dep3"), |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;
    api.eventually(&format!("{CMS}/owner2"), |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;

    // Background: the owner goes now, dependents after.
    let owner = api.post(CMS, configmap("owner3", json!({}))).await.body;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let mut dep = configmap("dep4", json!({}));
    dep["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner3", "uid": uid}]);
    api.post(CMS, dep).await;
    let gone = api.delete(&format!("{CMS}/owner3"), Value::Null).await;
    assert_eq!(gone.body["status"], "Success");
    api.eventually(&format!("{CMS}/dep4"), |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;
    // The orphaned dep2 is still there.
    assert_eq!(api.get(&format!("{CMS}/dep2")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn foreground_deletion_waits_for_a_pod_its_node_must_stop() {
    let api = api().await;
    const PODS: &str = "/api/v1/namespaces/default/pods";
    let owner = api.post(CMS, configmap("owner", json!({}))).await.body;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30,
                 "containers": [{"name": "c", "image": "hello:v1"}]}});
    assert_eq!(api.post(PODS, pod).await.status, StatusCode::CREATED);
    api.delete(
        &format!("{CMS}/owner?propagationPolicy=Foreground"),
        Value::Null,
    )
    .await;
    // The pod is deleted gracefully, without a finalizer of its own (it has
    // no dependents), so the node's grace-0 delete once it stopped removes it.
    let pod = api
        .eventually(&format!("{PODS}/p"), |r| {
            !r.body["metadata"]["deletionTimestamp"].is_null()
        })
        .await;
    assert!(pod.body["metadata"]["finalizers"].is_null(), "{}", pod.body);
    let owner = api.get(&format!("{CMS}/owner")).await;
    assert_eq!(owner.status, StatusCode::OK, "the owner waits for the pod");
    let gone = api
        .delete(&format!("{PODS}/p"), json!({"gracePeriodSeconds": 0}))
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    api.eventually(&format!("{PODS}/p"), |r| r.status == StatusCode::NOT_FOUND)
        .await;
    api.eventually(&format!("{CMS}/owner"), |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;
}

#[tokio::test]
async fn namespace_deletion_removes_contents() {
    let api = api().await;
    let ns = api
        .post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    assert_eq!(ns.status, StatusCode::CREATED);
    assert_eq!(ns.body["status"]["phase"], "Active");
    api.post(
        "/api/v1/namespaces/team/configmaps",
        configmap("a", json!({})),
    )
    .await;
    api.post(
        "/apis/apps/v1/namespaces/team/deployments",
        deployment("web", 1),
    )
    .await;
    let deleting = api.delete("/api/v1/namespaces/team", Value::Null).await;
    assert_eq!(deleting.status, StatusCode::OK);
    assert_eq!(deleting.body["status"]["phase"], "Terminating");
    api.eventually("/api/v1/namespaces/team", |r| {
        r.status == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(
        api.get("/api/v1/namespaces/team/configmaps/a").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/apis/apps/v1/namespaces/team/deployments/web")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_collection_by_label() {
    let api = api().await;
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.post(CMS, configmap(name, json!({"tier": tier}))).await;
    }
    let deleted = api
        .delete(&format!("{CMS}?labelSelector=tier%3Dx"), Value::Null)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let left: Vec<String> = api.get(CMS).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec!["c"]);
}

#[tokio::test]
async fn watch_streams_changes_with_selector_transitions_and_bookmarks() {
    let api = api().await;
    api.post(CMS, configmap("pre", json!({"app": "w"}))).await;
    let rv = api.get(CMS).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut all = api
        .watch(&format!(
            "{CMS}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
        ))
        .await;
    let mut selected = api
        .watch(&format!(
            "{CMS}?watch=1&resourceVersion={rv}&labelSelector=app%3Dw"
        ))
        .await;
    // Without a resourceVersion: synthetic ADDED for what exists.
    let mut fresh = api.watch(&format!("{CMS}?watch=true")).await;
    let added = fresh.next().await;
    assert_eq!(
        (
            added["type"].as_str(),
            added["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("pre"))
    );

    api.post(CMS, configmap("new", json!({"app": "w"}))).await;
    let e = all.next_event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("new"))
    );
    let e = selected.next_event().await;
    assert_eq!(e["type"], "ADDED");

    // Relabel: the selected watch sees it leave as DELETED.
    api.patch(
        &format!("{CMS}/new"),
        MERGE,
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    let e = all.next_event().await;
    assert_eq!(e["type"], "MODIFIED");
    let e = selected.next_event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("new"))
    );

    api.delete(&format!("{CMS}/pre"), Value::Null).await;
    let e = all.next_event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("pre"))
    );

    // Idle: a bookmark carrying the latest revision.
    let latest: u64 = api.get(CMS).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    loop {
        let b = all.next().await;
        if b["type"] == "BOOKMARK" {
            let brv: u64 = b["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            if brv >= latest {
                assert_eq!(b["object"]["kind"], "ConfigMap");
                break;
            }
        }
    }
}

#[tokio::test]
async fn watch_from_compacted_revision_gets_410() {
    let api = api_with(StoreConfig {
        max_history_events: 3,
        compaction_interval: Duration::ZERO,
        ..Default::default()
    })
    .await;
    for i in 0..10 {
        api.post(CMS, configmap(&format!("c{i}"), json!({}))).await;
    }
    let mut w = api.watch(&format!("{CMS}?watch=1&resourceVersion=1")).await;
    let e = w.next().await;
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
}

#[tokio::test]
async fn tables_for_kubectl_get() {
    let api = api().await;
    api.post(DEPLOYS, deployment("web", 3)).await;
    let request = Request::builder()
        .uri(DEPLOYS)
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["kind"], "Table");
    let columns: Vec<&str> = body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &columns[..5],
        &["Name", "Ready", "Up-to-date", "Available", "Age"]
    );
    assert_eq!(body["rows"][0]["cells"][0], "web");
    assert_eq!(body["rows"][0]["cells"][1], "0/3");
}

#[tokio::test]
async fn validation_errors_name_the_field_and_write_nothing() {
    let api = api().await;
    let mut bad = deployment("Bad_Name", 1);
    bad["metadata"]["name"] = json!("Bad_Name");
    let r = api.post(DEPLOYS, bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["details"]["causes"][0]["field"], "metadata.name");

    let mut no_selector = deployment("web", 1);
    no_selector["spec"]
        .as_object_mut()
        .unwrap()
        .remove("selector");
    let r = api.post(DEPLOYS, no_selector).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "spec.selector"),
        "{}",
        r.body
    );

    let mut wrong_type = deployment("web", 1);
    wrong_type["spec"]["replicas"] = json!("three");
    let r = api.post(DEPLOYS, wrong_type).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["details"]["causes"][0]["field"], "spec.replicas");

    let mut unknown = deployment("web", 1);
    unknown["spec"]["replicaz"] = json!(2);
    let r = api
        .post(
            &format!("{DEPLOYS}?fieldValidation=Strict"),
            unknown.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("spec.replicaz"),
        "{}",
        r.body
    );
    // Warn (the default): stored without the field, with a Warning header.
    let r = api.post(DEPLOYS, unknown).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(
        r.headers
            .get("warning")
            .is_some_and(|w| w.to_str().unwrap().contains("spec.replicaz"))
    );
    assert!(r.body["spec"]["replicaz"].is_null());
    api.delete(&format!("{DEPLOYS}/web"), Value::Null).await;

    let mut wrong_kind = configmap("x", json!({}));
    wrong_kind["kind"] = json!("Widget");
    let r = api.post(CMS, wrong_kind).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    assert_eq!(
        api.get(DEPLOYS).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        api.get(CMS).await.body["items"].as_array().unwrap().len(),
        0
    );
}

#[tokio::test]
async fn component_push_checks_bytes() {
    let api = api().await;
    let upload = |bytes: Vec<u8>, name: &str| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/apis/skiff.dev/v1alpha1/components?name={name}"))
            .header("content-type", "application/wasm")
            .body(Body::from(bytes))
            .unwrap()
    };
    let garbage = api
        .router
        .clone()
        .oneshot(upload(b"definitely not wasm".to_vec(), "junk:v1"))
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_slice(&garbage.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly binary"),
        "{body}"
    );

    let module = wat::parse_str("(module)").unwrap();
    let core = api
        .router
        .clone()
        .oneshot(upload(module, "core:v1"))
        .await
        .unwrap();
    assert_eq!(core.status(), StatusCode::BAD_REQUEST);

    let component = wat::parse_str(
        r#"(component
            (core module $m (func (export "run") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $inst (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $inst)))"#,
    )
    .unwrap();
    let ok = api
        .router
        .clone()
        .oneshot(upload(component.clone(), "tiny:v1"))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    let body: Value =
        serde_json::from_slice(&ok.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["metadata"]["name"], "tiny.v1");
    assert_eq!(body["spec"]["kind"], "Command");
    assert_eq!(body["spec"]["size"], component.len());
    assert!(
        body["spec"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let content = api
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/apis/skiff.dev/v1alpha1/components/tiny.v1/content")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(
        content
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
        component
    );
}

#[tokio::test]
async fn discovery_and_health() {
    let api = api().await;
    assert_eq!(api.get("/version").await.body["major"], "1");
    let core = api.get("/api/v1").await;
    let names: Vec<&str> = core.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pods") && names.contains(&"namespaces") && names.contains(&"configmaps")
    );
    let groups = api.get("/apis").await;
    assert!(
        groups.body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps")
    );
    let request = Request::builder()
        .uri("/healthz")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        api.router.clone().oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    let openapi = api.get("/openapi/v3").await;
    assert!(
        openapi.body["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string(),
        "{}",
        openapi.body
    );
    assert_eq!(
        api.get("/api/v1/widgets").await.status,
        StatusCode::NOT_FOUND
    );

    // Prometheus text metrics count API requests by verb, resource and code.
    assert_eq!(
        api.get(&format!("{CMS}/missing")).await.status,
        StatusCode::NOT_FOUND
    );
    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let counted = text.lines().any(|l| {
        l.starts_with("apiserver_request_total{")
            && l.contains("verb=\"GET\"")
            && l.contains("resource=\"configmaps\"")
            && l.contains("code=\"404\"")
    });
    assert!(counted, "{text}");
}

/// A node's status report (`Registry::update_status_from`): only the status is
/// decoded and checked, it lands over the stored pod with the node's
/// managedFields entry, and a bad one is a 400 naming the field that stores
/// nothing.
#[tokio::test]
async fn a_node_status_report_is_checked_alone_and_written_over_the_stored_pod() {
    use skiff_control::registry::WriteOptions;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("store.redb"), StoreConfig::default()).unwrap();
    let registry = Registry::new(Arc::new(store));
    skiff_control::server::bootstrap(&registry).await.unwrap();
    let rt = skiff_api::resource::by_kind("v1", "Pod").unwrap();
    let opts = WriteOptions {
        field_manager: "skiff-node-gateway".into(),
        ..Default::default()
    };
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "hello:v1"}]},
    });
    let created = registry
        .create(rt, "default", pod, &opts)
        .await
        .unwrap()
        .object;

    let status = json!({
        "phase": "Running",
        "podIP": "10.42.0.7",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatusez": [],
    });
    let written = registry
        .update_status_from(rt, created.clone(), status, &opts)
        .await
        .unwrap();
    let pod = written.object;
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["podIP"], "10.42.0.7");
    assert_eq!(pod["spec"], created["spec"], "the spec is the stored one");
    assert!(
        pod["status"].get("containerStatusez").is_none(),
        "unknown fields are pruned: {pod}"
    );
    assert_eq!(
        written.warnings,
        ["unknown field \"status.containerStatusez\""]
    );
    let entries = pod["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["manager"] == "skiff-node-gateway"
            && e["subresource"] == "status"
            && e["fieldsV1"]["f:status"]["f:phase"].is_object()),
        "{entries:?}"
    );

    let e = registry
        .update_status_from(rt, pod.clone(), json!({"phase": 7}), &opts)
        .await
        .unwrap_err();
    assert_eq!(e.code(), 400);
    assert!(e.message.contains("status.phase"), "{}", e.message);
    let stored = registry.get(rt, "default", "web").unwrap();
    assert_eq!(stored["status"]["phase"], "Running", "nothing was written");
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        pod["metadata"]["resourceVersion"]
    );
}
