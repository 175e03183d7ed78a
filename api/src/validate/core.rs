//! Core (`v1`) kinds other than Pod: Namespace, Node, Service, Endpoints, Event,
//! ConfigMap, Secret, PersistentVolume(Claim), ResourceQuota, LimitRange.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, ResourceQuota, Secret, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use super::decode::go_base64_error;
use super::metadata::validate_labels;
use super::pod::{
    diff_paths, prune_empty, validate_port_num_or_name, validate_protocol, validate_quantity,
    validate_taint_effect,
};
use super::{Errors, child, immutable, index, invalid_each, key, label_selector, names};
use crate::status::{FieldError, FieldErrorKind};

/// The most bytes a ConfigMap's or Secret's data may hold.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
/// Skiff's NodePort range (Kubernetes' default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Namespace: its spec finalizers are standard names or domain-qualified.
pub(crate) fn validate_namespace(ns: &Namespace, errs: &mut Errors) {
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or_default();
    for f in finalizers {
        invalid_each("spec.finalizers", f, names::is_qualified_name(f), errs);
        if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f.as_str())
        {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                f.as_str(),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// Node: taints and pod CIDRs.
pub(crate) fn validate_node(node: &Node, errs: &mut Errors) {
    let Some(spec) = &node.spec else { return };
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (i, t) in spec.taints.iter().flatten().enumerate() {
        let p = index("spec.taints", i);
        invalid_each(
            &child(&p, "key"),
            &t.key,
            names::is_qualified_name(&t.key),
            errs,
        );
        let value = t.value.as_deref().unwrap_or("");
        let msgs = names::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                child(&p, "value"),
                value,
                msgs.join(";"),
            ));
        }
        validate_taint_effect(&t.effect, &child(&p, "effect"), errs);
        if !seen.insert((t.effect.as_str(), t.key.as_str())) {
            errs.push(FieldError::new(
                &p,
                FieldErrorKind::Duplicate(super::to_json(t)),
                "taints must be unique by key and effect pair",
            ));
        }
    }
    for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
        if !is_cidr(cidr) {
            errs.push(FieldError::invalid(
                index("spec.podCIDRs", i),
                cidr.as_str(),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty())
        && !is_cidr(cidr)
    {
        errs.push(FieldError::invalid(
            "spec.podCIDR",
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// Service: Kubernetes' `ValidateService` (ports, type, clusterIP, externalName,
/// nodePort range, session affinity).
pub(crate) fn validate_service(svc: &Service, errs: &mut Errors) {
    let default = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default);
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let cluster_ips = spec.cluster_ips.as_deref().unwrap_or_default();
    let headless = cluster_ip == "None" || cluster_ips.first().is_some_and(|ip| ip == "None");
    let ports = spec.ports.as_deref().unwrap_or_default();

    if ports.is_empty() && !headless && type_ != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match type_ {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIP",
            "None",
            format!("may not be set to 'None' for {type_} services"),
        )),
        "ExternalName" => {
            if !cluster_ip.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIP",
                    "may not be set for ExternalName services",
                ));
            }
            if !cluster_ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let name = spec.external_name.as_deref().unwrap_or("");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                invalid_each(
                    "spec.externalName",
                    cname,
                    names::is_dns1123_subdomain(cname),
                    errs,
                );
            }
        }
        _ => {}
    }
    if type_ == "LoadBalancer" {
        for (i, p) in ports.iter().enumerate() {
            if p.port == 10250 {
                errs.push(FieldError::invalid(
                    index("spec.ports", i),
                    p.port,
                    "may not expose port 10250 externally since it is used by kubelet",
                ));
            }
        }
    }
    if !cluster_ip.is_empty() && cluster_ip != "None" && cluster_ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            "spec.clusterIP",
            cluster_ip,
            INVALID_IP,
        ));
    }

    let mut port_names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        validate_service_port(
            p,
            ports.len() > 1,
            &mut port_names,
            &index("spec.ports", i),
            errs,
        );
    }
    if let Some(selector) = &spec.selector {
        validate_labels(selector, "spec.selector", errs);
    }
    match spec.session_affinity.as_deref() {
        None | Some("ClientIP") | Some("None") => {}
        Some("") => errs.push(FieldError::required("spec.sessionAffinity", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    match spec.type_.as_deref() {
        None => {}
        Some("") => errs.push(FieldError::required("spec.type", "")),
        Some(t) if SERVICE_TYPES.contains(&t) => {}
        Some(t) => errs.push(FieldError::not_supported("spec.type", t, SERVICE_TYPES)),
    }
    for (field, policy) in [
        ("spec.externalTrafficPolicy", &spec.external_traffic_policy),
        ("spec.internalTrafficPolicy", &spec.internal_traffic_policy),
    ] {
        if let Some(p) = policy.as_deref().filter(|p| !p.is_empty())
            && p != "Cluster"
            && p != "Local"
        {
            errs.push(FieldError::not_supported(field, p, &["Cluster", "Local"]));
        }
    }

    let mut node_ports = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = index("spec.ports", i);
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        if let Some(node_port) = p.node_port.filter(|n| *n != 0) {
            let node_port_path = child(&path, "nodePort");
            if type_ == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    &node_port_path,
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errs.push(FieldError::invalid(
                    &node_port_path,
                    node_port,
                    format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORT_RANGE.start(),
                        NODE_PORT_RANGE.end()
                    ),
                ));
            }
            if !node_ports.insert((protocol, node_port)) {
                errs.push(FieldError::duplicate(&node_port_path, node_port));
            }
        }
        if !port_keys.insert((protocol, p.port)) {
            errs.push(FieldError::duplicate(
                &path,
                json!({"port": p.port, "protocol": protocol}),
            ));
        }
    }
}

