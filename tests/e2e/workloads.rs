//! Workloads end to end on a real cluster (a control plane and three `skiff
//! node` processes) driven by the real kubectl: the scheduler spreads a
//! Deployment's pods, a rolling update keeps enough pods ready, `kubectl
//! rollout` status/history/undo read and act as on Kubernetes, deleted pods are
//! replaced, and deleting the Deployment takes its ReplicaSets and pods along.
//! Scheduling constraints (resources, taints, selectors, anti-affinity) place
//! pods where they must, and a pod that fits nowhere says why and waits.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cluster::{Kubectl, Server, Skiff, http_get, wait_until};
use node::NodeProcess;
use objects::{
    apply, condition, get_json, is_serving, name_of, node_of, push_samples, token, wait_node_ready,
};
use serde_json::Value;

/// A control plane and `n` nodes named n1, n2, ...
struct Cluster {
    server: Server,
    kubectl: Kubectl,
    skiff: Skiff,
    token: String,
    nodes: Vec<NodeProcess>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(nodes: usize, samples: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("cp"));
        let kubectl = Kubectl::new(&server.kubeconfig());
        let skiff = Skiff::new(&server.kubeconfig());
        push_samples(&skiff, samples);
        let token = token(&skiff);
        let mut cluster = Cluster {
            server,
            kubectl,
            skiff,
            token,
            nodes: Vec::new(),
            dir,
        };
        for i in 1..=nodes {
            cluster.add_node(&format!("n{i}"), &[]);
        }
        cluster
    }

    /// Starts node `name` on its own loopback address (127.0.0.2, .3, ...), so
    /// every node can open the same NodePorts.
    fn add_node(&mut self, name: &str, extra: &[&str]) {
        let address = node_address(self.nodes.len());
        let args = [&["--address", address.as_str()][..], extra].concat();
        let node = NodeProcess::start(
            self.server.quic_addr(),
            name,
            &self.dir.path().join(name),
            Some(&self.token),
            &args,
        );
        wait_node_ready(&self.server, name);
        self.nodes.push(node);
    }

    fn apply(&self, name: &str, yaml: &str) {
        apply(&self.kubectl, self.dir.path(), name, yaml);
    }

    /// The pods with label `app=APP`, from the API.
    fn pods(&self, app: &str) -> Vec<Value> {
        get_json(
            &self.server,
            &format!("/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"),
        )
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
    }

    fn events(&self, name: &str) -> Vec<Value> {
        get_json(&self.server, "/api/v1/namespaces/default/events")
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .collect()
    }
}

/// The address of the `index`th node a cluster starts.
fn node_address(index: usize) -> String {
    format!("127.0.0.{}", index + 2)
}

/// A steady stream of requests to a NodePort until stopped: how many were
/// answered 200, and the failures (status or error) with when they happened.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl Traffic {
    fn start(addr: std::net::SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let (mut ok, mut failed) = (0, Vec::new());
            while !s.load(Ordering::Relaxed) {
                match http_get(addr, "/") {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!(
                        "{:.2}s: {other:?}",
                        started.elapsed().as_secs_f64()
                    )),
                }
            }
            (ok, failed)
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A Deployment `web` of `replicas` pods running `image` with a readiness probe.
fn deployment(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: {image}
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef: {{fieldPath: metadata.name}}
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"
    )
}

/// Waits until exactly `n` pods of app=web are ready and no other web pod exists.
fn wait_ready_pods(cluster: &Cluster, n: usize) -> Vec<Value> {
    wait_until(&format!("{n} ready web pods and no others"), || {
        let pods = cluster.pods("web");
        (pods.len() == n && pods.iter().all(is_serving)).then_some(pods)
    })
}

/// What a pod answers through the API's pod proxy.
fn answer(cluster: &Cluster, pod: &str) -> String {
    match cluster
        .server
        .api_get(&format!("/api/v1/namespaces/default/pods/{pod}/proxy/"))
    {
        Ok((200, body)) => body,
        other => panic!("pod {pod} did not answer: {other:?}"),
    }
}

