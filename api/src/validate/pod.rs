//! Pods and pod templates: Kubernetes' `ValidatePodSpec` and `ValidatePodUpdate`,
//! plus what running a pod as a WebAssembly component rules out.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler,
    Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityString;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::metadata::{validate_annotations, validate_labels};
use super::{Errors, Op, child, duration_seconds, index, invalid_each, key, names, nonnegative};
use crate::component::ComponentRef;
use crate::quantity::Quantity;
use crate::status::FieldError;

/// Why Skiff refuses `exec`, `tcpSocket` and `grpc` probes.
pub(crate) const WASM_PROBE_DETAIL: &str = "Skiff supports only `httpGet` probes: a pod is a WebAssembly component, with no process to exec into and no socket to connect to, and its HTTP handler answers `httpGet` probes in-process";
/// Why Skiff refuses `exec` and `tcpSocket` lifecycle handlers.
pub(crate) const WASM_LIFECYCLE_DETAIL: &str = "Skiff supports only `httpGet` and `sleep` lifecycle handlers: a pod is a WebAssembly component, with no process to exec into and no socket to connect to";

const INIT_WITHOUT_RESTART: &str =
    "may not be set for init containers without restartPolicy=Always";
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];

/// Kubernetes' `ValidatePodCreate`/`ValidatePod` for the spec.
pub(crate) fn validate_pod(pod: &Pod, op: Op, errs: &mut Errors) {
    let default = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default);
    validate_pod_spec(spec, "spec", errs);
    if op == Op::Create
        && spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
}

/// Kubernetes' `ValidatePodTemplateSpec`, at `path` (`spec.template`).
pub(crate) fn validate_pod_template(template: &PodTemplateSpec, path: &str, errs: &mut Errors) {
    if let Some(meta) = &template.metadata {
        // Kubernetes names the template's labels `<path>.labels`.
        if let Some(labels) = &meta.labels {
            validate_labels(labels, &child(path, "labels"), errs);
        }
        if let Some(annotations) = &meta.annotations {
            validate_annotations(annotations, &child(path, "annotations"), errs);
        }
    }
    let default = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default);
    let spec_path = child(path, "spec");
    validate_pod_spec(spec, &spec_path, errs);
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            child(&spec_path, "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// A template's restart policy with Kubernetes' default applied.
pub(crate) fn restart_policy(template: &PodTemplateSpec) -> &str {
    template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .filter(|p| !p.is_empty())
        .unwrap_or("Always")
}

/// A template's labels (empty when it has none).
pub(crate) fn template_labels(template: &PodTemplateSpec) -> BTreeMap<String, String> {
    template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Kubernetes' `ValidatePodSpec`, at `path` (`spec` or `spec.template.spec`).
pub(crate) fn validate_pod_spec(spec: &PodSpec, path: &str, errs: &mut Errors) {
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &child(path, "volumes"),
        errs,
    );

    let containers = spec.containers.as_slice();
    let containers_path = child(path, "containers");
    let mut names = BTreeSet::new();
    if containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    for (i, c) in containers.iter().enumerate() {
        let p = index(&containers_path, i);
        validate_container(c, &p, &volumes, errs);
        if !c.name.is_empty() && !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(child(&p, "name"), c.name.as_str()));
        }
        validate_probes_and_lifecycle(c, &p, false, errs);
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    let init_path = child(path, "initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = index(&init_path, i);
        validate_container(c, &p, &volumes, errs);
        if !c.name.is_empty() && !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(child(&p, "name"), c.name.as_str()));
        }
        let sidecar = match c.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                errs.push(FieldError::not_supported(
                    child(&p, "restartPolicy"),
                    other,
                    &["Always"],
                ));
                false
            }
        };
        validate_probes_and_lifecycle(c, &p, !sidecar, errs);
    }

    if let Some(policy) = spec.restart_policy.as_deref() {
        if policy.is_empty() {
            errs.push(FieldError::required(child(path, "restartPolicy"), ""));
        } else if !RESTART_POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                child(path, "restartPolicy"),
                policy,
                RESTART_POLICIES,
            ));
        }
    }
    if let Some(policy) = spec.dns_policy.as_deref().filter(|p| !p.is_empty()) {
        let supported = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
        if !supported.contains(&policy) {
            errs.push(FieldError::not_supported(
                child(path, "dnsPolicy"),
                policy,
                &supported,
            ));
        }
    }
    if let Some(selector) = &spec.node_selector {
        validate_labels(selector, &child(path, "nodeSelector"), errs);
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        invalid_each(
            &child(path, "serviceAccountName"),
            sa,
            names::is_dns1123_subdomain(sa),
            errs,
        );
    }
    if let Some(node) = spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        invalid_each(
            &child(path, "nodeName"),
            node,
            names::is_dns1123_subdomain(node),
            errs,
        );
    }
    duration_seconds(
        spec.termination_grace_period_seconds,
        &child(path, "terminationGracePeriodSeconds"),
        errs,
    );
    if let Some(deadline) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            deadline,
            names::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            invalid_each(&child(path, field), v, names::is_dns1123_label(v), errs);
        }
    }
    validate_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        &child(path, "tolerations"),
        errs,
    );
}

