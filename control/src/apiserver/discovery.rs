//! The discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}`,
//! `/api/v1`, `/apis/{group}/{version}` and the aggregated form of `/api` and
//! `/apis` that client-go (and so `kubectl`) asks for first.
//!
//! Every function here is pure: it renders [`RESOURCES`] as the JSON that
//! `k8s.io/apimachinery/pkg/apis/meta/v1` (`APIVersions`, `APIGroupList`,
//! `APIGroup`, `APIResourceList`) and `k8s.io/api/apidiscovery/v2`
//! (`APIGroupDiscoveryList`) decode. The API server picks the document and, for
//! `/api` and `/apis`, the format by [`wants_aggregated`].
//!
//! Content negotiation for `/api` and `/apis`, as client-go 1.32 does it
//! (`staging/src/k8s.io/client-go/discovery/discovery_client.go`): the discovery
//! client sends
//!
//! ```text
//! Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json
//! ```
//!
//! and decides how to decode the body from the response's `Content-Type` alone:
//! `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` (the
//! parameters in any order) means an `APIGroupDiscoveryList`, anything else
//! `application/json` means the legacy `APIVersions` (`/api`) or `APIGroupList`
//! (`/apis`). So the server must answer [`aggregated_discovery`] with exactly
//! [`AGGREGATED_CONTENT_TYPE`] when [`wants_aggregated`] says so, and the legacy
//! document with `application/json` otherwise. Newer clients may put a
//! `profile=nopeer` variant first; Skiff is a single API server, so its peer-free
//! document is the same one. With aggregated discovery client-go never fetches
//! `/api/v1` or `/apis/{group}/{version}`; older clients and `kubectl get --raw`
//! still do, so those stay served ([`api_resource_list`]).

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use skiff_api::resource::{RESOURCES, ResourceType, group_versions};

/// The Kubernetes release whose API Skiff serves (`k8s-openapi`'s `v1_33`).
pub const KUBERNETES_MAJOR: &str = "1";
/// Minor version of [`KUBERNETES_MAJOR`].
pub const KUBERNETES_MINOR: &str = "33";

/// `Content-Type` of an aggregated discovery (`apidiscovery.k8s.io/v2`) response.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Verbs of every top-level resource. Skiff's generic handlers serve all of
/// them for every kind, so every kind advertises the same set.
pub const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The review APIs: nothing is stored, a `create` is answered at once
/// (`reviews.rs`). Discovery lists them as Kubernetes does, so that clients
/// resolve `selfsubjectaccessreviews.authorization.k8s.io` and the like.
pub struct Review {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

pub const REVIEWS: &[Review] = &[
    Review {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
        namespaced: false,
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "localsubjectaccessreviews",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "subjectaccessreviews",
        kind: "SubjectAccessReview",
        namespaced: false,
    },
];

const CREATE: &[&str] = &["create"];

/// Every served group version: the stored kinds' and the reviews'.
fn served_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = group_versions();
    for review in REVIEWS {
        if !out.contains(&(review.group, review.version)) {
            out.push((review.group, review.version));
        }
    }
    out
}

fn reviews_of(group: &str, version: &str) -> impl Iterator<Item = &'static Review> {
    REVIEWS
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Verbs of the `status` and `scale` subresources.
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

/// A subresource served under each object of a resource, e.g. `deployments/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// Path segment after the object's name: `status`, `scale`, `finalize`.
    pub name: &'static str,
    /// Group of the object the subresource reads and writes (`autoscaling` for `scale`).
    pub group: &'static str,
    /// Version of that object.
    pub version: &'static str,
    /// Kind of that object (`Scale` for `scale`, the parent's kind for `status`).
    pub kind: &'static str,
    /// Verbs the subresource serves.
    pub verbs: &'static [&'static str],
}

