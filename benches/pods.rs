//! Pods on the embedded default: how long a pod takes from its create request to
//! Ready as a watch sees it (the cached-component case, as Kubernetes' pod
//! startup SLI measures it, but from the request rather than from
//! creationTimestamp), and the resident memory of an idle `skiff up` process
//! with no pods (fresh, and after it has compiled one component) and with 100
//! running pods.
//!
//! The benchmark starts the real `skiff up` binary (control plane and one node
//! in one process) on free loopback ports with its data on the real disk,
//! pushes the `hello` sample, starts and removes one pod so the component is
//! fetched and compiled before any clock starts, then creates pods in two
//! batches of 100 with a fixed number of concurrent creators while one watch
//! notes when each pod turns Ready. Resident memory is `VmRSS` of the process,
//! the median of several readings after the cluster has been idle for a while.
//!
//! `cargo bench --bench pods` (200 pods); `cargo bench --bench pods -- --quick`
//! (40 pods, for development). The method and the recorded results are in
//! BENCHMARKS.md.

use crate::support::{api_client, dirs, figure, latency, pod_startup, skiff_up, table};
use skiff_testkit::samples;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use api_client::{Connection, Endpoint};
use bytes::Bytes;
use figure::{Figure, thousands};
use http::{Method, StatusCode};
use latency::LatencySummary;
use pod_startup::PODS;
use serde_json::{Value, json};
use skiff_up::{SKIFF, SkiffUp};
use table::{Row, format_table};
use tokio::sync::Mutex;

/// DESIGN.md: pod create -> Ready (cached component, one node), p99.
const READY_P99_BUDGET: Duration = Duration::from_millis(35);
/// DESIGN.md: idle resident memory of the all-in-one `skiff up`.
const IDLE_RSS_BUDGET_MIB: f64 = 60.0;
/// Requests in flight at once while a batch is created.
const CREATORS: usize = 8;
/// DESIGN.md: running HTTP pods on one 24 GiB node.
const DENSITY_BUDGET: usize = 10_000;
/// Longest wait for anything the cluster is asked to do.
const DEADLINE: Duration = Duration::from_secs(120);

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pods per batch, created one batch after the other on the same node
    /// (earlier batches keep running); memory is read after each.
    pub batches: Vec<usize>,
    /// Pods running in the end, reached in steps after the batches: after each
    /// step memory is read and every running pod is asked to answer.
    pub density: Vec<usize>,
    /// How long the cluster sits idle before memory is read.
    pub settle: Duration,
    /// Readings of `VmRSS`, one a second; the median is the figure.
    pub readings: usize,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Idle RSS right after start, before any component was pushed.
    pub idle_fresh: u64,
    /// Idle RSS with no pods, after the node compiled the component once.
    pub idle_empty: u64,
    pub batches: Vec<BatchOutcome>,
    /// After the batches, then after each density step.
    pub density: Vec<DensityOutcome>,
    pub binary_size: u64,
}

/// Pods running on the node at one density step.
#[derive(Debug, Clone)]
pub struct DensityOutcome {
    pub running: usize,
    /// Pods created in this step, and how long from the first create request
    /// until the watch saw the last of them Ready.
    pub added: usize,
    pub took: Duration,
    /// Idle RSS with them all running.
    pub rss: u64,
    /// How many answered a request (through the API's pod proxy) with a reply
    /// that names them.
    pub answered: usize,
}

/// One batch of pods.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub pods: usize,
    /// Pods running on the node after this batch (this and earlier batches).
    pub running: usize,
    pub latencies: Vec<Duration>,
    /// Idle RSS after this batch turned Ready.
    pub rss: u64,
}

impl Plan {
    fn full() -> Self {
        Plan {
            batches: vec![100, 100],
            density: Vec::new(),
            settle: Duration::from_secs(5),
            readings: 5,
        }
    }

    fn quick() -> Self {
        Plan {
            batches: vec![20, 20],
            density: Vec::new(),
            settle: Duration::from_secs(2),
            readings: 3,
        }
    }

    /// Pods running at the end (the node must admit them all).
    pub fn total(&self) -> usize {
        let batches = self.batches.iter().sum();
        self.density.iter().copied().fold(batches, usize::max)
    }
}

