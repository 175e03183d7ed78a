//! `paths` of a group version's OpenAPI v3 document: the collection, object
//! and subresource paths of each served kind, with their operations.
//!
//! What `kubectl` 1.32 reads from them:
//! - `explain` takes the kind (`x-kubernetes-group-version-kind`) from the first
//!   operation of `/<prefix>/<version>/[namespaces/{namespace}/]<plural>[/{name}]`
//!   and then looks the schema up by it.
//! - `apply`/`create`/`replace` ask `QueryParamVerifierV3`
//!   (`cli-runtime/pkg/resource/query_param_verifier_v3.go`) whether the kind
//!   supports server-side field validation: it takes the first PATCH operation
//!   tagged with the kind and looks for a `fieldValidation` parameter `in: query`
//!   among that operation's own parameters (not the path's). Every PATCH here,
//!   subresources included, carries it, so kubectl sends `fieldValidation=Strict`
//!   and does not fall back to client-side validation against `/openapi/v2`
//!   (a `kind: List` manifest still does; see `v2.rs`).
//! - `apply` (`kubectl/pkg/cmd/apply/patcher.go`, `gvkSupportsPatchOpenAPIV3`)
//!   computes a strategic merge patch from the v3 schemas when the kind's PATCH
//!   request body lists `application/strategic-merge-patch+json`. Skiff leaves
//!   that type out on purpose: the schemas come from `k8s-openapi`, which does
//!   not carry the patch extensions, and the hand-kept table in `schemas.rs`
//!   is not a proven-complete copy of upstream's; a missing merge key would make
//!   kubectl replace a whole list (e.g. every container) where Kubernetes merges
//!   it. Without it kubectl falls back to the patch metadata compiled into its
//!   own Go types for the Kubernetes kinds (exact, and a strategic merge patch
//!   all the same), and to a JSON merge patch for `Component`, which its scheme
//!   does not know, exactly as for a custom resource. The server still accepts
//!   strategic merge patches; only the advertisement is withheld.

use serde_json::{Map, Value, json};
use skiff_api::resource::ResourceType;

use super::schemas::{DELETE_OPTIONS, KindSchemas, PATCH, STATUS};
use crate::apiserver::discovery::{Subresource, subresources};

/// The PATCH body types advertised (see the module docs for what is left out
/// and why).
const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// Adds the paths of `rt` to `paths`. `scale` is the `Scale` schema's name,
/// needed when `rt` serves the `scale` subresource.
pub(super) fn add_resource_paths(
    paths: &mut Map<String, Value>,
    rt: &ResourceType,
    schemas: &KindSchemas,
    scale: Option<&str>,
) {
    let ops = Ops::new(rt, schemas);
    let base = rt.group_version_path();
    let plural = rt.plural;
    if rt.namespaced {
        let collection = format!("{base}/namespaces/{{namespace}}/{plural}");
        let item = format!("{collection}/{{name}}");
        paths.insert(
            collection,
            path_item(
                &[namespace_param(), pretty_param()],
                [
                    ("get", ops.list(false)),
                    ("post", ops.create()),
                    ("delete", ops.delete_collection()),
                ],
            ),
        );
        paths.insert(
            format!("{base}/{plural}"),
            path_item(&[pretty_param()], [("get", ops.list(true))]),
        );
        add_item_paths(paths, &ops, &item, true, rt, scale);
    } else {
        let collection = format!("{base}/{plural}");
        let item = format!("{collection}/{{name}}");
        paths.insert(
            collection,
            path_item(
                &[pretty_param()],
                [
                    ("get", ops.list(false)),
                    ("post", ops.create()),
                    ("delete", ops.delete_collection()),
                ],
            ),
        );
        add_item_paths(paths, &ops, &item, false, rt, scale);
    }
}

