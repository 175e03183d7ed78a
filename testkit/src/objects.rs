//! Reading and writing API objects in end-to-end tests: GET as JSON, wait for
//! nodes and pods to be ready, apply a manifest with the real kubectl, push the
//! sample components.

use std::path::Path;

use serde_json::Value;

use crate::cluster::{Kubectl, Server, Skiff, wait_until};
use crate::samples;

/// Pushes the samples the tests use under `NAME:v1`.
pub fn push_samples(skiff: &Skiff, names: &[&str]) {
    for name in names {
        let path = samples::sample_path(name);
        let path = path.to_str().expect("utf-8 path");
        skiff.ok(&["push", path, "--name", &format!("{name}:v1")]);
    }
}

/// A reusable join token: the tests join several nodes with one.
pub fn token(skiff: &Skiff) -> String {
    let out = skiff.ok(&["token", "create", "--reusable"]);
    out.stdout.trim().to_string()
}

/// GET an API path as JSON.
pub fn get_json(server: &Server, path: &str) -> Option<Value> {
    match server.api_get(path) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

pub fn pod(server: &Server, name: &str) -> Option<Value> {
    get_json(server, &format!("/api/v1/namespaces/default/pods/{name}"))
}

pub fn condition(obj: &Value, kind: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

/// Whether the object's `Ready` condition is `True` (a Pod or a Node).
pub fn is_ready(obj: &Value) -> bool {
    condition(obj, "Ready").as_deref() == Some("True")
}

/// A pod that serves: Running, Ready and not being deleted.
pub fn is_serving(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && is_ready(pod)
        && pod["metadata"]["deletionTimestamp"].is_null()
}

/// `metadata.name`, or "" when missing.
pub fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// The node a pod is bound to, or "" when unbound.
pub fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"].as_str().unwrap_or("").to_string()
}

pub fn wait_node_ready(server: &Server, name: &str) -> Value {
    wait_until(&format!("node {name} is Ready"), || {
        let node = get_json(server, &format!("/api/v1/nodes/{name}"))?;
        (condition(&node, "Ready").as_deref() == Some("True")).then_some(node)
    })
}

pub fn wait_pod_ready(server: &Server, name: &str) -> Value {
    wait_until(&format!("pod {name} is Running and Ready"), || {
        let pod = pod(server, name)?;
        (pod["status"]["phase"] == "Running" && condition(&pod, "Ready").as_deref() == Some("True"))
            .then_some(pod)
    })
}

pub fn apply(kubectl: &Kubectl, dir: &Path, name: &str, yaml: &str) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write manifest");
    kubectl.ok(&["apply", "-f", file.to_str().expect("utf-8 path")]);
}
