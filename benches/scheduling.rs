//! Scheduling throughput with simulated nodes, as Kubernetes measures it with
//! kubemark: how many pods per second the control plane binds to 1,000 hollow
//! nodes when 10,000 pods are created as fast as the API takes them, against
//! the budget "scheduling with 1,000 simulated nodes: 5,000 pods/s".
//!
//! The benchmark starts a control plane in its own process (data on the real
//! disk), joins N hollow nodes (`skiff_node::hollow`: real QUIC sessions over
//! one shared endpoint, heartbeats, every pod reported Running and Ready at once,
//! nothing run), waits until every Node is Ready, then creates P pods (requests
//! cpu 10m, memory 16Mi, no nodeName) from a few concurrent writers while one
//! watch notes when each pod gets its `spec.nodeName` and when it turns Running.
//! Timed from the first create request to the watch event that shows the last
//! pod bound.
//!
//! `cargo bench --bench scheduling` (1,000 nodes, 10,000 pods);
//! `-- --quick` (100 nodes, 1,000 pods); `-- --nodes N --pods P --writers W`.
//! The method and the recorded results are in BENCHMARKS.md.

use crate::support::{api_client, dirs, figure, latency, table};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_client::{Connection, Endpoint, Watch};
use bytes::Bytes;
use figure::{Figure, thousands};
use futures::{StreamExt, TryStreamExt};
use http::{Method, StatusCode};
use latency::LatencySummary;
use serde::Deserialize;
use serde_json::Value;
use skiff_api::meta;
use skiff_control::{ControlPlane, ControlPlaneConfig};
use skiff_node::hollow::{HollowConfig, HollowNode, client_endpoint};
use table::{Row, format_table};
use tokio::runtime::Handle;

/// DESIGN.md: scheduling with 1,000 simulated nodes.
const BUDGET_PODS_PER_SECOND: f64 = 5_000.0;
const PODS: &str = "/api/v1/namespaces/default/pods";
const NODES: &str = "/api/v1/nodes";
/// Hollow nodes joining at once: joins are CPU work for both sides (a key,
/// a signed certificate, two TLS handshakes), and the gateway is shared.
const JOINS_IN_FLIGHT: usize = 32;
/// Longest wait for the nodes to be Ready, and for the pods to be bound.
const DEADLINE: Duration = Duration::from_secs(300);
/// How much longer the watch waits for the Running reports once all pods are bound.
const RUNNING_GRACE: Duration = Duration::from_secs(60);

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub nodes: usize,
    pub pods: usize,
    pub writers: usize,
    /// Longest time the nodes may take to join and turn Ready (setup is not
    /// timed, but a run must end).
    pub setup_limit: Duration,
}

/// One pod's life as the writers and the watch saw it.
#[derive(Debug, Default, Clone)]
struct PodTimes {
    sent: Option<Instant>,
    created: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
    node: Option<String>,
}

/// What the watch saw of one pod: when it was first bound (and where), and
/// when first Running.
#[derive(Debug, Default, Clone)]
struct Seen {
    bound: Option<Instant>,
    running: Option<Instant>,
    node: Option<String>,
}

/// What the watch needs of an event; the rest is skipped, not kept.
#[derive(Deserialize)]
struct WatchEvent {
    object: PodView,
}

#[derive(Deserialize)]
struct PodView {
    metadata: MetaView,
    #[serde(default)]
    spec: SpecView,
    #[serde(default)]
    status: StatusView,
}

#[derive(Deserialize)]
struct MetaView {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecView {
    #[serde(default)]
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct StatusView {
    #[serde(default)]
    phase: Option<String>,
}

/// A thread's time on a CPU and runnable but waiting for one.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadTimes {
    on_cpu: Duration,
    waited: Duration,
}

/// Counters of the store's writer, from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct StoreCounters {
    commits: f64,
    commit_seconds: f64,
    /// Write requests committed (a request may hold many objects: a binding batch).
    requests: f64,
}

