//! A Kubernetes container, in its pod, becomes the runtime's [`PodSpec`]: one
//! group of fields per runtime capability, each from its own function here
//! (`cli`: arguments, environment (`env`: ConfigMaps, Secrets and the
//! downward API), working directory;
//! `mounts`: volumes as preopened directories; `limits`, and with them the
//! pod's `skiff.dev/instance-reuse` annotation, `instance_reuse`). Outbound HTTP
//! is the supervisor's to set, once the pod has an address. What a node cannot
//! honour yet is a [`ConfigError`], shown as the container's
//! `CreateContainerConfigError`; the container tries again when the objects
//! this node holds change (a missing ConfigMap or Secret arriving).

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, Volume, VolumeMount};
use skiff_api::quantity::Quantity;
use skiff_runtime::{Cli, InstanceReuse, Kind, Limits, Mount, PodSpec};

use super::Allocatable;
use super::host_path::{HostPathPolicy, PinnedDir, resolve_within};
use super::objects::PodObjects;
use super::projection::{ProjectedVolumes, RenderInputs, Source};

mod config;
mod env;

use env::{environment, expand};
pub(super) use env::{resource_value, subscript};

/// The pod annotation that lets its HTTP containers serve request after
/// request in the same instance: `"true"`, or `"false"` (the default, a fresh
/// instance per request).
pub(crate) const INSTANCE_REUSE_ANNOTATION: &str = "skiff.dev/instance-reuse";

/// Why a container cannot be configured; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ConfigError {
    /// The container's own configuration: `CreateContainerConfigError`.
    #[error("{0}")]
    Config(String),
    /// A volume it mounts cannot be set up (yet): the kubelet's `FailedMount`,
    /// the container still `ContainerCreating`.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    Mount { volume: String, message: String },
}

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
    /// The ConfigMaps and Secrets this node holds for its pods.
    pub objects: &'a std::sync::Arc<PodObjects>,
    /// The pod's configMap, secret, downwardAPI and projected volumes.
    pub projected: &'a ProjectedVolumes,
    /// The pod's address (`status.podIP`), once it has one.
    pub pod_ip: Option<std::net::IpAddr>,
    /// The node's address (`status.hostIP`).
    pub host_ip: Option<std::net::IpAddr>,
    /// What the node offers: the limits a container does not set, for
    /// `resourceFieldRef`.
    pub allocatable: &'a Allocatable,
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
        config: config::config(inputs)?,
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
    for (index, m) in inputs.container.volume_mounts.iter().flatten().enumerate() {
        let Some(volume) = volumes.get(m.name.as_str()) else {
            return Err(ConfigError::Config(format!(
                "volumeMount {:?}: the pod has no volume of that name",
                m.name
            )));
        };
        let (dir, forced_read_only) = volume_dir(inputs, volume, m, index)?;
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
    index: usize,
) -> Result<(PinnedDir, bool)> {
    let refused = |why: String| ConfigError::Config(format!("volume {:?}: {why}", volume.name));
    if Source::of(volume).is_some() {
        return cluster_volume_dir(inputs, volume, mount, index).map(|dir| (dir, true));
    }
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
            "{} volumes are not supported on this node; use emptyDir, hostPath, configMap, secret, downwardAPI or projected",
            volume_type(volume)
        )));
    };
    // Kubernetes creates a subPath inside any volume; it is resolved on disk so
    // that a symlink the pod planted in its volume cannot lead elsewhere.
    let dir = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => resolve_within(&base.path, Path::new(sub), true, &[]).map_err(|e| {
            ConfigError::Config(format!("volumeMount {:?}: subPath {e}", mount.name))
        })?,
        None => base,
    };
    Ok((dir, read_only))
}

