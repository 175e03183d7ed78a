//! Failover: how long after a node dies its pods are Ready on other nodes,
//! with Skiff's default settings (DESIGN.md's budget: 5 s).
//!
//! One run starts a real cluster on loopback: `skiff server` and three
//! `skiff node` processes (n1, n2, n3 on 127.0.0.2-4), and a Deployment of 6
//! `hello` replicas spread over them. A round SIGKILLs the node with the most
//! ready replicas and times, from the kill to the instant a watch shows it:
//! the node marked not ready (Ready Unknown: the control plane's silence
//! detection), the first of its pods marked for deletion (the taint eviction
//! after the pods' default toleration), and all 6 replicas Ready on the live
//! nodes (the figure). The node is then started again from its data
//! directory, and the next round waits until it is Ready and the Deployment
//! is whole again. The figure is the median over the rounds.
//!
//! `cargo bench --bench failover` (3 rounds); `-- --quick` (1 round). The
//! method and the recorded results are in BENCHMARKS.md.

use crate::support::{api_client, dirs, figure};
use skiff_testkit::{cluster, node, objects, processes};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_client::{Connection, Endpoint, Watch};
use bytes::Bytes;
use cluster::Server;
use figure::Figure;
use http::{Method, StatusCode};
use node::NodeProcess;
use objects::is_ready;
use serde_json::{Value, json};
use skiff_api::meta;

/// The nodes and their loopback addresses.
const NODES: [(&str, &str); 3] = [
    ("n1", "127.0.0.2"),
    ("n2", "127.0.0.3"),
    ("n3", "127.0.0.4"),
];
const REPLICAS: usize = 6;
const PODS: &str = "/api/v1/namespaces/default/pods";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
/// DESIGN.md: node lost -> its pods running elsewhere, default settings.
const BUDGET: Duration = Duration::from_secs(5);
/// Kubernetes' defaults for the same path: `node-monitor-grace-period` 40 s,
/// then the 300 s `tolerationSeconds` the DefaultTolerationSeconds admission
/// plugin gives every pod for `node.kubernetes.io/unreachable`.
const KUBERNETES_DEFAULTS: Duration = Duration::from_secs(340);
/// Longest wait for anything the cluster is asked to do.
const DEADLINE: Duration = Duration::from_secs(120);

/// How many rounds.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub rounds: usize,
}

/// One round, each time from the kill.
#[derive(Debug, Clone)]
pub struct Round {
    pub killed: String,
    /// Ready replicas on the killed node when it was killed.
    pub pods_lost: usize,
    pub not_ready: Duration,
    /// The first of its pods marked for deletion or deleted (`None`: the
    /// watch showed none before all replicas were Ready elsewhere).
    pub evicted: Option<Duration>,
    pub ready_elsewhere: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rounds: Vec<Round>,
}

/// The cluster of one run.
struct Cluster {
    server: Server,
    nodes: Vec<NodeProcess>,
    dir: PathBuf,
}

/// A web pod as the watch last showed it.
#[derive(Debug, Clone)]
struct PodView {
    node: String,
    ready: bool,
    deleting: bool,
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let (server, nodes) = processes::start(dir, &["hello"], &NODES);
        Cluster {
            server,
            nodes,
            dir: dir.to_path_buf(),
        }
    }

    fn api(&self) -> anyhow::Result<Endpoint> {
        Endpoint::from_kubeconfig(&self.server.kubeconfig(), self.server.addr())
    }

    /// Starts node `name` again from its data directory (it keeps its identity).
    fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let (_, address) = NODES
            .iter()
            .find(|(n, _)| *n == name)
            .context("no such node")?;
        self.nodes.retain(|n| n.name() != name);
        self.nodes.push(NodeProcess::start(
            self.server.quic_addr(),
            name,
            &self.dir.join(name),
            None,
            &["--address", address],
        ));
        Ok(())
    }

    fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .context("no such node process")?;
        node.kill();
        Ok(())
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": "hello:v1"}]
                }
            }
        }
    })
}

fn view(pod: &Value) -> PodView {
    PodView {
        node: pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ready: is_ready(pod),
        deleting: pod.pointer("/metadata/deletionTimestamp").is_some(),
    }
}