/// Samples the number of ready web pods until stopped; returns the lowest seen
/// once a first full set was seen.
struct ReadyFloor {
    stop: Arc<AtomicBool>,
    low: Arc<AtomicUsize>,
    /// The pods (name, ready) when the lowest count was seen.
    at_low: Arc<std::sync::Mutex<Vec<(String, bool)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadyFloor {
    fn watch(server: &Server) -> ReadyFloor {
        let stop = Arc::new(AtomicBool::new(false));
        let low = Arc::new(AtomicUsize::new(usize::MAX));
        let api = server.api();
        let at_low = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, l, a) = (stop.clone(), low.clone(), at_low.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok((200, body)) =
                    api.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
                    && let Ok(list) = serde_json::from_str::<Value>(&body)
                {
                    let ready = list["items"]
                        .as_array()
                        .map(|items| items.iter().filter(|p| is_serving(p)).count())
                        .unwrap_or(0);
                    if ready < l.fetch_min(ready, Ordering::Relaxed)
                        && let Ok(mut seen) = a.lock()
                    {
                        *seen = list["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| (name_of(p), is_serving(p)))
                            .collect();
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        ReadyFloor {
            stop,
            low,
            at_low,
            thread: Some(thread),
        }
    }

    /// The lowest count, and the pods as they were then.
    fn lowest(mut self) -> (usize, Vec<(String, bool)>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let pods = self.at_low.lock().map(|p| p.clone()).unwrap_or_default();
        (self.low.load(Ordering::Relaxed), pods)
    }
}

#[test]
fn a_deployment_spreads_rolls_out_undoes_heals_and_goes() {
    let cluster = Cluster::start(3, &["hello", "echo"]);
    let kubectl = &cluster.kubectl;
    cluster.apply("web", &deployment(6, "hello:v1"));
    let status = kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );

    // Six pods, two per node, each answering with its own name.
    let pods = wait_ready_pods(&cluster, 6);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods {
        *per_node.entry(node_of(pod)).or_insert(0) += 1;
        let name = name_of(pod);
        assert_eq!(answer(&cluster, &name), format!("Hello from {name}!\n"));
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("n1".into(), 2), ("n2".into(), 2), ("n3".into(), 2)]),
        "replicas spread over the nodes"
    );
    let scheduled = cluster.events(&name_of(&pods[0]));
    assert!(
        scheduled.iter().any(|e| e["reason"] == "Scheduled"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("Successfully assigned default/"))),
        "{scheduled:?}"
    );

    // A NodePort Service in front of the pods, reached through n1's node proxy.
    cluster.apply(
        "web-svc",
        "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
",
    );
    let node_port = wait_until("the Service has a NodePort", || {
        get_json(&cluster.server, "/api/v1/namespaces/default/services/web")?
            .pointer("/spec/ports/0/nodePort")?
            .as_u64()
    });
    let entry: std::net::SocketAddr = format!("{}:{node_port}", node_address(0))
        .parse()
        .expect("NodePort address");
    wait_until("the NodePort answers", || {
        matches!(http_get(entry, "/"), Ok((200, _))).then_some(())
    });

