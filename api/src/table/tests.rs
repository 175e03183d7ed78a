//! Tests of the `Table` as a whole: columns per kind, rows, included objects.

use serde_json::json;

use super::*;
use crate::resource::{RESOURCES, by_kind};

fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

fn rt(api_version: &str, kind: &str) -> &'static ResourceType {
    by_kind(api_version, kind).unwrap()
}

/// Column names, with `(wide)` after the priority-1 ones.
fn headers(rt: &ResourceType) -> Vec<String> {
    column_definitions(rt)
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            if c["priority"] == 1 {
                format!("{name} (wide)")
            } else {
                name
            }
        })
        .collect()
}

#[test]
fn columns_match_kubernetes() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "v1",
            "Pod",
            &[
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP (wide)",
                "Node (wide)",
                "Nominated Node (wide)",
                "Readiness Gates (wide)",
            ],
        ),
        (
            "apps/v1",
            "Deployment",
            &[
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers (wide)",
                "Images (wide)",
                "Selector (wide)",
            ],
        ),
        (
            "v1",
            "Service",
            &[
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector (wide)",
            ],
        ),
        ("v1", "ConfigMap", &["Name", "Data", "Age"]),
        ("v1", "Namespace", &["Name", "Status", "Age"]),
        (
            "v1",
            "Node",
            &[
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP (wide)",
                "External-IP (wide)",
                "OS-Image (wide)",
                "Kernel-Version (wide)",
                "Container-Runtime (wide)",
            ],
        ),
        ("v1", "Secret", &["Name", "Type", "Data", "Age"]),
        (
            "v1",
            "Event",
            &[
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject (wide)",
                "Source (wide)",
                "Message",
                "First Seen (wide)",
                "Count (wide)",
                "Name (wide)",
            ],
        ),
        (
            "batch/v1",
            "Job",
            &[
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers (wide)",
                "Images (wide)",
                "Selector (wide)",
            ],
        ),
        (
            "batch/v1",
            "CronJob",
            &[
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers (wide)",
                "Images (wide)",
                "Selector (wide)",
            ],
        ),
        (
            "apps/v1",
            "StatefulSet",
            &["Name", "Ready", "Age", "Containers (wide)", "Images (wide)"],
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            &[
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age",
            ],
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            &["Name", "Class", "Hosts", "Address", "Ports", "Age"],
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            &["Name", "AddressType", "Ports", "Endpoints", "Age"],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            &[
                "Name",
                "Role",
                "Age",
                "Users (wide)",
                "Groups (wide)",
                "ServiceAccounts (wide)",
            ],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            &["Name", "Created At"],
        ),
        ("v1", "LimitRange", &["Name", "Created At"]),
        (
            "skiff.dev/v1alpha1",
            "Component",
            &[
                "Name",
                "Tag",
                "Digest",
                "Kind",
                "Size",
                "Age",
                "Exports (wide)",
            ],
        ),
    ];
    for (api_version, kind, want) in cases {
        assert_eq!(headers(rt(api_version, kind)), *want, "{kind}");
    }
}

#[test]
fn column_definitions_carry_every_field() {
    let cols = column_definitions(rt("v1", "Pod"));
    let name = &cols[0];
    assert_eq!(name["name"], "Name");
    assert_eq!(name["type"], "string");
    assert_eq!(name["format"], "name");
    assert_eq!(name["priority"], 0);
    assert!(
        name["description"]
            .as_str()
            .unwrap()
            .starts_with("Name must be unique")
    );
    assert_eq!(cols[3]["format"], "");
    let created_at = &column_definitions(rt("v1", "LimitRange"))[1];
    assert_eq!(created_at["type"], "date");
    let cj = column_definitions(rt("batch/v1", "CronJob"));
    assert_eq!(
        (&cj[3]["name"], &cj[3]["type"]),
        (&json!("Suspend"), &json!("boolean"))
    );
    assert_eq!(
        (&cj[4]["name"], &cj[4]["type"]),
        (&json!("Active"), &json!("integer"))
    );
}

#[test]
fn every_row_has_one_cell_per_column() {
    // Whatever the object, even nothing at all, a row never panics and always
    // lines up with its columns.
    let objects = [
        json!(null),
        json!({}),
        json!({"metadata": 7, "spec": [], "status": "x"}),
    ];
    for rt in RESOURCES {
        for obj in &objects {
            assert_eq!(
                row(rt, obj, now()).len(),
                column_definitions(rt).len(),
                "{}",
                rt.kind
            );
        }
    }
}

