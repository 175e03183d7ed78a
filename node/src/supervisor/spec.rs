//! A Kubernetes container, in its pod, becomes the runtime's [`PodSpec`]: one
//! group of fields per runtime capability, each from its own function here
//! (`cli`: arguments, environment with the downward API, working directory;
//! `mounts`: volumes as preopened directories; `limits`, and with them the
//! pod's `skiff.dev/instance-reuse` annotation, `instance_reuse`). Outbound HTTP
//! is the supervisor's to set, once the pod has an address. What a node cannot
//! honour yet is a [`ConfigError`], shown as the container's
//! `CreateContainerConfigError`.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, Volume, VolumeMount};
use skiff_api::quantity::Quantity;
use skiff_runtime::{Cli, InstanceReuse, Kind, Limits, Mount, PodSpec};

use super::host_path::{HostPathPolicy, PinnedDir, resolve_within};

/// The pod annotation that lets its HTTP containers serve request after
/// request in the same instance: `"true"`, or `"false"` (the default, a fresh
/// instance per request).
pub(crate) const INSTANCE_REUSE_ANNOTATION: &str = "skiff.dev/instance-reuse";

/// Why a container cannot be configured; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct ConfigError(pub(super) String);

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// What [`pod_spec`] needs besides the pod and its container.
pub(super) struct SpecInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub kind: Kind,
    /// This node's name, for `spec.nodeName` when the pod does not carry it.
    pub node_name: &'a str,
    /// `<pods_dir>/<pod uid>`: where emptyDir volumes live.
    pub pod_dir: &'a Path,
    /// Which host directories hostPath volumes may mount.
    pub host_paths: &'a HostPathPolicy,
}

/// The runtime spec of `inputs.container`. Creates the emptyDir directories it mounts.
pub(super) fn pod_spec(inputs: &SpecInputs<'_>) -> Result<PodSpec> {
    let meta = &inputs.pod.metadata;
    let mut limits = limits(inputs.container, inputs.kind)?;
    limits.reuse = instance_reuse(inputs.pod, inputs.kind)?;
    Ok(PodSpec {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        cli: cli(inputs)?,
        mounts: mounts(inputs)?,
        limits,
        outbound: None,
    })
}

/// The container's arguments, environment and working directory.
fn cli(inputs: &SpecInputs<'_>) -> Result<Cli> {
    let container = inputs.container;
    let env = environment(inputs)?;
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // WASI gives the guest argv[0] itself (the runtime sets it to the pod name),
    // and a component has one entry point, so `command[0]` (the program to run in
    // a container image) has nothing to name here and is dropped: the guest sees
    // `command[1..]` followed by `args`, or `args` alone when there is no
    // `command`. `$(VAR)` references expand as Kubernetes expands them.
    let command = container.command.iter().flatten().skip(1);
    let args = command
        .chain(container.args.iter().flatten())
        .map(|a| expand(a, &lookup))
        .collect();
    Ok(Cli {
        args,
        env,
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
    })
}

