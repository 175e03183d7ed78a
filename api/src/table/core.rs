//! Printers for the core kinds that are not about networking or storage: Pod,
//! Node, Namespace, Event, ConfigMap, Secret, ServiceAccount, ResourceQuota.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, NAME_DOC, Printer, age_cell, arr_at, int_at, is_set, name_cell, obj_at,
    opt_bool, opt_str, since, str_at, timestamp_at,
};
use crate::quantity::quantity_string;

pub(super) const POD: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        Column::new(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        Column::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column::new(
            "IP",
            "string",
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        )
        .wide(),
        Column::new(
            "Node",
            "string",
            "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
        )
        .wide(),
        Column::new(
            "Nominated Node",
            "string",
            "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
        )
        .wide(),
        Column::new(
            "Readiness Gates",
            "string",
            "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
        )
        .wide(),
    ],
    cells: pod_cells,
};

pub(super) const NODE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "The status of the node"),
        Column::new("Roles", "string", "The roles of the node"),
        AGE,
        Column::new("Version", "string", "Kubelet Version reported by the node."),
        Column::new("Internal-IP", "string", NODE_ADDRESSES_DOC).wide(),
        Column::new("External-IP", "string", NODE_ADDRESSES_DOC).wide(),
        Column::new(
            "OS-Image",
            "string",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        )
        .wide(),
        Column::new(
            "Kernel-Version",
            "string",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        )
        .wide(),
        Column::new(
            "Container-Runtime",
            "string",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        )
        .wide(),
    ],
    cells: node_cells,
};

const NODE_ADDRESSES_DOC: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

pub(super) const NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "The status of the namespace"),
        AGE,
    ],
    cells: namespace_cells,
};

pub(super) const EVENT: Printer = Printer {
    columns: &[
        Column::new(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        Column::new(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        Column::new(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        Column::new("Object", "string", "The object that this event is about."),
        Column::new(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        )
        .wide(),
        Column::new(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
        )
        .wide(),
        Column::new(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
        ),
        Column::new(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        )
        .wide(),
        Column::new(
            "Count",
            "string",
            "The number of times this event has occurred.",
        )
        .wide(),
        Column::new("Name", "string", NAME_DOC).format("name").wide(),
    ],
    cells: event_cells,
};

pub(super) const CONFIG_MAP: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Data",
            "string",
            "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
        ),
        AGE,
    ],
    cells: config_map_cells,
};

pub(super) const SECRET: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
        ),
        Column::new(
            "Data",
            "string",
            "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
        ),
        AGE,
    ],
    cells: secret_cells,
};

pub(super) const SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Secrets",
            "string",
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
        ),
        AGE,
    ],
    cells: service_account_cells,
};

pub(super) const RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column::new(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        AGE,
    ],
    cells: resource_quota_cells,
};

/// `api.PodReasonSchedulingGated`.
const SCHEDULING_GATED: &str = "SchedulingGated";
/// `node.NodeUnreachablePodReason`: the pod's node stopped reporting.
const NODE_LOST: &str = "NodeLost";
/// Labels that give a node its roles: `node-role.kubernetes.io/<role>` and
/// `kubernetes.io/role=<role>`.
const NODE_ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

/// `status.phase` of a pod; a pod without one was just created, and Kubernetes
/// writes `Pending` on create.
fn pod_phase(pod: &Value) -> &str {
    opt_str(pod, "/status/phase")
        .filter(|p| !p.is_empty())
        .unwrap_or("Pending")
}

