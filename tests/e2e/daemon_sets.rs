//! DaemonSets, garbage collection and namespace deletion end to end, on a real
//! control plane with `skiff node` processes, driven by the real kubectl.
//!
//! A DaemonSet runs one pod per node its node selector and tolerations allow,
//! follows nodes joining, being tainted and being deleted (the pod garbage
//! collector takes a deleted node's pod), and rolls to a new template with
//! `kubectl set image` (RollingUpdate) or only as pods are deleted (OnDelete).
//! Deleting with `--cascade=orphan` leaves dependents without their owner,
//! `--cascade=foreground` removes dependents before the owner, and deleting a
//! namespace removes everything in it before the namespace itself goes.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cluster::{Kubectl, Server, Skiff, wait_until};
use node::NodeProcess;
use objects::{
    apply, get_json, is_serving, name_of, node_of, push_samples, token, wait_node_ready,
};
use serde_json::Value;

const HASH_LABEL: &str = "controller-revision-hash";

/// A control plane and the nodes added to it.
struct Cluster {
    server: Server,
    kubectl: Kubectl,
    token: String,
    nodes: Vec<NodeProcess>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(samples: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("cp"));
        let kubectl = Kubectl::new(&server.kubeconfig());
        let skiff = Skiff::new(&server.kubeconfig());
        push_samples(&skiff, samples);
        let token = token(&skiff);
        Cluster {
            server,
            kubectl,
            token,
            nodes: Vec::new(),
            dir,
        }
    }

    fn add_node(&mut self, name: &str, extra: &[&str]) {
        let node = NodeProcess::start(
            self.server.quic_addr(),
            name,
            &self.dir.path().join(name),
            Some(&self.token),
            extra,
        );
        wait_node_ready(&self.server, name);
        self.nodes.push(node);
    }

    fn kill_node(&mut self, name: &str) {
        self.nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .kill();
    }

    fn apply(&self, name: &str, yaml: &str) {
        apply(&self.kubectl, self.dir.path(), name, yaml);
    }

    fn get(&self, path: &str) -> Option<Value> {
        get_json(&self.server, path)
    }

    /// An object, or `None` once the API says it is not found (a failed
    /// request is retried, so it is never taken for "gone").
    fn lookup(&self, path: &str) -> Option<Value> {
        wait_until(&format!("GET {path} answers 200 or 404"), || {
            match self.server.api_get(path) {
                Ok((200, body)) => serde_json::from_str(&body).ok().map(Some),
                Ok((404, _)) => Some(None),
                _ => None,
            }
        })
    }

    fn list(&self, path: &str) -> Vec<Value> {
        self.get(path)
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The pods of `namespace` with label `app=APP`.
    fn pods(&self, namespace: &str, app: &str) -> Vec<Value> {
        self.list(&format!(
            "/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}"
        ))
    }

    fn daemon_set(&self, name: &str) -> Option<Value> {
        self.get(&format!(
            "/apis/apps/v1/namespaces/default/daemonsets/{name}"
        ))
    }

    fn events(&self, name: &str) -> Vec<Value> {
        self.list("/api/v1/namespaces/default/events")
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .collect()
    }
}

