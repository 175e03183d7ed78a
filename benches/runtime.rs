//! The Wasm runtime: what one request to the `hello` sample costs in process, how
//! many requests per second one and two worker threads serve, how long compiling
//! `hello` takes cold and from the on-disk cache, and how much memory an idle HTTP
//! pod holds (to back the budget of 10,000 running HTTP pods on one 24 GiB node).
//!
//! `cargo bench --bench runtime` runs the full scenarios; `cargo bench --bench
//! runtime -- --quick` shorter ones for development. The samples are built from
//! source under `samples/` with the same cargo command as `runtime/tests/samples.rs`.
//! The method and the recorded results are in BENCHMARKS.md.

use latency::LatencySummary;
#[allow(dead_code)]
mod support;

use support::{latency, table};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use table::{Row, format_table};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use skiff_runtime::{
    Engine, EngineConfig, HttpContainer, Kind, Limits, LoadSource, LogBuffer, PodSpec,
};

// The same allocator as the `skiff` binary, so the figures are what a node runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// DESIGN.md: running HTTP pods on one 24 GiB node: 10,000, so at most
/// 24 GiB / 10,000 (about 2.4 MiB) per idle pod.
const POD_MEMORY_BUDGET: f64 = 24.0 * (1u64 << 30) as f64 / 10_000.0;
/// Requests in flight at once in the throughput scenarios.
const CONCURRENT_REQUESTS: usize = 16;
/// The log buffer each pod gets (as in the runtime's tests).
const LOG_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy)]
struct Timing {
    warmup_requests: usize,
    requests: usize,
    warmup: Duration,
    measure: Duration,
    cold_compiles: usize,
    idle_pods: usize,
}

impl Timing {
    fn full() -> Self {
        Timing {
            warmup_requests: 200,
            requests: 5_000,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            cold_compiles: 3,
            idle_pods: 1_000,
        }
    }

    fn quick() -> Self {
        Timing {
            warmup_requests: 50,
            requests: 500,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
            cold_compiles: 1,
            idle_pods: 100,
        }
    }
}

/// Build every sample (as `runtime/tests/samples.rs` does); the directory of the
/// `.wasm` files.
fn build_samples() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("SKIFF_SAMPLES_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".cache/skiff-samples-target")
        }
    };
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root.join("samples/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        // Do not let the bench's own build settings leak into the guest build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("run cargo to build the samples")?;
    ensure!(
        status.success(),
        "building the samples failed: {status} (is the wasm32-wasip2 target installed?)"
    );
    Ok(target.join("wasm32-wasip2/release"))
}

fn pod(name: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        namespace: "default".into(),
        uid: format!("uid-{name}"),
        limits: Limits {
            max_concurrency: 1024,
            ..Limits::default()
        },
        ..PodSpec::default()
    }
}

fn get() -> http::Request<Bytes> {
    http::Request::get("/").body(Bytes::new()).expect("request")
}

async fn hello_once(c: &HttpContainer, expect: &str) -> anyhow::Result<()> {
    let resp = c.handle(get()).await.context("hello request")?;
    ensure!(resp.status() == 200, "hello answered {}", resp.status());
    let body = String::from_utf8_lossy(resp.body());
    ensure!(body.trim() == expect, "hello answered {body:?}");
    Ok(())
}

