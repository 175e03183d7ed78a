//! Hostile inputs get bounded answers, through the real kubectl and real
//! sockets: a JSON patch that copies a field into itself forty times is
//! refused while the server's memory stays small; an object that a patch would
//! make larger than 1.5 MiB is refused and nothing is stored; durations whose
//! deadlines overflow get 422 naming the field, and nothing panics; a thousand
//! slowloris connections to a node's HTTP port are closed within 30 s while
//! ordinary requests keep being answered.

use skiff_testkit::cluster;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cluster::{Kubectl, Server, http_get};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).expect("encode")).expect("write file");
    path.to_string_lossy().into_owned()
}

fn assert_no_panic(server: &Server) {
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[test]
fn a_self_copying_json_patch_is_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    kubectl.ok(&["create", "configmap", "amp", "--from-literal=k=v"]);
    kubectl.ok(&["annotate", "configmap", "amp", "seed=0123456789abcdef"]);
    // Each step copies all annotations into a new one of themselves: 2^40
    // times the seed if nothing stopped it.
    let ops: Vec<Value> = (0..40)
        .map(|i| json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/a{i}")}))
        .collect();
    let patch = write(dir.path(), "patch.json", &Value::Array(ops));
    let before = kubectl.ok(&["get", "configmap", "amp", "-o", "json"]);
    let err = kubectl.fails(&[
        "patch",
        "configmap",
        "amp",
        "--type",
        "json",
        "--patch-file",
        &patch,
    ]);
    assert!(
        err.contains("exceed the limit"),
        "kubectl did not show the copy limit:\n{err}"
    );
    let pid = server.pid().expect("server pid");
    let peak_mib = peak_rss_kib(pid) / 1024;
    assert!(
        peak_mib < 100,
        "the server's peak resident memory reached {peak_mib} MiB"
    );
    let after = kubectl.ok(&["get", "configmap", "amp", "-o", "json"]);
    assert_eq!(before, after, "a refused patch changed the object");
    assert_no_panic(&server);
}

#[test]
fn an_object_a_patch_makes_too_large_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let big = "x".repeat(800 * 1024);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{
                    "name": "web", "image": "hello:v1",
                    "env": [{"name": "A", "value": big}]
                }]}
            }
        }
    });
    let file = write(dir.path(), "big.json", &deployment);
    kubectl.ok(&["create", "-f", &file]);
    // The controller writes the status meanwhile; the spec's generation
    // moves only if a spec change was stored.
    let generation = |k: &Kubectl| {
        k.ok(&[
            "get",
            "deployment",
            "big",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
    };
    // Another 800 KiB: 1.6 MiB in all, over the 1.5 MiB limit; the patch
    // itself is well under the request limit.
    let patch = write(
        dir.path(),
        "patch.json",
        &json!([{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
                 "value": {"name": "B", "value": big}}]),
    );
    let err = kubectl.fails(&[
        "patch",
        "deployment",
        "big",
        "--type",
        "json",
        "--patch-file",
        &patch,
    ]);
    assert!(
        err.contains("Request entity too large: limit is 1572864"),
        "kubectl did not show the object limit:\n{err}"
    );
    assert_eq!(
        generation(&kubectl).trim(),
        "1",
        "a refused patch was stored"
    );
    let env = kubectl.ok(&[
        "get",
        "deployment",
        "big",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(env.trim(), "A");
    // The same object just under the limit is stored.
    let small = write(
        dir.path(),
        "small.json",
        &json!([{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
                 "value": {"name": "B", "value": "y".repeat(600 * 1024)}}]),
    );
    kubectl.ok(&[
        "patch",
        "deployment",
        "big",
        "--type",
        "json",
        "--patch-file",
        &small,
    ]);
    assert_eq!(generation(&kubectl).trim(), "2");
    assert_no_panic(&server);
}

#[test]
fn durations_whose_deadlines_overflow_are_invalid() {
    const HUGE: &str = "9223372036854775807";
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    kubectl.ok(&["create", "configmap", "c", "--from-literal=k=v"]);

    // DeleteOptions in the body (kubectl sends one) and in the query.
    let err = kubectl.fails(&[
        "delete",
        "configmap",
        "c",
        &format!("--grace-period={HUGE}"),
    ]);
    assert!(
        err.contains("gracePeriodSeconds: Invalid value: 9223372036854775807"),
        "{err}"
    );
    let err = kubectl.fails(&[
        "delete",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps/c?gracePeriodSeconds={HUGE}"),
    ]);
    assert!(err.contains("gracePeriodSeconds"), "{err}");
    assert!(
        err.contains("422") || err.contains("Invalid") || err.contains("invalid"),
        "{err}"
    );
    kubectl.ok(&["get", "configmap", "c"]);

    let huge: i64 = i64::MAX;
    let pod = |spec: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": spec})
    };
    let container = json!({"name": "c", "image": "hello:v1"});
    let cases: Vec<(&str, Value)> = vec![
        (
            "spec.terminationGracePeriodSeconds",
            pod(json!({"terminationGracePeriodSeconds": huge, "containers": [container]})),
        ),
        (
            "spec.tolerations[0].tolerationSeconds",
            pod(json!({"containers": [container], "tolerations": [
                {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": huge}
            ]})),
        ),
        (
            "spec.activeDeadlineSeconds",
            pod(json!({"activeDeadlineSeconds": huge, "containers": [container]})),
        ),
        (
            "spec.activeDeadlineSeconds",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"activeDeadlineSeconds": huge, "template": {"spec": {
                       "restartPolicy": "Never", "containers": [container]}}}}),
        ),
        (
            "spec.startingDeadlineSeconds",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
                   "spec": {"schedule": "*/5 * * * *", "startingDeadlineSeconds": huge,
                            "jobTemplate": {"spec": {"template": {"spec": {
                                "restartPolicy": "Never", "containers": [container]}}}}}}),
        ),
    ];
    for (i, (field, object)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("case{i}.json"), object);
        let err = kubectl.fails(&["create", "-f", &file]);
        assert!(
            err.contains("is invalid") && err.contains(field) && err.contains(HUGE),
            "{field}: not a 422 naming the field:\n{err}"
        );
    }
    // int32 fields cannot even hold the value: Kubernetes' decoding refuses
    // it (400 BadRequest), naming the field.
    let int32_cases: Vec<(&str, Value)> = vec![
        (
            "progressDeadlineSeconds",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                   "spec": {"progressDeadlineSeconds": huge,
                            "selector": {"matchLabels": {"a": "b"}},
                            "template": {"metadata": {"labels": {"a": "b"}},
                                         "spec": {"containers": [container]}}}}),
        ),
        (
            "ttlSecondsAfterFinished",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j2"},
                   "spec": {"ttlSecondsAfterFinished": huge, "template": {"spec": {
                       "restartPolicy": "Never", "containers": [container]}}}}),
        ),
        (
            "periodSeconds",
            pod(json!({"containers": [{"name": "c", "image": "hello:v1",
                "readinessProbe": {"httpGet": {"port": 80}, "periodSeconds": huge}}]})),
        ),
    ];
    for (i, (field, object)) in int32_cases.iter().enumerate() {
        let file = write(dir.path(), &format!("int32-{i}.json"), object);
        let err = kubectl.fails(&["create", "-f", &file]);
        assert!(err.contains(field), "{field}: not named:\n{err}");
    }
    assert!(
        kubectl
            .ok(&["get", "pods,jobs,cronjobs,deployments", "-o", "name"])
            .trim()
            .is_empty(),
        "an invalid object was stored"
    );
    assert_no_panic(&server);
}

