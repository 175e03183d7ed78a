//! ConfigMaps and Secrets on the embedded default: what a pod's configuration
//! from the cluster costs at startup, and how soon a ConfigMap's change
//! reaches the files of the pods that mount it.
//!
//! The benchmark starts the real `skiff up` binary (control plane and one node
//! in one process) on free loopback ports with its data on the real disk,
//! pushes the `echo` sample, creates two ConfigMaps and a Secret, and starts
//! and removes one plain and one configured pod so the component is fetched
//! and compiled (and the configuration path exercised) before any clock
//! starts. Then:
//!
//! 1. create -> Ready, plain against configured, interleaved: N plain `echo`
//!    pods and N `echo` pods that each mount the two ConfigMaps as volumes and
//!    take two env vars from the Secret (`secretKeyRef`), created alternately
//!    (plain, configured, plain, ...) with a fixed number of concurrent
//!    creators while one watch notes when each pod turns Ready; per pod, from
//!    just before its create request is sent to the arrival of the watch event
//!    that shows it Ready. Both kinds name the same files and variables to
//!    `echo` (`ECHO_FILES`, `ECHO_ENV`), so the only difference is where they
//!    come from; afterwards every configured pod is asked (outside the clock)
//!    whether it sees them.
//! 2. ConfigMap update -> every pod sees the new file: M running `echo` pods
//!    mount ConfigMap `bench-propagate` and show its file; the ConfigMap is
//!    patched, and from just before the PATCH is sent a fixed number of
//!    pollers ask every pod in turn, through the API's pod proxy, for the file
//!    until it shows the new value; per pod, the time from the PATCH to the
//!    arrival of the first answer that shows it (so it includes up to one
//!    polling round).
//!
//! `cargo bench --bench config` (100 + 100 pods, then 100 pods);
//! `cargo bench --bench config -- --quick` (20 + 20, then 20). The method is
//! in BENCHMARKS.md.

use crate::support::{api_client, dirs, figure, latency, pod_startup, skiff_up};
use skiff_testkit::samples;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_client::{Connection, Endpoint};
use bytes::Bytes;
use figure::{Figure, format_figures};
use http::{Method, StatusCode};
use latency::LatencySummary;
use pod_startup::PODS;
use serde_json::{Value, json};
use skiff_up::SkiffUp;

/// The DESIGN budget of the ConfigMap/Secret issue: a configured pod's
/// create -> Ready p99 within this of a plain pod's.
const CONFIGURED_P99_BUDGET: Duration = Duration::from_millis(10);
/// The DESIGN budget of the ConfigMap/Secret issue: a ConfigMap's change in
/// the files of every pod that mounts it, p99.
const PROPAGATE_P99_BUDGET: Duration = Duration::from_secs(5);
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";
/// Every pod of the benchmark carries it; the watch selects on it.
const LABEL: (&str, &str) = ("app", "bench-config");
/// Requests in flight at once while pods are created (as in `pods.rs`).
const CREATORS: usize = 8;
/// Pollers after the ConfigMap's update, each asking its share of the pods in
/// turn on its own keep-alive connection.
const POLLERS: usize = 8;
/// A poller's pause after each round over its pods.
const ROUND_PAUSE: Duration = Duration::from_millis(10);
/// Longest wait for anything the cluster is asked to do.
const DEADLINE: Duration = Duration::from_secs(120);

/// What a configured pod mounts and takes: two ConfigMaps as volumes and two
/// keys of a Secret as env vars.
const CONFIG_ONE: &str = "bench-one";
const CONFIG_TWO: &str = "bench-two";
const SECRET: &str = "bench-secret";
/// The files and variables every pod of part 1 names to `echo`.
const ECHO_FILES: &str = "/etc/one/greeting,/etc/two/mode";
const ECHO_ENV: &str = "DB_USER,DB_PASSWORD";
/// The ConfigMap of part 2, its key, and where the pods see it.
const PROPAGATE: &str = "bench-propagate";
const PROPAGATE_KEY: &str = "value";
const PROPAGATE_FILE: &str = "/etc/propagate/value";
const OLD_VALUE: &str = "before";
const NEW_VALUE: &str = "after";

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Plain pods, and as many configured pods, created interleaved.
    pub pods: usize,
    /// Running pods that mount the ConfigMap whose update is timed.
    pub propagate: usize,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Create -> Ready of the plain pods and of the configured ones.
    pub plain: Vec<Duration>,
    pub configured: Vec<Duration>,
    /// Per pod, the PATCH -> the first answer that shows the new value.
    pub propagate: Vec<Duration>,
    /// Answers during the polling that were not a 200 with JSON (or no
    /// answer at all).
    pub failed_polls: usize,
    /// The longest round of a poller over its pods: how much later than the
    /// file changed a pod can have been seen to show it.
    pub longest_round: Duration,
}

