//! The pod supervisor running real pods: the sample guests built from source, run
//! by the real runtime (wasmtime), with only the image fetch replaced by a test
//! double that serves the built files. Assertions are on what a user sees: the
//! reported pod statuses and Events, HTTP answers and logs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use skiff_node::supervisor::{
    ImageSource, PodAccessError, PodEvent, PodSupervisor, PullError, PullFuture, PulledImage,
    Report, SupervisorConfig,
};
use skiff_runtime::{Component, Engine, EngineConfig};
use tokio::sync::{Notify, mpsc};

/// How long any one condition may take to appear (2 busy cores).
const DEADLINE: Duration = Duration::from_secs(60);

use skiff_testkit::samples::samples_dir;

/// One engine for the whole test binary (an engine is not tied to a tokio
/// runtime), so that each sample is compiled once between all the tests.
fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::new(EngineConfig {
                max_instances: 128,
                max_memory_size: 256 << 20,
                ..EngineConfig::default()
            })
            .expect("engine")
        })
        .clone()
}

/// The samples compiled so far.
fn compiled() -> &'static Mutex<HashMap<String, Component>> {
    static COMPILED: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    COMPILED.get_or_init(Mutex::default)
}

/// The test double for the control plane's component store: `NAME:TAG` is the
/// sample `NAME`, compiled by the real engine.
struct SampleImages {
    engine: Engine,
    pulled: Mutex<HashSet<String>>,
}

impl ImageSource for SampleImages {
    fn pull<'a>(&'a self, image: &'a str) -> PullFuture<'a> {
        Box::pin(async move {
            let name = image.split(':').next().unwrap_or(image).to_string();
            let known = [
                "hello", "echo", "counter", "crasher", "spinner", "hog", "pi", "ticker",
            ];
            if !known.contains(&name.as_str()) {
                return Err(PullError::Refused(format!(
                    "component {image:?} not found in the cluster"
                )));
            }
            let cached = compiled().lock().expect("lock").get(&name).cloned();
            let component = match cached {
                Some(c) => c,
                None => {
                    let engine = self.engine.clone();
                    let path = samples_dir().join(format!("{name}.wasm"));
                    let digest = name.clone();
                    let c = tokio::task::spawn_blocking(move || {
                        let bytes = std::fs::read(&path).map_err(|source| PullError::Disk {
                            action: "read",
                            path,
                            source,
                        })?;
                        engine
                            .load(&bytes)
                            .map_err(|source| PullError::Compile { digest, source })
                    })
                    .await
                    .expect("the compile task")?;
                    compiled()
                        .lock()
                        .expect("lock")
                        .insert(name.clone(), c.clone());
                    c
                }
            };
            let was_present = !self.pulled.lock().expect("lock").insert(image.to_string());
            Ok(PulledImage {
                image_id: component.digest().to_string(),
                component,
                was_present,
            })
        })
    }
}

/// Everything the supervisor reported, in order.
#[derive(Default)]
struct Reports {
    all: Mutex<Vec<Report>>,
    changed: Notify,
}

