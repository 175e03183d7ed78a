//! Ingress end to end on a real cluster (a control plane and two `skiff node`
//! processes on their own loopback addresses, each with its own HTTP port),
//! driven by the real kubectl: an Ingress without a class falls to Skiff's
//! default class `skiff`; both nodes' HTTP ports route by host and path (Exact
//! and Prefix) to the Services' pods on either node; a host no rule names goes
//! to the default backend, or gets a 404 when there is none; an Ingress of
//! another class is not served; `kubectl get ingress` shows the nodes'
//! addresses.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use cluster::{Kubectl, Server, Skiff, squeeze, wait_until};
use node::NodeProcess;
use objects::{apply, condition, get_json, push_samples, token, wait_node_ready};
use serde_json::Value;

/// A control plane and nodes n1 (127.0.0.2), n2 (127.0.0.3), each serving
/// Ingresses on a free port of its address.
struct Cluster {
    server: Server,
    kubectl: Kubectl,
    nodes: Vec<NodeProcess>,
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
            // The test support gives each node `--http-port 0`: a free port,
            // which the node prints.
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
            nodes,
            dir,
        }
    }

    fn apply(&self, name: &str, yaml: &str) {
        apply(&self.kubectl, self.dir.path(), name, yaml);
    }

    /// Where each node serves Ingresses, from its `Ingresses on http://ADDR`.
    fn http_ports(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .map(|node| {
                wait_until(
                    &format!("node {} prints its HTTP port", node.name()),
                    || {
                        node.log().lines().find_map(|l| {
                            l.trim().strip_prefix("Ingresses on http://")?.parse().ok()
                        })
                    },
                )
            })
            .collect()
    }

    /// The ready pods of Deployment `app`.
    fn ready_pods(&self, app: &str) -> Vec<Value> {
        get_json(
            &self.server,
            &format!("/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"),
        )
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["status"]["phase"] == "Running"
                && condition(p, "Ready").as_deref() == Some("True")
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
    }
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: hello:v1
        ports:
        - {{name: http, containerPort: 8080}}
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef: {{fieldPath: metadata.name}}
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
"
    )
}

/// `web`: no class (so Skiff's, the default), two hosts, Exact and Prefix
/// paths, and a default backend.
const INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  defaultBackend:
    service: {name: fallback, port: {name: http}}
  rules:
  - host: hello.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: hello, port: {number: 80}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}
  - host: api.example.com
    http:
      paths:
      - {path: /v1, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
";

/// Another controller's Ingress: Skiff neither serves it nor sets its status.
const FOREIGN: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: foreign
spec:
  ingressClassName: nginx
  rules:
  - host: foreign.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: hello, port: {number: 80}}}}
";

/// `GET path` with `Host: host` over a fresh connection: (status, body).
fn get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))?;
    Ok((status, body.to_string()))
}

/// The pod a `hello` answer names.
fn pod_of(body: &str) -> Option<String> {
    body.trim()
        .strip_prefix("Hello from ")?
        .strip_suffix('!')
        .map(str::to_string)
}

