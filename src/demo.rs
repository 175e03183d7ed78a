//! `skiff up --demo`: pushes the hello sample, runs it as a pod on the node, waits
//! until it is Ready and prints how to reach it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_control::ControlPlane;

use skiff_client::ApiClient;

/// The demo pod's name and namespace.
const POD: &str = "hello";
const NAMESPACE: &str = "default";

pub async fn deploy(plane: &ControlPlane, node: &str, component: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(component).with_context(|| {
        format!(
            "the demo runs the hello sample, but {} cannot be read: build it with `samples/build.sh -p hello`, or pass --demo-component FILE",
            component.display()
        )
    })?;
    let client = ApiClient::from_kubeconfig(plane.kubeconfig())?;
    let pushed = crate::push::push_component(&client, bytes, "hello:demo")
        .await
        .context("push the hello sample")?;
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": NAMESPACE, "labels": {"app": "hello"}},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "hello",
                "image": format!("{}:{}", pushed.name, pushed.tag),
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2},
            }],
        },
    });
    let path =
        format!("/api/v1/namespaces/{NAMESPACE}/pods/{POD}?fieldManager=skiff-demo&force=true");
    client
        .send(
            http::Method::PATCH,
            &path,
            "application/apply-patch+yaml",
            Bytes::from(pod.to_string()),
        )
        .await?
        .json()
        .context("create the hello pod")?;
    wait_ready(&client).await?;
    let kubeconfig = plane.kubeconfig().display();
    println!("The hello sample is running as pod {NAMESPACE}/{POD}. Try:");
    println!(
        "  kubectl --kubeconfig {kubeconfig} get --raw /api/v1/namespaces/{NAMESPACE}/pods/{POD}/proxy/"
    );
    println!("  kubectl --kubeconfig {kubeconfig} get pods -o wide");
    println!("  kubectl --kubeconfig {kubeconfig} logs {POD}");
    Ok(())
}

async fn wait_ready(client: &ApiClient) -> anyhow::Result<()> {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{POD}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        last = client.get_json(&path).await?;
        let ready = last
            .at("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        if ready {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the hello pod did not become Ready within 60 s; its status: {}",
        last.get("status").cloned().unwrap_or(Value::Null)
    )
}
