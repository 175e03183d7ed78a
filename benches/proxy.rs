//! The node proxy: requests per second and p50/p99 latency of HTTP through a
//! Service's NodePort, against `wasmtime serve` of the very same component under
//! the same load (the runtime's own ceiling: DESIGN.md asks for at least 90% of
//! it), and the latency a remote endpoint (another node, over QUIC) adds.
//!
//! One run starts a real cluster on loopback: `skiff server` and two
//! `skiff node` processes, n1 on 127.0.0.2 and n2 on 127.0.0.3. The `hello`
//! sample runs as a Deployment pinned to n1 behind a NodePort Service, so n1's
//! NodePort has only local endpoints (called in process) and n2's NodePort has
//! only remote ones (forwarded over QUIC to n1). A second Deployment of the
//! same `hello`, annotated `skiff.dev/instance-reuse: "true"`, with its own
//! NodePort Service, measures n1's NodePort when the pods reuse instances
//! instead of making a fresh one per request. `wasmtime serve` (wasmtime-cli of
//! the wasmtime version in Cargo.lock) serves the same `hello.wasm`. wrk (from
//! the distribution) drives each target, in rounds that interleave the targets
//! so that a busy spell on the shared machine hits all of them alike.
//! `benches/tools.sh` installs wrk and wasmtime-cli (once, outside the clone).
//!
//! `cargo bench --bench proxy`; settings through the environment:
//! `PROXY_CONNECTIONS` (32), `PROXY_THREADS` (2, wrk's), `PROXY_DURATION` (5 s a
//! run), `PROXY_WARMUP` (2 s a target), `PROXY_ROUNDS` (3) and
//! `PROXY_ENDPOINTS` (`1`; e.g. `1,10,100` for a sweep over the number of
//! replicas behind the Service). The method and the recorded results are in
//! BENCHMARKS.md.

use crate::support::{api_client, dirs, figure, table};
use skiff_testkit::{cluster, node, objects, processes, samples};

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use api_client::{Connection, Endpoint};
use bytes::Bytes;
use cluster::Server;
use figure::{Figure, thousands};
use http::{Method, StatusCode};
use node::NodeProcess;
use objects::get_json;
use serde_json::{Value, json};
use table::format_grid;

/// DESIGN.md: HTTP through a Service on the node proxy, 1.5x `wasmtime
/// serve` on the same component, same load.
const BUDGET_RATIO: f64 = 1.5;
/// DESIGN.md: idle resident memory of a node agent.
const NODE_RSS_BUDGET_MIB: f64 = 30.0;
/// The node that runs every replica (its NodePort: local endpoints).
const LOCAL_NODE: (&str, &str) = ("n1", "127.0.0.2");
/// The node that runs none (its NodePort: remote endpoints only).
const REMOTE_NODE: (&str, &str) = ("n2", "127.0.0.3");
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments";
/// The Deployment (and Service) of fresh instances per request, and the one
/// whose pods reuse their instances.
const WEB: &str = "web";
const WEB_REUSE: &str = "web-reuse";
const SERVICES: &str = "/api/v1/namespaces/default/services";
/// Longest wait for anything the cluster is asked to do.
const DEADLINE: Duration = Duration::from_secs(120);
/// wrk's Lua hook: one line of JSON with what the figures need, in
/// microseconds, so nothing depends on wrk's human-readable units.
const WRK_REPORT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk-json {\"requests\":%d,\"duration_us\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#;

/// What one run measures, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connections: u32,
    pub threads: u32,
    /// Seconds of one wrk run.
    pub duration: u64,
    /// Seconds of warm-up per target.
    pub warmup: u64,
    pub rounds: usize,
    pub endpoints: Vec<usize>,
    /// Also measure every target at one connection (latency without queueing).
    pub single_connection: bool,
}

/// Everything one run measured.
pub struct Outcome {
    pub wasmtime_version: String,
    pub wrk_version: String,
    pub load_before: String,
    /// Idle `VmRSS` of each `skiff node` process right after it joined, before
    /// any pod (the median of 3 readings a second apart, after 5 s idle).
    pub node_idle_rss: Vec<(String, u64)>,
    /// Per number of endpoints: each scenario and its runs, in the order of
    /// `Settings::scenarios`.
    pub results: Vec<(usize, ScenarioRuns)>,
}

