//! Reading manifests as `kubectl apply -f` does: files, directories (their
//! `*.yaml`, `*.yml` and `*.json` files, sorted, not recursive) and `-` for
//! stdin; multi-document YAML; `kind: List` expanded into its items.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

/// One object read from a manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub object: Value,
    /// Where it came from, for messages: a file path, or `<stdin>`.
    pub source: String,
    /// The directory relative paths in the object are resolved against: the
    /// file's directory, or the working directory for stdin.
    pub base_dir: PathBuf,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
    }
}

/// Reads every object named by `-f` arguments, in order.
pub fn read_all(sources: &[String]) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for source in sources {
        if source == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("read manifests from stdin")?;
            let cwd = std::env::current_dir().context("find the working directory")?;
            out.extend(parse(&text, "<stdin>", &cwd)?);
            continue;
        }
        let path = Path::new(source);
        let meta = std::fs::metadata(path).with_context(|| {
            format!("the path {source:?} does not exist (pass a manifest file, a directory, or - for stdin)")
        })?;
        let files = if meta.is_dir() {
            manifest_files(path)?
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let base = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            out.extend(parse(&text, &file.display().to_string(), base)?);
        }
    }
    Ok(out)
}

/// The manifest files of a directory, sorted by name.
fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("read {}", dir.display()))?
            .path();
        let is_manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if is_manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The objects of one manifest text: every YAML document (JSON is YAML), with
/// `List`s expanded and empty documents skipped.
pub fn parse(text: &str, source: &str, base_dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .with_context(|| format!("parse {source} (document {})", i + 1))?;
        let mut objects = Vec::new();
        expand(value, &mut objects);
        for object in objects {
            if !object.is_object() {
                bail!("{source} (document {}) is not an object", i + 1);
            }
            if object["apiVersion"].as_str().is_none_or(str::is_empty)
                || object["kind"].as_str().is_none_or(str::is_empty)
            {
                bail!(
                    "{source} (document {}): an object needs apiVersion and kind",
                    i + 1
                );
            }
            out.push(Manifest {
                object,
                source: source.to_string(),
                base_dir: base_dir.to_path_buf(),
            });
        }
    }
    Ok(out)
}

/// Flattens `List` (and `FooList`) objects into their items.
fn expand(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Object(mut map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    expand(item, out);
                }
            }
        }
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_documents_and_lists() {
        let text = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
# only a comment
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a, namespace: demo}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: b}
"#;
        let objects = parse(text, "app.yaml", Path::new("/m")).unwrap();
        let names: Vec<(&str, &str)> = objects.iter().map(|m| (m.kind(), m.name())).collect();
        assert_eq!(
            names,
            [
                ("Namespace", "demo"),
                ("ConfigMap", "a"),
                ("ConfigMap", "b")
            ]
        );
        assert_eq!(objects[1].namespace(), Some("demo"));
        assert_eq!(objects[2].namespace(), None);
        assert_eq!(objects[0].base_dir, Path::new("/m"));
    }

    #[test]
    fn reads_json_and_refuses_objects_without_a_kind() {
        let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}"#;
        assert_eq!(parse(json, "p.json", Path::new(".")).unwrap().len(), 1);
        let err = parse("metadata: {name: x}", "x.yaml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.yaml") && err.contains("apiVersion and kind"),
            "{err}"
        );
    }

    #[test]
    fn reads_a_directory_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let cm =
            |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
        std::fs::write(dir.path().join("b.yml"), cm("b")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), cm("a")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}"#,
        )
        .unwrap();
        let objects = read_all(&[dir.path().display().to_string()]).unwrap();
        let names: Vec<&str> = objects.iter().map(Manifest::name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(objects[0].base_dir, dir.path());
    }
}
