//! The real kubectl (1.32) against a fresh `skiff server`: apply, get, re-apply,
//! watch, scale, label, delete, discovery and explain, asserted on the lines
//! kubectl prints, as a user reads them.

use skiff_testkit::cluster;

use std::net::Ipv4Addr;

use cluster::{Kubectl, Server, squeeze, wait_until};
use serde_json::{Value, json};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/app.yaml");
const APP_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/app-v2.yaml");

/// A server in its own temporary directory, and kubectl pointed at it.
struct Cluster {
    kubectl: Kubectl,
    _server: Server,
    _dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    Cluster {
        kubectl: Kubectl::new(&server.kubeconfig()),
        _server: server,
        _dir: dir,
    }
}

#[test]
fn apply_get_reapply_and_delete_an_application() {
    let c = cluster();
    let k = &c.kubectl;

    let out = k.run(&["apply", "-f", APP]);
    assert!(
        out.status.success(),
        "kubectl apply failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.lines(),
        [
            "namespace/demo created",
            "deployment.apps/web created",
            "service/web created",
            "configmap/web-config created"
        ],
        "stderr: {}",
        out.stderr
    );

    // One table per kind, with kubectl's usual columns.
    let tables = tables(&k.ok(&["get", "deployments,services,configmaps", "-n", "demo"]));
    let deployments = table(
        &tables,
        "deployments",
        "NAME READY UP-TO-DATE AVAILABLE AGE",
    );
    let row = find_row(deployments, "deployment.apps/web");
    assert_eq!(row.len(), 5, "deployment row: {row:?}");
    assert!(
        row[1].ends_with("/2"),
        "READY of a 2-replica deployment should read x/2: {row:?}"
    );
    assert_age(&row[4]);

    let services = table(
        &tables,
        "services",
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
    );
    let row = find_row(services, "service/web");
    assert_eq!(row.len(), 6, "service row: {row:?}");
    assert_eq!(row[1], "ClusterIP");
    let cluster_ip = row[2].clone();
    assert_in_service_cidr(&cluster_ip);
    assert_eq!(row[3], "<none>");
    assert_eq!(row[4], "80/TCP");
    assert_age(&row[5]);

    let configmaps = table(&tables, "configmaps", "NAME DATA AGE");
    let row = find_row(configmaps, "configmap/web-config");
    assert_eq!(row.len(), 3, "configmap row: {row:?}");
    assert_eq!(row[1], "2", "web-config has two keys: {row:?}");
    assert_age(&row[2]);

    assert_eq!(
        jsonpath(k, "deployment", "web", "{.metadata.generation}"),
        "1"
    );
    let uid = jsonpath(k, "deployment", "web", "{.metadata.uid}");
    assert!(!uid.is_empty(), "the deployment has no uid");

    // Re-apply with 3 replicas and one more env var: only the deployment changes.
    let out = k.run(&["apply", "-f", APP_V2]);
    assert!(
        out.status.success(),
        "kubectl apply (v2) failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.lines(),
        [
            "namespace/demo unchanged",
            "deployment.apps/web configured",
            "service/web unchanged",
            "configmap/web-config unchanged"
        ],
        "stderr: {}",
        out.stderr
    );
    assert_eq!(
        jsonpath(k, "deployment", "web", "{.metadata.generation}"),
        "2"
    );
    assert_eq!(jsonpath(k, "deployment", "web", "{.spec.replicas}"), "3");
    assert_eq!(
        jsonpath(k, "deployment", "web", "{.metadata.uid}"),
        uid,
        "re-apply must patch, not recreate"
    );
    assert_eq!(
        jsonpath(k, "service", "web", "{.spec.clusterIP}"),
        cluster_ip,
        "the cluster IP must not change"
    );

    // The strategic merge patch touched replicas and env; everything else stays.
    let deployment: Value =
        serde_json::from_str(&k.ok(&["get", "deployment", "web", "-n", "demo", "-o", "json"]))
            .expect("deployment JSON");
    assert_eq!(
        deployment["metadata"]["labels"],
        json!({ "app": "web", "tier": "frontend" })
    );
    assert_eq!(
        deployment["spec"]["selector"],
        json!({ "matchLabels": { "app": "web" } })
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"],
        json!({ "app": "web", "tier": "frontend" })
    );
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "containers: {containers:?}");
    let container = &containers[0];
    assert_eq!(container["name"], "web");
    assert_eq!(container["image"], "hello:v1");
    assert_eq!(
        container["ports"][0]["containerPort"], 8080,
        "container: {container}"
    );
    assert_eq!(
        container["ports"][0]["name"], "http",
        "container: {container}"
    );
    assert_eq!(
        container["env"],
        json!([{ "name": "GREETING", "value": "hello" }, { "name": "LOG_LEVEL", "value": "debug" }]),
        "container: {container}"
    );
    assert_eq!(
        container["resources"]["requests"],
        json!({ "cpu": "50m", "memory": "32Mi" }),
        "container: {container}"
    );

    // Delete everything the file created.
    let out = k.run(&["delete", "-f", APP]);
    let stdout = out.lines();
    assert!(
        stdout.iter().any(|l| l == "namespace \"demo\" deleted"),
        "kubectl delete printed:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    // Deleting the namespace deletes its contents too (asynchronously, as in
    // Kubernetes), so kubectl may find an object of the namespace already gone
    // when it gets to it; each object is either deleted by kubectl or NotFound.
    let mut raced = false;
    for (resource, name) in [
        ("deployment.apps", "web"),
        ("service", "web"),
        ("configmap", "web-config"),
    ] {
        let deleted = format!("{resource} \"{name}\" deleted");
        let plural = match resource {
            "deployment.apps" => "deployments.apps",
            "service" => "services",
            _ => "configmaps",
        };
        let gone = format!("{plural} \"{name}\" not found");
        if stdout.contains(&deleted) {
            continue;
        }
        assert!(
            out.stderr.contains(&gone),
            "kubectl delete neither deleted {resource}/{name} nor found it gone:\nstdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
        raced = true;
    }
    assert!(
        raced || out.status.success(),
        "kubectl delete failed:\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );

    let stderr = wait_until("kubectl get namespace demo fails", || {
        let out = k.run(&["get", "namespace", "demo"]);
        (!out.status.success()).then_some(out.stderr)
    });
    assert!(
        stderr.contains("Error from server (NotFound): namespaces \"demo\" not found"),
        "stderr: {stderr}"
    );
    let out = k.run(&["get", "deployments", "-A"]);
    assert!(
        out.status.success(),
        "kubectl get deployments -A failed: {}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        "",
        "deployments are left:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("No resources found"),
        "stderr: {}",
        out.stderr
    );
    let out = k.run(&["get", "deployments,services,configmaps", "-n", "demo"]);
    assert!(
        out.status.success(),
        "kubectl get -n demo failed: {}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        "",
        "objects are left in demo:\n{}",
        out.stdout
    );
}

#[test]
fn watch_streams_scale_and_label_changes() {
    let c = cluster();
    let k = &c.kubectl;
    k.ok(&["apply", "-f", APP]);

    let mut watch = k.spawn(&[
        "get",
        "deployment",
        "web",
        "-n",
        "demo",
        "-w",
        "--output-watch-events",
    ]);
    let header = watch.wait_for_line("with the table header", |l| l.starts_with("EVENT "));
    assert_eq!(header, "EVENT NAME READY UP-TO-DATE AVAILABLE AGE");
    let added = watch.wait_for_line("ADDED web", |l| l.starts_with("ADDED web "));
    assert!(column(&added, 2).ends_with("/2"), "ADDED line: {added}");

    assert_eq!(
        k.ok(&["scale", "deployment", "web", "--replicas=5", "-n", "demo"])
            .trim(),
        "deployment.apps/web scaled"
    );
    let modified = watch.wait_for_line("MODIFIED web with READY x/5", |l| {
        l.starts_with("MODIFIED web ") && column(l, 2).ends_with("/5")
    });
    assert_eq!(modified.split(' ').count(), 6, "MODIFIED line: {modified}");
    drop(watch);
    assert_eq!(jsonpath(k, "deployment", "web", "{.spec.replicas}"), "5");
    assert_eq!(
        jsonpath(k, "deployment", "web", "{.metadata.generation}"),
        "2",
        "a scale changes the spec"
    );

    let mut watch = k.spawn(&[
        "get",
        "deployment",
        "web",
        "-n",
        "demo",
        "-w",
        "--output-watch-events",
        "--show-labels",
    ]);
    let header = watch.wait_for_line("with the table header", |l| l.starts_with("EVENT "));
    assert_eq!(header, "EVENT NAME READY UP-TO-DATE AVAILABLE AGE LABELS");
    let added = watch.wait_for_line("ADDED web", |l| l.starts_with("ADDED web "));
    assert!(
        added.ends_with(" app=web,tier=frontend"),
        "ADDED line: {added}"
    );

    assert_eq!(
        k.ok(&["label", "deployment", "web", "-n", "demo", "release=canary"])
            .trim(),
        "deployment.apps/web labeled"
    );
    let modified = watch.wait_for_line("MODIFIED web with the new label", |l| {
        l.starts_with("MODIFIED web ") && l.ends_with(" app=web,release=canary,tier=frontend")
    });
    drop(watch);
    assert!(
        column(&modified, 2).ends_with("/5"),
        "MODIFIED line: {modified}"
    );
    assert_eq!(
        jsonpath(k, "deployment", "web", "{.metadata.generation}"),
        "2",
        "a label changes metadata only, not the generation"
    );
}

#[test]
fn discovery_version_health_and_explain() {
    let c = cluster();
    let k = &c.kubectl;

    let resources = k.run(&["api-resources"]);
    assert!(
        resources.status.success(),
        "kubectl api-resources failed: {}",
        resources.stderr
    );
    let lines = resources.lines();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("NAME SHORTNAMES APIVERSION NAMESPACED KIND")
    );
    for expected in [
        "deployments deploy apps/v1 true Deployment",
        "pods po v1 true Pod",
        "services svc v1 true Service",
        "namespaces ns v1 false Namespace",
        "configmaps cm v1 true ConfigMap",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "api-resources lacks {expected:?}:\n{}",
            resources.stdout
        );
    }
    let components = lines
        .iter()
        .find(|l| l.starts_with("components "))
        .unwrap_or_else(|| panic!("api-resources lacks components:\n{}", resources.stdout));
    assert!(
        components.contains(" skiff.dev/v1alpha1 ") && components.ends_with(" Component"),
        "components row: {components}"
    );

    let version: Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/version"])).expect("/version is JSON");
    let git_version = version["gitVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no gitVersion in {version}"));
    assert!(git_version.starts_with('v'), "gitVersion: {git_version}");
    assert!(
        version["major"].is_string() && version["minor"].is_string(),
        "/version: {version}"
    );
    let out = k.ok(&["version"]);
    assert!(
        out.lines().any(|l| l.starts_with("Server Version: v")),
        "kubectl version:\n{out}"
    );

    assert_eq!(k.ok(&["get", "--raw", "/healthz"]).trim(), "ok");
    assert_eq!(k.ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    assert_eq!(k.ok(&["get", "--raw", "/livez"]).trim(), "ok");

    let out = k.run(&["explain", "deployment.spec.replicas"]);
    assert!(
        out.status.success(),
        "kubectl explain failed:\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let text = out.lines();
    assert!(
        text.iter().any(|l| l == "KIND: Deployment"),
        "explain:\n{}",
        out.stdout
    );
    assert!(
        text.iter().any(|l| l == "FIELD: replicas <integer>"),
        "explain:\n{}",
        out.stdout
    );
    assert!(
        squeeze(&out.stdout).contains("Number of desired pods."),
        "explain:\n{}",
        out.stdout
    );
}

/// Splits `kubectl get` output of several kinds into its tables (separated by
/// blank lines), each as lines of whitespace-separated cells.
fn tables(stdout: &str) -> Vec<Vec<Vec<String>>> {
    stdout
        .split("\n\n")
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .collect::<Vec<Vec<String>>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The table whose header is `header`.
fn table<'a>(tables: &'a [Vec<Vec<String>>], what: &str, header: &str) -> &'a [Vec<String>] {
    tables
        .iter()
        .find(|t| t[0].join(" ") == header)
        .unwrap_or_else(|| panic!("no {what} table with header {header:?} in {tables:?}"))
}

