//! Nodes end to end: a control plane (`skiff server`) and `skiff node`
//! processes joined over QUIC, each with its own data directory; pods bound to
//! them run in the runtime, report status, serve through the API's pod proxy and
//! stream their logs to the real kubectl.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster::{Kubectl, Server, Skiff, wait_until};
use node::NodeProcess;
use objects::{
    apply, condition, get_json, pod, push_samples, token, wait_node_ready, wait_pod_ready,
};
use serde_json::Value;

/// A fast restart back-off, so CrashLoopBackOff shows its growth in seconds.
const BACKOFF: &str = "300ms";

/// A pod bound to `node` running `image` (`NAME:v1`), with extra container YAML.
fn pod_yaml(
    name: &str,
    node: &str,
    image: &str,
    container_extra: &str,
    spec_extra: &str,
) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  nodeName: {node}\n{spec_extra}  containers:\n  - name: main\n    image: {image}:v1\n{container_extra}"
    )
}

const READINESS: &str =
    "    readinessProbe:\n      httpGet: {path: /healthz, port: 8080}\n      periodSeconds: 1\n";

fn events_for(server: &Server, pod_name: &str) -> Vec<Value> {
    get_json(server, "/api/v1/namespaces/default/events")
        .and_then(|list| list["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == pod_name)
        .collect()
}

/// "back-off 600ms restarting ..." -> 600 ms.
fn backoff_of(message: &str) -> Option<Duration> {
    let text = message
        .split("back-off ")
        .nth(1)?
        .split_whitespace()
        .next()?;
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[test]
fn two_nodes_run_pods_that_serve_report_and_stream_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, &["hello", "ticker", "crasher", "spinner"]);
    let token = token(&skiff);
    let extra = ["--restart-backoff", BACKOFF];
    let _n1 = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &dir.path().join("n1"),
        Some(&token),
        &[&extra[..], &["--labels", "zone=a"]].concat(),
    );
    let _n2 = NodeProcess::start(
        server.quic_addr(),
        "n2",
        &dir.path().join("n2"),
        Some(&token),
        &extra,
    );

    // Both nodes register, with the labels and capacity they report.
    let n1 = wait_node_ready(&server, "n1");
    wait_node_ready(&server, "n2");
    assert_eq!(n1["metadata"]["labels"]["zone"], "a", "{n1}");
    assert_eq!(n1["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
    assert!(n1["status"]["capacity"]["pods"].as_str().is_some(), "{n1}");
    let nodes = kubectl.ok(&["get", "nodes"]);
    assert!(
        nodes.lines().filter(|l| l.contains(" Ready ")).count() == 2,
        "{nodes}"
    );

    let d = dir.path();
    apply(
        &kubectl,
        d,
        "hello-1",
        &pod_yaml("hello-1", "n1", "hello", READINESS, ""),
    );
    apply(
        &kubectl,
        d,
        "hello-2",
        &pod_yaml("hello-2", "n2", "hello", READINESS, ""),
    );
    apply(
        &kubectl,
        d,
        "ticker",
        &pod_yaml("ticker", "n2", "ticker", "", ""),
    );
    apply(
        &kubectl,
        d,
        "crasher",
        &pod_yaml(
            "crasher",
            "n1",
            "crasher",
            &format!("    env: [{{name: CRASH_AT_START, value: \"1\"}}]\n{READINESS}"),
            "",
        ),
    );
    apply(
        &kubectl,
        d,
        "spinner",
        &pod_yaml(
            "spinner",
            "n2",
            "spinner",
            &format!(
                "{READINESS}    livenessProbe:\n      httpGet: {{path: /spin, port: 8080}}\n      initialDelaySeconds: 2\n      periodSeconds: 1\n      timeoutSeconds: 1\n      failureThreshold: 2\n"
            ),
            "",
        ),
    );

    // Pods on each node run, report Running/Ready, and serve through the runtime.
    let mut cidrs = Vec::new();
    for (name, node) in [("hello-1", "n1"), ("hello-2", "n2")] {
        let pod = wait_pod_ready(&server, name);
        assert_eq!(pod["spec"]["nodeName"], node);
        // Each node has its own pod CIDR; its pods' addresses come from it.
        let cidr: ipnet::Ipv4Net = get_json(&server, &format!("/api/v1/nodes/{node}"))
            .and_then(|n| n["spec"]["podCIDR"].as_str().and_then(|c| c.parse().ok()))
            .expect("the node has a pod CIDR");
        let ip: std::net::Ipv4Addr = pod["status"]["podIP"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("no podIP: {pod}"));
        assert!(cidr.contains(&ip), "{ip} is not in {cidr}");
        assert_eq!(pod["status"]["podIPs"][0]["ip"], ip.to_string());
        assert_eq!(pod["status"]["hostIP"], "127.0.0.1", "{pod}");
        cidrs.push(cidr);
        let status = &pod["status"]["containerStatuses"][0];
        assert_eq!(status["ready"], true, "{pod}");
        assert!(status["state"]["running"]["startedAt"].is_string(), "{pod}");
        assert!(
            status["imageID"]
                .as_str()
                .is_some_and(|i| i.starts_with("sha256:")),
            "{pod}"
        );
        for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(
                condition(&pod, kind).as_deref(),
                Some("True"),
                "{kind}: {pod}"
            );
        }
        let reply = kubectl.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{name}/proxy/"),
        ]);
        assert_eq!(reply.trim(), format!("Hello from {name}!"));
    }
    assert_ne!(cidrs[0], cidrs[1], "nodes share no pod CIDR");
    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.lines()
            .any(|l| l.starts_with("hello-1 ") && l.contains("Running") && l.contains("n1")),
        "{wide}"
    );

    // Logs: a snapshot, then a live stream.
    wait_until("ticker has printed twice", || {
        let out = kubectl.run(&["logs", "ticker"]);
        (out.status.success() && out.stdout.contains("tick 2")).then_some(())
    });
    let mut follow = kubectl.spawn(&["logs", "-f", "ticker", "--tail", "1"]);
    let first = follow.wait_for_line("a tick line", |l| l.starts_with("tick "));
    let n: u64 = first
        .trim_start_matches("tick ")
        .parse()
        .expect("tick number");
    follow.wait_for_line("a later tick, streamed", |l| l == format!("tick {}", n + 2));
    drop(follow);
    // The options kubectl passes through: timestamps, since, tail.
    let stamped = kubectl.ok(&["logs", "ticker", "--timestamps", "--tail", "2"]);
    let stamped: Vec<&str> = stamped.lines().collect();
    assert_eq!(stamped.len(), 2, "{stamped:?}");
    for line in &stamped {
        let (time, text) = line.split_once(' ').expect("timestamp, then the line");
        assert!(
            time.parse::<jiff::Timestamp>().is_ok() && text.starts_with("tick "),
            "{line}"
        );
    }
    let recent = kubectl.ok(&["logs", "ticker", "--since", "1h"]);
    assert!(recent.lines().any(|l| l == "tick 1"), "{recent}");

    // A component that traps at start: CrashLoopBackOff, with a growing back-off.
    let mut backoffs: Vec<Duration> = Vec::new();
    let crasher = wait_until("crasher restarts three times in CrashLoopBackOff", || {
        let pod = pod(&server, "crasher")?;
        let status = &pod["status"]["containerStatuses"][0];
        if status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && let Some(b) = status["state"]["waiting"]["message"]
                .as_str()
                .and_then(backoff_of)
            && backoffs.last() != Some(&b)
        {
            backoffs.push(b);
        }
        (status["restartCount"].as_i64().unwrap_or(0) >= 3 && backoffs.len() >= 3).then_some(pod)
    });
    assert!(
        backoffs.windows(2).all(|w| w[0] < w[1]),
        "back-off must grow: {backoffs:?}"
    );
    assert_eq!(
        crasher["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"], "Error",
        "{crasher}"
    );
    assert_eq!(condition(&crasher, "Ready").as_deref(), Some("False"));
    let crash_events = events_for(&server, "crasher");
    assert!(
        crash_events
            .iter()
            .any(|e| e["reason"] == "BackOff" && e["type"] == "Warning"),
        "{crash_events:?}"
    );
    // The instance before the last restart left its panic message.
    let previous = kubectl.ok(&["logs", "crasher", "--previous"]);
    assert!(
        previous.contains("crasher: CRASH_AT_START=1, trapping"),
        "{previous}"
    );
    let described = kubectl.ok(&["describe", "pod", "crasher"]);
    assert!(
        described.contains("CrashLoopBackOff") && described.contains("BackOff"),
        "{described}"
    );

    // A failing liveness probe restarts the container.
    let spinner = wait_until("the spinner's liveness probe restarts it", || {
        let pod = pod(&server, "spinner")?;
        (pod["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1)
            .then_some(pod)
    });
    let events = events_for(&server, "spinner");
    assert!(
        events.iter().any(|e| e["reason"] == "Unhealthy"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Liveness probe failed"))),
        "{events:?}\n{spinner}"
    );
    assert!(
        events.iter().any(|e| e["reason"] == "Killing"),
        "{events:?}"
    );
}

#[test]
fn deleting_a_pod_drains_its_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, &["spinner"]);
    let token = token(&skiff);
    let _n1 = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &dir.path().join("n1"),
        Some(&token),
        &[],
    );
    wait_node_ready(&server, "n1");
    apply(
        &kubectl,
        dir.path(),
        "slow",
        &pod_yaml(
            "slow",
            "n1",
            "spinner",
            READINESS,
            "  terminationGracePeriodSeconds: 30\n",
        ),
    );
    wait_pod_ready(&server, "slow");

    // Two clients send slow requests back to back; the pod is deleted while
    // requests are in flight.
    let api = server.api();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let completed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let completed = completed.clone();
            let api = api.clone();
            std::thread::spawn(move || {
                let mut results = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = api.get("/api/v1/namespaces/default/pods/slow/proxy/spin?ms=700");
                    results.push((started, Instant::now(), result));
                    completed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                results
            })
        })
        .collect();
    // Once both clients have finished a request each, both are back to back in
    // their next 700 ms requests: the delete lands while they are in flight.
    wait_until("each client has completed a slow request", || {
        (completed.load(std::sync::atomic::Ordering::Relaxed) >= 2).then_some(())
    });
    let deleted_at = Instant::now();
    kubectl.ok(&["delete", "pod", "slow", "--wait=false"]);
    wait_until("the pod is gone once drained", || {
        pod(&server, "slow").is_none().then_some(())
    });
    let gone_at = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();

    // A request in flight when the delete came finished with 200.
    let drained: Vec<_> = results
        .iter()
        .filter(|(start, end, r)| {
            *start < deleted_at && *end > deleted_at && matches!(r, Ok((200, _)))
        })
        .collect();
    assert!(
        !drained.is_empty(),
        "no in-flight request completed across the delete: {results:?}"
    );
    // Every answer was a success or a clean refusal, never a broken response.
    for (start, _, r) in &results {
        match r {
            Ok((200, _)) => {}
            Ok((code, body)) => assert!(
                *start > deleted_at && (*code == 503 || *code == 404),
                "unexpected answer {code} {body}"
            ),
            Err(e) => panic!("a request failed: {e}"),
        }
    }
    assert!(gone_at > deleted_at);
}