/// The kinds of pod the benchmark creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Configured,
    Propagate,
}

impl Plan {
    pub fn full() -> Self {
        Plan {
            pods: 100,
            propagate: 100,
        }
    }

    pub fn quick() -> Self {
        Plan {
            pods: 20,
            propagate: 20,
        }
    }
}

fn pod_manifest(name: &str, kind: Kind) -> Value {
    let (env, mounts, volumes) = match kind {
        // The same variables for `echo` as a configured pod, naming the same
        // files: only where they come from differs.
        Kind::Plain => (
            json!([
                {"name": "ECHO_FILES", "value": ECHO_FILES},
                {"name": "ECHO_ENV", "value": ECHO_ENV}
            ]),
            json!([]),
            json!([]),
        ),
        Kind::Configured => (
            json!([
                {"name": "ECHO_FILES", "value": ECHO_FILES},
                {"name": "ECHO_ENV", "value": ECHO_ENV},
                {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "user"}}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}}
            ]),
            json!([
                {"name": "one", "mountPath": "/etc/one"},
                {"name": "two", "mountPath": "/etc/two"}
            ]),
            json!([
                {"name": "one", "configMap": {"name": CONFIG_ONE}},
                {"name": "two", "configMap": {"name": CONFIG_TWO}}
            ]),
        ),
        Kind::Propagate => (
            json!([{"name": "ECHO_FILES", "value": PROPAGATE_FILE}]),
            json!([{"name": "config", "mountPath": "/etc/propagate"}]),
            json!([{"name": "config", "configMap": {"name": PROPAGATE}}]),
        ),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL.0: LABEL.1}},
        "spec": {
            "containers": [{
                "name": "main",
                "image": "echo:v1",
                "ports": [{"containerPort": 8080}],
                "env": env,
                "volumeMounts": mounts
            }],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 0
        }
    })
}

/// What a configured pod's `echo` shows: its files and its variables.
fn configured_files() -> Value {
    json!({"/etc/one/greeting": "hello", "/etc/two/mode": "fast"})
}

fn configured_env() -> Value {
    json!({"DB_USER": "admin", "DB_PASSWORD": "hunter2"})
}

/// Pushes `echo.wasm` as `echo:v1`.
async fn push_echo(api: &Endpoint) -> anyhow::Result<()> {
    let wasm = samples::samples_dir().join("echo.wasm");
    let bytes = std::fs::read(&wasm).with_context(|| format!("read {}", wasm.display()))?;
    let mut conn = Connection::open(api).await?;
    conn.request(
        Method::POST,
        "/apis/skiff.dev/v1alpha1/components?name=echo%3Av1",
        "application/wasm",
        Bytes::from(bytes),
    )
    .await?
    .expect(StatusCode::CREATED, "push echo")
}

/// Creates the two ConfigMaps and the Secret of the configured pods, and the
/// ConfigMap of part 2 with its old value.
async fn create_objects(api: &Endpoint) -> anyhow::Result<()> {
    let mut conn = Connection::open(api).await?;
    let config_map = |name: &str, data: Value| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": data
        })
    };
    let objects = [
        (
            CONFIGMAPS,
            config_map(CONFIG_ONE, json!({"greeting": "hello"})),
        ),
        (CONFIGMAPS, config_map(CONFIG_TWO, json!({"mode": "fast"}))),
        (
            CONFIGMAPS,
            config_map(PROPAGATE, json!({PROPAGATE_KEY: OLD_VALUE})),
        ),
        (
            SECRETS,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET},
                "stringData": {"user": "admin", "password": "hunter2"}
            }),
        ),
    ];
    for (path, object) in objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        conn.request(
            Method::POST,
            path,
            "application/json",
            Bytes::from(serde_json::to_vec(&object)?),
        )
        .await?
        .expect(StatusCode::CREATED, &format!("create {path}/{name}"))?;
    }
    Ok(())
}

