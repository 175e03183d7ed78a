//! What the cluster serves, read once per command from discovery: which
//! resource (path segment, scope) an `apiVersion` + `kind` maps to, and which
//! one a name typed on the command line means (`po`, `pod`, `pods`, `Pod`,
//! `deployments.apps`).
//!
//! Aggregated discovery (`apidiscovery.k8s.io/v2`, two requests) is asked for
//! first; a server that answers with the legacy documents is walked group
//! version by group version, as older kubectl does.

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::Value;

use crate::api::{ACCEPT_JSON, ApiClient};

/// `Accept` asking for aggregated discovery, plain JSON as fallback.
const ACCEPT_AGGREGATED: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";

/// One top-level resource of one group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group, empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The path segment (`pods`).
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Categories it belongs to (`all`).
    pub categories: Vec<String>,
    /// Whether this is the group's preferred version.
    pub preferred: bool,
}

/// Every resource a cluster serves.
pub struct Discovery {
    resources: Vec<Resource>,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The collection's path in `namespace` (ignored for cluster-scoped kinds;
    /// `None`: across all namespaces).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    /// One object's path.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection_path(namespace))
    }

    /// How kubectl names the type in its output: `pod`, `deployment.apps`.
    pub fn type_name(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }
}

impl Discovery {
    /// Reads what `client`'s cluster serves.
    pub async fn load(client: &ApiClient) -> anyhow::Result<Discovery> {
        let mut resources = Vec::new();
        for root in ["/api", "/apis"] {
            let response = client
                .request(
                    http::Method::GET,
                    root,
                    ACCEPT_AGGREGATED,
                    None,
                    Bytes::new(),
                )
                .await?;
            let doc = response
                .json()
                .with_context(|| format!("discover {root}"))?;
            if doc["kind"] == "APIGroupDiscoveryList" {
                resources.extend(from_aggregated(&doc));
            } else {
                resources.extend(legacy(client, root, &doc).await?);
            }
        }
        Ok(Discovery { resources })
    }

    /// A discovery over a fixed list, for tests.
    #[cfg(test)]
    pub fn from_resources(resources: Vec<Resource>) -> Discovery {
        Discovery { resources }
    }

    /// The resource serving `kind` at `api_version`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> anyhow::Result<&Resource> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .with_context(|| {
                format!(
                    "resource mapping not found for kind {kind:?} in version {api_version:?}: the cluster does not serve it"
                )
            })
    }

    /// The resources a type typed on the command line means: those of a
    /// category (`all`) if one has that name, else the one [`by_name`] finds.
    ///
    /// [`by_name`]: Discovery::by_name
    pub fn resolve(&self, typed: &str) -> anyhow::Result<Vec<&Resource>> {
        let lower = typed.to_ascii_lowercase();
        let in_category: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| r.preferred && r.categories.contains(&lower))
            .collect();
        if !in_category.is_empty() && self.by_name(typed).is_err() {
            return Ok(in_category);
        }
        Ok(vec![self.by_name(typed)?])
    }

    /// One object named on a command line, as `TYPE NAME` or `TYPE/NAME`.
    pub fn one_object<'a>(&'a self, words: &[String]) -> anyhow::Result<(&'a Resource, String)> {
        let (typed, name) = match words {
            [one] => one.split_once('/').with_context(|| {
                format!("name the object as TYPE/NAME or TYPE NAME (got {one:?})")
            })?,
            [typed, name] => (typed.as_str(), name.as_str()),
            _ => bail!("name exactly one object, as TYPE/NAME or TYPE NAME"),
        };
        if name.is_empty() {
            bail!("name the object as TYPE/NAME or TYPE NAME (no name in {typed:?})");
        }
        Ok((self.by_name(typed)?, name.to_string()))
    }

    /// The resource a name typed by a user means: plural, singular, kind or
    /// short name, optionally qualified by group (`deployments.apps`) or by
    /// version and group (`deployments.v1.apps`). Case-insensitive; the
    /// preferred version of a group wins, the core group first.
    pub fn by_name(&self, typed: &str) -> anyhow::Result<&Resource> {
        let lower = typed.to_ascii_lowercase();
        let matches = |r: &&Resource, name: &str| {
            r.plural == name
                || r.singular == name
                || r.kind.eq_ignore_ascii_case(name)
                || r.short_names.iter().any(|s| s == name)
        };
        let unqualified = self
            .resources
            .iter()
            .filter(|r| r.preferred)
            .find(|r| matches(r, &lower));
        if let Some(found) = unqualified {
            return Ok(found);
        }
        if let Some((name, rest)) = lower.split_once('.')
            && !rest.is_empty()
        {
            // `rest` is a group, `version.group`, or a core version.
            let qualified = self.resources.iter().find(|r| {
                matches(r, name)
                    && ((r.preferred && r.group == rest)
                        || rest == format!("{}.{}", r.version, r.group)
                        || (r.group.is_empty() && rest == r.version))
            });
            if let Some(found) = qualified {
                return Ok(found);
            }
        }
        bail!("the server doesn't have a resource type {typed:?}")
    }
}

