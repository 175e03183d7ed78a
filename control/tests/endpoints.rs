//! Service endpoints against a real control plane in this process, driven over
//! HTTP as a user and a node would drive it: a Service's EndpointSlices and
//! Endpoints follow its pods' IPs, readiness and deletion, go with the
//! Service, read sensibly in `kubectl get`, and a LoadBalancer Service lists
//! the Ready nodes.

use skiff_testkit::api;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use api::Api;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use skiff_control::{ControlPlane, ControlPlaneConfig};
use tokio::time::Instant;

/// Generous: two busy cores run these next to other builds.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);
const KUBECTL: &str = "/usr/bin/kubectl";
const NS: &str = "/api/v1/namespaces/default";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

struct Plane {
    plane: ControlPlane,
    api: Api,
    _dir: tempfile::TempDir,
}

async fn start() -> Plane {
    let dir = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start(ControlPlaneConfig {
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        quic_addr: "127.0.0.1:0".parse().expect("addr"),
        // The Nodes here are written over the API and never connect: they
        // must not be marked lost while the test runs.
        node_grace_period: Duration::from_secs(3600),
        ..ControlPlaneConfig::new(dir.path().join("plane"))
    })
    .await
    .expect("start the control plane");
    let api = Api::new(plane.kubeconfig());
    Plane {
        plane,
        api,
        _dir: dir,
    }
}

async fn call(api: &Api, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let reply = api
        .request(method.clone(), path, "application/json", body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
    let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, value)
}

async fn must(api: &Api, method: Method, path: &str, body: Value) -> Value {
    let (status, value) = call(api, method.clone(), path, &body).await;
    assert!(
        status.is_success(),
        "{method} {path} answered {status}: {value}"
    );
    value
}

/// Replaces an object's status through its `/status` subresource, as a node
/// reports it (again on a conflict: a controller may have written meanwhile).
async fn set_status(api: &Api, path: &str, status: Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut obj = must(api, Method::GET, path, Value::Null).await;
        obj["status"] = status.clone();
        let (code, body) = call(api, Method::PUT, &format!("{path}/status"), &obj).await;
        match code {
            c if c.is_success() => return,
            StatusCode::CONFLICT if Instant::now() < deadline => continue,
            c => panic!("PUT {path}/status answered {c}: {body}"),
        }
    }
}

/// Polls `path` until `done` holds of its JSON (or of `null` for a 404).
async fn wait_until(api: &Api, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, value) = call(api, Method::GET, path, &Value::Null).await;
        let value = if status == StatusCode::NOT_FOUND {
            Value::Null
        } else {
            value
        };
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}; last {path}: {value:#}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn create_node(api: &Api, name: &str, ip: &str, ready: &str) {
    must(
        api,
        Method::POST,
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"topology.kubernetes.io/zone": "zone-a"}}}),
    )
    .await;
    set_node_ready(api, name, ip, ready).await;
}

async fn set_node_ready(api: &Api, name: &str, ip: &str, ready: &str) {
    set_status(
        api,
        &format!("/api/v1/nodes/{name}"),
        json!({
            "conditions": [{"type": "Ready", "status": ready, "reason": "Test",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        }),
    )
    .await;
}

/// A pod of the web app bound to `node`; `named_port` gives its container
/// the port the Service's `http` targetPort names.
async fn create_pod(api: &Api, name: &str, node: &str, app: &str, named_port: bool) {
    let ports = if named_port {
        json!([{"name": "http", "containerPort": 8080}, {"containerPort": 9090}])
    } else {
        json!([{"containerPort": 9090}])
    };
    must(
        api,
        Method::POST,
        &format!("{NS}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": {"app": app}},
               "spec": {"nodeName": node, "containers": [{"name": "app", "image": "web:1", "ports": ports}]}}),
    )
    .await;
}

