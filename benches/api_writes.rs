//! Durable API writes: how many ConfigMap creates per second an in-process
//! control plane acknowledges, and their latency, at 1, 16 and 200 concurrent
//! writers, beside the fsync floor of the same disk (a redb loop that commits
//! one insert per transaction). Group commit must lift throughput well past one
//! fsync per write, and the p99 at 200 writers has a budget in DESIGN.md.
//!
//! `cargo bench --bench api_writes` runs each scenario for 10 s after a 2 s
//! warm-up; `cargo bench --bench api_writes -- --quick` for 3 s after 1 s.
//! The method and the recorded results are in BENCHMARKS.md.
//!
//! Each scenario is a function returning a result struct, and the table is a
//! list of [`Row`]s, so that the cluster-wide harness can call these as they are.

use crate::support::{api_client, dirs, figure, latency, table};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_client::Endpoint;
use bytes::Bytes;
use figure::Figure;
use http::header::{CONTENT_TYPE, HOST};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use latency::LatencySummary;
use redb::{Database, TableDefinition};
use serde_json::json;
use skiff_control::{ControlPlane, ControlPlaneConfig};
use table::{Row, format_table};

/// DESIGN.md: mutating API call p99 at 200 concurrent writers, durable.
const WRITE_P99_BUDGET: Duration = Duration::from_millis(20);
/// The writer counts the issue asks for; the last one is the budget's.
pub const WRITER_COUNTS: [usize; 3] = [1, 16, 200];
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const FLOOR_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("floor");

/// How long a scenario runs: a warm-up whose requests are not counted, then the
/// measured window.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one durable-create scenario measured.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub writers: usize,
    /// From the start of the measured window until the last writer finished.
    pub elapsed: Duration,
    /// Latency of the 201 responses to requests started in the window.
    pub latency: LatencySummary,
    /// Failures of requests started in the window, by kind ("409 Conflict",
    /// "transport: ..."), with the first response body seen for each.
    pub errors: BTreeMap<String, (u64, String)>,
    /// Failures during the warm-up; not part of the figure but never hidden.
    pub warmup_errors: u64,
    /// The store's own counters over the window, from the API's `/metrics`
    /// (`None` if they could not be read).
    pub store: Option<StoreCounters>,
}

/// Counters of the store's writer, as `/metrics` exposes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreCounters {
    /// `skiff_store_commits_total`: commits, each one disk sync.
    pub commits: f64,
    /// `skiff_store_commit_duration_seconds_sum`: time spent applying and syncing.
    pub commit_seconds: f64,
}

/// What a single-writer commit loop measured.
#[derive(Debug, Clone)]
pub struct FloorResult {
    pub elapsed: Duration,
    pub latency: LatencySummary,
}

/// Both floors of the disk, measured one after the other.
#[derive(Debug, Clone)]
pub struct Floors {
    pub redb: FloorResult,
    pub fdatasync: FloorResult,
}

/// Where the data directory lives, read from /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct DataDisk {
    pub path: PathBuf,
    pub mount_point: String,
    pub fs_type: String,
    pub device: String,
}

/// The body of one create: a ConfigMap of the size an application keeps (a few
/// labels, a few data keys, about 500 bytes), rendered by splicing the name in.
struct ConfigMapTemplate {
    before_name: String,
    after_name: String,
}

/// The tally of one writer task.
#[derive(Default)]
struct WriterTally {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, (u64, String)>,
    warmup_errors: u64,
}

enum CreateError {
    Status(StatusCode, String),
    Transport(String),
}

impl Timing {
    pub fn full() -> Self {
        Timing {
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(10),
        }
    }

    pub fn quick() -> Self {
        Timing {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(3),
        }
    }
}

impl WriteResult {
    pub fn per_second(&self) -> f64 {
        self.latency.count as f64 / self.elapsed.as_secs_f64()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// Acknowledged creates per store commit: how many writes shared a sync.
    pub fn creates_per_commit(&self) -> Option<f64> {
        self.store
            .filter(|s| s.commits > 0.0)
            .map(|s| self.latency.count as f64 / s.commits)
    }

    /// Mean time the store's writer spent on one commit.
    pub fn mean_commit(&self) -> Option<Duration> {
        self.store
            .filter(|s| s.commits > 0.0)
            .map(|s| Duration::from_secs_f64(s.commit_seconds / s.commits))
    }

    pub fn row(&self) -> Row {
        let writers = if self.writers == 1 {
            "1 writer".to_string()
        } else {
            format!("{} writers", self.writers)
        };
        let mut figure = format!(
            "{} /s, p99 {}",
            thousands(self.per_second()),
            millis(self.latency.p99)
        );
        if self.error_count() > 0 {
            let _ = write!(figure, ", {} errors", self.error_count());
        }
        let mut row = Row {
            scenario: format!("durable creates, {writers}"),
            figure,
            ..Row::default()
        };
        if self.writers == WRITER_COUNTS[WRITER_COUNTS.len() - 1] {
            row.budget = Some(millis(WRITE_P99_BUDGET));
            row.ratio = Some(self.latency.p99.as_secs_f64() / WRITE_P99_BUDGET.as_secs_f64());
        }
        row
    }
}

impl FloorResult {
    pub fn per_second(&self) -> f64 {
        self.latency.count as f64 / self.elapsed.as_secs_f64()
    }

