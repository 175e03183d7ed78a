//! Realistic manifests, as `kubectl` sends them, through the public entry points.

use serde_json::{Value, json};

use super::*;
use crate::resource::by_kind;
use crate::status::Reason;

fn rt(api_version: &str, kind: &str) -> &'static ResourceType {
    by_kind(api_version, kind).unwrap()
}

/// Decode check (as kubectl's default `fieldValidation=Strict`) then create
/// validation, as the API server runs them.
fn create(obj: &Value) -> Result<(), ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let rt = rt(api_version, kind);
    let warnings = decode_check(rt, obj, FieldValidation::Strict)?;
    assert!(warnings.is_empty());
    validate_create(rt, obj)
}

/// The causes of a failed call, as `field|reason|message`.
fn causes(e: &ApiError) -> Vec<String> {
    e.to_status()["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}|{}|{}",
                c["field"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
                c["message"].as_str().unwrap()
            )
        })
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "hello",
            "namespace": "default",
            "labels": {"app.kubernetes.io/name": "hello"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}\n"}
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "hello"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "hello", "tier": "web"}},
                "spec": {
                    "containers": [{
                        "name": "hello",
                        "image": "hello:v1",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "GREETING", "value": "hi"}],
                        "resources": {"requests": {"cpu": "50m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/hello", "readOnly": true}]
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "hello-config"}}]
                }
            }
        }
    })
}

#[test]
fn typical_manifests_pass() {
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let manifests = [
        deployment(),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
               "spec": {"selector": {"app": "hello"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello-np"},
               "spec": {"type": "NodePort", "selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello-config"},
               "data": {"greeting.txt": "hello\n", "LEVEL": "debug"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "type": "Opaque",
               "data": {"password": "c2VjcmV0"}, "stringData": {"user": "admin"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "dev"}}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
               "spec": {"backoffLimit": 4, "template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "pi", "image": "pi:v1", "args": ["2000"]}]}}}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report"},
               "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "timeZone": "Europe/Berlin",
                        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                            "containers": [{"name": "report", "image": "report:v2"}]}}}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "hello-"},
               "spec": {"containers": [{"name": "hello", "image": digest.clone(),
                        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}}}]}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hello"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello"},
                        "minReplicas": 1, "maxReplicas": 10,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "hello"},
               "spec": {"rules": [{"host": "hello.local", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "hello", "port": {"name": "http"}}}}]}}]}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1", "labels": {"kubernetes.io/hostname": "edge-1"}},
               "spec": {"taints": [{"key": "dedicated", "value": "edge", "effect": "NoSchedule"}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "hello-x7k2p", "labels": {"kubernetes.io/service-name": "hello"}},
               "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}, "nodeName": "edge-1"}],
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "scheduler"},
               "spec": {"holderIdentity": "control-1", "leaseDurationSeconds": 15}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:skiff:reader"},
               "rules": [{"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "skiff.dev/v1alpha1", "kind": "Component", "metadata": {"name": "hello.v1"},
               "spec": {"name": "hello", "tag": "v1", "digest": digest, "size": 123456,
                        "exports": ["wasi:http/incoming-handler@0.2.0"], "imports": [], "kind": "Http"}}),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "hello-abc.17a9", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "name": "hello-abc", "namespace": "default"},
               "reason": "Scheduled", "message": "Successfully assigned default/hello-abc to edge-1", "type": "Normal",
               "source": {"component": "skiff-scheduler"}, "count": 1}),
    ];
    for m in &manifests {
        if let Err(e) = create(m) {
            panic!(
                "{} {} refused: {}",
                m["kind"], m["metadata"]["name"], e.message
            );
        }
    }
}

#[test]
fn a_stored_object_still_decodes_strictly() {
    // What the API server hands back: system fields, managedFields, status.
    let mut d = deployment();
    d["metadata"]["uid"] = json!("4c3c7c6e-0d0b-4a7e-9d0e-9d8f2b1c0a11");
    d["metadata"]["resourceVersion"] = json!("42");
    d["metadata"]["generation"] = json!(1);
    d["metadata"]["creationTimestamp"] = json!("2025-01-02T03:04:05Z");
    d["metadata"]["managedFields"] = json!([{"manager": "kubectl-client-side-apply", "operation": "Update",
        "apiVersion": "apps/v1", "time": "2025-01-02T03:04:05Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    d["status"] = json!({"replicas": 3, "readyReplicas": 3, "observedGeneration": 1,
        "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2025-01-02T03:04:05Z",
                        "lastTransitionTime": "2025-01-02T03:04:05Z", "reason": "MinimumReplicasAvailable", "message": ""}]});
    assert!(create(&d).is_ok());
}