#[test]
fn a_killed_node_goes_not_ready_and_comes_back_with_its_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, &["hello"]);
    let token = token(&skiff);
    let node_dir = dir.path().join("n1");
    let mut n1 = NodeProcess::start(server.quic_addr(), "n1", &node_dir, Some(&token), &[]);
    wait_node_ready(&server, "n1");
    apply(
        &kubectl,
        dir.path(),
        "web",
        // A pod that waits for its node however long it is away (an edge
        // pod), instead of being evicted after the default 2 s.
        &pod_yaml(
            "web",
            "n1",
            "hello",
            READINESS,
            "  tolerations:\n  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}\n",
        ),
    );
    wait_pod_ready(&server, "web");

    n1.kill();
    let killed = Instant::now();
    wait_until("the node goes NotReady", || {
        let out = kubectl.run(&["get", "node", "n1", "--no-headers"]);
        out.stdout.contains("NotReady").then_some(())
    });
    println!("node NotReady {:?} after the kill", killed.elapsed());
    let node = get_json(&server, "/api/v1/nodes/n1").expect("node");
    assert_eq!(
        condition(&node, "Ready").as_deref(),
        Some("Unknown"),
        "{node}"
    );

    // No token this time: the node reconnects with the certificate it got.
    let _n1 = NodeProcess::start(server.quic_addr(), "n1", &node_dir, None, &[]);
    wait_node_ready(&server, "n1");
    wait_pod_ready(&server, "web");
    let reply = kubectl.ok(&["get", "--raw", "/api/v1/namespaces/default/pods/web/proxy/"]);
    assert_eq!(reply.trim(), "Hello from web!");
}