fn hash_of(pod: &Value) -> String {
    pod["metadata"]["labels"][HASH_LABEL]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A DaemonSet `agent` for nodes labelled `agents=yes`, running `image` with
/// a readiness probe.
fn daemon_set(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {{app: agent}}
  template:
    metadata:
      labels: {{app: agent}}
    spec:
      nodeSelector: {{agents: \"yes\"}}
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

/// Waits until each of `nodes` runs exactly one ready agent pod and no other
/// agent pod exists; returns them by node.
fn wait_agents(cluster: &Cluster, nodes: &[&str]) -> BTreeMap<String, Value> {
    wait_until(
        &format!("one ready agent pod on each of {nodes:?} and no others"),
        || {
            let pods = cluster.pods("default", "agent");
            let by_node: BTreeMap<String, Value> =
                pods.iter().map(|p| (node_of(p), p.clone())).collect();
            let placed: Vec<&str> = by_node.keys().map(String::as_str).collect();
            (pods.len() == nodes.len() && placed == nodes && pods.iter().all(is_serving))
                .then_some(by_node)
        },
    )
}

/// Waits until the DaemonSet's status, once it has seen its latest spec, has
/// these counts: desired, current, ready, up-to-date, available, misscheduled.
fn wait_status(cluster: &Cluster, want: [i64; 6]) -> Value {
    wait_until(&format!("the agent DaemonSet's status is {want:?}"), || {
        let ds = cluster.daemon_set("agent")?;
        let s = &ds["status"];
        let n = |k: &str| s[k].as_i64().unwrap_or(0);
        let have = [
            n("desiredNumberScheduled"),
            n("currentNumberScheduled"),
            n("numberReady"),
            n("updatedNumberScheduled"),
            n("numberAvailable"),
            n("numberMisscheduled"),
        ];
        (have == want
            && s["observedGeneration"] == ds["metadata"]["generation"]
            && n("numberUnavailable") == want[0] - want[4])
            .then_some(ds)
    })
}

/// What a pod answers through the API's pod proxy.
fn answer(cluster: &Cluster, namespace: &str, pod: &str) -> String {
    match cluster
        .server
        .api_get(&format!("/api/v1/namespaces/{namespace}/pods/{pod}/proxy/"))
    {
        Ok((200, body)) => body,
        other => panic!("pod {pod} did not answer: {other:?}"),
    }
}

fn assert_hello(cluster: &Cluster, pod: &str) {
    assert_eq!(
        answer(cluster, "default", pod),
        format!("Hello from {pod}!\n")
    );
}

fn assert_echo(cluster: &Cluster, pod: &str) {
    let body = answer(cluster, "default", pod);
    assert!(
        body.contains("\"method\":\"GET\""),
        "{pod} answers as echo: {body}"
    );
}

/// Samples how many agent pods are ready until stopped; the lowest count seen.
struct ReadyFloor {
    stop: Arc<AtomicBool>,
    low: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadyFloor {
    fn watch(server: &Server) -> ReadyFloor {
        let stop = Arc::new(AtomicBool::new(false));
        let low = Arc::new(AtomicUsize::new(usize::MAX));
        let api = server.api();
        let (s, l) = (stop.clone(), low.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok((200, body)) =
                    api.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dagent")
                    && let Ok(list) = serde_json::from_str::<Value>(&body)
                {
                    let ready = list["items"]
                        .as_array()
                        .map(|items| items.iter().filter(|p| is_serving(p)).count())
                        .unwrap_or(0);
                    l.fetch_min(ready, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        ReadyFloor {
            stop,
            low,
            thread: Some(thread),
        }
    }

    fn lowest(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.low.load(Ordering::Relaxed)
    }
}

#[test]
fn a_daemon_set_runs_one_pod_per_eligible_node_follows_the_nodes_and_rolls() {
    let mut cluster = Cluster::start(&["hello", "echo"]);
    cluster.add_node("n1", &["--labels", "agents=yes"]);
    cluster.add_node("n2", &["--labels", "agents=yes"]);
    cluster.apply("agent", &daemon_set("hello:v1"));
    let status = cluster
        .kubectl
        .ok(&["rollout", "status", "daemonset/agent", "--timeout=120s"]);
    assert!(
        status.contains("daemon set \"agent\" successfully rolled out"),
        "{status}"
    );

    // One ready pod per node, each answering with its own name, placed by the
    // scheduler through a node affinity on the node's name.
    let pods = wait_agents(&cluster, &["n1", "n2"]);
    wait_status(&cluster, [2, 2, 2, 2, 2, 0]);
    for (node, pod) in &pods {
        let name = name_of(pod);
        assert_hello(&cluster, &name);
        assert_eq!(
            pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"],
            serde_json::json!([{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]),
        );
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["controller"]),
            (&"DaemonSet".into(), &"agent".into(), &true.into())
        );
        assert!(!hash_of(pod).is_empty(), "{pod}");
        let tolerations = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (key, effect) in [
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            assert!(
                tolerations.iter().any(|t| t["key"] == key
                    && t["effect"] == effect
                    && t["operator"] == "Exists"
                    && t.get("tolerationSeconds").is_none()),
                "no {key}:{effect} toleration without seconds: {tolerations:?}"
            );
        }
        let created = cluster.events("agent");
        assert!(
            created.iter().any(|e| e["reason"] == "SuccessfulCreate"
                && e["message"] == format!("Created pod: {name}")),
            "{created:?}"
        );
    }

    // A node the selector excludes and a node with an untolerated NoSchedule
    // taint get nothing; a third eligible node gets its pod. The last node to
    // join is the eligible one, so once its pod runs, the controller has seen
    // the other two.
    cluster.add_node("other", &["--labels", "agents=no"]);
    cluster.add_node("tainted", &["--labels", "agents=later"]);
    cluster
        .kubectl
        .ok(&["taint", "nodes", "tainted", "dedicated=db:NoSchedule"]);
    cluster
        .kubectl
        .ok(&["label", "nodes", "tainted", "agents=yes", "--overwrite"]);
    cluster.add_node("n3", &["--labels", "agents=yes"]);
    let pods = wait_agents(&cluster, &["n1", "n2", "n3"]);
    wait_status(&cluster, [3, 3, 3, 3, 3, 0]);
    let table = cluster.kubectl.run(&["get", "daemonset", "agent"]).lines();
    assert_eq!(
        table[0],
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
    );
    assert!(
        table[1].starts_with("agent 3 3 3 3 3 agents=yes "),
        "{table:?}"
    );

    // NoSchedule keeps new pods off but leaves the running one; NoExecute
    // evicts it; without the taint the node gets a pod again.
    let on_n2 = name_of(&pods["n2"]);
    cluster
        .kubectl
        .ok(&["taint", "nodes", "n2", "maint=true:NoSchedule"]);
    wait_status(&cluster, [2, 2, 2, 2, 2, 1]);
    let pod = get_json(
        &cluster.server,
        &format!("/api/v1/namespaces/default/pods/{on_n2}"),
    )
    .expect("the pod on n2 stays under a NoSchedule taint");
    assert!(is_serving(&pod), "{pod}");
    cluster
        .kubectl
        .ok(&["taint", "nodes", "n2", "maint=true:NoExecute"]);
    wait_until("the pod on n2 is gone", || {
        let pods = cluster.pods("default", "agent");
        pods.iter().all(|p| node_of(p) != "n2").then_some(())
    });
    wait_status(&cluster, [2, 2, 2, 2, 2, 0]);
    cluster.kubectl.ok(&["taint", "nodes", "n2", "maint-"]);
    let pods = wait_agents(&cluster, &["n1", "n2", "n3"]);
    assert_ne!(name_of(&pods["n2"]), on_n2, "a new pod on n2");
    let status = cluster
        .kubectl
        .ok(&["rollout", "status", "daemonset/agent", "--timeout=120s"]);
    assert!(
        status.contains("daemon set \"agent\" successfully rolled out"),
        "{status}"
    );

    // A rolling update to another component, one node at a time
    // (maxUnavailable 1): every pod ends up answering as echo.
    let old_hash = hash_of(&pods["n1"]);
    let old_pods = pods;
    let floor = ReadyFloor::watch(&cluster.server);
    cluster
        .kubectl
        .ok(&["set", "image", "ds/agent", "main=echo:v1"]);
    let status = cluster
        .kubectl
        .ok(&["rollout", "status", "daemonset/agent", "--timeout=180s"]);
    assert!(
        status.contains("daemon set \"agent\" successfully rolled out"),
        "{status}"
    );
    let pods = wait_agents(&cluster, &["n1", "n2", "n3"]);
    let lowest = floor.lowest();
    assert!(
        lowest >= 2,
        "ready agent pods fell to {lowest} during the rollout"
    );
    let new_hash = hash_of(&pods["n1"]);
    assert_ne!(new_hash, old_hash);
    let deleted = cluster.events("agent");
    for old in old_pods.values() {
        let name = name_of(old);
        assert!(
            deleted.iter().any(|e| e["reason"] == "SuccessfulDelete"
                && e["message"] == format!("Deleted pod: {name}")),
            "no SuccessfulDelete for {name}: {deleted:?}"
        );
    }
    for pod in pods.values() {
        assert_eq!(hash_of(pod), new_hash);
        assert_echo(&cluster, &name_of(pod));
    }
    wait_status(&cluster, [3, 3, 3, 3, 3, 0]);

    // OnDelete: a new template replaces only the pods a user deletes.
    cluster.kubectl.ok(&[
        "patch",
        "daemonset",
        "agent",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
    ]);
    cluster
        .kubectl
        .ok(&["set", "image", "ds/agent", "main=hello:v1"]);
    wait_status(&cluster, [3, 3, 3, 0, 3, 0]);
    let victim = name_of(&pods["n1"]);
    cluster.kubectl.ok(&["delete", "pod", &victim]);
    let pods = wait_agents(&cluster, &["n1", "n2", "n3"]);
    assert_ne!(name_of(&pods["n1"]), victim);
    assert_hello(&cluster, &name_of(&pods["n1"]));
    assert_echo(&cluster, &name_of(&pods["n2"]));
    wait_status(&cluster, [3, 3, 3, 1, 3, 0]);

    // A node that is gone for good: its process is killed and its Node
    // deleted; the pod garbage collector removes the pod bound to it.
    let on_n3 = name_of(&pods["n3"]);
    cluster.kill_node("n3");
    cluster.kubectl.ok(&["delete", "node", "n3"]);
    wait_until("the pod of the deleted node n3 is gone", || {
        let pods = cluster.pods("default", "agent");
        pods.iter()
            .all(|p| name_of(p) != on_n3 && node_of(p) != "n3")
            .then_some(())
    });
    wait_agents(&cluster, &["n1", "n2"]);
    wait_status(&cluster, [2, 2, 2, 1, 2, 0]);

    // Deleting the DaemonSet takes its pods along.
    cluster.kubectl.ok(&["delete", "daemonset", "agent"]);
    wait_until("the agent pods are gone", || {
        cluster.pods("default", "agent").is_empty().then_some(())
    });
}

/// A Deployment `web` in namespace `team` of `replicas` hello pods.
fn team_deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: hello:v1
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team
data:
  greeting: hello
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: team
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"
    )
}

fn wait_team_pods(cluster: &Cluster, n: usize) -> Vec<Value> {
    wait_until(&format!("{n} ready web pods in team and no others"), || {
        let pods = cluster.pods("team", "web");
        (pods.len() == n && pods.iter().all(is_serving)).then_some(pods)
    })
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn orphaning_foreground_deletion_and_a_namespace_that_takes_everything_along() {
    let mut cluster = Cluster::start(&["hello"]);
    cluster.add_node("n1", &[]);
    let kubectl = &cluster.kubectl;
    kubectl.ok(&["create", "namespace", "team"]);
    cluster.apply("team", &team_deployment(2));
    let pods = wait_team_pods(&cluster, 2);
    let sets = cluster.list("/apis/apps/v1/namespaces/team/replicasets");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let rs = name_of(&sets[0]);
    let rs_uid = sets[0]["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();

    // Orphan: the Deployment goes; its ReplicaSet stays without an owner and
    // keeps its pods (still owned by the ReplicaSet, as on Kubernetes).
    kubectl.ok(&[
        "-n",
        "team",
        "delete",
        "deployment",
        "web",
        "--cascade=orphan",
    ]);
    assert!(
        cluster
            .lookup("/apis/apps/v1/namespaces/team/deployments/web")
            .is_none()
    );
    let set = wait_until("the ReplicaSet has no owner", || {
        let set = cluster.get(&format!("/apis/apps/v1/namespaces/team/replicasets/{rs}"))?;
        owner_uids(&set).is_empty().then_some(set)
    });
    assert!(set["metadata"]["deletionTimestamp"].is_null(), "{set}");
    let mut before: Vec<String> = pods.iter().map(name_of).collect();
    before.sort();
    for pod in cluster.pods("team", "web") {
        assert_eq!(owner_uids(&pod), vec![rs_uid.clone()], "{pod}");
    }
    // The orphaned ReplicaSet still does its job, with the same pods.
    kubectl.ok(&["-n", "team", "scale", &format!("rs/{rs}"), "--replicas=3"]);
    let pods = wait_team_pods(&cluster, 3);
    let names: Vec<String> = pods.iter().map(name_of).collect();
    assert!(
        before.iter().all(|n| names.contains(n)),
        "{before:?} kept among {names:?}"
    );

    // Foreground: the pods go first, then the ReplicaSet.
    kubectl.ok(&[
        "-n",
        "team",
        "delete",
        "rs",
        &rs,
        "--cascade=foreground",
        "--wait=false",
    ]);
    wait_until("the ReplicaSet is gone, after its pods", || {
        match cluster.lookup(&format!("/apis/apps/v1/namespaces/team/replicasets/{rs}")) {
            Some(set) => {
                let finalizers = set["metadata"]["finalizers"].to_string();
                assert!(
                    !set["metadata"]["deletionTimestamp"].is_null()
                        && finalizers.contains("foregroundDeletion"),
                    "while its pods go, the ReplicaSet waits: {set}"
                );
                None
            }
            None => {
                let left = cluster.pods("team", "web");
                assert!(left.is_empty(), "the ReplicaSet went before {left:?}");
                Some(())
            }
        }
    });

    // Deleting the namespace removes what is in it, then the namespace.
    cluster.apply("team", &team_deployment(2));
    wait_team_pods(&cluster, 2);
    kubectl.ok(&["delete", "namespace", "team", "--wait=false"]);
    let contents = [
        "/api/v1/namespaces/team/pods",
        "/api/v1/namespaces/team/configmaps",
        "/api/v1/namespaces/team/services",
        "/apis/apps/v1/namespaces/team/deployments",
        "/apis/apps/v1/namespaces/team/replicasets",
    ];
    wait_until(
        "the namespace team is gone, after its contents",
        || match cluster.lookup("/api/v1/namespaces/team") {
            Some(ns) => {
                assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
                None
            }
            None => {
                for path in contents {
                    let left: Vec<String> = cluster.list(path).iter().map(name_of).collect();
                    assert!(left.is_empty(), "{path} still has {left:?}");
                }
                Some(())
            }
        },
    );
    let missing = kubectl.fails(&["get", "namespace", "team"]);
    assert!(
        missing.contains("(NotFound)") && missing.contains("namespaces \"team\" not found"),
        "{missing}"
    );
}