/// Everything one run measured.
pub struct Outcome {
    plan: Plan,
    join_time: Duration,
    ready_time: Duration,
    rss_per_node: Option<f64>,
    pods: Vec<PodTimes>,
    create_errors: usize,
    store: Option<StoreCounters>,
    /// Events by reason, most first.
    events: Vec<(String, u64)>,
    /// Time each group of threads spent on a CPU and waiting for one, from
    /// the first create until the watch had seen everything.
    cpu: Vec<(&'static str, ThreadTimes)>,
}

impl Plan {
    fn full() -> Self {
        Plan {
            nodes: 1_000,
            pods: 10_000,
            writers: 16,
            setup_limit: DEADLINE,
        }
    }

    fn quick() -> Self {
        Plan {
            nodes: 100,
            pods: 1_000,
            writers: 16,
            setup_limit: DEADLINE,
        }
    }
}

fn pod_name(i: usize) -> String {
    format!("sched-{i:06}")
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("sched-")?.parse().ok()
}

/// A small pod (so 10 fit on any node many times over), no nodeName.
fn pod_body(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{}","labels":{{"app":"sched-bench"}}}},"spec":{{"containers":[{{"name":"main","image":"hello:v1","resources":{{"requests":{{"cpu":"10m","memory":"16Mi"}}}}}}],"terminationGracePeriodSeconds":0}}}}"#,
        pod_name(i)
    ))
}

/// Scheduler statistics of this process's threads so far, by thread name:
/// time on a CPU, and time spent runnable but waiting for one (behind another
/// process on this shared machine, or behind this process's other threads). Names:
/// `tokio-r...` (the control plane's workers), `skiff-store-wri` (the store's
/// writer), `load` (hollow nodes and clients). From
/// `/proc/self/task/*/{comm,schedstat}`; a thread that has ended is no longer
/// counted, which only the short-lived blocking threads do.
fn thread_cpu() -> HashMap<String, ThreadTimes> {
    let mut out: HashMap<String, ThreadTimes> = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("schedstat")),
        ) else {
            continue;
        };
        let mut fields = stat
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (on_cpu, waited) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        let entry = out.entry(comm.trim().to_string()).or_default();
        entry.on_cpu += Duration::from_nanos(on_cpu);
        entry.waited += Duration::from_nanos(waited);
    }
    out
}