fn add_item_paths(
    paths: &mut Map<String, Value>,
    ops: &Ops<'_>,
    item: &str,
    namespaced: bool,
    rt: &ResourceType,
    scale: Option<&str>,
) {
    let mut params = vec![name_param(rt.kind)];
    if namespaced {
        params.push(namespace_param());
    }
    params.push(pretty_param());
    paths.insert(
        item.to_string(),
        path_item(
            &params,
            [
                ("get", ops.read(None)),
                ("put", ops.replace(None)),
                ("patch", ops.patch(None)),
                ("delete", ops.delete()),
            ],
        ),
    );
    for sub in subresources(rt) {
        let target = match sub.name {
            "scale" => match scale {
                Some(schema) => Target::new(&sub, schema),
                None => continue,
            },
            _ => Target::new(&sub, &ops.schemas.kind),
        };
        let mut operations = Vec::new();
        for verb in sub.verbs {
            match *verb {
                "get" => operations.push(("get", ops.read(Some(&target)))),
                "update" => operations.push(("put", ops.replace(Some(&target)))),
                "patch" => operations.push(("patch", ops.patch(Some(&target)))),
                _ => {}
            }
        }
        if operations.is_empty() {
            continue;
        }
        paths.insert(
            format!("{item}/{}", sub.name),
            path_item(&params, operations),
        );
    }
}

/// What a subresource path reads and writes.
struct Target<'a> {
    sub: &'a Subresource,
    schema: &'a str,
}

impl<'a> Target<'a> {
    fn new(sub: &'a Subresource, schema: &'a str) -> Self {
        Target { sub, schema }
    }
}

/// The parts of one operation that differ between operations.
struct Operation {
    /// `x-kubernetes-action`: `get`, `list`, `post`, `put`, `patch`, `delete`,
    /// `deletecollection`.
    action: &'static str,
    id: String,
    description: String,
    /// The operation's own parameters (kubectl looks for `fieldValidation` here,
    /// not among the path's).
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

/// Builds the operations of one kind.
struct Ops<'a> {
    rt: &'a ResourceType,
    schemas: &'a KindSchemas,
    /// `AppsV1`, `CoreV1`, `SkiffDevV1alpha1`: the middle of operation ids.
    id_group: String,
    /// `apps_v1`: the operations' tag.
    tag: String,
}

