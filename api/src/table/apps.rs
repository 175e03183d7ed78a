//! Printers for the `apps` workloads: Deployment, ReplicaSet, DaemonSet,
//! StatefulSet.

use crate::json::Pointer as _;
use jiff::Timestamp;
use serde_json::Value;

use super::labels::{format_label_selector, format_labels, selector_string};
use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, Printer, age_cell, arr_at, container_cells, int_at,
    name_cell, obj_at, opt_int,
};

pub(super) const DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Ready", "string", "Number of the pod with ready state"),
        Column::new(
            "Up-to-date",
            "string",
            "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
        ),
        Column::new(
            "Available",
            "string",
            "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::new(
            "Selector",
            "string",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.",
        )
        .wide(),
    ],
    cells: deployment_cells,
};

pub(super) const REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Desired",
            "integer",
            "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
        ),
        Column::new(
            "Current",
            "integer",
            "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
        ),
        Column::new(
            "Ready",
            "integer",
            "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::new(
            "Selector",
            "string",
            "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        )
        .wide(),
    ],
    cells: replica_set_cells,
};

pub(super) const DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Desired",
            "integer",
            "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        ),
        Column::new(
            "Current",
            "integer",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        ),
        Column::new(
            "Ready",
            "integer",
            "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
        ),
        Column::new(
            "Up-to-date",
            "integer",
            "The total number of nodes that are running updated daemon pod",
        ),
        Column::new(
            "Available",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        ),
        Column::new(
            "Node Selector",
            "string",
            "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::new(
            "Selector",
            "string",
            "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        )
        .wide(),
    ],
    cells: daemon_set_cells,
};

pub(super) const STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: stateful_set_cells,
};

/// `spec.replicas`, which Kubernetes defaults to 1 on write.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, "/spec/replicas").unwrap_or(1)
}

/// Container names and images of `spec.template`.
fn template_containers(obj: &Value) -> (Value, Value) {
    container_cells(arr_at(obj, "/spec/template/spec/containers"))
}

/// `printDeployment`: NAME READY UP-TO-DATE AVAILABLE AGE | CONTAINERS IMAGES
/// SELECTOR.
fn deployment_cells(deploy: &Value, now: Timestamp) -> Vec<Value> {
    let ready = int_at(deploy, "/status/readyReplicas");
    let (containers, images) = template_containers(deploy);
    // Unlike the other workloads, an empty selector prints empty here.
    let selector =
        selector_string(deploy.at("/spec/selector")).unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        name_cell(deploy),
        Value::from(format!("{ready}/{}", desired_replicas(deploy))),
        Value::from(int_at(deploy, "/status/updatedReplicas")),
        Value::from(int_at(deploy, "/status/availableReplicas")),
        age_cell(deploy, now),
        containers,
        images,
        Value::from(selector),
    ]
}

/// `printReplicaSet`: NAME DESIRED CURRENT READY AGE | CONTAINERS IMAGES SELECTOR.
fn replica_set_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(rs);
    vec![
        name_cell(rs),
        Value::from(desired_replicas(rs)),
        Value::from(int_at(rs, "/status/replicas")),
        Value::from(int_at(rs, "/status/readyReplicas")),
        age_cell(rs, now),
        containers,
        images,
        Value::from(format_label_selector(rs.at("/spec/selector"))),
    ]
}

/// `printDaemonSet`: NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE
/// NODE SELECTOR AGE | CONTAINERS IMAGES SELECTOR.
fn daemon_set_cells(ds: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(ds);
    vec![
        name_cell(ds),
        Value::from(int_at(ds, "/status/desiredNumberScheduled")),
        Value::from(int_at(ds, "/status/currentNumberScheduled")),
        Value::from(int_at(ds, "/status/numberReady")),
        Value::from(int_at(ds, "/status/updatedNumberScheduled")),
        Value::from(int_at(ds, "/status/numberAvailable")),
        Value::from(format_labels(obj_at(
            ds,
            "/spec/template/spec/nodeSelector",
        ))),
        age_cell(ds, now),
        containers,
        images,
        Value::from(format_label_selector(ds.at("/spec/selector"))),
    ]
}

/// `printStatefulSet`: NAME READY AGE | CONTAINERS IMAGES.
fn stateful_set_cells(sts: &Value, now: Timestamp) -> Vec<Value> {
    let ready = int_at(sts, "/status/readyReplicas");
    let (containers, images) = template_containers(sts);
    vec![
        name_cell(sts),
        Value::from(format!("{ready}/{}", desired_replicas(sts))),
        age_cell(sts, now),
        containers,
        images,
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "app", "image": "hello:v1"},
                {"name": "log", "image": "sha256:ab12"},
            ]},
        })
    }

    #[test]
    fn deployments() {
        let deploy = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T08:56:00Z"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template(),
            },
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
        });
        assert_eq!(
            deployment_cells(&deploy, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3h4m"),
                json!("app,log"),
                json!("hello:v1,sha256:ab12"),
                json!("app=web"),
            ]
        );
        // A fresh deployment: no status, replicas defaulted.
        let fresh = json!({"metadata": {"name": "new"}, "spec": {"template": template()}});
        assert_eq!(
            deployment_cells(&fresh, now())[1..4],
            [json!("0/1"), json!(0), json!(0)]
        );
        assert_eq!(deployment_cells(&fresh, now())[7], json!(""));
    }

    #[test]
    fn replica_sets() {
        let rs = json!({
            "metadata": {"name": "web-7d4b9c"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}}, "template": template()},
            "status": {"replicas": 1},
        });
        assert_eq!(
            replica_set_cells(&rs, now()),
            vec![
                json!("web-7d4b9c"),
                json!(0),
                json!(1),
                json!(0),
                json!("<unknown>"),
                json!("app,log"),
                json!("hello:v1,sha256:ab12"),
                json!("app=web,pod-template-hash=7d4b9c"),
            ]
        );
    }

    #[test]
    fn daemon_sets() {
        let mut tmpl = template();
        tmpl["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let ds = json!({
            "metadata": {"name": "proxy"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": tmpl},
            "status": {
                "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                "updatedNumberScheduled": 2, "numberAvailable": 1,
            },
        });
        assert_eq!(
            daemon_set_cells(&ds, now())[1..7],
            [
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux")
            ]
        );
        let bare = json!({"metadata": {"name": "x"}});
        let cells = daemon_set_cells(&bare, now());
        assert_eq!(cells[6], json!("<none>"));
        assert_eq!(cells[10], json!("<none>"));
    }

    #[test]
    fn stateful_sets() {
        let sts = json!({
            "metadata": {"name": "db"},
            "spec": {"replicas": 3, "template": template()},
            "status": {"readyReplicas": 1},
        });
        assert_eq!(
            stateful_set_cells(&sts, now()),
            vec![
                json!("db"),
                json!("1/3"),
                json!("<unknown>"),
                json!("app,log"),
                json!("hello:v1,sha256:ab12"),
            ]
        );
    }
}