/// The checks common to every container (Kubernetes' `validateContainerCommon`).
fn validate_container(c: &Container, path: &str, volumes: &BTreeSet<String>, errs: &mut Errors) {
    if c.name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    } else {
        invalid_each(
            &child(path, "name"),
            &c.name,
            names::is_dns1123_label(&c.name),
            errs,
        );
    }
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(child(path, "image"), "")),
        Some(image) => {
            if let Err(why) = ComponentRef::parse(image) {
                errs.push(FieldError::invalid(
                    child(path, "image"),
                    image,
                    format!("must name a Wasm component pushed to the cluster as name:tag or sha256:<hex>: {why}"),
                ));
            }
        }
    }
    if let Some(policy) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        let supported = ["Always", "IfNotPresent", "Never"];
        if !supported.contains(&policy) {
            errs.push(FieldError::not_supported(
                child(path, "imagePullPolicy"),
                policy,
                &supported,
            ));
        }
    }
    if let Some(policy) = c
        .termination_message_policy
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let supported = ["File", "FallbackToLogsOnError"];
        if !supported.contains(&policy) {
            errs.push(FieldError::not_supported(
                child(path, "terminationMessagePolicy"),
                policy,
                &supported,
            ));
        }
    }
    validate_ports(
        c.ports.as_deref().unwrap_or_default(),
        &child(path, "ports"),
        errs,
    );
    validate_env(
        c.env.as_deref().unwrap_or_default(),
        &child(path, "env"),
        errs,
    );
    validate_env_from(
        c.env_from.as_deref().unwrap_or_default(),
        &child(path, "envFrom"),
        errs,
    );
    validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
        &child(path, "volumeMounts"),
        errs,
    );
    if let Some(resources) = &c.resources {
        validate_resources(resources, &child(path, "resources"), errs);
    }
}

/// Probes and lifecycle hooks; a plain init container may have neither.
fn validate_probes_and_lifecycle(c: &Container, path: &str, plain_init: bool, errs: &mut Errors) {
    let probes = [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ];
    if plain_init {
        if c.lifecycle.is_some() {
            errs.push(FieldError::forbidden(
                child(path, "lifecycle"),
                INIT_WITHOUT_RESTART,
            ));
        }
        for (field, probe, _) in probes {
            if probe.is_some() {
                errs.push(FieldError::forbidden(
                    child(path, field),
                    INIT_WITHOUT_RESTART,
                ));
            }
        }
        return;
    }
    if let Some(lifecycle) = &c.lifecycle {
        validate_lifecycle(lifecycle, &child(path, "lifecycle"), errs);
    }
    for (field, probe, success_must_be_one) in probes {
        if let Some(probe) = probe {
            let p = child(path, field);
            validate_probe(probe, &p, errs);
            let success = probe.success_threshold.unwrap_or(1);
            if success_must_be_one && success != 1 {
                errs.push(FieldError::invalid(
                    child(&p, "successThreshold"),
                    success,
                    "must be 1",
                ));
            }
        }
    }
}

fn validate_probe(probe: &Probe, path: &str, errs: &mut Errors) {
    let mut handlers = 0;
    for (field, present) in [
        ("exec", probe.exec.is_some()),
        ("tcpSocket", probe.tcp_socket.is_some()),
        ("grpc", probe.grpc.is_some()),
    ] {
        if present {
            handlers += 1;
            errs.push(FieldError::forbidden(child(path, field), WASM_PROBE_DETAIL));
        }
    }
    if let Some(http) = &probe.http_get {
        handlers += 1;
        validate_http_get(http, &child(path, "httpGet"), errs);
    }
    if handlers == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    nonnegative(
        probe.initial_delay_seconds,
        &child(path, "initialDelaySeconds"),
        errs,
    );
    nonnegative(probe.timeout_seconds, &child(path, "timeoutSeconds"), errs);
    nonnegative(probe.period_seconds, &child(path, "periodSeconds"), errs);
    nonnegative(
        probe.success_threshold,
        &child(path, "successThreshold"),
        errs,
    );
    nonnegative(
        probe.failure_threshold,
        &child(path, "failureThreshold"),
        errs,
    );
    if let Some(grace) = probe.termination_grace_period_seconds
        && grace <= 0
    {
        errs.push(FieldError::invalid(
            child(path, "terminationGracePeriodSeconds"),
            grace,
            "must be greater than 0",
        ));
    }
    duration_seconds(
        probe.termination_grace_period_seconds,
        &child(path, "terminationGracePeriodSeconds"),
        errs,
    );
}