    // A rolling update to another component under a steady stream of requests:
    // none fails, and never fewer than 6 - maxUnavailable pods are ready.
    let floor = ReadyFloor::watch(&cluster.server);
    let traffic = Traffic::start(entry);
    kubectl.ok(&["set", "image", "deployment/web", "main=echo:v1"]);
    let status = kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    wait_until("the Service answers as echo", || {
        http_get(entry, "/")
            .ok()
            .filter(|(code, body)| *code == 200 && body.contains("\"method\":\"GET\""))
    });
    let (answered, failed) = traffic.finish();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rollout: {failed:?}",
        failed.len(),
        answered + failed.len()
    );
    assert!(
        answered >= 20,
        "only {answered} requests during the rollout"
    );
    println!("rolling update under traffic: {answered} requests, none failed");
    let pods = wait_ready_pods(&cluster, 6);
    for pod in &pods {
        let body = answer(&cluster, &name_of(pod));
        assert!(body.contains("\"method\":\"GET\""), "echo answers: {body}");
    }
    let (lowest, then) = floor.lowest();
    assert!(
        lowest >= 5,
        "ready pods fell to {lowest} during the rollout: {then:?}"
    );
    let history = kubectl.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<String> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(revisions, vec!["1", "2"], "{history}");
    let events: Vec<String> = cluster
        .events("web")
        .iter()
        .filter(|e| e["reason"] == "ScalingReplicaSet")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    assert!(
        events
            .iter()
            .any(|m| m.starts_with("Scaled down replica set web-")),
        "{events:?}"
    );

    // Undo: back to hello; the first ReplicaSet becomes revision 3.
    let floor = ReadyFloor::watch(&cluster.server);
    let undo = kubectl.ok(&["rollout", "undo", "deployment/web"]);
    assert!(undo.contains("deployment.apps/web rolled back"), "{undo}");
    kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    let pods = wait_ready_pods(&cluster, 6);
    let name = name_of(&pods[0]);
    assert_eq!(answer(&cluster, &name), format!("Hello from {name}!\n"));
    let (lowest, then) = floor.lowest();
    assert!(
        lowest >= 5,
        "ready pods fell to {lowest} during the undo: {then:?}"
    );
    let history = kubectl.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, vec!["2", "3"], "{history}");

    // Scale down, then a deleted pod is replaced.
    kubectl.ok(&["scale", "deployment/web", "--replicas=3"]);
    let pods = wait_ready_pods(&cluster, 3);
    let victim = name_of(&pods[0]);
    kubectl.ok(&["delete", "pod", &victim, "--wait=false"]);
    let pods = wait_until("the deleted pod is replaced", || {
        let pods = cluster.pods("web");
        let ready: Vec<Value> = pods.iter().filter(|p| is_serving(p)).cloned().collect();
        (ready.len() == 3 && ready.iter().all(|p| name_of(p) != victim)).then_some(ready)
    });
    assert_eq!(pods.len(), 3);
    // The Deployment's status follows its ReplicaSet's, which follows the pods.
    wait_until("the Deployment reports 3 available replicas", || {
        let d = get_json(
            &cluster.server,
            "/apis/apps/v1/namespaces/default/deployments/web",
        )?;
        (d["status"]["availableReplicas"] == 3
            && condition(&d, "Available").as_deref() == Some("True"))
        .then_some(())
    });

    // Deleting the Deployment takes its ReplicaSets and pods.
    kubectl.ok(&["delete", "deployment", "web"]);
    wait_until("the ReplicaSets and pods are gone", || {
        let sets = get_json(
            &cluster.server,
            "/apis/apps/v1/namespaces/default/replicasets",
        )?;
        (sets["items"].as_array().is_some_and(Vec::is_empty) && cluster.pods("web").is_empty())
            .then_some(())
    });
}

