//! Drive the sample guests (built from source under `samples/`) through the runtime.

use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_runtime::{
    CommandContainer, Engine, EngineConfig, Exit, HttpContainer, InstanceReuse, Kind, Limits,
    LoadSource, LogBuffer, Mount, OutboundFuture, OutboundHttp, OutboundRoute, PodSpec,
    RuntimeError,
};

use skiff_testkit::samples::sample;

fn engine() -> Engine {
    Engine::new(EngineConfig {
        max_instances: 64,
        max_memory_size: 256 << 20,
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn pod(name: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        namespace: "default".into(),
        uid: format!("uid-{name}"),
        ..PodSpec::default()
    }
}

fn http_pod(engine: &Engine, wasm: &str, spec: PodSpec) -> HttpContainer {
    let c = engine.load(&sample(wasm)).expect("load");
    assert_eq!(c.kind(), Kind::Http);
    HttpContainer::new(engine, &c, spec, LogBuffer::new(64 << 10)).expect("http container")
}

fn get(path: &str) -> http::Request<Bytes> {
    http::Request::get(path)
        .body(Bytes::new())
        .expect("request")
}

fn text(resp: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_with_its_pod_name() {
    let engine = engine();
    let hello = http_pod(&engine, "hello", pod("hello-1"));
    for _ in 0..3 {
        let resp = hello.handle(get("/")).await.expect("hello");
        assert_eq!(resp.status(), 200);
        assert_eq!(text(&resp).trim(), "Hello from hello-1!");
    }
    assert_eq!(hello.metrics().requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_what_it_was_sent() {
    let engine = engine();
    let mut spec = pod("echo-1");
    spec.cli.env = vec![
        (
            "ECHO_ENV".into(),
            "POD_NAME,POD_NAMESPACE,GREETING,HOME".into(),
        ),
        ("GREETING".into(), "hi".into()),
    ];
    let echo = http_pod(&engine, "echo", spec);
    let req = http::Request::post("http://example.test/some/path?x=1")
        .header("x-test", "yes")
        .body(Bytes::from_static(b"payload!"))
        .expect("request");
    let resp = echo.handle(req).await.expect("echo");
    assert_eq!(resp.status(), 200);
    let body = text(&resp);
    for want in [
        "\"method\":\"POST\"",
        "/some/path?x=1",
        "\"x-test\":\"yes\"",
        "\"body\":\"payload!\"",
        "\"POD_NAME\":\"echo-1\"",
        "\"POD_NAMESPACE\":\"default\"",
        "\"GREETING\":\"hi\"",
        "\"HOME\":null",
    ] {
        assert!(body.contains(want), "{want} not in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_env_overrides_the_downward_api_and_earlier_entries() {
    let engine = engine();
    let mut spec = pod("echo-2");
    spec.cli.env = vec![
        ("ECHO_ENV".into(), "POD_NAME,POD_UID,A".into()),
        ("POD_NAME".into(), "mine".into()),
        ("A".into(), "1".into()),
        ("A".into(), "2".into()),
    ];
    let echo = http_pod(&engine, "echo", spec);
    let body = text(&echo.handle(get("/")).await.expect("echo"));
    for want in [
        "\"POD_NAME\":\"mine\"",
        "\"POD_UID\":\"uid-echo-2\"",
        "\"A\":\"2\"",
    ] {
        assert!(body.contains(want), "{want} not in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_survives_a_new_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine();
    let mut spec = pod("counter-1");
    spec.mounts = vec![Mount {
        host_path: dir.path().to_path_buf(),
        guest_path: "/data".into(),
        read_only: false,
        pinned: None,
    }];
    let counter = http_pod(&engine, "counter", spec.clone());
    assert_eq!(
        text(&counter.handle(get("/")).await.expect("1")).trim(),
        "1"
    );
    assert_eq!(
        text(&counter.handle(get("/")).await.expect("2")).trim(),
        "2"
    );
    drop(counter);
    // A new container (as after a pod restart) on the same volume.
    let counter = http_pod(&engine, "counter", spec.clone());
    assert_eq!(
        text(&counter.handle(get("/")).await.expect("3")).trim(),
        "3"
    );

    // Read-only: the write fails inside the guest, which answers 500.
    spec.mounts[0].read_only = true;
    let ro = http_pod(&engine, "counter", spec);
    let resp = ro.handle(get("/")).await.expect("read-only answer");
    assert_eq!(resp.status(), 500, "{}", text(&resp));
    let n = std::fs::read_to_string(dir.path().join("count")).expect("count file");
    assert_eq!(n.trim(), "3");
}

/// A mount made from an open directory keeps giving instances that
/// directory after its path is swapped for a symlink elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_mount_follows_the_directory_not_its_path() {
    let root = tempfile::tempdir().expect("tempdir");
    let volume = root.path().join("volume");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&volume).expect("volume");
    std::fs::create_dir(&elsewhere).expect("elsewhere");
    let pinned = std::fs::File::open(&volume).expect("open the volume");
    let engine = engine();
    let mut spec = pod("pinned-1");
    spec.mounts = vec![Mount {
        host_path: volume.clone(),
        guest_path: "/data".into(),
        read_only: false,
        pinned: Some(std::sync::Arc::new(pinned.into())),
    }];
    let counter = http_pod(&engine, "counter", spec);
    assert_eq!(
        text(&counter.handle(get("/")).await.expect("1")).trim(),
        "1"
    );
    let moved = root.path().join("moved");
    std::fs::rename(&volume, &moved).expect("move the volume");
    std::os::unix::fs::symlink(&elsewhere, &volume).expect("swap in a symlink");
    assert_eq!(
        text(&counter.handle(get("/")).await.expect("2")).trim(),
        "2"
    );
    assert_eq!(
        std::fs::read_to_string(moved.join("count"))
            .expect("count")
            .trim(),
        "2"
    );
    assert!(
        !elsewhere.join("count").exists(),
        "nothing written elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pi_exits_zero_with_the_right_digits() {
    let engine = engine();
    let c = engine.load(&sample("pi")).expect("load pi");
    assert_eq!(c.kind(), Kind::Command);
    let mut spec = pod("pi-1");
    spec.cli.args = vec!["50".into()];
    let logs = LogBuffer::new(64 << 10);
    let run = CommandContainer::start(&engine, &c, spec, logs.clone()).expect("start");
    assert_eq!(run.wait().await.expect("pi runs"), Exit::Code(0));
    assert_eq!(
        logs.text().trim(),
        "3.14159265358979323846264338327950288419716939937510"
    );

    let mut spec = pod("pi-2");
    spec.cli.args = vec!["many".into()];
    let logs = LogBuffer::new(64 << 10);
    let run = CommandContainer::start(&engine, &c, spec, logs.clone()).expect("start");
    assert_eq!(run.wait().await.expect("pi fails cleanly"), Exit::Code(1));
    assert!(!logs.text().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticker_stops_within_its_grace_period() {
    let engine = engine();
    let c = engine.load(&sample("ticker")).expect("load ticker");
    let mut spec = pod("ticker-1");
    spec.limits.timeout = None;
    let logs = LogBuffer::new(64 << 10);
    let run = CommandContainer::start(&engine, &c, spec, logs.clone()).expect("start");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!run.is_finished());
    let grace = Duration::from_millis(500);
    let start = Instant::now();
    assert_eq!(run.stop(grace).await.expect("stopped"), Exit::Killed);
    assert!(start.elapsed() < grace + Duration::from_millis(500));
    assert!(logs.text().contains("tick 1"), "{}", logs.text());
    assert!(logs.lines().iter().all(|l| l.time.elapsed().is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_end_only_themselves() {
    let engine = engine();
    let hello = std::sync::Arc::new(http_pod(&engine, "hello", pod("hello-2")));
    let mut spec = pod("spinner-1");
    spec.limits.timeout = Some(Duration::from_secs(1));
    let spinner = http_pod(&engine, "spinner", spec);
    let mut spec = pod("hog-1");
    spec.limits = Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    };
    let hog = http_pod(&engine, "hog", spec);
    let crasher = http_pod(&engine, "crasher", pod("crasher-1"));

    let spin = tokio::spawn(async move { spinner.handle(get("/spin")).await });
    // hello keeps answering while the spinner spins.
    let hello2 = hello.clone();
    let hellos = tokio::spawn(async move {
        for _ in 0..10 {
            let r = hello2.handle(get("/")).await.expect("hello while spinning");
            assert_eq!(text(&r).trim(), "Hello from hello-2!");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let ok = hog
        .handle(get("/grow?mb=8"))
        .await
        .expect("hog within limit");
    assert_eq!(ok.status(), 200, "{}", text(&ok));
    let err = hog
        .handle(get("/grow?mb=128"))
        .await
        .expect_err("hog past limit");
    assert!(matches!(err, RuntimeError::MemoryLimit { .. }), "{err}");
    assert!(err.to_string().contains("memory limit") && err.to_string().contains("hog-1"));

    for path in ["/crash", "/crash?kind=unreachable", "/crash?kind=overflow"] {
        let err = crasher.handle(get(path)).await.expect_err("crash");
        assert!(matches!(err, RuntimeError::Trap { .. }), "{path}: {err}");
        assert!(err.to_string().contains("crasher-1"), "{err}");
    }
    assert!(
        crasher.logs().text().contains("panicked"),
        "{}",
        crasher.logs().text()
    );
    let fine = crasher.handle(get("/")).await.expect("crasher elsewhere");
    assert_eq!(fine.status(), 200);

    let err = spin.await.expect("join").expect_err("spinner times out");
    assert!(matches!(err, RuntimeError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("timeout") && err.to_string().contains("spinner-1"));
    hellos.await.expect("hellos");
    let r = hello.handle(get("/")).await.expect("hello after all that");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_core_modules_are_refused() {
    let engine = engine();
    let err = engine.load(b"definitely not wasm").expect_err("garbage");
    assert!(matches!(err, RuntimeError::NotWasm), "{err}");
    let core = wat::parse_str("(module (func (export \"run\")))").expect("wat");
    let err = engine.load(&core).expect_err("core module");
    assert!(matches!(err, RuntimeError::CoreModule), "{err}");
    assert!(err.to_string().contains("core module"));
    let other = wat::parse_str("(component (core module $m (func (export \"f\"))) (core instance $i (instantiate $m)) (func (export \"hello\") (canon lift (core func $i \"f\"))))").expect("wat");
    let err = engine.load(&other).expect_err("neither kind");
    assert!(err.to_string().contains("hello"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 8,
        max_memory_size: 64 << 20,
        ..EngineConfig::default()
    };
    let bytes = sample("hello");
    let first = Engine::new(config.clone()).expect("engine");
    let (_, src) = first.load_with_source(&bytes).expect("compile");
    assert_eq!(src, LoadSource::Compiled);
    drop(first);
    // A "restarted node": a new engine with the same configuration.
    let second = Engine::new(config).expect("engine");
    let (c, src) = second.load_with_source(&bytes).expect("from cache");
    assert_eq!(src, LoadSource::Cache);
    let hello = HttpContainer::new(&second, &c, pod("cached"), LogBuffer::new(1024)).expect("c");
    let r = hello.handle(get("/")).await.expect("hello");
    assert_eq!(text(&r).trim(), "Hello from cached!");
}

fn spun_rounds(resp: &http::Response<Bytes>) -> u64 {
    // "spun N ms (R rounds)"
    let body = text(resp);
    body.split('(')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rounds in {body:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_budget_throttles_a_spinner_and_hello_keeps_answering() {
    let engine = engine();
    let free = http_pod(&engine, "spinner", pod("spinner-free"));
    let mut spec = pod("spinner-100m");
    spec.limits.cpu_millis = Some(100);
    spec.limits.timeout = Some(Duration::from_secs(2));
    let throttled = std::sync::Arc::new(http_pod(&engine, "spinner", spec));

    // The same 300 ms of wall time buys a 100m instance about a tenth of the work.
    let full = spun_rounds(&free.handle(get("/spin?ms=300")).await.expect("free spin"));
    let slow = spun_rounds(
        &throttled
            .handle(get("/spin?ms=300"))
            .await
            .expect("throttled spin"),
    );
    assert!(
        slow * 2 < full,
        "100m spinner did {slow} rounds, unthrottled {full}"
    );

    // Four throttled spinners spin forever on two worker threads; hello, unlimited,
    // keeps answering quickly, and each spinner still ends with its timeout.
    let hello = http_pod(&engine, "hello", pod("hello-cpu"));
    let spins: Vec<_> = (0..4)
        .map(|_| {
            let s = throttled.clone();
            tokio::spawn(async move { s.handle(get("/spin")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut latencies = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let r = hello.handle(get("/")).await.expect("hello while spinning");
        latencies.push(start.elapsed());
        assert_eq!(text(&r).trim(), "Hello from hello-cpu!");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(p99 < Duration::from_secs(1), "hello p99 {p99:?}");
    for s in spins {
        let err = s.await.expect("join").expect_err("spinner times out");
        assert!(matches!(err, RuntimeError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("spinner-100m"), "{err}");
    }
}

/// An embedder's outbound hook that answers `*.svc` requests itself (and
/// remembers their URIs), lets requests to 127.0.0.1 go to the network and
/// refuses the rest.
#[derive(Default)]
struct CannedOutbound {
    seen: std::sync::Mutex<Vec<String>>,
}

impl OutboundHttp for CannedOutbound {
    fn route(&self, uri: &http::Uri) -> OutboundRoute {
        match uri.host() {
            Some(h) if h.ends_with(".svc") => OutboundRoute::Embedder,
            Some("127.0.0.1") => OutboundRoute::Network,
            _ => OutboundRoute::Denied("not listed".into()),
        }
    }

    fn send(&self, request: http::Request<Bytes>) -> OutboundFuture {
        self.seen
            .lock()
            .expect("lock")
            .push(request.uri().to_string());
        Box::pin(async {
            http::Response::builder()
                .status(203)
                .body(Bytes::from_static(b"from the hook"))
                .map_err(|e| e.to_string())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_is_refused_without_a_hook_and_goes_through_one() {
    let engine = engine();
    let url = "/?url=http%3A%2F%2Fhello.default.svc%2Fgreet%3Fx%3D1";

    let refused = http_pod(&engine, "fetch", pod("fetch-1"));
    let resp = refused.handle(get(url)).await.expect("fetch answers");
    assert_eq!(resp.status(), 502, "{}", text(&resp));
    assert!(text(&resp).contains("HttpRequestDenied"), "{}", text(&resp));

    let hook = std::sync::Arc::new(CannedOutbound::default());
    let mut spec = pod("fetch-2");
    spec.outbound = Some(hook.clone());
    let fetch = http_pod(&engine, "fetch", spec);
    let resp = fetch.handle(get(url)).await.expect("fetch answers");
    assert_eq!(resp.status(), 200, "{}", text(&resp));
    assert_eq!(text(&resp), "203\nfrom the hook");
    assert_eq!(
        *hook.seen.lock().expect("lock"),
        ["http://hello.default.svc/greet?x=1"]
    );

    let resp = fetch
        .handle(get("/?url=http://example.com/"))
        .await
        .expect("fetch answers");
    assert_eq!(resp.status(), 502, "{}", text(&resp));
    assert!(text(&resp).contains("HttpRequestDenied"), "{}", text(&resp));

    // An allowed host is reached over a real socket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "request cut short");
            request.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\noutside")
            .await
            .expect("write");
        String::from_utf8_lossy(&request).into_owned()
    });
    let resp = fetch
        .handle(get(&format!("/?url=http://127.0.0.1:{port}/out")))
        .await
        .expect("fetch answers");
    assert_eq!(text(&resp), "200\noutside");
    let request = server.await.expect("server");
    assert!(request.starts_with("GET /out HTTP/1.1"), "{request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_report_time_memory_and_exit_code() {
    let engine = engine();
    let c = engine.load(&sample("pi")).expect("load pi");
    let mut spec = pod("pi-metrics");
    spec.cli.args = vec!["2000".into()];
    let start = Instant::now();
    let run = CommandContainer::start(&engine, &c, spec, LogBuffer::new(64 << 10)).expect("start");
    while !run.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pi still running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let m = run.metrics();
    assert_eq!(m.exit_code, Some(0));
    assert!(m.instance_time > Duration::ZERO && m.instance_time <= start.elapsed());
    assert!(m.memory_high_water >= 64 << 10, "{m:?}");
    // Frozen once it ended.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(run.metrics(), m);
    assert_eq!(run.wait().await.expect("pi"), Exit::Code(0));

    let c = engine.load(&sample("ticker")).expect("load ticker");
    let mut spec = pod("ticker-metrics");
    spec.limits.timeout = None;
    let run = CommandContainer::start(&engine, &c, spec, LogBuffer::new(64 << 10)).expect("start");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = run.metrics();
    assert_eq!(m.exit_code, None, "still running");
    assert!(m.instance_time >= Duration::from_millis(300), "{m:?}");
    assert!(m.memory_high_water > 0, "{m:?}");
    assert_eq!(
        run.stop(Duration::from_millis(10)).await.expect("stop"),
        Exit::Killed
    );
}

fn reusing(name: &str) -> PodSpec {
    let mut spec = pod(name);
    spec.limits.reuse = Some(InstanceReuse::default());
    spec
}

/// Waits until no request of `c` is in flight. A response, body and all, can
/// reach the caller a moment before its guest returns from `handle` and its
/// instance goes back to the pool: a test that expects the next request to
/// find it there waits for that.
async fn settled(c: &HttpContainer) {
    let start = Instant::now();
    while c.metrics().in_flight > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a request stays in flight"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `GET path` of `c`, once its instance is back; the request's outcome.
async fn settled_get(c: &HttpContainer, path: &str) -> Result<http::Response<Bytes>, RuntimeError> {
    let result = c.handle(get(path)).await;
    settled(c).await;
    result
}

/// `crasher`'s answer to `path` (a `/count`), which must be a 200.
async fn answer(c: &HttpContainer, path: &str) -> String {
    let resp = settled_get(c, path)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(resp.status(), 200, "{path}: {}", text(&resp));
    text(&resp).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_fresh_per_request_unless_the_pod_reuses_them() {
    let engine = engine();
    let fresh = http_pod(&engine, "crasher", pod("fresh"));
    for _ in 0..3 {
        assert_eq!(answer(&fresh, "/count").await, "1");
    }
    let m = fresh.metrics();
    assert_eq!((m.requests, m.instances, m.idle_instances), (3, 3, 0));

    let reused = http_pod(&engine, "crasher", reusing("reused"));
    for n in ["1", "2", "3"] {
        assert_eq!(answer(&reused, "/count").await, n);
    }
    let m = reused.metrics();
    assert_eq!((m.requests, m.instances, m.idle_instances), (3, 1, 1));
    assert_eq!((m.in_flight, m.errors), (0, 0));
    assert!(m.memory_high_water > 0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_or_leaking_instance_is_not_reused() {
    let engine = engine();
    let crasher = http_pod(&engine, "crasher", reusing("crasher-reuse"));
    assert_eq!(answer(&crasher, "/count").await, "1");
    assert_eq!(answer(&crasher, "/count").await, "2");
    let err = settled_get(&crasher, "/crash").await.expect_err("trap");
    assert!(matches!(err, RuntimeError::Trap { .. }), "{err}");
    assert_eq!(
        crasher.metrics().idle_instances,
        0,
        "the trapped one is gone"
    );
    assert_eq!(answer(&crasher, "/count").await, "1", "a fresh instance");
    // Leaking a host resource (a `fields` it never drops) retires the instance
    // after that request, which it still answers.
    assert_eq!(answer(&crasher, "/count?leak=1").await, "2");
    assert_eq!(answer(&crasher, "/count").await, "1", "a fresh instance");
    assert_eq!(answer(&crasher, "/count").await, "2");
    let m = crasher.metrics();
    assert_eq!((m.requests, m.instances, m.errors), (7, 3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_is_dropped_after_max_requests() {
    let engine = engine();
    let mut spec = pod("capped");
    spec.limits.reuse = Some(InstanceReuse {
        max_requests: 3,
        ..InstanceReuse::default()
    });
    let capped = http_pod(&engine, "crasher", spec);
    let mut answers = Vec::new();
    for _ in 0..7 {
        answers.push(answer(&capped, "/count").await);
    }
    assert_eq!(answers, ["1", "2", "3", "1", "2", "3", "1"]);
    assert_eq!(capped.metrics().instances, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_of_a_reused_instance_has_its_own_timeout_and_memory_is_capped() {
    let engine = engine();
    // Two requests of 2 s on one instance with a 3 s timeout: both fit
    // only if the deadline starts over for the second.
    let mut spec = reusing("spinner-reuse");
    spec.limits.timeout = Some(Duration::from_secs(3));
    let spinner = http_pod(&engine, "spinner", spec);
    for _ in 0..2 {
        let r = settled_get(&spinner, "/spin?ms=2000")
            .await
            .expect("a whole timeout per request");
        assert_eq!(r.status(), 200, "{}", text(&r));
    }
    assert_eq!(spinner.metrics().instances, 1);
    let err = settled_get(&spinner, "/spin").await.expect_err("timeout");
    assert!(matches!(err, RuntimeError::Timeout { .. }), "{err}");
    assert_eq!(spinner.metrics().idle_instances, 0);
    let r = settled_get(&spinner, "/").await.expect("fresh");
    assert_eq!(r.status(), 200);
    assert_eq!(spinner.metrics().instances, 2);

    let mut spec = reusing("hog-reuse");
    spec.limits.memory_bytes = Some(64 << 20);
    let hog = http_pod(&engine, "hog", spec);
    for _ in 0..2 {
        let r = settled_get(&hog, "/grow?mb=8").await.expect("within limit");
        assert_eq!(r.status(), 200, "{}", text(&r));
    }
    assert_eq!(hog.metrics().instances, 1);
    let err = settled_get(&hog, "/grow?mb=128")
        .await
        .expect_err("past limit");
    assert!(matches!(err, RuntimeError::MemoryLimit { .. }), "{err}");
    assert_eq!(hog.metrics().idle_instances, 0);
    let r = settled_get(&hog, "/").await.expect("fresh");
    assert_eq!(r.status(), 200);
    assert_eq!(hog.metrics().instances, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_a_bounded_pool_that_a_stop_empties() {
    let engine = engine();
    let mut spec = reusing("parallel");
    spec.limits.max_concurrency = 8;
    let crasher = std::sync::Arc::new(http_pod(&engine, "crasher", spec));
    let mut answers = Vec::new();
    for _ in 0..10 {
        let round: Vec<_> = (0..8)
            .map(|_| {
                let c = crasher.clone();
                tokio::spawn(async move { answer(&c, "/count").await })
            })
            .collect();
        for r in round {
            answers.push(r.await.expect("join"));
        }
    }
    let m = crasher.metrics();
    assert_eq!((m.requests, m.errors, m.in_flight), (80, 0, 0));
    assert!(
        (1..=8).contains(&m.instances),
        "at most 8 instances are busy at once, and idle ones serve the next: {m:?}"
    );
    assert!((1..=8).contains(&m.idle_instances), "{m:?}");
    // Each instance counts its own requests from 1: as many 1s as instances.
    let ones = answers.iter().filter(|a| *a == "1").count() as u64;
    assert_eq!(ones, m.instances, "{answers:?}");
    assert!(answers.iter().any(|a| a != "1"), "{answers:?}");

    crasher.stop_instances();
    assert_eq!(crasher.metrics().idle_instances, 0);
    // (Whether a request started after the stop fails or slips through
    // first depends on which the instance's task sees first.)
    let _ = crasher.handle(get("/count")).await;
    assert_eq!(
        crasher.metrics().idle_instances,
        0,
        "none is kept after a stop"
    );
}
