//! Malformed manifests are refused with a Kubernetes `Status` that names the
//! field, through kubectl and through the raw API, and nothing is written.
//! Garbage pushed as a component is refused too.

use skiff_testkit::api;
use skiff_testkit::cluster;

use std::path::{Path, PathBuf};

use api::{Api, Reply};
use cluster::{Kubectl, Server};
use serde_json::{Value, json};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests/invalid")
        .join(name)
}

/// A manifest file as the JSON body kubectl would send.
fn body(name: &str) -> Value {
    let text = std::fs::read_to_string(manifest(name)).expect("read manifest");
    serde_yaml_ng::from_str(&text).expect("manifest is YAML")
}

/// A valid Deployment, to derive wrong bodies from.
fn valid_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "good" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "good" } },
            "template": {
                "metadata": { "labels": { "app": "good" } },
                "spec": { "containers": [{ "name": "web", "image": "hello:v1" }] }
            }
        }
    })
}

/// A server in its own temporary directory, kubectl, and a runtime for HTTP calls.
struct Cluster {
    kubectl: Kubectl,
    api: Api,
    runtime: tokio::runtime::Runtime,
    server: Server,
    _dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let api = Api::new(&server.kubeconfig());
    Cluster {
        kubectl: Kubectl::new(&server.kubeconfig()),
        api,
        runtime,
        server,
        _dir: dir,
    }
}

impl Cluster {
    fn post(&self, path: &str, body: &Value) -> Reply {
        self.runtime
            .block_on(self.api.post_json(path, body))
            .expect("POST")
    }

    fn get(&self, path: &str) -> Reply {
        self.runtime.block_on(self.api.get(path)).expect("GET")
    }

    /// Nothing was written: the API lists no deployments and kubectl says so.
    fn assert_no_deployments(&self, after: &str) {
        let list = self.get(DEPLOYMENTS);
        assert_eq!(list.status, 200, "list deployments: {}", list.text());
        assert_eq!(
            list.json()["items"],
            json!([]),
            "after {after}, deployments were written: {}",
            list.text()
        );
        let out = self.kubectl.run(&["get", "deployments"]);
        assert!(
            out.status.success(),
            "kubectl get deployments failed: {}",
            out.stderr
        );
        assert_eq!(
            out.stdout.trim(),
            "",
            "after {after}, kubectl lists deployments:\n{}",
            out.stdout
        );
        assert!(
            out.stderr
                .contains("No resources found in default namespace."),
            "stderr: {}",
            out.stderr
        );
    }
}

/// Asserts a failure `Status` with this code and reason, and returns it.
fn assert_status(reply: &Reply, code: u16, reason: &str, what: &str) -> Value {
    assert_eq!(reply.status.as_u16(), code, "{what}: {}", reply.text());
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: Content-Type {content_type:?}"
    );
    let status = reply.json();
    assert_eq!(status["kind"], "Status", "{what}: {status}");
    assert_eq!(status["apiVersion"], "v1", "{what}: {status}");
    assert_eq!(status["status"], "Failure", "{what}: {status}");
    assert_eq!(status["reason"], reason, "{what}: {status}");
    assert_eq!(status["code"], code, "{what}: {status}");
    assert!(
        status["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message in {status}"
    );
    status
}