fn engine(cache_dir: Option<PathBuf>) -> anyhow::Result<Engine> {
    // `RUNTIME_KEEP_RESIDENT=BYTES` compares the pooling allocator's
    // kept-resident bytes per slot (0: wasmtime's default, `madvise`).
    let keep_resident = std::env::var("RUNTIME_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(skiff_runtime::KEEP_RESIDENT);
    Engine::new(EngineConfig {
        cache_dir,
        keep_resident,
        ..EngineConfig::default()
    })
    .context("engine")
}

/// Sequential requests through one container, each timed on its own.
fn sequential(
    rt: &tokio::runtime::Runtime,
    c: &HttpContainer,
    timing: Timing,
) -> anyhow::Result<LatencySummary> {
    rt.block_on(async {
        for _ in 0..timing.warmup_requests {
            hello_once(c, "Hello from hello-bench!").await?;
        }
        let mut samples = Vec::with_capacity(timing.requests);
        for _ in 0..timing.requests {
            let start = Instant::now();
            let resp = c.handle(get()).await.context("hello request")?;
            samples.push(start.elapsed());
            ensure!(resp.status() == 200, "hello answered {}", resp.status());
        }
        Ok(LatencySummary::from_samples(samples))
    })
}

/// `CONCURRENT_REQUESTS` closed-loop tasks on a runtime with `threads` workers;
/// requests completed per second in the measured window, and errors.
fn throughput(
    c: &Arc<HttpContainer>,
    threads: usize,
    timing: Timing,
) -> anyhow::Result<(f64, u64)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let counting = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENT_REQUESTS {
            let c = c.clone();
            let (counting, stop) = (counting.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut errors) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let counted = counting.load(Ordering::Relaxed);
                    let good = matches!(c.handle(get()).await, Ok(r) if r.status() == 200);
                    match (counted, good) {
                        (true, true) => ok += 1,
                        (true, false) => errors += 1,
                        _ => {}
                    }
                }
                (ok, errors)
            }));
        }
        tokio::time::sleep(timing.warmup).await;
        counting.store(true, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(timing.measure).await;
        stop.store(true, Ordering::Relaxed);
        let (mut ok, mut errors) = (0, 0);
        for t in tasks {
            let (o, e) = t.await?;
            ok += o;
            errors += e;
        }
        // Requests started in the window count; the window ends when the last
        // of them has finished.
        anyhow::Ok((ok as f64 / start.elapsed().as_secs_f64(), errors))
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Median cold compile (fresh cache dir each time) and median load from the
/// on-disk cache (a new Engine on the same dir).
fn compile_times(
    wasm: &[u8],
    parent: &Path,
    timing: Timing,
) -> anyhow::Result<(Duration, Duration)> {
    let (mut cold, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..timing.cold_compiles {
        let dir = tempfile::Builder::new()
            .prefix("runtime-cache-")
            .tempdir_in(parent)?;
        let e = engine(Some(dir.path().to_path_buf()))?;
        let start = Instant::now();
        let (c, source) = e.load_with_source(wasm)?;
        cold.push(start.elapsed());
        ensure!(
            source == LoadSource::Compiled,
            "cold load came from {source:?}"
        );
        ensure!(c.kind() == Kind::Http, "hello is {:?}", c.kind());
        drop(e);
        for _ in 0..3 {
            let e = engine(Some(dir.path().to_path_buf()))?;
            let start = Instant::now();
            let (_, source) = e.load_with_source(wasm)?;
            cached.push(start.elapsed());
            ensure!(
                source == LoadSource::Cache,
                "warm load came from {source:?}"
            );
        }
    }
    cold.sort_unstable();
    cached.sort_unstable();
    Ok((cold[cold.len() / 2], cached[cached.len() / 2]))
}

fn vm_rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

struct IdleResult {
    pods: usize,
    rss_before: u64,
    rss_after: u64,
    checked: usize,
    create: Duration,
}

impl IdleResult {
    fn per_pod(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.pods as f64
    }
}

/// Create `timing.idle_pods` HTTP containers for hello and measure RSS growth;
/// then check that a sample of them still answers with its own name.
fn idle_pods(
    rt: &tokio::runtime::Runtime,
    e: &Engine,
    wasm: &[u8],
    timing: Timing,
) -> anyhow::Result<IdleResult> {
    let component = e.load(wasm)?;
    // One pod first, so one-time costs (linker caches, allocator arenas) do not
    // count towards the per-pod figure.
    let first = HttpContainer::new(e, &component, pod("idle-first"), LogBuffer::new(LOG_BYTES))?;
    rt.block_on(hello_once(&first, "Hello from idle-first!"))?;
    let rss_before = vm_rss_bytes()?;
    let start = Instant::now();
    let mut pods = Vec::with_capacity(timing.idle_pods);
    for i in 0..timing.idle_pods {
        let name = format!("idle-{i}");
        pods.push(HttpContainer::new(
            e,
            &component,
            pod(&name),
            LogBuffer::new(LOG_BYTES),
        )?);
    }
    let create = start.elapsed();
    let rss_after = vm_rss_bytes()?;
    let step = (timing.idle_pods / 10).max(1);
    let mut checked = 0;
    rt.block_on(async {
        for i in (0..timing.idle_pods).step_by(step) {
            hello_once(&pods[i], &format!("Hello from idle-{i}!")).await?;
            checked += 1;
        }
        anyhow::Ok(())
    })?;
    Ok(IdleResult {
        pods: timing.idle_pods,
        rss_before,
        rss_after,
        checked,
        create,
    })
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn mib(bytes: f64) -> String {
    let m = bytes / (1u64 << 20) as f64;
    if m < 0.1 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{m:.2} MiB")
    }
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn machine_summary() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = read("/proc/loadavg")
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{cpus} CPUs, Linux {kernel}, load average {load} at start")
}

fn progress(what: &str) {
    eprintln!("running: {what} ...");
}

fn main() -> anyhow::Result<()> {
    let mut timing = Timing::full();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => timing = Timing::quick(),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!("usage: cargo bench --bench runtime [-- --quick]");
                return Ok(());
            }
            other => eprintln!("runtime: ignoring argument {other:?}"),
        }
    }
    if !cfg!(target_os = "linux") {
        bail!("the idle-pod figure reads /proc/self/status: Linux only");
    }
    println!("machine: {}", machine_summary());

    progress("building the samples");
    let hello_path = build_samples()?.join("hello.wasm");
    let hello =
        std::fs::read(&hello_path).with_context(|| format!("read {}", hello_path.display()))?;
    println!("hello.wasm: {} bytes", thousands(hello.len() as f64));

    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&parent)?;
    let mut rows = Vec::new();

    progress("compile times");
    let (cold, cached) = compile_times(&hello, &parent, timing)?;
    rows.push(Row {
        scenario: "hello compile, cold".into(),
        figure: millis(cold),
        ..Row::default()
    });
    rows.push(Row {
        scenario: "hello load from disk cache".into(),
        figure: millis(cached),
        ..Row::default()
    });

    let e = engine(None)?;
    let component = e.load(&hello)?;
    let c = Arc::new(HttpContainer::new(
        &e,
        &component,
        pod("hello-bench"),
        LogBuffer::new(LOG_BYTES),
    )?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    progress("sequential requests");
    let seq = sequential(&rt, &c, timing)?;
    rows.push(Row {
        scenario: "hello instantiate+handle p50".into(),
        figure: micros(seq.p50),
        ..Row::default()
    });
    rows.push(Row {
        scenario: "hello instantiate+handle p99".into(),
        figure: micros(seq.p99),
        ..Row::default()
    });

    let mut errors_total = 0;
    for threads in [1, 2] {
        progress(&format!("throughput on {threads} thread(s)"));
        let (per_second, errors) = throughput(&c, threads, timing)?;
        errors_total += errors;
        rows.push(Row {
            scenario: format!(
                "hello requests/s, {threads} thread{}, {CONCURRENT_REQUESTS} in flight",
                if threads == 1 { "" } else { "s" }
            ),
            figure: thousands(per_second),
            ..Row::default()
        });
    }

    progress(&format!("{} idle HTTP pods", timing.idle_pods));
    let idle = idle_pods(&rt, &e, &hello, timing)?;
    rows.push(Row {
        scenario: format!(
            "memory per idle HTTP pod (N = {})",
            thousands(idle.pods as f64)
        ),
        figure: mib(idle.per_pod()),
        budget: Some(format!("{} (10,000 pods / 24 GiB)", mib(POD_MEMORY_BUDGET))),
        peer: None,
        ratio: Some(idle.per_pod() / POD_MEMORY_BUDGET),
    });

    println!("{}", format_table(&rows));
    println!(
        "sequential: {} requests, max {}; throughput errors: {errors_total}",
        seq.count,
        micros(seq.max)
    );
    println!(
        "idle pods: VmRSS {} -> {} for {} pods, created in {}; {} of them answered",
        mib(idle.rss_before as f64),
        mib(idle.rss_after as f64),
        thousands(idle.pods as f64),
        millis(idle.create),
        idle.checked
    );
    Ok(())
}
