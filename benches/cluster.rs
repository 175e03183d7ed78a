//! The one benchmark command: every scenario of the performance budget in
//! DESIGN.md, at growing sizes, in one table beside a peer: measured in the
//! same run where one can run here (`wasmtime serve` for HTTP, a plain redb
//! commit loop for API writes), otherwise a published figure, marked so.
//!
//! The scenarios are the other benchmarks, included as modules and called in
//! turn; each starts what it needs and stops it before the next begins:
//! - `pods.rs`: `skiff up`, pod create -> Ready (watch-observed) for batches
//!   of 10, 100 and 1,000 pods, idle memory, memory per running pod, binary size;
//! - `config.rs`: `skiff up`, create -> Ready of plain pods against pods with
//!   ConfigMap volumes and Secret env (interleaved), and a ConfigMap's update
//!   reaching the files of 100 pods;
//! - `scheduling.rs`: a control plane and 100, 1,000 and 5,000 hollow nodes;
//! - `proxy.rs`: a control plane, two nodes and `wasmtime serve` under wrk,
//!   with 1, 10 and 100 endpoints behind the Service;
//! - `api_writes.rs`: durable creates at 1, 16 and 200 writers, beside the redb
//!   commit loop on the same disk;
//! - `failover.rs`: a control plane and three nodes; a node is killed and the
//!   time until its pods are Ready elsewhere is taken.
//!
//! `cargo bench --bench cluster` (about 10 minutes on a 2-core machine);
//! `cargo bench --bench cluster -- --quick` or `SKIFF_BENCH_QUICK=1` for the
//! smaller sizes only; `-- --only pods,config,scheduling,proxy,api` for some
//! scenarios. The method and the recorded results are in BENCHMARKS.md.

// Each scenario module also has a `main` of its own, unused here.
#[path = "api_writes.rs"]
#[allow(dead_code)]
mod api_writes;
#[path = "config.rs"]
#[allow(dead_code)]
mod config;
#[path = "failover.rs"]
#[allow(dead_code)]
mod failover;
#[path = "pods.rs"]
#[allow(dead_code)]
mod pods;
#[path = "proxy.rs"]
#[allow(dead_code)]
mod proxy;
#[path = "scheduling.rs"]
#[allow(dead_code)]
mod scheduling;
// The harness uses a part of the shared modules.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use support::dirs;
use support::figure::{self, Figure, format_figures};

// The same allocator as the `skiff` binary, so the in-process control planes
// measure what a user runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The scenarios, in the order they run.
const SCENARIOS: [&str; 6] = ["pods", "config", "scheduling", "proxy", "api", "failover"];

/// Longest the hollow nodes of one scheduling size may take to join and turn
/// Ready, so that the whole run stays within 15 minutes on 2 cores.
const SCHEDULING_SETUP_LIMIT: Duration = Duration::from_secs(150);

/// Every size of one run.
struct Sizes {
    quick: bool,
    pods: pods::Plan,
    config: config::Plan,
    scheduling: Vec<scheduling::Plan>,
    proxy: proxy::Settings,
    api_writers: Vec<usize>,
    api_timing: api_writes::Timing,
    failover: failover::Plan,
}

impl Sizes {
    fn full() -> Self {
        Sizes {
            quick: false,
            pods: pods::Plan {
                batches: vec![10, 100, 1_000],
                density: vec![5_000, 10_000],
                settle: Duration::from_secs(5),
                readings: 3,
            },
            config: config::Plan::full(),
            scheduling: vec![
                scheduling::Plan {
                    nodes: 100,
                    pods: 1_000,
                    writers: 16,
                    setup_limit: SCHEDULING_SETUP_LIMIT,
                },
                scheduling::Plan {
                    nodes: 1_000,
                    pods: 10_000,
                    writers: 16,
                    setup_limit: SCHEDULING_SETUP_LIMIT,
                },
                scheduling::Plan {
                    nodes: 5_000,
                    pods: 10_000,
                    writers: 16,
                    setup_limit: SCHEDULING_SETUP_LIMIT,
                },
            ],
            proxy: proxy::Settings {
                connections: 32,
                threads: 2,
                duration: 5,
                warmup: 2,
                rounds: 3,
                endpoints: vec![1, 10, 100],
                single_connection: false,
            },
            api_writers: api_writes::WRITER_COUNTS.to_vec(),
            api_timing: api_writes::Timing {
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(5),
            },
            failover: failover::Plan { rounds: 3 },
        }
    }

