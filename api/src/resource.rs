//! The kinds Skiff serves: one [`ResourceType`] per Kubernetes resource, with the
//! names the API paths, discovery and `kubectl` use for it.

/// Group, version and kind of a served resource, with its REST names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core (legacy) group served under `/api/v1`.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// Kind as it appears in objects, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural lower-case resource name used in paths, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular lower-case name, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names `kubectl` accepts, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Whether `status` is a separate subresource (spec writes ignore status and
    /// status writes ignore everything else).
    pub status_subresource: bool,
    /// Whether the `scale` subresource is served.
    pub scale_subresource: bool,
}

impl ResourceType {
    /// `apiVersion` as written in objects: `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource's identity in the store and in messages: `deployments.apps`,
    /// or `pods` for the core group.
    pub fn resource_id(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group` as Kubernetes error messages print it (`Deployment.apps`, `Pod`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `plural.group` as Kubernetes error messages print it (`deployments.apps`).
    pub fn qualified_resource(&self) -> String {
        self.resource_id()
    }

    /// Path prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Path of an object (or of the collection when `name` is `None`).
    pub fn path(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut path = self.group_version_path();
        if let (true, Some(ns)) = (self.namespaced, namespace) {
            path.push_str("/namespaces/");
            path.push_str(ns);
        }
        path.push('/');
        path.push_str(self.plural);
        if let Some(name) = name {
            path.push('/');
            path.push_str(name);
        }
        path
    }
}

/// Skiff's own API group.
pub const SKIFF_GROUP: &str = "skiff.dev";

/// The largest object the store keeps, as JSON: 1.5 MiB, etcd's default
/// request limit (`--max-request-bytes`), which bounds every Kubernetes object.
/// A write (create, update, patch, apply) that would store a larger object is
/// refused with 413 and nothing is stored.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

const fn core(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group: "",
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories: &[],
        status_subresource: false,
        scale_subresource: false,
    }
}

const fn grouped(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories: &[],
        status_subresource: false,
        scale_subresource: false,
    }
}

const fn with_status(mut rt: ResourceType) -> ResourceType {
    rt.status_subresource = true;
    rt
}

const fn with_scale(mut rt: ResourceType) -> ResourceType {
    rt.scale_subresource = true;
    rt
}

const fn in_all(mut rt: ResourceType) -> ResourceType {
    rt.categories = &["all"];
    rt
}

/// Every resource the API server serves, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    with_status(core("Namespace", "namespaces", "namespace", false, &["ns"])),
    with_status(core("Node", "nodes", "node", false, &["no"])),
    in_all(with_status(core("Pod", "pods", "pod", true, &["po"]))),
    in_all(with_status(core(
        "Service",
        "services",
        "service",
        true,
        &["svc"],
    ))),
    core("Endpoints", "endpoints", "endpoints", true, &["ep"]),
    core("Event", "events", "event", true, &["ev"]),
    core("ConfigMap", "configmaps", "configmap", true, &["cm"]),
    core("Secret", "secrets", "secret", true, &[]),
    core(
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
    ),
    with_status(core(
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
    )),
    with_status(core(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
    )),
    with_status(core(
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        &["quota"],
    )),
    core("LimitRange", "limitranges", "limitrange", true, &["limits"]),
    in_all(with_scale(with_status(grouped(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
    )))),
    in_all(with_scale(with_status(grouped(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
    )))),
    in_all(with_status(grouped(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
    ))),
    in_all(with_scale(with_status(grouped(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
    )))),
    in_all(with_status(grouped(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        &[],
    ))),
    in_all(with_status(grouped(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
    ))),
    in_all(with_status(grouped(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
    ))),
    with_status(grouped(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
    )),
    grouped(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        false,
        &[],
    ),
    grouped(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
    ),
    grouped(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
    ),
    grouped(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        &[],
    ),
    grouped(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        &[],
    ),
    grouped(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        &[],
    ),
    grouped(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        &[],
    ),
    with_status(grouped(
        SKIFF_GROUP,
        "v1alpha1",
        "Component",
        "components",
        "component",
        false,
        &["comp"],
    )),
];

/// The resource served at `group`/`version` under `plural`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The resource whose [`ResourceType::resource_id`] is `id`.
pub fn by_resource_id(id: &str) -> Option<&'static ResourceType> {
    let (plural, group) = id.split_once('.').unwrap_or((id, ""));
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The group versions served, in discovery order, each once.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        for r in RESOURCES {
            assert_eq!(by_plural(r.group, r.version, r.plural), Some(r));
            assert_eq!(by_kind(&r.api_version(), r.kind), Some(r));
            assert_eq!(by_resource_id(&r.resource_id()), Some(r));
        }
        assert!(by_kind("v1", "Nope").is_none());
    }

    #[test]
    fn paths() {
        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(
            deploy.path(Some("default"), Some("web")),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        let node = by_kind("v1", "Node").unwrap();
        assert_eq!(node.path(Some("ignored"), None), "/api/v1/nodes");
    }
}
