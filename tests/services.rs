//! Services end to end on a real cluster (a control plane and two `skiff node`
//! processes on their own loopback addresses), driven by the real kubectl: a
//! NodePort Service spreads requests over every ready pod, on its own node and
//! the other one; a scaled-down pod gets no more requests once its endpoint is
//! gone; a Service without ready pods answers 503; `sessionAffinity: ClientIP`
//! keeps a client on one pod.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/node.rs"]
mod node;
#[path = "support/objects.rs"]
mod objects;
#[path = "support/samples.rs"]
mod samples;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster::{Kubectl, Server, Skiff, http_get, wait_until};
use node::NodeProcess;
use objects::{apply, condition, get_json, push_samples, token, wait_node_ready};
use serde_json::Value;

/// A control plane and nodes n1 (127.0.0.2), n2 (127.0.0.3): distinct
/// addresses, so each node has its own NodePorts.
struct Cluster {
    server: Server,
    kubectl: Kubectl,
    _nodes: Vec<NodeProcess>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("cp"));
        let kubectl = Kubectl::new(&server.kubeconfig());
        let skiff = Skiff::new(&server.kubeconfig());
        push_samples(&skiff, &["hello"]);
        let token = token(&skiff);
        let mut nodes = Vec::new();
        for (name, address) in [("n1", "127.0.0.2"), ("n2", "127.0.0.3")] {
            nodes.push(NodeProcess::start(
                server.quic_addr(),
                name,
                &dir.path().join(name),
                Some(&token),
                &["--address", address],
            ));
            wait_node_ready(&server, name);
        }
        Cluster {
            server,
            kubectl,
            _nodes: nodes,
            dir,
        }
    }

    fn apply(&self, name: &str, yaml: &str) {
        apply(&self.kubectl, self.dir.path(), name, yaml);
    }

    fn pods(&self) -> Vec<Value> {
        get_json(
            &self.server,
            "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
        )
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
    }

    /// The nodePort the API server gave a Service.
    fn node_port(&self, service: &str) -> u16 {
        let svc = get_json(
            &self.server,
            &format!("/api/v1/namespaces/default/services/{service}"),
        )
        .expect("the service exists");
        svc["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("service {service} has no nodePort: {svc}"))
    }

    /// Pod name -> whether its endpoint is ready, from the Service's slices.
    fn endpoints(&self, service: &str) -> BTreeMap<String, bool> {
        get_json(
            &self.server,
            &format!(
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{service}"
            ),
        )
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["targetRef"]["name"].as_str().unwrap_or("").to_string(),
                e["conditions"]["ready"] == true,
            )
        })
        .collect()
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && condition(pod, "Ready").as_deref() == Some("True")
        && pod["metadata"]["deletionTimestamp"].is_null()
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: hello:v1
        ports:
        - {name: http, containerPort: 8080}
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef: {fieldPath: metadata.name}
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
";

fn service(name: &str, selector: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  selector: {{app: {selector}}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
{extra}"
    )
}

/// The pod a `hello` answer names.
fn pod_of(body: &str) -> Option<String> {
    body.trim()
        .strip_prefix("Hello from ")?
        .strip_suffix('!')
        .map(str::to_string)
}

/// `GET /` from the local address `from` (so the proxy sees that client IP).
fn get_from(from: IpAddr, to: SocketAddr) -> std::io::Result<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let std_stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        socket.connect(to).await?.into_std()
    })?;
    drop(runtime);
    let mut stream = std_stream;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