fn validate_service_port<'a>(
    p: &'a ServicePort,
    require_name: bool,
    seen: &mut BTreeSet<&'a str>,
    path: &str,
    errs: &mut Errors,
) {
    let name = p.name.as_deref().unwrap_or("");
    if name.is_empty() {
        if require_name {
            errs.push(FieldError::required(child(path, "name"), ""));
        }
    } else {
        invalid_each(
            &child(path, "name"),
            name,
            names::is_dns1123_label(name),
            errs,
        );
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(child(path, "name"), name));
        }
    }
    for m in names::is_valid_port_num(i64::from(p.port)) {
        errs.push(FieldError::invalid(child(path, "port"), p.port, m));
    }
    validate_protocol(p.protocol.as_deref(), &child(path, "protocol"), errs);
    // An absent, zero or empty targetPort defaults to the port.
    match &p.target_port {
        None | Some(IntOrString::Int(0)) => {}
        Some(IntOrString::String(s)) if s.is_empty() => {}
        Some(target) => validate_port_num_or_name(target, &child(path, "targetPort"), errs),
    }
    if let Some(app_protocol) = p.app_protocol.as_deref() {
        invalid_each(
            &child(path, "appProtocol"),
            app_protocol,
            names::is_qualified_name(app_protocol),
            errs,
        );
    }
}

/// A Service's cluster IP, once allocated, stays (unless the type moves to or
/// from ExternalName). An absent one is carried over by the server.
pub(crate) fn validate_service_update(old: &Service, new: &Service, errs: &mut Errors) {
    let type_of = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|s| s.type_.clone())
            .unwrap_or_default()
    };
    if type_of(old) == "ExternalName" || type_of(new) == "ExternalName" {
        return;
    }
    let ip_of = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|s| s.cluster_ip.clone())
            .unwrap_or_default()
    };
    let (old_ip, new_ip) = (ip_of(old), ip_of(new));
    if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
        errs.push(immutable("spec.clusterIP", new_ip));
    }
}

