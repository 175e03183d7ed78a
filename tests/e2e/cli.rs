//! The `skiff` command line: `skiff up` serves the embedded default and refuses
//! a data directory in use; `skiff push` stores a real component that `kubectl`
//! then lists; `skiff up --demo` runs the hello sample and says how to reach it.

use skiff_testkit::cluster;
use skiff_testkit::samples;

use cluster::{Kubectl, Server};

/// A minimal command component (`wasi:cli/run`), assembled from text.
const COMMAND_COMPONENT: &str = r#"(component
    (core module $m (func (export "run") (result i32) i32.const 0))
    (core instance $i (instantiate $m))
    (func $run (result (result)) (canon lift (core func $i "run")))
    (instance $inst (export "run" (func $run)))
    (export "wasi:cli/run@0.2.0" (instance $inst)))"#;

#[test]
fn up_serves_and_push_stores_a_component() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start_command("up", &data);
    let kubectl = Kubectl::new(&server.kubeconfig());

    let namespaces = kubectl.ok(&["get", "namespaces", "-o", "name"]);
    assert!(
        namespaces.lines().any(|l| l.trim() == "namespace/default"),
        "{namespaces}"
    );

    let wasm = dir.path().join("tiny.wasm");
    let bytes = wat::parse_str(COMMAND_COMPONENT).expect("assemble the component");
    std::fs::write(&wasm, &bytes).expect("write the component");
    let mut push = std::process::Command::new(cluster::skiff());
    push.arg("push")
        .arg(&wasm)
        .args(["--name", "tiny:v1", "--kubeconfig"])
        .arg(server.kubeconfig())
        .env_remove("KUBECONFIG");
    let out = cluster::run(push, "skiff push tiny.wasm");
    assert!(
        out.status.success(),
        "skiff push failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    let line = out.stdout.trim();
    assert!(line.starts_with("pushed tiny:v1 sha256:"), "{line}");
    assert!(
        line.contains(&format!("({} bytes, Command)", bytes.len())),
        "{line}"
    );

    let listed = kubectl.ok(&["get", "components"]);
    let header = listed
        .lines()
        .next()
        .map(cluster::squeeze)
        .unwrap_or_default();
    assert!(
        header.starts_with("NAME TAG DIGEST KIND SIZE AGE"),
        "{listed}"
    );
    let row = listed
        .lines()
        .find(|l| l.starts_with("tiny.v1"))
        .map(cluster::squeeze)
        .unwrap_or_default();
    assert!(
        row.starts_with("tiny.v1 v1 sha256:") && row.contains(" Command "),
        "{listed}"
    );
}

#[test]
fn second_up_on_a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut first = Server::start_command("up", &data);
    let mut second = std::process::Command::new(cluster::skiff());
    second
        .arg("up")
        .arg("--data-dir")
        .arg(&data)
        .args(["--api-addr", "127.0.0.1:0"])
        .env_remove("KUBECONFIG");
    let out = cluster::run(second, "a second skiff up");
    assert!(
        !out.status.success(),
        "a second skiff up on the same data dir started:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("in use"),
        "the error should say the data directory is in use:\n{}",
        out.stderr
    );
    assert!(first.is_running(), "the first skiff up must keep running");
}

#[test]
fn up_demo_runs_hello_and_says_how_to_reach_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let hello = samples::sample_path("hello");
    let hello = hello.to_str().expect("utf-8 path");
    let server = Server::start_with("up", &data, &["--demo", "--demo-component", hello]);

    // The printed command reaches the hello pod through the API's pod proxy.
    let line = server.wait_for_line("a kubectl get --raw command", |l| {
        l.trim().starts_with("kubectl ") && l.contains(" get --raw ")
    });
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let out = Kubectl::new(&server.kubeconfig()).ok(&args[2..]);
    assert_eq!(out.trim(), "Hello from hello!", "{line}");
    assert_eq!(
        args[..2],
        ["--kubeconfig", &*server.kubeconfig().to_string_lossy()]
    );

    // kubectl sees the node Ready and the pod Running on it.
    let kubectl = Kubectl::new(&server.kubeconfig());
    let nodes = kubectl.ok(&["get", "nodes", "--no-headers"]);
    assert!(
        nodes
            .lines()
            .any(|l| cluster::squeeze(l).contains(" Ready ")),
        "{nodes}"
    );
    let pods = kubectl.ok(&["get", "pods", "--no-headers"]);
    let row = pods
        .lines()
        .map(cluster::squeeze)
        .find(|l| l.starts_with("hello "));
    assert!(
        row.as_deref().is_some_and(|r| r.contains(" 1/1 Running ")),
        "{pods}"
    );
}