/// `printPod`: NAME READY STATUS RESTARTS AGE | IP NODE NOMINATED-NODE
/// READINESS-GATES.
fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let phase = pod_phase(pod);
    let mut reason = opt_str(pod, "/status/reason")
        .filter(|r| !r.is_empty())
        .unwrap_or(phase)
        .to_string();
    let conditions = arr_at(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == SCHEDULING_GATED)
    {
        reason = SCHEDULING_GATED.to_string();
    }

    let init_specs = arr_at(pod, "/spec/initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .rev()
            .find(|c| str_at(c, "/name") == name)
            .is_some_and(is_restartable_init_container)
    };
    let total = arr_at(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init_container(c))
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    for (i, status) in arr_at(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int_at(status, "/restartCount");
        let finished = timestamp_at(status, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = last_restart.max(finished);
        let sidecar = is_sidecar(str_at(status, "/name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = last_sidecar_restart.max(finished);
        }
        let terminated = obj_at(status, "/state/terminated").is_some();
        let waiting_reason = obj_at(status, "/state/waiting")
            .map(|_| str_at(status, "/state/waiting/reason"))
            .unwrap_or("");
        if terminated && int_at(status, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if sidecar && opt_bool(status, "/started") == Some(true) {
            if opt_bool(status, "/ready") == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if terminated {
            // Initialization failed.
            let why = str_at(status, "/state/terminated/reason");
            if !why.is_empty() {
                format!("Init:{why}")
            } else {
                let signal = int_at(status, "/state/terminated/signal");
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    let code = int_at(status, "/state/terminated/exitCode");
                    format!("Init:ExitCode:{code}")
                }
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_is_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Backwards, so that the first container's state wins.
        for status in arr_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(status, "/restartCount");
            last_restart =
                last_restart.max(timestamp_at(status, "/lastState/terminated/finishedAt"));
            let waiting = obj_at(status, "/state/waiting").is_some();
            let terminated = obj_at(status, "/state/terminated").is_some();
            let waiting_reason = str_at(status, "/state/waiting/reason");
            let terminated_reason = str_at(status, "/state/terminated/reason");
            if waiting && !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated && !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if terminated {
                let signal = int_at(status, "/state/terminated/signal");
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", int_at(status, "/state/terminated/exitCode"))
                };
            } else if opt_bool(status, "/ready") == Some(true)
                && obj_at(status, "/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        // Back to "Running" while at least one container still runs.
        if reason == "Completed" && has_running {
            reason = if condition_is_true(conditions, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if is_set(pod, "/metadata/deletionTimestamp") {
        if str_at(pod, "/status/reason") == NODE_LOST {
            reason = "Unknown".to_string();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    // `status.podIP` wins over `status.podIPs`, as in Kubernetes' conversion.
    let pod_ip = opt_str(pod, "/status/podIP")
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| str_at(pod, "/status/podIPs/0/ip"));
    let gates = arr_at(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passing = gates
            .iter()
            .filter(|gate| {
                let wanted = str_at(gate, "/conditionType");
                conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == wanted)
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{passing}/{}", gates.len())
    };

    vec![
        name_cell(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        age_cell(pod, now),
        Value::from(super::or_none(pod_ip)),
        Value::from(super::or_none(str_at(pod, "/spec/nodeName"))),
        Value::from(super::or_none(str_at(pod, "/status/nominatedNodeName"))),
        Value::from(readiness_gates),
    ]
}

/// The row conditions Kubernetes attaches to a finished pod's row (a client may
/// show such rows with less emphasis).
pub(super) fn pod_row_conditions(pod: &Value) -> Vec<Value> {
    let (reason, message) = match pod_phase(pod) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    })]
}

/// `podutil.IsRestartableInitContainer`: an init container with
/// `restartPolicy: Always` (a sidecar).
fn is_restartable_init_container(container: &Value) -> bool {
    str_at(container, "/restartPolicy") == "Always"
}

/// Whether the first condition of type `ty` has status `True`.
fn condition_is_true(conditions: &[Value], ty: &str) -> bool {
    conditions
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// `printNode`: NAME STATUS ROLES AGE VERSION | INTERNAL-IP EXTERNAL-IP OS-IMAGE
/// KERNEL-VERSION CONTAINER-RUNTIME.
fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    // Kubernetes keys conditions by type, so the last Ready condition counts.
    let mut status: Vec<&str> = match arr_at(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "/type") == "Ready")
    {
        Some(c) if str_at(c, "/status") == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if opt_bool(node, "/spec/unschedulable") == Some(true) {
        status.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = obj_at(node, "/metadata/labels")
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            if let Some(role) = key.strip_prefix(NODE_ROLE_LABEL_PREFIX) {
                Some(role).filter(|r| !r.is_empty())
            } else if key == NODE_ROLE_LABEL {
                value.as_str().filter(|v| !v.is_empty())
            } else {
                None
            }
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();

    let address = |ty: &str| {
        arr_at(node, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == ty)
            .map(|a| str_at(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |field: &str| {
        let v = str_at(node, &format!("/status/nodeInfo/{field}"));
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };

    vec![
        name_cell(node),
        Value::from(status.join(",")),
        Value::from(super::or_none(&roles.join(","))),
        age_cell(node, now),
        Value::from(str_at(node, "/status/nodeInfo/kubeletVersion")),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(info("osImage")),
        Value::from(info("kernelVersion")),
        Value::from(info("containerRuntimeVersion")),
    ]
}

/// `printNamespace`: NAME STATUS AGE.
fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    // Kubernetes writes `Active` on create.
    let phase = opt_str(ns, "/status/phase")
        .filter(|p| !p.is_empty())
        .unwrap_or("Active");
    vec![name_cell(ns), Value::from(phase), age_cell(ns, now)]
}

/// `printEvent`: LAST SEEN TYPE REASON OBJECT | SUBOBJECT SOURCE | MESSAGE |
/// FIRST SEEN COUNT NAME.
fn event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = match timestamp_at(event, "/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(timestamp_at(event, "/eventTime"), now),
    };
    let mut last_seen = match timestamp_at(event, "/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(event, "/count");
    if obj_at(event, "/series").is_some() {
        last_seen = since(timestamp_at(event, "/series/lastObservedTime"), now);
        count = int_at(event, "/series/count");
    } else if count == 0 {
        // Singleton events of the events.k8s.io API carry no count.
        count = 1;
    }

    let kind = str_at(event, "/involvedObject/kind").to_lowercase();
    let object = match str_at(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };

    let component = first_non_empty(
        str_at(event, "/source/component"),
        str_at(event, "/reportingComponent"),
    );
    let instance = first_non_empty(
        str_at(event, "/source/host"),
        str_at(event, "/reportingInstance"),
    );
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };

    vec![
        Value::from(last_seen),
        Value::from(str_at(event, "/type")),
        Value::from(str_at(event, "/reason")),
        Value::from(object),
        Value::from(str_at(event, "/involvedObject/fieldPath")),
        Value::from(source),
        Value::from(str_at(event, "/message").trim()),
        Value::from(first_seen),
        Value::from(count),
        name_cell(event),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// `printConfigMap`: NAME DATA AGE, counting `data` and `binaryData` keys.
fn config_map_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    let keys = |ptr| obj_at(cm, ptr).map_or(0, |m| m.len());
    let count = keys("/data") + keys("/binaryData");
    vec![name_cell(cm), Value::from(count), age_cell(cm, now)]
}

/// `printSecret`: NAME TYPE DATA AGE.
fn secret_cells(secret: &Value, now: Timestamp) -> Vec<Value> {
    // Kubernetes folds `stringData` into `data` on write, and defaults the type.
    let data = obj_at(secret, "/data");
    let extra = obj_at(secret, "/stringData")
        .into_iter()
        .flatten()
        .filter(|(k, _)| !data.is_some_and(|d| d.contains_key(k.as_str())))
        .count();
    let count = data.map_or(0, |d| d.len()) + extra;
    let ty = opt_str(secret, "/type")
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque");
    vec![
        name_cell(secret),
        Value::from(ty),
        Value::from(count),
        age_cell(secret, now),
    ]
}

/// `printServiceAccount`: NAME SECRETS AGE.
fn service_account_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_cell(sa),
        Value::from(arr_at(sa, "/secrets").len()),
        age_cell(sa, now),
    ]
}

/// `printResourceQuota`: NAME REQUEST LIMIT AGE, each `resource: used/hard`.
fn resource_quota_cells(quota: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = obj_at(quota, "/status/hard")
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
    resources.sort_unstable();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for resource in resources {
        let used = obj_at(quota, "/status/used").and_then(|m| m.get(resource.as_str()));
        let hard = obj_at(quota, "/status/hard").and_then(|m| m.get(resource.as_str()));
        let entry = format!(
            "{resource}: {}/{}",
            quantity_string(used),
            quantity_string(hard)
        );
        let mut pieces = resource.split('.');
        let is_limit = pieces.next() == Some("limits") && pieces.next().is_some();
        if is_limit {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name_cell(quota),
        Value::from(requests.join(", ")),
        Value::from(limits.join(", ")),
        age_cell(quota, now),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9c",
                "namespace": "default",
                "creationTimestamp": "2024-05-01T11:57:30Z",
            },
            "spec": spec,
            "status": status,
        })
    }

    fn two_containers() -> Value {
        json!({
            "nodeName": "node-1",
            "containers": [
                {"name": "app", "image": "hello:v1"},
                {"name": "worker", "image": "worker:v1"},
            ],
        })
    }

    #[test]
    fn crash_looping_pod() {
        let p = pod(
            two_containers(),
            json!({
                "phase": "Running",
                "podIP": "10.42.0.7",
                "podIPs": [{"ip": "10.42.0.7"}],
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {
                        "name": "app", "ready": true, "restartCount": 0,
                        "state": {"running": {"startedAt": "2024-05-01T11:57:35Z"}},
                    },
                    {
                        "name": "worker", "ready": false, "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                        "lastState": {"terminated": {
                            "exitCode": 1, "reason": "Error",
                            "finishedAt": "2024-05-01T11:55:00Z",
                        }},
                    },
                ],
            }),
        );
        assert_eq!(
            pod_cells(&p, now()),
            vec![
                json!("web-7d4b9c"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("3 (5m ago)"),
                json!("2m30s"),
                json!("10.42.0.7"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn running_pod() {
        let p = pod(
            json!({"containers": [{"name": "app", "image": "hello:v1"}]}),
            json!({
                "phase": "Running",
                "podIPs": [{"ip": "10.42.0.8"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 0,
                    "state": {"running": {}},
                }],
            }),
        );
        let cells = pod_cells(&p, now());
        assert_eq!(cells[1..4], [json!("1/1"), json!("Running"), json!("0")]);
        assert_eq!(cells[5], json!("10.42.0.8"));
        assert_eq!(cells[6], json!("<none>"));
    }

    #[test]
    fn new_pod_without_status_is_pending() {
        let p = json!({
            "metadata": {"name": "fresh"},
            "spec": {"containers": [{"name": "app"}]},
        });
        assert_eq!(
            pod_cells(&p, now()),
            vec![
                json!("fresh"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("<unknown>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
        assert!(pod_row_conditions(&p).is_empty());
    }

    #[test]
    fn completed_pod() {
        let p = pod(
            json!({"containers": [{"name": "job"}]}),
            json!({
                "phase": "Succeeded",
                "containerStatuses": [{
                    "name": "job", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }],
            }),
        );
        assert_eq!(
            pod_cells(&p, now())[1..3],
            [json!("0/1"), json!("Completed")]
        );
        assert_eq!(
            pod_row_conditions(&p),
            vec![json!({
                "type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            })]
        );
    }

    #[test]
    fn terminated_without_reason_prints_exit_code_or_signal() {
        let status = |terminated: Value| {
            json!({
                "phase": "Running",
                "containerStatuses": [{"name": "job", "state": {"terminated": terminated}}],
            })
        };
        let spec = json!({"containers": [{"name": "job"}]});
        let p = pod(spec.clone(), status(json!({"exitCode": 2})));
        assert_eq!(pod_cells(&p, now())[2], json!("ExitCode:2"));
        let p = pod(spec, status(json!({"exitCode": 137, "signal": 9})));
        assert_eq!(pod_cells(&p, now())[2], json!("Signal:9"));
    }

    #[test]
    fn init_containers() {
        let spec = json!({
            "initContainers": [{"name": "migrate"}, {"name": "seed"}],
            "containers": [{"name": "app"}],
        });
        // First init container done, second running.
        let p = pod(
            spec.clone(),
            json!({
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "migrate", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "seed", "state": {"running": {}}},
                ],
                "containerStatuses": [
                    {"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}},
                ],
            }),
        );
        assert_eq!(
            pod_cells(&p, now())[1..3],
            [json!("0/1"), json!("Init:1/2")]
        );

        // An init container crash-looping.
        let p = pod(
            spec.clone(),
            json!({
                "phase": "Pending",
                "initContainerStatuses": [{
                    "name": "migrate", "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:00Z"}},
                }],
            }),
        );
        let cells = pod_cells(&p, now());
        assert_eq!(cells[2], json!("Init:CrashLoopBackOff"));
        assert_eq!(cells[3], json!("4 (60s ago)"));

        // An init container that failed.
        let p = pod(
            spec,
            json!({
                "phase": "Pending",
                "initContainerStatuses": [{
                    "name": "migrate",
                    "state": {"terminated": {"exitCode": 3, "reason": "Error"}},
                }],
            }),
        );
        assert_eq!(pod_cells(&p, now())[2], json!("Init:Error"));
    }

    #[test]
    fn sidecars_count_as_containers() {
        let p = pod(
            json!({
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "app"}],
            }),
            json!({
                "phase": "Running",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ],
                "initContainerStatuses": [{
                    "name": "proxy", "ready": true, "started": true, "restartCount": 1,
                    "state": {"running": {}},
                }],
                "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 0, "state": {"running": {}},
                }],
            }),
        );
        assert_eq!(
            pod_cells(&p, now())[1..4],
            [json!("2/2"), json!("Running"), json!("1")]
        );
    }

    #[test]
    fn terminating_and_gated_pods() {
        let mut p = pod(
            json!({"containers": [{"name": "app"}]}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}},
            ]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(pod_cells(&p, now())[2], json!("Terminating"));
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(pod_cells(&p, now())[2], json!("Unknown"));

        let gated = pod(
            json!({"containers": [{"name": "app"}], "schedulingGates": [{"name": "wait"}]}),
            json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
            ]}),
        );
        assert_eq!(pod_cells(&gated, now())[2], json!("SchedulingGated"));
    }

    #[test]
    fn completed_container_beside_running_one() {
        let p = pod(
            two_containers(),
            json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "worker", "ready": true, "state": {"running": {}}},
                ],
            }),
        );
        assert_eq!(
            pod_cells(&p, now())[1..3],
            [json!("1/2"), json!("NotReady")]
        );
    }

    #[test]
    fn readiness_gates() {
        let p = pod(
            json!({
                "containers": [{"name": "app"}],
                "readinessGates": [{"conditionType": "lb/ready"}, {"conditionType": "dns/ready"}],
            }),
            json!({"phase": "Running", "conditions": [
                {"type": "lb/ready", "status": "True"},
                {"type": "dns/ready", "status": "False"},
            ]}),
        );
        assert_eq!(pod_cells(&p, now())[8], json!("1/2"));
    }

    #[test]
    fn nodes() {
        let node = json!({
            "metadata": {
                "name": "node-1",
                "creationTimestamp": "2024-04-26T12:00:00Z",
                "labels": {
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/": "",
                    "kubernetes.io/role": "edge",
                    "kubernetes.io/hostname": "node-1",
                },
            },
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
                "addresses": [
                    {"type": "Hostname", "address": "node-1"},
                    {"type": "InternalIP", "address": "192.168.1.10"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "skiff-0.1.0",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64",
                    "containerRuntimeVersion": "",
                },
            },
        });
        assert_eq!(
            node_cells(&node, now()),
            vec![
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge"),
                json!("5d"),
                json!("skiff-0.1.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("<unknown>"),
            ]
        );
        let bare = json!({"metadata": {"name": "n"}});
        assert_eq!(
            node_cells(&bare, now())[1..3],
            [json!("Unknown"), json!("<none>")]
        );
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(node_cells(&not_ready, now())[1], json!("NotReady"));
    }

    #[test]
    fn events() {
        let event = json!({
            "metadata": {"name": "web-7d4b9c.17c3a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-7d4b9c", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff",
            "message": "Back-off restarting failed container app\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:50:00Z",
            "lastTimestamp": "2024-05-01T11:59:30Z",
            "count": 7,
            "type": "Warning",
        });
        assert_eq!(
            event_cells(&event, now()),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-7d4b9c"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container app"),
                json!("10m"),
                json!(7),
                json!("web-7d4b9c.17c3a"),
            ]
        );

        // events.k8s.io style: eventTime, series, reporting controller.
        let event = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Node"},
            "reason": "Starting",
            "type": "Normal",
            "eventTime": "2024-05-01T10:59:59.500000Z",
            "series": {"count": 3, "lastObservedTime": "2024-05-01T11:58:00.000000Z"},
            "reportingComponent": "skiff-node",
            "reportingInstance": "",
        });
        let cells = event_cells(&event, now());
        assert_eq!(cells[0], json!("2m"));
        assert_eq!(cells[3], json!("node"));
        assert_eq!(cells[5], json!("skiff-node"));
        assert_eq!(cells[7], json!("60m"));
        assert_eq!(cells[8], json!(3));

        // A singleton event with no count counts once, and no lastTimestamp
        // means it was last seen when first seen.
        let event = json!({"firstTimestamp": "2024-05-01T11:59:00Z"});
        let cells = event_cells(&event, now());
        assert_eq!(
            (&cells[0], &cells[7], &cells[8]),
            (&json!("60s"), &json!("60s"), &json!(1))
        );
    }

    #[test]
    fn config_maps_secrets_service_accounts_namespaces() {
        let cm = json!({
            "metadata": {"name": "settings", "creationTimestamp": "2024-05-01T11:58:30Z"},
            "data": {"a": "1", "b": "2"},
            "binaryData": {"c": "AA=="},
        });
        assert_eq!(
            config_map_cells(&cm, now()),
            vec![json!("settings"), json!(3), json!("90s")]
        );

        let secret = json!({
            "metadata": {"name": "creds"},
            "data": {"user": "YQ=="},
            "stringData": {"user": "b", "password": "c"},
        });
        assert_eq!(
            secret_cells(&secret, now()),
            vec![
                json!("creds"),
                json!("Opaque"),
                json!(2),
                json!("<unknown>")
            ]
        );
        let tls = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls"});
        assert_eq!(
            secret_cells(&tls, now())[1..3],
            [json!("kubernetes.io/tls"), json!(0)]
        );

        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
        assert_eq!(service_account_cells(&sa, now())[1], json!(1));

        let ns = json!({"metadata": {"name": "dev"}});
        assert_eq!(namespace_cells(&ns, now())[1], json!("Active"));
        let ns = json!({"metadata": {"name": "old"}, "status": {"phase": "Terminating"}});
        assert_eq!(namespace_cells(&ns, now())[1], json!("Terminating"));
    }

    #[test]
    fn resource_quotas() {
        let quota = json!({
            "metadata": {"name": "team-a"},
            "status": {
                "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2048Mi", "requests.memory": "1Gi", "limits.cpu": "4"},
                "used": {"pods": "3", "requests.cpu": "500m", "limits.memory": "512Mi", "requests.memory": "0"},
            },
        });
        assert_eq!(
            resource_quota_cells(&quota, now()),
            vec![
                json!("team-a"),
                json!("pods: 3/10, requests.cpu: 500m/2, requests.memory: 0/1Gi"),
                json!("limits.cpu: 0/4, limits.memory: 512Mi/2Gi"),
                json!("<unknown>"),
            ]
        );
    }
}