/// The subresources served for `rt`, in discovery order. `status` and `scale`
/// follow [`ResourceType`]'s flags; `namespaces/finalize` is Kubernetes' own.
/// A new subresource (e.g. `pods/log`) belongs here once the server serves it,
/// and discovery and OpenAPI pick it up from this one place.
pub fn subresources(rt: &ResourceType) -> Vec<Subresource> {
    let mut out = Vec::new();
    if rt.group.is_empty() && rt.kind == "Namespace" {
        out.push(Subresource {
            name: "finalize",
            group: rt.group,
            version: rt.version,
            kind: rt.kind,
            verbs: &["update"],
        });
    }
    if rt.group.is_empty() && rt.kind == "ServiceAccount" {
        out.push(Subresource {
            name: "token",
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenRequest",
            verbs: &["create"],
        });
    }
    if rt.scale_subresource {
        out.push(Subresource {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: GET_PATCH_UPDATE,
        });
    }
    if rt.status_subresource {
        out.push(Subresource {
            name: "status",
            group: rt.group,
            version: rt.version,
            kind: rt.kind,
            verbs: GET_PATCH_UPDATE,
        });
    }
    out
}

/// `/version`: `version.Info` as `kubectl version` prints it. `major` and
/// `minor` say Kubernetes 1.33, the API Skiff serves; `gitVersion` adds
/// Skiff's own version as a suffix (`v1.33.0-skiff.0.1.0`).
///
/// Clients act on `minor`: the `kubectl` installed here (`/usr/bin/kubectl`,
/// Google Cloud SDK's dispatcher) reads `/version` first and runs the kubectl
/// release matching the server's minor version, i.e. kubectl 1.33.
pub fn version_info() -> Value {
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "emulationMajor": KUBERNETES_MAJOR,
        "emulationMinor": KUBERNETES_MINOR,
        "minCompatibilityMajor": KUBERNETES_MAJOR,
        "minCompatibilityMinor": previous_minor(),
        "gitVersion": git_version(),
        // Kubernetes' own defaults when a build does not stamp these.
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "1970-01-01T00:00:00Z",
        // Skiff is not built by Go; the fields stay, with what is true for Rust.
        "goVersion": "",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `/api`: `APIVersions` of the legacy core group. `server_address` is the
/// `host:port` clients reach this server at; client-go reads the field but
/// does not use it.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            { "clientCIDR": "0.0.0.0/0", "serverAddress": server_address },
        ],
    })
}

