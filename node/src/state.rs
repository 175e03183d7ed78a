//! The pods assigned to this node, kept on local disk (`<data>/pods/<uid>.json`)
//! so that a node restarted while the control plane is unreachable runs them
//! again; the control plane's snapshot replaces them when the link returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use skiff_api::json::Pointer as _;

/// The node's record of its assigned pods.
pub struct LocalPods {
    dir: PathBuf,
    /// uid -> pod, as last written.
    pods: HashMap<String, Value>,
}

impl LocalPods {
    /// Opens the record, reading what a previous run left (unreadable files are
    /// skipped with a warning).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut pods = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path).map(|b| serde_json::from_slice::<Value>(&b)) {
                Ok(Ok(pod)) => {
                    if let Some(uid) = uid_of(&pod) {
                        pods.insert(uid, pod);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping a damaged pod record")
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable pod record")
                }
            }
        }
        Ok(LocalPods {
            dir: dir.to_path_buf(),
            pods,
        })
    }

    /// Every recorded pod.
    pub fn all(&self) -> Vec<Value> {
        self.pods.values().cloned().collect()
    }

    /// Records a pod (skips the write when nothing but status changed).
    pub fn put(&mut self, pod: &Value) {
        let Some(uid) = uid_of(pod) else { return };
        if self
            .pods
            .get(&uid)
            .is_some_and(|old| same_but_status(old, pod))
        {
            return;
        }
        let path = self.dir.join(format!("{uid}.json"));
        let tmp = path.with_extension("tmp");
        let result = serde_json::to_vec(pod)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not record a pod on disk");
        }
        self.pods.insert(uid, pod.clone());
    }

    /// Forgets a pod.
    pub fn remove(&mut self, uid: &str) {
        if self.pods.remove(uid).is_some() {
            let _ = std::fs::remove_file(self.dir.join(format!("{uid}.json")));
        }
    }

    /// Makes the record exactly `pods`.
    pub fn replace(&mut self, pods: &[Value]) {
        let keep: std::collections::HashSet<String> = pods.iter().filter_map(uid_of).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !keep.contains(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.remove(&uid);
        }
        for pod in pods {
            self.put(pod);
        }
    }
}

fn uid_of(pod: &Value) -> Option<String> {
    pod.at("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_string)
}

fn same_but_status(a: &Value, b: &Value) -> bool {
    a.get("spec") == b.get("spec")
        && a.at("/metadata/deletionTimestamp") == b.at("/metadata/deletionTimestamp")
        && a.at("/metadata/labels") == b.at("/metadata/labels")
}