/// Reports the pod running at `ip`, Ready or not, as its node would.
async fn report_pod(api: &Api, name: &str, ip: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    set_status(
        api,
        &format!("{NS}/pods/{name}"),
        json!({
            "phase": "Running",
            "hostIP": "192.168.50.1",
            "hostIPs": [{"ip": "192.168.50.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        }),
    )
    .await;
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Every endpoint of the Service's slices, by pod name.
fn endpoints_by_pod(list: &Value) -> Vec<(String, Value, Value)> {
    let mut out: Vec<(String, Value, Value)> = items(list)
        .iter()
        .flat_map(|slice| {
            let ports = slice["ports"].clone();
            slice["endpoints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |e| {
                    let name = e["targetRef"]["name"].as_str().unwrap_or("").to_string();
                    (name, e, ports.clone())
                })
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn endpoint<'a>(eps: &'a [(String, Value, Value)], pod: &str) -> Option<&'a Value> {
    eps.iter().find(|(n, _, _)| n == pod).map(|(_, e, _)| e)
}

fn conditions(eps: &[(String, Value, Value)], pod: &str) -> Option<Value> {
    endpoint(eps, pod).map(|e| e["conditions"].clone())
}

/// The IPs under `field` (`addresses` or `notReadyAddresses`) of all subsets.
fn endpoints_ips(ep: &Value, field: &str) -> Vec<String> {
    let mut ips: Vec<String> = ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// `kubectl get ...` against the plane; its stdout.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let cache = tempfile::tempdir().expect("kubectl cache dir");
    let mut cmd = Command::new(KUBECTL);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", cache.path());
    let what = format!("kubectl {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join kubectl")
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The whitespace-separated cells of the table row whose first cell is `name`.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_slices_and_endpoints_follow_its_pods() {
    let Plane { plane, api, _dir } = start().await;
    create_node(&api, "n1", "192.168.50.1", "True").await;
    let svc = must(
        &api,
        Method::POST,
        &format!("{NS}/services"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "labels": {"team": "edge"}},
               "spec": {"selector": {"app": "web"}, "ports": [
                   {"name": "http", "port": 80, "targetPort": "http"},
                   {"name": "admin", "port": 9000, "targetPort": 9090}]}}),
    )
    .await;
    let svc_uid = svc["metadata"]["uid"].as_str().expect("uid").to_string();
    let by_service = format!("{SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dweb");

    // Before any pod: one empty placeholder slice, and an Endpoints of no subsets.
    let list = wait_until(&api, &by_service, "a placeholder slice", |l| {
        items(l).len() == 1
    })
    .await;
    let placeholder = &items(&list)[0];
    assert!(
        placeholder["endpoints"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    assert_eq!(placeholder["addressType"], "IPv4");
    let name = placeholder["metadata"]["name"].as_str().expect("name");
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 5,
        "{name}"
    );
    assert_eq!(
        placeholder["metadata"]["labels"],
        json!({"team": "edge", "kubernetes.io/service-name": "web",
               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
    );
    let owner = &placeholder["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            &owner["kind"],
            &owner["name"],
            &owner["uid"],
            &owner["controller"],
            &owner["blockOwnerDeletion"]
        ),
        (
            &json!("Service"),
            &json!("web"),
            &json!(svc_uid),
            &json!(true),
            &json!(true)
        )
    );
    wait_until(
        &api,
        &format!("{NS}/endpoints/web"),
        "an Endpoints object",
        |e| {
            !e.is_null()
                && e.get("subsets")
                    .is_none_or(|s| s.as_array().is_none_or(Vec::is_empty))
        },
    )
    .await;

    // Pods: two with the named port, one without, one of another app, and
    // one without an IP yet.
    for (pod, app, named) in [
        ("web-a", "web", true),
        ("web-b", "web", true),
        ("web-c", "web", false),
        ("web-pending", "web", true),
        ("db", "db", true),
    ] {
        create_pod(&api, pod, "n1", app, named).await;
    }
    report_pod(&api, "web-a", "10.244.1.10", true).await;
    report_pod(&api, "web-b", "10.244.1.11", true).await;
    report_pod(&api, "web-c", "10.244.1.12", true).await;
    report_pod(&api, "db", "10.244.1.13", true).await;

    let list = wait_until(&api, &by_service, "three pods as endpoints", |l| {
        endpoints_by_pod(l).len() == 3
    })
    .await;
    let eps = endpoints_by_pod(&list);
    let names: Vec<&str> = eps.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["web-a", "web-b", "web-c"]);
    let a = endpoint(&eps, "web-a").expect("web-a");
    assert_eq!(a["addresses"], json!(["10.244.1.10"]));
    assert_eq!(a["nodeName"], "n1");
    assert_eq!(a["zone"], "zone-a");
    assert_eq!(
        a["conditions"],
        json!({"ready": true, "serving": true, "terminating": false})
    );
    assert_eq!(a["targetRef"]["kind"], "Pod");
    assert_eq!(a["targetRef"]["namespace"], "default");
    assert!(
        a["targetRef"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    // Grouped by the ports they serve: web-c has no `http` port.
    let ports_of = |pod: &str| {
        let mut ports: Vec<(String, i64)> = eps
            .iter()
            .find(|(n, _, _)| n == pod)
            .map(|(_, _, p)| p.as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    p["port"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        ports.sort();
        ports
    };
    assert_eq!(
        ports_of("web-a"),
        [("admin".to_string(), 9090), ("http".to_string(), 8080)]
    );
    assert_eq!(ports_of("web-c"), [("admin".to_string(), 9090)]);
    assert_eq!(items(&list).len(), 2, "one slice per port set: {list:#}");

    let ep = wait_until(
        &api,
        &format!("{NS}/endpoints/web"),
        "ready addresses",
        |e| endpoints_ips(e, "addresses").len() == 3,
    )
    .await;
    assert_eq!(
        endpoints_ips(&ep, "addresses"),
        ["10.244.1.10", "10.244.1.11", "10.244.1.12"]
    );
    assert_eq!(ep["metadata"]["labels"], json!({"team": "edge"}));
    // Addresses serving the same ports share a subset: web-c serves only admin.
    let subset_of = |port: &str| {
        ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["ports"] == json!([{"name": port, "port": if port == "http" { 8080 } else { 9090 }, "protocol": "TCP"}]))
            .cloned()
            .unwrap_or_else(|| panic!("a subset of port {port} alone: {ep:#}"))
    };
    let http_subset = subset_of("http");
    assert_eq!(http_subset["addresses"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        subset_of("admin")["addresses"].as_array().map(Vec::len),
        Some(3)
    );
    let address = &http_subset["addresses"][0];
    assert_eq!(address["ip"], "10.244.1.10");
    assert_eq!(address["nodeName"], "n1");
    assert_eq!(address["targetRef"]["name"], "web-a");

    // What kubectl prints.
    let kubeconfig = plane.kubeconfig().to_path_buf();
    let table = kubectl(&kubeconfig, &["get", "endpointslices"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    let both = items(&list)
        .into_iter()
        .find(|s| s["ports"].as_array().is_some_and(|p| p.len() == 2))
        .expect("the slice of both ports");
    let cells = row(&table, both["metadata"]["name"].as_str().unwrap_or(""));
    assert_eq!(cells[1], "IPv4");
    let mut ports: Vec<&str> = cells[2].split(',').collect();
    ports.sort();
    assert_eq!(ports, ["8080", "9090"]);
    let mut ips: Vec<&str> = cells[3].split(',').collect();
    ips.sort();
    assert_eq!(ips, ["10.244.1.10", "10.244.1.11"]);
    let table = kubectl(&kubeconfig, &["get", "endpoints"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "ENDPOINTS", "AGE"]);
    let cells = row(&table, "web");
    assert!(
        cells[1].contains("10.244.1.10:8080") || cells[1].contains("10.244.1.10:9090"),
        "{table}"
    );
    assert!(cells.join(" ").contains("more..."), "{table}");

    // A pod going unready: not ready, not serving; a not-ready address.
    report_pod(&api, "web-b", "10.244.1.11", false).await;
    wait_until(&api, &by_service, "web-b not ready", |l| {
        conditions(&endpoints_by_pod(l), "web-b")
            == Some(json!({"ready": false, "serving": false, "terminating": false}))
    })
    .await;
    let ep = wait_until(
        &api,
        &format!("{NS}/endpoints/web"),
        "web-b not ready",
        |e| endpoints_ips(e, "notReadyAddresses") == ["10.244.1.11"],
    )
    .await;
    assert_eq!(
        endpoints_ips(&ep, "addresses"),
        ["10.244.1.10", "10.244.1.12"]
    );

    // Deleting a pod on a node is graceful: it terminates, still serving,
    // no longer ready, and the Endpoints drop it.
    must(
        &api,
        Method::DELETE,
        &format!("{NS}/pods/web-a"),
        Value::Null,
    )
    .await;
    wait_until(&api, &by_service, "web-a terminating", |l| {
        conditions(&endpoints_by_pod(l), "web-a")
            == Some(json!({"ready": false, "serving": true, "terminating": true}))
    })
    .await;
    let ep = wait_until(&api, &format!("{NS}/endpoints/web"), "web-a gone", |e| {
        endpoints_ips(e, "addresses") == ["10.244.1.12"]
    })
    .await;
    assert_eq!(endpoints_ips(&ep, "notReadyAddresses"), ["10.244.1.11"]);

    // Its node has stopped it: it is gone from the slices too.
    must(
        &api,
        Method::DELETE,
        &format!("{NS}/pods/web-a?gracePeriodSeconds=0"),
        Value::Null,
    )
    .await;
    wait_until(&api, &by_service, "web-a gone", |l| {
        endpoint(&endpoints_by_pod(l), "web-a").is_none()
    })
    .await;

    // The pod that had no IP gets one.
    report_pod(&api, "web-pending", "10.244.1.14", true).await;
    wait_until(&api, &by_service, "web-pending published", |l| {
        endpoint(&endpoints_by_pod(l), "web-pending")
            .is_some_and(|e| e["addresses"] == json!(["10.244.1.14"]))
    })
    .await;

    // The Service goes: its slices and its Endpoints go with it.
    must(
        &api,
        Method::DELETE,
        &format!("{NS}/services/web"),
        Value::Null,
    )
    .await;
    wait_until(&api, &by_service, "the slices gone", |l| {
        items(l).is_empty()
    })
    .await;
    wait_until(
        &api,
        &format!("{NS}/endpoints/web"),
        "the Endpoints gone",
        |e| e.is_null(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_selector_keeps_the_endpoints_its_user_writes() {
    let Plane { api, .. } = start().await;
    must(
        &api,
        Method::POST,
        &format!("{NS}/services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
               "spec": {"ports": [{"port": 5432}]}}),
    )
    .await;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "external-1", "labels": {"kubernetes.io/service-name": "external"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.168.60.5"], "conditions": {"ready": true}}],
        "ports": [{"name": "", "port": 5432, "protocol": "TCP"}],
    });
    must(&api, Method::POST, SLICES, slice).await;
    must(
        &api,
        Method::POST,
        &format!("{NS}/endpoints"),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external"},
               "subsets": [{"addresses": [{"ip": "192.168.60.5"}], "ports": [{"port": 5432}]}]}),
    )
    .await;
    // A pod-backed Service next to it, so that the controllers are known to
    // have run since.
    create_node(&api, "n1", "192.168.50.1", "True").await;
    create_pod(&api, "web-a", "n1", "web", true).await;
    report_pod(&api, "web-a", "10.244.1.10", true).await;
    must(
        &api,
        Method::POST,
        &format!("{NS}/services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
    )
    .await;
    wait_until(
        &api,
        &format!("{NS}/endpoints/web"),
        "web's endpoints",
        |e| endpoints_ips(e, "addresses") == ["10.244.1.10"],
    )
    .await;
    let list = must(
        &api,
        Method::GET,
        &format!("{SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dexternal"),
        Value::Null,
    )
    .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["external-1"]);
    let ep = must(
        &api,
        Method::GET,
        &format!("{NS}/endpoints/external"),
        Value::Null,
    )
    .await;
    assert_eq!(endpoints_ips(&ep, "addresses"), ["192.168.60.5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_lists_the_ready_nodes() {
    let Plane { plane, api, _dir } = start().await;
    create_node(&api, "n1", "192.168.50.1", "True").await;
    create_node(&api, "n2", "192.168.50.2", "True").await;
    create_node(&api, "n3", "192.168.50.3", "False").await;
    must(
        &api,
        Method::POST,
        &format!("{NS}/services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front"},
               "spec": {"type": "LoadBalancer", "selector": {"app": "front"},
                        "ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .await;
    let svc_path = format!("{NS}/services/front");
    let ingress = |ips: &'static [&'static str]| {
        move |svc: &Value| {
            let want: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
            svc["status"]["loadBalancer"]["ingress"] == json!(want)
        }
    };
    wait_until(
        &api,
        &svc_path,
        "the two Ready nodes",
        ingress(&["192.168.50.1", "192.168.50.2"]),
    )
    .await;
    let table = kubectl(plane.kubeconfig(), &["get", "service", "front"]).await;
    assert_eq!(
        row(&table, "front")[3],
        "192.168.50.1,192.168.50.2",
        "{table}"
    );

    set_node_ready(&api, "n3", "192.168.50.3", "True").await;
    wait_until(
        &api,
        &svc_path,
        "n3 once Ready",
        ingress(&["192.168.50.1", "192.168.50.2", "192.168.50.3"]),
    )
    .await;
    must(&api, Method::DELETE, "/api/v1/nodes/n1", Value::Null).await;
    set_node_ready(&api, "n2", "192.168.50.2", "Unknown").await;
    wait_until(
        &api,
        &svc_path,
        "n1 deleted and n2 lost",
        ingress(&["192.168.50.3"]),
    )
    .await;
}