#[test]
fn bad_name_is_invalid() {
    let mut d = deployment();
    d["metadata"]["name"] = json!("Bad_Name");
    let e = create(&d).unwrap_err();
    assert_eq!(e.code(), 422);
    assert_eq!(e.reason, Reason::Invalid);
    assert_eq!(
        e.message,
        "Deployment.apps \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let status = e.to_status();
    assert_eq!(status["details"]["name"], "Bad_Name");
    assert_eq!(status["details"]["group"], "apps");
    assert_eq!(status["details"]["kind"], "Deployment");
    assert_eq!(causes(&e).len(), 1);
    assert!(causes(&e)[0].starts_with("metadata.name|FieldValueInvalid|Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));

    // A Service name is a DNS-1035 label: dots and leading digits are refused.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1hello"}, "spec": {"ports": [{"port": 80}]}});
    let e = create(&svc).unwrap_err();
    assert!(causes(&e)[0].starts_with(
        "metadata.name|FieldValueInvalid|Invalid value: \"1hello\": a DNS-1035 label"
    ));
}

#[test]
fn missing_selector() {
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    let e = create(&d).unwrap_err();
    assert_eq!(
        causes(&e),
        [
            "spec.selector|FieldValueRequired|Required value",
            "spec.template.metadata.labels|FieldValueInvalid|Invalid value: {\"app\":\"hello\",\"tier\":\"web\"}: `selector` does not match template `labels`",
        ]
    );
    assert!(e.message.starts_with("Deployment.apps \"hello\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: "));
}

#[test]
fn selector_not_matching_labels() {
    let mut d = deployment();
    d["spec"]["selector"] = json!({"matchLabels": {"app": "goodbye"}});
    let e = create(&d).unwrap_err();
    assert_eq!(
        causes(&e),
        [
            "spec.template.metadata.labels|FieldValueInvalid|Invalid value: {\"app\":\"hello\",\"tier\":\"web\"}: `selector` does not match template `labels`"
        ]
    );
    // Set-based selectors count too.
    d["spec"]["selector"] =
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]});
    assert!(create(&d).is_ok());
}

#[test]
fn replicas_of_the_wrong_type_is_a_bad_request() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!("three");
    for result in [
        decode_check(rt("apps/v1", "Deployment"), &d, FieldValidation::Ignore).map(|_| ()),
        validate_create(rt("apps/v1", "Deployment"), &d),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(e.reason, Reason::BadRequest);
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: spec.replicas: Invalid value: \"three\": expected int32"
        );
        assert_eq!(
            causes(&e),
            ["spec.replicas|FieldValueTypeInvalid|Invalid value: \"three\": expected int32"]
        );
    }
}

#[test]
fn unknown_field_under_each_field_validation() {
    let rt = rt("apps/v1", "Deployment");
    let mut d = deployment();
    d["spec"]["replicaz"] = json!(3);
    let e = decode_check(rt, &d, FieldValidation::Strict).unwrap_err();
    assert_eq!(e.code(), 400);
    assert_eq!(
        e.message,
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\""
    );
    assert_eq!(
        causes(&e),
        ["spec.replicaz|FieldValueInvalid|unknown field \"spec.replicaz\""]
    );
    assert_eq!(
        decode_check(rt, &d, FieldValidation::parse(None).unwrap()).unwrap(),
        ["unknown field \"spec.replicaz\""]
    );
    assert!(
        decode_check(rt, &d, FieldValidation::Ignore)
            .unwrap()
            .is_empty()
    );
    // Unknown fields are no semantic error: validation passes once decoding let them through.
    assert!(validate_create(rt, &d).is_ok());
    assert_eq!(prune_unknown_fields(rt, &mut d).unwrap(), ["spec.replicaz"]);
    assert!(d["spec"].get("replicaz").is_none());
}

#[test]
fn tcp_socket_probe_is_refused() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] =
        json!({"tcpSocket": {"port": 8080}});
    let e = create(&d).unwrap_err();
    let c = causes(&e);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0],
        format!(
            "spec.template.spec.containers[0].livenessProbe.tcpSocket|FieldValueForbidden|Forbidden: {}",
            pod::WASM_PROBE_DETAIL
        )
    );
    assert!(
        e.message
            .contains("Skiff supports only `httpGet` probes: a pod is a WebAssembly component")
    );
}

#[test]
fn service_port_out_of_range() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
                     "spec": {"selector": {"app": "hello"}, "ports": [{"port": 70000, "targetPort": 8080}]}});
    let e = create(&svc).unwrap_err();
    assert_eq!(e.code(), 422);
    assert_eq!(
        e.message,
        "Service \"hello\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
    );
    assert_eq!(e.to_status()["details"]["kind"], "Service");
}

