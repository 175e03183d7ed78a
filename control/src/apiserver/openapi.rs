//! The OpenAPI v3 documents `kubectl` reads: the `/openapi/v3` index and one
//! document per group version at `/openapi/v3/api/v1` and
//! `/openapi/v3/apis/{group}/{version}`.
//!
//! kubectl 1.32 uses them for `explain` (the schema of a kind, found through the
//! `x-kubernetes-group-version-kind` of its operations and schemas), and for
//! `apply`/`create`/`replace` to learn that the server validates fields itself
//! (a `fieldValidation` query parameter on each kind's PATCH operation); see
//! `openapi/paths.rs` for exactly what it looks at, and why the PATCH operations
//! do not offer `application/strategic-merge-patch+json`. The schemas are
//! generated from `k8s-openapi` (`openapi/schemas.rs`).
//!
//! The documents never change while the process runs, so each is built once,
//! on first use, and kept with the hash of its JSON. How the server should
//! serve them, as the Kubernetes API server does (kube-openapi's `handler3`):
//! - `/openapi/v3`: [`openapi_v3_root`] as `application/json`,
//!   `Cache-Control: no-cache, private`. Each entry's `serverRelativeURL`
//!   carries `?hash=<hash>`, and the hash changes when the document does, so
//!   client caches (kubectl keeps these under `~/.kube/cache`) stay correct.
//! - `/openapi/v3/{api/v1|apis/g/v}`: [`openapi_v3_json`] (the bytes of
//!   [`openapi_v3`]) as `application/json` with `ETag: "<hash>"`
//!   ([`openapi_v3_hash`]); answer `If-None-Match` with
//!   304. With `?hash=` equal to the current hash the response may be cached
//!   for good: `Cache-Control: public, immutable` (and `Expires` a year out).
//!   With a different `?hash=` Kubernetes redirects (301) to the current URL;
//!   without one it sends `Cache-Control: no-cache, private`.
//!   Any unknown group version is 404.
//! - `/openapi/v2`: not a 404, because kubectl still loads it to validate a
//!   `kind: List` manifest; an empty Swagger 2.0 document, in protobuf for
//!   kubectl ([`openapi_v2_protobuf`], [`OPENAPI_V2_PROTOBUF`]) or JSON
//!   ([`openapi_v2`]), negotiated by [`wants_openapi_v2_protobuf`]. See
//!   `openapi/v2.rs` for what kubectl does with it and what was tried.

mod paths;
mod schemas;
mod v2;

use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use skiff_api::resource::{RESOURCES, group_versions};

use self::schemas::SchemaSet;
use crate::apiserver::discovery;

pub use self::v2::{
    OPENAPI_V2_PROTOBUF, openapi_v2, openapi_v2_protobuf, wants_openapi_v2_protobuf,
};

/// One group version's document, built once and kept as its JSON bytes: a
/// `Value` of all of them would hold several times as much memory.
struct GroupVersionDoc {
    group: &'static str,
    version: &'static str,
    json: Box<[u8]>,
    hash: String,
}

/// `/openapi/v3`: the index of the per group version documents, as client-go's
/// `OpenAPIV3Discovery` decodes it:
/// `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=<HASH>"}, ...}}`.
pub fn openapi_v3_root() -> Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| {
        let paths: Map<String, Value> = documents()
            .iter()
            .map(|doc| {
                let key = group_version_key(doc.group, doc.version);
                let url = format!("/openapi/v3/{key}?hash={}", doc.hash);
                (key, json!({ "serverRelativeURL": url }))
            })
            .collect();
        json!({ "paths": paths })
    })
    .clone()
}

/// The OpenAPI 3.0 document of a group version (`group` empty for the core
/// group), or `None` if Skiff does not serve it.
pub fn openapi_v3(group: &str, version: &str) -> Option<Value> {
    // The bytes were serialized from a `Value`, so they parse back.
    serde_json::from_slice(openapi_v3_json(group, version)?).ok()
}

/// [`openapi_v3`] as the JSON bytes its hash is computed over: what the server
/// should send, without parsing and serializing the document per request.
pub fn openapi_v3_json(group: &str, version: &str) -> Option<&'static [u8]> {
    find(group, version).map(|doc| &*doc.json)
}

/// The hash [`openapi_v3_root`] puts in the document's URL: upper-case hex of
/// the sha256 of its JSON. Use it as the `ETag` and to compare with a
/// request's `?hash=`.
pub fn openapi_v3_hash(group: &str, version: &str) -> Option<&'static str> {
    find(group, version).map(|doc| doc.hash.as_str())
}