#[test]
fn a_node_with_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let skiff = Skiff::new(&server.kubeconfig());
    let good = token(&skiff);
    // Same cluster (CA hash), wrong secret.
    let (head, secret) = good.rsplit_once('.').expect("token shape");
    let wrong = format!("{head}.{}", "0".repeat(secret.len()));
    let mut node = NodeProcess::start(
        server.quic_addr(),
        "intruder",
        &dir.path().join("n"),
        Some(&wrong),
        &[],
    );
    let status = wait_until("the node exits", || node.try_wait());
    assert!(!status.success());
    let log = node.log();
    assert!(
        log.contains("refused this node") && log.contains("not valid"),
        "{log}"
    );
    assert!(
        server.log().contains("join refused"),
        "the control plane says why too"
    );
    let nodes = get_json(&server, "/api/v1/nodes").expect("node list");
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(0), "{nodes}");

    // A token of another cluster (another CA hash) is refused at the handshake.
    let other = format!(
        "skiff1:{}:{}",
        "ab".repeat(32),
        good.rsplit(':').next().expect("id.secret")
    );
    let mut node = NodeProcess::start(
        server.quic_addr(),
        "stranger",
        &dir.path().join("m"),
        Some(&other),
        &[],
    );
    let status = wait_until("the node exits", || node.try_wait());
    assert!(!status.success());
    assert!(
        node.log().contains("does not match the CA hash"),
        "{}",
        node.log()
    );
}