/// A `configMap`, `secret`, `downwardAPI` or `projected` volume: written
/// with its files as they are now (and kept current by the pod), always
/// read-only. A `subPath` into one is a copy taken when the container first
/// starts, which later changes do not reach, as in Kubernetes.
fn cluster_volume_dir(
    inputs: &SpecInputs<'_>,
    volume: &Volume,
    mount: &VolumeMount,
    index: usize,
) -> Result<PinnedDir> {
    let render = RenderInputs {
        pod: inputs.pod,
        objects: inputs.objects,
        allocatable: inputs.allocatable,
    };
    let failed = |message: String| ConfigError::Mount {
        volume: volume.name.clone(),
        message,
    };
    let dir = inputs.projected.ensure(&render, volume).map_err(failed)?;
    let dir = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
        None => dir,
        Some(sub) => {
            let name = format!("{}.subpath.{}.{index}", volume.name, inputs.container.name);
            let copy = dir.with_file_name(name);
            subpath_copy(&dir, sub, &copy).map_err(|e| {
                ConfigError::Config(format!(
                    "volumeMount {:?}: subPath {sub:?}: {e}",
                    mount.name
                ))
            })?;
            copy
        }
    };
    PinnedDir::open(&dir, &dir, &[]).map_err(|e| failed(e.to_string()))
}

/// Copies the directory `sub` of the volume at `dir` to `copy`, once.
fn subpath_copy(dir: &Path, sub: &str, copy: &Path) -> std::result::Result<(), String> {
    if copy.exists() {
        return Ok(());
    }
    let source = resolve_within(dir, Path::new(sub), false, &[]).map_err(|e| {
        if dir.join(sub).is_file() {
            "is a file; a WASI pod mounts directories only, so mount the volume (its items choose the files) instead".to_string()
        } else {
            e.to_string()
        }
    })?;
    let partial = copy.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    copy_tree(&source.path, &partial).map_err(|e| format!("cannot copy: {e}"))?;
    std::fs::rename(&partial, copy).map_err(|e| format!("cannot copy: {e}"))
}