/// A supervisor, its reports, and its pod directory.
struct Node {
    sup: Arc<PodSupervisor>,
    reports: Arc<Reports>,
    dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine();
        let images = Arc::new(SampleImages {
            engine: engine.clone(),
            pulled: Mutex::default(),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reports = Arc::new(Reports::default());
        let sink = reports.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                sink.all.lock().expect("lock").push(r);
                sink.changed.notify_waiters();
            }
        });
        let sup = PodSupervisor::new(
            engine,
            images,
            tx,
            SupervisorConfig {
                node_name: "node-1".into(),
                pods_dir: dir.path().join("pods"),
                restart_backoff_base: Duration::from_millis(200),
                restart_backoff_max: Duration::from_secs(5),
                host_ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                ..SupervisorConfig::default()
            },
        );
        Self {
            sup: Arc::new(sup),
            reports,
            dir,
        }
    }

    fn reports(&self) -> Vec<Report> {
        self.reports.all.lock().expect("lock").clone()
    }

    /// Wait until `f` finds something in the reports so far.
    async fn wait<T>(&self, what: &str, f: impl Fn(&[Report]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let changed = self.reports.changed.notified();
            if let Some(found) = f(&self.reports()) {
                return found;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out waiting for {what}; reports:\n{}", self.dump());
            }
        }
    }

    /// Wait for a status of pod `name` for which `f` holds; returns it.
    async fn wait_status(&self, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        self.wait(&format!("{name}: {what}"), |rs| {
            statuses(rs, name).into_iter().rev().find(|s| f(s))
        })
        .await
    }

    async fn wait_event(&self, name: &str, reason: &str, text: &str) -> PodEvent {
        self.wait(&format!("{name}: event {reason} {text:?}"), |rs| {
            events(rs, name)
                .into_iter()
                .find(|e| e.reason == reason && e.message.contains(text))
        })
        .await
    }

    async fn wait_terminated(&self, name: &str) {
        self.wait(&format!("{name}: Terminated"), |rs| {
            rs.iter()
                .any(|r| matches!(r, Report::Terminated { name: n, .. } if n == name))
                .then_some(())
        })
        .await
    }

    fn dump(&self) -> String {
        self.reports()
            .iter()
            .map(|r| match r {
                Report::Status { name, status, .. } => format!(
                    "  status {name}: {} {}",
                    status["phase"], status["containerStatuses"]
                ),
                Report::Event(e) => format!(
                    "  event {}: {} {} {}",
                    e.pod_name, e.event_type, e.reason, e.message
                ),
                Report::Terminated { name, .. } => format!("  terminated {name}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn statuses(reports: &[Report], pod: &str) -> Vec<Value> {
    reports
        .iter()
        .filter_map(|r| match r {
            Report::Status { name, status, .. } if name == pod => Some(status.clone()),
            _ => None,
        })
        .collect()
}

fn events(reports: &[Report], pod: &str) -> Vec<PodEvent> {
    reports
        .iter()
        .filter_map(|r| match r {
            Report::Event(e) if e.pod_name == pod => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn pod_json(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"app": name}},
        "spec": spec,
    })
}

fn pod(v: &Value) -> Pod {
    serde_json::from_value(v.clone()).expect("a valid pod")
}

/// The pod as the API server has it once deleted gracefully.
fn deleted(v: &Value, grace: i64) -> Pod {
    let mut v = v.clone();
    v["metadata"]["deletionTimestamp"] = json!(skiff_api::meta::now_timestamp());
    v["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    pod(&v)
}

fn get(path: &str) -> http::Request<skiff_runtime::Body> {
    http::Request::get(path)
        .body(skiff_runtime::bodies::empty())
        .expect("request")
}

/// The response with its whole body (which also ends the request).
async fn whole(resp: http::Response<skiff_runtime::Body>) -> http::Response<Bytes> {
    use http_body_util::BodyExt;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("the whole body").to_bytes();
    http::Response::from_parts(parts, body)
}

fn text(resp: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn is_ready(status: &Value) -> bool {
    condition(status, "Ready")["status"] == "True"
}

/// Wait until `log` has a line containing `needle`.
async fn wait_log(log: &skiff_runtime::LogBuffer, needle: &str) {
    let waiting = async {
        loop {
            let changed = log.changed();
            if log.text().contains(needle) {
                return;
            }
            assert!(
                !log.is_closed(),
                "log closed without {needle:?}: {}",
                log.text()
            );
            changed.await;
        }
    };
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in the log: {}", log.text()));
}

fn probe(path: &str) -> Value {
    json!({"httpGet": {"path": path, "port": 8080}, "periodSeconds": 1})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_becomes_ready_and_answers() {
    let node = Node::start();
    let hello = pod_json(
        "hello-1",
        json!({"containers": [{
            "name": "hello", "image": "hello:v1",
            "ports": [{"containerPort": 8080}],
            "readinessProbe": probe("/healthz"),
        }]}),
    );
    node.sup.upsert(pod(&hello));
    let status = node
        .wait_status("hello-1", "Running and Ready", |s| {
            s["phase"] == "Running" && is_ready(s)
        })
        .await;
    let c = &status["containerStatuses"][0];
    assert_eq!(c["ready"], true, "{status}");
    assert_eq!(c["started"], true);
    assert_eq!(c["restartCount"], 0);
    assert!(c["state"]["running"]["startedAt"].is_string(), "{c}");
    assert!(
        c["imageID"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{c}"
    );
    assert_eq!(condition(&status, "Initialized")["status"], "True");
    assert_eq!(condition(&status, "PodScheduled")["status"], "True");
    let first = statuses(&node.reports(), "hello-1").remove(0);
    assert_eq!(first["phase"], "Pending", "{first}");
    assert_eq!(
        first["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    let pulled = node.wait_event("hello-1", "Pulled", "hello:v1").await;
    assert_eq!(pulled.field_path.as_deref(), Some("spec.containers{hello}"));
    node.wait_event("hello-1", "Created", "Created container: hello")
        .await;
    node.wait_event("hello-1", "Started", "Started container hello")
        .await;

    let resp = node
        .sup
        .serve("default", "hello-1", None, get("/"))
        .await
        .expect("hello answers");
    let resp = whole(resp).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp).trim(), "Hello from hello-1!");
    let resp = node
        .sup
        .serve("default", "hello-1", Some(8080), get("/"))
        .await
        .expect("by port");
    let resp = whole(resp).await;
    assert_eq!(text(&resp).trim(), "Hello from hello-1!");

    // Unchanged pods are left alone by a sync; the log is there to read.
    node.sup.sync(vec![pod(&hello)]);
    assert!(node.sup.logs("default", "hello-1", None, false).is_ok());
    let err = node
        .sup
        .logs("default", "hello-1", None, true)
        .expect_err("no previous instance");
    assert_eq!(
        err.to_string(),
        "previous terminated container \"hello\" in pod \"hello-1\" not found"
    );
    assert!(matches!(err, PodAccessError::BadRequest(_)));
    let err = node
        .sup
        .serve("default", "nope", None, get("/"))
        .await
        .expect_err("unknown pod");
    assert!(matches!(err, PodAccessError::NotFound(_)), "{err}");
    let err = node
        .sup
        .logs("default", "nope", None, false)
        .expect_err("unknown pod");
    assert_eq!(err.to_string(), "pods \"nope\" not found");

    // A pod with two containers: routed by port, and logs need a name.
    let two = pod_json(
        "two",
        json!({"containers": [
            {"name": "hello", "image": "hello:v1", "ports": [{"containerPort": 8080}]},
            {"name": "echo", "image": "echo:v1", "ports": [{"containerPort": 9090}],
             "env": [{"name": "ECHO_ENV", "value": "APP,NODE"},
                     {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                     {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
        ]}),
    );
    node.sup.upsert(pod(&two));
    node.wait_status("two", "Ready", is_ready).await;
    let resp = node
        .sup
        .serve("default", "two", Some(9090), get("/x"))
        .await
        .expect("echo answers");
    let resp = whole(resp).await;
    let body = text(&resp);
    assert!(body.contains("\"path\":\"/x\""), "{body}");
    assert!(body.contains("\"APP\":\"two\""), "{body}");
    assert!(body.contains("\"NODE\":\"node-1\""), "{body}");
    let err = node
        .sup
        .logs("default", "two", None, false)
        .expect_err("which container?");
    assert_eq!(
        err.to_string(),
        "a container name must be specified for pod two, choose one of: [hello echo]"
    );
    assert!(node.sup.logs("default", "two", Some("echo"), false).is_ok());

    // A pod that is no longer bound here stops, silently.
    node.sup.sync(vec![pod(&hello)]);
    let err = node
        .sup
        .serve("default", "two", None, get("/"))
        .await
        .expect_err("gone");
    assert!(matches!(err, PodAccessError::NotFound(_)), "{err}");
    node.sup.remove("uid-hello-1");
    let err = node
        .sup
        .serve("default", "hello-1", None, get("/"))
        .await
        .expect_err("gone");
    assert!(matches!(err, PodAccessError::NotFound(_)), "{err}");
    assert!(
        !node
            .reports()
            .iter()
            .any(|r| matches!(r, Report::Terminated { .. })),
        "only a deletion reports Terminated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_restarts_its_container() {
    let node = Node::start();
    let v1 = pod_json(
        "app-1",
        json!({"containers": [{"name": "app", "image": "hello:v1"}]}),
    );
    node.sup.upsert(pod(&v1));
    node.wait_status("app-1", "Ready", is_ready).await;
    let mut v2 = v1.clone();
    v2["spec"]["containers"][0]["image"] = json!("echo:v1");
    node.sup.upsert(pod(&v2));
    node.wait_event(
        "app-1",
        "Killing",
        "Container app definition changed, will be restarted",
    )
    .await;
    let status = node
        .wait_status("app-1", "running the new image", |s| {
            let c = &s["containerStatuses"][0];
            c["image"] == "echo:v1" && c["ready"] == true
        })
        .await;
    assert_eq!(
        status["containerStatuses"][0]["restartCount"], 1,
        "{status}"
    );
    let resp = node
        .sup
        .serve("default", "app-1", None, get("/new"))
        .await
        .expect("echo answers");
    let resp = whole(resp).await;
    assert!(text(&resp).contains("\"path\":\"/new\""), "{}", text(&resp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_crashes_at_start_backs_off() {
    let node = Node::start();
    let crasher = pod_json(
        "crasher-1",
        json!({"containers": [{
            "name": "crasher", "image": "crasher:v1",
            "env": [{"name": "CRASH_AT_START", "value": "1"}],
            "readinessProbe": probe("/healthz"),
        }]}),
    );
    node.sup.upsert(pod(&crasher));
    let status = node
        .wait_status("crasher-1", "restartCount >= 3 in CrashLoopBackOff", |s| {
            let c = &s["containerStatuses"][0];
            c["restartCount"].as_i64() >= Some(3)
                && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
    assert_eq!(status["phase"], "Running", "restartPolicy Always: {status}");
    assert_eq!(condition(&status, "Ready")["status"], "False");
    let c = &status["containerStatuses"][0];
    assert_eq!(c["ready"], false);
    let last = &c["lastState"]["terminated"];
    assert_eq!(last["reason"], "Error", "{c}");
    assert_eq!(last["exitCode"], 1);
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("crasher-1") && m.contains("trapped")),
        "{last}"
    );
    // The delay grows: 200 ms, 400 ms, 800 ms ...
    let delays: Vec<String> = statuses(&node.reports(), "crasher-1")
        .iter()
        .filter_map(|s| {
            s["containerStatuses"][0]["state"]["waiting"]["message"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|m| m.starts_with("back-off"))
        .collect();
    let mut distinct = delays.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 2
            && distinct[0].starts_with("back-off 200ms ")
            && distinct[1].starts_with("back-off 400ms "),
        "{distinct:?}"
    );
    assert_eq!(
        distinct[0],
        "back-off 200ms restarting failed container=crasher pod=crasher-1_default(uid-crasher-1)"
    );
    let backoff = node
        .wait_event(
            "crasher-1",
            "BackOff",
            "Back-off restarting failed container",
        )
        .await;
    assert_eq!(backoff.event_type, "Warning");
    assert_eq!(
        backoff.message,
        "Back-off restarting failed container crasher in pod crasher-1_default(uid-crasher-1)"
    );
    let err = node
        .sup
        .serve("default", "crasher-1", None, get("/"))
        .await
        .expect_err("not running");
    assert!(matches!(err, PodAccessError::Unavailable(_)), "{err}");

    // The instance before the last restart left its panic in its log.
    let previous = node
        .sup
        .logs("default", "crasher-1", None, true)
        .expect("previous log");
    assert!(
        previous.text().contains("CRASH_AT_START=1"),
        "{}",
        previous.text()
    );
    assert!(previous.is_closed(), "an ended instance's log is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let node = Node::start();
    // hog answers 400 to a malformed /grow: the liveness probe fails while the
    // container itself is fine (and ready).
    let hog = pod_json(
        "hog-1",
        json!({"containers": [{
            "name": "hog", "image": "hog:v1",
            "readinessProbe": probe("/healthz"),
            "livenessProbe": {"httpGet": {"path": "/grow?mb=lots", "port": 8080},
                              "initialDelaySeconds": 1, "periodSeconds": 1, "failureThreshold": 2},
        }]}),
    );
    node.sup.upsert(pod(&hog));
    node.wait_status("hog-1", "Ready", is_ready).await;
    let status = node
        .wait_status("hog-1", "restarted after the liveness probe", |s| {
            s["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
        })
        .await;
    let last = &status["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{status}");
    assert_eq!(last["reason"], "Error");
    let unhealthy = node
        .wait_event(
            "hog-1",
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 400",
        )
        .await;
    assert_eq!(unhealthy.event_type, "Warning");
    let killing = node
        .wait_event(
            "hog-1",
            "Killing",
            "Container hog failed liveness probe, will be restarted",
        )
        .await;
    assert_eq!(killing.event_type, "Normal");
    // It comes back and is ready again, then is killed again, with back-off.
    node.wait_status("hog-1", "restarted twice", |s| {
        s["containerStatuses"][0]["restartCount"].as_i64() >= Some(2)
    })
    .await;
    let previous = node
        .sup
        .logs("default", "hog-1", Some("hog"), true)
        .expect("a previous instance");
    assert!(previous.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_pod_runs_to_completion() {
    let node = Node::start();
    let pi = pod_json(
        "pi-1",
        json!({"restartPolicy": "Never", "containers": [{
            "name": "pi", "image": "pi:v1", "command": ["pi"], "args": ["50"],
        }]}),
    );
    node.sup.upsert(pod(&pi));
    let status = node
        .wait_status("pi-1", "Succeeded", |s| s["phase"] == "Succeeded")
        .await;
    let c = &status["containerStatuses"][0];
    assert_eq!(c["state"]["terminated"]["reason"], "Completed", "{c}");
    assert_eq!(c["state"]["terminated"]["exitCode"], 0);
    assert_eq!(c["ready"], false);
    assert_eq!(condition(&status, "Ready")["reason"], "PodCompleted");
    let log = node
        .sup
        .logs("default", "pi-1", None, false)
        .expect("pi's log");
    assert_eq!(
        log.text().trim(),
        "3.14159265358979323846264338327950288419716939937510"
    );
    assert!(log.is_closed());
    let file = node.dir.path().join("pods/uid-pi-1/pi.log");
    let on_disk = std::fs::read_to_string(&file).expect("log file");
    assert!(on_disk.contains("stdout 3.14159"), "{on_disk}");

    // A failing command under Never fails the pod; under OnFailure it restarts.
    let bad = pod_json(
        "pi-bad",
        json!({"restartPolicy": "Never", "containers": [{
            "name": "pi", "image": "pi:v1", "args": ["many"],
        }]}),
    );
    node.sup.upsert(pod(&bad));
    let status = node
        .wait_status("pi-bad", "Failed", |s| s["phase"] == "Failed")
        .await;
    let t = &status["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 1, "{status}");
    assert_eq!(t["reason"], "Error");
    let retry = pod_json(
        "pi-retry",
        json!({"restartPolicy": "OnFailure", "containers": [{
            "name": "pi", "image": "pi:v1", "args": ["many"],
        }]}),
    );
    node.sup.upsert(pod(&retry));
    let status = node
        .wait_status("pi-retry", "restarted", |s| {
            s["containerStatuses"][0]["restartCount"].as_i64() >= Some(2)
        })
        .await;
    assert_eq!(status["phase"], "Running", "{status}");
    let previous = node
        .sup
        .logs("default", "pi-retry", None, true)
        .expect("previous");
    assert!(
        previous
            .text()
            .contains("digit count must be a whole number"),
        "{}",
        previous.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_first() {
    let node = Node::start();
    let web = pod_json(
        "web-1",
        json!({
            "initContainers": [{"name": "warmup", "image": "pi:v1", "args": ["20"]}],
            "containers": [{"name": "hello", "image": "hello:v1"}],
        }),
    );
    node.sup.upsert(pod(&web));
    let status = node
        .wait_status("web-1", "Ready", |s| s["phase"] == "Running" && is_ready(s))
        .await;
    let first = statuses(&node.reports(), "web-1").remove(0);
    assert_eq!(
        first["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(first["phase"], "Pending");
    let init = &status["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init}");
    assert_eq!(condition(&status, "Initialized")["status"], "True");
    // The main container was created only after the init container finished.
    let evs = events(&node.reports(), "web-1");
    let pos = |reason: &str, path: &str| {
        evs.iter()
            .position(|e| e.reason == reason && e.field_path.as_deref() == Some(path))
            .unwrap_or_else(|| panic!("no {reason} for {path}: {evs:?}"))
    };
    assert!(
        pos("Started", "spec.initContainers{warmup}") < pos("Created", "spec.containers{hello}")
    );
    let statuses = statuses(&node.reports(), "web-1");
    let init_done = statuses
        .iter()
        .position(|s| !s["initContainerStatuses"][0]["state"]["terminated"].is_null())
        .expect("init completed");
    let main_running = statuses
        .iter()
        .position(|s| !s["containerStatuses"][0]["state"]["running"].is_null())
        .expect("main running");
    assert!(init_done < main_running);
    let log = node
        .sup
        .logs("default", "web-1", Some("warmup"), false)
        .expect("init log");
    assert_eq!(log.text().trim(), "3.14159265358979323846");

    // A failing init container under Never fails the pod; the main one never runs.
    let broken = pod_json(
        "broken-1",
        json!({
            "restartPolicy": "Never",
            "initContainers": [{"name": "warmup", "image": "pi:v1", "args": ["nope"]}],
            "containers": [{"name": "hello", "image": "hello:v1"}],
        }),
    );
    node.sup.upsert(pod(&broken));
    let status = node
        .wait_status("broken-1", "Failed", |s| s["phase"] == "Failed")
        .await;
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing",
        "{status}"
    );
    assert_eq!(condition(&status, "Initialized")["status"], "False");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_serves_until_the_main_container_is_done() {
    let node = Node::start();
    let job = pod_json(
        "job-1",
        json!({
            "restartPolicy": "Never",
            "initContainers": [{"name": "web", "image": "hello:v1", "restartPolicy": "Always"}],
            "containers": [{"name": "pi", "image": "pi:v1", "args": ["3000"]}],
        }),
    );
    node.sup.upsert(pod(&job));
    // Like Kubernetes, the phase follows the main containers; the sidecar is
    // then stopped.
    let status = node
        .wait_status("job-1", "Succeeded with the sidecar stopped", |s| {
            s["phase"] == "Succeeded"
                && s["initContainerStatuses"][0]["state"]["terminated"].is_object()
        })
        .await;
    let sidecar = &status["initContainerStatuses"][0];
    assert_eq!(
        sidecar["state"]["terminated"]["reason"], "Completed",
        "the sidecar is stopped once the main container is done: {status}"
    );
    // While the main container ran, the sidecar served.
    let all = statuses(&node.reports(), "job-1");
    assert!(
        all.iter()
            .any(|s| s["initContainerStatuses"][0]["ready"] == true
                && s["containerStatuses"][0]["state"]["running"].is_object()),
        "{all:?}"
    );
    let evs = events(&node.reports(), "job-1");
    let pos = |reason: &str, path: &str| {
        evs.iter()
            .position(|e| e.reason == reason && e.field_path.as_deref() == Some(path))
            .unwrap_or_else(|| panic!("no {reason} for {path}: {evs:?}"))
    };
    assert!(pos("Started", "spec.initContainers{web}") < pos("Created", "spec.containers{pi}"));
    assert!(pos("Killing", "spec.initContainers{web}") > pos("Started", "spec.containers{pi}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deletion_drains_requests_in_flight() {
    let node = Node::start();
    let spinner = pod_json(
        "spinner-1",
        json!({"terminationGracePeriodSeconds": 20, "containers": [{
            "name": "spinner", "image": "spinner:v1",
        }]}),
    );
    node.sup.upsert(pod(&spinner));
    node.wait_status("spinner-1", "Ready", is_ready).await;

    let slow = node
        .sup
        .serve("default", "spinner-1", None, get("/spin?ms=1500"));
    tokio::pin!(slow);
    // One poll lets the request in and starts its instance.
    assert!(futures::poll!(&mut slow).is_pending());
    node.sup.upsert(deleted(&spinner, 20));
    let err = node
        .sup
        .serve("default", "spinner-1", None, get("/"))
        .await
        .expect_err("no new requests once terminating");
    assert!(matches!(err, PodAccessError::Unavailable(_)), "{err}");
    let not_ready = node
        .wait_status("spinner-1", "not Ready after deletion", |s| {
            !is_ready(s) && s["containerStatuses"][0]["state"]["running"].is_object()
        })
        .await;
    assert_eq!(condition(&not_ready, "ContainersReady")["status"], "False");
    node.wait_event("spinner-1", "Killing", "Stopping container spinner")
        .await;

    let resp = slow.await.expect("the request in flight completes");
    let resp = whole(resp).await;
    assert_eq!(resp.status(), 200);
    assert!(text(&resp).starts_with("spun 1500 ms"), "{}", text(&resp));
    node.wait_terminated("spinner-1").await;
    let reports = node.reports();
    let last = statuses(&reports, "spinner-1")
        .pop()
        .expect("a final status");
    assert_eq!(last["phase"], "Succeeded", "{last}");
    let t = &last["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "Completed", "drained, not killed: {t}");
    assert_eq!(t["exitCode"], 0);
    let terminated_at = reports
        .iter()
        .position(|r| matches!(r, Report::Terminated { .. }))
        .expect("terminated");
    let final_at = reports
        .iter()
        .rposition(|r| matches!(r, Report::Status { .. }))
        .expect("status");
    assert!(final_at < terminated_at, "final status, then Terminated");
    assert!(
        !node.dir.path().join("pods/uid-spinner-1").exists(),
        "the pod's files are removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_command_pod_stops_it_within_its_grace_period() {
    let node = Node::start();
    let ticker = pod_json(
        "ticker-1",
        json!({"containers": [{
            "name": "ticker", "image": "ticker:v1",
            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
        }]}),
    );
    node.sup.upsert(pod(&ticker));
    node.wait_status("ticker-1", "Ready", is_ready).await;
    let log = node
        .sup
        .logs("default", "ticker-1", None, false)
        .expect("log");
    // Follow the log as `kubectl logs -f` would, until the instance ends.
    let followed = log.clone();
    let follower = tokio::spawn(async move {
        let log = followed;
        let mut seen = 0;
        let mut lines = Vec::new();
        loop {
            let batch = log.next_lines(seen).await;
            let Some(last) = batch.last() else { break };
            seen = last.seq;
            lines.extend(batch.into_iter().map(|l| l.text));
        }
        lines
    });
    wait_log(&log, "tick 1").await;
    let started = tokio::time::Instant::now();
    node.sup.upsert(deleted(&ticker, 2));
    node.wait_terminated("ticker-1").await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped by the grace period, not the default"
    );
    let last = statuses(&node.reports(), "ticker-1").pop().expect("final");
    let t = &last["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        t["exitCode"], 137,
        "WASI has no SIGTERM: killed at the end: {t}"
    );
    assert_eq!(last["phase"], "Failed");
    let lines = tokio::time::timeout(DEADLINE, follower)
        .await
        .expect("the follower ends with the instance")
        .expect("join");
    assert!(lines.iter().any(|l| l == "tick 1"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_cannot_start_say_why() {
    let node = Node::start();
    node.sup.upsert(pod(&pod_json(
        "missing-1",
        json!({"containers": [{"name": "app", "image": "nothere:v1"}]}),
    )));
    node.sup.upsert(pod(&pod_json(
        "config-1",
        json!({"containers": [{"name": "app", "image": "hello:v1", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}},
        ]}]}),
    )));
    let status = node
        .wait_status("missing-1", "ImagePullBackOff", |s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
        .await;
    let w = &status["containerStatuses"][0]["state"]["waiting"];
    assert!(
        w["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found in the cluster")),
        "{w}"
    );
    assert_eq!(status["phase"], "Pending");
    assert!(
        statuses(&node.reports(), "missing-1")
            .iter()
            .any(|s| s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull")
    );
    let failed = node
        .wait_event("missing-1", "Failed", "Failed to pull image \"nothere:v1\"")
        .await;
    assert_eq!(failed.event_type, "Warning");

    let status = node
        .wait_status("config-1", "CreateContainerConfigError", |s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        })
        .await;
    let message = status["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(message, "configmap \"settings\" not found");
    node.wait_event(
        "config-1",
        "Failed",
        "Error: configmap \"settings\" not found",
    )
    .await;
    // The ConfigMap arrives: the container starts without a new pod.
    node.sup
        .objects()
        .upsert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": "default", "name": "settings"}, "data": {"x": "1"}}));
    node.wait_status("config-1", "Ready", is_ready).await;

    // Deleting them reports a final status and Terminated promptly.
    node.sup.upsert(deleted(
        &pod_json(
            "missing-1",
            json!({"containers": [{"name": "app", "image": "nothere:v1"}]}),
        ),
        30,
    ));
    node.wait_terminated("missing-1").await;
    let last = statuses(&node.reports(), "missing-1").pop().expect("final");
    assert_eq!(last["phase"], "Failed", "{last}");

    // Node shutdown stops the rest without reporting them Terminated.
    tokio::time::timeout(DEADLINE, node.sup.shutdown())
        .await
        .expect("shutdown ends");
    assert!(
        !node
            .reports()
            .iter()
            .any(|r| matches!(r, Report::Terminated { name, .. } if name == "config-1"))
    );
}