fn validate_http_get(http: &HTTPGetAction, path: &str, errs: &mut Errors) {
    validate_port_num_or_name(&http.port, &child(path, "port"), errs);
    if let Some(scheme) = http.scheme.as_deref().filter(|s| !s.is_empty())
        && scheme != "HTTP"
        && scheme != "HTTPS"
    {
        errs.push(FieldError::not_supported(
            child(path, "scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for header in http.http_headers.iter().flatten() {
        invalid_each(
            &child(path, "httpHeaders"),
            &header.name,
            names::is_http_header_name(&header.name),
            errs,
        );
    }
}

fn validate_lifecycle(lifecycle: &Lifecycle, path: &str, errs: &mut Errors) {
    for (field, handler) in [
        ("postStart", &lifecycle.post_start),
        ("preStop", &lifecycle.pre_stop),
    ] {
        if let Some(h) = handler {
            validate_lifecycle_handler(h, &child(path, field), errs);
        }
    }
}

fn validate_lifecycle_handler(h: &LifecycleHandler, path: &str, errs: &mut Errors) {
    let mut handlers = 0;
    for (field, present) in [
        ("exec", h.exec.is_some()),
        ("tcpSocket", h.tcp_socket.is_some()),
    ] {
        if present {
            handlers += 1;
            errs.push(FieldError::forbidden(
                child(path, field),
                WASM_LIFECYCLE_DETAIL,
            ));
        }
    }
    if let Some(http) = &h.http_get {
        handlers += 1;
        validate_http_get(http, &child(path, "httpGet"), errs);
    }
    if let Some(sleep) = &h.sleep {
        handlers += 1;
        nonnegative(Some(sleep.seconds), &child(path, "sleep.seconds"), errs);
        duration_seconds(Some(sleep.seconds), &child(path, "sleep.seconds"), errs);
    }
    if handlers == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    } else if handlers > 1 {
        errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        ));
    }
}

/// Kubernetes' `ValidatePortNumOrName`.
pub(crate) fn validate_port_num_or_name(port: &IntOrString, path: &str, errs: &mut Errors) {
    match port {
        IntOrString::Int(n) => {
            for m in names::is_valid_port_num(i64::from(*n)) {
                errs.push(FieldError::invalid(path, *n, m));
            }
        }
        IntOrString::String(s) => invalid_each(path, s, names::is_valid_port_name(s), errs),
    }
}

fn validate_ports(ports: &[ContainerPort], path: &str, errs: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = names::is_valid_port_name(name);
            if !msgs.is_empty() {
                invalid_each(&child(&p, "name"), name, msgs, errs);
            } else if !seen.insert(name) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(child(&p, "containerPort"), ""));
        } else {
            for m in names::is_valid_port_num(i64::from(port.container_port)) {
                errs.push(FieldError::invalid(
                    child(&p, "containerPort"),
                    port.container_port,
                    m,
                ));
            }
        }
        if let Some(host_port) = port.host_port.filter(|h| *h != 0) {
            for m in names::is_valid_port_num(i64::from(host_port)) {
                errs.push(FieldError::invalid(child(&p, "hostPort"), host_port, m));
            }
        }
        validate_protocol(port.protocol.as_deref(), &child(&p, "protocol"), errs);
    }
}

/// A port protocol; absent means TCP, Kubernetes' default.
pub(crate) fn validate_protocol(protocol: Option<&str>, path: &str, errs: &mut Errors) {
    match protocol {
        None => {}
        Some("") => errs.push(FieldError::required(path, "")),
        Some(p) if PROTOCOLS.contains(&p) => {}
        Some(p) => errs.push(FieldError::not_supported(path, p, PROTOCOLS)),
    }
}