    pub fn row(&self, scenario: &str) -> Row {
        let figure = format!(
            "{} /s, p99 {}",
            thousands(self.per_second()),
            millis(self.latency.p99)
        );
        Row {
            scenario: scenario.into(),
            figure,
            ..Row::default()
        }
    }
}

impl ConfigMapTemplate {
    const NAME_MARK: &str = "@NAME@";

    fn new() -> Self {
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": Self::NAME_MARK,
                "labels": {
                    "app.kubernetes.io/name": "checkout",
                    "app.kubernetes.io/part-of": "shop",
                    "app.kubernetes.io/component": "backend",
                    "environment": "staging"
                }
            },
            "data": {
                "LOG_LEVEL": "info",
                "DATABASE_URL": "postgres://checkout@db.shop.svc.cluster.local:5432/checkout",
                "FEATURE_FLAGS": "new-cart,fast-checkout,gift-cards",
                "config.yaml": "server:\n  port: 8080\n  readTimeout: 30s\n  writeTimeout: 30s\ncache:\n  size: 256Mi\n  ttl: 5m\n"
            }
        })
        .to_string();
        let (before, after) = body.split_once(Self::NAME_MARK).unwrap_or((&body, ""));
        ConfigMapTemplate {
            before_name: before.to_string(),
            after_name: after.to_string(),
        }
    }

    fn render(&self, name: &str) -> Bytes {
        Bytes::from([self.before_name.as_str(), name, self.after_name.as_str()].concat())
    }
}

impl WriterTally {
    fn error(&mut self, counted: bool, kind: String, sample: String) {
        if counted {
            let entry = self.errors.entry(kind).or_insert((0, sample));
            entry.0 += 1;
        } else {
            self.warmup_errors += 1;
        }
    }
}

impl DataDisk {
    /// The mount that holds `path` (the longest mount point that prefixes it).
    pub fn of(path: &Path) -> anyhow::Result<Self> {
        let path = path
            .canonicalize()
            .with_context(|| format!("resolve {}", path.display()))?;
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
        let mut best: Option<DataDisk> = None;
        for line in mountinfo.lines() {
            // "36 35 98:0 /root /mnt/point rw,noatime shared:1 - ext4 /dev/vda rw"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount_point) = left.split(' ').nth(4).map(unescape_mountinfo) else {
                continue;
            };
            let mut right = right.split(' ');
            let (Some(fs_type), Some(device)) = (right.next(), right.next()) else {
                continue;
            };
            let longer = best
                .as_ref()
                .is_none_or(|b| mount_point.len() >= b.mount_point.len());
            if path.starts_with(&mount_point) && longer {
                best = Some(DataDisk {
                    path: path.clone(),
                    mount_point,
                    fs_type: fs_type.to_string(),
                    device: unescape_mountinfo(device),
                });
            }
        }
        best.with_context(|| format!("no mount holds {}", path.display()))
    }
}