impl<'a> Ops<'a> {
    fn new(rt: &'a ResourceType, schemas: &'a KindSchemas) -> Self {
        let group = if rt.group.is_empty() {
            "core"
        } else {
            rt.group.strip_suffix(".k8s.io").unwrap_or(rt.group)
        };
        let words: Vec<&str> = group.split('.').collect();
        let id_group: String = words.iter().map(|w| upper_first(w)).collect();
        let tag_group: String = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_string()
                } else {
                    upper_first(w)
                }
            })
            .collect();
        Ops {
            rt,
            schemas,
            id_group: format!("{id_group}{}", upper_first(rt.version)),
            tag: format!("{tag_group}_{}", rt.version),
        }
    }

    fn operation_id(&self, verb: &str, suffix: &str) -> String {
        let scope = if self.rt.namespaced { "Namespaced" } else { "" };
        format!("{verb}{}{scope}{}{suffix}", self.id_group, self.rt.kind)
    }

    fn gvk(&self, target: Option<&Target<'_>>) -> Value {
        match target {
            Some(t) => {
                json!({ "group": t.sub.group, "version": t.sub.version, "kind": t.sub.kind })
            }
            None => {
                json!({ "group": self.rt.group, "version": self.rt.version, "kind": self.rt.kind })
            }
        }
    }

    fn operation(&self, op: Operation, target: Option<&Target<'_>>) -> Value {
        let mut out = json!({
            "tags": [self.tag],
            "description": op.description,
            "operationId": op.id,
        });
        if !op.parameters.is_empty() {
            out["parameters"] = Value::Array(op.parameters);
        }
        if let Some(body) = op.body {
            out["requestBody"] = body;
        }
        out["responses"] = op.responses;
        out["x-kubernetes-action"] = json!(op.action);
        out["x-kubernetes-group-version-kind"] = self.gvk(target);
        out
    }

    fn list(&self, all_namespaces: bool) -> Value {
        let kind = self.rt.kind;
        let (id, description) = if all_namespaces {
            (
                format!("list{}{kind}ForAllNamespaces", self.id_group),
                format!("list or watch objects of kind {kind} in all namespaces"),
            )
        } else {
            (
                self.operation_id("list", ""),
                format!("list or watch objects of kind {kind}"),
            )
        };
        self.operation(
            Operation {
                action: "list",
                id,
                description,
                parameters: list_params(),
                body: None,
                responses: responses(&[("200", "OK", Some(&self.schemas.list))]),
            },
            None,
        )
    }

    fn create(&self) -> Value {
        let kind = self.rt.kind;
        self.operation(
            Operation {
                action: "post",
                id: self.operation_id("create", ""),
                description: format!("create a {kind}"),
                parameters: write_params(false),
                body: Some(body(&self.schemas.kind, &["application/json"])),
                responses: responses(&[
                    ("200", "OK", Some(&self.schemas.kind)),
                    ("201", "Created", Some(&self.schemas.kind)),
                    ("202", "Accepted", Some(&self.schemas.kind)),
                ]),
            },
            None,
        )
    }

    fn delete_collection(&self) -> Value {
        let mut params = delete_params();
        params.extend(
            list_params()
                .into_iter()
                .filter(|p| !matches!(p["name"].as_str(), Some("watch" | "allowWatchBookmarks"))),
        );
        params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        self.operation(
            Operation {
                action: "deletecollection",
                id: self.operation_id("deletecollection", ""),
                description: format!("delete collection of {}", self.rt.kind),
                parameters: params,
                body: Some(body(DELETE_OPTIONS, &["application/json"])),
                responses: responses(&[("200", "OK", Some(STATUS))]),
            },
            None,
        )
    }

    fn read(&self, target: Option<&Target<'_>>) -> Value {
        let (suffix, what, schema) = self.describe(target);
        self.operation(
            Operation {
                action: "get",
                id: self.operation_id("read", &suffix),
                description: format!("read {what}the specified {}", self.rt.kind),
                parameters: Vec::new(),
                body: None,
                responses: responses(&[("200", "OK", Some(&schema))]),
            },
            target,
        )
    }

    fn replace(&self, target: Option<&Target<'_>>) -> Value {
        let (suffix, what, schema) = self.describe(target);
        self.operation(
            Operation {
                action: "put",
                id: self.operation_id("replace", &suffix),
                description: format!("replace {what}the specified {}", self.rt.kind),
                parameters: write_params(false),
                body: Some(body(&schema, &["application/json"])),
                responses: responses(&[
                    ("200", "OK", Some(&schema)),
                    ("201", "Created", Some(&schema)),
                ]),
            },
            target,
        )
    }

    fn patch(&self, target: Option<&Target<'_>>) -> Value {
        let (suffix, what, schema) = self.describe(target);
        self.operation(
            Operation {
                action: "patch",
                id: self.operation_id("patch", &suffix),
                description: format!("partially update {what}the specified {}", self.rt.kind),
                parameters: write_params(true),
                body: Some(body(PATCH, PATCH_CONTENT_TYPES)),
                responses: responses(&[
                    ("200", "OK", Some(&schema)),
                    ("201", "Created", Some(&schema)),
                ]),
            },
            target,
        )
    }

    fn delete(&self) -> Value {
        self.operation(
            Operation {
                action: "delete",
                id: self.operation_id("delete", ""),
                description: format!("delete a {}", self.rt.kind),
                parameters: delete_params(),
                body: Some(body(DELETE_OPTIONS, &["application/json"])),
                responses: responses(&[
                    ("200", "OK", Some(STATUS)),
                    ("202", "Accepted", Some(STATUS)),
                ]),
            },
            None,
        )
    }

    /// Operation id suffix, description prefix and schema of a target.
    fn describe(&self, target: Option<&Target<'_>>) -> (String, String, String) {
        match target {
            Some(t) => (
                upper_first(t.sub.name),
                format!("{} of ", t.sub.name),
                t.schema.to_string(),
            ),
            None => (String::new(), String::new(), self.schemas.kind.clone()),
        }
    }
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn path_item<'a>(
    parameters: &[Value],
    operations: impl IntoIterator<Item = (&'a str, Value)>,
) -> Value {
    let mut item = Map::new();
    for (method, op) in operations {
        item.insert(method.to_string(), op);
    }
    item.insert("parameters".to_string(), Value::Array(parameters.to_vec()));
    Value::Object(item)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(schema: &str, content_types: &[&str]) -> Value {
    let content: Map<String, Value> = content_types
        .iter()
        .map(|ct| (ct.to_string(), json!({ "schema": schema_ref(schema) })))
        .collect();
    json!({ "content": content, "required": true })
}

fn responses(codes: &[(&str, &str, Option<&str>)]) -> Value {
    let mut out = Map::new();
    for (code, description, schema) in codes {
        let mut response = json!({ "description": description });
        if let Some(schema) = schema {
            response["content"] = json!({ "application/json": { "schema": schema_ref(schema) } });
        }
        out.insert(code.to_string(), response);
    }
    out.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": { "type": ty, "uniqueItems": true },
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn name_param(kind: &str) -> Value {
    param("name", "path", "string", &format!("name of the {kind}"))
}

fn namespace_param() -> Value {
    param(
        "namespace",
        "path",
        "string",
        "object name and auth scope, such as for teams and projects",
    )
}

fn pretty_param() -> Value {
    param(
        "pretty",
        "query",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

fn dry_run_param() -> Value {
    param(
        "dryRun",
        "query",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values: All (process every stage of the request without persisting it).",
    )
}

/// The parameters of create and replace, and with `force` of patch.
fn write_params(is_patch: bool) -> Vec<Value> {
    let mut params = vec![
        dry_run_param(),
        param(
            "fieldManager",
            "query",
            "string",
            "A name for the actor making these changes, recorded in managedFields.",
        ),
        param(
            "fieldValidation",
            "query",
            "string",
            "How to treat fields the object's schema does not define, or that are duplicated: Ignore (drop them silently), Warn (drop them and answer with a warning for each), or Strict (reject the request with an error naming them).",
        ),
    ];
    if is_patch {
        params.push(param(
            "force",
            "query",
            "boolean",
            "For apply patches: take ownership of fields that other managers own instead of failing with a conflict. Must be unset for other patch types.",
        ));
    }
    params
}

fn list_params() -> Vec<Value> {
    vec![
        param(
            "allowWatchBookmarks",
            "query",
            "boolean",
            "Ask a watch for BOOKMARK events; the server may send them or not.",
        ),
        param(
            "continue",
            "query",
            "string",
            "The continue token of a previous list call with a limit, to fetch the next page.",
        ),
        param(
            "fieldSelector",
            "query",
            "string",
            "Restrict the returned objects by their fields. Defaults to everything.",
        ),
        param(
            "labelSelector",
            "query",
            "string",
            "Restrict the returned objects by their labels. Defaults to everything.",
        ),
        param(
            "limit",
            "query",
            "integer",
            "The most objects to return; a continue token in the list metadata fetches the rest.",
        ),
        param(
            "resourceVersion",
            "query",
            "string",
            "The resource version the list must be at least as new as (or, for a watch, start after).",
        ),
        param(
            "resourceVersionMatch",
            "query",
            "string",
            "How resourceVersion applies to a list: NotOlderThan or Exact.",
        ),
        param(
            "sendInitialEvents",
            "query",
            "boolean",
            "With watch=true, start the watch with synthetic ADDED events for the current objects.",
        ),
        param(
            "timeoutSeconds",
            "query",
            "integer",
            "Timeout for the list or watch call.",
        ),
        param(
            "watch",
            "query",
            "boolean",
            "Watch for changes and return them as a stream of add, update and remove notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run_param(),
        param(
            "gracePeriodSeconds",
            "query",
            "integer",
            "Seconds before the object should be deleted; zero means delete immediately.",
        ),
        param(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "query",
            "boolean",
            "Delete an object that cannot be read from storage. Unsafe; defaults to false.",
        ),
        param(
            "orphanDependents",
            "query",
            "boolean",
            "Deprecated: use propagationPolicy.",
        ),
        param(
            "propagationPolicy",
            "query",
            "string",
            "Whether and how garbage collection is performed: Orphan, Background or Foreground.",
        ),
    ]
}
