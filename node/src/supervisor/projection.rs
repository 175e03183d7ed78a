//! Volumes whose files come from the cluster: `configMap`, `secret`,
//! `downwardAPI` and `projected`. What such a volume holds is computed here
//! from the pod and the objects the node holds ([`render`]), as the kubelet's
//! volume plugins compute it (`pkg/volume/configmap`, `secret`, `downwardapi`,
//! `projected`), and written by [`atomic`] the way the kubelet's
//! `AtomicWriter` writes it, so that a pod reading the files while they
//! change sees the old set or the new one, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIVolumeFile, KeyToPath, Pod, SecretProjection, Volume,
};

use super::Allocatable;
use super::objects::PodObjects;

pub(super) mod atomic;

/// Kubernetes' default mode of a projected file (`0644`).
const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume: its bytes and its permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileContent {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by their path inside it (`/`-separated, relative).
pub(super) type Files = BTreeMap<String, FileContent>;

/// Which kind of cluster volume a volume is, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl Source {
    pub(super) fn of(volume: &Volume) -> Option<Source> {
        if volume.config_map.is_some() {
            Some(Source::ConfigMap)
        } else if volume.secret.is_some() {
            Some(Source::Secret)
        } else if volume.downward_api.is_some() {
            Some(Source::DownwardApi)
        } else if volume.projected.is_some() {
            Some(Source::Projected)
        } else {
            None
        }
    }

    /// Whether its files follow the pod itself (the downward API: labels and
    /// annotations change while it runs).
    pub(super) fn follows_pod(volume: &Volume) -> bool {
        volume.downward_api.is_some()
            || volume
                .projected
                .as_ref()
                .is_some_and(|p| p.sources.iter().flatten().any(|s| s.downward_api.is_some()))
    }

    /// Whether its files may hold a Secret's value, and so must live in
    /// memory, never on disk.
    pub(super) fn holds_secrets(volume: &Volume) -> bool {
        volume.secret.is_some()
            || volume.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.secret.is_some() || s.service_account_token.is_some())
            })
    }
}

/// A pod's cluster volumes on this node: where each lives, and what was last
/// written to it, so that [`ProjectedVolumes::refresh`] rewrites only what
/// changed.
pub(super) struct ProjectedVolumes {
    /// `<pod dir>/volumes`: ConfigMap and downward API files.
    disk: PathBuf,
    /// `<memory dir>/<pod uid>/volumes`, on a memory file system: files that
    /// may hold a Secret. `None` when the node has none.
    memory: Option<PathBuf>,
    written: Mutex<HashMap<String, (Volume, Files)>>,
}

impl ProjectedVolumes {
    pub(super) fn new(disk: PathBuf, memory: Option<PathBuf>) -> Self {
        ProjectedVolumes {
            disk,
            memory,
            written: Mutex::default(),
        }
    }

    /// The directory of `volume`, written with its files as they are now.
    pub(super) fn ensure(
        &self,
        inputs: &RenderInputs<'_>,
        volume: &Volume,
    ) -> Result<PathBuf, String> {
        let dir = self.dir_of(volume)?;
        let files = render(inputs, volume)?;
        let mut written = super::lock(&self.written);
        let current = written
            .get(&volume.name)
            .is_some_and(|(_, last)| *last == files);
        if !current || !dir.join("..data").exists() {
            atomic::write(&dir, &files).map_err(|e| e.to_string())?;
            written.insert(volume.name.clone(), (volume.clone(), files));
        }
        Ok(dir)
    }

