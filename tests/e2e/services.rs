//! Services end to end on a real cluster (a control plane and three `skiff
//! node` processes on their own loopback addresses), driven by the real
//! kubectl: a NodePort Service spreads requests over every ready pod, on its
//! own node and the others, and the node's metrics count them; a Service
//! without ready pods answers 503; `sessionAffinity: ClientIP` keeps a client
//! on one pod; a pod calls another Service by name and is refused an outside
//! host it does not list; a killed node's pods stop getting requests and no
//! request that never reached one is lost; a scaled-down pod gets no more
//! requests once its endpoint is gone.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster::{Kubectl, Server, Skiff, http_get, wait_until};
use node::NodeProcess;
use objects::{apply, get_json, is_serving, name_of, push_samples, token, wait_node_ready};
use serde_json::Value;

/// A control plane and nodes n1 (127.0.0.2), n2 (127.0.0.3), n3
/// (127.0.0.4): distinct addresses, so each node has its own NodePorts. n1
/// serves metrics at `metrics`.
struct Cluster {
    server: Server,
    kubectl: Kubectl,
    nodes: Vec<NodeProcess>,
    metrics: SocketAddr,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("cp"));
        let kubectl = Kubectl::new(&server.kubeconfig());
        let skiff = Skiff::new(&server.kubeconfig());
        push_samples(&skiff, &["hello", "fetch", "echo"]);
        let token = token(&skiff);
        let metrics = free_port(IpAddr::from([127, 0, 0, 2]));
        let metrics_port = metrics.port().to_string();
        let mut nodes = Vec::new();
        for (name, address) in [
            ("n1", "127.0.0.2"),
            ("n2", "127.0.0.3"),
            ("n3", "127.0.0.4"),
        ] {
            let mut args = vec!["--address", address];
            if name == "n1" {
                args.extend(["--metrics-port", &metrics_port]);
            }
            nodes.push(NodeProcess::start(
                server.quic_addr(),
                name,
                &dir.path().join(name),
                Some(&token),
                &args,
            ));
        }
        for node in &nodes {
            wait_node_ready(&server, node.name());
        }
        Cluster {
            server,
            kubectl,
            nodes,
            metrics,
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

/// An address on `ip` with a port nothing listens on now.
fn free_port(ip: IpAddr) -> SocketAddr {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
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
    let mut cluster = Cluster::start();
    cluster.apply("web", DEPLOYMENT);
    cluster.apply("svc-web", &service("web", "web", ""));
    let ready = wait_until("6 ready web pods", || {
        let pods = cluster.pods();
        (pods.len() == 6 && pods.iter().all(is_serving)).then_some(pods)
    });
    // Pods on every node, so that requests to n1 reach the others' pods over QUIC.
    let nodes: BTreeSet<String> = ready
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        nodes.len(),
        3,
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

    // 600 requests to one node reach all 6 pods, on every node, evenly:
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
    // The other nodes serve the same Service.
    let (status, body) = http_get(n2, "/").expect("request to n2");
    assert_eq!(status, 200, "{body}");
    assert!(pod_of(&body).is_some_and(|p| pods.contains(&p)), "{body}");

    // n1's metrics count the requests per endpoint, with their latency.
    let answered = proxy_metric(&cluster, "skiff_proxy_requests_total", "web");
    assert_eq!(
        answered.keys().cloned().collect::<BTreeSet<_>>(),
        pods,
        "requests per pod on n1: {answered:?}"
    );
    for (pod, n) in &answered {
        let got = counts.get(pod).copied().unwrap_or(0) as f64;
        // Every 200 a client saw, plus the one readiness-poll request.
        assert!(
            *n >= got && *n <= got + 2.0,
            "{pod}: metrics say {n}, clients saw {got}"
        );
    }
    let timed = proxy_metric(
        &cluster,
        "skiff_proxy_request_duration_seconds_count",
        "web",
    );
    assert_eq!(timed, answered, "every answer is timed");

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

    bodies_stream_both_ways(&cluster);
    pod_calls_services_by_name(&cluster);
    let on_n3 = pods_on(&ready, "n3");
    killed_node_gets_no_requests(&mut cluster, n1, &on_n3);

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
    // (The killed node's pods are deleted first, being unready, but stay
    // Terminating: no node is left to confirm they stopped.)
    let kept: BTreeSet<String> = wait_until("2 web pods are left, ready", || {
        let pods: Vec<Value> = cluster
            .pods()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (pods.len() == 2 && pods.iter().all(is_serving)).then(|| pods.iter().map(name_of).collect())
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

fn pods_on(pods: &[Value], node: &str) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .map(name_of)
        .collect()
}

/// The values of a proxy metric on n1 for Service `service`, by pod.
fn proxy_metric(cluster: &Cluster, metric: &str, service: &str) -> BTreeMap<String, f64> {
    let (status, text) = http_get(cluster.metrics, "/metrics").expect("n1's metrics");
    assert_eq!(status, 200, "{text}");
    let mut by_pod = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        if label("service").as_deref() != Some(service)
            || label("namespace").as_deref() != Some("default")
        {
            continue;
        }
        let value: f64 = value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        *by_pod.entry(label("pod").unwrap_or_default()).or_default() += value;
    }
    by_pod
}

/// An `echo` pod on n2 sends a request body back chunk by chunk as it reads
/// it: through n2's NodePort (in-process) and n1's (over QUIC), the client
/// gets each chunk back before it sends the next, so neither body is
/// buffered whole anywhere on the way.
fn bodies_stream_both_ways(cluster: &Cluster) {
    cluster.apply(
        "streamer",
        "apiVersion: v1
kind: Pod
metadata:
  name: streamer
  labels: {app: streamer}
spec:
  nodeSelector: {kubernetes.io/hostname: n2}
  containers:
  - name: main
    image: echo:v1
    ports:
    - {containerPort: 8080}
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
",
    );
    cluster.apply("svc-streamer", &service("streamer", "streamer", ""));
    let port = cluster.node_port("streamer");
    for node in [[127, 0, 0, 3], [127, 0, 0, 2]] {
        let addr = SocketAddr::from((node, port));
        wait_until(&format!("the streamer answers at {addr}"), || {
            matches!(http_get(addr, "/"), Ok((200, _))).then_some(())
        });
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        write!(
            stream,
            "POST /stream HTTP/1.1\r\nHost: streamer\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .expect("send the head");
        let mut seen = Vec::new();
        let mut read_until = |stream: &mut std::net::TcpStream, what: &str| {
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&seen).contains(what) {
                let n = stream.read(&mut buf).unwrap_or_else(|e| {
                    panic!(
                        "{addr}: waiting for {what:?} (have {:?}): {e}",
                        String::from_utf8_lossy(&seen)
                    )
                });
                assert!(n > 0, "{addr}: closed before {what:?}");
                seen.extend_from_slice(&buf[..n]);
            }
        };
        for word in ["first-chunk", "second-chunk", "third-chunk"] {
            write!(stream, "{:x}\r\n{word}\r\n", word.len()).expect("send a chunk");
            stream.flush().expect("flush");
            // Back before the request body is over: both bodies stream.
            read_until(&mut stream, word);
        }
        write!(stream, "0\r\n\r\n").expect("end the body");
        read_until(&mut stream, "\r\n0\r\n\r\n");
        let text = String::from_utf8_lossy(&seen).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{addr}: {text}");
    }
    // n1 handed the request to n2 over QUIC: n2 knows the caller by its certificate.
    let n2 = &cluster.nodes[1];
    assert_eq!(n2.name(), "n2");
    let log = n2.log();
    assert!(
        log.lines()
            .any(|l| l.contains("peer proxy connected") && l.contains("n1")),
        "n2 does not log its caller:\n{log}"
    );
}

/// A `fetch` pod calls `http://hello` (a Service over the web pods) through
/// the proxy; an outside host is refused unless the pod lists it in
/// `skiff.dev/allowed-outbound-hosts`.
fn pod_calls_services_by_name(cluster: &Cluster) {
    // An outside server the pod may call: a plain socket on this machine.
    let outside = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the outside server");
    let outside_addr = outside.local_addr().expect("outside address");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = outside.accept().expect("the pod connects");
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: close\r\n\r\nfrom outside!",
        );
        String::from_utf8_lossy(&request).into_owned()
    });
    cluster.apply(
        "svc-hello",
        "apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
",
    );
    cluster.apply(
        "fetch",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: fetch
  labels: {{app: fetch}}
  annotations:
    skiff.dev/allowed-outbound-hosts: \"{outside_addr}\"
spec:
  containers:
  - name: main
    image: fetch:v1
    ports:
    - {{containerPort: 8080}}
    readinessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
"
        ),
    );
    cluster.apply("svc-fetch", &service("fetch", "fetch", ""));
    let fetch = SocketAddr::from(([127, 0, 0, 2], cluster.node_port("fetch")));
    wait_until("the fetch pod is reached through its NodePort", || {
        matches!(http_get(fetch, "/healthz"), Ok((200, _))).then_some(())
    });
    // Each form of the Service's name reaches a web pod.
    for url in [
        "http://hello/",
        "http://hello.default/",
        "http://hello.default.svc.cluster.local:80/",
    ] {
        let (status, body) = http_get(fetch, &format!("/?url={url}")).expect("ask fetch");
        assert_eq!(status, 200, "{url}: {body}");
        let (upstream, answer) = body.split_once('\n').unwrap_or_default();
        assert_eq!(upstream, "200", "{url}: {body}");
        assert!(
            pod_of(answer).is_some(),
            "{url}: not a hello answer: {body:?}"
        );
    }
    // A port the Service does not have is an error, not a guess.
    let (status, body) = http_get(fetch, "/?url=http://hello:81/").expect("ask fetch");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("has no port 81"), "{body}");
    // Outside hosts: refused unless listed.
    let (status, body) = http_get(fetch, "/?url=http://example.com/").expect("ask fetch");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let (status, body) =
        http_get(fetch, &format!("/?url=http://{outside_addr}/out")).expect("ask fetch");
    assert_eq!((status, body.as_str()), (200, "200\nfrom outside!"));
    let request = server.join().expect("the outside server");
    assert!(request.starts_with("GET /out HTTP/1.1"), "{request}");
}

