//! Images that name a local component file rather than a pushed component:
//! `image: ./hello.wasm` in a Pod or a workload's pod template. `skiff apply`
//! pushes each such file as `<stem>:<first 12 hex of its sha256>` and applies
//! the object with that reference instead.

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde_json::Value;
use sha2::{Digest, Sha256};
use skiff_api::json::Pointer as _;

use crate::manifest::Manifest;

/// One image field that names a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// JSON pointer of the `image` field in the object.
    pub pointer: String,
    /// The file, resolved against the manifest's directory.
    pub file: PathBuf,
}

/// Where the pod spec sits in an object of `kind`, for the kinds that run pods.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "PodTemplate" => Some("/template/spec"),
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The images of `manifest` that name local files: an existing file relative
/// to the manifest's directory (or absolute), or any path ending in `.wasm`,
/// which must then exist.
pub fn find(manifest: &Manifest) -> anyhow::Result<Vec<LocalImage>> {
    let Some(spec_pointer) = pod_spec_pointer(manifest.kind()) else {
        return Ok(Vec::new());
    };
    let Some(spec) = manifest.object.at(spec_pointer) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let Some(image) = container["image"].as_str() else {
                continue;
            };
            let path = Path::new(image);
            let file = if path.is_absolute() {
                path.to_path_buf()
            } else {
                manifest.base_dir.join(path)
            };
            if file.is_file() {
                out.push(LocalImage {
                    pointer: format!("{spec_pointer}/{list}/{i}/image"),
                    file,
                });
            } else if image.ends_with(".wasm") {
                bail!(
                    "component file {} does not exist (image of container {:?} of {}/{} in {})",
                    file.display(),
                    container["name"].as_str().unwrap_or(""),
                    manifest.kind().to_ascii_lowercase(),
                    manifest.name(),
                    manifest.source,
                );
            }
        }
    }
    Ok(out)
}

/// The `name:tag` a local file is pushed as: its stem made a DNS label, and
/// the first 12 hex characters of the sha256 of its bytes.
pub fn reference_for(file: &Path, bytes: &[u8]) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-');
    let name = if name.is_empty() { "component" } else { name };
    let digest = format!("{:x}", Sha256::digest(bytes));
    format!("{name}:{}", &digest[..12])
}

/// Replaces the image at `pointer` with `reference`.
pub fn set_image(object: &mut Value, pointer: &str, reference: &str) {
    if let Some(image) = object.pointer_mut(pointer) {
        *image = Value::String(reference.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(object: Value, dir: &Path) -> Manifest {
        Manifest {
            object,
            source: "app.yaml".into(),
            base_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn finds_local_files_in_pods_and_templates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.wasm"), b"x").unwrap();
        std::fs::write(dir.path().join("init"), b"x").unwrap();
        let pod = manifest(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"initContainers": [{"name": "i", "image": "init"}],
                            "containers": [{"name": "a", "image": "hello.wasm"},
                                           {"name": "b", "image": "pushed:v1"}]}}),
            dir.path(),
        );
        assert_eq!(
            find(&pod).unwrap(),
            [
                LocalImage {
                    pointer: "/spec/initContainers/0/image".into(),
                    file: dir.path().join("init"),
                },
                LocalImage {
                    pointer: "/spec/containers/0/image".into(),
                    file: dir.path().join("hello.wasm"),
                },
            ]
        );
        let cron = manifest(
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                   "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                       {"name": "a", "image": dir.path().join("hello.wasm")}]}}}}}}),
            Path::new("/elsewhere"),
        );
        let found = find(&cron).unwrap();
        assert_eq!(
            found[0].pointer,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        );
        let cm = manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            dir.path(),
        );
        assert!(find(&cm).unwrap().is_empty());
    }

    #[test]
    fn a_missing_wasm_file_is_an_error_naming_it_and_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let pod = manifest(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [{"name": "a", "image": "gone.wasm"}]}}),
            dir.path(),
        );
        let err = find(&pod).unwrap_err().to_string();
        assert!(
            err.contains("gone.wasm") && err.contains("app.yaml"),
            "{err}"
        );
    }

    #[test]
    fn references_are_stem_and_short_digest() {
        let r = reference_for(Path::new("/x/Hello_World.wasm"), b"");
        // sha256 of nothing starts e3b0c44298fc.
        assert_eq!(r, "hello-world:e3b0c44298fc");
        assert_eq!(
            reference_for(Path::new("/x/__.wasm"), b""),
            "component:e3b0c44298fc"
        );
    }
}