#[test]
fn pods_go_where_their_constraints_allow_and_wait_when_nothing_fits() {
    let mut cluster = Cluster::start(0, &["hello"]);
    cluster.add_node("small", &["--memory", "256Mi", "--labels", "disk=hdd"]);
    cluster.add_node("tainted", &["--memory", "4Gi", "--labels", "disk=ssd"]);
    let kubectl = &cluster.kubectl;
    kubectl.ok(&["taint", "nodes", "tainted", "dedicated=db:NoSchedule"]);

    // Too big for "small", and "tainted" is not tolerated: Pending, and why.
    let big = "apiVersion: v1
kind: Pod
metadata:
  name: big
  labels: {app: big}
spec:
  containers:
  - name: main
    image: hello:v1
    resources:
      requests: {memory: 1Gi}
";
    cluster.apply("big", big);
    let event = wait_until("a FailedScheduling event for big", || {
        cluster
            .events("big")
            .into_iter()
            .find(|e| e["reason"] == "FailedScheduling")
    });
    assert_eq!(
        event["message"],
        "0/2 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {dedicated: db}."
    );
    let described = kubectl.ok(&["describe", "pod", "big"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    let pod = get_json(&cluster.server, "/api/v1/namespaces/default/pods/big").expect("pod");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(condition(&pod, "PodScheduled").as_deref(), Some("False"));

    // A node with room joins: the waiting pod runs there.
    cluster.add_node("roomy", &["--memory", "8Gi", "--labels", "disk=ssd"]);
    let pod = wait_until("big runs on the new node", || {
        let pod = get_json(&cluster.server, "/api/v1/namespaces/default/pods/big")?;
        is_serving(&pod).then_some(pod)
    });
    assert_eq!(node_of(&pod), "roomy");

    // A toleration and a node selector lead to the tainted node.
    let db = "apiVersion: v1
kind: Pod
metadata:
  name: db
  labels: {app: db}
spec:
  nodeSelector: {disk: ssd}
  tolerations:
  - {key: dedicated, operator: Equal, value: db, effect: NoSchedule}
  affinity:
    nodeAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [tainted]}]
  containers:
  - name: main
    image: hello:v1
";
    cluster.apply("db", db);
    let pod = wait_until("db is scheduled", || {
        let pod = get_json(&cluster.server, "/api/v1/namespaces/default/pods/db")?;
        (!node_of(&pod).is_empty()).then_some(pod)
    });
    assert_eq!(node_of(&pod), "tainted");

    // Anti-affinity: one per node among the nodes a pod may use, then Pending.
    let spread = |i: usize| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: solo-{i}
  labels: {{app: solo}}
spec:
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {{matchLabels: {{app: solo}}}}
        topologyKey: kubernetes.io/hostname
  containers:
  - name: main
    image: hello:v1
"
        )
    };
    for i in 0..3 {
        cluster.apply(&format!("solo-{i}"), &spread(i));
    }
    let placed = wait_until("two solo pods placed, one waiting", || {
        let pods = cluster.pods("solo");
        let nodes: Vec<String> = pods.iter().map(node_of).filter(|n| !n.is_empty()).collect();
        let waiting = cluster
            .events(&format!("solo-{}", 2))
            .iter()
            .any(|e| e["reason"] == "FailedScheduling")
            || ["solo-0", "solo-1"].iter().any(|n| {
                cluster
                    .events(n)
                    .iter()
                    .any(|e| e["reason"] == "FailedScheduling")
            });
        (nodes.len() == 2 && waiting).then_some(nodes)
    });
    let mut placed = placed;
    placed.sort();
    assert_eq!(
        placed,
        vec!["roomy", "small"],
        "the untolerated taint keeps solo pods off"
    );
}