#[test]
fn secret_with_bad_base64() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                        "data": {"password": "c2VjcmV0!"}});
    let rt = rt("v1", "Secret");
    for result in [
        decode_check(rt, &secret, FieldValidation::Strict).map(|_| ()),
        validate_create(rt, &secret),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message,
            "Secret in version \"v1\" cannot be handled as a Secret: data[password]: illegal base64 data at input byte 8"
        );
        assert_eq!(
            causes(&e),
            [
                "data[password]|FieldValueInvalid|Invalid value: \"\": illegal base64 data at input byte 8"
            ]
        );
    }
}

#[test]
fn every_cause_in_one_answer() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "-web"}},
    "spec": {"restartPolicy": "Sometimes", "containers": [
        {"name": "web", "image": "web:v1", "ports": [{"containerPort": 0}], "readinessProbe": {"exec": {"command": ["true"]}}},
        {"name": "web"}
    ]}});
    let e = create(&pod).unwrap_err();
    let fields: Vec<String> = causes(&e)
        .iter()
        .map(|c| c.split('|').next().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "metadata.labels",
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].readinessProbe.exec",
            "spec.containers[1].image",
            "spec.containers[1].name",
            "spec.restartPolicy",
        ]
    );
    assert!(
        e.message
            .starts_with("Pod \"web\" is invalid: [metadata.labels: Invalid value: \"-web\": ")
    );
}

#[test]
fn job_template_must_not_restart_always() {
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                     "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "pi:v1"}]}}}});
    let e = create(&job).unwrap_err();
    assert_eq!(
        causes(&e),
        [
            "spec.template.spec.restartPolicy|FieldValueNotSupported|Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        ]
    );
}

#[test]
fn updates() {
    let rt_d = rt("apps/v1", "Deployment");
    let old = deployment();
    let mut new = deployment();
    new["spec"]["replicas"] = json!(5);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hello:v2");
    assert!(validate_update(rt_d, &old, &new).is_ok());

    new["spec"]["selector"] = json!({"matchLabels": {"app": "hello", "tier": "web"}});
    new["metadata"]["name"] = json!("renamed");
    let e = validate_update(rt_d, &old, &new).unwrap_err();
    assert_eq!(e.code(), 422);
    assert_eq!(
        causes(&e),
        [
            "metadata.name|FieldValueInvalid|Invalid value: \"renamed\": field is immutable",
            "spec.selector|FieldValueInvalid|Invalid value: {\"matchLabels\":{\"app\":\"hello\",\"tier\":\"web\"}}: field is immutable",
        ]
    );

    // An update is validated as a whole object too.
    let mut bad = deployment();
    bad["spec"]["replicas"] = json!(-2);
    assert_eq!(
        causes(&validate_update(rt_d, &old, &bad).unwrap_err()),
        ["spec.replicas|FieldValueInvalid|Invalid value: -2: must be greater than or equal to 0"]
    );

    let rt_cm = rt("v1", "ConfigMap");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true});
    let mut changed = cm.clone();
    changed["data"]["a"] = json!("2");
    assert_eq!(
        causes(&validate_update(rt_cm, &cm, &changed).unwrap_err()),
        ["data|FieldValueForbidden|Forbidden: field is immutable when `immutable` is set"]
    );

    let rt_svc = rt("v1", "Service");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                     "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}});
    let mut moved = svc.clone();
    moved["spec"]["clusterIP"] = json!("10.96.0.11");
    assert_eq!(
        causes(&validate_update(rt_svc, &svc, &moved).unwrap_err()),
        ["spec.clusterIP|FieldValueInvalid|Invalid value: \"10.96.0.11\": field is immutable"]
    );
    let mut replaced = svc.clone();
    replaced["spec"]
        .as_object_mut()
        .unwrap()
        .remove("clusterIP");
    assert!(
        validate_update(rt_svc, &svc, &replaced).is_ok(),
        "an absent clusterIP is carried over"
    );

    let rt_pod = rt("v1", "Pod");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "hello:v1"}]}});
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!("edge-1");
    bound["spec"]["containers"][0]["image"] = json!("hello:v2");
    assert!(validate_update(rt_pod, &pod, &bound).is_ok());
    let mut rebound = bound.clone();
    rebound["spec"]["nodeName"] = json!("edge-2");
    let e = validate_update(rt_pod, &bound, &rebound).unwrap_err();
    assert!(causes(&e)[0].starts_with(
        "spec|FieldValueForbidden|Forbidden: pod updates may not change fields other than"
    ));
    assert!(causes(&e)[0].ends_with("changed: spec.nodeName"));
}

