//! Admission against a real `skiff server` / `skiff up` with the real kubectl:
//! ResourceQuota (counted, enforced, also under racing creates), LimitRange
//! defaults and bounds, ServiceAccounts (`default` everywhere, a missing one
//! refused), and the hostPath policy split between the API server and the node.

use skiff_testkit::cluster;
use skiff_testkit::samples;

use std::path::Path;

use cluster::{Kubectl, Server, Skiff, wait_until};

fn jsonpath(k: &Kubectl, object: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(object);
    let arg = format!("jsonpath={path}");
    args.extend(["-o", &arg]);
    k.ok(&args)
}

/// `kubectl apply -f` of a manifest written to `dir`.
fn apply(k: &Kubectl, dir: &Path, name: &str, yaml: &str) -> cluster::Outcome {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write manifest");
    k.run(&["apply", "-f", file.to_str().expect("utf-8 path")])
}

#[test]
fn a_quota_of_two_pods_refuses_the_third_and_shows_what_is_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    k.ok(&["create", "namespace", "team"]);
    let out = apply(
        &k,
        dir.path(),
        "quota",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pods\n  namespace: team\nspec:\n  hard:\n    pods: \"2\"\n    count/configmaps: \"4\"\n",
    );
    assert!(out.status.success(), "{}", out.stderr);
    // The controller fills status in; until then the quota refuses pods.
    wait_until("the quota's usage is counted", || {
        (jsonpath(
            &k,
            &["resourcequota", "pods", "-n", "team"],
            "{.status.used.pods}",
        ) == "0")
            .then_some(())
    });
    for name in ["p1", "p2"] {
        k.ok(&["run", name, "-n", "team", "--image=hello:v1"]);
    }
    let stderr = k.fails(&["run", "p3", "-n", "team", "--image=hello:v1"]);
    assert!(
        stderr.contains(
            "Error from server (Forbidden): pods \"p3\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{stderr}"
    );
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    let listed = k.ok(&["get", "resourcequota", "-n", "team"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with("pods "))
        .map(cluster::squeeze)
        .unwrap_or_default();
    assert!(
        row.contains("count/configmaps: 1/4") && row.contains("pods: 2/2"),
        "{listed}"
    );
    let described = k.ok(&["describe", "resourcequota", "pods", "-n", "team"]);
    let lines: Vec<String> = described.lines().map(cluster::squeeze).collect();
    assert!(lines.contains(&"pods 2 2".to_string()), "{described}");
    assert!(
        lines.contains(&"count/configmaps 1 4".to_string()),
        "{described}"
    );

    // Deleting a pod gives its share back.
    k.ok(&["delete", "pod", "p1", "-n", "team", "--wait=false"]);
    wait_until("the quota counts one pod", || {
        (jsonpath(
            &k,
            &["resourcequota", "pods", "-n", "team"],
            "{.status.used.pods}",
        ) == "1")
            .then_some(())
    });
    k.ok(&["run", "p3", "-n", "team", "--image=hello:v1"]);
}

#[test]
fn racing_creates_cannot_both_take_the_last_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    k.ok(&["create", "namespace", "race"]);
    k.ok(&["create", "quota", "three", "-n", "race", "--hard=pods=3"]);
    wait_until("the quota's usage is counted", || {
        (jsonpath(
            &k,
            &["resourcequota", "three", "-n", "race"],
            "{.status.used.pods}",
        ) == "0")
            .then_some(())
    });
    let kubeconfig = server.kubeconfig();
    let outcomes: Vec<cluster::Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let kubeconfig = kubeconfig.clone();
                s.spawn(move || {
                    Kubectl::new(&kubeconfig).run(&[
                        "run",
                        &format!("r{i}"),
                        "-n",
                        "race",
                        "--image=hello:v1",
                    ])
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("kubectl thread"))
            .collect()
    });
    let created = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(created, 3, "exactly the quota's three pods are created");
    for refused in outcomes.iter().filter(|o| !o.status.success()) {
        assert!(
            refused.stderr.contains("exceeded quota: three"),
            "{}",
            refused.stderr
        );
    }
    let pods = k.ok(&["get", "pods", "-n", "race", "-o", "name"]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
}