/// Each scenario with its runs, at one number of endpoints.
pub type ScenarioRuns = Vec<(Scenario, Vec<Run>)>;

/// The programs `benches/tools.sh` installed.
struct Tools {
    wrk: PathBuf,
    wasmtime: PathBuf,
}

/// A child process killed and reaped on drop.
struct Guard {
    child: Child,
}

/// The cluster under test.
struct Cluster {
    server: Server,
    nodes: Vec<NodeProcess>,
    /// Service `web`'s NodePort.
    node_port: u16,
    /// Service `web-reuse`'s NodePort.
    reuse_node_port: u16,
}

/// Where wrk sends load, and how much.
#[derive(Debug, Clone)]
pub struct Scenario {
    target: Target,
    connections: u32,
    threads: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Wasmtime,
    Local,
    /// The local endpoint, its pods reusing instances.
    LocalReuse,
    Remote,
}

/// Every target, in the order they are measured and shown.
const TARGETS: [Target; 4] = [
    Target::Wasmtime,
    Target::Local,
    Target::LocalReuse,
    Target::Remote,
];

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    requests: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: u64,
}

/// The median over a scenario's rounds, metric by metric.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let endpoints = std::env::var("PROXY_ENDPOINTS").unwrap_or_else(|_| "1".into());
        let endpoints = endpoints
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("PROXY_ENDPOINTS: {n:?} is not a positive count"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let settings = Settings {
            connections: env_number("PROXY_CONNECTIONS", 32)?,
            threads: env_number("PROXY_THREADS", 2)?,
            duration: env_number("PROXY_DURATION", 5)?,
            warmup: env_number("PROXY_WARMUP", 2)?,
            rounds: env_number("PROXY_ROUNDS", 3)?,
            endpoints,
            single_connection: true,
        };
        ensure!(
            settings.connections >= settings.threads && settings.threads > 0,
            "PROXY_CONNECTIONS must be at least PROXY_THREADS (wrk needs a connection per thread)"
        );
        ensure!(
            settings.duration > 0 && settings.rounds > 0,
            "PROXY_DURATION and PROXY_ROUNDS must be positive"
        );
        Ok(settings)
    }

    /// Per group of endpoints: the loaded scenarios, then the same targets at
    /// one connection (latency without queueing).
    fn scenarios(&self) -> Vec<Scenario> {
        let loaded = TARGETS.map(|target| Scenario {
            target,
            connections: self.connections,
            threads: self.threads,
        });
        let single = TARGETS.map(|target| Scenario {
            target,
            connections: 1,
            threads: 1,
        });
        if self.single_connection {
            loaded.into_iter().chain(single).collect()
        } else {
            loaded.into_iter().collect()
        }
    }
}

fn env_number<T: FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .trim_end_matches('s')
            .parse()
            .ok()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

