//! hostPath volumes, the one way a Wasm pod can see its node's files.
//!
//! The check is split between the API server and the node, because only the
//! node knows what its operator allows:
//! - here, at admission, the API server refuses what no node may ever mount:
//!   a relative path, a path with `..`, and `/` (the whole machine);
//! - the node (`node/src/supervisor/host_path.rs`) refuses, with a
//!   `CreateContainerConfigError` status and a `Failed` event, any path not
//!   under a directory its operator allowed (`--allow-host-path DIR[:rw]`) or
//!   inside its own data directory, resolving symlinks and `subPath` on its
//!   disk before it preopens anything; and mounts read-only unless the
//!   directory was allowed read-write.
//!
//! Pure.

use serde_json::Value;
use skiff_api::json::Pointer as _;

/// Why a pod's hostPath volume is refused, or `None` if none is.
pub fn refusal(pod: &Value) -> Option<String> {
    for volume in pod
        .at("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(path) = volume.at("/hostPath/path").and_then(Value::as_str) else {
            continue;
        };
        let name = volume
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let why = if !path.starts_with('/') {
            "must be an absolute path"
        } else if path.split('/').any(|c| c == "..") {
            "must not contain '..'"
        } else if path.split('/').all(str::is_empty) {
            "must not be the root directory"
        } else {
            continue;
        };
        return Some(format!(
            "hostPath volume {name:?}: path {path:?} {why}; a node mounts only directories its operator allows (skiff node --allow-host-path DIR)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(path: &str) -> Value {
        json!({"spec": {"volumes": [{"name": "empty", "emptyDir": {}}, {"name": "h", "hostPath": {"path": path}}]}})
    }

    #[test]
    fn root_relative_and_backstepping_paths_are_refused() {
        for bad in ["/", "//", "data", "/srv/../etc"] {
            assert!(refusal(&pod(bad)).is_some(), "{bad}");
        }
        assert_eq!(
            refusal(&pod("/")).unwrap(),
            "hostPath volume \"h\": path \"/\" must not be the root directory; a node mounts only directories its operator allows (skiff node --allow-host-path DIR)"
        );
        for good in ["/srv/data", "/srv/data/", "/srv/..data"] {
            assert_eq!(refusal(&pod(good)), None, "{good}");
        }
    }
}