/// The row whose first cell is `name`.
fn find_row<'a>(table: &'a [Vec<String>], name: &str) -> &'a Vec<String> {
    table
        .iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("no row {name} in {table:?}"))
}

/// The `index`th space-separated cell of a squeezed line.
fn column(line: &str, index: usize) -> &str {
    line.split(' ').nth(index).unwrap_or("")
}

fn jsonpath(k: &Kubectl, kind: &str, name: &str, path: &str) -> String {
    k.ok(&[
        "get",
        kind,
        name,
        "-n",
        "demo",
        "-o",
        &format!("jsonpath={path}"),
    ])
    .trim()
    .to_string()
}

/// An AGE cell of an object created moments ago: `5s`, `2m3s`, ...
fn assert_age(age: &str) {
    assert!(
        age.ends_with('s') && age.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "AGE should be a few seconds, got {age:?}"
    );
}

/// Kubernetes' default service CIDR is 10.96.0.0/12.
fn assert_in_service_cidr(ip: &str) {
    let addr: Ipv4Addr = ip
        .parse()
        .unwrap_or_else(|e| panic!("CLUSTER-IP {ip:?} is not an IPv4 address: {e}"));
    let [a, b, _, _] = addr.octets();
    assert!(
        a == 10 && (96..112).contains(&b),
        "CLUSTER-IP {ip} is outside 10.96.0.0/12"
    );
}