/// The container's `env`, resolved in order; `envFrom` is refused.
fn environment(inputs: &SpecInputs<'_>) -> Result<Vec<(String, String)>> {
    let c = inputs.container;
    if let Some(from) = c.env_from.as_ref().filter(|f| !f.is_empty()) {
        let what = if from.iter().any(|f| f.config_map_ref.is_some()) {
            "ConfigMap"
        } else {
            "Secret"
        };
        return Err(ConfigError(format!(
            "container {:?}: envFrom ({what}) is not supported on this node yet: ConfigMap and Secret references are to be resolved by the control plane; set the variables with env[].value",
            c.name
        )));
    }
    let mut env: Vec<(String, String)> = Vec::new();
    for var in c.env.iter().flatten() {
        let value = env_value(inputs, var, &env)?;
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

fn env_value(
    inputs: &SpecInputs<'_>,
    var: &EnvVar,
    earlier: &[(String, String)],
) -> Result<String> {
    let Some(source) = &var.value_from else {
        // Only variables defined earlier in the list can be referenced.
        let lookup = |name: &str| {
            earlier
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        return Ok(expand(var.value.as_deref().unwrap_or_default(), &lookup));
    };
    let unsupported = |what: &str| {
        ConfigError(format!(
            "env {:?}: valueFrom.{what} is not supported on this node yet: ConfigMap, Secret and resource references are to be resolved by the control plane; use value or valueFrom.fieldRef",
            var.name
        ))
    };
    if source.config_map_key_ref.is_some() {
        return Err(unsupported("configMapKeyRef"));
    }
    if source.secret_key_ref.is_some() {
        return Err(unsupported("secretKeyRef"));
    }
    if source.resource_field_ref.is_some() {
        return Err(unsupported("resourceFieldRef"));
    }
    match &source.field_ref {
        Some(field) => field_value(inputs, &field.field_path).ok_or_else(|| {
            ConfigError(format!(
                "env {:?}: unsupported fieldRef.fieldPath {:?}",
                var.name, field.field_path
            ))
        }),
        None => Ok(String::new()),
    }
}

/// The downward API: the value of `path` in the pod, as Kubernetes resolves it.
fn field_value(inputs: &SpecInputs<'_>, path: &str) -> Option<String> {
    let pod = inputs.pod;
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix(']')?;
        let key = key
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))?;
        Some(key.to_string())
    };
    if let Some(key) = subscript("metadata.labels[") {
        return Some(
            meta.labels
                .as_ref()
                .and_then(|l| l.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(key) = subscript("metadata.annotations[") {
        return Some(
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| inputs.node_name.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        // A Wasm pod has no network interface of its own: its HTTP handler is
        // called in-process, so there is no IP address to give.
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => String::new(),
        _ => return None,
    })
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined
/// reference is left as written, and `$$` is a literal `$`.
pub(super) fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(end) => {
                    let name = &r[..end];
                    match lookup(name) {
                        Some(v) if !name.is_empty() => out.push_str(&v),
                        _ => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &r[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    out.push_str(r);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's volume mounts as preopened directories.
fn mounts(inputs: &SpecInputs<'_>) -> Result<Vec<Mount>> {
    let volumes: HashMap<&str, &Volume> = inputs
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut out = Vec::new();
    for m in inputs.container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.get(m.name.as_str()) else {
            return Err(ConfigError(format!(
                "volumeMount {:?}: the pod has no volume of that name",
                m.name
            )));
        };
        let (dir, forced_read_only) = volume_dir(inputs, volume, m)?;
        out.push(Mount {
            host_path: dir.path,
            guest_path: m.mount_path.clone(),
            read_only: forced_read_only || m.read_only.unwrap_or(false),
            pinned: Some(dir.fd),
        });
    }
    Ok(out)
}

/// The host directory behind `mount` of `volume`, created when Kubernetes
/// would and held open, and whether it must be read-only whatever the mount
/// says.
fn volume_dir(
    inputs: &SpecInputs<'_>,
    volume: &Volume,
    mount: &VolumeMount,
) -> Result<(PinnedDir, bool)> {
    let refused = |why: String| ConfigError(format!("volume {:?}: {why}", volume.name));
    let (base, read_only) = if volume.empty_dir.is_some() {
        let dir = inputs.pod_dir.join("volumes").join(&volume.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| refused(format!("cannot create {}: {e}", dir.display())))?;
        let dir = std::fs::canonicalize(&dir)
            .map_err(|e| refused(format!("cannot resolve {}: {e}", dir.display())))?;
        let dir = PinnedDir::open(&dir, &dir, &[]).map_err(|e| refused(e.to_string()))?;
        (dir, false)
    } else if let Some(host) = &volume.host_path {
        let create = match host.type_.as_deref().unwrap_or_default() {
            "DirectoryOrCreate" => true,
            "" | "Directory" => false,
            other => {
                return Err(refused(format!(
                    "hostPath type {other} is not supported: a volume is mounted as a preopened directory (use Directory or DirectoryOrCreate)"
                )));
            }
        };
        inputs
            .host_paths
            .resolve(&host.path, create)
            .map_err(|e| refused(e.to_string()))?
    } else {
        return Err(refused(format!(
            "{} volumes are not supported on this node; use emptyDir or hostPath",
            volume_type(volume)
        )));
    };
    // Kubernetes creates a subPath inside any volume; it is resolved on disk so
    // that a symlink the pod planted in its volume cannot lead elsewhere.
    let dir = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => resolve_within(&base.path, Path::new(sub), true, &[])
            .map_err(|e| ConfigError(format!("volumeMount {:?}: subPath {e}", mount.name)))?,
        None => base,
    };
    Ok((dir, read_only))
}

/// The name of the volume source a volume uses (`configMap`, `persistentVolumeClaim`...).
fn volume_type(volume: &Volume) -> String {
    serde_json::to_value(volume)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "these".into())
}

/// `resources.limits` as runtime limits; the runtime's defaults otherwise.
fn limits(container: &Container, kind: Kind) -> Result<Limits> {
    let mut limits = Limits::default();
    // A command runs until it exits, as a container's process does; the per-request
    // timeout is for HTTP instances.
    if kind == Kind::Command {
        limits.timeout = None;
    }
    let Some(set) = container.resources.as_ref().and_then(|r| r.limits.as_ref()) else {
        return Ok(limits);
    };
    if let Some(q) = set.get("memory") {
        let bytes = quantity("memory", &q.0)?.value();
        limits.memory_bytes = Some(u64::try_from(bytes).unwrap_or(0));
    }
    if let Some(q) = set.get("cpu") {
        let millis = quantity("cpu", &q.0)?.milli_value();
        limits.cpu_millis = Some(u32::try_from(millis.max(0)).unwrap_or(u32::MAX));
    }
    Ok(limits)
}

/// The pod's `skiff.dev/instance-reuse` annotation: `"true"` keeps an HTTP
/// container's finished instances for later requests, within the runtime's
/// caps (`InstanceReuse::default()`: 10,000 requests, 10 minutes, 30 s idle);
/// `"false"`, or no annotation, keeps a fresh instance per request. Any other
/// value is refused rather than read as either, so that a typo cannot quietly
/// change how isolated a pod's requests are. A command container is one
/// instance anyway: the annotation changes nothing for it.
fn instance_reuse(pod: &Pod, kind: Kind) -> Result<Option<InstanceReuse>> {
    let value = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INSTANCE_REUSE_ANNOTATION));
    let reuse = match value.map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ConfigError(format!(
                "annotation {INSTANCE_REUSE_ANNOTATION}: {other:?} is neither \"true\" nor \"false\""
            )));
        }
    };
    Ok((reuse && kind == Kind::Http).then(InstanceReuse::default))
}

