//! Real bodies captured from kubectl (see `testdata/README.md`), and hand-built
//! ones for what kubectl does not send.

use super::message::{Message, decode};
use super::*;
use crate::generated::protobuf_schema::MESSAGES;
use crate::resource::{RESOURCES, SKIFF_GROUP};
use crate::status::Reason;
use serde_json::json;

/// The fixtures' directory. `cargo test` sets `CARGO_MANIFEST_DIR` when it
/// runs a test, which stays right when two checkouts share one target
/// directory (a binary built in the other checkout may be reused); the value
/// from the build is the fallback.
fn testdata() -> String {
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    format!("{root}/src/protobuf/testdata")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{name}.pb", testdata()))
        .unwrap_or_else(|e| panic!("read {name}.pb: {e}"))
}

fn decoded(name: &str) -> Value {
    decode_object(&fixture(name)).unwrap_or_else(|e| panic!("decode {name}.pb: {e}"))
}

/// Go writes `null` for a nil slice without `omitempty` (`ClusterRole.rules`);
/// protobuf cannot tell nil from empty, and both mean "none", so the decoder
/// leaves such a field out. Compare with nulls removed on both sides.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[test]
fn kubectl_bodies_decode_to_the_json_kubectl_would_send() {
    let mut names: Vec<String> = std::fs::read_dir(testdata())
        .expect("read testdata")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".pb")?.to_string())
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 20,
        "only {} fixtures: {names:?}",
        names.len()
    );
    for name in names {
        let got = decoded(&name);
        let json = std::fs::read(format!("{}/{name}.json", testdata()))
            .unwrap_or_else(|e| panic!("{name}.pb has no {name}.json: {e}"));
        let want: Value = serde_json::from_slice(&json).expect("fixture JSON");
        assert_eq!(
            without_nulls(&got),
            without_nulls(&want),
            "{name}: decoded\n{}\nkubectl's JSON\n{}",
            serde_json::to_string_pretty(&got).unwrap_or_default(),
            serde_json::to_string_pretty(&want).unwrap_or_default()
        );
    }
}

#[test]
fn create_deployment_decodes_field_by_field() {
    let d = decoded("deployment");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    // A zero metav1.Time is an empty message, and JSON null, as kubectl sends it.
    assert_eq!(d["metadata"].get("creationTimestamp"), Some(&Value::Null));
    assert_eq!(d["metadata"]["name"], "web");
    // Non-pointer zeros Go wrote (namespace "", generation 0, paused false,
    // hostPort 0, stdin false ...) are dropped as `omitempty` drops them.
    assert_eq!(d["metadata"].as_object().map(|m| m.len()), Some(3), "{d}");
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(d["spec"].get("paused").is_none() && d["spec"].get("minReadySeconds").is_none());
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "hello:v1");
    assert_eq!(container["ports"], json!([{"containerPort": 8080}]));
    assert!(container.get("stdin").is_none() && container.get("terminationMessagePath").is_none());
    // Present empty structs stay, as Go writes them.
    assert_eq!(d["spec"]["strategy"], json!({}));
    assert_eq!(d["status"], json!({}));
}

#[test]
fn pointer_zeros_are_kept() {
    assert_eq!(decoded("deployment-zero-replicas")["spec"]["replicas"], 0);

    let pod = decoded("pod-debug-copy-zeros");
    let spec = &pod["spec"];
    assert_eq!(spec["terminationGracePeriodSeconds"], 0);
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(
        spec["securityContext"],
        json!({"runAsUser": 0, "runAsNonRoot": false, "fsGroup": 0})
    );
    assert_eq!(spec["tolerations"][0]["tolerationSeconds"], 0);
    // ... and non-pointer zeros are not.
    assert!(spec.get("hostNetwork").is_none());
    assert!(spec["containers"][0].get("stdin").is_none());
    assert!(
        spec["containers"][0]["livenessProbe"]
            .get("initialDelaySeconds")
            .is_none()
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"][1],
        json!({"name": "tmp", "mountPath": "/tmp"})
    );
}

#[test]
fn embedded_structs_are_inlined() {
    let pod = decoded("pod-debug-copy-zeros");
    // Volume embeds VolumeSource, ConfigMapVolumeSource embeds LocalObjectReference.
    assert_eq!(
        pod["spec"]["volumes"][0],
        json!({"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a.txt"}], "defaultMode": 420, "optional": false}})
    );
    // Probe embeds ProbeHandler; IntOrString is a string or a number.
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8080);
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "500m", "memory": "64Mi"})
    );
}

#[test]
fn bytes_are_base64() {
    assert_eq!(decoded("secret-generic")["data"], json!({"p": "cQ=="}));
    let cm = decoded("configmap-from-file");
    assert_eq!(cm["data"], json!({"text.txt": "hello\nworld\n"}));
    assert_eq!(
        cm["binaryData"]["bin.dat"].as_str().map(str::len),
        Some(400)
    );
}