/// Endpoints: addresses are IPs, ports valid and named when several.
pub(crate) fn validate_endpoints(ep: &Endpoints, errs: &mut Errors) {
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let p = index("subsets", i);
        let ready = subset.addresses.as_deref().unwrap_or_default();
        let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, addresses) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, a) in addresses.iter().enumerate() {
                let ap = index(&child(&p, field), j);
                // Unlike Kubernetes, loopback addresses are allowed: on one machine
                // Skiff's node proxy is reached there.
                if a.ip.parse::<IpAddr>().is_err() {
                    errs.push(FieldError::invalid(
                        child(&ap, "ip"),
                        a.ip.as_str(),
                        INVALID_IP,
                    ));
                }
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    invalid_each(&child(&ap, "hostname"), h, names::is_dns1123_label(h), errs);
                }
                if let Some(n) = a.node_name.as_deref() {
                    invalid_each(
                        &child(&ap, "nodeName"),
                        n,
                        names::is_dns1123_subdomain(n),
                        errs,
                    );
                }
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = port.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(child(&pp, "name"), ""));
            } else if !name.is_empty() {
                invalid_each(
                    &child(&pp, "name"),
                    name,
                    names::is_dns1123_label(name),
                    errs,
                );
            }
            for m in names::is_valid_port_num(i64::from(port.port)) {
                errs.push(FieldError::invalid(child(&pp, "port"), port.port, m));
            }
            validate_protocol(port.protocol.as_deref(), &child(&pp, "protocol"), errs);
        }
    }
}

/// Event (core/v1): Kubernetes' `legacyValidateEvent`.
pub(crate) fn validate_event(ev: &Event, errs: &mut Errors) {
    let ns = ev.metadata.namespace.as_deref().unwrap_or("");
    let involved_ns = ev.involved_object.namespace.as_deref().unwrap_or("");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        )
    };
    if ev.event_time.is_none() {
        // The namespace comes from the request path when the body has none.
        if !ns.is_empty() {
            if involved_ns.is_empty() {
                if ns != "default" {
                    errs.push(mismatch());
                }
            } else if ns != involved_ns {
                errs.push(mismatch());
            }
        }
        return;
    }
    if involved_ns.is_empty() && !ns.is_empty() && ns != "default" && ns != "kube-system" {
        errs.push(mismatch());
    }
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").to_string();
    let component = text(&ev.reporting_component);
    if component.is_empty() {
        errs.push(FieldError::required("reportingComponent", ""));
    }
    invalid_each(
        "reportingComponent",
        &component,
        names::is_qualified_name(&component),
        errs,
    );
    let limits = [
        ("reportingInstance", text(&ev.reporting_instance), 128),
        ("action", text(&ev.action), 128),
        ("reason", text(&ev.reason), 128),
    ];
    for (field, value, limit) in limits {
        if value.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else if value.len() > limit {
            errs.push(FieldError::invalid(
                field,
                "",
                format!("can have at most {limit} characters"),
            ));
        }
    }
    if text(&ev.message).len() > 1024 {
        errs.push(FieldError::invalid(
            "message",
            "",
            "can have at most 1024 characters",
        ));
    }
}