fn validate_env(env: &[EnvVar], path: &str, errs: &mut Errors) {
    for (i, var) in env.iter().enumerate() {
        let p = index(path, i);
        if var.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            invalid_each(
                &child(&p, "name"),
                &var.name,
                names::is_env_var_name(&var.name),
                errs,
            );
        }
        let Some(from) = &var.value_from else {
            continue;
        };
        let from_path = child(&p, "valueFrom");
        let mut sources = 0;
        if let Some(r) = &from.field_ref {
            sources += 1;
            validate_field_ref(&r.field_path, &child(&from_path, "fieldRef"), errs);
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            let supported = [
                "limits.cpu",
                "limits.ephemeral-storage",
                "limits.memory",
                "requests.cpu",
                "requests.ephemeral-storage",
                "requests.memory",
            ];
            let resource = r.resource.as_str();
            if resource.is_empty() {
                errs.push(FieldError::required(
                    child(&child(&from_path, "resourceFieldRef"), "resource"),
                    "",
                ));
            } else if !supported.contains(&resource) && !resource.contains("hugepages-") {
                errs.push(FieldError::not_supported(
                    child(&child(&from_path, "resourceFieldRef"), "resource"),
                    resource,
                    &supported,
                ));
            }
        }
        let key_refs = [
            (
                "configMapKeyRef",
                from.config_map_key_ref
                    .as_ref()
                    .map(|r| (r.name.as_str(), r.key.as_str())),
            ),
            (
                "secretKeyRef",
                from.secret_key_ref
                    .as_ref()
                    .map(|r| (r.name.as_str(), r.key.as_str())),
            ),
        ];
        for (field, r) in key_refs {
            let Some((name, k)) = r else { continue };
            sources += 1;
            let ref_path = child(&from_path, field);
            invalid_each(
                &child(&ref_path, "name"),
                name,
                names::is_dns1123_subdomain(name),
                errs,
            );
            if k.is_empty() {
                errs.push(FieldError::required(child(&ref_path, "key"), ""));
            } else {
                invalid_each(
                    &child(&ref_path, "key"),
                    k,
                    names::is_config_map_key(k),
                    errs,
                );
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "may not have more than one field specified at a time",
            ));
        } else if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
    }
}

fn validate_field_ref(field_path: &str, path: &str, errs: &mut Errors) {
    let p = child(path, "fieldPath");
    if field_path.is_empty() {
        errs.push(FieldError::required(p, ""));
        return;
    }
    let supported = [
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    ];
    for prefix in ["metadata.labels", "metadata.annotations"] {
        if field_path == prefix {
            return;
        }
        if let Some(subscript) = field_path
            .strip_prefix(prefix)
            .and_then(|s| s.strip_prefix("['"))
            .and_then(|s| s.strip_suffix("']"))
        {
            let check = if prefix == "metadata.labels" {
                subscript.to_string()
            } else {
                subscript.to_lowercase()
            };
            invalid_each(&p, subscript, names::is_qualified_name(&check), errs);
            return;
        }
    }
    if !supported.contains(&field_path) {
        let mut all = vec!["metadata.annotations", "metadata.labels"];
        all.extend(supported);
        all.sort_unstable();
        errs.push(FieldError::not_supported(p, field_path, &all));
    }
}

fn validate_env_from(sources: &[EnvFromSource], path: &str, errs: &mut Errors) {
    for (i, source) in sources.iter().enumerate() {
        let p = index(path, i);
        if let Some(prefix) = source.prefix.as_deref().filter(|s| !s.is_empty()) {
            invalid_each(
                &child(&p, "prefix"),
                prefix,
                names::is_env_var_name(prefix),
                errs,
            );
        }
        let refs = [
            (
                "configMapRef",
                source.config_map_ref.as_ref().map(|r| r.name.as_str()),
            ),
            (
                "secretRef",
                source.secret_ref.as_ref().map(|r| r.name.as_str()),
            ),
        ];
        let mut count = 0;
        for (field, name) in refs {
            let Some(name) = name else { continue };
            count += 1;
            invalid_each(
                &child(&child(&p, field), "name"),
                name,
                names::is_dns1123_subdomain(name),
                errs,
            );
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                &p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                &p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// Validates the pod's volumes and returns the names declared.
fn validate_volumes(volumes: &[Volume], path: &str, errs: &mut Errors) -> BTreeSet<String> {
    let mut declared = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = index(path, i);
        validate_volume_source(v, &p, errs);
        if v.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            invalid_each(
                &child(&p, "name"),
                &v.name,
                names::is_dns1123_label(&v.name),
                errs,
            );
        }
        if !declared.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(child(&p, "name"), v.name.as_str()));
        }
    }
    declared
}