/// Runs `writers` tasks against the API at `api`, each on its own keep-alive
/// HTTP/1.1 connection, creating ConfigMaps back to back. A request counts if it
/// started in the measured window; its latency runs from just before the request
/// is handed to the connection until the whole response body has arrived.
pub async fn durable_creates(
    api: &Endpoint,
    writers: usize,
    timing: Timing,
) -> anyhow::Result<WriteResult> {
    let template = Arc::new(ConfigMapTemplate::new());
    // Connect every writer before the clock starts, so connection setup is not measured.
    let mut senders = Vec::with_capacity(writers);
    for _ in 0..writers {
        senders.push(api.connect().await?);
    }
    let measure_from = Instant::now() + timing.warmup;
    let end = measure_from + timing.measure;
    let counters_api = api.clone();
    let store_at_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        store_counters(&counters_api).await
    });
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(id, sender)| {
            let template = template.clone();
            let prefix = format!("bench-w{writers}-{id}-");
            tokio::spawn(writer(
                api.clone(),
                sender,
                template,
                prefix,
                measure_from,
                end,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut warmup_errors = 0;
    for task in tasks {
        let tally = task.await.context("writer task")?;
        latencies.extend(tally.latencies);
        for (kind, (n, sample)) in tally.errors {
            errors.entry(kind).or_insert((0, sample)).0 += n;
        }
        warmup_errors += tally.warmup_errors;
    }
    let elapsed = measure_from.elapsed();
    let store = match (
        store_at_start.await.ok().flatten(),
        store_counters(api).await,
    ) {
        (Some(start), Some(end)) => Some(StoreCounters {
            commits: end.commits - start.commits,
            commit_seconds: end.commit_seconds - start.commit_seconds,
        }),
        _ => None,
    };
    Ok(WriteResult {
        writers,
        elapsed,
        latency: LatencySummary::from_samples(latencies),
        errors,
        warmup_errors,
        store,
    })
}

/// The fsync floor: one writer committing one small insert per redb write
/// transaction with redb's default durability, on the disk under `dir`.
pub fn redb_commit_floor(
    dir: &Path,
    value_len: usize,
    timing: Timing,
) -> anyhow::Result<FloorResult> {
    let db = Database::create(dir.join("floor.redb")).context("create floor database")?;
    let value = vec![b'x'; value_len];
    commit_loop(timing, |i| {
        let key = format!("key-{i}");
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(FLOOR_TABLE)?;
            table.insert(key.as_str(), value.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    })
}

/// The device's own floor, for reading the redb figure: overwrite one 4 KiB
/// block of a preallocated file and `fdatasync` it, in a loop.
pub fn fdatasync_floor(dir: &Path, timing: Timing) -> anyhow::Result<FloorResult> {
    const BLOCK: u64 = 4096;
    const BLOCKS: u64 = 1024;
    let file =
        std::fs::File::create(dir.join("floor.fdatasync")).context("create fdatasync file")?;
    let block = vec![0x5a_u8; BLOCK as usize];
    for i in 0..BLOCKS {
        file.write_all_at(&block, i * BLOCK)?;
    }
    file.sync_all()?;
    commit_loop(timing, |i| {
        file.write_all_at(&block, (i % BLOCKS) * BLOCK)?;
        file.sync_data()?;
        Ok(())
    })
}

/// Runs the redb and fdatasync floors in a fresh directory `dir`, then removes it.
pub fn floors(dir: &Path, value_len: usize, timing: Timing) -> anyhow::Result<Floors> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    progress("redb commit loop");
    let redb = redb_commit_floor(dir, value_len, timing)?;
    progress("fdatasync loop");
    let fdatasync = fdatasync_floor(dir, timing)?;
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(Floors { redb, fdatasync })
}

/// Reads the store's counters from the API's Prometheus text at `/metrics`.
pub async fn store_counters(api: &Endpoint) -> Option<StoreCounters> {
    let mut sender = api.connect().await.ok()?;
    let request = Request::get("/metrics")
        .header(HOST, api.addr().to_string())
        .body(Full::new(Bytes::new()))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body);
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
    })
}