/// The `details.causes[].field` of a Status.
fn cause_fields(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kubectl_apply_of_invalid_manifests_is_refused() {
    let c = cluster();
    let cases = [
        (
            "bad-name.yaml",
            vec![
                "The Deployment \"Bad_Name\" is invalid",
                "metadata.name: Invalid value: \"Bad_Name\"",
            ],
        ),
        (
            "no-selector.yaml",
            vec![
                "The Deployment \"no-selector\" is invalid",
                "spec.selector: Required value",
            ],
        ),
        ("replicas-string.yaml", vec!["spec.replicas"]),
        (
            "unknown-field.yaml",
            vec![
                "Error from server (BadRequest)",
                "unknown field \"spec.replicaz\"",
            ],
        ),
        (
            "widget.yaml",
            vec!["no matches for kind \"Widget\" in version \"v1\""],
        ),
    ];
    for (file, expected) in cases {
        let path = manifest(file);
        let stderr = c
            .kubectl
            .fails(&["apply", "-f", path.to_str().expect("utf-8 path")]);
        for text in expected {
            assert!(
                stderr.contains(text),
                "kubectl apply -f {file}: stderr lacks {text:?}:\n{stderr}"
            );
        }
        c.assert_no_deployments(file);
    }
}

#[test]
fn http_create_of_invalid_deployments_gets_a_status_naming_the_field() {
    let c = cluster();

    let reply = c.post(DEPLOYMENTS, &body("bad-name.yaml"));
    let status = assert_status(&reply, 422, "Invalid", "Bad_Name");
    assert_eq!(cause_fields(&status), ["metadata.name"], "{status}");
    assert_eq!(status["details"]["name"], "Bad_Name", "{status}");
    assert_eq!(status["details"]["group"], "apps", "{status}");
    assert_eq!(status["details"]["kind"], "Deployment", "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Deployment.apps \"Bad_Name\" is invalid: "),
        "{status}"
    );
    c.assert_no_deployments("Bad_Name");

    let reply = c.post(DEPLOYMENTS, &body("no-selector.yaml"));
    let status = assert_status(&reply, 422, "Invalid", "no spec.selector");
    assert!(
        cause_fields(&status).iter().any(|f| f == "spec.selector"),
        "{status}"
    );
    c.assert_no_deployments("no spec.selector");

    // Kubernetes refuses a value of the wrong type while decoding (400
    // BadRequest); a 422 Invalid would name the field just as well.
    let reply = c.post(DEPLOYMENTS, &body("replicas-string.yaml"));
    let (code, reason) = if reply.status == 400 {
        (400, "BadRequest")
    } else {
        (422, "Invalid")
    };
    let status = assert_status(&reply, code, reason, "replicas: \"three\"");
    assert_eq!(cause_fields(&status), ["spec.replicas"], "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.replicas"),
        "{status}"
    );
    c.assert_no_deployments("replicas: \"three\"");

    // A body whose kind or version is not the URL's.
    let mut stateful_set = valid_deployment();
    stateful_set["kind"] = json!("StatefulSet");
    let mut core_v1 = valid_deployment();
    core_v1["apiVersion"] = json!("v1");
    for (what, body) in [
        ("kind StatefulSet", stateful_set),
        ("apiVersion v1", core_v1),
        ("kind Widget", body("widget.yaml")),
    ] {
        let reply = c.post(DEPLOYMENTS, &body);
        assert_status(&reply, 400, "BadRequest", what);
        c.assert_no_deployments(what);
    }

    // The valid body is created: the refusals above were about the body.
    let reply = c.post(DEPLOYMENTS, &valid_deployment());
    assert_eq!(reply.status, 201, "{}", reply.text());
    let out = c.kubectl.ok(&["get", "deployments", "-o", "name"]);
    assert_eq!(out.trim(), "deployment.apps/good");
}

#[test]
fn strict_field_validation_names_the_unknown_field() {
    let c = cluster();
    let typo = body("unknown-field.yaml");

    let reply = c.post(&format!("{DEPLOYMENTS}?fieldValidation=Strict"), &typo);
    let status = assert_status(&reply, 400, "BadRequest", "spec.replicaz, Strict");
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.contains("unknown field \"spec.replicaz\""),
        "{status}"
    );
    c.assert_no_deployments("spec.replicaz with fieldValidation=Strict");

    let reply = c.post(&format!("{DEPLOYMENTS}?fieldValidation=Bogus"), &typo);
    let status = assert_status(&reply, 422, "Invalid", "fieldValidation=Bogus");
    assert_eq!(cause_fields(&status), ["fieldValidation"], "{status}");
    c.assert_no_deployments("fieldValidation=Bogus");

    // Warn (the default without the parameter) creates the object, drops the
    // field and says so in a Warning header.
    let reply = c.post(DEPLOYMENTS, &typo);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let warnings: Vec<&str> = reply
        .headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("299 ") && w.contains(r#"unknown field \"spec.replicaz\""#)),
        "warnings: {warnings:?}"
    );
    let created = reply.json();
    assert!(
        created["spec"].get("replicaz").is_none(),
        "the unknown field was stored: {created}"
    );
    assert_eq!(
        created["spec"]["replicas"], 1,
        "replicas defaults to 1: {created}"
    );
}

#[test]
fn push_of_garbage_is_refused() {
    let c = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.wasm");
    let mut bytes: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    bytes[0] = b'G'; // never the `\0asm` magic, whatever the random bytes
    std::fs::write(&garbage, &bytes).expect("write garbage");

    let mut push = std::process::Command::new(cluster::skiff());
    push.arg("push")
        .arg(&garbage)
        .args(["--name", "junk:v1", "--kubeconfig"])
        .arg(c.server.kubeconfig())
        .env_remove("KUBECONFIG");
    let out = cluster::run(push, "skiff push garbage.wasm");
    assert!(
        !out.status.success(),
        "skiff push of garbage succeeded:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.to_lowercase().contains("not a webassembly"),
        "skiff push should say the file is not WebAssembly:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Error from server (BadRequest)"),
        "skiff push should show the API's reason, as kubectl does:\n{}",
        out.stderr
    );

    let reply = c.runtime.block_on(c.api.request(
        http::Method::POST,
        "/apis/skiff.dev/v1alpha1/components?name=junk:v1",
        "application/wasm",
        bytes,
    ));
    let reply = reply.expect("POST garbage");
    let status = assert_status(&reply, 400, "BadRequest", "garbage component");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("WebAssembly"),
        "{status}"
    );

    let out = c.kubectl.run(&["get", "components"]);
    assert!(
        out.status.success(),
        "kubectl get components failed: {}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        "",
        "a component was stored:\n{}",
        out.stdout
    );
}