#[test]
fn ages() {
    let cm = |created: &str| json!({"metadata": {"name": "c", "creationTimestamp": created}, "data": {}});
    let configmaps = rt("v1", "ConfigMap");
    let age = |created| row(configmaps, &cm(created), now())[2].clone();
    assert_eq!(age("2024-05-01T11:58:30Z"), json!("90s"));
    assert_eq!(age("2024-05-01T11:57:30Z"), json!("2m30s"));
    assert_eq!(age("2024-05-01T08:56:00Z"), json!("3h4m"));
    assert_eq!(age("2024-04-26T12:00:00Z"), json!("5d"));
    assert_eq!(age("2022-03-18T12:00:00Z"), json!("2y45d"));
    assert_eq!(age("2024-05-01T12:00:05Z"), json!("<invalid>"));
    assert_eq!(age("not a time"), json!("<unknown>"));
    let no_timestamp = json!({"metadata": {"name": "c"}});
    assert_eq!(row(configmaps, &no_timestamp, now())[2], json!("<unknown>"));
}

#[test]
fn unknown_kinds_print_name_and_age() {
    let widget = ResourceType {
        group: "example.com",
        version: "v1",
        kind: "Widget",
        plural: "widgets",
        singular: "widget",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        scale_subresource: false,
    };
    assert_eq!(headers(&widget), ["Name", "Age"]);
    let obj = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-05-01T11:59:00Z"}});
    assert_eq!(row(&widget, &obj, now()), vec![json!("w1"), json!("60s")]);
}

fn pods() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "namespace": "default",
                "uid": "0b5e",
                "resourceVersion": "41",
                "creationTimestamp": "2024-05-01T11:58:30Z",
                "labels": {"app": "web"},
            },
            "spec": {"containers": [{"name": "app", "image": "hello:v1"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
            ]},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "job-1", "namespace": "default", "resourceVersion": "42"},
            "spec": {"containers": [{"name": "task"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "task", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
            ]},
        }),
    ]
}

#[test]
fn table_with_partial_object_metadata() {
    let pods_rt = rt("v1", "Pod");
    let t = table(
        pods_rt,
        &pods(),
        now(),
        IncludeObject::Metadata,
        json!({"resourceVersion": "42"}),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["cells"],
        json!([
            "web-1", "1/1", "Running", "0", "90s", "<none>", "<none>", "<none>", "<none>"
        ])
    );
    assert!(rows[0].get("conditions").is_none());
    assert_eq!(
        rows[0]["object"],
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "web-1",
                "namespace": "default",
                "uid": "0b5e",
                "resourceVersion": "41",
                "creationTimestamp": "2024-05-01T11:58:30Z",
                "labels": {"app": "web"},
            },
        })
    );
    assert_eq!(rows[1]["cells"][2], "Error");
    assert_eq!(
        rows[1]["conditions"],
        json!([{
            "type": "Completed",
            "status": "True",
            "reason": "Failed",
            "message": "The pod failed.",
        }])
    );
}

#[test]
fn table_with_whole_objects_or_none() {
    let pods_rt = rt("v1", "Pod");
    let objects = pods();
    let t = table(pods_rt, &objects, now(), IncludeObject::Object, json!({}));
    assert_eq!(t["rows"][0]["object"], objects[0]);
    let t = table(pods_rt, &objects, now(), IncludeObject::None, Value::Null);
    assert!(t["rows"][0].get("object").is_none());
    assert_eq!(t["metadata"], json!({}));
    let empty = table(
        pods_rt,
        &[],
        now(),
        IncludeObject::Metadata,
        json!({"resourceVersion": "7"}),
    );
    assert_eq!(empty["rows"], json!([]));
}

#[test]
fn watch_tables_after_the_first_carry_no_columns() {
    let pods_rt = rt("v1", "Pod");
    let objects = pods();
    let first = table(
        pods_rt,
        &objects[..1],
        now(),
        IncludeObject::Metadata,
        object_list_meta(&objects[0]),
    );
    let next = table_without_columns(
        pods_rt,
        &objects[1..],
        now(),
        IncludeObject::Metadata,
        object_list_meta(&objects[1]),
    );
    assert!(first["columnDefinitions"].is_array());
    assert_eq!(first["metadata"], json!({"resourceVersion": "41"}));
    assert_eq!(next["columnDefinitions"], Value::Null);
    assert_eq!(next["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(next["rows"][0]["cells"][0], "job-1");
}

#[test]
fn include_object_parses_like_kubernetes() {
    assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
    assert_eq!(
        IncludeObject::parse(Some("")).unwrap(),
        IncludeObject::Metadata
    );
    assert_eq!(
        IncludeObject::parse(Some("Metadata")).unwrap(),
        IncludeObject::Metadata
    );
    assert_eq!(
        IncludeObject::parse(Some("None")).unwrap(),
        IncludeObject::None
    );
    assert_eq!(
        IncludeObject::parse(Some("Object")).unwrap(),
        IncludeObject::Object
    );
    let err: ApiError = IncludeObject::parse(Some("object")).unwrap_err().into();
    assert_eq!(err.code(), 400);
    assert_eq!(err.message, "unrecognized includeObject value: \"object\"");
}