#[test]
fn every_served_kind_has_a_schema() {
    for rt in RESOURCES.iter().filter(|rt| rt.group != SKIFF_GROUP) {
        let api_version = rt.api_version();
        assert!(
            KINDS
                .iter()
                .any(|(v, k, _)| *v == api_version && *k == rt.kind),
            "no protobuf schema for {api_version} {}",
            rt.kind
        );
    }
    let body = envelope("skiff.dev/v1alpha1", "Component", &[]);
    assert!(matches!(
        decode_object(&body),
        Err(ProtobufError::UnknownKind { .. })
    ));
}

// ---- hand-built bodies

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A varint field.
fn vf(number: u32, v: u64) -> Vec<u8> {
    [varint(u64::from(number) << 3), varint(v)].concat()
}

/// A length-delimited field.
fn bf(number: u32, bytes: &[u8]) -> Vec<u8> {
    [
        varint(u64::from(number) << 3 | 2),
        varint(bytes.len() as u64),
        bytes.to_vec(),
    ]
    .concat()
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [bf(1, api_version.as_bytes()), bf(2, kind.as_bytes())].concat();
    [b"k8s\0".to_vec(), bf(1, &type_meta), bf(2, raw)].concat()
}

fn named(name: &str) -> &'static Message {
    MESSAGES
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no message {name}"))
}

fn special(name: &str, bytes: &[u8]) -> Result<Value, ProtobufError> {
    decode(named(&format!("k8s.io.apimachinery.pkg.{name}")), bytes, 0)
}

#[test]
fn times() {
    // 2024-01-02T03:04:05Z
    let t = [vf(1, 1_704_164_645), vf(2, 123_456_789)].concat();
    // Time keeps seconds only, as Kubernetes does.
    assert_eq!(
        special("apis.meta.v1.Time", &t).unwrap(),
        "2024-01-02T03:04:05Z"
    );
    assert_eq!(
        special("apis.meta.v1.MicroTime", &t).unwrap(),
        "2024-01-02T03:04:05.123456Z"
    );
    assert_eq!(special("apis.meta.v1.Time", &[]).unwrap(), Value::Null);
    assert_eq!(special("apis.meta.v1.MicroTime", &[]).unwrap(), Value::Null);
    assert_eq!(
        special("apis.meta.v1.Time", &vf(1, 0)).unwrap(),
        "1970-01-01T00:00:00Z"
    );
    let before_1970 = vf(1, (-86_400i64) as u64);
    assert_eq!(
        special("apis.meta.v1.Time", &before_1970).unwrap(),
        "1969-12-31T00:00:00Z"
    );
    assert!(special("apis.meta.v1.Time", &vf(1, i64::MAX as u64)).is_err());
}

#[test]
fn durations_quantities_int_or_strings_and_raw_json() {
    assert_eq!(
        special("apis.meta.v1.Duration", &vf(1, 90_000_000_000)).unwrap(),
        "1m30s"
    );
    assert_eq!(special("apis.meta.v1.Duration", &[]).unwrap(), "0s");

    assert_eq!(
        special("api.resource.Quantity", &bf(1, b"500m")).unwrap(),
        "500m"
    );
    assert_eq!(special("api.resource.Quantity", &[]).unwrap(), "0");

    let int = [vf(1, 0), vf(2, 8080)].concat();
    assert_eq!(special("util.intstr.IntOrString", &int).unwrap(), 8080);
    let negative = [vf(1, 0), vf(2, -1i64 as u64)].concat();
    assert_eq!(special("util.intstr.IntOrString", &negative).unwrap(), -1);
    let string = [vf(1, 1), bf(3, b"25%")].concat();
    assert_eq!(special("util.intstr.IntOrString", &string).unwrap(), "25%");
    assert_eq!(special("util.intstr.IntOrString", &[]).unwrap(), 0);

    let raw = bf(1, br#"{"a":[1,"b"]}"#);
    assert_eq!(
        special("runtime.RawExtension", &raw).unwrap(),
        json!({"a": [1, "b"]})
    );
    assert_eq!(
        special("apis.meta.v1.FieldsV1", &raw).unwrap(),
        json!({"a": [1, "b"]})
    );
    assert_eq!(special("runtime.RawExtension", &[]).unwrap(), Value::Null);
    assert!(special("runtime.RawExtension", &bf(1, b"{")).is_err());
}

#[test]
fn delete_options_in_any_group_version() {
    let raw = [vf(1, 0), bf(4, b"Foreground"), bf(5, b"All")].concat();
    let got = decode_object(&envelope("apps/v1", "DeleteOptions", &raw)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
               "propagationPolicy": "Foreground", "dryRun": ["All"]})
    );
}