/// Time spent between two [`thread_cpu`] readings, by group of threads.
fn cpu_between(
    before: &HashMap<String, ThreadTimes>,
    after: &HashMap<String, ThreadTimes>,
) -> Vec<(&'static str, ThreadTimes)> {
    let group = |comm: &str| match comm {
        "skiff-store-wri" => "store writer thread",
        c if c.starts_with("tokio-r") => "control plane workers",
        "load" => "hollow nodes and clients",
        _ => "other threads",
    };
    let mut groups: Vec<(&'static str, ThreadTimes)> = Vec::new();
    for (comm, end) in after {
        let start = before.get(comm).copied().unwrap_or_default();
        let spent = ThreadTimes {
            on_cpu: end.on_cpu.saturating_sub(start.on_cpu),
            waited: end.waited.saturating_sub(start.waited),
        };
        let name = group(comm);
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => {
                total.on_cpu += spent.on_cpu;
                total.waited += spent.waited;
            }
            None => groups.push((name, spent)),
        }
    }
    groups.sort_by_key(|(_, t)| std::cmp::Reverse(t.on_cpu));
    groups
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Joins `n` hollow nodes over one shared endpoint.
async fn start_hollow_nodes(
    addr: SocketAddr,
    token: String,
    n: usize,
) -> anyhow::Result<Vec<HollowNode>> {
    let token = token.as_str();
    let endpoint = client_endpoint(addr).context("open the hollow nodes' QUIC endpoint")?;
    futures::stream::iter(0..n)
        .map(|i| {
            let endpoint = endpoint.clone();
            async move {
                HollowNode::start(
                    &endpoint,
                    addr,
                    token,
                    HollowConfig::new(format!("hollow-{i:04}")),
                )
                .await
                .with_context(|| format!("start hollow node {i}"))
            }
        })
        .buffer_unordered(JOINS_IN_FLIGHT)
        .try_collect()
        .await
}

/// Waits until `n` Nodes report Ready.
async fn wait_nodes_ready(api: &Endpoint, n: usize) -> anyhow::Result<()> {
    let mut conn = Connection::open(api).await?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list = conn.get_json(NODES).await?;
        let ready = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|node| {
                        node.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {n} nodes were Ready within {DEADLINE:?}");
        }
        // Each look lists every Node: at thousands of nodes, looking more
        // often would load the control plane it is waiting for.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn store_counters(api: &Endpoint) -> Option<StoreCounters> {
    let mut conn = Connection::open(api).await.ok()?;
    let reply = conn
        .request(Method::GET, "/metrics", "text/plain", Bytes::new())
        .await
        .ok()?;
    if reply.status != StatusCode::OK {
        return None;
    }
    let text = reply.text();
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some(StoreCounters {
        commits: value("skiff_store_commits_total")?,
        commit_seconds: value("skiff_store_commit_duration_seconds_sum")?,
        requests: value("skiff_store_batch_size_sum")?,
    })
}

/// Reads the pod watch until every pod is bound and Running (or the deadline);
/// returns per pod when it was first seen bound and Running, and where.
async fn watch_pods(mut watch: Watch, pods: usize) -> anyhow::Result<Vec<Seen>> {
    let mut seen = vec![Seen::default(); pods];
    let (mut bound, mut running) = (0, 0);
    let mut deadline = tokio::time::Instant::now() + DEADLINE;
    while bound < pods || running < pods {
        if bound == pods {
            // Once all are bound, the Running reports get a shorter wait.
            deadline = deadline.min(tokio::time::Instant::now() + RUNNING_GRACE);
        }
        let Ok(next) = tokio::time::timeout_at(deadline, watch.next_line()).await else {
            eprintln!("scheduling: deadline: {bound} of {pods} pods bound, {running} Running");
            break;
        };
        let Some((arrived, line)) = next? else {
            bail!("the pod watch ended with {bound} of {pods} pods bound");
        };
        let Ok(event) = serde_json::from_slice::<WatchEvent>(&line) else {
            continue; // An ERROR or BOOKMARK event.
        };
        let pod = event.object;
        let Some(i) = pod_index(&pod.metadata.name).filter(|&i| i < pods) else {
            continue;
        };
        let entry = &mut seen[i];
        if entry.bound.is_none()
            && let Some(node) = pod.spec.node_name.filter(|n| !n.is_empty())
        {
            entry.bound = Some(arrived);
            entry.node = Some(node);
            bound += 1;
        }
        if entry.running.is_none() && pod.status.phase.as_deref() == Some("Running") {
            entry.running = Some(arrived);
            running += 1;
        }
    }
    Ok(seen)
}

/// One writer: creates the pods whose index it takes from `next`, back to back.
async fn writer(
    api: Endpoint,
    pods: usize,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<(Vec<(usize, Instant, Instant)>, usize)> {
    let mut conn = Connection::open(&api).await?;
    let mut done = Vec::with_capacity(pods);
    let mut errors = 0;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= pods {
            return Ok((done, errors));
        }
        let body = pod_body(i);
        let sent = Instant::now();
        for attempt in 0.. {
            let reply = conn
                .request(Method::POST, PODS, "application/json", body.clone())
                .await?;
            if reply.status == StatusCode::CREATED {
                done.push((i, sent, Instant::now()));
                break;
            }
            errors += 1;
            if attempt == 3 {
                bail!(
                    "create pod {} answered {}: {}",
                    pod_name(i),
                    reply.status,
                    reply.text().chars().take(300).collect::<String>()
                );
            }
        }
    }
}

/// Runs the scenario: the control plane on the current runtime, the hollow
/// nodes and the clients (writers, watch) on `load`, a runtime of their own,
/// as kubemark runs hollow nodes apart from the control plane: they do not
/// queue behind its tasks, only share the machine's cores.
async fn run(plan: Plan, data: PathBuf, load: Handle) -> anyhow::Result<Outcome> {
    let plane = ControlPlane::start(ControlPlaneConfig {
        api_addr: "127.0.0.1:0".parse()?,
        quic_addr: "127.0.0.1:0".parse()?,
        ..ControlPlaneConfig::new(data)
    })
    .await
    .context("start the control plane")?;
    let api = &Endpoint::from_kubeconfig(plane.kubeconfig(), plane.api_addr())?;
    let token = plane
        .create_reusable_join_token(None, "scheduling benchmark")
        .await
        .context("create a join token")?;

    progress(&format!("join {} hollow nodes", plan.nodes));
    let rss_before = rss_bytes();
    let started = Instant::now();
    let setup = async {
        let nodes = load
            .spawn(start_hollow_nodes(plane.quic_addr(), token, plan.nodes))
            .await
            .context("the hollow nodes' task panicked")??;
        let join_time = started.elapsed();
        wait_nodes_ready(api, plan.nodes).await?;
        anyhow::Ok((nodes, join_time))
    };
    let (nodes, join_time) = tokio::time::timeout(plan.setup_limit, setup)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{} hollow nodes did not all join and turn Ready within {:?}",
                plan.nodes,
                plan.setup_limit
            )
        })??;
    let ready_time = started.elapsed();
    // Let the joins' garbage settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_per_node = match (rss_before, rss_bytes()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / plan.nodes as f64),
        _ => None,
    };

    let mut conn = Connection::open(api).await?;
    let list = conn.get_json(&format!("{PODS}?limit=1")).await?;
    let since = meta::resource_version(&list)
        .context("the pod list has no resourceVersion")?
        .to_string();
    let watch_api = api.clone();
    let watch = load
        .spawn(async move {
            Watch::start(
                &watch_api,
                &format!("{PODS}?watch=true&resourceVersion={since}"),
            )
            .await
        })
        .await
        .context("the watch task panicked")??;
    let watcher = load.spawn(watch_pods(watch, plan.pods));
    let store_before = store_counters(api).await;
    let cpu_before = thread_cpu();

    progress(&format!(
        "create {} pods with {} writers",
        plan.pods, plan.writers
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..plan.writers)
        .map(|_| load.spawn(writer(api.clone(), plan.pods, next.clone())))
        .collect();
    let mut pods = vec![PodTimes::default(); plan.pods];
    let mut create_errors = 0;
    for w in writers {
        let (done, errors) = w.await.context("a writer panicked")??;
        create_errors += errors;
        for (i, sent, created) in done {
            pods[i].sent = Some(sent);
            pods[i].created = Some(created);
        }
    }
    let seen = watcher.await.context("the watch task panicked")??;
    let cpu = cpu_between(&cpu_before, &thread_cpu());
    let store = match (store_before, store_counters(api).await) {
        (Some(a), Some(b)) => Some(StoreCounters {
            commits: b.commits - a.commits,
            commit_seconds: b.commit_seconds - a.commit_seconds,
            requests: b.requests - a.requests,
        }),
        _ => None,
    };
    for (pod, seen) in pods.iter_mut().zip(seen) {
        pod.bound = seen.bound;
        pod.running = seen.running;
        pod.node = seen.node;
    }
    let events = event_reasons(api).await.unwrap_or_default();
    let connected = nodes.iter().filter(|n| n.is_connected()).count();
    if connected < plan.nodes {
        eprintln!(
            "scheduling: {} of {} hollow nodes had lost their session by the end",
            plan.nodes - connected,
            plan.nodes
        );
    }
    drop(nodes);
    Ok(Outcome {
        plan,
        join_time,
        ready_time,
        rss_per_node,
        pods,
        create_errors,
        store,
        events,
        cpu,
    })
}