    fn quick() -> Self {
        let full = Sizes::full();
        Sizes {
            quick: true,
            pods: pods::Plan {
                batches: vec![10, 100],
                density: vec![1_000],
                settle: Duration::from_secs(2),
                readings: 3,
            },
            config: config::Plan::quick(),
            scheduling: full.scheduling[..2]
                .iter()
                .map(|&p| scheduling::Plan {
                    pods: p.pods.min(5_000),
                    ..p
                })
                .collect(),
            proxy: proxy::Settings {
                endpoints: vec![1, 10],
                rounds: 1,
                warmup: 1,
                ..full.proxy
            },
            api_writers: full.api_writers,
            api_timing: api_writes::Timing {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(3),
            },
            failover: failover::Plan { rounds: 1 },
        }
    }
}

/// Runs one scenario; its figures, or one row that says it failed (the error
/// goes to stderr), so that one failure does not lose the others.
fn run(name: &str, sizes: &Sizes, parent: &Path) -> Vec<Figure> {
    let result = match name {
        "pods" => pods::run_scenario(&sizes.pods, parent),
        "config" => config::run_scenario(&sizes.config, parent),
        "scheduling" => scheduling::run_scenario(&sizes.scheduling, parent),
        "proxy" => proxy::run_scenario(&sizes.proxy, parent),
        "api" => api_writes::run_scenario(&sizes.api_writers, sizes.api_timing, parent),
        "failover" => failover::run_scenario(sizes.failover, parent),
        _ => Ok(Vec::new()),
    };
    match result {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!("cluster: scenario {name} failed: {e:#}");
            vec![Figure::new(
                format!("{name}: FAILED (error on stderr)"),
                "",
                "no figure".into(),
            )]
        }
    }
}

/// Rows for what the harness does not measure (yet): they say so.
fn not_measured(sizes: &Sizes, ran: &[&str]) -> Vec<Figure> {
    let mut rows = Vec::new();
    if ran.contains(&"pods") {
        let running = sizes.pods.total();
        for size in [1_000, 5_000, 10_000] {
            if size > running {
                rows.push(Figure::not_measured(
                    "density: running HTTP pods on one node (hello)",
                    &format!("{} pods", figure::thousands(size as f64)),
                    (size == 10_000).then_some("10,000 on a 24 GiB node"),
                ));
            }
        }
    }
    if !ran.contains(&"proxy") {
        rows.push(Figure::not_measured(
            "footprint: idle RSS of a node agent (skiff node)",
            "no pods",
            Some("30 MiB"),
        ));
    }
    rows
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, {memory} memory, Linux {kernel}")
}

fn main() -> anyhow::Result<()> {
    let mut quick = std::env::var("SKIFF_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = args.next().context("--only needs a list, e.g. pods,api")?;
                only = Some(list.split(',').map(|s| s.trim().to_string()).collect());
            }
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "usage: cargo bench --bench cluster [-- --quick] [-- --only {}]",
                    SCENARIOS.join(",")
                );
                println!(
                    "SKIFF_BENCH_QUICK=1 is --quick; SKIFF_BENCH_DIR=<dir> puts the data under <dir>"
                );
                return Ok(());
            }
            other => eprintln!("cluster: ignoring argument {other:?}"),
        }
    }
    let chosen: Vec<&str> = match &only {
        Some(list) => {
            for name in list {
                if !SCENARIOS.contains(&name.as_str()) {
                    bail!(
                        "--only: no scenario {name:?} (there are {})",
                        SCENARIOS.join(", ")
                    );
                }
            }
            SCENARIOS
                .into_iter()
                .filter(|s| list.iter().any(|n| n == s))
                .collect()
        }
        None => SCENARIOS.to_vec(),
    };
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let parent = dirs::parent();

    let load_start = load_average();
    let started = Instant::now();
    let mut figures = Vec::new();
    let mut timings = Vec::new();
    for name in &chosen {
        eprintln!("cluster: scenario {name} ...");
        let began = Instant::now();
        figures.extend(run(name, &sizes, &parent));
        timings.push(format!("{name} {:.0} s", began.elapsed().as_secs_f64()));
    }
    figures.extend(not_measured(&sizes, &chosen));
    let total = started.elapsed();

    println!();
    println!(
        "machine: {}; load average {load_start} at start, {} at end",
        machine_summary(),
        load_average()
    );
    println!(
        "run: {} sizes, {}; took {:.1} min ({})",
        if sizes.quick { "quick" } else { "full" },
        chosen.join(", "),
        total.as_secs_f64() / 60.0,
        timings.join(", ")
    );
    println!();
    print!("{}", format_figures(&figures));
    println!();
    println!("vs budget: the figure against DESIGN.md's budget, at most 1.00 meets it.");
    println!(
        "vs peer: Skiff's figure / the peer's (requests/s, writes/s, pods/s: higher is better; latency, memory: lower is better)."
    );
    println!(
        "peer (same run): measured by this run on this machine; (published): another system's published figure, other hardware, not measured here."
    );
    Ok(())
}