/// Resources of an `APIGroupDiscoveryList`; a group's first version is its
/// preferred one.
fn from_aggregated(doc: &Value) -> Vec<Resource> {
    let mut out = Vec::new();
    for group in doc["items"].as_array().into_iter().flatten() {
        let group_name = group["metadata"]["name"].as_str().unwrap_or("");
        let versions = group["versions"].as_array().into_iter().flatten();
        for (i, version) in versions.enumerate() {
            let version_name = version["version"].as_str().unwrap_or("");
            for r in version["resources"].as_array().into_iter().flatten() {
                let plural = r["resource"].as_str().unwrap_or("");
                let kind = r["responseKind"]["kind"].as_str().unwrap_or("");
                if plural.is_empty() || kind.is_empty() {
                    continue;
                }
                out.push(Resource {
                    group: group_name.to_string(),
                    version: version_name.to_string(),
                    kind: kind.to_string(),
                    plural: plural.to_string(),
                    singular: singular_or_kind(r["singularResource"].as_str(), kind),
                    namespaced: r["scope"] == "Namespaced",
                    short_names: strings(&r["shortNames"]),
                    categories: strings(&r["categories"]),
                    preferred: i == 0,
                });
            }
        }
    }
    out
}

/// Resources from the legacy documents: `/api` lists versions of the core
/// group, `/apis` the groups; each group version has its own resource list.
async fn legacy(client: &ApiClient, root: &str, doc: &Value) -> anyhow::Result<Vec<Resource>> {
    // (group, version, preferred)
    let mut group_versions: Vec<(String, String, bool)> = Vec::new();
    if root == "/api" {
        for (i, v) in strings(&doc["versions"]).into_iter().enumerate() {
            group_versions.push((String::new(), v, i == 0));
        }
    } else {
        for group in doc["groups"].as_array().into_iter().flatten() {
            let name = group["name"].as_str().unwrap_or("").to_string();
            let preferred = group["preferredVersion"]["version"].as_str();
            for v in group["versions"].as_array().into_iter().flatten() {
                let version = v["version"].as_str().unwrap_or("").to_string();
                let is_preferred = preferred == Some(version.as_str());
                group_versions.push((name.clone(), version, is_preferred));
            }
        }
    }
    let mut out = Vec::new();
    for (group, version, preferred) in group_versions {
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let list = client
            .request(http::Method::GET, &path, ACCEPT_JSON, None, Bytes::new())
            .await?
            .json()
            .with_context(|| format!("discover {path}"))?;
        for r in list["resources"].as_array().into_iter().flatten() {
            let plural = r["name"].as_str().unwrap_or("");
            let kind = r["kind"].as_str().unwrap_or("");
            if plural.is_empty() || plural.contains('/') || kind.is_empty() {
                continue;
            }
            out.push(Resource {
                group: group.clone(),
                version: version.clone(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: singular_or_kind(r["singularName"].as_str(), kind),
                namespaced: r["namespaced"].as_bool().unwrap_or(false),
                short_names: strings(&r["shortNames"]),
                categories: strings(&r["categories"]),
                preferred,
            });
        }
    }
    Ok(out)
}

fn singular_or_kind(singular: Option<&str>, kind: &str) -> String {
    match singular {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => kind.to_ascii_lowercase(),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn discovery() -> Discovery {
        let doc = json!({
            "kind": "APIGroupDiscoveryList",
            "items": [
                {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                    {"resource": "pods", "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                     "scope": "Namespaced", "singularResource": "pod", "shortNames": ["po"],
                     "categories": ["all"]},
                    {"resource": "namespaces", "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                     "scope": "Cluster", "singularResource": "namespace", "shortNames": ["ns"]},
                ]}]},
                {"metadata": {"name": "apps"}, "versions": [
                    {"version": "v1", "resources": [
                        {"resource": "deployments", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                         "scope": "Namespaced", "singularResource": "deployment", "shortNames": ["deploy"],
                         "categories": ["all"]}]},
                    {"version": "v1beta1", "resources": [
                        {"resource": "deployments", "responseKind": {"group": "apps", "version": "v1beta1", "kind": "Deployment"},
                         "scope": "Namespaced", "singularResource": "deployment"}]},
                ]},
            ]
        });
        Discovery::from_resources(from_aggregated(&doc))
    }

    #[test]
    fn resolves_every_name_a_user_types() {
        let d = discovery();
        for typed in ["po", "pod", "pods", "Pod", "PODS", "pods.v1", "pod."] {
            match d.by_name(typed) {
                Ok(r) => assert_eq!(r.kind, "Pod", "{typed}"),
                Err(e) if typed == "pod." => assert!(e.to_string().contains("resource type")),
                Err(e) => panic!("{typed}: {e}"),
            }
        }
        for typed in [
            "deploy",
            "deployment",
            "deployments.apps",
            "deployments.v1.apps",
        ] {
            let r = d.by_name(typed).unwrap();
            assert_eq!((r.kind.as_str(), r.version.as_str()), ("Deployment", "v1"));
        }
        let beta = d.by_name("deployments.v1beta1.apps").unwrap();
        assert_eq!(beta.version, "v1beta1");
        let all: Vec<&str> = d
            .resolve("all")
            .unwrap()
            .iter()
            .map(|r| r.kind.as_str())
            .collect();
        assert_eq!(all, ["Pod", "Deployment"]);
        let err = d.by_name("gadgets").unwrap_err().to_string();
        assert_eq!(err, r#"the server doesn't have a resource type "gadgets""#);
    }

    #[test]
    fn maps_kinds_to_paths() {
        let d = discovery();
        let pod = d.by_kind("v1", "Pod").unwrap();
        assert_eq!(
            pod.object_path(Some("default"), "hello"),
            "/api/v1/namespaces/default/pods/hello"
        );
        assert_eq!(pod.type_name(), "pod");
        let ns = d.by_kind("v1", "Namespace").unwrap();
        assert_eq!(
            ns.object_path(Some("default"), "demo"),
            "/api/v1/namespaces/demo"
        );
        let deploy = d.by_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(deploy.collection_path(None), "/apis/apps/v1/deployments");
        assert_eq!(deploy.type_name(), "deployment.apps");
        assert!(d.by_kind("apps/v2", "Deployment").is_err());
    }
}