    /// Rewrites every volume written so far whose files have changed (a
    /// ConfigMap or Secret updated, a label changed). A volume whose source
    /// is gone keeps its files, as the kubelet keeps them.
    pub(super) fn refresh(&self, inputs: &RenderInputs<'_>) {
        let volumes: Vec<Volume> = super::lock(&self.written)
            .values()
            .map(|(v, _)| v.clone())
            .collect();
        for volume in volumes {
            let files = match render(inputs, &volume) {
                Ok(files) => files,
                Err(e) => {
                    tracing::debug!(volume = %volume.name, error = %e, "volume kept as it is");
                    continue;
                }
            };
            let mut written = super::lock(&self.written);
            if written
                .get(&volume.name)
                .is_some_and(|(_, last)| *last == files)
            {
                continue;
            }
            let Ok(dir) = self.dir_of(&volume) else {
                continue;
            };
            match atomic::write(&dir, &files) {
                Ok(()) => {
                    tracing::debug!(volume = %volume.name, "volume updated");
                    written.insert(volume.name.clone(), (volume, files));
                }
                Err(e) => tracing::warn!(volume = %volume.name, error = %e, "volume not updated"),
            }
        }
    }

    /// Removes the files that may hold Secrets (the pod is over).
    pub(super) fn forget_secrets(&self) {
        if let Some(memory) = &self.memory
            && let Some(pod) = memory.parent()
        {
            match std::fs::remove_dir_all(pod) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %pod.display(), error = %e, "could not remove a pod's secret files")
                }
            }
        }
        super::lock(&self.written).retain(|_, (v, _)| !Source::holds_secrets(v));
    }

    fn dir_of(&self, volume: &Volume) -> Result<PathBuf, String> {
        if !Source::holds_secrets(volume) {
            return Ok(self.disk.join(&volume.name));
        }
        match &self.memory {
            Some(memory) => Ok(memory.join(&volume.name)),
            None => Err(
                "this node keeps Secrets only in memory and has no memory file system for them (start it with --memory-dir on a tmpfs)"
                    .into(),
            ),
        }
    }
}

/// What the pod needs from the node to render its volumes.
pub(super) struct RenderInputs<'a> {
    pub pod: &'a Pod,
    pub objects: &'a PodObjects,
    pub allocatable: &'a Allocatable,
}

/// The files of `volume` now; an error (in the kubelet's words, without the
/// `MountVolume.SetUp failed` prefix) while a non-optional source is missing.
pub(super) fn render(inputs: &RenderInputs<'_>, volume: &Volume) -> Result<Files, String> {
    let namespace = inputs.pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut files = Files::new();
    if let Some(source) = &volume.config_map {
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        let projection = ConfigMapProjection {
            name: source.name.clone(),
            items: source.items.clone(),
            optional: source.optional,
        };
        config_map(inputs, namespace, &projection, mode, &mut files)?;
    } else if let Some(source) = &volume.secret {
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        let projection = SecretProjection {
            name: source.secret_name.clone().unwrap_or_default(),
            items: source.items.clone(),
            optional: source.optional,
        };
        secret(inputs, namespace, &projection, mode, &mut files)?;
    } else if let Some(source) = &volume.downward_api {
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        downward_api(inputs, source.items.iter().flatten(), mode, &mut files)?;
    } else if let Some(source) = &volume.projected {
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        for s in source.sources.iter().flatten() {
            if let Some(cm) = &s.config_map {
                config_map(inputs, namespace, cm, mode, &mut files)?;
            }
            if let Some(secret_source) = &s.secret {
                secret(inputs, namespace, secret_source, mode, &mut files)?;
            }
            if let Some(d) = &s.downward_api {
                downward_api(inputs, d.items.iter().flatten(), mode, &mut files)?;
            }
            if s.service_account_token.is_some() {
                return Err(
                    "serviceAccountToken projections are not supported on this node yet".into(),
                );
            }
            if s.cluster_trust_bundle.is_some() {
                return Err("clusterTrustBundle projections are not supported".into());
            }
        }
    }
    Ok(files)
}

fn config_map(
    inputs: &RenderInputs<'_>,
    namespace: &str,
    source: &ConfigMapProjection,
    mode: i32,
    files: &mut Files,
) -> Result<(), String> {
    let optional = source.optional.unwrap_or(false);
    let cm = match inputs.objects.config_map(namespace, &source.name) {
        Ok(cm) => cm,
        Err(_) if optional => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        data.insert(k, v.as_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k, &v.0);
    }
    keys_to_files(&data, source.items.as_deref(), optional, mode, files)
        .map_err(|key| format!("configmap references non-existent config key: {key}"))
}