/// One slowloris connection: the request line, then a header one byte a
/// second, forever. Returns how long the server took to close it.
async fn slowloris(addr: SocketAddr, send_nothing: bool) -> std::io::Result<Duration> {
    let opened = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.into_split();
    let trickle = async move {
        if !send_nothing {
            write.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n").await?;
            loop {
                write.write_all(b"X").await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        std::future::pending::<std::io::Result<()>>().await
    };
    let closed = async move {
        let mut buf = [0u8; 1024];
        // EOF or a reset: the server let go.
        while read.read(&mut buf).await.unwrap_or(0) > 0 {}
    };
    tokio::select! {
        () = closed => {}
        _ = trickle => {}
    }
    Ok(opened.elapsed())
}

/// Times an ordinary request (a fresh connection each) to the HTTP port.
fn ordinary(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let (status, body) = http_get(addr, "/").expect("an ordinary request is answered");
    assert_eq!(status, 404, "{body}");
    started.elapsed()
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let i = (samples.len() * 99 / 100).min(samples.len() - 1);
    samples[i]
}

#[test]
fn slowloris_connections_are_closed_while_ordinary_requests_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_command("up", &dir.path().join("data"));
    let line = server.wait_for_line("the node's HTTP port", |l| {
        l.starts_with("Ingresses on http://")
    });
    let addr: SocketAddr = line
        .trim()
        .trim_start_matches("Ingresses on http://")
        .parse()
        .expect("an address");
    // No Ingress exists: the proxy answers every request itself (404).
    let baseline = p99((0..50).map(|_| ordinary(addr)).collect());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let attack = runtime.spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            // In waves, as an attacker's connections arrive; all are open
            // long before the first is due to be closed.
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tasks.spawn(slowloris(addr, i % 2 == 0));
        }
        let mut lasted = Vec::new();
        while let Some(done) = tasks.join_next().await {
            lasted.push(done.expect("task").expect("connect"));
        }
        lasted
    });
    // Ordinary requests while the attack runs, until every slow connection
    // is gone (or the test gives up).
    let mut during = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(60);
    while !attack.is_finished() && Instant::now() < give_up {
        during.push(ordinary(addr));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        attack.is_finished(),
        "slowloris connections still open after 60 s"
    );
    let lasted = runtime.block_on(attack).expect("attack task");
    assert_eq!(lasted.len(), 1000);
    let longest = lasted.iter().max().copied().unwrap_or_default();
    assert!(
        longest < Duration::from_secs(30),
        "a slowloris connection stayed open {longest:?}"
    );
    // Loose on purpose (two busy cores): ordinary requests stay in the same
    // league as before the attack, never stuck behind it.
    let under_attack = p99(during.clone());
    assert!(
        under_attack < baseline * 2 + Duration::from_millis(200),
        "p99 went from {baseline:?} to {under_attack:?} under attack ({} requests)",
        during.len()
    );
    assert_no_panic(&server);
}