/// The part of `/openapi/v3/...` that names a group version: `api/v1` or
/// `apis/{group}/{version}`; the keys of [`openapi_v3_root`]'s `paths`.
pub fn group_version_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn find(group: &str, version: &str) -> Option<&'static GroupVersionDoc> {
    documents()
        .iter()
        .find(|doc| doc.group == group && doc.version == version)
}

fn documents() -> &'static [GroupVersionDoc] {
    static DOCS: OnceLock<Vec<GroupVersionDoc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(group, version)| {
                // Serializing a `Value` cannot fail: its keys are strings.
                let json = serde_json::to_vec(&build(group, version)).unwrap_or_default();
                let hash = hex::encode_upper(Sha256::digest(&json));
                GroupVersionDoc {
                    group,
                    version,
                    json: json.into_boxed_slice(),
                    hash,
                }
            })
            .collect()
    })
}

fn build(group: &'static str, version: &'static str) -> Value {
    let served = || {
        RESOURCES
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    };
    let mut schemas = SchemaSet::new(group, version);
    let scale = served()
        .any(|r| r.scale_subresource)
        .then(|| schemas.add_scale());
    let mut paths = Map::new();
    for rt in served() {
        // Every served kind has a schema (tested); one without would only lose
        // its paths, never the document.
        if let Some(names) = schemas.add_kind(rt) {
            paths::add_resource_paths(&mut paths, rt, &names, scale.as_deref());
        }
    }
    paths.sort_keys();
    json!({
        "openapi": "3.0.0",
        "info": {
            "title": "Kubernetes",
            "version": discovery::version_info()["gitVersion"],
        },
        "paths": paths,
        "components": {
            "schemas": schemas.finish(),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::ResourceType;

    fn gvk(rt: &ResourceType) -> Value {
        json!({ "group": rt.group, "version": rt.version, "kind": rt.kind })
    }

    fn doc(rt: &ResourceType) -> Value {
        openapi_v3(rt.group, rt.version)
            .unwrap_or_else(|| panic!("no document for {}", rt.api_version()))
    }

    /// The PATCH operations tagged with `rt`'s kind, as kubectl's
    /// `supportsQueryParamV3` walks them.
    fn patch_ops<'a>(doc: &'a Value, rt: &ResourceType) -> Vec<(&'a String, &'a Value)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(path, item)| item.get("patch").map(|op| (path, op)))
            .filter(|(_, op)| op["x-kubernetes-group-version-kind"] == gvk(rt))
            .collect()
    }

    #[test]
    fn root_references_every_group_version() {
        let root = openapi_v3_root();
        let paths = root["paths"].as_object().unwrap();
        assert_eq!(paths.len(), group_versions().len());
        for (group, version) in group_versions() {
            let key = group_version_key(group, version);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            let hash = openapi_v3_hash(group, version).unwrap();
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash.len(), 64);
        }
        assert!(paths.contains_key("api/v1"));
        assert!(paths.contains_key("apis/apps/v1"));
        assert!(openapi_v3("apps", "v1beta1").is_none());
    }

    #[test]
    fn hash_follows_the_document() {
        let bytes = openapi_v3_json("apps", "v1").unwrap();
        assert_eq!(
            serde_json::to_vec(&openapi_v3("apps", "v1").unwrap()).unwrap(),
            bytes
        );
        assert_eq!(
            openapi_v3_hash("apps", "v1").unwrap(),
            hex::encode_upper(Sha256::digest(bytes))
        );
        assert_ne!(openapi_v3_hash("apps", "v1"), openapi_v3_hash("", "v1"));
        // A rebuild yields the same bytes, so the hash is stable across restarts.
        assert_eq!(serde_json::to_vec(&build("apps", "v1")).unwrap(), bytes);
    }

    #[test]
    fn every_kind_patch_supports_field_validation() {
        for rt in RESOURCES {
            let doc = doc(rt);
            let ops = patch_ops(&doc, rt);
            assert!(!ops.is_empty(), "no PATCH for {}", rt.qualified_kind());
            for (path, op) in ops {
                let params = op["parameters"].as_array().unwrap();
                for name in ["fieldValidation", "fieldManager", "dryRun", "force"] {
                    assert!(
                        params
                            .iter()
                            .any(|p| p["name"] == name && p["in"] == "query"),
                        "{path} PATCH lacks {name}"
                    );
                }
                assert_eq!(op["x-kubernetes-action"], "patch");
                let content = op["requestBody"]["content"].as_object().unwrap();
                assert!(content.contains_key("application/merge-patch+json"));
                assert!(
                    !content.contains_key("application/strategic-merge-patch+json"),
                    "{path}: see paths.rs for why SMP is not advertised"
                );
            }
        }
    }

    #[test]
    fn every_kind_has_collection_item_and_subresource_paths() {
        for rt in RESOURCES {
            let doc = doc(rt);
            let paths = &doc["paths"];
            let base = rt.group_version_path();
            let collection = if rt.namespaced {
                format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
            } else {
                format!("{base}/{}", rt.plural)
            };
            let item = format!("{collection}/{{name}}");
            for (path, method, action) in [
                (&collection, "get", "list"),
                (&collection, "post", "post"),
                (&collection, "delete", "deletecollection"),
                (&item, "get", "get"),
                (&item, "put", "put"),
                (&item, "patch", "patch"),
                (&item, "delete", "delete"),
            ] {
                let op = &paths[path][method];
                assert_eq!(op["x-kubernetes-action"], action, "{method} {path}");
                assert_eq!(
                    op["x-kubernetes-group-version-kind"],
                    gvk(rt),
                    "{method} {path}"
                );
            }
            for method in ["post", "put"] {
                let path = if method == "post" { &collection } else { &item };
                let params = paths[path][method]["parameters"].as_array().unwrap();
                assert!(params.iter().any(|p| p["name"] == "fieldValidation"));
            }
            if rt.namespaced {
                let all = &paths[format!("{base}/{}", rt.plural)]["get"];
                assert_eq!(all["x-kubernetes-action"], "list");
            }
            let status = paths.get(format!("{item}/status"));
            assert_eq!(status.is_some(), rt.status_subresource, "{item}/status");
            if rt.scale_subresource {
                let scale = &paths[format!("{item}/scale")]["patch"];
                assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
            }
        }
        let core = openapi_v3("", "v1").unwrap();
        assert!(core["paths"]["/api/v1/namespaces/{name}/finalize"]["put"].is_object());
    }

    #[test]
    fn every_ref_resolves_in_its_document() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v) {
                            ("$ref", Value::String(r)) => out.push(r),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        for (group, version) in group_versions() {
            let doc = openapi_v3(group, version).unwrap();
            let mut found = Vec::new();
            refs(&doc, &mut found);
            for r in found {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("{r} is not a schema ref"));
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "{group}/{version}: dangling {r}"
                );
            }
        }
    }

    #[test]
    fn schemas_explain_deployment_replicas() {
        let apps = openapi_v3("apps", "v1").unwrap();
        let schemas = &apps["components"]["schemas"];
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{ "group": "apps", "kind": "Deployment", "version": "v1" }])
        );
        // Follow the $ref chain as `kubectl explain deployment.spec.replicas` does.
        let spec_ref = deployment["properties"]["spec"]["allOf"][0]["$ref"]
            .as_str()
            .unwrap();
        let spec_name = spec_ref.strip_prefix("#/components/schemas/").unwrap();
        assert_eq!(spec_name, "io.k8s.api.apps.v1.DeploymentSpec");
        let replicas = &schemas[spec_name]["properties"]["replicas"];
        assert_eq!(replicas["type"], "integer");
        assert_eq!(replicas["format"], "int32");
        assert!(schemas["io.k8s.api.autoscaling.v1.Scale"].is_object());
        assert!(schemas["io.k8s.api.apps.v1.DeploymentList"].is_object());
        assert_eq!(apps["openapi"], "3.0.0");
    }

    #[test]
    fn component_schema_is_served() {
        let doc = openapi_v3("skiff.dev", "v1alpha1").unwrap();
        let schemas = &doc["components"]["schemas"];
        let component = &schemas["dev.skiff.v1alpha1.Component"];
        assert_eq!(
            component["x-kubernetes-group-version-kind"][0]["kind"],
            "Component"
        );
        let spec = &schemas["dev.skiff.v1alpha1.ComponentSpec"]["properties"];
        for field in [
            "name", "tag", "digest", "size", "exports", "imports", "kind",
        ] {
            assert!(spec[field].is_object(), "spec.{field}");
        }
        assert!(doc["paths"]["/apis/skiff.dev/v1alpha1/components/{name}"]["patch"].is_object());
    }
}