fn validate_volume_source(v: &Volume, path: &str, errs: &mut Errors) {
    let sources = [
        ("hostPath", v.host_path.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("configMap", v.config_map.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("projected", v.projected.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let present: Vec<&str> = sources
        .iter()
        .filter(|(_, p)| *p)
        .map(|(f, _)| *f)
        .collect();
    match present.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a volume type")),
        [_] => {}
        [_, extra @ ..] => {
            for field in extra {
                errs.push(FieldError::forbidden(
                    child(path, field),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if let Some(s) = &v.host_path
        && s.path.is_empty()
    {
        errs.push(FieldError::required(child(path, "hostPath.path"), ""));
    }
    if let Some(s) = &v.config_map {
        let name = s.name.as_str();
        if name.is_empty() {
            errs.push(FieldError::required(child(path, "configMap.name"), ""));
        } else {
            invalid_each(
                &child(path, "configMap.name"),
                name,
                names::is_dns1123_subdomain(name),
                errs,
            );
        }
    }
    if let Some(s) = &v.secret {
        match s.secret_name.as_deref() {
            None | Some("") => {
                errs.push(FieldError::required(child(path, "secret.secretName"), ""))
            }
            Some(name) => invalid_each(
                &child(path, "secret.secretName"),
                name,
                names::is_dns1123_subdomain(name),
                errs,
            ),
        }
    }
    if let Some(s) = &v.persistent_volume_claim
        && s.claim_name.is_empty()
    {
        errs.push(FieldError::required(
            child(path, "persistentVolumeClaim.claimName"),
            "",
        ));
    }
    if let Some(size) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
        validate_quantity(size, &child(path, "emptyDir.sizeLimit"), errs);
    }
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    path: &str,
    errs: &mut Errors,
) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        if m.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains(&m.name) {
            // Kubernetes answers `Not found: "<name>"` here.
            errs.push(FieldError::invalid(
                child(&p, "name"),
                m.name.as_str(),
                "not found: no volume of this name is declared in the pod's `volumes`",
            ));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        } else if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            validate_local_descending_path(sub, &child(&p, "subPath"), errs);
        }
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
            && m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
        {
            errs.push(FieldError::invalid(
                child(&p, "subPathExpr"),
                m.sub_path_expr.as_deref().unwrap_or_default(),
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
    }
}

/// Kubernetes' `validateLocalDescendingPath`: relative, without `..`.
fn validate_local_descending_path(target: &str, path: &str, errs: &mut Errors) {
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, target, "must be a relative path"));
    }
    if target.split(['/', '\\']).any(|part| part == "..") {
        errs.push(FieldError::invalid(path, target, "must not contain '..'"));
    }
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn validate_resource_name(name: &str, path: &str, errs: &mut Errors) {
    let msgs = names::is_qualified_name(name);
    if !msgs.is_empty() {
        invalid_each(path, name, msgs, errs);
        return;
    }
    if !name.contains('/') {
        let standard = ["cpu", "memory", "ephemeral-storage"].contains(&name)
            || name.starts_with("hugepages-");
        if !standard {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    }
}

/// A quantity of an extended resource (`example.com/gpu`) counts devices.
fn validate_integer_resource(name: &str, q: Quantity, text: &str, path: &str, errs: &mut Errors) {
    if !is_native_resource(name) && !q.is_integer() {
        errs.push(FieldError::invalid(path, text, "must be an integer"));
    }
}

/// A quantity's form and sign, reporting at `path`.
pub(crate) fn validate_quantity(
    q: &QuantityString,
    path: &str,
    errs: &mut Errors,
) -> Option<Quantity> {
    match Quantity::parse(&q.0) {
        Err(why) => {
            errs.push(FieldError::invalid(path, q.0.as_str(), why.to_string()));
            None
        }
        Ok(parsed) if parsed.is_negative() => {
            errs.push(FieldError::invalid(
                path,
                q.0.as_str(),
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(parsed) => Some(parsed),
    }
}

/// Kubernetes' `ValidateResourceRequirements`: known names, non-negative values,
/// requests no more than limits (equal for resources that cannot be overcommitted).
fn validate_resources(r: &ResourceRequirements, path: &str, errs: &mut Errors) {
    let limits_path = child(path, "limits");
    let requests_path = child(path, "requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let mut parsed_limits = BTreeMap::new();
    for (name, q) in limits {
        let p = key(&limits_path, name);
        validate_resource_name(name, &p, errs);
        if let Some(v) = validate_quantity(q, &p, errs) {
            validate_integer_resource(name, v, &q.0, &p, errs);
            parsed_limits.insert(name.as_str(), (v, q.0.as_str()));
        }
    }
    for (name, q) in r.requests.iter().flatten() {
        let p = key(&requests_path, name);
        validate_resource_name(name, &p, errs);
        let Some(request) = validate_quantity(q, &p, errs) else {
            continue;
        };
        validate_integer_resource(name, request, &q.0, &p, errs);
        let overcommit = is_native_resource(name) && !name.starts_with("hugepages-");
        match parsed_limits.get(name.as_str()) {
            Some((limit, limit_text)) => {
                if !overcommit && request.cmp_to(*limit).is_ne() {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        q.0.as_str(),
                        format!("must be equal to {name} limit of {limit_text}"),
                    ));
                } else if request.cmp_to(*limit).is_gt() {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        q.0.as_str(),
                        format!("must be less than or equal to {name} limit of {limit_text}"),
                    ));
                }
            }
            None if !overcommit && !limits.contains_key(name) => {
                errs.push(FieldError::required(
                    &limits_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
}

/// Kubernetes' `validateTolerations`.
fn validate_tolerations(tolerations: &[Toleration], path: &str, errs: &mut Errors) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let key = t.key.as_deref().unwrap_or("");
        let operator = t.operator.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        if !key.is_empty() {
            invalid_each(&child(&p, "key"), key, names::is_qualified_name(key), errs);
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        duration_seconds(t.toleration_seconds, &child(&p, "tolerationSeconds"), errs);
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                let msgs = names::is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        super::to_json(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                child(&p, "effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
}

/// A taint effect (Node taints), which, unlike a toleration's, is required.
pub(crate) fn validate_taint_effect(effect: &str, path: &str, errs: &mut Errors) {
    if effect.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !TAINT_EFFECTS.contains(&effect) {
        errs.push(FieldError::not_supported(path, effect, TAINT_EFFECTS));
    }
}

/// Kubernetes' `ValidatePodUpdate`: a pod's spec is fixed once created, except
/// container images, a shorter `activeDeadlineSeconds`, added tolerations and
/// the binding to a node.
pub(crate) fn validate_pod_update(old: &Pod, new: &Pod, errs: &mut Errors) {
    let default = PodSpec::default();
    let old_spec = old.spec.as_ref().unwrap_or(&default);
    let mut munged = new.spec.clone().unwrap_or_default();

    if munged.containers.len() != old_spec.containers.len() {
        errs.push(FieldError::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return;
    }
    let old_init = old_spec.init_containers.as_deref().unwrap_or_default();
    if munged.init_containers.as_deref().unwrap_or_default().len() != old_init.len() {
        errs.push(FieldError::forbidden(
            "spec.initContainers",
            "pod updates may not add or remove containers",
        ));
        return;
    }
    for (i, c) in munged.containers.iter().enumerate() {
        if let Some(image) = c.image.as_deref()
            && image.trim() != image
        {
            errs.push(FieldError::invalid(
                index("spec.containers", i) + ".image",
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    for (new_c, old_c) in munged.containers.iter_mut().zip(&old_spec.containers) {
        new_c.image.clone_from(&old_c.image);
        if new_c.image_pull_policy.is_none() || old_c.image_pull_policy.is_none() {
            new_c.image_pull_policy.clone_from(&old_c.image_pull_policy);
        }
    }
    for (new_c, old_c) in munged.init_containers.iter_mut().flatten().zip(old_init) {
        new_c.image.clone_from(&old_c.image);
        if new_c.image_pull_policy.is_none() || old_c.image_pull_policy.is_none() {
            new_c.image_pull_policy.clone_from(&old_c.image_pull_policy);
        }
    }

    // activeDeadlineSeconds may be set, or shortened, never lifted.
    match (
        munged.active_deadline_seconds,
        old_spec.active_deadline_seconds,
    ) {
        (Some(new_d), Some(old_d)) if old_d < new_d => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            new_d,
            "must be less than or equal to previous value",
        )),
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;

    // Tolerations may be added; existing ones may only change tolerationSeconds.
    let new_tolerations = munged.tolerations.as_deref().unwrap_or_default();
    for old_t in old_spec.tolerations.iter().flatten() {
        let kept = new_tolerations.iter().any(|new_t| {
            let mut probe = old_t.clone();
            probe.toleration_seconds = new_t.toleration_seconds;
            probe == *new_t
        });
        if !kept {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    munged.tolerations.clone_from(&old_spec.tolerations);
    munged
        .scheduling_gates
        .clone_from(&old_spec.scheduling_gates);
    if old_spec
        .termination_grace_period_seconds
        .is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    // Binding: the scheduler sets nodeName once, as Kubernetes' pods/binding does.
    if old_spec.node_name.as_deref().unwrap_or("").is_empty() {
        munged.node_name.clone_from(&old_spec.node_name);
    }

    let old_json = normalized_pod_spec(old_spec);
    let new_json = normalized_pod_spec(&munged);
    if old_json != new_json {
        let mut changed = Vec::new();
        diff_paths(&old_json, &new_json, "spec", &mut changed);
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\nchanged: {}",
                changed.join(", ")
            ),
        ));
    }
}

/// The pod spec as JSON with Kubernetes' defaults filled in and empty values
/// dropped, so that a spec written with and one written without defaults
/// compare equal, as they would after Kubernetes' defaulting.
pub(crate) fn normalized_pod_spec(spec: &PodSpec) -> Value {
    let mut s = spec.clone();
    s.restart_policy.get_or_insert_with(|| "Always".into());
    s.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    s.termination_grace_period_seconds.get_or_insert(30);
    s.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    s.enable_service_links.get_or_insert(true);
    if s.service_account_name.as_deref().unwrap_or("").is_empty() {
        s.service_account_name = s.service_account.clone();
    }
    s.service_account = None;
    for flag in [&mut s.host_network, &mut s.host_pid, &mut s.host_ipc] {
        if *flag == Some(false) {
            *flag = None;
        }
    }
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in s.volumes.iter_mut().flatten() {
        if let Some(cm) = &mut v.config_map {
            cm.default_mode.get_or_insert(420);
        }
        if let Some(secret) = &mut v.secret {
            secret.default_mode.get_or_insert(420);
        }
        if let Some(projected) = &mut v.projected {
            projected.default_mode.get_or_insert(420);
        }
    }
    let mut json = super::to_json(&s);
    prune_empty(&mut json);
    json
}

fn default_container(c: &mut Container) {
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    for flag in [&mut c.stdin, &mut c.stdin_once, &mut c.tty] {
        if *flag == Some(false) {
            *flag = None;
        }
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for m in c.volume_mounts.iter_mut().flatten() {
        if m.read_only == Some(false) {
            m.read_only = None;
        }
    }
    for var in c.env.iter_mut().flatten() {
        if let Some(r) = var.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            r.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe.timeout_seconds.get_or_insert(1);
        probe.period_seconds.get_or_insert(10);
        probe.success_threshold.get_or_insert(1);
        probe.failure_threshold.get_or_insert(3);
        if let Some(http) = &mut probe.http_get {
            if http.path.as_deref().unwrap_or("").is_empty() {
                http.path = Some("/".into());
            }
            http.scheme.get_or_insert_with(|| "HTTP".into());
        }
    }
}

/// Drops nulls, empty strings, empty arrays and empty objects from objects,
/// recursively: Go's `omitempty` makes them all the same as absent.
pub(crate) fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| !is_empty_json(child));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty_json(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The paths at which `old` and `new` differ (the first few), for messages.
pub(crate) fn diff_paths(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    const MAX: usize = 5;
    if out.len() >= MAX || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                diff_paths(x, y, &child(path, k), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_paths(x, y, &index(path, i), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::FORMAT_ERROR;
    use serde_json::json;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn errors(spec: Value) -> Vec<String> {
        let mut errs = Errors::new();
        validate_pod(&pod(spec), Op::Create, &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn good_pod() {
        let errs = errors(json!({
            "containers": [{
                "name": "web", "image": "hello:v1",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "GREETING", "value": "hi"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                "livenessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 5}
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
        }));
        assert!(errs.is_empty(), "{errs:#?}");
    }

    #[test]
    fn containers_are_required() {
        assert_eq!(errors(json!({})), ["spec.containers: Required value"]);
        assert_eq!(
            errors(json!({"containers": []})),
            ["spec.containers: Required value"]
        );
    }

    #[test]
    fn container_rules() {
        let errs = errors(json!({
            "containers": [
                {"name": "Web_App", "ports": [{"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 0}]},
                {"name": "side", "image": "ghcr.io/org/app:v1",
                 "env": [{"name": ""}, {"name": "A=B"}, {"name": "X", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                 "volumeMounts": [{"name": "nope", "mountPath": "/x"}, {"name": "data", "mountPath": "/x", "subPath": "../up"}]},
                {"name": "side", "image": "hello"}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "hostPath": {"path": "/d"}, "emptyDir": {}}, {"name": "none"}],
            "restartPolicy": "Sometimes"
        }));
        let want_prefixes = [
            "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.volumes[2]: Required value: must specify a volume type",
            "spec.containers[0].name: Invalid value: \"Web_App\": a lowercase RFC 1123 label",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.containers[1].image: Invalid value: \"ghcr.io/org/app:v1\": must name a Wasm component",
            "spec.containers[1].env[0].name: Required value",
            "spec.containers[1].env[1].name: Invalid value: \"A=B\"",
            "spec.containers[1].env[2].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.containers[1].volumeMounts[0].name: Invalid value: \"nope\": not found",
            "spec.containers[1].volumeMounts[1].mountPath: Invalid value: \"/x\": must be unique",
            "spec.containers[1].volumeMounts[1].subPath: Invalid value: \"../up\": must not contain '..'",
            "spec.containers[2].name: Duplicate value: \"side\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ];
        assert_eq!(errs.len(), want_prefixes.len(), "{errs:#?}");
        for (got, want) in errs.iter().zip(want_prefixes) {
            assert!(got.starts_with(want), "got {got:?}\nwant {want:?}");
        }
    }

    #[test]
    fn only_http_probes() {
        let errs = errors(json!({"containers": [{
            "name": "web", "image": "hello:v1",
            "livenessProbe": {"tcpSocket": {"port": 8080}},
            "readinessProbe": {"exec": {"command": ["true"]}},
            "startupProbe": {"grpc": {"port": 9090}, "successThreshold": 2},
            "lifecycle": {"preStop": {"exec": {"command": ["x"]}}, "postStart": {"sleep": {"seconds": 1}}}
        }]}));
        let fields: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.containers[0].lifecycle.preStop.exec",
                "spec.containers[0].livenessProbe.tcpSocket",
                "spec.containers[0].readinessProbe.exec",
                "spec.containers[0].startupProbe.grpc",
                "spec.containers[0].startupProbe.successThreshold",
            ]
        );
        assert_eq!(
            errs[1],
            format!("spec.containers[0].livenessProbe.tcpSocket: Forbidden: {WASM_PROBE_DETAIL}")
        );
        assert_eq!(
            errors(
                json!({"containers": [{"name": "w", "image": "h", "livenessProbe": {"periodSeconds": 1}}]})
            ),
            ["spec.containers[0].livenessProbe: Required value: must specify a handler type"]
        );
    }

    #[test]
    fn init_containers() {
        let errs = errors(json!({
            "containers": [{"name": "web", "image": "h"}],
            "initContainers": [
                {"name": "web", "image": "h", "readinessProbe": {"httpGet": {"port": 80}}},
                {"name": "side", "image": "h", "restartPolicy": "Always", "readinessProbe": {"httpGet": {"port": 80}}}
            ]
        }));
        assert_eq!(
            errs,
            [
                "spec.initContainers[0].name: Duplicate value: \"web\"",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ]
        );
    }

    #[test]
    fn resources() {
        let errs = errors(
            json!({"containers": [{"name": "w", "image": "h", "resources": {
                "requests": {"cpu": "2", "memory": "12XB", "example.com/gpu": "1"},
                "limits": {"cpu": "1", "gpus": "1", "example.com/gpu": "2", "memory": "-1"}
            }}]}),
        );
        assert_eq!(
            errs,
            [
                "spec.containers[0].resources.limits[gpus]: Invalid value: \"gpus\": must be a standard resource for containers",
                "spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2",
                format!("spec.containers[0].resources.requests[memory]: Invalid value: \"12XB\": {FORMAT_ERROR}").as_str(),
            ]
        );
    }

    #[test]
    fn tolerations_and_misc() {
        let errs = errors(json!({
            "containers": [{"name": "w", "image": "h"}],
            "tolerations": [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"},
                            {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}, {"key": "k", "effect": "Sometimes"}],
            "activeDeadlineSeconds": 0,
            "nodeSelector": {"bad key!": "x"}
        }));
        let fields: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.nodeSelector",
                "spec.activeDeadlineSeconds",
                "spec.tolerations[0].operator",
                "spec.tolerations[1].operator",
                "spec.tolerations[2].effect",
                "spec.tolerations[3].effect",
            ]
        );
    }

    #[test]
    fn pod_updates() {
        let old = pod(json!({
            "containers": [{"name": "w", "image": "hello:v1", "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}],
            "activeDeadlineSeconds": 100
        }));
        let check = |new: Value| {
            let mut errs = Errors::new();
            validate_pod_update(&old, &pod(new), &mut errs);
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        // Image, shorter deadline, added toleration, binding, spelled-out defaults.
        assert_eq!(
            check(json!({
                "containers": [{"name": "w", "image": "hello:v2", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}],
                "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20},
                                {"key": "b", "operator": "Exists"}],
                "activeDeadlineSeconds": 50, "nodeName": "node-1", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"
            })),
            Vec::<String>::new()
        );
        let errs = check(json!({
            "containers": [{"name": "w", "image": "hello:v1", "ports": [{"containerPort": 81}]}],
            "activeDeadlineSeconds": 200
        }));
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!(
            errs[0],
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
        );
        assert_eq!(
            errs[1],
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
        );
        assert!(errs[2].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
        assert!(
            errs[2].ends_with("changed: spec.containers[0].ports[0].containerPort"),
            "{}",
            errs[2]
        );
        assert_eq!(
            check(
                json!({"containers": [{"name": "w", "image": "h"}, {"name": "x", "image": "h"}]})
            ),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
    }
}