/// How many Events of each reason the cluster recorded (after the clock
/// stopped): what else happened while the pods were placed.
async fn event_reasons(api: &Endpoint) -> anyhow::Result<Vec<(String, u64)>> {
    let mut conn = Connection::open(api).await?;
    let list = conn.get_json("/api/v1/events").await?;
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for event in list["items"].as_array().into_iter().flatten() {
        let reason = event["reason"].as_str().unwrap_or("?").to_string();
        let count = event["count"].as_u64().unwrap_or(1);
        *reasons.entry(reason).or_insert(0) += count;
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(reasons)
}

/// The scheduler's decision alone, without I/O: `fit::schedule` and the
/// assumed placement for `plan.pods` pods over `plan.nodes` nodes shaped as the
/// hollow nodes and pods of the end-to-end run. Returns the time it took.
fn scheduler_core(plan: Plan) -> anyhow::Result<Duration> {
    use skiff_control::scheduler::cluster::ClusterState;
    use skiff_control::scheduler::fit::{Cursor, schedule};
    use skiff_control::scheduler::requirements::PodRequirements;

    let mut state = ClusterState::default();
    for i in 0..plan.nodes {
        let name = format!("hollow-{i:04}");
        state.upsert_node(&serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "4", "memory": "16777216Ki", "pods": "1000"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }));
    }
    let pods: Vec<Value> = (0..plan.pods)
        .map(|i| {
            let mut pod: Value = serde_json::from_slice(&pod_body(i))?;
            pod["metadata"]["namespace"] = "default".into();
            pod["metadata"]["uid"] = format!("uid-{i}").into();
            anyhow::Ok(pod)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut cursor = Cursor::default();
    let started = Instant::now();
    for pod in &pods {
        let needs = PodRequirements::of(pod);
        let i = schedule(&state, &needs, &mut cursor)
            .map_err(|e| anyhow::anyhow!("the scheduler core placed nothing: {e}"))?;
        let node = state.nodes()[i].name.clone();
        state.assume(needs, &node);
    }
    Ok(started.elapsed())
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn machine_summary() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = read("/proc/loadavg")
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{cpus} CPUs, {memory} memory, Linux {kernel}, load average {load} at start")
}

fn report(outcome: &Outcome, core: Duration) {
    let plan = outcome.plan;
    let pods = &outcome.pods;
    let first_sent = pods.iter().filter_map(|p| p.sent).min();
    let last = |f: fn(&PodTimes) -> Option<Instant>| pods.iter().filter_map(f).max();
    let count =
        |f: fn(&PodTimes) -> Option<Instant>| pods.iter().filter(|p| f(p).is_some()).count();
    let rate = |n: usize, until: Option<Instant>| match (first_sent, until) {
        (Some(a), Some(b)) if b > a => n as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let span = |until: Option<Instant>| match (first_sent, until) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let latency = |f: fn(&PodTimes) -> Option<Instant>| {
        LatencySummary::from_samples(
            pods.iter()
                .filter_map(|p| Some(f(p)?.saturating_duration_since(p.sent?)))
                .collect(),
        )
    };
    let (bound, running, created) = (
        count(|p| p.bound),
        count(|p| p.running),
        count(|p| p.created),
    );
    let bound_rate = rate(bound, last(|p| p.bound));
    let create_rate = rate(created, last(|p| p.created));
    let running_rate = rate(running, last(|p| p.running));
    let to_bound = latency(|p| p.bound);
    let to_running = latency(|p| p.running);
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in pods {
        if let Some(n) = &p.node {
            *per_node.entry(n.as_str()).or_insert(0) += 1;
        }
    }
    let max = per_node.values().copied().max().unwrap_or(0);
    // A node that got nothing is not in the map.
    let min = if per_node.len() < plan.nodes {
        0
    } else {
        per_node.values().copied().min().unwrap_or(0)
    };
    let incomplete = if bound < plan.pods {
        format!(" ({bound} of {} bound)", plan.pods)
    } else {
        String::new()
    };
    let rows = vec![
        Row {
            scenario: format!(
                "scheduling, {} hollow nodes, {} pods",
                thousands(plan.nodes as f64),
                thousands(plan.pods as f64)
            ),
            figure: format!("{} pods/s bound{incomplete}", thousands(bound_rate)),
            budget: Some(format!("{} pods/s", thousands(BUDGET_PODS_PER_SECOND))),
            ratio: (bound_rate > 0.0).then(|| BUDGET_PODS_PER_SECOND / bound_rate),
            ..Row::default()
        },
        Row {
            scenario: "scheduler core alone (filter+score, no I/O)".into(),
            figure: format!(
                "{} pods/s ({:.1} µs per pod)",
                thousands(plan.pods as f64 / core.as_secs_f64()),
                core.as_secs_f64() * 1e6 / plan.pods as f64
            ),
            ..Row::default()
        },
        Row {
            scenario: format!("pod creates, {} writers", plan.writers),
            figure: format!("{} pods/s", thousands(create_rate)),
            ..Row::default()
        },
        Row {
            scenario: "create -> bound, per pod".into(),
            figure: format!("p50 {}, p99 {}", millis(to_bound.p50), millis(to_bound.p99)),
            ..Row::default()
        },
        Row {
            scenario: "create -> Running (hollow node report)".into(),
            figure: format!(
                "{} pods/s, p50 {}, p99 {}",
                thousands(running_rate),
                millis(to_running.p50),
                millis(to_running.p99)
            ),
            ..Row::default()
        },
        Row {
            scenario: "pods per node".into(),
            figure: format!(
                "min {min}, max {max} (mean {:.1})",
                bound as f64 / plan.nodes as f64
            ),
            ..Row::default()
        },
    ];
    println!("{}", format_table(&rows));
    println!("(ratio = budget / figure: at most 1 meets the budget)");
    println!(
        "first create -> last created {:.2} s, -> last bound {:.2} s, -> last Running {:.2} s; {} create retries",
        span(last(|p| p.created)).as_secs_f64(),
        span(last(|p| p.bound)).as_secs_f64(),
        span(last(|p| p.running)).as_secs_f64(),
        outcome.create_errors
    );
    println!(
        "create -> bound: p50 {}, p99 {}, max {}; create -> Running: p50 {}, p99 {}, max {} ({} of {} Running)",
        millis(to_bound.p50),
        millis(to_bound.p99),
        millis(to_bound.max),
        millis(to_running.p50),
        millis(to_running.p99),
        millis(to_running.max),
        running,
        plan.pods
    );
    println!(
        "hollow nodes: {} joined in {:.1} s, all Ready after {:.1} s{}",
        plan.nodes,
        outcome.join_time.as_secs_f64(),
        outcome.ready_time.as_secs_f64(),
        outcome.rss_per_node.map_or(String::new(), |b| format!(
            "; process RSS +{:.0} KiB per node (both sides of the link)",
            b / 1024.0
        ))
    );
    let watched = span(
        [last(|p| p.bound), last(|p| p.running)]
            .into_iter()
            .flatten()
            .max(),
    );
    let total_cpu: Duration = outcome.cpu.iter().map(|(_, t)| t.on_cpu).sum();
    let total_wait: Duration = outcome.cpu.iter().map(|(_, t)| t.waited).sum();
    if !total_cpu.is_zero() && bound > 0 {
        let per_pod = |d: Duration| d.as_secs_f64() * 1e3 / bound as f64;
        let parts: Vec<String> = outcome
            .cpu
            .iter()
            .filter(|(_, t)| !t.on_cpu.is_zero())
            .map(|(name, t)| format!("{name} {:.2} ms", per_pod(t.on_cpu)))
            .collect();
        let seconds = watched.as_secs_f64().max(1e-9);
        println!(
            "CPU per pod bound: {:.2} ms ({}); on average {:.2} cores busy over {:.1} s, and threads ready to run but waiting for a core {:.2} cores' worth (behind other processes or each other)",
            per_pod(total_cpu),
            parts.join(", "),
            total_cpu.as_secs_f64() / seconds,
            seconds,
            total_wait.as_secs_f64() / seconds,
        );
    }
    if !outcome.events.is_empty() {
        let list: Vec<String> = outcome
            .events
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        println!("events recorded: {}", list.join(", "));
    }
    if let Some(s) = outcome.store
        && s.commits > 0.0
    {
        println!(
            "store during the run: {:.0} write requests in {:.0} commits ({:.1} per commit, {:.1} per pod), {:.2} ms per commit, writer busy {:.1} s",
            s.requests,
            s.commits,
            s.requests / s.commits,
            s.requests / plan.pods as f64,
            s.commit_seconds * 1e3 / s.commits,
            s.commit_seconds
        );
    }
}

/// Runs one plan: a control plane with its data in a fresh directory under
/// `parent` (on the real disk), the hollow nodes and the pods; then the
/// scheduler core alone on the same sizes. Everything is stopped on return.
pub fn measure(plan: Plan, parent: &Path) -> anyhow::Result<(Outcome, Duration)> {
    let dir = dirs::fresh(parent, "scheduling-")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load")
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(plan, dir.path().join("plane"), load.handle().clone()));
    load.shutdown_timeout(Duration::from_secs(5));
    runtime.shutdown_timeout(Duration::from_secs(5));
    let outcome = outcome?;
    progress("scheduler core alone");
    let core = scheduler_core(plan)?;
    Ok((outcome, core))
}

/// The harness's figures: pods bound per second for each plan, beside the
/// published scheduler_perf floors.
pub fn run_scenario(plans: &[Plan], parent: &Path) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for &plan in plans {
        progress(&format!(
            "scheduling: {} hollow nodes, {} pods",
            plan.nodes, plan.pods
        ));
        let size = format!(
            "{} nodes, {} pods",
            thousands(plan.nodes as f64),
            thousands(plan.pods as f64)
        );
        let (outcome, core) = match measure(plan, parent) {
            Ok(measured) => measured,
            Err(e) => {
                // The other sizes still count; this row says what happened.
                eprintln!("scheduling: {e:#}");
                figures.push(Figure::new(
                    "scheduling throughput, hollow nodes",
                    size,
                    format!("not measured: {e}"),
                ));
                continue;
            }
        };
        // The benchmark's own table and details, as it goes.
        report(&outcome, core);
        println!();
        let pods = &outcome.pods;
        let first = pods.iter().filter_map(|p| p.sent).min();
        let last = pods.iter().filter_map(|p| p.bound).max();
        let bound = pods.iter().filter(|p| p.bound.is_some()).count();
        let rate = match (first, last) {
            (Some(a), Some(b)) if b > a => bound as f64 / (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let incomplete = if bound < plan.pods {
            format!(" ({bound} of {} bound)", plan.pods)
        } else {
            String::new()
        };
        figures.push(
            Figure::new(
                "scheduling throughput, hollow nodes",
                size,
                format!("{} pods/s bound{incomplete}", thousands(rate)),
            )
            .budget(
                format!("{} pods/s", thousands(BUDGET_PODS_PER_SECOND)),
                BUDGET_PODS_PER_SECOND / rate,
            )
            .published_peer(
                "680-810 pods/s, Kubernetes scheduler_perf",
                Some(rate / 810.0),
            ),
        );
    }
    Ok(figures)
}

/// The benchmark on its own (`benches/scheduling/main.rs`): its own table.
pub fn main() -> anyhow::Result<()> {
    let mut plan = Plan::full();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> anyhow::Result<usize> {
            args.next()
                .with_context(|| format!("{what} needs a number"))?
                .replace([',', '_'], "")
                .parse()
                .with_context(|| format!("{what} needs a number"))
        };
        match arg.as_str() {
            "--quick" => plan = Plan::quick(),
            "--nodes" => plan.nodes = number("--nodes")?,
            "--pods" => plan.pods = number("--pods")?,
            "--writers" => plan.writers = number("--writers")?.max(1),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "usage: cargo bench --bench scheduling [-- --quick] [-- --nodes N --pods P --writers W]"
                );
                return Ok(());
            }
            other => eprintln!("scheduling: ignoring argument {other:?}"),
        }
    }
    let parent = dirs::parent();
    println!("machine: {}", machine_summary());
    println!("data dir: under {}", parent.display());
    println!(
        "plan: {} hollow nodes, {} pods (cpu 10m, memory 16Mi), {} writers",
        plan.nodes, plan.pods, plan.writers
    );

    // Logs only when asked: `SKIFF_LOG=info cargo bench --bench scheduling`.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let (outcome, core) = measure(plan, &parent)?;
    println!();
    report(&outcome, core);
    Ok(())
}

fn progress(what: &str) {
    eprintln!("running: {what} ...");
}