/// `/apis`: `APIGroupList` of every named group (the core group is not in it).
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().filter_map(api_group).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/{group}`: the `APIGroup` with its versions, or `None` if Skiff does
/// not serve `group` (the core group has no such document).
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let versions: Vec<Value> = served_group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": preferred,
    }))
}

/// `/api/v1` (`group` empty) and `/apis/{group}/{version}`: the
/// `APIResourceList` of that group version, subresources included, or `None`
/// if it is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() && reviews_of(group, version).next().is_none() {
        return None;
    }
    let mut entries = Vec::new();
    for review in reviews_of(group, version) {
        entries.push(json!({
            "name": review.plural,
            "singularName": review.kind.to_ascii_lowercase(),
            "namespaced": review.namespaced,
            "kind": review.kind,
            "verbs": CREATE,
        }));
    }
    for rt in resources {
        let mut entry = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": RESOURCE_VERBS,
        });
        if !rt.short_names.is_empty() {
            entry["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            entry["categories"] = json!(rt.categories);
        }
        entry["storageVersionHash"] = json!(storage_version_hash(rt));
        entries.push(entry);
        for sub in subresources(rt) {
            let mut entry = json!({
                "name": format!("{}/{}", rt.plural, sub.name),
                "singularName": "",
                "namespaced": rt.namespaced,
            });
            // `group` and `version` are only set when they differ from the
            // list's group version, as the Kubernetes API server does.
            if (sub.group, sub.version) != (rt.group, rt.version) {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            entry["kind"] = json!(sub.kind);
            entry["verbs"] = json!(sub.verbs);
            entries.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// The aggregated discovery document (`apidiscovery.k8s.io/v2`
/// `APIGroupDiscoveryList`): of `/api` when `legacy`, holding the core group
/// (named ``), else of `/apis`, holding every named group. Served with
/// [`AGGREGATED_CONTENT_TYPE`].
pub fn aggregated_discovery(legacy: bool) -> Value {
    let items: Vec<Value> = groups()
        .into_iter()
        .filter(|g| g.is_empty() == legacy)
        .map(group_discovery)
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Whether a request with this `Accept` header gets [`aggregated_discovery`]
/// rather than the legacy document.
///
/// The media ranges are taken in the client's order of preference (higher `q`
/// first, ties in the order written); the first one Skiff can produce decides.
/// Skiff produces `apidiscovery.k8s.io/v2` (the `profile=nopeer` variant is the
/// same document on a single server) and plain JSON (`application/json`,
/// `application/*`, `*/*`). It does not produce `v2beta1`, which client-go
/// lists second, nor protobuf, so those ranges are skipped. An empty header
/// means plain JSON. client-go 1.32 lists v2 first, so it gets the aggregated
/// document; `kubectl get --raw /apis` (`Accept: application/json, */*`) gets
/// the legacy one.
pub fn wants_aggregated(accept: &str) -> bool {
    let mut ranges: Vec<(f32, usize, MediaRange<'_>)> = accept
        .split(',')
        .filter_map(MediaRange::parse)
        .enumerate()
        .map(|(i, r)| (r.q, i, r))
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    // Stable sort: higher q first, the written order among equals.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, range) in ranges {
        match range.offer() {
            Some(Offer::Aggregated) => return true,
            Some(Offer::Json) => return false,
            None => continue,
        }
    }
    false
}

/// One media range of an `Accept` header.
struct MediaRange<'a> {
    essence: String,
    params: Vec<(String, &'a str)>,
    q: f32,
}

/// What Skiff can answer a discovery request with.
enum Offer {
    Aggregated,
    Json,
}

impl<'a> MediaRange<'a> {
    fn parse(range: &'a str) -> Option<Self> {
        let mut parts = range.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        if essence.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        let mut q = 1.0;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim().trim_matches('"');
            if key == "q" {
                q = value.parse().unwrap_or(0.0);
            } else {
                params.push((key, value));
            }
        }
        Some(MediaRange { essence, params, q })
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn offer(&self) -> Option<Offer> {
        match self.essence.as_str() {
            "application/json" => {}
            "application/*" | "*/*" => return Some(Offer::Json),
            _ => return None,
        }
        let (g, v, r#as) = (self.param("g"), self.param("v"), self.param("as"));
        match (g, v, r#as) {
            (None, None, None) => Some(Offer::Json),
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                match self.param("profile") {
                    None | Some("nopeer") => Some(Offer::Aggregated),
                    Some(_) => None,
                }
            }
            _ => None,
        }
    }
}

/// The named groups and the core group (``), core first, each once.
fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (group, _) in served_group_versions() {
        if !out.contains(&group) {
            out.push(group);
        }
    }
    out.sort_by_key(|g| !g.is_empty());
    out
}

/// One `APIGroupDiscovery`: a group with its versions, preferred first.
fn group_discovery(group: &str) -> Value {
    let versions: Vec<Value> = served_group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| {
            let mut resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == g && r.version == v)
                .map(resource_discovery)
                .collect();
            resources.extend(reviews_of(g, v).map(|review| {
                json!({
                    "resource": review.plural,
                    "responseKind": { "group": review.group, "version": review.version, "kind": review.kind },
                    "scope": if review.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": review.kind.to_ascii_lowercase(),
                    "verbs": CREATE,
                })
            }));
            json!({ "version": v, "resources": resources, "freshness": "Current" })
        })
        .collect();
    json!({ "metadata": { "name": group }, "versions": versions })
}