fn secret(
    inputs: &RenderInputs<'_>,
    namespace: &str,
    source: &SecretProjection,
    mode: i32,
    files: &mut Files,
) -> Result<(), String> {
    let optional = source.optional.unwrap_or(false);
    let secret = match inputs.objects.secret(namespace, &source.name) {
        Ok(s) => s,
        Err(_) if optional => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let data: BTreeMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    keys_to_files(&data, source.items.as_deref(), optional, mode, files)
        .map_err(|key| format!("references non-existent secret key: {key}"))
}

/// Every key as a file of its name, or only `items` at their paths; a key
/// of `items` that is missing is `Err(key)` unless the source is optional.
fn keys_to_files(
    data: &BTreeMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    files: &mut Files,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                put(files, k, v.to_vec(), mode);
            }
        }
        Some(items) => {
            for item in items {
                match data.get(item.key.as_str()) {
                    Some(v) => put(files, &item.path, v.to_vec(), item.mode.unwrap_or(mode)),
                    None if optional => {}
                    None => return Err(item.key.clone()),
                }
            }
        }
    }
    Ok(())
}

fn downward_api<'a>(
    inputs: &RenderInputs<'_>,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    mode: i32,
    files: &mut Files,
) -> Result<(), String> {
    let meta = &inputs.pod.metadata;
    for item in items {
        let text = if let Some(field) = &item.field_ref {
            let path = field.field_path.as_str();
            match path {
                "metadata.name" => meta.name.clone().unwrap_or_default(),
                "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
                "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                "metadata.labels" => format_map(meta.labels.as_ref()),
                "metadata.annotations" => format_map(meta.annotations.as_ref()),
                _ => match super::spec::subscript(path, "metadata.labels[")
                    .map(|k| (k, meta.labels.as_ref()))
                    .or_else(|| {
                        super::spec::subscript(path, "metadata.annotations[")
                            .map(|k| (k, meta.annotations.as_ref()))
                    }) {
                    Some((key, map)) => map.and_then(|m| m.get(&key)).cloned().unwrap_or_default(),
                    None => return Err(format!("unsupported fieldRef.fieldPath {path:?}")),
                },
            }
        } else if let Some(selector) = &item.resource_field_ref {
            super::spec::resource_value(inputs.pod, None, inputs.allocatable, selector)?
        } else {
            String::new()
        };
        put(
            files,
            &item.path,
            text.into_bytes(),
            item.mode.unwrap_or(mode),
        );
    }
    Ok(())
}