/// The Deployment whose pod answered (`hello`, `api`, `fallback`), or the
/// status and body when no pod did.
fn answered_by(addr: SocketAddr, host: &str, path: &str) -> String {
    match get(addr, host, path) {
        Ok((200, body)) => match pod_of(&body) {
            Some(pod) => pod.split('-').next().unwrap_or_default().to_string(),
            None => format!("200 {body:?}"),
        },
        Ok((status, body)) => format!("{status} {}", body.trim()),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn nodes_serve_ingresses_by_host_and_path() {
    let cluster = Cluster::start();

    // Skiff's class is there from the start, as the default.
    let classes = cluster.kubectl.ok(&["get", "ingressclass", "--no-headers"]);
    let line = classes
        .lines()
        .map(squeeze)
        .find(|l| l.starts_with("skiff "))
        .unwrap_or_else(|| panic!("no IngressClass skiff:\n{classes}"));
    assert!(line.starts_with("skiff skiff.dev/ingress"), "{line}");
    let class = cluster
        .kubectl
        .ok(&["get", "ingressclass", "skiff", "-o", "json"]);
    let class: Value = serde_json::from_str(&class).expect("IngressClass JSON");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );

    cluster.apply("hello", &deployment("hello", 4));
    cluster.apply("api", &deployment("api", 1));
    cluster.apply("fallback", &deployment("fallback", 1));
    cluster.apply("ingress", INGRESS);
    cluster.apply("foreign", FOREIGN);
    let hello: BTreeSet<String> = wait_until("4 ready hello pods on both nodes", || {
        let pods = cluster.ready_pods("hello");
        let nodes: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect();
        (pods.len() == 4 && nodes.len() == 2).then(|| {
            pods.iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
    });
    wait_until("the api and fallback pods are ready", || {
        (cluster.ready_pods("api").len() == 1 && cluster.ready_pods("fallback").len() == 1)
            .then_some(())
    });

    // The class-less Ingress got the default class.
    let out = cluster
        .kubectl
        .ok(&["get", "ingress", "web", "--no-headers"]);
    assert!(
        squeeze(&out).starts_with("web skiff hello.example.com,api.example.com "),
        "{out}"
    );

    let ports = cluster.http_ports();
    for &port in &ports {
        // The proxy learns of the Ingress and the endpoints from the
        // control plane's feed, shortly after the API has them.
        wait_until(&format!("{port} routes hello.example.com"), || {
            (answered_by(port, "hello.example.com", "/") == "hello").then_some(())
        });
        // Every hello pod, on both nodes, is reached through either node
        // (polled: the node may learn of the last endpoints a moment later).
        let mut seen = BTreeSet::new();
        wait_until(&format!("every hello pod answers through {port}"), || {
            let (status, body) = get(port, "hello.example.com", "/").ok()?;
            assert_eq!(status, 200, "{body}");
            seen.insert(pod_of(&body).unwrap_or_else(|| panic!("not hello: {body:?}")));
            (seen == hello).then_some(())
        });
        // Spread evenly, as through a NodePort: round-robin gives each pod
        // 100 of 400; allow 30% for requests that raced a change.
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..400 {
            let (status, body) = get(port, "hello.example.com", "/")
                .unwrap_or_else(|e| panic!("request {i} to {port}: {e}"));
            assert_eq!(status, 200, "request {i}: {body}");
            *counts.entry(pod_of(&body).unwrap_or_default()).or_default() += 1;
        }
        assert_eq!(counts.len(), 4, "{port}: {counts:?}");
        for (pod, n) in &counts {
            assert!(
                (70..=130).contains(n),
                "{port}: {pod} got {n} of 400: {counts:?}"
            );
        }
        // The host compares without case or port.
        assert_eq!(
            answered_by(port, &format!("HELLO.example.com:{}", port.port()), "/x"),
            "hello"
        );
    }

    let n1 = ports[0];
    let routes = |host: &str, path: &str| {
        wait_until(&format!("{host}{path} answers"), || {
            let who = answered_by(n1, host, path);
            (!who.starts_with("error") && !who.starts_with("503")).then_some(who)
        })
    };
    // Exact `/api` beats Prefix `/`, and matches nothing longer.
    assert_eq!(routes("hello.example.com", "/api"), "api");
    assert_eq!(routes("hello.example.com", "/api/"), "hello");
    assert_eq!(routes("hello.example.com", "/api/users"), "hello");
    // Prefix `/v1` matches by path element; the rest falls to the default.
    assert_eq!(routes("api.example.com", "/v1"), "api");
    assert_eq!(routes("api.example.com", "/v1/users?x=1"), "api");
    assert_eq!(routes("api.example.com", "/v1users"), "fallback");
    // A host no rule names goes to the default backend, as does the other
    // class's host: Skiff does not serve that Ingress.
    assert_eq!(routes("other.example.com", "/"), "fallback");
    assert_eq!(routes("foreign.example.com", "/"), "fallback");

    // ADDRESS: both nodes' addresses, for Skiff's Ingress only.
    wait_until("kubectl shows the nodes' addresses", || {
        let out = cluster.kubectl.ok(&["get", "ingress", "--no-headers"]);
        let web = out.lines().map(squeeze).find(|l| l.starts_with("web "))?;
        web.contains(" 127.0.0.2,127.0.0.3 80 ").then_some(())
    });
    let foreign = cluster
        .kubectl
        .ok(&["get", "ingress", "foreign", "-o", "json"]);
    let foreign: Value = serde_json::from_str(&foreign).expect("Ingress JSON");
    assert!(
        foreign["status"]["loadBalancer"]["ingress"].is_null(),
        "{foreign}"
    );

    // Without a default backend, a host no rule names gets a 404 that says so.
    cluster.kubectl.ok(&[
        "patch",
        "ingress",
        "web",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/defaultBackend"}]"#,
    ]);
    for &port in &ports {
        let (status, body) = wait_until(&format!("{port} drops the default backend"), || {
            let (status, body) = get(port, "other.example.com", "/").ok()?;
            (status != 200).then_some((status, body))
        });
        assert_eq!(status, 404, "{body}");
        assert_eq!(
            body.trim(),
            r#"no Ingress rule matches host "other.example.com" and path "/", and there is no default backend"#
        );
        assert_eq!(answered_by(port, "hello.example.com", "/"), "hello");
    }

    // Deleting the Ingress stops the routing.
    cluster.kubectl.ok(&["delete", "ingress", "web"]);
    wait_until("the deleted Ingress is no longer served", || {
        matches!(get(n1, "hello.example.com", "/"), Ok((404, _))).then_some(())
    });
}
