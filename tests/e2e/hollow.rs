//! Hollow nodes against a real control plane in this process: they join with a
//! token over the QUIC gateway, their Nodes turn Ready, a pod created through
//! the API is bound to one of them and shows Running and Ready, a call to it is
//! refused in words, and deleting it removes it.

use skiff_testkit::api;

use std::time::Duration;

use api::Api;
use serde_json::{Value, json};
use skiff_control::{ControlPlane, ControlPlaneConfig};
use skiff_node::hollow::{HollowConfig, HollowNode, client_endpoint};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(60);
const HOLLOW_NODES: usize = 3;

fn condition(object: &Value, kind: &str) -> Option<String> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?
        .get("status")?
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_take_pods_and_report_them_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ControlPlaneConfig::new(dir.path().join("cp"));
    config.api_addr = "127.0.0.1:0".parse().expect("addr");
    config.quic_addr = "127.0.0.1:0".parse().expect("addr");
    let plane = ControlPlane::start(config).await.expect("control plane");
    let api = Api::new(plane.kubeconfig());
    let token = plane
        .create_reusable_join_token(None, "hollow test")
        .await
        .expect("join token");

    // One endpoint for all of them, as the benchmark does.
    let endpoint = client_endpoint(plane.quic_addr()).expect("endpoint");
    let mut nodes = Vec::new();
    for i in 0..HOLLOW_NODES {
        let mut config = HollowConfig::new(format!("hollow-{i}"));
        config
            .labels
            .insert("skiff.dev/hollow".into(), "true".into());
        let node = HollowNode::start(&endpoint, plane.quic_addr(), &token, config)
            .await
            .expect("hollow node joins");
        nodes.push(node);
    }
    for node in &nodes {
        tokio::time::timeout(DEADLINE, node.wait_connected())
            .await
            .expect("hollow node connects");
    }

    // Every Node is registered with its capacity, labels and Ready=True.
    let deadline = Instant::now() + DEADLINE;
    let listed = loop {
        let list = api.get("/api/v1/nodes").await.expect("list nodes").json();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() == HOLLOW_NODES
            && items
                .iter()
                .all(|n| condition(n, "Ready").as_deref() == Some("True"))
        {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "nodes not all Ready in time: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for node in &listed {
        let name = node["metadata"]["name"].as_str().expect("name");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], name);
        assert_eq!(node["metadata"]["labels"]["skiff.dev/hollow"], "true");
        assert_eq!(node["status"]["allocatable"]["cpu"], "4");
        // Reported as 16777216Ki and stored canonical, as Kubernetes stores
        // every quantity.
        assert_eq!(node["status"]["allocatable"]["memory"], "16Gi");
        assert_eq!(
            node["status"]["nodeInfo"]["containerRuntimeVersion"],
            "hollow://skiff"
        );
    }

    // A pod created through the API is bound to one of them and reported
    // Running and Ready, without anything run.
    let since = api
        .get("/api/v1/namespaces/default/pods")
        .await
        .expect("list pods")
        .json()["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    let mut watch = api
        .watch(&format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={since}"
        ))
        .await
        .expect("watch pods");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "hello:v1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    });
    let created = api
        .post_json("/api/v1/namespaces/default/pods", &pod)
        .await
        .expect("create pod");
    assert_eq!(created.status, 201, "{}", created.text());
    let event = watch
        .wait_for(Instant::now() + DEADLINE, |e| {
            e["object"]["status"]["phase"] == "Running"
                && condition(&e["object"], "Ready").as_deref() == Some("True")
        })
        .await
        .expect("the pod turns Running and Ready");
    let running = &event["object"];
    let node_name = running["spec"]["nodeName"].as_str().expect("bound");
    assert!(
        nodes.iter().any(|n| n.name() == node_name),
        "bound to {node_name}"
    );
    assert_eq!(condition(running, "PodScheduled").as_deref(), Some("True"));
    assert_eq!(
        condition(running, "ContainersReady").as_deref(),
        Some("True")
    );
    let container = &running["status"]["containerStatuses"][0];
    assert_eq!(container["name"], "app");
    assert_eq!(container["ready"], true);
    assert!(container["state"]["running"]["startedAt"].is_string());
    assert!(running["status"]["startTime"].is_string());
    let holder = nodes
        .iter()
        .find(|n| n.name() == node_name)
        .expect("the node");
    assert_eq!(holder.pods(), 1);

    // A hollow node runs nothing, and says so when asked for a log.
    let log = api
        .get("/api/v1/namespaces/default/pods/web/log")
        .await
        .expect("get log");
    assert_eq!(log.status, 503, "{}", log.text());
    assert!(log.text().contains("hollow node"), "{}", log.text());

    // Deleting it: the node acknowledges at once, and the pod is gone.
    let deleted = api
        .request(
            http::Method::DELETE,
            "/api/v1/namespaces/default/pods/web",
            "application/json",
            bytes::Bytes::new(),
        )
        .await
        .expect("delete pod");
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    watch
        .wait_for(Instant::now() + DEADLINE, |e| {
            e["type"] == "DELETED" && e["object"]["metadata"]["name"] == "web"
        })
        .await
        .expect("the pod is removed");
    let gone = api
        .get("/api/v1/namespaces/default/pods/web")
        .await
        .expect("get pod");
    assert_eq!(gone.status, 404, "{}", gone.text());
    let deadline = Instant::now() + DEADLINE;
    while holder.pods() != 0 {
        assert!(Instant::now() < deadline, "the node still holds the pod");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    drop(nodes);
    endpoint.close(quinn::VarInt::from_u32(0), b"test over");
    drop(plane);
}