/// `VmRSS` of a process, in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// The median of `plan.readings` readings of the process's RSS, one a second,
/// after it has been idle for `plan.settle`.
async fn idle_rss(pid: u32, plan: &Plan) -> anyhow::Result<u64> {
    tokio::time::sleep(plan.settle).await;
    let mut readings = Vec::with_capacity(plan.readings);
    for i in 0..plan.readings {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        readings.push(rss_bytes(pid)?);
    }
    readings.sort_unstable();
    Ok(readings[readings.len() / 2])
}

fn pod_manifest(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "containers": [{
                "name": "main",
                "image": "hello:v1",
                // hello names its pod in every reply: the answer check reads it.
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
            }],
            "terminationGracePeriodSeconds": 0
        }
    })
}

/// Pushes `hello.wasm` as `hello:v1`.
async fn push_hello(api: &Endpoint) -> anyhow::Result<()> {
    let wasm = samples::samples_dir().join("hello.wasm");
    let bytes = std::fs::read(&wasm).with_context(|| format!("read {}", wasm.display()))?;
    let mut conn = Connection::open(api).await?;
    conn.request(
        Method::POST,
        "/apis/skiff.dev/v1alpha1/components?name=hello%3Av1",
        "application/wasm",
        Bytes::from(bytes),
    )
    .await?
    .expect(StatusCode::CREATED, "push hello")
}

/// Creates `names` with `CREATORS` requests in flight and waits until a watch
/// has seen every one Ready; each pod's time from its request to that event.
async fn create_until_ready(api: &Endpoint, names: Vec<String>) -> anyhow::Result<Vec<Duration>> {
    let pods = names
        .into_iter()
        .map(|n| {
            let manifest = pod_manifest(&n);
            (n, manifest)
        })
        .collect();
    pod_startup::create_until_ready(api, pods, CREATORS, "app%3Dbench", DEADLINE).await
}

/// Creates one pod, waits until it is Ready and deletes it: the node has then
/// fetched and compiled the component, so later pods find it cached.
async fn warm_up(api: &Endpoint) -> anyhow::Result<()> {
    create_until_ready(api, vec!["warm-up".into()]).await?;
    pod_startup::delete_pods(api, &["warm-up"], DEADLINE).await
}