impl Tools {
    /// Runs `benches/tools.sh` (it installs what is missing and prints where
    /// the tools are).
    fn install() -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/tools.sh");
        let hint = || {
            format!(
                "the proxy bench needs wrk and wasmtime-cli: run {} (it installs them) and look at its output",
                script.display()
            )
        };
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(hint)?;
        if !out.status.success() {
            bail!("{} failed ({}); {}", script.display(), out.status, hint());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let find = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .with_context(|| {
                    format!(
                        "{} printed no usable {key}...; {}",
                        script.display(),
                        hint()
                    )
                })
        };
        Ok(Tools {
            wrk: find("wrk=")?,
            wasmtime: find("wasmtime=")?,
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wasmtime serve` on a free loopback port with the component and an
/// environment like a pod's (`POD_NAME`, of a pod name's length, so the answer
/// has the same size); its stderr goes to `log`. Returns once it listens.
fn start_wasmtime_serve(
    wasmtime: &Path,
    wasm: &Path,
    log: &Path,
) -> anyhow::Result<(Guard, SocketAddr)> {
    // -Scli: the component imports wasi:cli/environment (std::env::var), which
    // `wasmtime serve` links only with it; without it it links the proxy world.
    let mut child = Command::new(wasmtime)
        .args(["serve", "-Scli", "--addr", "127.0.0.1:0"])
        .args(["--env", "POD_NAME=web-5d8f9c7b6d-x2x9q"])
        .arg(wasm)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {} serve", wasmtime.display()))?;
    let stderr = child.stderr.take().context("wasmtime's stderr")?;
    let guard = Guard { child };
    let mut log = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining stderr into the log, so wasmtime never blocks on it.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("wasmtime serve did not print `Serving HTTP on http://...`")?;
        if let Some(addr) = line.trim().strip_prefix("Serving HTTP on http://") {
            let addr = addr
                .trim_end_matches('/')
                .parse()
                .context("parse wasmtime's address")?;
            return Ok((guard, addr));
        }
    }
}

impl Cluster {
    /// A control plane and two nodes on their own loopback addresses, with
    /// `hello:v1` pushed, Deployments `web` and `web-reuse` (whose pods
    /// reuse instances) pinned to the local node (no replicas yet) and a
    /// NodePort Service in front of each.
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let (server, nodes) = processes::start(dir, &["hello"], &[LOCAL_NODE, REMOTE_NODE]);
        let mut cluster = Cluster {
            server,
            nodes,
            node_port: 0,
            reuse_node_port: 0,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        cluster.node_port = runtime.block_on(cluster.create_objects(WEB, false))?;
        cluster.reuse_node_port = runtime.block_on(cluster.create_objects(WEB_REUSE, true))?;
        Ok(cluster)
    }