/// A recursive copy that follows links (a volume's files are links into its
/// current set).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("..") {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path)?.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else {
            std::fs::copy(&path, to.join(&name))?;
        }
    }
    Ok(())
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
            return Err(ConfigError::Config(format!(
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
        ConfigError::Config(format!(
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
        spec_with(p, dir, kind, &std::sync::Arc::default())
    }

    fn spec_with(
        p: &Pod,
        dir: &Path,
        kind: Kind,
        objects: &std::sync::Arc<PodObjects>,
    ) -> Result<PodSpec> {
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
            objects,
            projected: &ProjectedVolumes::new(dir.join("volumes"), Some(dir.join("memory"))),
            pod_ip: Some("10.42.0.7".parse().expect("ip")),
            host_ip: Some("192.168.1.20".parse().expect("ip")),
            allocatable: &Allocatable {
                cpu_millis: 2000,
                memory_bytes: 4 << 30,
                ephemeral_storage_bytes: 100 << 30,
            },
        })
    }

    fn env_of(p: &Pod, objects: &std::sync::Arc<PodObjects>) -> Result<HashMap<String, String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec_with(p, dir.path(), Kind::Http, objects)?;
        Ok(s.cli.env.into_iter().collect())
    }

    fn with_env(container: serde_json::Value) -> Pod {
        let mut c = serde_json::json!({"name": "c", "image": "hello:v1"});
        for (k, v) in container.as_object().expect("object") {
            c[k] = v.clone();
        }
        pod(
            serde_json::json!({"metadata": {"name": "p", "namespace": "ns"},
                               "spec": {"containers": [c]}}),
        )
    }

    fn cluster_objects() -> std::sync::Arc<PodObjects> {
        let objects = std::sync::Arc::new(PodObjects::default());
        objects.upsert(serde_json::json!({"kind": "ConfigMap",
            "metadata": {"namespace": "ns", "name": "cfg"},
            "data": {"MODE": "fast", "LEVEL": "3"}}));
        objects.upsert(serde_json::json!({"kind": "Secret",
            "metadata": {"namespace": "ns", "name": "db"},
            // "hunter2", "admin"
            "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}}));
        objects
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
        assert!(
            err.to_string().contains("resources.limits.cpu"),
            "{}",
            err.to_string()
        );
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
                err.to_string(),
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
    fn env_comes_from_config_maps_secrets_and_env_from_with_prefixes() {
        let p = with_env(serde_json::json!({
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                        {"secretRef": {"name": "db"}}],
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "URL", "value": "db://$(user):$(PASSWORD)@$(CFG_LEVEL)"},
                // A later definition replaces an earlier one.
                {"name": "user", "value": "root"},
                {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "NOPE", "optional": true}}},
                {"name": "NONE", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k", "optional": true}}},
            ],
        }));
        let env = env_of(&p, &cluster_objects()).expect("env");
        for (k, v) in [
            ("CFG_MODE", "fast"),
            ("CFG_LEVEL", "3"),
            ("password", "hunter2"),
            ("user", "root"),
            ("MODE", "fast"),
            ("PASSWORD", "hunter2"),
            ("URL", "db://admin:hunter2@3"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}: {env:?}");
        }
        assert!(
            !env.contains_key("GONE") && !env.contains_key("NONE"),
            "{env:?}"
        );
        let optional_from = with_env(serde_json::json!({
            "envFrom": [{"configMapRef": {"name": "absent", "optional": true}}]}));
        assert!(
            env_of(&optional_from, &cluster_objects())
                .expect("env")
                .is_empty()
        );
    }

    /// What is missing reads as the kubelet says it, and the container waits.
    #[test]
    fn missing_objects_and_keys_are_config_errors_in_kubelet_words() {
        for (container, message) in [
            (
                serde_json::json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]}),
                "configmap \"x\" not found",
            ),
            (
                serde_json::json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
                "secret \"s\" not found",
            ),
            (
                serde_json::json!({"envFrom": [{"configMapRef": {"name": "x"}}]}),
                "configmap \"x\" not found",
            ),
            (
                serde_json::json!({"envFrom": [{"secretRef": {"name": "cfg"}}]}),
                "secret \"cfg\" not found",
            ),
            (
                serde_json::json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}),
                "couldn't find key k in ConfigMap ns/cfg",
            ),
            (
                serde_json::json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]}),
                "couldn't find key k in Secret ns/db",
            ),
        ] {
            let err = env_of(&with_env(container), &cluster_objects()).expect_err("config error");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn resource_fields_are_divided_and_rounded_up_and_unset_limits_are_the_nodes() {
        let p = with_env(serde_json::json!({
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                          "requests": {"memory": "1500k"}},
            "env": [
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "REQ_MEM_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1M"}}},
                {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                {"name": "DISK_GI", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            ],
        }));
        let env = env_of(&p, &std::sync::Arc::default()).expect("env");
        for (k, v) in [
            ("CPU", "1"),
            ("CPU_M", "250"),
            ("MEM_MI", "64"),
            ("REQ_MEM_M", "2"),
            ("REQ_CPU", "0"),
            ("DISK_GI", "100"),
            ("POD_IP", "10.42.0.7"),
            ("HOST_IP", "192.168.1.20"),
            ("SA", "default"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}: {env:?}");
        }
        let unlimited = with_env(serde_json::json!({"env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}},
        ]}));
        let env = env_of(&unlimited, &std::sync::Arc::default()).expect("env");
        assert_eq!(env.get("CPU").map(String::as_str), Some("2"));
        assert_eq!(env.get("MEM").map(String::as_str), Some("4"));
        let bad = with_env(serde_json::json!({"env": [
            {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}));
        let err = env_of(&bad, &std::sync::Arc::default()).expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "env \"X\": unsupported container resource : limits.gpu"
        );
    }

    #[test]
    fn wasi_config_reads_the_named_objects_as_they_are_at_each_instance() {
        let objects = cluster_objects();
        let mut p = with_env(serde_json::json!({}));
        p.metadata.annotations = Some(
            [(
                skiff_api::wasi_config::ANNOTATION.to_string(),
                "ConfigMap/cfg, Secret/db".to_string(),
            )]
            .into(),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec_with(&p, dir.path(), Kind::Http, &objects).expect("spec");
        let source = spec.config.expect("a config source");
        let values: HashMap<_, _> = source.values().into_iter().collect();
        assert_eq!(values.get("MODE").map(String::as_str), Some("fast"));
        assert_eq!(values.get("password").map(String::as_str), Some("hunter2"));
        objects.upsert(serde_json::json!({"kind": "ConfigMap",
            "metadata": {"namespace": "ns", "name": "cfg"}, "data": {"MODE": "slow"}}));
        let values: HashMap<_, _> = source.values().into_iter().collect();
        assert_eq!(
            values.get("MODE").map(String::as_str),
            Some("slow"),
            "read afresh"
        );

        for (value, message) in [
            ("ConfigMap/absent", "configmap \"absent\" not found"),
            (
                "Pod/x",
                "annotation skiff.dev/wasi-config: \"Pod/x\": the kind must be ConfigMap or Secret",
            ),
        ] {
            p.metadata.annotations = Some(
                [(
                    skiff_api::wasi_config::ANNOTATION.to_string(),
                    value.to_string(),
                )]
                .into(),
            );
            let err = spec_with(&p, dir.path(), Kind::Http, &objects).expect_err("refused");
            assert_eq!(err.to_string(), message);
        }
    }

    /// WASI's environment is text: a Secret value that is not UTF-8 is
    /// refused with a hint, not mangled.
    #[test]
    fn a_binary_secret_value_is_refused_as_an_environment_variable() {
        let objects = std::sync::Arc::new(PodObjects::default());
        objects.upsert(serde_json::json!({"kind": "Secret",
            "metadata": {"namespace": "ns", "name": "bin"}, "data": {"k": "/w=="}}));
        let p = with_env(serde_json::json!({"env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "bin", "key": "k"}}}]}));
        let err = env_of(&p, &objects).expect_err("not text");
        assert!(
            err.to_string().contains("not UTF-8") && err.to_string().contains("mount it as a file"),
            "{err}"
        );
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
                "volumes": [{"name": "cfg", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }));
        let err = spec_of(&p, dir.path(), Kind::Http).expect_err("claim");
        assert!(
            err.to_string()
                .contains("persistentVolumeClaim volumes are not supported"),
            "{err}"
        );
    }

    /// A ConfigMap volume is its files, read-only, and a missing ConfigMap
    /// is the kubelet's mount failure.
    #[test]
    fn a_config_map_volume_is_written_read_only_or_fails_to_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "containers": [{"name": "c", "image": "x", "volumeMounts": [
                    {"name": "cfg", "mountPath": "/cfg"},
                    {"name": "gone", "mountPath": "/gone"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                            {"name": "gone", "configMap": {"name": "gone"}}],
            },
        }));
        let err = spec_with(&p, dir.path(), Kind::Http, &cluster_objects()).expect_err("gone");
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"gone\" : configmap \"gone\" not found"
        );
        assert!(matches!(err, ConfigError::Mount { .. }));
        let objects = cluster_objects();
        objects.upsert(serde_json::json!({"kind": "ConfigMap",
            "metadata": {"namespace": "ns", "name": "gone"}, "data": {"back": "yes"}}));
        let s = spec_with(&p, dir.path(), Kind::Http, &objects).expect("spec");
        assert!(s.mounts.iter().all(|m| m.read_only));
        let mode = std::fs::read_to_string(s.mounts[0].host_path.join("MODE")).expect("file");
        assert_eq!(mode, "fast");
    }
}
