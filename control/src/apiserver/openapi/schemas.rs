//! `components.schemas` of a group version's OpenAPI v3 document.
//!
//! The Kubernetes kinds' schemas come from `k8s-openapi`'s `schemars` feature,
//! which names every schema as Kubernetes does (`io.k8s.api.apps.v1.Deployment`)
//! and, with schemars' OpenAPI 3 settings, writes `$ref`s as
//! `#/components/schemas/<name>` and wraps a `$ref` with a description in
//! `allOf`, as the Kubernetes API server does. What `k8s-openapi` leaves out is
//! added here: `x-kubernetes-group-version-kind` on each served kind (`kubectl
//! explain` finds a kind's schema by it), the `List` kinds, the list and patch
//! extensions of [`LIST_FIELDS`], and the upstream shapes of `IntOrString` and
//! `Quantity`. Skiff's own `Component` is written by hand.

use k8s_openapi::Resource;
use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, discovery, networking, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};
use skiff_api::resource::{ResourceType, SKIFF_GROUP};

/// Schema name of `Status`, returned by deletes and errors.
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// Schema name of `DeleteOptions`, the body of a delete.
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// Schema name of `Patch`, the body of a PATCH.
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const COMPONENT: &str = "dev.skiff.v1alpha1.Component";
const COMPONENT_SPEC: &str = "dev.skiff.v1alpha1.ComponentSpec";

/// List and patch metadata of one array (or, for `retainKeys`, object) field:
/// `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`,
/// `x-kubernetes-list-type` and `x-kubernetes-list-map-keys` as the Kubernetes
/// types declare them (`patchStrategy`/`patchMergeKey` tags, `+listType` markers).
struct ListField {
    schema: &'static str,
    property: &'static str,
    patch_strategy: Option<&'static str>,
    merge_key: Option<&'static str>,
    list_type: Option<&'static str>,
    map_keys: &'static [&'static str],
}

const fn merge(schema: &'static str, property: &'static str, key: &'static str) -> ListField {
    ListField {
        schema,
        property,
        patch_strategy: Some("merge"),
        merge_key: Some(key),
        list_type: None,
        map_keys: &[],
    }
}

const fn with_strategy(mut field: ListField, strategy: &'static str) -> ListField {
    field.patch_strategy = Some(strategy);
    field
}

const fn list_map(mut field: ListField, keys: &'static [&'static str]) -> ListField {
    field.list_type = Some("map");
    field.map_keys = keys;
    field
}

const fn list_type(mut field: ListField, list_type: &'static str) -> ListField {
    field.list_type = Some(list_type);
    field
}

const fn no_key(mut field: ListField) -> ListField {
    field.merge_key = None;
    field
}