/// Waits until the quota controller has counted `resource` of quota `name`.
fn wait_counted(k: &Kubectl, name: &str, namespace: &str, resource: &str, want: &str) {
    let path = format!("{{.status.used['{}']}}", resource.replace('.', "\\."));
    wait_until(&format!("quota {name} counts {resource}={want}"), || {
        (jsonpath(k, &["resourcequota", name, "-n", namespace], &path) == want).then_some(())
    });
}

#[test]
fn an_update_is_charged_what_it_adds_and_scoped_quotas_select_their_pods() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    k.ok(&["create", "namespace", "ports"]);
    k.ok(&[
        "create",
        "quota",
        "ports",
        "-n",
        "ports",
        "--hard=services.nodeports=1",
    ]);
    wait_counted(&k, "ports", "ports", "services.nodeports", "0");

    // A ClusterIP Service takes no node port; turning it into a NodePort one
    // would take two, one more than the quota has.
    k.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "ports",
        "--tcp=80:80",
        "--tcp=81:81",
    ]);
    let stderr = k.fails(&[
        "patch",
        "service",
        "web",
        "-n",
        "ports",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    assert!(
        stderr.contains(
            "Error from server (Forbidden): services \"web\" is forbidden: exceeded quota: ports, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"
        ),
        "{stderr}"
    );
    assert_eq!(
        jsonpath(&k, &["service", "web", "-n", "ports"], "{.spec.type}"),
        "ClusterIP"
    );
    // One port fits, and is charged at once.
    k.ok(&[
        "create",
        "service",
        "clusterip",
        "one",
        "-n",
        "ports",
        "--tcp=80:80",
    ]);
    k.ok(&[
        "patch",
        "service",
        "one",
        "-n",
        "ports",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    assert_eq!(
        jsonpath(
            &k,
            &["resourcequota", "ports", "-n", "ports"],
            "{.status.used['services\\.nodeports']}"
        ),
        "1"
    );
    // A change that adds nothing passes at the limit.
    k.ok(&["label", "service", "one", "-n", "ports", "tier=front"]);

    // A quota for pods of one PriorityClass counts only those.
    let out = apply(
        &k,
        dir.path(),
        "scoped",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: high\n  namespace: ports\nspec:\n  hard:\n    pods: \"1\"\n  scopeSelector:\n    matchExpressions:\n    - scopeName: PriorityClass\n      operator: In\n      values: [high]\n",
    );
    assert!(out.status.success(), "{}", out.stderr);
    wait_counted(&k, "high", "ports", "pods", "0");
    let pod = |name: &str, class: Option<&str>| {
        let class = class.map_or(String::new(), |c| format!("  priorityClassName: {c}\n"));
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: ports\nspec:\n{class}  containers:\n  - name: c\n    image: hello:v1\n"
        )
    };
    let first = apply(&k, dir.path(), "h1", &pod("h1", Some("high")));
    assert!(first.status.success(), "{}", first.stderr);
    let second = apply(&k, dir.path(), "h2", &pod("h2", Some("high")));
    assert!(
        second.stderr.contains("pods \"h2\" is forbidden: exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1"),
        "{}",
        second.stderr
    );
    for (name, class) in [("low", Some("low")), ("none", None)] {
        let out = apply(&k, dir.path(), name, &pod(name, class));
        assert!(out.status.success(), "{name}: {}", out.stderr);
    }
}

#[test]
fn a_limit_range_fills_defaults_and_refuses_a_pod_over_its_max() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    k.ok(&["create", "namespace", "limited"]);
    let out = apply(
        &k,
        dir.path(),
        "limits",
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: limits\n  namespace: limited\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 500m\n      memory: 128Mi\n    defaultRequest:\n      cpu: 100m\n    max:\n      memory: 1Gi\n",
    );
    assert!(out.status.success(), "{}", out.stderr);
    // The LimitRange's own defaults: defaultRequest falls back to default.
    assert_eq!(
        jsonpath(
            &k,
            &["limitrange", "limits", "-n", "limited"],
            "{.spec.limits[0].defaultRequest.memory}"
        ),
        "128Mi"
    );

    k.ok(&["run", "web", "-n", "limited", "--image=hello:v1"]);
    let resources = |field: &str| {
        jsonpath(
            &k,
            &["pod", "web", "-n", "limited"],
            &format!("{{.spec.containers[0].resources.{field}}}"),
        )
    };
    assert_eq!(resources("limits.cpu"), "500m");
    assert_eq!(resources("limits.memory"), "128Mi");
    assert_eq!(resources("requests.cpu"), "100m");
    assert_eq!(resources("requests.memory"), "128Mi");
    assert_eq!(
        jsonpath(
            &k,
            &["pod", "web", "-n", "limited"],
            "{.metadata.annotations.kubernetes\\.io/limit-ranger}"
        ),
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web"
    );
    assert_eq!(
        jsonpath(&k, &["pod", "web", "-n", "limited"], "{.status.qosClass}"),
        "Burstable"
    );

    let out = apply(
        &k,
        dir.path(),
        "big",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  namespace: limited\nspec:\n  containers:\n  - name: app\n    image: hello:v1\n    resources:\n      limits:\n        memory: 2Gi\n",
    );
    assert!(!out.status.success(), "a pod over the max was created");
    assert!(
        out.stderr.contains(
            "pods \"big\" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn every_namespace_has_a_default_service_account_that_pods_run_as() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    for ns in ["default", "kube-system"] {
        k.ok(&["get", "serviceaccount", "default", "-n", ns]);
    }
    // A new namespace has it at once: a workload created right away converges.
    k.ok(&["create", "namespace", "fresh"]);
    k.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "fresh",
        "--image=hello:v1",
        "--replicas=2",
    ]);
    let pods = wait_until("the Deployment's two pods exist", || {
        let names = k.ok(&["get", "pods", "-n", "fresh", "-o", "name"]);
        (names.lines().count() == 2).then_some(names)
    });
    let pod = pods.lines().next().unwrap_or_default().to_string();
    assert_eq!(
        jsonpath(&k, &[&pod, "-n", "fresh"], "{.spec.serviceAccountName}"),
        "default"
    );
    assert_eq!(
        jsonpath(&k, &[&pod, "-n", "fresh"], "{.spec.serviceAccount}"),
        "default"
    );

    // Deleted, it comes back.
    let uid = jsonpath(
        &k,
        &["serviceaccount", "default", "-n", "fresh"],
        "{.metadata.uid}",
    );
    k.ok(&["delete", "serviceaccount", "default", "-n", "fresh"]);
    wait_until("the default ServiceAccount is made again", || {
        let out = k.run(&[
            "get",
            "serviceaccount",
            "default",
            "-n",
            "fresh",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        (out.status.success() && !out.stdout.is_empty() && out.stdout != uid).then_some(())
    });

    // A pod naming an account that does not exist is refused.
    let stderr = k.fails(&[
        "run",
        "p",
        "-n",
        "fresh",
        "--image=hello:v1",
        "--overrides",
        r#"{"spec": {"serviceAccountName": "missing"}}"#,
    ]);
    assert!(
        stderr.contains(
            "pods \"p\" is forbidden: error looking up service account fresh/missing: serviceaccount \"missing\" not found"
        ),
        "{stderr}"
    );
    k.ok(&["create", "serviceaccount", "builder", "-n", "fresh"]);
    k.ok(&[
        "run",
        "p",
        "-n",
        "fresh",
        "--image=hello:v1",
        "--overrides",
        r#"{"spec": {"serviceAccountName": "builder"}}"#,
    ]);
    assert_eq!(
        jsonpath(
            &k,
            &["pod", "p", "-n", "fresh"],
            "{.spec.serviceAccountName}"
        ),
        "builder"
    );
}

/// A pod of the counter sample with hostPath `path` at /data, whose readiness
/// probe (`GET /`) writes the count there: it is Ready only if it can write.
fn counter_pod(name: &str, path: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: counter\n    image: counter:v1\n    volumeMounts:\n    - name: host\n      mountPath: /data\n    readinessProbe:\n      httpGet:\n        path: /\n        port: 8080\n      periodSeconds: 1\n  volumes:\n  - name: host\n    hostPath:\n      path: {path}\n      type: DirectoryOrCreate\n"
    )
}

#[test]
fn host_paths_are_mounted_only_under_directories_the_node_allows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    let read_only = base.join("shared");
    let writable = base.join("scratch");
    for d in [&read_only, &writable] {
        std::fs::create_dir_all(d).expect("create allowed dir");
    }
    // The data directory lies under an allowed one: the node still refuses it.
    let data = read_only.join("skiff-data");
    let ro_flag = read_only.to_str().expect("utf-8").to_string();
    let rw_flag = format!("{}:rw", writable.display());
    let server = Server::start_with(
        "up",
        &data,
        &["--allow-host-path", &ro_flag, "--allow-host-path", &rw_flag],
    );
    let k = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    let counter = samples::sample_path("counter");
    skiff.ok(&[
        "push",
        counter.to_str().expect("utf-8"),
        "--name",
        "counter:v1",
    ]);

    // The API server refuses `/` outright.
    let out = apply(&k, dir.path(), "root", &counter_pod("root", "/"));
    assert!(!out.status.success(), "a pod mounting / was created");
    assert!(
        out.stderr.contains("pods \"root\" is forbidden: hostPath volume \"host\": path \"/\" must not be the root directory"),
        "{}",
        out.stderr
    );

    // The node refuses a path inside its data directory, and one it does not allow.
    let inside = data.join("node").join("pods");
    for (name, path) in [
        ("inside", inside.to_str().expect("utf-8")),
        ("elsewhere", "/etc"),
    ] {
        let out = apply(&k, dir.path(), name, &counter_pod(name, path));
        assert!(out.status.success(), "{}", out.stderr);
        let reason = wait_until(&format!("pod {name} is refused by its node"), || {
            let reason = jsonpath(
                &k,
                &["pod", name],
                "{.status.containerStatuses[0].state.waiting.reason}",
            );
            (reason == "CreateContainerConfigError").then(|| {
                jsonpath(
                    &k,
                    &["pod", name],
                    "{.status.containerStatuses[0].state.waiting.message}",
                )
            })
        });
        let expected = if name == "inside" {
            "data directory"
        } else {
            "is not under a directory this node allows"
        };
        assert!(reason.contains(expected), "{name}: {reason}");
        let events = k.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ]);
        assert!(
            events.contains("Failed") && events.contains(expected),
            "{events}"
        );
    }

    // Under a read-write directory the pod writes its count there.
    let rw_path = writable.join("counter");
    let out = apply(
        &k,
        dir.path(),
        "rw",
        &counter_pod("rw", rw_path.to_str().expect("utf-8")),
    );
    assert!(out.status.success(), "{}", out.stderr);
    wait_until("the read-write pod is Ready", || {
        (jsonpath(
            &k,
            &["pod", "rw"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True")
            .then_some(())
    });
    let count = std::fs::read_to_string(rw_path.join("count")).expect("count written on the host");
    assert!(count.trim().parse::<u64>().is_ok_and(|c| c >= 1), "{count}");

    // Under a read-only one it runs, but cannot write.
    let ro_path = read_only.join("counter");
    std::fs::create_dir_all(&ro_path).expect("create");
    let out = apply(
        &k,
        dir.path(),
        "ro",
        &counter_pod("ro", ro_path.to_str().expect("utf-8")),
    );
    assert!(out.status.success(), "{}", out.stderr);
    wait_until("the read-only pod's writes fail", || {
        let events = k.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=ro",
        ]);
        events
            .contains("Readiness probe failed: HTTP probe failed with statuscode: 500")
            .then_some(())
    });
    assert!(
        !jsonpath(
            &k,
            &["pod", "ro"],
            "{.status.containerStatuses[0].state.running.startedAt}"
        )
        .is_empty(),
        "the read-only pod runs"
    );
    assert!(
        !ro_path.join("count").exists(),
        "nothing written under a read-only directory"
    );
}