/// One `APIResourceDiscovery`.
fn resource_discovery(rt: &ResourceType) -> Value {
    let mut entry = json!({
        "resource": rt.plural,
        "responseKind": { "group": rt.group, "version": rt.version, "kind": rt.kind },
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": RESOURCE_VERBS,
    });
    if !rt.short_names.is_empty() {
        entry["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        entry["categories"] = json!(rt.categories);
    }
    let subresources: Vec<Value> = subresources(rt)
        .into_iter()
        .map(|sub| {
            json!({
                "subresource": sub.name,
                "responseKind": { "group": sub.group, "version": sub.version, "kind": sub.kind },
                "verbs": sub.verbs,
            })
        })
        .collect();
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// `storageVersionHash` as Kubernetes computes it: the first 8 bytes of the
/// sha256 of `group/version/kind` of the stored version, in base64. Clients
/// only compare it for equality (the storage version migrator).
fn storage_version_hash(rt: &ResourceType) -> String {
    let gvk = format!("{}/{}/{}", rt.group, rt.version, rt.kind);
    let digest = Sha256::digest(gvk.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// `v1.33.0-skiff.<crate version>`.
fn git_version() -> String {
    format!(
        "v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0-skiff.{}",
        env!("CARGO_PKG_VERSION")
    )
}

fn previous_minor() -> String {
    KUBERNETES_MINOR
        .parse::<u32>()
        .map(|m| m.saturating_sub(1).to_string())
        .unwrap_or_default()
}

/// `GOOS/GOARCH` of the running binary, in Go's spelling.
fn platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    format!("{os}/{arch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_GO_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    #[test]
    fn version_reports_kubernetes_1_33() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "33");
        let git = v["gitVersion"].as_str().unwrap();
        assert!(git.starts_with("v1.33.0-skiff."), "{git}");
        assert!(v["platform"].as_str().unwrap().contains('/'));
    }

    #[test]
    fn api_lists_core_v1() {
        let v = api_versions("127.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(strings(&v["versions"]), ["v1"]);
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "127.0.0.1:6443"
        );
    }

    #[test]
    fn group_list_has_every_named_group_and_no_core() {
        let list = api_group_list();
        assert_eq!(list["kind"], "APIGroupList");
        let groups = list["groups"].as_array().unwrap();
        for (group, version) in group_versions() {
            let found = groups.iter().find(|g| g["name"] == group);
            if group.is_empty() {
                assert!(found.is_none(), "core group in /apis");
                continue;
            }
            let found = found.unwrap_or_else(|| panic!("{group} missing"));
            let gv = format!("{group}/{version}");
            assert!(
                found["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["groupVersion"] == gv.as_str() && v["version"] == version)
            );
            assert_eq!(found["preferredVersion"]["groupVersion"], gv.as_str());
        }
        assert_eq!(api_group("apps").unwrap()["name"], "apps");
        for review in ["authentication.k8s.io", "authorization.k8s.io"] {
            assert!(groups.iter().any(|g| g["name"] == review), "{review}");
        }
        let authz = api_resource_list("authorization.k8s.io", "v1").unwrap();
        let sar = authz["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "selfsubjectaccessreviews")
            .unwrap();
        assert_eq!(sar["verbs"], json!(["create"]));
        assert!(api_group("").is_none());
        assert!(api_group("nope.example").is_none());
    }

    #[test]
    fn resource_lists_have_every_resource() {
        for rt in RESOURCES {
            let list = api_resource_list(rt.group, rt.version).unwrap();
            assert_eq!(list["kind"], "APIResourceList");
            assert_eq!(list["groupVersion"], rt.api_version().as_str());
            let resources = list["resources"].as_array().unwrap();
            let entry = resources
                .iter()
                .find(|r| r["name"] == rt.plural)
                .unwrap_or_else(|| panic!("{} missing", rt.plural));
            assert_eq!(entry["kind"], rt.kind);
            assert_eq!(entry["singularName"], rt.singular);
            assert_eq!(entry["namespaced"], rt.namespaced);
            assert_eq!(strings(&entry["verbs"]), RESOURCE_VERBS);
            if rt.short_names.is_empty() {
                assert!(entry.get("shortNames").is_none());
            } else {
                assert_eq!(strings(&entry["shortNames"]), rt.short_names);
            }
            let status = resources
                .iter()
                .find(|r| r["name"] == format!("{}/status", rt.plural).as_str());
            assert_eq!(status.is_some(), rt.status_subresource, "{}", rt.plural);
        }
        assert!(api_resource_list("apps", "v1beta1").is_none());
        assert!(api_resource_list("", "v2").is_none());
    }

    #[test]
    fn subresource_entries_match_kubernetes() {
        let apps = api_resource_list("apps", "v1").unwrap();
        let find = |list: &Value, name: &str| {
            list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let scale = find(&apps, "deployments/scale");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(strings(&scale["verbs"]), ["get", "patch", "update"]);
        let status = find(&apps, "deployments/status");
        assert_eq!(status["kind"], "Deployment");
        assert!(status.get("group").is_none());
        let core = api_resource_list("", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        let finalize = find(&core, "namespaces/finalize");
        assert_eq!(strings(&finalize["verbs"]), ["update"]);
        assert_eq!(find(&core, "pods")["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert_eq!(
            find(&apps, "deployments")["storageVersionHash"],
            "8aSe+NMegvE="
        );
    }

    #[test]
    fn aggregated_documents_cover_every_resource() {
        let legacy = aggregated_discovery(true);
        let apis = aggregated_discovery(false);
        for doc in [&legacy, &apis] {
            assert_eq!(doc["kind"], "APIGroupDiscoveryList");
            assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        }
        assert_eq!(legacy["items"].as_array().unwrap().len(), 1);
        assert_eq!(legacy["items"][0]["metadata"]["name"], "");
        for rt in RESOURCES {
            let doc = if rt.group.is_empty() { &legacy } else { &apis };
            let group = doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["metadata"]["name"] == rt.group)
                .unwrap_or_else(|| panic!("group {:?} missing", rt.group));
            let version = group["versions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["version"] == rt.version)
                .unwrap();
            assert_eq!(version["freshness"], "Current");
            let res = version["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["resource"] == rt.plural)
                .unwrap_or_else(|| panic!("{} missing", rt.plural));
            let scope = if rt.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            };
            assert_eq!(res["scope"], scope);
            assert_eq!(res["singularResource"], rt.singular);
            assert_eq!(res["responseKind"]["kind"], rt.kind);
            assert_eq!(res["responseKind"]["group"], rt.group);
            assert_eq!(strings(&res["verbs"]), RESOURCE_VERBS);
            let subs: Vec<&str> = res
                .get("subresources")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .map(|s| s["subresource"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(subs.contains(&"status"), rt.status_subresource);
            assert_eq!(subs.contains(&"scale"), rt.scale_subresource);
        }
    }

    #[test]
    fn negotiates_aggregated_discovery() {
        assert!(wants_aggregated(CLIENT_GO_ACCEPT));
        assert!(wants_aggregated(AGGREGATED_CONTENT_TYPE));
        // Parameters in any order, spaces, the nopeer profile of newer clients.
        assert!(wants_aggregated(
            "application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"
        ));
        assert!(wants_aggregated(&format!(
            "{AGGREGATED_CONTENT_TYPE};profile=nopeer,{CLIENT_GO_ACCEPT}"
        )));
        // Plain JSON, wildcards, nothing, or JSON preferred over v2.
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated("application/json, */*"));
        assert!(!wants_aggregated(""));
        assert!(!wants_aggregated(&format!(
            "application/json,{AGGREGATED_CONTENT_TYPE}"
        )));
        assert!(wants_aggregated(&format!(
            "application/json;q=0.5,{AGGREGATED_CONTENT_TYPE}"
        )));
        // Only v2beta1 (not produced): fall back to the legacy document.
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(&format!("{AGGREGATED_CONTENT_TYPE};q=0")));
    }
}