/// Creates `pods` (name and kind), in their order, with `CREATORS` requests in
/// flight and waits until a watch has seen every one Ready; each pod's time
/// from its request to that event, in the order of `pods`.
async fn create_until_ready(
    api: &Endpoint,
    pods: Vec<(String, Kind)>,
) -> anyhow::Result<Vec<Duration>> {
    let pods = pods
        .into_iter()
        .map(|(n, kind)| {
            let manifest = pod_manifest(&n, kind);
            (n, manifest)
        })
        .collect();
    let selector = format!("{}%3D{}", LABEL.0, LABEL.1);
    pod_startup::create_until_ready(api, pods, CREATORS, &selector, DEADLINE).await
}

/// `echo`'s answer of pod `name` to `GET /` through the API's pod proxy, or
/// `None` when it was not a 200 with JSON (or the connection broke: then
/// `conn` is a new one).
async fn ask(conn: &mut Connection, api: &Endpoint, name: &str) -> anyhow::Result<Option<Value>> {
    let path = format!("{PODS}/{name}/proxy/");
    match conn
        .request(Method::GET, &path, "application/json", Bytes::new())
        .await
    {
        Ok(reply) if reply.status == StatusCode::OK => Ok(reply.json().ok()),
        Ok(_) => Ok(None),
        Err(_) => {
            *conn = Connection::open(api)
                .await
                .context("reconnect after a broken proxy request")?;
            Ok(None)
        }
    }
}

/// The value `echo` shows for `file` in an answer.
fn file_in<'a>(answer: &'a Value, file: &str) -> Option<&'a str> {
    answer.get("files")?.get(file)?.as_str()
}