/// The web pods now, and the list's resourceVersion (to watch from).
async fn web_pods(conn: &mut Connection) -> anyhow::Result<(HashMap<String, PodView>, String)> {
    let list = conn
        .get_json(&format!("{PODS}?labelSelector=app%3Dweb"))
        .await?;
    let revision = meta::resource_version(&list)
        .context("the pod list has no resourceVersion")?
        .to_string();
    let pods = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p.pointer("/metadata/name")?.as_str()?.to_string(), view(p))))
        .collect();
    Ok((pods, revision))
}

/// Ready, not deleting replicas on nodes other than `except`.
fn ready_elsewhere(pods: &HashMap<String, PodView>, except: &str) -> usize {
    pods.values()
        .filter(|p| p.ready && !p.deleting && p.node != except)
        .count()
}

/// Waits until all replicas are Ready and none is being deleted, with every
/// node Ready: the state a round starts from.
async fn wait_whole(api: &Endpoint) -> anyhow::Result<HashMap<String, PodView>> {
    let mut conn = Connection::open(api).await?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (pods, _) = web_pods(&mut conn).await?;
        let nodes = conn.get_json("/api/v1/nodes").await?;
        let nodes_ready = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| is_ready(n))
            .count();
        if pods.len() == REPLICAS
            && ready_elsewhere(&pods, "") == REPLICAS
            && nodes_ready == NODES.len()
        {
            return Ok(pods);
        }
        if Instant::now() > deadline {
            bail!(
                "the Deployment was not whole within {DEADLINE:?}: {} pods, {} ready, {nodes_ready} nodes ready",
                pods.len(),
                ready_elsewhere(&pods, "")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One round: kill the node with the most ready replicas and time the way back.
async fn round(cluster: &mut Cluster) -> anyhow::Result<Round> {
    let api = &cluster.api()?;
    let before = wait_whole(api).await?;
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for pod in before.values() {
        *per_node.entry(pod.node.as_str()).or_default() += 1;
    }
    let (victim, pods_lost) = per_node
        .iter()
        .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
        .map(|(name, count)| (name.to_string(), *count))
        .context("no web pods")?;

    let mut conn = Connection::open(api).await?;
    let (mut pods, revision) = web_pods(&mut conn).await?;
    let mut pod_watch = Watch::start(
        api,
        &format!("{PODS}?watch=true&labelSelector=app%3Dweb&resourceVersion={revision}"),
    )
    .await?;
    let node = conn.get_json(&format!("/api/v1/nodes/{victim}")).await?;
    let node_revision = meta::resource_version(&node)
        .context("the Node has no resourceVersion")?
        .to_string();
    let mut node_watch = Watch::start(
        api,
        &format!("/api/v1/nodes?watch=true&resourceVersion={node_revision}"),
    )
    .await?;

    eprintln!("running: kill {victim} ({pods_lost} of {REPLICAS} replicas on it) ...");
    let killed = Instant::now();
    cluster.kill(&victim)?;
    let (mut not_ready, mut evicted, mut ready) = (None, None, None);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while ready.is_none() || not_ready.is_none() {
        let event = tokio::select! {
            e = pod_watch.next_event() => e?.map(|e| (true, e)),
            e = node_watch.next_event(), if not_ready.is_none() => e?.map(|e| (false, e)),
            () = tokio::time::sleep_until(deadline) => bail!(
                "{victim}'s pods were not Ready elsewhere within {DEADLINE:?} of the kill"
            ),
        };
        let Some((is_pod, (arrived, event))) = event else {
            bail!("a watch ended during the round");
        };
        let object = &event["object"];
        if !is_pod {
            let name = object.pointer("/metadata/name").and_then(Value::as_str);
            if name == Some(victim.as_str()) && !is_ready(object) {
                not_ready = Some(arrived.saturating_duration_since(killed));
            }
            continue;
        }
        let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let pod = view(object);
        // Evicted: marked for deletion, or (with no grace period) deleted.
        if evicted.is_none() && pod.node == victim && (pod.deleting || event["type"] == "DELETED") {
            evicted = Some(arrived.saturating_duration_since(killed));
        }
        if event["type"] == "DELETED" {
            pods.remove(name);
        } else {
            pods.insert(name.to_string(), pod);
        }
        if ready.is_none() && ready_elsewhere(&pods, &victim) == REPLICAS {
            ready = Some(arrived.saturating_duration_since(killed));
        }
    }
    let ready_elsewhere = ready.context("no ready time")?;
    eprintln!(
        "running: {victim}'s pods Ready elsewhere after {:.2} s; starting {victim} again ...",
        ready_elsewhere.as_secs_f64()
    );
    cluster.restart(&victim)?;
    Ok(Round {
        killed: victim,
        pods_lost,
        not_ready: not_ready.context("no not-ready time")?,
        evicted,
        ready_elsewhere,
    })
}

/// Runs `plan` on a fresh cluster under `dir`.
pub fn measure(plan: Plan, dir: &Path) -> anyhow::Result<Outcome> {
    eprintln!("running: a control plane and three nodes ...");
    let mut cluster = Cluster::start(dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rounds = runtime.block_on(async {
        let mut conn = Connection::open(&cluster.api()?).await?;
        conn.request(
            Method::POST,
            DEPLOYMENTS,
            "application/json",
            Bytes::from(deployment().to_string()),
        )
        .await?
        .expect(StatusCode::CREATED, "create deployment web")?;
        let mut rounds = Vec::new();
        for i in 0..plan.rounds {
            eprintln!("running: failover round {}/{} ...", i + 1, plan.rounds);
            rounds.push(round(&mut cluster).await?);
        }
        anyhow::Ok(rounds)
    })?;
    drop(cluster);
    Ok(Outcome { rounds })
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// The harness's figure: seconds from the kill to all replicas Ready elsewhere.
pub fn run_scenario(plan: Plan, parent: &Path) -> anyhow::Result<Vec<Figure>> {
    let dir = dirs::fresh(parent, "failover-")?;
    let outcome = measure(plan, dir.path())?;
    dir.close().ok();
    let ready = median(outcome.rounds.iter().map(|r| r.ready_elsewhere).collect());
    let not_ready = median(outcome.rounds.iter().map(|r| r.not_ready).collect());
    let evicted: Vec<Duration> = outcome.rounds.iter().filter_map(|r| r.evicted).collect();
    let evicted = if evicted.is_empty() {
        "not seen".to_string()
    } else {
        seconds(median(evicted))
    };
    let all: Vec<String> = outcome
        .rounds
        .iter()
        .map(|r| format!("{:.1}", r.ready_elsewhere.as_secs_f64()))
        .collect();
    Ok(vec![
        Figure::new(
            "failover: node killed -> its pods Ready elsewhere",
            format!(
                "3 nodes, {REPLICAS} replicas, median of {} round(s)",
                outcome.rounds.len()
            ),
            format!(
                "{} (rounds {} s; not ready at {}, evicted at {})",
                seconds(ready),
                all.join(", "),
                seconds(not_ready),
                evicted
            ),
        )
        .budget(
            format!("{} s", BUDGET.as_secs()),
            ready.as_secs_f64() / BUDGET.as_secs_f64(),
        )
        .published_peer(
            "about 340 s, Kubernetes defaults (40 s grace + 300 s toleration)",
            Some(ready.as_secs_f64() / KUBERNETES_DEFAULTS.as_secs_f64()),
        ),
    ])
}

pub fn main() -> anyhow::Result<()> {
    let mut plan = Plan { rounds: 3 };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => plan.rounds = 1,
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--help" | "-h" => {
                println!("usage: cargo bench --bench failover [-- --quick]");
                return Ok(());
            }
            other => eprintln!("failover: ignoring argument {other:?}"),
        }
    }
    let dir = dirs::fresh(&dirs::parent(), "failover-")?;
    let outcome = dirs::keep_on_error(measure(plan, dir.path()), dir)?;
    println!("round  killed  pods on it  not ready  first evicted  all Ready elsewhere");
    for (i, r) in outcome.rounds.iter().enumerate() {
        println!(
            "{:<5}  {:<6}  {:<10}  {:<9}  {:<13}  {}",
            i + 1,
            r.killed,
            r.pods_lost,
            seconds(r.not_ready),
            r.evicted.map_or_else(|| "not seen".into(), seconds),
            seconds(r.ready_elsewhere)
        );
    }
    Ok(())
}