    /// Deployment `name` of `hello` and its NodePort Service; the
    /// Service's nodePort.
    async fn create_objects(&self, name: &str, reuse: bool) -> anyhow::Result<u16> {
        let mut api = Connection::open(&Endpoint::from_kubeconfig(
            &self.server.kubeconfig(),
            self.server.addr(),
        )?)
        .await?;
        let annotations = if reuse {
            json!({"skiff.dev/instance-reuse": "true"})
        } else {
            json!({})
        };
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": annotations},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": LOCAL_NODE.0},
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{
                            "name": "main",
                            "image": "hello:v1",
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
                        }]
                    }
                }
            }
        });
        api.request(
            Method::POST,
            DEPLOYMENT,
            "application/json",
            Bytes::from(deployment.to_string()),
        )
        .await?
        .expect(StatusCode::CREATED, &format!("create deployment {name}"))?;
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "type": "NodePort",
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]
            }
        });
        let reply = api
            .request(
                Method::POST,
                SERVICES,
                "application/json",
                Bytes::from(service.to_string()),
            )
            .await?;
        reply.expect(StatusCode::CREATED, &format!("create service {name}"))?;
        reply
            .json()?
            .pointer("/spec/ports/0/nodePort")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("service {name} got no nodePort"))
    }

    /// Service `web`'s NodePort on `node`.
    fn node_port_addr(&self, node: (&str, &str)) -> anyhow::Result<SocketAddr> {
        self.port_addr(node, self.node_port)
    }

    fn port_addr(&self, (_, address): (&str, &str), port: u16) -> anyhow::Result<SocketAddr> {
        let ip: IpAddr = address.parse()?;
        Ok(SocketAddr::new(ip, port))
    }

    /// Scales `web` and `web-reuse` to `replicas` each and waits until each
    /// Service has exactly that many ready endpoints and the NodePorts have
    /// answered from every one (both nodes' for `web`, the local one's for
    /// `web-reuse`).
    async fn scale(&self, replicas: usize) -> anyhow::Result<()> {
        let mut api = Connection::open(&Endpoint::from_kubeconfig(
            &self.server.kubeconfig(),
            self.server.addr(),
        )?)
        .await?;
        for name in [WEB, WEB_REUSE] {
            api.request(
                Method::PATCH,
                &format!("{DEPLOYMENT}/{name}"),
                "application/merge-patch+json",
                Bytes::from(json!({"spec": {"replicas": replicas}}).to_string()),
            )
            .await?
            .expect(StatusCode::OK, &format!("scale deployment {name}"))?;
        }
        let deadline = Instant::now() + DEADLINE;
        for name in [WEB, WEB_REUSE] {
            loop {
                let (ready, all) = self.endpoints(name);
                if ready == replicas && all == replicas {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "service {name} has {ready} ready of {all} endpoints, not {replicas}, after {DEADLINE:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let ports = [
            (WEB, LOCAL_NODE, self.node_port),
            (WEB, REMOTE_NODE, self.node_port),
            (WEB_REUSE, LOCAL_NODE, self.reuse_node_port),
        ];
        for (name, node, port) in ports {
            let addr = self.port_addr(node, port)?;
            let seen = answering_pods(addr, replicas).await?;
            if seen < replicas {
                eprintln!(
                    "warning: the NodePort of {name} on {} answered from {seen} of {replicas} pods while probing",
                    node.0
                );
            }
        }
        Ok(())
    }

    /// (ready, all) endpoints of Service `name`, from its EndpointSlices.
    fn endpoints(&self, name: &str) -> (usize, usize) {
        let slices = get_json(
            &self.server,
            &format!(
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{name}"
            ),
        );
        let endpoints: Vec<Value> = slices
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .collect();
        let ready = endpoints
            .iter()
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (ready, endpoints.len())
    }
}

/// Sends requests to a NodePort until `want` different pods have answered
/// (or a budget of requests is spent); how many answered. A refused
/// connection or a non-200 answer (a NodePort or route not there yet) waits a
/// little and tries again, until the deadline.
async fn answering_pods(addr: SocketAddr, want: usize) -> anyhow::Result<usize> {
    let deadline = Instant::now() + DEADLINE;
    let mut pods = BTreeSet::new();
    let mut budget = 50 * want + 100;
    let mut connection = None;
    while pods.len() < want && budget > 0 {
        if Instant::now() > deadline {
            bail!("the NodePort {addr} did not answer 200 within {DEADLINE:?}");
        }
        let conn = match &mut connection {
            Some(c) => c,
            None => match Connection::open_plain(addr).await {
                Ok(c) => connection.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match conn
            .request(Method::GET, "/", "text/plain", Bytes::new())
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => {
                budget -= 1;
                if let Some(pod) = reply
                    .text()
                    .trim()
                    .strip_prefix("Hello from ")
                    .and_then(|s| s.strip_suffix('!'))
                {
                    pods.insert(pod.to_string());
                }
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => {
                connection = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(pods.len())
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Wasmtime => "wasmtime serve (same hello.wasm)",
            Target::Local => "Skiff NodePort, local endpoint",
            Target::LocalReuse => "Skiff NodePort, local endpoint, instance reuse",
            Target::Remote => "Skiff NodePort, remote endpoint (QUIC)",
        }
    }
}

/// Runs wrk once against `url`.
fn wrk(
    tools: &Tools,
    script: &Path,
    url: &str,
    connections: u32,
    threads: u32,
    seconds: u64,
) -> anyhow::Result<Run> {
    let out = Command::new(&tools.wrk)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "5s", "-s"])
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", tools.wrk.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk against {url} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&stdout).with_context(|| format!("wrk against {url} printed:\n{stdout}"))
}

/// The figures from wrk's output (the `wrk-json` line `WRK_REPORT` prints).
fn parse_wrk(stdout: &str) -> anyhow::Result<Run> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrk-json "))
        .context("no wrk-json line (is the Lua report script loaded?)")?;
    let v: Value = serde_json::from_str(line).context("the wrk-json line is not JSON")?;
    let n = |key: &str| {
        v[key]
            .as_u64()
            .with_context(|| format!("wrk-json has no {key}"))
    };
    let micros = |key: &str| n(key).map(Duration::from_micros);
    let requests = n("requests")?;
    let seconds = n("duration_us")? as f64 / 1e6;
    ensure!(seconds > 0.0, "wrk ran for no time");
    Ok(Run {
        requests,
        per_second: requests as f64 / seconds,
        p50: micros("p50_us")?,
        p99: micros("p99_us")?,
        max: micros("max_us")?,
        errors: ["connect", "read", "write", "status", "timeout"]
            .iter()
            .map(|k| n(k))
            .sum::<anyhow::Result<u64>>()?,
    })
}

impl Summary {
    fn of(runs: &[Run]) -> Self {
        fn median<T: Copy + PartialOrd>(mut xs: Vec<T>) -> T {
            xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            xs[xs.len() / 2]
        }
        Summary {
            per_second: median(runs.iter().map(|r| r.per_second).collect()),
            p50: median(runs.iter().map(|r| r.p50).collect()),
            p99: median(runs.iter().map(|r| r.p99).collect()),
            errors: runs.iter().map(|r| r.errors).sum(),
        }
    }
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn signed_millis(later: Duration, earlier: Duration) -> String {
    format!(
        "{:+.2} ms",
        (later.as_secs_f64() - earlier.as_secs_f64()) * 1e3
    )
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Measures every scenario with the endpoints there are; (scenario, runs) in
/// the order of `Settings::scenarios`.
fn measure_targets(
    settings: &Settings,
    tools: &Tools,
    script: &Path,
    urls: &dyn Fn(Target) -> String,
) -> anyhow::Result<Vec<(Scenario, Vec<Run>)>> {
    let mut results: Vec<(Scenario, Vec<Run>)> = settings
        .scenarios()
        .into_iter()
        .map(|s| (s, Vec::new()))
        .collect();
    for target in TARGETS {
        eprintln!("running: warm-up, {} ...", target.name());
        wrk(
            tools,
            script,
            &urls(target),
            settings.connections,
            settings.threads,
            settings.warmup,
        )?;
    }
    for round in 1..=settings.rounds {
        for (scenario, runs) in &mut results {
            eprintln!(
                "running: round {round}/{}, {}, {} connections ...",
                settings.rounds,
                scenario.target.name(),
                scenario.connections
            );
            runs.push(wrk(
                tools,
                script,
                &urls(scenario.target),
                scenario.connections,
                scenario.threads,
                settings.duration,
            )?);
        }
    }
    Ok(results)
}

/// The table's lines for one group of endpoints.
fn table_lines(replicas: usize, results: &[(Scenario, Vec<Run>)]) -> Vec<Vec<String>> {
    let summary = |target: Target, connections: u32| {
        results
            .iter()
            .find(|(s, _)| s.target == target && s.connections == connections)
            .map(|(_, runs)| Summary::of(runs))
    };
    let mut lines = Vec::new();
    for (scenario, runs) in results {
        let this = Summary::of(runs);
        let ceiling = summary(Target::Wasmtime, scenario.connections);
        let local = summary(Target::Local, scenario.connections);
        let name = match scenario.target {
            Target::Wasmtime => scenario.target.name().to_string(),
            _ => format!(
                "{}{}",
                scenario.target.name(),
                if replicas == 1 {
                    String::new()
                } else {
                    format!(", {replicas} endpoints")
                }
            ),
        };
        let ratio = match (scenario.target, ceiling) {
            (Target::Wasmtime, _) | (_, None) => String::new(),
            (_, Some(c)) => format!("{:.2}", this.per_second / c.per_second),
        };
        let added = match (scenario.target, local) {
            (Target::Remote, Some(l)) => format!(
                "{} / {}",
                signed_millis(this.p50, l.p50),
                signed_millis(this.p99, l.p99)
            ),
            _ => String::new(),
        };
        lines.push(vec![
            name,
            scenario.connections.to_string(),
            thousands(this.per_second),
            millis(this.p50),
            millis(this.p99),
            ratio,
            added,
            this.errors.to_string(),
        ]);
    }
    lines
}

/// Starts `wasmtime serve` and a cluster in `dir`, measures every scenario for
/// each number of endpoints, and stops them all.
pub fn measure(settings: &Settings, dir: &Path) -> anyhow::Result<Outcome> {
    let tools = Tools::install()?;
    eprintln!("running: build the samples ...");
    let wasm = samples::sample_path("hello");
    let script = dir.join("report.lua");
    std::fs::write(&script, WRK_REPORT).context("write the wrk script")?;
    let wasmtime_version = Command::new(&tools.wasmtime)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let wrk_version = Command::new(&tools.wrk)
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let load_before = load_average();

    eprintln!("running: wasmtime serve ...");
    let (_wasmtime, wasmtime_addr) =
        start_wasmtime_serve(&tools.wasmtime, &wasm, &dir.join("wasmtime-serve.log"))?;
    eprintln!("running: a control plane and two nodes ...");
    let cluster = Cluster::start(dir)?;
    eprintln!("running: idle memory of the nodes ...");
    std::thread::sleep(Duration::from_secs(5));
    let mut node_idle_rss = Vec::new();
    for node in &cluster.nodes {
        let pid = node.pid().context("a node is not running")?;
        let mut readings = Vec::new();
        for i in 0..3 {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            readings.push(rss_bytes(pid)?);
        }
        readings.sort_unstable();
        node_idle_rss.push((node.name().to_string(), readings[1]));
    }
    let local = cluster.node_port_addr(LOCAL_NODE)?;
    let local_reuse = cluster.port_addr(LOCAL_NODE, cluster.reuse_node_port)?;
    let remote = cluster.node_port_addr(REMOTE_NODE)?;
    let urls = |target: Target| match target {
        Target::Wasmtime => format!("http://{wasmtime_addr}/"),
        Target::Local => format!("http://{local}/"),
        Target::LocalReuse => format!("http://{local_reuse}/"),
        Target::Remote => format!("http://{remote}/"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for &replicas in &settings.endpoints {
        eprintln!(
            "running: scale web to {replicas} replicas on {} ...",
            LOCAL_NODE.0
        );
        runtime.block_on(cluster.scale(replicas))?;
        results.push((replicas, measure_targets(settings, &tools, &script, &urls)?));
    }
    drop(cluster);
    Ok(Outcome {
        wasmtime_version,
        wrk_version,
        load_before,
        node_idle_rss,
        results,
    })
}

/// Runs `measure` in a fresh directory under `parent` (kept, with the logs,
/// if it fails) and returns the harness's figures: requests/s and latency of
/// the local and the remote NodePort beside `wasmtime serve`, per number of
/// endpoints.
pub fn run_scenario(settings: &Settings, parent: &Path) -> anyhow::Result<Vec<Figure>> {
    let dir = dirs::fresh(parent, "proxy-")?;
    let outcome = dirs::keep_on_error(measure(settings, dir.path()), dir)?;
    let mut figures = Vec::new();
    for (name, rss) in &outcome.node_idle_rss {
        let mib = *rss as f64 / (1024.0 * 1024.0);
        figures.push(
            Figure::new(
                "footprint: idle RSS of a node agent (skiff node)",
                format!("node {name}, no pods yet"),
                format!("{mib:.1} MiB"),
            )
            .budget(
                format!("{NODE_RSS_BUDGET_MIB:.0} MiB"),
                mib / NODE_RSS_BUDGET_MIB,
            )
            .published_peer("about 70 MB, KubeEdge edge core", Some(*rss as f64 / 70e6)),
        );
    }
    for (replicas, results) in &outcome.results {
        let summary = |target: Target| {
            results
                .iter()
                .find(|(s, _)| s.target == target && s.connections == settings.connections)
                .map(|(_, runs)| Summary::of(runs))
        };
        let Some(ceiling) = summary(Target::Wasmtime) else {
            continue;
        };
        for target in [Target::Local, Target::LocalReuse, Target::Remote] {
            let Some(this) = summary(target) else {
                continue;
            };
            let ratio = this.per_second / ceiling.per_second;
            let mut figure = Figure::new(
                format!(
                    "HTTP through a Service: NodePort, {} endpoint{}{}",
                    if target == Target::Remote {
                        "remote (QUIC)"
                    } else {
                        "local"
                    },
                    if *replicas == 1 { "" } else { "s" },
                    if target == Target::LocalReuse {
                        ", instance reuse"
                    } else {
                        ""
                    }
                ),
                format!(
                    "{replicas} endpoint{}, wrk -c{}",
                    if *replicas == 1 { "" } else { "s" },
                    settings.connections
                ),
                format!(
                    "{} req/s, p50 {}, p99 {}{}",
                    thousands(this.per_second),
                    millis(this.p50),
                    millis(this.p99),
                    if this.errors > 0 {
                        format!(", {} errors", this.errors)
                    } else {
                        String::new()
                    }
                ),
            )
            .measured_peer(
                format!(
                    "{} req/s, p50 {}, p99 {}, wasmtime serve",
                    thousands(ceiling.per_second),
                    millis(ceiling.p50),
                    millis(ceiling.p99)
                ),
                ratio,
            );
            if target != Target::Remote {
                // The budget is a multiple of the peer's requests/s.
                figure = figure.budget(
                    format!(">= {BUDGET_RATIO:.1}x wasmtime serve"),
                    BUDGET_RATIO / ratio,
                );
            }
            figures.push(figure);
        }
    }
    Ok(figures)
}

fn run(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let outcome = measure(settings, dir)?;
    let mut lines = vec![
        [
            "scenario",
            "conns",
            "requests/s",
            "p50",
            "p99",
            "vs wasmtime",
            "remote adds p50 / p99",
            "errors",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut details = Vec::new();
    let mut verdicts = Vec::new();
    for (replicas, results) in &outcome.results {
        let replicas = *replicas;
        lines.extend(table_lines(replicas, results));
        let rps = |target: Target| {
            results
                .iter()
                .find(|(s, _)| s.target == target && s.connections == settings.connections)
                .map(|(_, runs)| Summary::of(runs).per_second)
                .unwrap_or(0.0)
        };
        for (target, what) in [
            (Target::Local, "local NodePort"),
            (Target::LocalReuse, "local NodePort with instance reuse"),
        ] {
            let ratio = rps(target) / rps(Target::Wasmtime);
            verdicts.push(format!(
                "{replicas} endpoint(s): {what} / wasmtime serve = {ratio:.2} at {} connections (budget >= {BUDGET_RATIO:.2}): {}",
                settings.connections,
                if ratio >= BUDGET_RATIO { "met" } else { "NOT met" }
            ));
        }
        for (scenario, runs) in results {
            for (i, r) in runs.iter().enumerate() {
                details.push(vec![
                    format!("{} [{replicas} ep]", scenario.target.name()),
                    scenario.connections.to_string(),
                    (i + 1).to_string(),
                    r.requests.to_string(),
                    thousands(r.per_second),
                    millis(r.p50),
                    millis(r.p99),
                    millis(r.max),
                    r.errors.to_string(),
                ]);
            }
        }
    }

    println!(
        "machine: {} CPUs, load average {} at start, {} at end",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        outcome.load_before,
        load_average()
    );
    println!(
        "tools: {}; {}",
        outcome.wrk_version, outcome.wasmtime_version
    );
    println!(
        "load: wrk, {} connections on {} threads (and 1 connection on 1 thread), {} s a run after {} s of warm-up per target, {} rounds; figures are the median over the rounds",
        settings.connections, settings.threads, settings.duration, settings.warmup, settings.rounds
    );
    println!();
    println!("{}", format_grid(&lines));
    for verdict in verdicts {
        println!("{verdict}");
    }
    println!();
    println!("each run:");
    let header = [
        "scenario", "conns", "round", "requests", "per s", "p50", "p99", "max", "errors",
    ];
    details.insert(0, header.map(String::from).to_vec());
    println!("{}", format_grid(&details));
    Ok(())
}

pub fn main() -> anyhow::Result<()> {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "usage: [PROXY_CONNECTIONS=32] [PROXY_THREADS=2] [PROXY_DURATION=5] [PROXY_WARMUP=2] \
                     [PROXY_ROUNDS=3] [PROXY_ENDPOINTS=1[,10,...]] cargo bench --bench proxy"
                );
                return Ok(());
            }
            other => eprintln!("proxy: ignoring argument {other:?}"),
        }
    }
    let settings = Settings::from_env()?;
    let parent = dirs::parent();
    let dir = dirs::fresh(&parent, "proxy-")?;
    dirs::keep_on_error(run(&settings, dir.path()), dir)
}