#[test]
fn wire_forms_go_does_not_write_still_decode() {
    // Unknown fields are skipped; a message field seen twice is merged; a map
    // entry without a value has the zero value; the last scalar wins.
    let meta_a = bf(1, &[bf(1, b"a"), bf(11, &bf(1, b"x"))].concat());
    let meta_b = bf(
        1,
        &[bf(11, &[bf(1, b"y"), bf(2, b"2")].concat()), bf(3, b"ns")].concat(),
    );
    let raw = [
        meta_a,
        vf(99, 7),
        bf(100, b"?"),
        meta_b,
        bf(2, &bf(1, b"k")),
        vf(4, 0),
        vf(4, 1),
    ]
    .concat();
    let got = decode_object(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "", "y": "2"}},
               "immutable": true, "data": {"k": ""}})
    );

    // A packed run of int64s (supplementalGroups), and one unpacked after it.
    let psc = [
        bf(4, &[varint(1), varint(300), varint(0)].concat()),
        vf(4, 5),
    ]
    .concat();
    let pod_spec = bf(14, &psc);
    let got = decode_object(&envelope("v1", "Pod", &bf(2, &pod_spec))).unwrap();
    assert_eq!(
        got["spec"]["securityContext"]["supplementalGroups"],
        json!([1, 300, 0, 5])
    );
}

#[test]
fn envelope_errors() {
    assert_eq!(
        decode_object(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::NotProtobuf)
    );
    assert_eq!(decode_object(b"k8s"), Err(ProtobufError::NotProtobuf));
    assert_eq!(decode_object(b"k8s\0"), Err(ProtobufError::Empty));
    assert_eq!(
        decode_object(&envelope("v1", "", &[])),
        Err(ProtobufError::MissingKind)
    );
    assert_eq!(
        decode_object(&envelope("", "Pod", &[])),
        Err(ProtobufError::MissingApiVersion)
    );
    assert_eq!(
        decode_object(&envelope("apps/v1", "Pod", &[])),
        Err(ProtobufError::UnknownKind {
            api_version: "apps/v1".into(),
            kind: "Pod".into()
        })
    );
    let gzip = [envelope("v1", "Pod", &[]), bf(3, b"gzip")].concat();
    assert_eq!(
        decode_object(&gzip),
        Err(ProtobufError::ContentEncoding("gzip".into()))
    );
    let json_inside = [envelope("v1", "Pod", b"{}"), bf(4, b"application/json")].concat();
    assert_eq!(
        decode_object(&json_inside),
        Err(ProtobufError::ContentType("application/json".into()))
    );
    // An empty object is fine: every field is optional on the wire.
    assert_eq!(
        decode_object(&envelope("v1", "Namespace", &[])).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace"})
    );
}

#[test]
fn malformed_bodies_name_where() {
    // A string where Deployment .spec.template.spec.containers[0].ports[0].containerPort (an int32) belongs.
    let port = bf(3, b"80");
    let container = [bf(1, b"c"), bf(6, &port)].concat();
    let template = bf(2, &bf(2, &container));
    let raw = bf(2, &bf(3, &template));
    let err = decode_object(&envelope("apps/v1", "Deployment", &raw)).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::Malformed {
            path: "spec.template.spec.containers[0].ports[0].containerPort".into(),
            problem: "wire type 2 for a field of type Int32".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "malformed protobuf at spec.template.spec.containers[0].ports[0].containerPort: wire type 2 for a field of type Int32"
    );

    // A length that runs past the end.
    let mut body = envelope("v1", "ConfigMap", &bf(2, &bf(1, b"key")));
    let last = body.len() - 1;
    body.truncate(last);
    assert!(matches!(
        decode_object(&body),
        Err(ProtobufError::Malformed { .. })
    ));

    // Nesting beyond the bound is refused before it recurses.
    let err = decode(named("k8s.io.api.core.v1.Namespace"), &[], 33).unwrap_err();
    assert!(
        err.to_string().contains("nested more than 32 deep"),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupted_bodies_never_panic() {
    let names = [
        "deployment",
        "pod-debug-copy-zeros",
        "secret-docker-registry",
        "ingress",
        "cronjob",
    ];
    for name in names {
        let body = fixture(name);
        for len in 0..body.len() {
            // Cut inside the object: an error, or (cut between fields) a shorter object.
            let _ = decode_object(&body[..len]);
        }
        for i in 4..body.len() {
            for flip in [0xff, 0x80, 0x07] {
                let mut corrupt = body.clone();
                corrupt[i] ^= flip;
                let _ = decode_object(&corrupt);
            }
        }
    }
}

#[test]
fn errors_become_400_bad_request() {
    let e = ApiError::from(ProtobufError::NotProtobuf);
    assert_eq!(e.reason, Reason::BadRequest);
    assert_eq!(e.code(), 400);
    assert_eq!(
        e.message,
        "the request body is not a valid Kubernetes protobuf object: the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\""
    );
}