/// Kill n3 while a client sends requests to n1: once n3's endpoints are
/// withdrawn no request reaches its pods, and no request fails that never
/// reached one. (One request may be lost if n3 died while its pod had it: the
/// client is sequential, so at most one, answered 502 naming n3.)
fn killed_node_gets_no_requests(cluster: &mut Cluster, n1: SocketAddr, on_n3: &BTreeSet<String>) {
    assert!(!on_n3.is_empty(), "n3 runs some web pods");
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answered = 0usize;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http_get(n1, "/") {
                    Ok((200, _)) => answered += 1,
                    other => failures.push(format!("{other:?}")),
                }
            }
            (answered, failures)
        })
    };
    wait_until("the client is under way", || {
        (!client.is_finished()).then_some(())
    });
    let n3 = cluster
        .nodes
        .iter_mut()
        .find(|n| n.name() == "n3")
        .expect("n3");
    n3.kill();
    wait_until("n3's endpoints are withdrawn", || {
        let eps = cluster.endpoints("web");
        on_n3
            .iter()
            .all(|p| eps.get(p) != Some(&true))
            .then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let (answered, failures) = client.join().expect("the client thread");
    eprintln!("while n3 went down: {answered} requests answered, failed: {failures:?}");
    assert!(answered > 0, "no request was answered while n3 went down");
    assert!(
        failures.len() <= 1
            && failures
                .iter()
                .all(|f| f.contains("502") && f.contains("node n3")),
        "requests failed while n3 went down: {failures:?}"
    );
    for i in 0..100 {
        let (status, body) = http_get(n1, "/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i} after n3 died: {body}");
        let pod = pod_of(&body).unwrap_or_default();
        assert!(
            !on_n3.contains(&pod),
            "request {i} reached {pod} on the dead n3"
        );
    }
}