#[test]
fn a_certificate_from_another_cluster_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Server::start(&dir.path().join("cp-a"));
    let token = token(&Skiff::new(&first.kubeconfig()));
    let node_dir = dir.path().join("n1");
    let mut n1 = NodeProcess::start(first.quic_addr(), "n1", &node_dir, Some(&token), &[]);
    wait_node_ready(&first, "n1");
    n1.kill();

    // The node's certificate is cluster A's; cluster B's CA did not sign it.
    let second = Server::start(&dir.path().join("cp-b"));
    let _n1 = NodeProcess::start(second.quic_addr(), "n1", &node_dir, None, &[]);
    // Each side refuses the other's certificate, and the node says what to do.
    let node_says = wait_until("the node says the TLS handshake failed", || {
        let log = _n1.log();
        log.contains("TLS with the control plane").then_some(log)
    });
    assert!(
        node_says.contains("invalid peer certificate")
            && node_says
                .contains("belongs to another cluster? remove it and join again with a token"),
        "{node_says}"
    );
    wait_until("the control plane says it refused a connection", || {
        second
            .log()
            .contains("node connection refused")
            .then_some(())
    });
    let nodes = get_json(&second, "/api/v1/nodes").expect("node list");
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(0), "{nodes}");
}

/// The program in `samples/embedded-node` (built by `cargo test` as an example).
fn embedded_node_program() -> std::path::PathBuf {
    // Test binaries live in target/<profile>/deps, examples in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    profile_dir.join("examples").join("embedded-node")
}

#[test]
fn a_program_embedding_a_node_joins_and_runs_pods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, &["hello"]);
    let token = token(&skiff);
    let program = embedded_node_program();
    assert!(
        program.exists(),
        "{} is missing: `cargo test` builds it (cargo build --example embedded-node)",
        program.display()
    );
    let node_dir = dir.path().join("edge-1");
    let mut cmd = std::process::Command::new(&program);
    cmd.arg(server.quic_addr().to_string())
        .arg(&token)
        .arg(&node_dir)
        .arg("edge-1");
    let embedded = NodeProcess::spawn(cmd, "edge-1", &node_dir);
    let node = wait_node_ready(&server, "edge-1");
    assert_eq!(
        node["metadata"]["labels"]["skiff.dev/embedded"], "true",
        "{node}"
    );
    wait_until("the program says it joined", || {
        embedded
            .log()
            .contains("embedded node edge-1 joined")
            .then_some(())
    });

    apply(
        &kubectl,
        dir.path(),
        "on-edge",
        &pod_yaml("on-edge", "edge-1", "hello", READINESS, ""),
    );
    wait_pod_ready(&server, "on-edge");
    let reply = kubectl.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/on-edge/proxy/",
    ]);
    assert_eq!(reply.trim(), "Hello from on-edge!");
}