async fn writer(
    api: Endpoint,
    mut sender: http1::SendRequest<Full<Bytes>>,
    template: Arc<ConfigMapTemplate>,
    name_prefix: String,
    measure_from: Instant,
    end: Instant,
) -> WriterTally {
    let mut tally = WriterTally {
        latencies: Vec::with_capacity(1024),
        ..WriterTally::default()
    };
    let host = api.addr().to_string();
    for seq in 0u64.. {
        let body = template.render(&format!("{name_prefix}{seq}"));
        let started = Instant::now();
        if started >= end {
            break;
        }
        let counted = started >= measure_from;
        match create(&mut sender, &host, body).await {
            Ok(()) => {
                if counted {
                    tally.latencies.push(started.elapsed());
                }
            }
            Err(CreateError::Status(status, body)) => {
                tally.error(counted, status.to_string(), body)
            }
            Err(CreateError::Transport(e)) => {
                tally.error(counted, format!("transport: {e}"), String::new());
                // Carry on over a fresh connection; each failed attempt counts too.
                loop {
                    match api.connect().await {
                        Ok(fresh) => {
                            sender = fresh;
                            break;
                        }
                        Err(e) => {
                            tally.error(
                                Instant::now() >= measure_from,
                                format!("reconnect: {e:#}"),
                                String::new(),
                            );
                            if Instant::now() >= end {
                                return tally;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }
    }
    tally
}

async fn create(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    host: &str,
    body: Bytes,
) -> Result<(), CreateError> {
    let transport = |e: &dyn std::fmt::Display| CreateError::Transport(e.to_string());
    let request = Request::post(CONFIGMAPS)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| transport(&e))?;
    sender.ready().await.map_err(|e| transport(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| transport(&e))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(&e))?
        .to_bytes();
    if status == StatusCode::CREATED {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body);
        Err(CreateError::Status(
            status,
            text.chars().take(300).collect(),
        ))
    }
}

/// Runs `commit` back to back; the warm-up's commits are not counted.
fn commit_loop(
    timing: Timing,
    mut commit: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<FloorResult> {
    let measure_from = Instant::now() + timing.warmup;
    let end = measure_from + timing.measure;
    let mut latencies = Vec::with_capacity(16_384);
    for i in 0u64.. {
        let started = Instant::now();
        if started >= end {
            break;
        }
        commit(i)?;
        if started >= measure_from {
            latencies.push(started.elapsed());
        }
    }
    Ok(FloorResult {
        elapsed: measure_from.elapsed(),
        latency: LatencySummary::from_samples(latencies),
    })
}

fn unescape_mountinfo(field: &str) -> String {
    // Spaces, tabs, newlines and backslashes appear as \ooo octal escapes.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) if bytes[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, b| n.wrapping_mul(8).wrapping_add(b - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
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

fn detail_line(label: &str, per_second: f64, latency: &LatencySummary, errors: u64) -> String {
    format!(
        "{label:<36} {:>8} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>6}",
        latency.count,
        per_second,
        latency.p50.as_secs_f64() * 1e3,
        latency.p99.as_secs_f64() * 1e3,
        latency.max.as_secs_f64() * 1e3,
        errors
    )
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

/// The floors, then a control plane in `data` taking durable creates from
/// each number of `writers` in turn, then the floors again (the disk is
/// shared: a floor that moved says the figures between are not comparable).
pub fn measure(
    data: &Path,
    writers: &[usize],
    timing: Timing,
) -> anyhow::Result<(Floors, Vec<WriteResult>, Floors)> {
    let value_len = ConfigMapTemplate::new()
        .render("bench-w200-199-99999")
        .len();
    let before = floors(&data.join("floor-before"), value_len, timing)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let writes = runtime.block_on(async {
        let plane = ControlPlane::start(ControlPlaneConfig {
            api_addr: "127.0.0.1:0".parse()?,
            quic_addr: "127.0.0.1:0".parse()?,
            ..ControlPlaneConfig::new(data.join("plane"))
        })
        .await
        .context("start control plane")?;
        let api = Endpoint::from_kubeconfig(plane.kubeconfig(), plane.api_addr())?;
        let mut writes = Vec::new();
        for &n in writers {
            progress(&format!("durable creates, {n} writers"));
            writes.push(durable_creates(&api, n, timing).await?);
        }
        anyhow::Ok(writes)
    });
    // Stop the server and the store's writer before the floors run again.
    runtime.shutdown_timeout(Duration::from_secs(5));
    let writes = writes?;
    let after = floors(&data.join("floor-after"), value_len, timing)?;
    Ok((before, writes, after))
}

/// The harness's figures: durable creates per second and p99 for each number
/// of writers, beside the redb commit loop on the same disk in the same run.
pub fn run_scenario(
    writers: &[usize],
    timing: Timing,
    parent: &Path,
) -> anyhow::Result<Vec<Figure>> {
    let data = dirs::fresh(parent, "api_writes-")?;
    let disk = DataDisk::of(data.path())?;
    if matches!(disk.fs_type.as_str(), "tmpfs" | "ramfs") {
        bail!(
            "the data directory is on {}: fsync costs nothing there; set SKIFF_BENCH_DIR to a real disk",
            disk.fs_type
        );
    }
    let (before, writes, after) = measure(data.path(), writers, timing)?;
    let floor = &before.redb;
    let drift = after.redb.per_second() / floor.per_second();
    let mut figures = Vec::new();
    for w in &writes {
        let row = w.row();
        let mut figure = Figure::new(
            "API: durable creates (ConfigMap), closed loop",
            if w.writers == 1 {
                "1 writer".to_string()
            } else {
                format!("{} writers", w.writers)
            },
            row.figure,
        )
        .measured_peer(
            format!(
                "{} /s, p99 {}, redb commit loop{}",
                thousands(floor.per_second()),
                millis(floor.latency.p99),
                if (0.5..=2.0).contains(&drift) {
                    String::new()
                } else {
                    format!(" (moved {drift:.2}x during the run)")
                }
            ),
            w.per_second() / floor.per_second(),
        );
        if let (Some(budget), Some(ratio)) = (row.budget, row.ratio) {
            figure = figure.budget(format!("p99 {budget}"), ratio);
        }
        figures.push(figure);
    }
    Ok(figures)
}

/// The benchmark on its own (`benches/api_writes/main.rs`): its own table.
pub fn main() -> anyhow::Result<()> {
    let mut timing = Timing::full();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => timing = Timing::quick(),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!("usage: cargo bench --bench api_writes [-- --quick]");
                println!(
                    "SKIFF_BENCH_DIR=<dir> puts the data directories under <dir> (default: the target's tmp dir)"
                );
                return Ok(());
            }
            other => eprintln!("api_writes: ignoring argument {other:?}"),
        }
    }

    let parent = dirs::parent();
    let data = dirs::fresh(&parent, "api_writes-")?;
    let disk = DataDisk::of(data.path())?;
    println!("machine: {}", machine_summary());
    println!(
        "data dir: {} on {} ({}, mounted at {})",
        disk.path.display(),
        disk.device,
        disk.fs_type,
        disk.mount_point
    );
    if matches!(disk.fs_type.as_str(), "tmpfs" | "ramfs") {
        bail!(
            "the data directory is on {}: fsync costs nothing there; set SKIFF_BENCH_DIR to a real disk",
            disk.fs_type
        );
    }
    println!(
        "timing: {} s warm-up, {} s measured per scenario",
        timing.warmup.as_secs_f64(),
        timing.measure.as_secs_f64()
    );

    // The floors run on their own, before the control plane exists and again
    // after it has stopped: the disk is shared, and a floor that moved between
    // the two says the figures between them are not comparable.
    let value_len = ConfigMapTemplate::new()
        .render("bench-w200-199-99999")
        .len();
    println!(
        "request body: {value_len} bytes of ConfigMap JSON; floors write values of the same size"
    );
    println!();
    let (before, writes, after) = measure(data.path(), &WRITER_COUNTS, timing)?;

    let mut rows: Vec<Row> = writes.iter().map(WriteResult::row).collect();
    rows.push(before.redb.row("redb commit loop (fsync floor)"));
    rows.push(before.fdatasync.row("fdatasync loop, 4 KiB (device floor)"));
    if let Some(most) = writes.last() {
        let per_commit = most
            .creates_per_commit()
            .map_or("? creates".into(), |n| format!("{n:.1} creates"));
        rows.push(Row {
            scenario: format!("group commit, {} writers", most.writers),
            figure: format!(
                "{per_commit}/commit, {:.1}x the floor",
                most.per_second() / before.redb.per_second()
            ),
            ..Row::default()
        });
    }
    println!("{}", format_table(&rows));

    println!(
        "{:<36} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>9} {:>9}",
        "detail",
        "counted",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "w/commit",
        "commit ms"
    );
    for w in &writes {
        let line = detail_line(
            &w.row().scenario,
            w.per_second(),
            &w.latency,
            w.error_count(),
        );
        let per_commit = w
            .creates_per_commit()
            .map_or("?".into(), |n| format!("{n:.1}"));
        let commit = w
            .mean_commit()
            .map_or("?".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
        println!("{line} {per_commit:>9} {commit:>9}");
    }
    for (when, f) in [("before", &before), ("after", &after)] {
        for (what, floor) in [
            ("redb commit loop", &f.redb),
            ("fdatasync 4 KiB loop", &f.fdatasync),
        ] {
            let line = detail_line(
                &format!("{what} ({when})"),
                floor.per_second(),
                &floor.latency,
                0,
            );
            let mean = floor.elapsed.as_secs_f64() * 1e3 / floor.latency.count.max(1) as f64;
            println!("{line} {:>9} {mean:>9.2}", 1);
        }
    }
    let drift = after.redb.per_second() / before.redb.per_second();
    if !(0.5..=2.0).contains(&drift) {
        println!(
            "caution: the redb floor moved {drift:.2}x during the run (other load on the disk?): rerun on a quiet machine"
        );
    }
    for w in &writes {
        for (kind, (n, sample)) in &w.errors {
            println!("errors at {} writers: {n} x {kind}: {sample}", w.writers);
        }
        if w.warmup_errors > 0 {
            println!(
                "errors at {} writers during warm-up (not in the figure): {}",
                w.writers, w.warmup_errors
            );
        }
    }
    Ok(())
}

fn progress(what: &str) {
    eprintln!("running: {what} ...");
}
