//! `describe pod`: node, status, IPs, each container's image, state,
//! readiness and restarts, and the pod's conditions, as kubectl shows them.

use serde_json::Value;

use super::{Describe, describe_time, scalar_text};

pub fn describe(d: &mut Describe, pod: &Value) {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let meta = &pod["metadata"];
    d.field(0, "Name", meta["name"].as_str().unwrap_or(""));
    d.field(0, "Namespace", meta["namespace"].as_str().unwrap_or(""));
    if let Some(sa) = spec["serviceAccountName"].as_str() {
        d.field(0, "Service Account", sa);
    }
    let node = match (spec["nodeName"].as_str(), status["hostIP"].as_str()) {
        (Some(node), Some(ip)) => format!("{node}/{ip}"),
        (Some(node), None) => node.to_string(),
        (None, _) => "<none>".to_string(),
    };
    d.field(0, "Node", &node);
    if let Some(start) = status["startTime"].as_str() {
        d.field(0, "Start Time", &describe_time(start));
    }
    d.map(0, "Labels", &meta["labels"]);
    d.map(0, "Annotations", &meta["annotations"]);
    let phase = status["phase"].as_str().unwrap_or("Unknown");
    match meta["deletionTimestamp"].as_str() {
        Some(at) => {
            d.field(
                0,
                "Status",
                &format!("Terminating (lasts {})", super::age_since(at)),
            );
            if let Some(grace) = meta["deletionGracePeriodSeconds"].as_i64() {
                d.field(0, "Termination Grace Period", &format!("{grace}s"));
            }
        }
        None => d.field(0, "Status", phase),
    }
    for (key, label) in [("reason", "Reason"), ("message", "Message")] {
        if let Some(text) = status[key].as_str().filter(|s| !s.is_empty()) {
            d.field(0, label, text);
        }
    }
    d.field(0, "IP", status["podIP"].as_str().unwrap_or(""));
    let ips: Vec<&str> = status["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["ip"].as_str())
        .collect();
    if ips.is_empty() {
        d.field(0, "IPs", "<none>");
    } else {
        d.section(0, "IPs");
        for ip in ips {
            d.field(1, "IP", ip);
        }
    }
    if let Some(owner) = super::controller_of(pod) {
        d.field(0, "Controlled By", &owner);
    }
    for (list, statuses, title) in [
        ("initContainers", "initContainerStatuses", "Init Containers"),
        ("containers", "containerStatuses", "Containers"),
    ] {
        let containers = spec[list].as_array().cloned().unwrap_or_default();
        if containers.is_empty() {
            continue;
        }
        d.section(0, title);
        for c in &containers {
            let name = c["name"].as_str().unwrap_or("");
            let status = status[statuses]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"].as_str() == Some(name));
            container(d, c, status);
        }
    }
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if !conditions.is_empty() {
        d.section(0, "Conditions");
        d.raw(1, "Type\tStatus");
        for c in &conditions {
            d.raw(
                1,
                &format!(
                    "{} \t{} ",
                    c["type"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or("")
                ),
            );
        }
    }
    volumes(d, &spec["volumes"]);
    if let Some(qos) = status["qosClass"].as_str() {
        d.field(0, "QoS Class", qos);
    }
    d.map(0, "Node-Selectors", &spec["nodeSelector"]);
}

fn container(d: &mut Describe, c: &Value, status: Option<&Value>) {
    d.section(1, c["name"].as_str().unwrap_or(""));
    if let Some(id) = status.and_then(|s| s["containerID"].as_str()) {
        d.field(2, "Container ID", id);
    }
    d.field(2, "Image", c["image"].as_str().unwrap_or(""));
    if let Some(id) = status.and_then(|s| s["imageID"].as_str()) {
        d.field(2, "Image ID", id);
    }
    let ports: Vec<String> = c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                scalar_text(&p["containerPort"]),
                p["protocol"].as_str().unwrap_or("TCP")
            )
        })
        .collect();
    match ports.len() {
        0 => {}
        1 => d.field(2, "Port", &ports[0]),
        _ => d.field(2, "Ports", &ports.join(", ")),
    }
    for (key, label) in [("command", "Command"), ("args", "Args")] {
        let items: Vec<String> = c[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(scalar_text)
            .collect();
        if !items.is_empty() {
            d.section(2, label);
            for item in items {
                d.raw(3, &item);
            }
        }
    }
    if let Some(status) = status {
        state(d, "State", &status["state"]);
        if status["lastState"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
        {
            state(d, "Last State", &status["lastState"]);
        }
        let ready = if status["ready"] == true {
            "True"
        } else {
            "False"
        };
        d.field(2, "Ready", ready);
        d.field(2, "Restart Count", &scalar_text(&status["restartCount"]));
    }
    for (key, label) in [("limits", "Limits"), ("requests", "Requests")] {
        if let Some(map) = c["resources"][key].as_object().filter(|m| !m.is_empty()) {
            d.section(2, label);
            for (k, v) in map {
                d.field(3, k, &scalar_text(v));
            }
        }
    }
    let env = c["env"].as_array().cloned().unwrap_or_default();
    if env.is_empty() {
        d.field(2, "Environment", "<none>");
    } else {
        d.section(2, "Environment");
        for e in &env {
            let value = match e["value"].as_str() {
                Some(v) => v.to_string(),
                None if e["valueFrom"].is_object() => "<set from a reference>".to_string(),
                None => String::new(),
            };
            d.field(3, e["name"].as_str().unwrap_or(""), &value);
        }
    }
    let mounts: Vec<String> = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let mode = if m["readOnly"] == true { "ro" } else { "rw" };
            format!(
                "{} from {} ({mode})",
                m["mountPath"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    if mounts.is_empty() {
        d.field(2, "Mounts", "<none>");
    } else {
        d.section(2, "Mounts");
        for m in mounts {
            d.raw(3, &m);
        }
    }
}

/// `State: Running` and its details, from a `ContainerState`.
fn state(d: &mut Describe, label: &str, state: &Value) {
    if let Some(running) = state["running"].as_object() {
        d.field(2, label, "Running");
        if let Some(at) = running.get("startedAt").and_then(Value::as_str) {
            d.field(3, "Started", &describe_time(at));
        }
    } else if let Some(waiting) = state["waiting"].as_object() {
        d.field(2, label, "Waiting");
        if let Some(reason) = waiting.get("reason").and_then(Value::as_str) {
            d.field(3, "Reason", reason);
        }
        if let Some(message) = waiting.get("message").and_then(Value::as_str) {
            d.field(3, "Message", message);
        }
    } else if let Some(done) = state["terminated"].as_object() {
        d.field(2, label, "Terminated");
        let text = |k: &str| done.get(k).map(scalar_text);
        if let Some(reason) = text("reason") {
            d.field(3, "Reason", &reason);
        }
        if let Some(message) = text("message") {
            d.field(3, "Message", &message);
        }
        d.field(
            3,
            "Exit Code",
            &text("exitCode").unwrap_or_else(|| "0".into()),
        );
        if let Some(at) = done.get("startedAt").and_then(Value::as_str) {
            d.field(3, "Started", &describe_time(at));
        }
        if let Some(at) = done.get("finishedAt").and_then(Value::as_str) {
            d.field(3, "Finished", &describe_time(at));
        }
    } else {
        d.field(2, label, "Waiting");
    }
}

fn volumes(d: &mut Describe, volumes: &Value) {
    let volumes = volumes.as_array().cloned().unwrap_or_default();
    if volumes.is_empty() {
        d.field(0, "Volumes", "<none>");
        return;
    }
    d.section(0, "Volumes");
    for v in &volumes {
        d.section(1, v["name"].as_str().unwrap_or(""));
        for (key, source) in v.as_object().into_iter().flatten() {
            if key == "name" {
                continue;
            }
            d.field(2, "Type", &super::smart_label(key));
            for (k, val) in source.as_object().into_iter().flatten() {
                d.field(2, &super::smart_label(k), &scalar_text(val));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn describes_a_running_pod() {
        let pod = json!({
            "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "web", "image": "hello:v1", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.5",
                "podIPs": [{"ip": "10.1.0.5"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let mut d = Describe::default();
        describe(&mut d, &pod);
        let text = d.render();
        let squeezed: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for want in [
            "Node: n1/10.0.0.1",
            "Labels: app=hello",
            "Status: Running",
            "IP: 10.1.0.5",
            "Containers:",
            "web:",
            "Image: hello:v1",
            "Port: 8080/TCP",
            "State: Running",
            "Ready: True",
            "Restart Count: 2",
            "Conditions:",
            "Type Status",
            "Ready True",
        ] {
            assert!(
                squeezed.iter().any(|l| l == want),
                "no {want:?} in:\n{text}"
            );
        }
    }
}