#[test]
fn a_lost_nodes_pods_are_replaced_elsewhere_and_it_comes_back_clean() {
    let mut cluster = Cluster::start(3, &["hello"]);
    cluster.apply("web", &deployment(6, "hello:v1"));
    let pods = wait_ready_pods(&cluster, 6);
    let lost: Vec<String> = pods
        .iter()
        .filter(|p| node_of(p) == "n3")
        .map(name_of)
        .collect();
    assert_eq!(lost.len(), 2, "two replicas on each node");

    // Kill n3: it goes NotReady with the unreachable taints, its pods are
    // evicted after their default toleration and replaced on n1 and n2.
    let started = std::time::Instant::now();
    let n3 = cluster
        .nodes
        .iter_mut()
        .find(|n| n.name() == "n3")
        .expect("node n3");
    let data_dir = n3.data_dir().to_path_buf();
    n3.kill();
    let pods = wait_until("six ready web pods on n1 and n2", || {
        let ready: Vec<Value> = cluster.pods("web").into_iter().filter(is_serving).collect();
        (ready.len() == 6 && ready.iter().all(|p| node_of(p) != "n3")).then_some(ready)
    });
    println!(
        "failover: node n3 killed -> its pods ready elsewhere in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(pods.iter().all(|p| !lost.contains(&name_of(p))));
    let node = get_json(&cluster.server, "/api/v1/nodes/n3").expect("node n3");
    assert_eq!(condition(&node, "Ready").as_deref(), Some("Unknown"));
    let taints: Vec<(String, String)> = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or("").to_string(),
                t["effect"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(
            taints.contains(&("node.kubernetes.io/unreachable".into(), effect.into())),
            "{taints:?}"
        );
    }
    for name in &lost {
        let events = cluster.events(name);
        assert!(
            events.iter().any(|e| e["reason"] == "TaintManagerEviction"),
            "no eviction event for {name}: {events:?}"
        );
        let pod = get_json(
            &cluster.server,
            &format!("/api/v1/namespaces/default/pods/{name}"),
        )
        .expect("an evicted pod waits for its node, as on Kubernetes");
        assert!(!pod["metadata"]["deletionTimestamp"].is_null());
        assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));
    }

    // n3 comes back with its data dir: Ready, untainted, and the evicted pods
    // are stopped there and gone.
    let address = node_address(2);
    let node = NodeProcess::start(
        cluster.server.quic_addr(),
        "n3",
        &data_dir,
        None,
        &["--address", address.as_str()],
    );
    cluster.nodes.push(node);
    wait_until(
        "n3 is Ready without taints and its old pods are gone",
        || {
            let node = get_json(&cluster.server, "/api/v1/nodes/n3")?;
            let clean = condition(&node, "Ready").as_deref() == Some("True")
                && node["spec"]["taints"].as_array().is_none_or(Vec::is_empty);
            let names: Vec<String> = cluster.pods("web").iter().map(name_of).collect();
            (clean && names.len() == 6 && !names.iter().any(|n| lost.contains(n))).then_some(())
        },
    );
    wait_ready_pods(&cluster, 6);
}