/// Asks every pod in `names` for `/` through the API's pod proxy (the path
/// `kubectl get --raw .../pods/NAME/proxy/` takes), `CREATORS` at a time; how
/// many answered 200 with a reply naming the pod.
async fn answering(api: &Endpoint, names: &[String]) -> anyhow::Result<usize> {
    let queue = Arc::new(Mutex::new(names.to_vec()));
    let mut askers = Vec::new();
    for _ in 0..CREATORS {
        let (queue, api) = (queue.clone(), api.clone());
        askers.push(tokio::spawn(async move {
            let mut conn = Connection::open(&api).await?;
            let mut answered = 0;
            loop {
                let Some(name) = queue.lock().await.pop() else {
                    return anyhow::Ok(answered);
                };
                let path = format!("{PODS}/{name}/proxy/");
                match conn
                    .request(Method::GET, &path, "text/plain", Bytes::new())
                    .await
                {
                    Ok(reply) => {
                        if reply.status == StatusCode::OK && reply.text().contains(&name) {
                            answered += 1;
                        }
                    }
                    // The connection is gone: the pod did not answer; go on
                    // with a new one.
                    Err(_) => conn = Connection::open(&api).await?,
                }
            }
        }));
    }
    let mut total = 0;
    for asker in askers {
        total += asker.await.context("an asker panicked")??;
    }
    Ok(total)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs the benchmark with `plan`, with `skiff up`'s data in a fresh
/// directory under `parent` (on the real disk), and stops it afterwards.
pub fn measure(plan: &Plan, parent: &Path) -> anyhow::Result<Outcome> {
    let dir = dirs::fresh(parent, "pods-")?;
    eprintln!("running: build the samples ...");
    samples::samples_dir();
    let binary_size = std::fs::metadata(SKIFF)
        .with_context(|| format!("stat {SKIFF}"))?
        .len();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    eprintln!("running: skiff up ...");
    // Room for every pod and the warm-up pod (which may still be terminating),
    // and never below the node's default.
    let up = SkiffUp::start(dir.path(), (plan.total() + 1).max(1000))?;
    let api = &up.api;
    let pid = up.pid();
    let outcome = runtime.block_on(async {
        eprintln!("running: idle memory, fresh start ...");
        let idle_fresh = idle_rss(pid, plan).await?;
        push_hello(api).await?;
        warm_up(api).await?;
        eprintln!("running: idle memory, no pods after one compile ...");
        let idle_empty = idle_rss(pid, plan).await?;
        let mut batches = Vec::new();
        let mut running = 0;
        for &pods in &plan.batches {
            eprintln!("running: create {pods} pods ({running} running) ...");
            let names: Vec<String> = (running..running + pods)
                .map(|i| format!("bench-{i}"))
                .collect();
            let latencies = create_until_ready(api, names).await?;
            running += pods;
            eprintln!("running: idle memory, {running} pods ...");
            let rss = idle_rss(pid, plan).await?;
            batches.push(BatchOutcome {
                pods,
                running,
                latencies,
                rss,
            });
        }
        let mut density = Vec::new();
        if let Some(last) = batches.last() {
            eprintln!("running: do all {running} pods answer ...");
            let names: Vec<String> = (0..running).map(|i| format!("bench-{i}")).collect();
            density.push(DensityOutcome {
                running,
                added: 0,
                took: Duration::ZERO,
                rss: last.rss,
                answered: answering(api, &names).await?,
            });
        }
        for &target in &plan.density {
            if target <= running {
                continue;
            }
            eprintln!(
                "running: create {} pods ({running} running) ...",
                target - running
            );
            let names: Vec<String> = (running..target).map(|i| format!("bench-{i}")).collect();
            let began = Instant::now();
            create_until_ready(api, names).await?;
            let took = began.elapsed();
            let added = target - running;
            running = target;
            eprintln!("running: idle memory, {running} pods ...");
            let rss = idle_rss(pid, plan).await?;
            eprintln!("running: do all {running} pods answer ...");
            let names: Vec<String> = (0..running).map(|i| format!("bench-{i}")).collect();
            density.push(DensityOutcome {
                running,
                added,
                took,
                rss,
                answered: answering(api, &names).await?,
            });
        }
        anyhow::Ok(Outcome {
            idle_fresh,
            idle_empty,
            batches,
            density,
            binary_size,
        })
    });
    drop(up);
    outcome
}

/// The harness's figures: create -> Ready per batch size, idle memory of
/// `skiff up`, memory per running pod, and the binary's size.
pub fn run_scenario(plan: &Plan, parent: &Path) -> anyhow::Result<Vec<Figure>> {
    let outcome = measure(plan, parent)?;
    let mut figures = Vec::new();
    for batch in &outcome.batches {
        let latency = LatencySummary::from_samples(batch.latencies.clone());
        figures.push(
            Figure::new(
                "pod create -> Ready, watch-observed, cached component",
                format!(
                    "{} pods ({} running before)",
                    batch.pods,
                    batch.running - batch.pods
                ),
                format!("p50 {}, p99 {}", millis(latency.p50), millis(latency.p99)),
            )
            .budget(
                format!("p99 {}", millis(READY_P99_BUDGET)),
                latency.p99.as_secs_f64() / READY_P99_BUDGET.as_secs_f64(),
            )
            .published_peer(
                "p99 5 s, Kubernetes pod-startup SLO",
                Some(latency.p99.as_secs_f64() / 5.0),
            ),
        );
    }
    let idle = |what: &str, bytes: u64| {
        Figure::new(
            "footprint: idle RSS of skiff up",
            what,
            format!("{:.1} MiB", mib(bytes)),
        )
        .budget(
            format!("{IDLE_RSS_BUDGET_MIB:.0} MiB"),
            mib(bytes) / IDLE_RSS_BUDGET_MIB,
        )
        .published_peer("275 MB, K3s agent", Some(bytes as f64 / 275e6))
    };
    figures.push(idle("no pods, fresh start", outcome.idle_fresh));
    figures.push(idle("no pods, after one compile", outcome.idle_empty));
    let largest = outcome.density.iter().map(|d| d.running).max().unwrap_or(0);
    for step in &outcome.density {
        let per_pod =
            step.rss.saturating_sub(outcome.idle_empty) as f64 / 1024.0 / step.running as f64;
        let started = if step.added > 0 {
            format!(
                "; +{} pods Ready in {:.1} s",
                thousands(step.added as f64),
                step.took.as_secs_f64()
            )
        } else {
            String::new()
        };
        let mut row = Figure::new(
            "density: running HTTP pods on one node (hello)",
            format!("{} pods", thousands(step.running as f64)),
            format!(
                "{:.0} MiB, {per_pod:.0} KiB per pod; {} of {} answer{started}",
                mib(step.rss),
                thousands(step.answered as f64),
                thousands(step.running as f64)
            ),
        )
        .published_peer(
            "110 pods, kubelet default maxPods",
            Some(step.answered as f64 / 110.0),
        );
        if step.running == largest {
            // The budget counts pods that run and answer.
            row = row.budget(
                format!("{} on a 24 GiB node", thousands(DENSITY_BUDGET as f64)),
                DENSITY_BUDGET as f64 / step.answered.max(1) as f64,
            );
        }
        figures.push(row);
    }
    figures.push(Figure::new(
        "footprint: skiff binary size",
        "release",
        format!("{:.1} MiB", mib(outcome.binary_size)),
    ));
    Ok(figures)
}

pub fn main() -> anyhow::Result<()> {
    let mut plan = Plan::full();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => plan = Plan::quick(),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!("usage: cargo bench --bench pods [-- --quick]");
                return Ok(());
            }
            other => eprintln!("pods: ignoring argument {other:?}"),
        }
    }
    let parent = dirs::parent();
    let outcome = measure(&plan, &parent)?;
    let first = outcome.batches.first().context("the plan has no batch")?;
    let (idle_fresh, idle_empty, idle_full, binary_size) = (
        outcome.idle_fresh,
        outcome.idle_empty,
        first.rss,
        outcome.binary_size,
    );
    let latency = LatencySummary::from_samples(
        outcome
            .batches
            .iter()
            .flat_map(|b| b.latencies.iter().copied())
            .collect(),
    );
    let rows = vec![
        Row {
            scenario: format!(
                "pod create -> Ready p99 ({} pods, {CREATORS} creators, cached)",
                latency.count
            ),
            figure: millis(latency.p99),
            budget: Some(millis(READY_P99_BUDGET)),
            ratio: Some(latency.p99.as_secs_f64() / READY_P99_BUDGET.as_secs_f64()),
            ..Row::default()
        },
        Row {
            scenario: "pod create -> Ready p50".into(),
            figure: millis(latency.p50),
            ..Row::default()
        },
        Row {
            scenario: "idle RSS of skiff up, no pods, fresh start".into(),
            figure: format!("{:.1} MiB", mib(idle_fresh)),
            budget: Some(format!("{IDLE_RSS_BUDGET_MIB:.0} MiB")),
            ratio: Some(mib(idle_fresh) / IDLE_RSS_BUDGET_MIB),
            ..Row::default()
        },
        Row {
            scenario: "idle RSS of skiff up, no pods, after one component compile".into(),
            figure: format!("{:.1} MiB", mib(idle_empty)),
            budget: Some(format!("{IDLE_RSS_BUDGET_MIB:.0} MiB")),
            ratio: Some(mib(idle_empty) / IDLE_RSS_BUDGET_MIB),
            ..Row::default()
        },
        Row {
            scenario: format!("idle RSS of skiff up, {} running pods", first.pods),
            figure: format!(
                "{:.1} MiB ({:.0} KiB per pod)",
                mib(idle_full),
                (idle_full.saturating_sub(idle_empty)) as f64 / 1024.0 / first.pods as f64
            ),
            ..Row::default()
        },
        Row {
            scenario: "skiff binary size".into(),
            figure: format!("{:.1} MiB", mib(binary_size)),
            ..Row::default()
        },
    ];
    println!("{}", format_table(&rows));
    println!(
        "pod create -> Ready over {} pods: p50 {}, p99 {}, max {}",
        latency.count,
        millis(latency.p50),
        millis(latency.p99),
        millis(latency.max)
    );
    Ok(())
}
