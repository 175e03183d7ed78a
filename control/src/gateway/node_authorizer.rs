//! The node authorizer: what a node, known by its certificate
//! (`CN=system:node:<name>`), may do over the gateway. One pure function,
//! [`authorize`], decides every request a node makes, so that a new thing
//! nodes are given (ConfigMaps and Secrets for their pods) is one more
//! [`NodeRequest`] arm and not one more ad hoc check.
//!
//! The rules are Kubernetes' own, from two places:
//! - the node authorizer (`plugin/pkg/auth/authorizer/node/node_authorizer.go`):
//!   a node reads only the objects a pod bound to it refers to (its graph of
//!   pod -> configmap/secret/pvc/serviceaccount edges);
//! - the NodeRestriction admission plugin
//!   (`plugin/pkg/admission/noderestriction/admission.go`): a node updates the
//!   status of, and deletes, only pods whose `spec.nodeName` is itself, changes
//!   only its own Node, and never sets, changes or removes labels under
//!   `node-restriction.kubernetes.io/`.
//!
//! Refusals read as Kubernetes words them, so that a user who knows one knows
//! the other.

use serde_json::{Map, Value};
use skiff_api::json::Pointer as _;

/// The label prefix a node may not touch: labels under it are the cluster
/// operator's way to tell nodes apart in a way the node cannot forge.
pub const NODE_RESTRICTION_LABEL_DOMAIN: &str = "node-restriction.kubernetes.io";

/// A kind of object a pod refers to by name, in its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodReferenceKind {
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    ServiceAccount,
}

impl PodReferenceKind {
    fn resource(self) -> &'static str {
        match self {
            PodReferenceKind::ConfigMap => "configmaps",
            PodReferenceKind::Secret => "secrets",
            PodReferenceKind::PersistentVolumeClaim => "persistentvolumeclaims",
            PodReferenceKind::ServiceAccount => "serviceaccounts",
        }
    }
}

/// What a node asks to do.
#[derive(Debug)]
pub enum NodeRequest<'a> {
    /// Write the status of `pod` (the stored pod).
    UpdatePodStatus { pod: &'a Value },
    /// Remove `pod` (the stored pod) once it has stopped.
    DeletePod { pod: &'a Value },
    /// Create or update the Node `name`, whose labels go from `old` (`None`:
    /// the Node does not exist yet) to `new`.
    WriteNode {
        name: &'a str,
        old: Option<&'a Map<String, Value>>,
        new: &'a Map<String, Value>,
    },
    /// Fetch the component `image`, given the pods bound to the node.
    FetchComponent { image: &'a str, pods: &'a [Value] },
    /// Read an object a pod may refer to, given the pods bound to the node.
    ReadObject {
        kind: PodReferenceKind,
        namespace: &'a str,
        name: &'a str,
        pods: &'a [Value],
    },
}

/// A refusal, for the log and for the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    /// HTTP-like code: 403.
    pub code: u16,
    /// What the node is told, in Kubernetes' words.
    pub message: String,
    /// What was refused, for the log: `update pod status`, `delete pod`, ...
    pub action: &'static str,
}