/// The Deployment's pod template image, from the API.
fn image_of_deployment(cluster: &Cluster) -> String {
    get_json(
        &cluster.server,
        "/apis/apps/v1/namespaces/default/deployments/web",
    )
    .and_then(|d| {
        d.pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
    .unwrap_or_default()
}

#[test]
fn skiff_scale_and_rollout_drive_a_deployment() {
    let cluster = Cluster::start(1, &["hello", "echo"]);
    let skiff = &cluster.skiff;
    cluster.apply("web", &deployment(2, "hello:v1"));
    let status = skiff.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    assert_eq!(
        status.stdout.lines().last(),
        Some("deployment \"web\" successfully rolled out"),
        "{}",
        status.stdout
    );

    let out = skiff.ok(&["scale", "deployment/web", "--replicas=3"]);
    assert_eq!(out.stdout.trim(), "deployment.apps/web scaled");
    wait_ready_pods(&cluster, 3);
    let err = skiff.fails(&[
        "scale",
        "deploy",
        "web",
        "--replicas=1",
        "--current-replicas=5",
    ]);
    assert!(err.contains("expected replicas to be 5, was 3"), "{err}");

    // Paused: a template change waits; undo is refused; resume rolls it out.
    let out = skiff.ok(&["rollout", "pause", "deployment/web"]);
    assert_eq!(out.stdout.trim(), "deployment.apps/web paused");
    cluster
        .kubectl
        .ok(&["set", "image", "deployment/web", "main=echo:v1"]);
    let paused = wait_until("the paused Deployment reports DeploymentPaused", || {
        let d = get_json(
            &cluster.server,
            "/apis/apps/v1/namespaces/default/deployments/web",
        )?;
        // The status must describe the new template, not the one before `set image`.
        let observed = d["status"]["observedGeneration"] == d["metadata"]["generation"];
        let paused = d["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused");
        (observed && paused).then_some(d)
    });
    assert_eq!(
        paused["status"]["updatedReplicas"], 0,
        "nothing rolled while paused"
    );
    let err = skiff.fails(&["rollout", "undo", "deployment/web"]);
    assert!(
        err.contains("you cannot rollback a paused deployment"),
        "{err}"
    );
    let out = skiff.ok(&["rollout", "resume", "deployment/web"]);
    assert_eq!(out.stdout.trim(), "deployment.apps/web resumed");
    skiff.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    let pods = wait_ready_pods(&cluster, 3);
    assert!(answer(&cluster, &name_of(&pods[0])).contains("\"method\":\"GET\""));

    let history = skiff.ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        history.lines(),
        [
            "deployment.apps/web",
            "REVISION CHANGE-CAUSE",
            "1 <none>",
            "2 <none>",
            ""
        ]
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.to_string())
        .collect::<Vec<_>>(),
        "{}",
        history.stdout
    );
    let one = skiff.ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(one.stdout.contains("image: hello:v1"), "{}", one.stdout);

    // Undo to revision 1: hello again, as revision 3.
    let out = skiff.ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]);
    assert_eq!(out.stdout.trim(), "deployment.apps/web rolled back");
    assert_eq!(image_of_deployment(&cluster), "hello:v1");
    skiff.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    let pods = wait_ready_pods(&cluster, 3);
    let name = name_of(&pods[0]);
    assert_eq!(answer(&cluster, &name), format!("Hello from {name}!\n"));
    let out = skiff.ok(&["rollout", "undo", "deployment/web", "--to-revision=3"]);
    assert_eq!(
        out.stdout.trim(),
        "deployment.apps/web skipped rollback (current template already matches revision 3)"
    );

    // Restart: every pod replaced, the template stamped.
    let before: Vec<String> = pods.iter().map(name_of).collect();
    let out = skiff.ok(&["rollout", "restart", "deployment/web"]);
    assert_eq!(out.stdout.trim(), "deployment.apps/web restarted");
    skiff.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    let after = wait_until("three ready pods, all new", || {
        let pods = cluster.pods("web");
        (pods.len() == 3
            && pods.iter().all(is_serving)
            && pods.iter().all(|p| !before.contains(&name_of(p))))
        .then_some(pods)
    });
    assert!(
        after[0]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{:?}",
        after[0]["metadata"]
    );
}

#[test]
fn a_stuck_rollout_misses_its_deadline_and_kubectl_restart_rolls() {
    let cluster = Cluster::start(1, &["hello", "crasher"]);
    let kubectl = &cluster.kubectl;
    // A pod that traps on every request never passes its readiness probe: past
    // progressDeadlineSeconds the Deployment says so, and kubectl stops waiting.
    cluster.apply(
        "stuck",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector:
    matchLabels: {app: stuck}
  template:
    metadata:
      labels: {app: stuck}
    spec:
      containers:
      - name: main
        image: crasher:v1
        env: [{name: CRASH_AT_START, value: \"1\"}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
",
    );
    wait_until("Progressing=False with ProgressDeadlineExceeded", || {
        let d = get_json(
            &cluster.server,
            "/apis/apps/v1/namespaces/default/deployments/stuck",
        )?;
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "Progressing"
                    && c["status"] == "False"
                    && c["reason"] == "ProgressDeadlineExceeded"
            })
            .then_some(())
    });
    let err = kubectl.fails(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    assert!(
        err.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{err}"
    );

    // kubectl rollout restart replaces every pod of a healthy Deployment.
    cluster.apply("web", &deployment(2, "hello:v1"));
    kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let before: Vec<String> = wait_ready_pods(&cluster, 2).iter().map(name_of).collect();
    let out = kubectl.ok(&["rollout", "restart", "deployment/web"]);
    assert!(out.contains("deployment.apps/web restarted"), "{out}");
    kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    wait_until("two ready web pods, both new", || {
        let pods = cluster.pods("web");
        (pods.len() == 2
            && pods.iter().all(is_serving)
            && pods.iter().all(|p| !before.contains(&name_of(p))))
        .then_some(())
    });
}