/// ConfigMap: keys are config keys, not repeated across `data` and
/// `binaryData`, and the whole holds at most 1 MiB. Read from the body because
/// `binaryData` is checked as Go decodes base64, not through the typed form.
pub(crate) fn validate_config_map(obj: &Value, errs: &mut Errors) {
    let empty = Map::new();
    let data = obj.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let binary = obj
        .get("binaryData")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut total = 0;
    for (k, v) in data {
        let p = key("data", k);
        invalid_each(&p, k, names::is_config_map_key(k), errs);
        if binary.contains_key(k) {
            errs.push(FieldError::invalid(
                &p,
                k.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary {
        invalid_each(&key("binaryData", k), k, names::is_config_map_key(k), errs);
        total += v.as_str().map_or(0, decoded_len);
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
}

/// Bytes a base64 string decodes to.
fn decoded_len(s: &str) -> usize {
    let symbols = s
        .bytes()
        .filter(|b| !matches!(b, b'\n' | b'\r' | b'='))
        .count();
    symbols * 3 / 4
}

/// Secret: keys, size, and the keys its type requires.
pub(crate) fn validate_secret(secret: &Secret, obj: &Value, errs: &mut Errors) {
    let empty = Map::new();
    let data = obj.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let mut total = 0;
    for (k, v) in data {
        let p = key("data", k);
        invalid_each(&p, k, names::is_config_map_key(k), errs);
        if let Some(s) = v.as_str() {
            // Bodies that went through the decode check cannot fail here.
            if let Some(at) = go_base64_error(s.as_bytes()) {
                errs.push(FieldError::invalid(
                    &p,
                    "",
                    format!("illegal base64 data at input byte {at}"),
                ));
            }
            total += decoded_len(s);
        }
    }
    let string_data = secret.string_data.clone().unwrap_or_default();
    for (k, v) in &string_data {
        invalid_each(&key("stringData", k), k, names::is_config_map_key(k), errs);
        total += v.len();
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.contains_key(k) || string_data.contains_key(k);
    let require = |k: &str, errs: &mut Errors| {
        if !has(k) {
            errs.push(FieldError::required(key("data", k), ""));
        }
    };
    match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/service-account-token" => {
            let annotated = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|n| !n.is_empty());
            if !annotated {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => require(".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson", errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" => require("ssh-privatekey", errs),
        "kubernetes.io/tls" => {
            require("tls.crt", errs);
            require("tls.key", errs);
        }
        "" => errs.push(FieldError::required("type", "")),
        _ => {}
    }
}

fn map_field(obj: &Value, field: &str) -> Map<String, Value> {
    obj.get(field)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn is_immutable(obj: &Value) -> bool {
    obj.get("immutable").and_then(Value::as_bool) == Some(true)
}

/// An `immutable: true` ConfigMap keeps its data and the flag.
pub(crate) fn validate_config_map_update(old: &Value, new: &Value, errs: &mut Errors) {
    if !is_immutable(old) {
        return;
    }
    if !is_immutable(new) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for field in ["data", "binaryData"] {
        if map_field(old, field) != map_field(new, field) {
            errs.push(FieldError::forbidden(field, IMMUTABLE_WHEN_SET));
        }
    }
}

/// A Secret keeps its type; an `immutable: true` one its data and the flag.
pub(crate) fn validate_secret_update(old: &Value, new: &Value, errs: &mut Errors) {
    let type_of = |o: &Value| {
        o.get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("Opaque")
            .to_string()
    };
    if type_of(old) != type_of(new) {
        errs.push(immutable("type", type_of(new)));
    }
    if !is_immutable(old) {
        return;
    }
    if !is_immutable(new) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    if map_field(old, "data") != map_field(new, "data") || !map_field(new, "stringData").is_empty()
    {
        errs.push(FieldError::forbidden("data", IMMUTABLE_WHEN_SET));
    }
}

fn validate_access_modes(modes: &[String], path: &str, errs: &mut Errors) {
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(path, m.as_str(), ACCESS_MODES));
        }
    }
}

/// PersistentVolume: capacity, access modes, exactly one volume source.
pub(crate) fn validate_persistent_volume(pv: &PersistentVolume, errs: &mut Errors) {
    let default = Default::default();
    let spec = pv.spec.as_ref().unwrap_or(&default);
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    validate_access_modes(modes, "spec.accessModes", errs);
    let capacity = spec.capacity.clone().unwrap_or_default();
    if capacity.is_empty() {
        errs.push(FieldError::required("spec.capacity", ""));
    }
    if !capacity.is_empty() && (!capacity.contains_key("storage") || capacity.len() > 1) {
        errs.push(FieldError::not_supported(
            "spec.capacity",
            super::to_json(&capacity),
            &["storage"],
        ));
    }
    for (name, q) in &capacity {
        let p = key("spec.capacity", name);
        if validate_quantity(q, &p, errs).is_some_and(|v| !v.is_positive()) {
            errs.push(FieldError::invalid(
                &p,
                q.0.as_str(),
                "must be greater than zero",
            ));
        }
    }
    if let Some(policy) = spec
        .persistent_volume_reclaim_policy
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let supported = ["Delete", "Recycle", "Retain"];
        if !supported.contains(&policy) {
            errs.push(FieldError::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                policy,
                &supported,
            ));
        }
    }
    const SOURCES: &[&str] = &[
        "awsElasticBlockStore",
        "azureDisk",
        "azureFile",
        "cephfs",
        "cinder",
        "csi",
        "fc",
        "flexVolume",
        "flocker",
        "gcePersistentDisk",
        "glusterfs",
        "hostPath",
        "iscsi",
        "local",
        "nfs",
        "photonPersistentDisk",
        "portworxVolume",
        "quobyte",
        "rbd",
        "scaleIO",
        "storageos",
        "vsphereVolume",
    ];
    let json = super::to_json(spec);
    let present: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|s| json.get(*s).is_some_and(|v| !v.is_null()))
        .collect();
    match present.as_slice() {
        [] => errs.push(FieldError::required("spec", "must specify a volume type")),
        [_] => {}
        [_, extra @ ..] => {
            for s in extra {
                errs.push(FieldError::forbidden(
                    child("spec", s),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if let Some(host_path) = &spec.host_path
        && host_path.path.is_empty()
    {
        errs.push(FieldError::required("spec.hostPath.path", ""));
    }
}

/// PersistentVolumeClaim: access modes and a storage request.
pub(crate) fn validate_persistent_volume_claim(pvc: &PersistentVolumeClaim, errs: &mut Errors) {
    let default = PersistentVolumeClaimSpec::default();
    let spec = pvc.spec.as_ref().unwrap_or(&default);
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    validate_access_modes(modes, "spec.accessModes", errs);
    if let Some(selector) = &spec.selector {
        label_selector::validate(selector, "spec.selector", errs);
    }
    let requests = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    match requests.get("storage") {
        None => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) => {
            let p = "spec.resources.requests[storage]";
            if validate_quantity(q, p, errs).is_some_and(|v| !v.is_positive()) {
                errs.push(FieldError::invalid(
                    p,
                    q.0.as_str(),
                    "must be greater than zero",
                ));
            }
        }
    }
}

/// A claim's spec is fixed once created, except its requests (expansion), its
/// volume attributes class, and the volume it gets bound to.
pub(crate) fn validate_persistent_volume_claim_update(
    old: &PersistentVolumeClaim,
    new: &PersistentVolumeClaim,
    errs: &mut Errors,
) {
    let old_spec = old.spec.clone().unwrap_or_default();
    let mut new_spec = new.spec.clone().unwrap_or_default();
    new_spec.resources.clone_from(&old_spec.resources);
    new_spec
        .volume_attributes_class_name
        .clone_from(&old_spec.volume_attributes_class_name);
    if old_spec.volume_name.as_deref().unwrap_or("").is_empty() {
        new_spec.volume_name.clone_from(&old_spec.volume_name);
    }
    if new_spec.storage_class_name.is_none() {
        new_spec
            .storage_class_name
            .clone_from(&old_spec.storage_class_name);
    }
    if new_spec.volume_mode.is_none() {
        new_spec.volume_mode.clone_from(&old_spec.volume_mode);
    }
    let (mut a, mut b) = (super::to_json(&old_spec), super::to_json(&new_spec));
    prune_empty(&mut a);
    prune_empty(&mut b);
    if a != b {
        let mut changed = Vec::new();
        diff_paths(&a, &b, "spec", &mut changed);
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\nchanged: {}",
                changed.join(", ")
            ),
        ));
    }
}

/// ResourceQuota: resource names and non-negative amounts.
pub(crate) fn validate_resource_quota(quota: &ResourceQuota, errs: &mut Errors) {
    for (name, q) in quota.spec.iter().flat_map(|s| s.hard.iter().flatten()) {
        let p = key("spec.hard", name);
        invalid_each(&p, name, names::is_qualified_name(name), errs);
        validate_quantity(q, &p, errs);
    }
    let supported = [
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
        "VolumeAttributesClass",
    ];
    for scope in quota.spec.iter().flat_map(|s| s.scopes.iter().flatten()) {
        if !supported.contains(&scope.as_str()) {
            errs.push(FieldError::not_supported(
                "spec.scopes",
                scope.as_str(),
                &supported,
            ));
        }
    }
}

/// LimitRange: one entry per type, amounts non-negative, min no more than max.
pub(crate) fn validate_limit_range(lr: &LimitRange, errs: &mut Errors) {
    let mut types = BTreeSet::new();
    for (i, limit) in lr.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
        let p = index("spec.limits", i);
        let t = limit.type_.as_str();
        let type_path = child(&p, "type");
        let msgs = names::is_qualified_name(t);
        if !msgs.is_empty() {
            invalid_each(&type_path, t, msgs, errs);
        } else if !t.contains('/') && !["Container", "Pod", "PersistentVolumeClaim"].contains(&t) {
            errs.push(FieldError::invalid(
                &type_path,
                t,
                "must be a standard limit type or fully qualified",
            ));
        }
        if !types.insert(t) {
            errs.push(FieldError::duplicate(&type_path, t));
        }
        let mut mins = BTreeMap::new();
        let mut maxes = BTreeMap::new();
        let maps = [
            ("max", &limit.max),
            ("min", &limit.min),
            ("default", &limit.default),
            ("defaultRequest", &limit.default_request),
            ("maxLimitRequestRatio", &limit.max_limit_request_ratio),
        ];
        for (field, map) in maps {
            for (name, q) in map.iter().flatten() {
                if let Some(v) = validate_quantity(q, &key(&child(&p, field), name), errs) {
                    match field {
                        "min" => mins.insert(name.as_str(), (v, q.0.as_str())),
                        "max" => maxes.insert(name.as_str(), (v, q.0.as_str())),
                        _ => None,
                    };
                }
            }
        }
        for (name, (min, min_text)) in &mins {
            if let Some((max, max_text)) = maxes.get(name)
                && min.cmp_to(*max).is_gt()
            {
                errs.push(FieldError::invalid(
                    key(&child(&p, "min"), name),
                    *min_text,
                    format!("min value {min_text} is greater than max value {max_text}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(errs: &Errors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn service(spec: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    fn svc_errors(spec: Value) -> Vec<String> {
        let mut errs = Errors::new();
        validate_service(&service(spec), &mut errs);
        strings(&errs)
    }

    #[test]
    fn services() {
        assert!(
            svc_errors(
                json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]})
            )
            .is_empty()
        );
        assert!(
            svc_errors(json!({"clusterIP": "None", "selector": {"app": "db"}})).is_empty(),
            "headless needs no ports"
        );
        assert!(
            svc_errors(json!({"type": "ExternalName", "externalName": "example.com."})).is_empty()
        );
        assert_eq!(svc_errors(json!({})), ["spec.ports: Required value"]);
        assert_eq!(
            svc_errors(json!({"ports": [{"port": 70000}]})),
            ["spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            svc_errors(
                json!({"type": "Balanced", "ports": [{"port": 80}, {"name": "http", "port": 80, "targetPort": "Bad_Name"}]})
            ),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.type: Unsupported value: \"Balanced\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                "spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}",
            ]
        );
        assert_eq!(
            svc_errors(
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 80}, {"name": "b", "port": 81, "nodePort": 80}]})
            ),
            [
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
                "spec.ports[1].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
                "spec.ports[1].nodePort: Duplicate value: 80",
            ]
        );
        assert_eq!(
            svc_errors(
                json!({"ports": [{"port": 80, "nodePort": 30080}], "clusterIP": "10.0.0.300"})
            ),
            [
                format!("spec.clusterIP: Invalid value: \"10.0.0.300\": {INVALID_IP}"),
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
                    .to_string(),
            ]
        );
        assert_eq!(
            svc_errors(json!({"type": "ExternalName"})),
            ["spec.externalName: Required value"]
        );
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = service(json!({"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}));
        let mut errs = Errors::new();
        validate_service_update(&old, &service(json!({"ports": [{"port": 81}]})), &mut errs);
        assert!(errs.is_empty());
        validate_service_update(
            &old,
            &service(json!({"clusterIP": "10.0.0.11", "ports": [{"port": 80}]})),
            &mut errs,
        );
        assert_eq!(
            strings(&errs),
            ["spec.clusterIP: Invalid value: \"10.0.0.11\": field is immutable"]
        );
    }

    #[test]
    fn config_maps_and_secrets() {
        let mut errs = Errors::new();
        validate_config_map(
            &json!({"data": {"good.key": "v", "bad/key": "v", "dup": "x"}, "binaryData": {"dup": "eA=="}}),
            &mut errs,
        );
        let got = strings(&errs);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
        assert_eq!(
            got[1],
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
        );

        let tls: Secret = serde_json::from_value(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}})).unwrap();
        let mut errs = Errors::new();
        validate_secret(&tls, &json!({"data": {"bad": "a!=="}}), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "data[bad]: Invalid value: \"\": illegal base64 data at input byte 1",
                "data[tls.key]: Required value"
            ]
        );

        let old = json!({"immutable": true, "data": {"a": "b"}});
        let mut errs = Errors::new();
        validate_config_map_update(&old, &json!({"data": {"a": "c"}}), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let mut errs = Errors::new();
        validate_secret_update(
            &json!({"type": "Opaque"}),
            &json!({"type": "kubernetes.io/tls"}),
            &mut errs,
        );
        assert_eq!(
            strings(&errs),
            ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
        let mut errs = Errors::new();
        validate_secret_update(
            &json!({}),
            &json!({"type": "Opaque", "data": {"x": "eA=="}}),
            &mut errs,
        );
        assert!(errs.is_empty());
    }

    #[test]
    fn nodes_namespaces_events() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {
            "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}, {"key": "j", "effect": "Sometimes"}],
            "podCIDRs": ["10.0.0.0/24", "10.0.0.0/33"]}})).unwrap();
        let mut errs = Errors::new();
        validate_node(&node, &mut errs);
        let got = strings(&errs);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].starts_with("spec.taints[1]: Duplicate value: "));
        assert!(got[0].ends_with(": taints must be unique by key and effect pair"));
        assert!(got[1].starts_with("spec.taints[2].effect: Unsupported value: \"Sometimes\""));
        assert!(got[2].starts_with("spec.podCIDRs[1]: Invalid value: \"10.0.0.0/33\""));

        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes", "custom"]}}),
        )
        .unwrap();
        let mut errs = Errors::new();
        validate_namespace(&ns, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );

        let ev: Event =
            serde_json::from_value(json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}}))
            .unwrap();
        let mut errs = Errors::new();
        validate_event(&ev, &mut errs);
        assert_eq!(
            strings(&errs),
            ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        let ev: Event =
            serde_json::from_value(json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingComponent": "skiff/scheduler"}))
            .unwrap();
        let mut errs = Errors::new();
        validate_event(&ev, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "reportingInstance: Required value",
                "action: Required value",
                "reason: Required value"
            ]
        );
    }

    #[test]
    fn volumes_and_claims() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(
            json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteSometimes"]}}),
        )
        .unwrap();
        let mut errs = Errors::new();
        validate_persistent_volume_claim(&pvc, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.resources[storage]: Required value",
            ]
        );
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "v"},
            "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/d"}}})).unwrap();
        let mut errs = Errors::new();
        validate_persistent_volume(&pv, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "0"}}})).unwrap();
        let mut errs = Errors::new();
        validate_persistent_volume(&pv, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
                "spec: Required value: must specify a volume type"
            ]
        );
        let old: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
            .unwrap();
        let grown: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}, "volumeName": "pv-1"}})).unwrap();
        let mut errs = Errors::new();
        validate_persistent_volume_claim_update(&old, &grown, &mut errs);
        assert!(errs.is_empty());
        let changed: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}))
            .unwrap();
        validate_persistent_volume_claim_update(&old, &changed, &mut errs);
        assert!(strings(&errs)[0].starts_with("spec: Forbidden: spec is immutable after creation"));
    }

    #[test]
    fn quotas_and_limit_ranges() {
        let lr: LimitRange =
            serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
            {"type": "Container"}, {"type": "Thing"}]}}))
            .unwrap();
        let mut errs = Errors::new();
        validate_limit_range(&lr, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
                "spec.limits[1].type: Duplicate value: \"Container\"",
                "spec.limits[2].type: Invalid value: \"Thing\": must be a standard limit type or fully qualified",
            ]
        );
        let q: ResourceQuota = serde_json::from_value(
            json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1"}}}),
        )
        .unwrap();
        let mut errs = Errors::new();
        validate_resource_quota(&q, &mut errs);
        assert_eq!(
            strings(&errs),
            ["spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0"]
        );
    }
}