/// Asks each of `names` until it answers 200 (within `DEADLINE`) and fails
/// unless `check` accepts the answer.
async fn expect_answers(
    api: &Endpoint,
    names: &[String],
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<()> {
    let mut conn = Connection::open(api).await?;
    let deadline = Instant::now() + DEADLINE;
    for name in names {
        let answer = loop {
            if let Some(answer) = ask(&mut conn, api, name).await? {
                break answer;
            }
            if Instant::now() > deadline {
                bail!("pod {name} did not answer through the pod proxy within {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !check(&answer) {
            bail!("pod {name} does not show {what}: {answer}");
        }
    }
    Ok(())
}

/// Starts one plain and one configured pod, checks that the configured one
/// sees its configuration, and removes both: the node has then fetched and
/// compiled the component, and gone through the configuration path once.
async fn warm_up(api: &Endpoint) -> anyhow::Result<()> {
    let pods = vec![
        ("warm-plain".to_string(), Kind::Plain),
        ("warm-configured".to_string(), Kind::Configured),
    ];
    create_until_ready(api, pods).await?;
    expect_answers(
        api,
        &["warm-configured".to_string()],
        "its ConfigMap files and Secret variables",
        |a| a["files"] == configured_files() && a["env"] == configured_env(),
    )
    .await?;
    pod_startup::delete_pods(api, &["warm-plain", "warm-configured"], DEADLINE).await
}

/// Part 1: `pods` plain and `pods` configured pods created alternately;
/// their create -> Ready, plain and configured.
async fn interleaved(
    api: &Endpoint,
    pods: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let order: Vec<(String, Kind)> = (0..pods)
        .flat_map(|i| {
            [
                (format!("plain-{i}"), Kind::Plain),
                (format!("configured-{i}"), Kind::Configured),
            ]
        })
        .collect();
    let kinds: Vec<Kind> = order.iter().map(|(_, k)| *k).collect();
    let latencies = create_until_ready(api, order).await?;
    let (mut plain, mut configured) = (Vec::new(), Vec::new());
    for (kind, latency) in kinds.into_iter().zip(latencies) {
        match kind {
            Kind::Configured => configured.push(latency),
            _ => plain.push(latency),
        }
    }
    // Outside the clock: each configured pod sees what it was given.
    let names: Vec<String> = (0..pods).map(|i| format!("configured-{i}")).collect();
    expect_answers(
        api,
        &names,
        "its ConfigMap files and Secret variables",
        |a| a["files"] == configured_files() && a["env"] == configured_env(),
    )
    .await?;
    Ok((plain, configured))
}

/// What the pollers of part 2 saw.
#[derive(Debug, Default)]
struct Polled {
    /// Per pod, the time from the PATCH to the first answer with the new value.
    seen: Vec<Duration>,
    /// Answers that were not a 200 with JSON.
    failed: usize,
    longest_round: Duration,
}

/// One poller of part 2: asks each of its pods in turn until every one shows
/// the new value.
async fn poll_until_new(
    api: Endpoint,
    mut conn: Connection,
    mut pending: Vec<String>,
    patched: Instant,
) -> anyhow::Result<Polled> {
    let mut polled = Polled {
        seen: Vec::with_capacity(pending.len()),
        ..Polled::default()
    };
    let deadline = patched + DEADLINE;
    loop {
        let began = Instant::now();
        let mut still = Vec::new();
        for name in pending {
            match ask(&mut conn, &api, &name).await? {
                Some(answer) if file_in(&answer, PROPAGATE_FILE) == Some(NEW_VALUE) => {
                    polled.seen.push(patched.elapsed());
                }
                Some(_) => still.push(name),
                None => {
                    polled.failed += 1;
                    still.push(name);
                }
            }
        }
        polled.longest_round = polled.longest_round.max(began.elapsed());
        pending = still;
        let Some(first) = pending.first() else {
            return Ok(polled);
        };
        if Instant::now() > deadline {
            bail!(
                "{} pods (pod {first} among them) did not show the ConfigMap's new value within {DEADLINE:?}",
                pending.len()
            );
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// Part 2: `count` pods mounting `bench-propagate` are started and show its
/// old value; then the ConfigMap is patched and polled for.
async fn propagation(api: &Endpoint, count: usize) -> anyhow::Result<Polled> {
    let names: Vec<String> = (0..count).map(|i| format!("propagate-{i}")).collect();
    create_until_ready(
        api,
        names.iter().map(|n| (n.clone(), Kind::Propagate)).collect(),
    )
    .await?;
    expect_answers(api, &names, "the ConfigMap's old value", |a| {
        file_in(a, PROPAGATE_FILE) == Some(OLD_VALUE)
    })
    .await?;

    let pollers = POLLERS.min(names.len()).max(1);
    let mut connections = Vec::new();
    for _ in 0..pollers {
        connections.push(Connection::open(api).await?);
    }
    let mut patcher = Connection::open(api).await?;
    let patch = Bytes::from(serde_json::to_vec(
        &json!({"data": {PROPAGATE_KEY: NEW_VALUE}}),
    )?);
    let patched = Instant::now();
    let mut tasks = Vec::new();
    for (i, conn) in connections.into_iter().enumerate() {
        let mine: Vec<String> = names.iter().skip(i).step_by(pollers).cloned().collect();
        tasks.push(tokio::spawn(poll_until_new(
            api.clone(),
            conn,
            mine,
            patched,
        )));
    }
    patcher
        .request(
            Method::PATCH,
            &format!("{CONFIGMAPS}/{PROPAGATE}"),
            "application/merge-patch+json",
            patch,
        )
        .await?
        .expect(StatusCode::OK, &format!("patch configmap {PROPAGATE}"))?;
    let mut all = Polled::default();
    for task in tasks {
        let polled = task.await.context("a poller panicked")??;
        all.seen.extend(polled.seen);
        all.failed += polled.failed;
        all.longest_round = all.longest_round.max(polled.longest_round);
    }
    Ok(all)
}

/// Runs the benchmark with `plan`, with `skiff up`'s data in `dir` (on the
/// real disk), and stops it afterwards.
pub fn measure(plan: &Plan, dir: &Path) -> anyhow::Result<Outcome> {
    eprintln!("running: build the samples ...");
    samples::samples_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    eprintln!("running: skiff up ...");
    // Room for every pod and the warm-up pods (which may still be
    // terminating), and never below the node's default.
    let up = SkiffUp::start(dir, (2 * plan.pods + plan.propagate + 2).max(1000))?;
    let api = &up.api;
    let outcome = runtime.block_on(async {
        push_echo(api).await?;
        create_objects(api).await?;
        eprintln!("running: warm up (one plain and one configured pod) ...");
        warm_up(api).await?;
        eprintln!(
            "running: create {} plain and {} configured pods, interleaved ...",
            plan.pods, plan.pods
        );
        let (plain, configured) = interleaved(api, plan.pods).await?;
        eprintln!(
            "running: {} pods mounting ConfigMap {PROPAGATE}, then update it ...",
            plan.propagate
        );
        let polled = propagation(api, plan.propagate).await?;
        anyhow::Ok(Outcome {
            plain,
            configured,
            propagate: polled.seen,
            failed_polls: polled.failed,
            longest_round: polled.longest_round,
        })
    });
    drop(up);
    outcome
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The harness's rows: create -> Ready of plain and configured pods, and a
/// ConfigMap's update reaching every pod that mounts it.
pub fn figures(outcome: &Outcome) -> Vec<Figure> {
    let plain = LatencySummary::from_samples(outcome.plain.clone());
    let configured = LatencySummary::from_samples(outcome.configured.clone());
    let propagate = LatencySummary::from_samples(outcome.propagate.clone());
    let size = format!(
        "{} plain + {} configured, interleaved",
        plain.count, configured.count
    );
    let over = configured.p99.as_secs_f64() - plain.p99.as_secs_f64();
    let failed = if outcome.failed_polls > 0 {
        format!("; {} polls not answered", outcome.failed_polls)
    } else {
        String::new()
    };
    vec![
        Figure::new(
            "pod create -> Ready, plain echo pod",
            size.clone(),
            format!("p50 {}, p99 {}", millis(plain.p50), millis(plain.p99)),
        ),
        Figure::new(
            "pod create -> Ready, 2 ConfigMap volumes + 2 Secret env",
            size,
            format!(
                "p50 {}, p99 {}; p99 {:+.1} ms vs plain",
                millis(configured.p50),
                millis(configured.p99),
                over * 1e3
            ),
        )
        .budget(
            format!("p99 within {} of plain", millis(CONFIGURED_P99_BUDGET)),
            over.max(0.0) / CONFIGURED_P99_BUDGET.as_secs_f64(),
        )
        .measured_peer(
            format!("p99 {}, plain pod", millis(plain.p99)),
            configured.p99.as_secs_f64() / plain.p99.as_secs_f64(),
        ),
        Figure::new(
            "ConfigMap update -> new file in every pod",
            format!("{} pods, {POLLERS} pollers", propagate.count),
            format!(
                "p50 {}, p99 {}, max {}; polling round up to {}{failed}",
                millis(propagate.p50),
                millis(propagate.p99),
                millis(propagate.max),
                millis(outcome.longest_round)
            ),
        )
        .budget(
            format!("p99 {} s", PROPAGATE_P99_BUDGET.as_secs()),
            propagate.p99.as_secs_f64() / PROPAGATE_P99_BUDGET.as_secs_f64(),
        ),
    ]
}

/// Runs the benchmark in a fresh directory under `parent` (kept, with its
/// logs, after a failure) and returns its rows.
pub fn run_scenario(plan: &Plan, parent: &Path) -> anyhow::Result<Vec<Figure>> {
    let dir = dirs::fresh(parent, "config-")?;
    let outcome = dirs::keep_on_error(measure(plan, dir.path()), dir)?;
    Ok(figures(&outcome))
}

pub fn main() -> anyhow::Result<()> {
    let mut plan = Plan::full();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => plan = Plan::quick(),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!("usage: cargo bench --bench config [-- --quick]");
                return Ok(());
            }
            other => eprintln!("config: ignoring argument {other:?}"),
        }
    }
    let figures = run_scenario(&plan, &dirs::parent())?;
    print!("{}", format_figures(&figures));
    println!();
    println!("vs budget: the figure against DESIGN.md's budget, at most 1.00 meets it.");
    println!(
        "vs peer: the configured pods' p99 / the plain pods' p99, measured interleaved in this run."
    );
    Ok(())
}