/// Labels or annotations as the downward API writes them
/// (`fieldpath.FormatMap`): `key="value"` lines, sorted, values quoted as
/// Go's `%q` quotes them, no newline after the last.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: printable characters as they are, `"` and `\`
/// escaped, and the rest as Go escapes them.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let n = u32::from(c);
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Adds a file; the mode is the API's (validated to 0..=0777).
fn put(files: &mut Files, path: &str, data: Vec<u8>, mode: i32) {
    let mode = u32::try_from(mode).unwrap_or(DEFAULT_MODE as u32) & 0o777;
    files.insert(path.to_string(), FileContent { data, mode });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn objects() -> PodObjects {
        let objects = PodObjects::default();
        objects.upsert(
            json!({"kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "cfg"},
            "data": {"app.conf": "mode=fast\n", "level": "3"}, "binaryData": {"logo": "AAE="}}),
        );
        objects.upsert(
            json!({"kind": "Secret", "metadata": {"namespace": "ns", "name": "db"},
            "data": {"password": "aHVudGVyMg=="}}),
        );
        objects
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                         "labels": {"app": "web", "tier": "a\"b"}},
            "spec": {"containers": [{"name": "c", "image": "i",
                     "resources": {"limits": {"memory": "64Mi"}}}]},
        }))
        .expect("pod")
    }

    fn files_of(volume: serde_json::Value) -> Result<Vec<(String, String, u32)>, String> {
        let volume: Volume = serde_json::from_value(volume).expect("volume");
        let pod = pod();
        let objects = objects();
        let allocatable = Allocatable::default();
        let inputs = RenderInputs {
            pod: &pod,
            objects: &objects,
            allocatable: &allocatable,
        };
        Ok(render(&inputs, &volume)?
            .into_iter()
            .map(|(p, f)| (p, String::from_utf8_lossy(&f.data).into_owned(), f.mode))
            .collect())
    }

    fn file(path: &str, text: &str, mode: u32) -> (String, String, u32) {
        (path.to_string(), text.to_string(), mode)
    }

    #[test]
    fn a_config_map_volume_holds_every_key_or_the_items_asked_for() {
        let all = files_of(json!({"name": "v", "configMap": {"name": "cfg"}})).expect("files");
        assert_eq!(
            all,
            [
                file("app.conf", "mode=fast\n", 0o644),
                file("level", "3", 0o644),
                file("logo", "\0\u{1}", 0o644),
            ]
        );
        let items = files_of(
            json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600,
            "items": [{"key": "level", "path": "conf/level.txt", "mode": 0o400},
                      {"key": "app.conf", "path": "app.conf"}]}}),
        )
        .expect("files");
        assert_eq!(
            items,
            [
                file("app.conf", "mode=fast\n", 0o600),
                file("conf/level.txt", "3", 0o400),
            ]
        );
    }

    #[test]
    fn missing_sources_and_keys_read_as_the_kubelet_says_unless_optional() {
        let err = |v| files_of(v).expect_err("missing");
        assert_eq!(
            err(json!({"name": "v", "configMap": {"name": "nope"}})),
            "configmap \"nope\" not found"
        );
        assert_eq!(
            err(json!({"name": "v", "secret": {"secretName": "nope"}})),
            "secret \"nope\" not found"
        );
        assert_eq!(
            err(
                json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "x", "path": "x"}]}})
            ),
            "configmap references non-existent config key: x"
        );
        assert_eq!(
            err(
                json!({"name": "v", "secret": {"secretName": "db", "items": [{"key": "x", "path": "x"}]}})
            ),
            "references non-existent secret key: x"
        );
        for optional in [
            json!({"name": "v", "configMap": {"name": "nope", "optional": true}}),
            json!({"name": "v", "secret": {"secretName": "db", "optional": true,
                   "items": [{"key": "x", "path": "x"}]}}),
        ] {
            assert_eq!(files_of(optional).expect("optional"), []);
        }
    }

    #[test]
    fn downward_api_and_projected_volumes_combine_their_sources() {
        let files = files_of(json!({"name": "v", "projected": {"sources": [
            {"secret": {"name": "db", "items": [{"key": "password", "path": "db/password"}]}},
            {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "level"}]}},
            {"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c",
                    "resource": "limits.memory", "divisor": "1Mi"}},
            ]}},
        ]}}))
        .expect("files");
        assert_eq!(
            files,
            [
                file("app", "web", 0o644),
                file("db/password", "hunter2", 0o644),
                file("labels", "app=\"web\"\ntier=\"a\\\"b\"", 0o644),
                file("level", "3", 0o644),
                file("mem", "64", 0o644),
                file("name", "p", 0o644),
            ]
        );
        assert!(Source::holds_secrets(
            &serde_json::from_value(json!({"name": "v", "projected": {"sources": [
                {"secret": {"name": "db"}}]}}))
            .expect("volume")
        ));
    }

    #[test]
    fn go_quoting_matches_strconv_quote() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c\nd\te"), "\"a\\\"b\\\\c\\nd\\te\"");
        assert_eq!(go_quote("\u{1}é"), "\"\\x01é\"");
    }
}