/// The list and patch extensions of the fields of the served kinds that have
/// them upstream. `k8s-openapi` does not carry them, so they are listed here.
///
/// This table documents the merge semantics for readers of the schema (and
/// `kubectl explain`); it is not what `kubectl apply` computes strategic merge
/// patches from, because Skiff does not advertise
/// `application/strategic-merge-patch+json` in its OpenAPI (see `paths.rs`),
/// so kubectl uses the patch metadata compiled into its own Go types.
const LIST_FIELDS: &[ListField] = &[
    no_key(merge(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "",
    )),
    merge(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "uid",
    ),
    merge(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "key",
        "key",
    ),
    merge("io.k8s.api.core.v1.Container", "env", "name"),
    list_map(
        merge("io.k8s.api.core.v1.Container", "ports", "containerPort"),
        &["containerPort", "protocol"],
    ),
    merge(
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "devicePath",
    ),
    merge("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
    list_type(
        ListField {
            schema: "io.k8s.api.core.v1.Container",
            property: "resizePolicy",
            patch_strategy: None,
            merge_key: None,
            list_type: None,
            map_keys: &[],
        },
        "atomic",
    ),
    merge("io.k8s.api.core.v1.EphemeralContainer", "env", "name"),
    list_map(
        merge(
            "io.k8s.api.core.v1.EphemeralContainer",
            "ports",
            "containerPort",
        ),
        &["containerPort", "protocol"],
    ),
    merge(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "devicePath",
    ),
    merge(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "mountPath",
    ),
    merge("io.k8s.api.core.v1.PodSpec", "containers", "name"),
    merge("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "name"),
    merge("io.k8s.api.core.v1.PodSpec", "hostAliases", "ip"),
    merge("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name"),
    merge("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
    list_map(
        with_strategy(
            merge("io.k8s.api.core.v1.PodSpec", "resourceClaims", "name"),
            "merge,retainKeys",
        ),
        &["name"],
    ),
    list_map(
        merge("io.k8s.api.core.v1.PodSpec", "schedulingGates", "name"),
        &["name"],
    ),
    list_map(
        merge(
            "io.k8s.api.core.v1.PodSpec",
            "topologySpreadConstraints",
            "topologyKey",
        ),
        &["topologyKey", "whenUnsatisfiable"],
    ),
    with_strategy(
        merge("io.k8s.api.core.v1.PodSpec", "volumes", "name"),
        "merge,retainKeys",
    ),
    merge("io.k8s.api.core.v1.PodStatus", "conditions", "type"),
    merge("io.k8s.api.core.v1.PodStatus", "hostIPs", "ip"),
    merge("io.k8s.api.core.v1.PodStatus", "podIPs", "ip"),
    list_map(
        with_strategy(
            merge(
                "io.k8s.api.core.v1.PodStatus",
                "resourceClaimStatuses",
                "name",
            ),
            "merge,retainKeys",
        ),
        &["name"],
    ),
    list_map(
        merge("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
        &["port", "protocol"],
    ),
    list_map(
        merge("io.k8s.api.core.v1.ServiceStatus", "conditions", "type"),
        &["type"],
    ),
    merge("io.k8s.api.core.v1.ServiceAccount", "secrets", "name"),
    no_key(merge("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "")),
    merge("io.k8s.api.core.v1.NodeStatus", "addresses", "type"),
    merge("io.k8s.api.core.v1.NodeStatus", "conditions", "type"),
    merge("io.k8s.api.core.v1.NamespaceStatus", "conditions", "type"),
    merge(
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "type",
    ),
    ListField {
        schema: "io.k8s.api.apps.v1.DeploymentSpec",
        property: "strategy",
        patch_strategy: Some("retainKeys"),
        merge_key: None,
        list_type: None,
        map_keys: &[],
    },
    merge("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
    merge("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "type"),
    merge("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "type"),
    merge("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "type"),
    list_type(
        merge("io.k8s.api.batch.v1.JobStatus", "conditions", "type"),
        "atomic",
    ),
    list_map(
        merge(
            "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
            "conditions",
            "type",
        ),
        &["type"],
    ),
];

/// Names of a served kind's schema and of its list's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KindSchemas {
    /// e.g. `io.k8s.api.apps.v1.Deployment`.
    pub kind: String,
    /// e.g. `io.k8s.api.apps.v1.DeploymentList`.
    pub list: String,
}

/// Collects the schemas one group version's document needs.
pub(super) struct SchemaSet {
    generator: SchemaGenerator,
    /// Hand-written and post-processed schemas, added after generation.
    extra: Map<String, Value>,
    /// (schema name, group, version, kind) to tag with
    /// `x-kubernetes-group-version-kind`.
    gvks: Vec<(String, &'static str, &'static str, String)>,
}

impl SchemaSet {
    /// A set with the schemas every document references: `Status`,
    /// `DeleteOptions` (tagged with the document's group version) and `Patch`.
    pub(super) fn new(group: &'static str, version: &'static str) -> Self {
        let mut set = SchemaSet {
            generator: SchemaSettings::openapi3().into_generator(),
            extra: Map::new(),
            gvks: Vec::new(),
        };
        set.add::<meta::Status>();
        set.add::<meta::DeleteOptions>();
        set.add::<meta::Patch>();
        set.gvks
            .push((STATUS.to_string(), "", "v1", "Status".to_string()));
        set.gvks.push((
            DELETE_OPTIONS.to_string(),
            group,
            version,
            "DeleteOptions".to_string(),
        ));
        set
    }

    /// Adds the schemas of a served kind and of its list, or `None` if Skiff
    /// has no schema for it.
    pub(super) fn add_kind(&mut self, rt: &'static ResourceType) -> Option<KindSchemas> {
        let kind = if rt.group == SKIFF_GROUP && rt.kind == "Component" {
            self.extra.insert(COMPONENT.to_string(), component_schema());
            self.extra
                .insert(COMPONENT_SPEC.to_string(), component_spec_schema());
            self.add::<meta::ObjectMeta>();
            COMPONENT.to_string()
        } else {
            self.add_k8s_kind(rt)?
        };
        let list = format!("{kind}List");
        self.add::<meta::ListMeta>();
        self.extra.insert(list.clone(), list_schema(rt.kind, &kind));
        self.gvks
            .push((kind.clone(), rt.group, rt.version, rt.kind.to_string()));
        self.gvks.push((
            list.clone(),
            rt.group,
            rt.version,
            format!("{}List", rt.kind),
        ));
        Some(KindSchemas { kind, list })
    }

    /// Adds `autoscaling/v1` `Scale`, the object of the `scale` subresource,
    /// and returns its schema name.
    pub(super) fn add_scale(&mut self) -> String {
        let name = self.add::<autoscaling::v1::Scale>();
        if !self.gvks.iter().any(|(n, ..)| *n == name) {
            self.gvks
                .push((name.clone(), "autoscaling", "v1", "Scale".to_string()));
        }
        name
    }

    /// The finished `components.schemas`, names sorted.
    pub(super) fn finish(mut self) -> Map<String, Value> {
        let mut schemas = self.generator.take_definitions(true);
        schemas.append(&mut self.extra);
        for (name, group, version, kind) in &self.gvks {
            if let Some(Value::Object(schema)) = schemas.get_mut(name) {
                schema.insert(
                    "x-kubernetes-group-version-kind".to_string(),
                    json!([{ "group": group, "kind": kind, "version": version }]),
                );
                // k8s-openapi makes `metadata` required because its Rust field
                // is not optional; Kubernetes does not.
                if let Some(Value::Array(required)) = schema.get_mut("required") {
                    required.retain(|r| r != "metadata");
                    if required.is_empty() {
                        schema.remove("required");
                    }
                }
            }
        }
        upstream_scalars(&mut schemas);
        for field in LIST_FIELDS {
            let Some(property) = schemas
                .get_mut(field.schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(field.property))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            if let Some(strategy) = field.patch_strategy {
                property.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            }
            if let Some(key) = field.merge_key {
                property.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
            if let Some(list_type) = field.list_type {
                property.insert("x-kubernetes-list-type".into(), json!(list_type));
            }
            if !field.map_keys.is_empty() {
                property.insert("x-kubernetes-list-map-keys".into(), json!(field.map_keys));
            }
        }
        schemas.sort_keys();
        schemas
    }

    fn add<T: JsonSchema>(&mut self) -> String {
        let _: Schema = self.generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }

    /// The `k8s-openapi` type whose group, version and kind are `rt`'s.
    fn add_k8s_kind(&mut self, rt: &ResourceType) -> Option<String> {
        macro_rules! first_match {
            ($($t:ty),* $(,)?) => {
                $(
                    if <$t as Resource>::GROUP == rt.group
                        && <$t as Resource>::VERSION == rt.version
                        && <$t as Resource>::KIND == rt.kind
                    {
                        return Some(self.add::<$t>());
                    }
                )*
            };
        }
        first_match!(
            core::v1::Namespace,
            core::v1::Node,
            core::v1::Pod,
            core::v1::Service,
            core::v1::Endpoints,
            core::v1::Event,
            core::v1::ConfigMap,
            core::v1::Secret,
            core::v1::ServiceAccount,
            core::v1::PersistentVolume,
            core::v1::PersistentVolumeClaim,
            core::v1::ResourceQuota,
            core::v1::LimitRange,
            apps::v1::Deployment,
            apps::v1::ReplicaSet,
            apps::v1::DaemonSet,
            apps::v1::StatefulSet,
            batch::v1::Job,
            batch::v1::CronJob,
            autoscaling::v2::HorizontalPodAutoscaler,
            networking::v1::Ingress,
            networking::v1::IngressClass,
            discovery::v1::EndpointSlice,
            coordination::v1::Lease,
            rbac::v1::Role,
            rbac::v1::RoleBinding,
            rbac::v1::ClusterRole,
            rbac::v1::ClusterRoleBinding,
        );
        None
    }
}

/// `IntOrString` and `Quantity` as the Kubernetes API server's OpenAPI v3
/// publishes them (`oneOf` their JSON types). `k8s-openapi` marks both with
/// the CRD-only `x-kubernetes-int-or-string`, which is wrong for `Quantity`
/// (it may be a decimal number).
fn upstream_scalars(schemas: &mut Map<String, Value>) {
    let shapes = [
        (
            INT_OR_STRING,
            json!({ "format": "int-or-string", "oneOf": [{ "type": "integer" }, { "type": "string" }] }),
        ),
        (
            QUANTITY,
            json!({ "oneOf": [{ "type": "string" }, { "type": "number" }] }),
        ),
    ];
    for (name, shape) in shapes {
        let Some(Value::Object(schema)) = schemas.get_mut(name) else {
            continue;
        };
        schema.remove("x-kubernetes-int-or-string");
        if let Value::Object(shape) = shape {
            schema.extend(shape);
        }
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A `$ref` with its own description, as Kubernetes writes one.
fn described_ref(name: &str, description: &str) -> Value {
    json!({ "description": description, "allOf": [reference(name)] })
}

fn type_meta_properties() -> Map<String, Value> {
    let mut props = Map::new();
    props.insert(
        "apiVersion".into(),
        json!({
            "description": "APIVersion defines the versioned schema of this representation of an object. Servers convert recognized schemas to the latest internal value and may reject unrecognized values.",
            "type": "string",
        }),
    );
    props.insert(
        "kind".into(),
        json!({
            "description": "Kind is a string value representing the REST resource this object represents. Servers may infer it from the endpoint the client submits requests to. Cannot be updated. In CamelCase.",
            "type": "string",
        }),
    );
    props
}

/// `<Kind>List`: `items` of the kind and the list's metadata.
fn list_schema(kind: &str, kind_schema: &str) -> Value {
    let mut props = type_meta_properties();
    props.insert(
        "items".into(),
        json!({
            "description": format!("List of {kind} objects."),
            "type": "array",
            "items": reference(kind_schema),
        }),
    );
    props.insert(
        "metadata".into(),
        described_ref(LIST_META, "Standard list metadata."),
    );
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": props,
        "required": ["items"],
    })
}

/// `skiff.dev/v1alpha1` `Component`, after `skiff_api::component`.
fn component_schema() -> Value {
    let mut props = type_meta_properties();
    props.insert(
        "metadata".into(),
        described_ref(
            OBJECT_META,
            "Standard object's metadata. The name is `<name>.<tag>` of the component reference.",
        ),
    );
    props.insert(
        "spec".into(),
        described_ref(
            COMPONENT_SPEC,
            "What the component is: its reference, digest, size and interfaces.",
        ),
    );
    props.insert(
        "status".into(),
        json!({
            "description": "Most recently observed status of the component, written by the control plane.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        }),
    );
    json!({
        "description": "Component is a WebAssembly component pushed to the cluster, stored once by the sha256 of its bytes. Pods name it in containers[].image as `name:tag` or `sha256:<hex>`.",
        "type": "object",
        "properties": props,
    })
}

fn component_spec_schema() -> Value {
    json!({
        "description": "ComponentSpec records which digest a `name:tag` reference points at and what the component exports.",
        "type": "object",
        "properties": {
            "digest": {
                "description": "`sha256:<hex>` of the component's bytes.",
                "type": "string",
                "pattern": "^sha256:[0-9a-f]{64}$",
            },
            "exports": {
                "description": "Interfaces the component exports, e.g. `wasi:http/incoming-handler@0.2.0`.",
                "type": "array",
                "items": { "type": "string" },
                "x-kubernetes-list-type": "atomic",
            },
            "imports": {
                "description": "Interfaces the component imports.",
                "type": "array",
                "items": { "type": "string" },
                "x-kubernetes-list-type": "atomic",
            },
            "kind": {
                "description": "What the component is, read from its exports: `Http` exports wasi:http/incoming-handler (an instance per request), `Command` exports wasi:cli/run (runs until it exits), `Unknown` exports neither and cannot run in a pod.",
                "type": "string",
                "enum": ["Command", "Http", "Unknown"],
            },
            "name": {
                "description": "Repository-style name, a DNS label (`hello`).",
                "type": "string",
            },
            "size": {
                "description": "Size of the component in bytes.",
                "type": "integer",
                "format": "int64",
                "minimum": 0,
            },
            "tag": {
                "description": "Tag (`v1`, `latest`).",
                "type": "string",
            },
        },
        "required": ["digest", "exports", "kind", "name", "size", "tag"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::RESOURCES;

    #[test]
    fn every_served_kind_has_a_schema() {
        for rt in RESOURCES {
            let mut set = SchemaSet::new(rt.group, rt.version);
            let names = set
                .add_kind(rt)
                .unwrap_or_else(|| panic!("no schema for {}", rt.qualified_kind()));
            assert!(names.kind.ends_with(&format!(".{}", rt.kind)), "{names:?}");
            let schemas = set.finish();
            let kind = &schemas[&names.kind];
            assert_eq!(
                kind["x-kubernetes-group-version-kind"],
                json!([{ "group": rt.group, "kind": rt.kind, "version": rt.version }])
            );
            assert!(kind["properties"]["metadata"].is_object());
            assert!(
                !kind
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.contains(&json!("metadata")))
            );
            assert_eq!(
                schemas[&names.list]["x-kubernetes-group-version-kind"][0]["kind"],
                format!("{}List", rt.kind)
            );
        }
    }

    #[test]
    fn list_fields_name_existing_properties() {
        let mut set = SchemaSet::new("", "v1");
        for rt in RESOURCES {
            set.add_kind(rt).unwrap();
        }
        set.add_scale();
        let schemas = set.finish();
        for field in LIST_FIELDS {
            let property = schemas
                .get(field.schema)
                .and_then(|s| s["properties"].get(field.property))
                .unwrap_or_else(|| panic!("{}.{} not generated", field.schema, field.property));
            if let Some(strategy) = field.patch_strategy {
                assert_eq!(property["x-kubernetes-patch-strategy"], strategy);
            }
        }
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let quantity = &schemas[QUANTITY];
        assert!(quantity.get("x-kubernetes-int-or-string").is_none());
        assert_eq!(quantity["oneOf"][1]["type"], "number");
    }
}