/// A limit as the API server parsed it when it admitted the pod (the one
/// quantity grammar, `skiff_api::quantity::Quantity`), so nothing the API
/// takes is refused here.
fn quantity(resource: &str, text: &str) -> Result<Quantity> {
    Quantity::parse(text).map_err(|e| {
        ConfigError(format!(
            "resources.limits.{resource}: {text:?} is not a quantity: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn spec_of(p: &Pod, dir: &Path, kind: Kind) -> Result<PodSpec> {
        let container = &p.spec.as_ref().expect("spec").containers[0];
        pod_spec(&SpecInputs {
            pod: p,
            container,
            kind,
            node_name: "node-1",
            pod_dir: dir,
            host_paths: &HostPathPolicy::new(
                &[super::super::host_path::AllowedHostPath {
                    path: std::env::temp_dir(),
                    writable: false,
                }],
                &[std::path::PathBuf::from("/nonexistent-node-data")],
            )
            .expect("policy"),
        })
    }

    #[test]
    fn limits_take_every_quantity_the_api_admits() {
        let limits_of = |cpu: &str, memory: &str| {
            let container: Container = serde_json::from_value(serde_json::json!({
                "name": "c",
                "resources": {"limits": {"cpu": cpu, "memory": memory}},
            }))
            .expect("container");
            limits(&container, Kind::Http)
        };
        let l = limits_of("1k", "1.5Gi").expect("limits");
        assert_eq!(l.cpu_millis, Some(1_000_000));
        assert_eq!(l.memory_bytes, Some(3 << 29));
        let l = limits_of("100m", "129e6").expect("limits");
        assert_eq!(l.cpu_millis, Some(100));
        assert_eq!(l.memory_bytes, Some(129_000_000));
        let l = limits_of("0.25", "1500m").expect("limits");
        assert_eq!(l.cpu_millis, Some(250));
        assert_eq!(l.memory_bytes, Some(2), "rounded up to a whole byte");
        let err = limits_of("lots", "64Mi").expect_err("not a quantity");
        assert!(err.0.contains("resources.limits.cpu"), "{}", err.0);
    }

    #[test]
    fn instance_reuse_is_true_or_false() {
        let dir = tempfile::tempdir().expect("tempdir");
        let with = |value: Option<&str>| {
            let mut p = pod(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "crasher:v1"}]},
            }));
            if let Some(v) = value {
                p.metadata.annotations =
                    Some([(INSTANCE_REUSE_ANNOTATION.to_string(), v.to_string())].into());
            }
            p
        };
        let reuse = |value, kind| spec_of(&with(value), dir.path(), kind).map(|s| s.limits.reuse);
        assert_eq!(reuse(None, Kind::Http), Ok(None), "fresh by default");
        assert_eq!(reuse(Some("false"), Kind::Http), Ok(None));
        assert_eq!(
            reuse(Some("true"), Kind::Http),
            Ok(Some(InstanceReuse::default()))
        );
        assert_eq!(reuse(Some("true"), Kind::Command), Ok(None));
        for bad in ["yes", "True", "1", "", " true"] {
            let err = reuse(Some(bad), Kind::Http).expect_err(bad);
            assert_eq!(
                err.0,
                format!(
                    "annotation skiff.dev/instance-reuse: {bad:?} is neither \"true\" nor \"false\""
                )
            );
            assert!(reuse(Some(bad), Kind::Command).is_err(), "{bad}");
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)", &lookup), "x-$(B)");
        assert_eq!(expand("$$(A) $$ $a $(", &lookup), "$(A) $ $a $(");
        assert_eq!(expand("plain", &lookup), "plain");
    }

    #[test]
    fn command_args_env_and_downward_api() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"team": "a"}},
            "spec": {"containers": [{
                "name": "c", "image": "pi:v1",
                "command": ["pi", "$(N)"], "args": ["more"],
                "workingDir": "/work",
                "env": [
                    {"name": "N", "value": "50"},
                    {"name": "TWICE", "value": "$(N)$(N)"},
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
                ],
                "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
            }]},
        }));
        let s = spec_of(&p, dir.path(), Kind::Command).expect("spec");
        assert_eq!(s.cli.args, ["50", "more"]);
        assert_eq!(s.cli.working_dir.as_deref(), Some("/work"));
        let env: HashMap<_, _> = s.cli.env.iter().cloned().collect();
        for (k, v) in [
            ("TWICE", "5050"),
            ("NAME", "p"),
            ("NS", "ns"),
            ("UID", "u-1"),
            ("NODE", "node-1"),
            ("APP", "web"),
            ("TEAM", "a"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(s.limits.memory_bytes, Some(64 << 20));
        assert_eq!(s.limits.cpu_millis, Some(250));
        assert_eq!(s.limits.timeout, None, "commands run until they exit");
        let http = spec_of(&p, dir.path(), Kind::Http).expect("spec");
        assert!(http.limits.timeout.is_some());
    }

    #[test]
    fn references_the_node_cannot_resolve_are_config_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        for env in [
            serde_json::json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}),
            serde_json::json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
            serde_json::json!({"envFrom": [{"configMapRef": {"name": "cm"}}]}),
        ] {
            let mut c = serde_json::json!({"name": "c", "image": "hello:v1"});
            for (k, v) in env.as_object().expect("object") {
                c[k] = v.clone();
            }
            let p =
                pod(serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [c]}}));
            let err = spec_of(&p, dir.path(), Kind::Http).expect_err("config error");
            assert!(err.0.contains("not supported"), "{err}");
        }
    }

    #[test]
    fn volumes_become_preopened_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = tempfile::tempdir().expect("tempdir");
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "containers": [{"name": "c", "image": "counter:v1", "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "host", "mountPath": "/host", "readOnly": true},
                ]}],
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": host.path()}},
                ],
            },
        }));
        let s = spec_of(&p, dir.path(), Kind::Http).expect("spec");
        assert_eq!(s.mounts.len(), 2);
        assert_eq!(s.mounts[0].host_path, dir.path().join("volumes/data"));
        assert!(s.mounts[0].host_path.is_dir(), "emptyDir created");
        assert!(!s.mounts[0].read_only);
        assert_eq!(
            s.mounts[1].host_path,
            std::fs::canonicalize(host.path()).expect("canonical")
        );
        assert!(s.mounts[1].read_only);

        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}],
            },
        }));
        let err = spec_of(&p, dir.path(), Kind::Http).expect_err("configMap volume");
        assert!(
            err.0.contains("configMap volumes are not supported"),
            "{err}"
        );
    }
}