/// Decides whether `node` may do `request`.
pub fn authorize(node: &str, request: &NodeRequest<'_>) -> Result<(), Denied> {
    let deny = |action, message: String| {
        Err(Denied {
            code: 403,
            message,
            action,
        })
    };
    match request {
        NodeRequest::UpdatePodStatus { pod } => {
            if bound_to(pod) != Some(node) {
                // noderestriction/admission.go, admitPodStatus.
                return deny(
                    "update pod status",
                    format!(
                        "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                    ),
                );
            }
            Ok(())
        }
        NodeRequest::DeletePod { pod } => {
            if bound_to(pod) != Some(node) {
                // noderestriction/admission.go, admitPod (delete).
                return deny(
                    "delete pod",
                    format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
                );
            }
            Ok(())
        }
        NodeRequest::WriteNode { name, old, new } => {
            if *name != node {
                // noderestriction/admission.go, admitNode.
                return deny(
                    "write node",
                    format!("node {node:?} is not allowed to modify node {name:?}"),
                );
            }
            let touched = restricted_label_changes(*old, new);
            if !touched.is_empty() {
                let (action, verb) = if old.is_none() {
                    ("create node", "set the following labels")
                } else {
                    ("update node", "modify labels")
                };
                return deny(
                    action,
                    format!(
                        "node {node:?} is not allowed to {verb}: {}",
                        touched.join(", ")
                    ),
                );
            }
            Ok(())
        }
        NodeRequest::FetchComponent { image, pods } => {
            if pods.iter().any(|p| pod_images(p).any(|i| i == *image)) {
                return Ok(());
            }
            deny(
                "fetch component",
                format!(
                    "no relationship found between node {node:?} and component {image:?}: no pod bound to it runs it"
                ),
            )
        }
        NodeRequest::ReadObject {
            kind,
            namespace,
            name,
            pods,
        } => {
            let related = pods.iter().any(|p| {
                p.at("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
                    && pod_references(p, *kind).any(|n| n == *name)
            });
            if related {
                return Ok(());
            }
            // node_authorizer.go: "no relationship found between node %q and this object".
            deny(
                "get",
                format!(
                    "{} {namespace}/{name} is forbidden: no relationship found between node {node:?} and this object",
                    kind.resource()
                ),
            )
        }
    }
}

/// The node a pod is bound to.
fn bound_to(pod: &Value) -> Option<&str> {
    pod.at("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Whether `key` is under `node-restriction.kubernetes.io/` (or a subdomain of
/// it, as NodeRestriction reads it).
fn is_restricted_label(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    domain == NODE_RESTRICTION_LABEL_DOMAIN
        || domain.ends_with(&format!(".{NODE_RESTRICTION_LABEL_DOMAIN}"))
}

/// Restricted labels that `new` adds, changes or removes relative to `old`, sorted.
fn restricted_label_changes(
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
) -> Vec<String> {
    let empty = Map::new();
    let old = old.unwrap_or(&empty);
    let mut touched: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| is_restricted_label(k) && old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    touched.sort();
    touched.dedup();
    touched
}

/// Every container image of a pod (init, regular and ephemeral containers).
fn pod_images(pod: &Value) -> impl Iterator<Item = &str> {
    [
        "/spec/initContainers",
        "/spec/containers",
        "/spec/ephemeralContainers",
    ]
    .into_iter()
    .filter_map(|path| pod.at(path).and_then(Value::as_array))
    .flatten()
    .filter_map(|c| c.get("image").and_then(Value::as_str))
}

/// The names of the objects of `kind` a pod refers to, as the node authorizer's
/// graph has them (`plugin/pkg/auth/authorizer/node/graph_populator.go`, and
/// `pkg/api/pod/util.go` VisitPodSecretNames / VisitPodConfigmapNames).
pub(crate) fn pod_references(pod: &Value, kind: PodReferenceKind) -> impl Iterator<Item = &str> {
    let mut names: Vec<&str> = Vec::new();
    let spec = pod.get("spec");
    let volumes = spec
        .and_then(|s| s.get("volumes"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|k| spec.and_then(|s| s.get(k)).and_then(Value::as_array))
        .flatten();
    match kind {
        PodReferenceKind::ServiceAccount => {
            if let Some(sa) = spec
                .and_then(|s| s.get("serviceAccountName"))
                .and_then(Value::as_str)
            {
                names.push(sa);
            }
        }
        PodReferenceKind::PersistentVolumeClaim => {
            names.extend(
                volumes
                    .iter()
                    .filter_map(|v| v.at("/persistentVolumeClaim/claimName"))
                    .filter_map(Value::as_str),
            );
        }
        PodReferenceKind::ConfigMap | PodReferenceKind::Secret => {
            let (volume_key, volume_name, projected_key, env_ref, env_from) = match kind {
                PodReferenceKind::ConfigMap => (
                    "configMap",
                    "name",
                    "configMap",
                    "configMapKeyRef",
                    "configMapRef",
                ),
                _ => (
                    "secret",
                    "secretName",
                    "secret",
                    "secretKeyRef",
                    "secretRef",
                ),
            };
            for v in volumes {
                if let Some(n) = v
                    .get(volume_key)
                    .and_then(|x| x.get(volume_name))
                    .and_then(Value::as_str)
                {
                    names.push(n);
                }
                let sources = v
                    .at("/projected/sources")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                names.extend(
                    sources
                        .iter()
                        .filter_map(|s| s.get(projected_key)?.get("name")?.as_str()),
                );
            }
            // Skiff's `wasi:config` sources (`skiff_api::wasi_config`).
            let wanted = match kind {
                PodReferenceKind::ConfigMap => skiff_api::wasi_config::SourceKind::ConfigMap,
                _ => skiff_api::wasi_config::SourceKind::Secret,
            };
            let annotation = pod
                .at("/metadata/annotations")
                .and_then(|a| a.get(skiff_api::wasi_config::ANNOTATION))
                .and_then(Value::as_str);
            if let Some(value) = annotation
                && let Ok(sources) = skiff_api::wasi_config::sources(value)
            {
                names.extend(
                    sources
                        .into_iter()
                        .filter(|s| s.kind == wanted)
                        .map(|s| s.name),
                );
            }
            if kind == PodReferenceKind::Secret {
                let pull = spec
                    .and_then(|s| s.get("imagePullSecrets"))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                names.extend(pull.iter().filter_map(|s| s.get("name")?.as_str()));
            }
            for c in containers {
                let env = c
                    .get("env")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                names.extend(
                    env.iter()
                        .filter_map(|e| e.get("valueFrom")?.get(env_ref)?.get("name")?.as_str()),
                );
                let from = c
                    .get("envFrom")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                names.extend(
                    from.iter()
                        .filter_map(|e| e.get(env_from)?.get("name")?.as_str()),
                );
            }
        }
    }
    names.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str) -> Value {
        json!({
            "metadata": {"namespace": "default", "name": "web", "uid": "u1"},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "default",
                "containers": [{
                    "name": "c", "image": "hello:v1",
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                    "envFrom": [{"configMapRef": {"name": "env-cm"}}],
                }],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "vol-cm"}},
                    {"name": "v2", "secret": {"secretName": "vol-secret"}},
                    {"name": "v3", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
                    {"name": "v4", "persistentVolumeClaim": {"claimName": "data"}},
                ],
            },
        })
    }

    #[test]
    fn a_node_reports_and_deletes_only_its_own_pods() {
        let mine = pod("n1");
        let theirs = pod("n2");
        let unbound = json!({"spec": {}});
        assert_eq!(
            authorize("n1", &NodeRequest::UpdatePodStatus { pod: &mine }),
            Ok(())
        );
        assert_eq!(
            authorize("n1", &NodeRequest::DeletePod { pod: &mine }),
            Ok(())
        );
        let denied = authorize("n1", &NodeRequest::UpdatePodStatus { pod: &theirs }).unwrap_err();
        assert_eq!(denied.code, 403);
        assert_eq!(
            denied.message,
            r#"node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        );
        let denied = authorize("n1", &NodeRequest::DeletePod { pod: &theirs }).unwrap_err();
        assert_eq!(denied.action, "delete pod");
        assert!(authorize("n1", &NodeRequest::UpdatePodStatus { pod: &unbound }).is_err());
        assert!(authorize("n1", &NodeRequest::DeletePod { pod: &unbound }).is_err());
    }

    #[test]
    fn a_node_writes_only_its_own_node_and_not_restricted_labels() {
        let labels = |pairs: &[(&str, &str)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect()
        };
        let plain = labels(&[("zone", "a"), ("kubernetes.io/hostname", "n1")]);
        let write = |name, old, new| NodeRequest::WriteNode { name, old, new };
        assert_eq!(authorize("n1", &write("n1", None, &plain)), Ok(()));
        assert!(
            authorize("n1", &write("n2", None, &plain))
                .unwrap_err()
                .message
                .contains(r#"is not allowed to modify node "n2""#)
        );
        // Setting one at creation.
        let set = labels(&[("node-restriction.kubernetes.io/trusted", "yes")]);
        let denied = authorize("n1", &write("n1", None, &set)).unwrap_err();
        assert_eq!(
            denied.message,
            r#"node "n1" is not allowed to set the following labels: node-restriction.kubernetes.io/trusted"#
        );
        // Changing, removing, or a subdomain's.
        let operator = labels(&[
            ("node-restriction.kubernetes.io/trusted", "yes"),
            ("zone", "a"),
        ]);
        let changed = labels(&[
            ("node-restriction.kubernetes.io/trusted", "no"),
            ("zone", "a"),
        ]);
        assert!(authorize("n1", &write("n1", Some(&operator), &changed)).is_err());
        assert!(authorize("n1", &write("n1", Some(&operator), &plain)).is_err());
        let sub = labels(&[("a.node-restriction.kubernetes.io/x", "1")]);
        assert!(authorize("n1", &write("n1", Some(&plain), &sub)).is_err());
        // Keeping the operator's label as it is, and changing others, is fine.
        let kept = labels(&[
            ("node-restriction.kubernetes.io/trusted", "yes"),
            ("zone", "b"),
        ]);
        assert_eq!(
            authorize("n1", &write("n1", Some(&operator), &kept)),
            Ok(())
        );
        // A look-alike domain is not restricted.
        let lookalike = labels(&[("xnode-restriction.kubernetes.io/x", "1")]);
        assert_eq!(authorize("n1", &write("n1", None, &lookalike)), Ok(()));
    }

    #[test]
    fn a_node_reads_only_what_its_pods_refer_to() {
        let pods = [pod("n1")];
        let read = |kind, namespace, name| NodeRequest::ReadObject {
            kind,
            namespace,
            name,
            pods: &pods,
        };
        use PodReferenceKind::*;
        for (kind, name) in [
            (ConfigMap, "vol-cm"),
            (ConfigMap, "proj-cm"),
            (ConfigMap, "env-cm"),
            (Secret, "vol-secret"),
            (Secret, "env-secret"),
            (PersistentVolumeClaim, "data"),
            (ServiceAccount, "default"),
        ] {
            assert_eq!(
                authorize("n1", &read(kind, "default", name)),
                Ok(()),
                "{name}"
            );
        }
        let denied = authorize("n1", &read(Secret, "default", "vol-cm")).unwrap_err();
        assert_eq!(
            denied.message,
            r#"secrets default/vol-cm is forbidden: no relationship found between node "n1" and this object"#
        );
        assert!(authorize("n1", &read(Secret, "other", "vol-secret")).is_err());
        assert!(authorize("n1", &read(ConfigMap, "default", "unrelated")).is_err());
        let none: [Value; 0] = [];
        let nothing = NodeRequest::ReadObject {
            kind: Secret,
            namespace: "default",
            name: "vol-secret",
            pods: &none,
        };
        assert!(authorize("n1", &nothing).is_err());
    }

    #[test]
    fn a_node_fetches_only_components_its_pods_run() {
        let pods = [pod("n1")];
        let fetch = |image| NodeRequest::FetchComponent { image, pods: &pods };
        assert_eq!(authorize("n1", &fetch("hello:v1")), Ok(()));
        let denied = authorize("n1", &fetch("secret-sauce:v1")).unwrap_err();
        assert_eq!(denied.action, "fetch component");
    }
}
