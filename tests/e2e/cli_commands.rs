//! The user-facing `skiff` commands against a real `skiff server`: apply
//! (pushing local components), get (tables, formats, watch), describe, delete,
//! token, version and logs, asserted on what a user reads, with the real
//! kubectl as the cross-check.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::samples;

use std::path::Path;

use cluster::{Kubectl, Server, Skiff, squeeze, wait_until};
use node::NodeProcess;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A minimal command component (`wasi:cli/run`), assembled from text.
const COMMAND_COMPONENT: &str = r#"(component
    (core module $m (func (export "run") (result i32) i32.const 0))
    (core instance $i (instantiate $m))
    (func $run (result (result)) (canon lift (core func $i "run")))
    (instance $inst (export "run" (func $run)))
    (export "wasi:cli/run@0.2.0" (instance $inst)))"#;

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";

const APP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  greeting: hello
---
apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: demo
  labels:
    app: hello
spec:
  containers:
  - name: main
    image: hello.wasm
"#;

/// A server in its own temporary directory, with skiff and kubectl pointed at it.
struct Cluster {
    skiff: Skiff,
    kubectl: Kubectl,
    dir: tempfile::TempDir,
    server: Server,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    Cluster {
        skiff: Skiff::new(&server.kubeconfig()),
        kubectl: Kubectl::new(&server.kubeconfig()),
        dir,
        server,
    }
}

/// Writes the manifests directory (a Namespace, then a ConfigMap and a Pod
/// whose image is the local `hello.wasm`) and returns it with the tag the
/// component will get.
fn app_dir(root: &Path) -> (std::path::PathBuf, String) {
    let dir = root.join("app");
    std::fs::create_dir_all(&dir).expect("create the app directory");
    std::fs::write(dir.join("00-namespace.yaml"), NAMESPACE).expect("write namespace");
    std::fs::write(dir.join("app.yaml"), APP).expect("write app");
    std::fs::write(dir.join("README.md"), "not a manifest").expect("write readme");
    let bytes = wat::parse_str(COMMAND_COMPONENT).expect("assemble the component");
    std::fs::write(dir.join("hello.wasm"), &bytes).expect("write the component");
    let tag = format!("{:x}", Sha256::digest(&bytes))[..12].to_string();
    (dir, tag)
}

/// A cluster with the app applied by skiff.
fn applied() -> (Cluster, String) {
    let c = cluster();
    let (dir, tag) = app_dir(c.dir.path());
    c.skiff
        .ok(&["apply", "-f", dir.to_str().expect("utf-8 path")]);
    (c, tag)
}