/// Every value of realistic manifests replaced by every JSON shape: validation
/// answers 400 or 422 (or accepts), and never panics.
#[test]
fn hostile_values_never_panic() {
    fn paths(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => m.iter().for_each(|(k, c)| {
                paths(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                )
            }),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| paths(c, format!("{at}/{i}"), out)),
            _ => {}
        }
    }
    let replacements = [
        json!(null),
        json!(""),
        json!("Bad_Value!"),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(70000),
        json!(i64::MAX),
        json!(true),
        json!([]),
        json!([{}]),
        json!({}),
        json!({"x": 1}),
    ];
    let manifests = [
        deployment(),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"name": "h", "port": 80, "targetPort": "http", "nodePort": 30001}]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": "eA==", "tls.key": "eA=="}, "immutable": true}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
               "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "c:v1", "resources": {"limits": {"cpu": "1"}}}]}}}}}}),
    ];
    for manifest in &manifests {
        let rt = rt(
            manifest["apiVersion"].as_str().unwrap(),
            manifest["kind"].as_str().unwrap(),
        );
        let mut all = Vec::new();
        paths(manifest, String::new(), &mut all);
        for path in all.iter().filter(|p| !p.is_empty()) {
            for r in &replacements {
                let mut m = manifest.clone();
                *m.pointer_mut(path).unwrap() = r.clone();
                for result in [
                    decode_check(rt, &m, FieldValidation::Strict).map(|_| ()),
                    validate_create(rt, &m),
                    validate_update(rt, manifest, &m),
                    validate_update(rt, &m, manifest),
                ] {
                    if let Err(e) = result {
                        assert!(
                            [400, 422].contains(&e.code()),
                            "{path} = {r}: {}",
                            e.message
                        );
                    }
                }
            }
        }
    }
}

/// A pod as a node reports on it: spec from the store, a full status.
fn reported_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "hello:v1"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.42.0.7",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T06:00:00Z"},
                {"type": "PodScheduled", "status": "True"}
            ],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "image": "hello:v1",
                "imageID": "sha256:ab", "started": true,
                "state": {"running": {"startedAt": "2026-12-07T06:00:00Z"}}
            }]
        }
    })
}

#[test]
fn a_pods_status_is_checked_alone_as_the_whole_pod_would_check_it() {
    let rt = rt("v1", "Pod");
    assert!(status_checked_alone(rt));
    assert!(!status_checked_alone(
        by_kind("apps/v1", "Deployment").unwrap()
    ));

    // The same verdicts and the same pruning as the whole-object check, for
    // good statuses, unknown fields, wrong types and Go's zero values.
    let mut cases = vec![reported_pod()];
    let mut unknown = reported_pod();
    unknown["status"]["containerStatuses"][0]["restartz"] = json!(1);
    cases.push(unknown);
    let mut wrong = reported_pod();
    wrong["status"]["containerStatuses"][0]["restartCount"] = json!("three");
    cases.push(wrong);
    let mut zero = reported_pod();
    zero["status"]["conditions"][0]
        .as_object_mut()
        .unwrap()
        .remove("type");
    cases.push(zero);
    for mode in [
        FieldValidation::Strict,
        FieldValidation::Warn,
        FieldValidation::Ignore,
    ] {
        for case in &cases {
            let (mut whole, mut alone) = (case.clone(), case.clone());
            let by_whole = decode_and_prune(rt, &mut whole, mode).map_err(|e| e.to_status());
            let by_status =
                decode_and_prune_status(rt, &mut alone, mode).map_err(|e| e.to_status());
            assert_eq!(by_status, by_whole, "{mode:?} {case}");
            assert_eq!(alone, whole, "pruned alike");
        }
    }

    let mut wrong = reported_pod();
    wrong["status"]["containerStatuses"][0]["restartCount"] = json!("three");
    let e = decode_and_prune_status(rt, &mut wrong, FieldValidation::Strict).unwrap_err();
    assert_eq!(e.code(), 400);
    assert_eq!(
        causes(&e),
        [
            "status.containerStatuses[0].restartCount|FieldValueTypeInvalid|Invalid value: \"three\": expected int32"
        ]
    );
    // A body that is not a Pod at all is refused before its status is read.
    let mut other = reported_pod();
    other["kind"] = json!("Service");
    assert_eq!(
        decode_and_prune_status(rt, &mut other, FieldValidation::Strict)
            .unwrap_err()
            .code(),
        400
    );
}