#[test]
fn node_ports_balance_over_ready_pods_and_follow_endpoints() {
    let cluster = Cluster::start();
    cluster.apply("web", DEPLOYMENT);
    cluster.apply("svc-web", &service("web", "web", ""));
    let ready = wait_until("6 ready web pods", || {
        let pods = cluster.pods();
        (pods.len() == 6 && pods.iter().all(is_ready)).then_some(pods)
    });
    // Pods on both nodes, so that requests to n1 reach n2's pods over QUIC.
    let nodes: BTreeSet<String> = ready
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        nodes.len(),
        2,
        "the scheduler spreads the replicas: {nodes:?}"
    );
    let pods: BTreeSet<String> = ready.iter().map(name_of).collect();
    wait_until("the EndpointSlice lists 6 ready pods", || {
        let eps = cluster.endpoints("web");
        (eps.len() == 6 && eps.values().all(|r| *r)).then_some(())
    });
    let port = cluster.node_port("web");
    let n1 = SocketAddr::from(([127, 0, 0, 2], port));
    let n2 = SocketAddr::from(([127, 0, 0, 3], port));
    // The proxy learns of the Service and its endpoints from the control
    // plane's feed, shortly after the API has them.
    wait_until("n1's NodePort answers", || {
        matches!(http_get(n1, "/"), Ok((200, _))).then_some(())
    });

    // 600 requests to one node reach all 6 pods, on both nodes, evenly:
    // round-robin gives each 100; allow 30% for requests that raced a change.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..600 {
        let (status, body) = http_get(n1, "/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i}: {body}");
        let pod = pod_of(&body).unwrap_or_else(|| panic!("not a hello answer: {body:?}"));
        *counts.entry(pod).or_default() += 1;
    }
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        pods,
        "not every pod was reached: {counts:?}"
    );
    for (pod, n) in &counts {
        assert!((70..=130).contains(n), "{pod} got {n} of 600: {counts:?}");
    }
    // The other node serves the same Service.
    let (status, body) = http_get(n2, "/").expect("request to n2");
    assert_eq!(status, 200, "{body}");
    assert!(pod_of(&body).is_some_and(|p| pods.contains(&p)), "{body}");

    // A Service whose selector matches no ready pod answers 503, saying so.
    cluster.apply("svc-nobody", &service("nobody", "nobody", ""));
    let nobody = SocketAddr::from(([127, 0, 0, 2], cluster.node_port("nobody")));
    let (status, body) = wait_until("the nobody NodePort answers", || http_get(nobody, "/").ok());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body.trim(), "no ready endpoints for service default/nobody");

    // ClientIP affinity: each client stays on one pod; different clients
    // are spread.
    cluster.apply(
        "svc-sticky",
        &service("sticky", "web", "  sessionAffinity: ClientIP\n"),
    );
    let sticky = SocketAddr::from(([127, 0, 0, 2], cluster.node_port("sticky")));
    wait_until("the sticky NodePort answers", || {
        matches!(http_get(sticky, "/"), Ok((200, _))).then_some(())
    });
    let mut chosen = BTreeSet::new();
    for client in 10..16u8 {
        let from = IpAddr::from([127, 0, 0, client]);
        let seen: BTreeSet<String> = (0..10)
            .map(|_| {
                let (status, body) = get_from(from, sticky).expect("request from a client");
                assert_eq!(status, 200, "{body}");
                pod_of(&body).unwrap_or_default()
            })
            .collect();
        assert_eq!(
            seen.len(),
            1,
            "client {from} reached several pods: {seen:?}"
        );
        chosen.extend(seen);
    }
    assert!(
        chosen.len() > 1,
        "all clients were sent to one pod: {chosen:?}"
    );

    // Scale down: once a removed pod's endpoint is gone (or no longer ready),
    // no request reaches it, and no request fails meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http_get(n1, "/") {
                    Ok((200, _)) => {}
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        })
    };
    cluster
        .kubectl
        .ok(&["scale", "deployment/web", "--replicas=2"]);
    // Pods stop quickly (no request in flight), so the removed ones are
    // told by who is left, not by catching them terminating.
    let kept: BTreeSet<String> = wait_until("2 web pods are left, ready", || {
        let pods = cluster.pods();
        (pods.len() == 2 && pods.iter().all(is_ready)).then(|| pods.iter().map(name_of).collect())
    });
    let removed: BTreeSet<String> = pods.difference(&kept).cloned().collect();
    assert_eq!(removed.len(), 4, "kept {kept:?} of {pods:?}");
    wait_until("the removed pods' endpoints are gone or not ready", || {
        let eps = cluster.endpoints("web");
        removed
            .iter()
            .all(|p| eps.get(p) != Some(&true))
            .then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let failures = during.join().expect("the request thread");
    assert!(
        failures.is_empty(),
        "requests failed while scaling down: {failures:?}"
    );
    for i in 0..200 {
        let (status, body) = http_get(n1, "/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i} after scaling down: {body}");
        let pod = pod_of(&body).unwrap_or_default();
        assert!(
            !removed.contains(&pod),
            "request {i} reached {pod}, removed by the scale-down"
        );
    }
}