#[test]
fn apply_pushes_local_components_and_reports_what_changed() {
    let c = cluster();
    let (dir, tag) = app_dir(c.dir.path());
    let dir = dir.to_str().expect("utf-8 path");

    let out = c.skiff.ok(&["apply", "-f", dir]);
    assert_eq!(
        out.lines(),
        [
            format!("component/hello:{tag} pushed"),
            "namespace/demo created".to_string(),
            "configmap/settings created".to_string(),
            "pod/hello created".to_string(),
        ],
        "stderr: {}",
        out.stderr
    );
    let image = c.kubectl.ok(&[
        "get",
        "pod",
        "hello",
        "-n",
        "demo",
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    assert_eq!(image, format!("hello:{tag}"));
    let component = c
        .kubectl
        .ok(&["get", "components", &format!("hello.{tag}"), "-o", "name"]);
    assert_eq!(component.trim(), format!("component.skiff.dev/hello.{tag}"));
    let managers = c.kubectl.ok(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(managers, "skiff", "applied with field manager skiff");

    // Nothing changed: nothing is written.
    let again = c.skiff.ok(&["apply", "-f", dir]);
    assert_eq!(
        again.lines()[1..],
        [
            "namespace/demo unchanged",
            "configmap/settings unchanged",
            "pod/hello unchanged"
        ],
        "{}",
        again.stdout
    );

    // One changed file, given on its own and by stdin.
    let changed = APP.replace("greeting: hello", "greeting: ahoy");
    std::fs::write(Path::new(dir).join("app.yaml"), &changed).expect("rewrite app");
    let out = c.skiff.ok(&["apply", "-f", &format!("{dir}/app.yaml")]);
    assert_eq!(
        out.lines()[1..],
        ["configmap/settings configured", "pod/hello unchanged"],
        "{}",
        out.stdout
    );
    let greeting = c.kubectl.ok(&[
        "get",
        "cm",
        "settings",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.greeting}",
    ]);
    assert_eq!(greeting, "ahoy");
}

#[test]
fn apply_names_a_missing_component_file_and_its_manifest() {
    let c = cluster();
    let manifest = c.dir.path().join("broken.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers:\n  - {name: main, image: missing.wasm}\n",
    )
    .expect("write manifest");
    let stderr = c
        .skiff
        .fails(&["apply", "-f", manifest.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("missing.wasm") && stderr.contains("broken.yaml"),
        "the error should name the file and the manifest:\n{stderr}"
    );
    // Nothing was applied.
    c.kubectl.fails(&["get", "pod", "broken"]);

    // Empty input applies nothing, and says so.
    let stderr = c.skiff.fails(&["apply", "-f", "-"]);
    assert!(stderr.contains("no objects passed to apply"), "{stderr}");
}

#[test]
fn get_prints_the_servers_tables_as_kubectl_does() {
    let (c, _) = applied();
    let (skiff, kubectl) = (&c.skiff, &c.kubectl);
    kubectl.ok(&["run", "other", "-n", "demo", "--image=hello:v1"]);

    // Headers match kubectl's for the same request.
    for args in [
        vec!["get", "pods", "-n", "demo"],
        vec!["get", "pods", "-n", "demo", "-o", "wide"],
        vec!["get", "pods", "-A"],
        vec!["get", "namespaces"],
    ] {
        let ours = skiff.ok(&args).lines();
        let theirs = kubectl.run(&args).lines();
        assert_eq!(ours[0], theirs[0], "header of {args:?}");
        assert_eq!(ours.len(), theirs.len(), "rows of {args:?}: {ours:?}");
    }
    let wide = skiff
        .ok(&["get", "pods", "-n", "demo", "-o", "wide"])
        .lines();
    assert_eq!(
        wide[0],
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
    );
    let all = skiff.ok(&["get", "pods", "-A"]).lines();
    assert_eq!(all[0], "NAMESPACE NAME READY STATUS RESTARTS AGE");
    assert!(
        all.iter().any(|l| l.starts_with("demo hello 0/1 ")),
        "{all:?}"
    );

    // Every way of naming the type.
    for kind in ["pods", "pod", "po", "Pod"] {
        let rows = skiff.ok(&["get", kind, "-n", "demo"]).lines();
        assert_eq!(rows[0], "NAME READY STATUS RESTARTS AGE", "{kind}");
        assert!(
            rows[1].starts_with("hello 0/1 Pending 0 "),
            "{kind}: {rows:?}"
        );
    }
    let cms = skiff.ok(&["get", "cm", "-n", "demo"]).lines();
    assert_eq!(cms[0], "NAME DATA AGE");
    assert!(cms.iter().any(|l| l.starts_with("settings 1 ")), "{cms:?}");
    let ns = skiff.ok(&["get", "ns", "demo"]).lines();
    assert!(ns[1].starts_with("demo Active "), "{ns:?}");

    // Selectors.
    let labelled = skiff
        .ok(&["get", "pods", "-n", "demo", "-l", "app=hello"])
        .lines();
    assert_eq!(labelled.len(), 2, "{labelled:?}");
    assert!(labelled[1].starts_with("hello "));
    let by_field = skiff
        .ok(&[
            "get",
            "pods",
            "-n",
            "demo",
            "--field-selector",
            "metadata.name=other",
        ])
        .lines();
    assert_eq!(by_field.len(), 2, "{by_field:?}");
    assert!(by_field[1].starts_with("other "));

    // Several types, and TYPE/NAME: one table each, names prefixed.
    let out = skiff.ok(&["get", "pod/hello", "cm/settings", "-n", "demo"]);
    let text = out.stdout.clone();
    let tables: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{text}");
    assert!(squeeze(tables[0]).starts_with("NAME READY STATUS RESTARTS AGE pod/hello "));
    assert!(squeeze(tables[1]).starts_with("NAME DATA AGE configmap/settings 1 "));
    let out = skiff.ok(&["get", "po,cm", "-n", "demo"]);
    assert!(out.stdout.contains("pod/other"), "{}", out.stdout);
    assert!(out.stdout.contains("configmap/settings"), "{}", out.stdout);

    // Names, YAML, JSON.
    let names = skiff
        .ok(&["get", "pods", "-n", "demo", "-o", "name"])
        .lines();
    assert_eq!(names, ["pod/hello", "pod/other"]);
    let yaml = skiff
        .ok(&["get", "pod", "hello", "-n", "demo", "-o", "yaml"])
        .stdout;
    let pod: Value = serde_yaml_ng::from_str(&yaml).expect("-o yaml parses");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], "hello");
    assert!(yaml.starts_with("apiVersion: v1\nkind: Pod\n"), "{yaml}");
    let json = skiff
        .ok(&["get", "pods", "-n", "demo", "-o", "json"])
        .stdout;
    let list: Value = serde_json::from_str(&json).expect("-o json parses");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["kind"], "Pod");
    assert_eq!(items[0]["apiVersion"], "v1");

    // Nothing found, not found, unknown type.
    let out = skiff.ok(&["get", "pods", "-n", "empty"]);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.trim(), "No resources found in empty namespace.");
    let stderr = skiff.fails(&["get", "pod", "nope", "-n", "demo"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
    let stderr = skiff.fails(&["get", "gadgets"]);
    assert!(
        stderr.contains(r#"the server doesn't have a resource type "gadgets""#),
        "{stderr}"
    );
}

#[test]
fn get_watch_prints_a_row_when_an_object_appears() {
    let (c, _) = applied();
    let mut watch = c.skiff.spawn(&["get", "pods", "-n", "demo", "-w"]);
    let header = watch.wait_for_line("with the header", |l| l.starts_with("NAME "));
    assert_eq!(header, "NAME READY STATUS RESTARTS AGE");
    watch.wait_for_line("for the existing pod", |l| l.starts_with("hello "));
    c.kubectl
        .ok(&["run", "later", "-n", "demo", "--image=hello:v1"]);
    let row = watch.wait_for_line("for the new pod", |l| l.starts_with("later "));
    assert!(row.starts_with("later 0/1 Pending 0 "), "{row}");

    // A name-only watch streams names.
    let mut names = c
        .skiff
        .spawn(&["get", "cm", "-n", "demo", "-w", "-o", "name"]);
    names.wait_for_line("for the existing config map", |l| l == "configmap/settings");
    c.kubectl.ok(&[
        "create",
        "configmap",
        "extra",
        "-n",
        "demo",
        "--from-literal=a=b",
    ]);
    names.wait_for_line("for the new config map", |l| l == "configmap/extra");
}

#[test]
fn describe_shows_the_pod_and_its_events() {
    let (c, tag) = applied();
    let uid = c.kubectl.ok(&[
        "get",
        "pod",
        "hello",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let event = |name: &str, pod: &str, uid: &str, message: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Event",
                "metadata": {{"name": "{name}", "namespace": "demo"}},
                "involvedObject": {{"apiVersion": "v1", "kind": "Pod", "name": "{pod}", "namespace": "demo", "uid": "{uid}"}},
                "reason": "Testing", "message": "{message}", "type": "Warning",
                "source": {{"component": "tester"}}, "count": 1,
                "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"}}"#
        )
    };
    let events = c.dir.path().join("events.json");
    std::fs::write(
        &events,
        format!(
            r#"{{"apiVersion": "v1", "kind": "List", "items": [{}, {}]}}"#,
            event("hello.1", "hello", &uid, "about hello"),
            event("ghost.1", "ghost", "0000", "about another pod"),
        ),
    )
    .expect("write events");
    c.kubectl
        .ok(&["create", "-f", events.to_str().expect("utf-8")]);

    let out = c.skiff.ok(&["describe", "pod", "hello", "-n", "demo"]);
    let lines = out.lines();
    for want in [
        "Name: hello",
        "Namespace: demo",
        "Labels: app=hello",
        "Status: Pending",
        "Containers:",
        "main:",
        &format!("Image: hello:{tag}"),
        "Events:",
        "Type Reason Age From Message",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "no line {want:?} in:\n{}",
            out.stdout
        );
    }
    let row = lines
        .iter()
        .find(|l| l.starts_with("Warning Testing "))
        .unwrap_or_else(|| panic!("no event row in:\n{}", out.stdout));
    assert!(row.ends_with(" tester about hello"), "{row}");
    assert!(
        !out.stdout.contains("about another pod"),
        "an event of another object is listed:\n{}",
        out.stdout
    );

    // kubectl finds the same event with the same field selector (the
    // scheduler's own events about this node-less pod are not ours to count).
    let theirs = c.kubectl.ok(&[
        "get",
        "events",
        "-n",
        "demo",
        "--field-selector",
        &format!("involvedObject.name=hello,involvedObject.uid={uid},reason=Testing"),
        "-o",
        "name",
    ]);
    assert_eq!(theirs.trim(), "event/hello.1");

    let cm = c
        .skiff
        .ok(&["describe", "cm/settings", "-n", "demo"])
        .lines();
    assert!(cm.iter().any(|l| l == "Events: <none>"), "{cm:?}");
    assert!(cm.iter().any(|l| l == "greeting:"), "{cm:?}");

    let stderr = c.skiff.fails(&["describe", "pod", "nope", "-n", "demo"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
}

#[test]
fn delete_prints_what_it_deleted_and_waits_until_it_is_gone() {
    let (c, _) = applied();
    let out = c.skiff.ok(&["delete", "pod", "hello", "-n", "demo"]);
    assert_eq!(out.stdout, "pod \"hello\" deleted\n");
    // --wait (the default) returned only once it was gone.
    let stderr = c.kubectl.fails(&["get", "pod", "hello", "-n", "demo"]);
    assert!(stderr.contains("NotFound"), "{stderr}");

    let stderr = c.skiff.fails(&["delete", "pod", "hello", "-n", "demo"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): pods "hello" not found"#
    );
    c.skiff
        .ok(&["delete", "pod", "hello", "-n", "demo", "--ignore-not-found"]);

    // By manifest: the objects it names.
    let manifest = c.dir.path().join("app").join("app.yaml");
    c.skiff
        .ok(&["apply", "-f", manifest.to_str().expect("utf-8")]);
    let out = c
        .skiff
        .ok(&["delete", "-f", manifest.to_str().expect("utf-8"), "--now"]);
    assert_eq!(
        out.lines(),
        [r#"configmap "settings" deleted"#, r#"pod "hello" deleted"#]
    );
    let left = c
        .kubectl
        .run(&["get", "pods,cm", "-n", "demo", "-o", "name"]);
    assert!(
        !left.stdout.contains("hello") && !left.stdout.contains("settings"),
        "{}",
        left.stdout
    );

    // By label, without waiting.
    c.kubectl.ok(&[
        "run",
        "a",
        "-n",
        "demo",
        "--image=x:v1",
        "--labels=tier=web",
    ]);
    c.kubectl
        .ok(&["run", "b", "-n", "demo", "--image=x:v1", "--labels=tier=db"]);
    let out = c.skiff.ok(&[
        "delete",
        "pods",
        "-l",
        "tier=web",
        "-n",
        "demo",
        "--wait=false",
    ]);
    assert_eq!(out.lines(), [r#"pod "a" deleted"#]);
    wait_until("pod a is gone", || {
        (!c.kubectl
            .run(&["get", "pod", "a", "-n", "demo"])
            .status
            .success())
        .then_some(())
    });
    c.kubectl.ok(&["get", "pod", "b", "-n", "demo"]);
}

#[test]
fn token_create_prints_a_join_token_stored_as_a_bootstrap_secret() {
    let c = cluster();
    // The control plane publishes its CA once its node gateway runs.
    wait_until("kube-public/cluster-info exists", || {
        c.kubectl
            .run(&["get", "configmap", "cluster-info", "-n", "kube-public"])
            .status
            .success()
            .then_some(())
    });
    let out = c.skiff.ok(&[
        "token",
        "create",
        "--ttl",
        "2h",
        "--description",
        "edge box",
    ]);
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the token: {}",
        out.stdout
    );
    let token = skiff_api::join::JoinToken::parse(out.stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {:?}", out.stdout));

    let pem = c.kubectl.ok(&[
        "get",
        "configmap",
        "cluster-info",
        "-n",
        "kube-public",
        "-o",
        r"jsonpath={.data.ca\.crt}",
    ]);
    assert_eq!(
        Some(token.ca_hash.clone()),
        skiff_api::join::pem_cert_hash(&pem),
        "the token carries the hash of the published CA"
    );

    let secret: Value = serde_json::from_str(&c.kubectl.ok(&[
        "get",
        "secret",
        &token.secret_name(),
        "-n",
        "kube-system",
        "-o",
        "json",
    ]))
    .expect("secret json");
    assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
    let data = |key: &str| {
        use base64::Engine as _;
        let encoded = secret["data"][key].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        String::from_utf8(bytes).expect("utf-8")
    };
    assert_eq!(data("token-id"), token.id);
    // Only the secret's sha256 is kept, never the secret.
    assert_eq!(
        data("token-secret-sha256"),
        skiff_api::join::token_secret_hash(&token.secret)
    );
    assert!(secret["data"].get("token-secret").is_none(), "{secret}");
    assert!(!secret.to_string().contains(&token.secret), "{secret}");
    assert_eq!(data("usage-bootstrap-authentication"), "true");
    assert_eq!(data("description"), "edge box");
    let expires: jiff::Timestamp = data("expiration").parse().expect("RFC 3339 expiration");
    let left = expires.duration_since(jiff::Timestamp::now());
    assert!(
        left > jiff::SignedDuration::from_secs(7_000)
            && left <= jiff::SignedDuration::from_secs(7_200),
        "expires in {left:?}"
    );

    let never = c.skiff.ok(&["token", "create", "--ttl", "0"]);
    let never = skiff_api::join::JoinToken::parse(never.stdout.trim()).expect("token");
    let fields = c.kubectl.ok(&[
        "get",
        "secret",
        &never.secret_name(),
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.data}",
    ]);
    assert!(!fields.contains("expiration"), "{fields}");

    let list = c.skiff.ok(&["token", "list"]).lines();
    assert_eq!(list[0], "ID TTL EXPIRES USAGES DESCRIPTION");
    assert!(
        list.iter().any(
            |l| l.starts_with(&format!("{} ", token.id)) && l.ends_with(" single-use edge box")
        ),
        "{list:?}"
    );
    assert!(
        !list.iter().any(|l| l.contains(&token.secret)),
        "token list must not show secrets: {list:?}"
    );
}

#[test]
fn version_and_errors_without_a_cluster() {
    let c = cluster();
    let out = c.skiff.ok(&["version"]);
    let lines = out.lines();
    assert_eq!(
        lines[0],
        format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        lines[1].starts_with("Server Version: v1.") && lines[1].contains("skiff"),
        "{lines:?}"
    );

    // A kubeconfig whose server does not answer: the client version still
    // prints, and the error says what to do.
    let kubeconfig = std::fs::read_to_string(c.dir.path().join("data").join("kubeconfig"))
        .expect("read kubeconfig");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = listener.local_addr().expect("addr");
    drop(listener);
    let server_line = kubeconfig
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .expect("server line");
    let dead_config = c.dir.path().join("dead-kubeconfig");
    std::fs::write(
        &dead_config,
        kubeconfig.replace(server_line.trim(), &format!("server: https://{dead}")),
    )
    .expect("write kubeconfig");
    let dead_skiff = Skiff::new(&dead_config);
    let out = dead_skiff.run(&["version"]);
    assert!(!out.status.success());
    assert_eq!(
        out.stdout.trim(),
        format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
    );
    let hint =
        format!("no cluster at https://{dead}: start one with `skiff up`, or pass --kubeconfig");
    assert!(out.stderr.contains(&hint), "{}", out.stderr);
    for args in [
        vec!["get", "pods"],
        vec!["apply", "-f", "-"],
        vec!["logs", "hello"],
    ] {
        let out = dead_skiff.run(&args);
        assert!(!out.status.success(), "{args:?}");
        if args[0] != "apply" {
            assert!(out.stderr.contains(&hint), "{args:?}: {}", out.stderr);
        }
    }

    // No kubeconfig at all.
    let missing = Skiff::new(&c.dir.path().join("nowhere"));
    let stderr = missing.fails(&["get", "pods"]);
    assert!(
        stderr.contains("start a cluster with `skiff up`, or pass --kubeconfig"),
        "{stderr}"
    );

    // logs: a pod that does not exist, as the API words it.
    let stderr = c.skiff.fails(&["logs", "nope"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
}

#[test]
fn logs_stream_from_a_pod_running_on_a_node() {
    let c = cluster();
    let server = &c.server;
    let token = c.skiff.ok(&["token", "create"]).stdout.trim().to_string();
    let _node = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &c.dir.path().join("n1"),
        Some(&token),
        &[],
    );
    wait_until("node n1 is Ready", || {
        let out = c.kubectl.run(&[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        ]);
        (out.stdout == "True").then_some(())
    });

    // The image is an absolute path to a built sample: apply pushes it.
    let ticker = samples::sample_path("ticker");
    let manifest = c.dir.path().join("ticker.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: ticker}}\nspec:\n  nodeName: n1\n  containers:\n  - name: main\n    image: {}\n",
            ticker.display()
        ),
    )
    .expect("write manifest");
    let out = c
        .skiff
        .ok(&["apply", "-f", manifest.to_str().expect("utf-8")]);
    let lines = out.lines();
    assert!(
        lines[0].starts_with("component/ticker:") && lines[0].ends_with(" pushed"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "pod/ticker created");

    wait_until("ticker has printed twice", || {
        let out = c.skiff.run(&["logs", "ticker"]);
        (out.status.success() && out.stdout.contains("tick 2\n")).then_some(())
    });
    let last = c.skiff.ok(&["logs", "ticker", "--tail", "1"]).lines();
    assert_eq!(last.len(), 1, "{last:?}");
    assert!(last[0].starts_with("tick "), "{last:?}");
    let by_container = c
        .skiff
        .ok(&["logs", "pod/ticker", "-c", "main", "--tail", "1"]);
    assert!(
        by_container.stdout.starts_with("tick "),
        "{}",
        by_container.stdout
    );
    let stderr = c.skiff.fails(&["logs", "ticker", "-c", "nope"]);
    assert!(stderr.starts_with("Error from server"), "{stderr}");

    // -f streams lines as the pod writes them.
    let mut follow = c.skiff.spawn(&["logs", "-f", "ticker", "--tail", "1"]);
    let first = follow.wait_for_line("a tick line", |l| l.starts_with("tick "));
    let n: u64 = first
        .trim_start_matches("tick ")
        .parse()
        .expect("tick number");
    follow.wait_for_line("a later tick, streamed", |l| l == format!("tick {}", n + 2));
    drop(follow);

    // describe shows the running container.
    let described = c.skiff.ok(&["describe", "pod", "ticker"]).lines();
    for want in [
        "Status: Running",
        "State: Running",
        "Ready: True",
        "Restart Count: 0",
    ] {
        assert!(
            described.iter().any(|l| l == want),
            "no {want:?} in {described:#?}"
        );
    }
    assert!(
        described.iter().any(|l| l.starts_with("Node: n1")),
        "{described:#?}"
    );

    // delete waits until the node has stopped the pod and it is gone.
    let out = c.skiff.ok(&["delete", "pod", "ticker", "--now"]);
    assert_eq!(out.stdout, "pod \"ticker\" deleted\n");
    let stderr = c.kubectl.fails(&["get", "pod", "ticker"]);
    assert!(stderr.contains("NotFound"), "{stderr}");
}
