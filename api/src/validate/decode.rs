//! Typed decoding: does the body fit its kind's schema?
//!
//! Kubernetes decodes every body into its Go type before anything else; a value of
//! the wrong JSON type is a 400 BadRequest, and fields the type does not declare
//! are handled per the request's `fieldValidation` parameter. Skiff does the same
//! with the `k8s-openapi` types: `serde_path_to_error` names the field a wrong
//! type sits at, and `serde_ignored` sees the fields the type ignored. What is
//! stored is the decoded object, so its quantities are rewritten in canonical form
//! ([`crate::protobuf::quantities`]).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume,
    PersistentVolumeClaim, Pod, PodStatus, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::component::ComponentSpec;
use crate::protobuf::quantities::canonicalize_quantities;
use crate::resource::{ResourceType, SKIFF_GROUP};
use crate::status::{ApiError, Details, FieldError, Reason};

/// What to do with fields the kind does not declare: Kubernetes'
/// `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Accept the object and report each one in a `Warning` header. The server's
    /// default when the parameter is absent, as in Kubernetes (`kubectl` itself
    /// sends `Strict` unless told `--validate=false`/`warn`).
    #[default]
    Warn,
    /// Refuse the object with 400 BadRequest.
    Strict,
}

impl FieldValidation {
    /// Parses the `fieldValidation` parameter; absent or empty means [`Warn`].
    /// Any other value is the cause Kubernetes reports for it; wrap it with
    /// [`FieldValidation::options_error`].
    ///
    /// [`Warn`]: FieldValidation::Warn
    pub fn parse(param: Option<&str>) -> Result<Self, Box<FieldError>> {
        match param.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(Box::new(FieldError::not_supported(
                "fieldValidation",
                other,
                &["", "Ignore", "Strict", "Warn"],
            ))),
        }
    }

    /// The 422 Kubernetes answers for a bad query parameter, e.g.
    /// `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: ...`;
    /// `options_kind` is `CreateOptions`, `UpdateOptions` or `PatchOptions`.
    pub fn options_error(options_kind: &str, cause: FieldError) -> ApiError {
        let mut e = ApiError::new(
            Reason::Invalid,
            format!("{options_kind}.meta.k8s.io \"\" is invalid: {cause}"),
        );
        e.details = Some(Box::new(Details {
            name: String::new(),
            group: "meta.k8s.io".to_string(),
            kind: options_kind.to_string(),
            causes: vec![cause],
            retry_after_seconds: None,
        }));
        e
    }
}

/// Checks that `obj` decodes as an object of `rt`: `apiVersion`/`kind` match,
/// every field has the right JSON type, and fields the kind does not declare are
/// handled per `mode`. Returns the warnings for a `Warning` header
/// (`unknown field "spec.replicaz"`), or a 400 BadRequest naming the field.
pub fn decode_check(
    rt: &ResourceType,
    obj: &Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let decoded = decode_typed(rt, obj)?;
    let unknown: Vec<String> = decoded.unknown.iter().map(|u| u.path.clone()).collect();
    unknown_field_outcome(rt, object_name(obj), &unknown, mode)
}

/// [`decode_check`] and [`prune_unknown_fields`] with one decode: checks the
/// object, refuses unknown fields under `Strict`, and otherwise removes them and
/// returns the warnings. Then, as Kubernetes stores the decoded Go object,
/// every `resource.Quantity` of the object is rewritten in canonical form
/// (`memory: 1048576` is stored as `"1048576"`, `cpu: "1000m"` as `"1"`).
pub fn decode_and_prune(
    rt: &ResourceType,
    obj: &mut Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let unknown = decode_typed(rt, obj)?.unknown;
    let paths: Vec<String> = unknown.iter().map(|u| u.path.clone()).collect();
    let warnings = unknown_field_outcome(rt, object_name(obj), &paths, mode)?;
    for field in &unknown {
        remove_at(obj, &field.segments);
    }
    canonicalize_quantities(rt, obj);
    Ok(warnings)
}

/// Whether a write through the `status` subresource of `rt` need only check
/// the status it brings: the kind's rules read nothing of `status` (a Pod's
/// are all about its spec), and the rest of the object is the stored one,
/// which was checked when it was written.
pub fn status_checked_alone(rt: &ResourceType) -> bool {
    matches!((rt.group, rt.version, rt.kind), ("", "v1", "Pod"))
}

/// [`decode_and_prune`] of `obj["status"]` alone, for a kind where
/// [`status_checked_alone`] holds: the status must decode as the kind's status
/// type; its unknown fields are refused or pruned per `mode`, with paths from
/// the object (`status.phase`). Other kinds get the whole-object check.
/// Either way the object's quantities are then in canonical form.
pub fn decode_and_prune_status(
    rt: &ResourceType,
    obj: &mut Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    if !status_checked_alone(rt) {
        return decode_and_prune(rt, obj, mode);
    }
    let warnings = decode_and_prune_status_alone(rt, obj, mode)?;
    canonicalize_quantities(rt, obj);
    Ok(warnings)
}

fn decode_and_prune_status_alone(
    rt: &ResourceType,
    obj: &mut Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    check_type_meta(rt, obj)?;
    let Some(status) = obj.get("status") else {
        return Ok(Vec::new());
    };
    let under_status = |mut segments: Vec<Segment>| {
        segments.insert(0, Segment::Key("status".to_string()));
        segments
    };
    let unknown = match decode_value::<PodStatus>(status) {
        Ok((_, unknown)) => unknown,
        // Go leaves a missing required field at its zero value, as the whole
        // decode does for status (condition timestamps).
        Err(failure) if failure.missing_field.is_some() => return Ok(Vec::new()),
        Err(failure) => {
            let failure = Failure {
                segments: under_status(failure.segments),
                ..failure
            };
            return Err(failure_error(rt, obj, failure));
        }
    };
    let unknown: Vec<UnknownField> = unknown
        .into_iter()
        .map(|u| {
            let segments = under_status(u.segments);
            UnknownField {
                path: render_path(&segments),
                segments,
            }
        })
        .collect();
    let paths: Vec<String> = unknown.iter().map(|u| u.path.clone()).collect();
    let warnings = unknown_field_outcome(rt, object_name(obj), &paths, mode)?;
    for field in &unknown {
        remove_at(obj, &field.segments);
    }
    Ok(warnings)
}

/// What `fieldValidation` makes of the unknown fields found: nothing, warnings,
/// or a 400 naming them.
fn unknown_field_outcome(
    rt: &ResourceType,
    name: &str,
    unknown: &[String],
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    match mode {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect()),
        FieldValidation::Strict if unknown.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => {
            let causes: Vec<FieldError> = unknown.iter().map(FieldError::unknown).collect();
            let list: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
            let mut e = ApiError::bad_fields(rt, name, causes);
            e.message = format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                list.join(", ")
            );
            Err(e)
        }
    }
}

/// Removes the fields `rt` does not declare from `obj`, as Kubernetes drops them
/// when it decodes a body, and returns their paths. Fails like [`decode_check`]
/// when the object does not decode at all.
pub fn prune_unknown_fields(rt: &ResourceType, obj: &mut Value) -> Result<Vec<String>, ApiError> {
    let unknown = decode_typed(rt, obj)?.unknown;
    for field in &unknown {
        remove_at(obj, &field.segments);
    }
    Ok(unknown.into_iter().map(|u| u.path).collect())
}

/// An object decoded into its kind's type.
pub(crate) struct Decoded {
    pub object: Typed,
    pub unknown: Vec<UnknownField>,
}

/// A field the kind's type does not declare.
pub(crate) struct UnknownField {
    /// In Kubernetes' notation: `spec.template.spec.containers[0].imagez`.
    pub path: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The typed form of each kind Skiff serves.
pub(crate) enum Typed {
    Namespace(Box<Namespace>),
    Node(Box<Node>),
    Pod(Box<Pod>),
    Service(Box<Service>),
    Endpoints(Box<Endpoints>),
    Event(Box<Event>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    ServiceAccount(Box<ServiceAccount>),
    PersistentVolume(Box<PersistentVolume>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
    ResourceQuota(Box<ResourceQuota>),
    LimitRange(Box<LimitRange>),
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    DaemonSet(Box<DaemonSet>),
    StatefulSet(Box<StatefulSet>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    HorizontalPodAutoscaler(Box<HorizontalPodAutoscaler>),
    Ingress(Box<Ingress>),
    IngressClass(Box<IngressClass>),
    EndpointSlice(Box<EndpointSlice>),
    Lease(Box<Lease>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Component(Box<ComponentObject>),
    /// A kind without a schema here: only its metadata is checked.
    Other(Box<MetadataOnly>),
}

/// Skiff's Component as its API form: `spec` is [`ComponentSpec`]; `status` is
/// written by the control plane and not checked here.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ComponentObject {
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<ComponentSpec>,
    #[serde(default, rename = "status")]
    _status: Option<Value>,
}

/// The metadata of an object whose kind has no schema here.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MetadataOnly {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

impl Typed {
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Typed::Namespace(o) => &o.metadata,
            Typed::Node(o) => &o.metadata,
            Typed::Pod(o) => &o.metadata,
            Typed::Service(o) => &o.metadata,
            Typed::Endpoints(o) => &o.metadata,
            Typed::Event(o) => &o.metadata,
            Typed::ConfigMap(o) => &o.metadata,
            Typed::Secret(o) => &o.metadata,
            Typed::ServiceAccount(o) => &o.metadata,
            Typed::PersistentVolume(o) => &o.metadata,
            Typed::PersistentVolumeClaim(o) => &o.metadata,
            Typed::ResourceQuota(o) => &o.metadata,
            Typed::LimitRange(o) => &o.metadata,
            Typed::Deployment(o) => &o.metadata,
            Typed::ReplicaSet(o) => &o.metadata,
            Typed::DaemonSet(o) => &o.metadata,
            Typed::StatefulSet(o) => &o.metadata,
            Typed::Job(o) => &o.metadata,
            Typed::CronJob(o) => &o.metadata,
            Typed::HorizontalPodAutoscaler(o) => &o.metadata,
            Typed::Ingress(o) => &o.metadata,
            Typed::IngressClass(o) => &o.metadata,
            Typed::EndpointSlice(o) => &o.metadata,
            Typed::Lease(o) => &o.metadata,
            Typed::Role(o) => &o.metadata,
            Typed::RoleBinding(o) => &o.metadata,
            Typed::ClusterRole(o) => &o.metadata,
            Typed::ClusterRoleBinding(o) => &o.metadata,
            Typed::Component(o) => &o.metadata,
            Typed::Other(o) => &o.metadata,
        }
    }
}

/// The name to put in errors about `obj`.
pub(crate) fn object_name(obj: &Value) -> &str {
    crate::meta::name(obj)
        .filter(|n| !n.is_empty())
        .or_else(|| crate::meta::generate_name(obj))
        .unwrap_or("")
}

/// Decodes `obj` as an object of `rt`, collecting the fields it does not declare.
pub(crate) fn decode_typed(rt: &ResourceType, obj: &Value) -> Result<Decoded, ApiError> {
    check_type_meta(rt, obj)?;
    // Byte fields are base64 in JSON; they are checked with Go's decoder rules
    // (which k8s-openapi's stricter decoder would not match) and left out of
    // the typed decode.
    let byte_field = match (rt.group, rt.kind) {
        ("", "Secret") => Some("data"),
        ("", "ConfigMap") => Some("binaryData"),
        _ => None,
    };
    let stripped;
    let body = match byte_field {
        Some(field) => {
            check_base64_map(rt, obj, field)?;
            let mut copy = obj.clone();
            if let Some(map) = copy.as_object_mut() {
                map.shift_remove(field);
            }
            stripped = copy;
            &stripped
        }
        None => obj,
    };
    match decode_kind(rt, body) {
        Ok(decoded) => Ok(decoded),
        // Go leaves a missing required field at its zero value; k8s-openapi
        // refuses a few (condition timestamps in status). Status is the
        // controllers' to write, so retry without it before giving up.
        Err(failure) if failure.missing_field.is_some() && body.get("status").is_some() => {
            let mut copy = body.clone();
            if let Some(map) = copy.as_object_mut() {
                map.shift_remove("status");
            }
            decode_kind(rt, &copy).map_err(|f| failure_error(rt, obj, f))
        }
        Err(failure) => Err(failure_error(rt, obj, failure)),
    }
}

fn check_type_meta(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = object_name(obj);
    let Some(map) = obj.as_object() else {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the object must be a JSON object, not {}",
            rt.kind,
            rt.version,
            rt.kind,
            json_type(obj)
        )));
    };
    // An absent apiVersion or kind is taken from the request path, as Kubernetes does.
    match map.get("apiVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v.is_empty() || *v == rt.api_version() => {}
        Some(Value::String(v)) => {
            let mut e = ApiError::bad_fields(
                rt,
                name,
                vec![FieldError::invalid(
                    "apiVersion",
                    v.as_str(),
                    format!("must be {:?}", rt.api_version()),
                )],
            );
            e.message = format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                rt.api_version()
            );
            return Err(e);
        }
        Some(other) => {
            return Err(ApiError::bad_fields(
                rt,
                name,
                vec![FieldError::type_invalid(
                    "apiVersion",
                    other.clone(),
                    "expected string",
                )],
            ));
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(k)) if k.is_empty() || k == rt.kind => Ok(()),
        Some(Value::String(k)) => Err(ApiError::bad_fields(
            rt,
            name,
            vec![FieldError::invalid(
                "kind",
                k.as_str(),
                format!(
                    "must be {:?} to be created or updated as {}",
                    rt.kind,
                    rt.resource_id()
                ),
            )],
        )),
        Some(other) => Err(ApiError::bad_fields(
            rt,
            name,
            vec![FieldError::type_invalid(
                "kind",
                other.clone(),
                "expected string",
            )],
        )),
    }
}

/// Checks a `map[string][]byte` field the way Go's JSON decoder would.
fn check_base64_map(rt: &ResourceType, obj: &Value, field: &str) -> Result<(), ApiError> {
    let name = object_name(obj);
    let map = match obj.get(field) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::bad_fields(
                rt,
                name,
                vec![FieldError::type_invalid(
                    field,
                    other.clone(),
                    "expected object",
                )],
            ));
        }
    };
    for (key, value) in map {
        let path = format!("{field}[{key}]");
        match value {
            Value::Null => {}
            Value::String(s) => {
                if let Some(at) = go_base64_error(s.as_bytes()) {
                    let detail = format!("illegal base64 data at input byte {at}");
                    // The value is not echoed: it is usually a secret.
                    let mut e = ApiError::bad_fields(
                        rt,
                        name,
                        vec![FieldError::invalid(&path, "", &detail)],
                    );
                    e.message = format!(
                        "{} in version \"{}\" cannot be handled as a {}: {path}: {detail}",
                        rt.kind, rt.version, rt.kind
                    );
                    return Err(e);
                }
            }
            other => {
                return Err(ApiError::bad_fields(
                    rt,
                    name,
                    vec![FieldError::type_invalid(
                        path,
                        json_type(other),
                        "expected base64-encoded string",
                    )],
                ));
            }
        }
    }
    Ok(())
}

/// Where Go's `base64.StdEncoding` (padded; `\r` and `\n` skipped) would report
/// corrupt input, or `None` when it decodes.
pub(crate) fn go_base64_error(src: &[u8]) -> Option<usize> {
    let is_symbol = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let is_newline = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0;
    loop {
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                return if j == 0 { None } else { Some(si - j) };
            }
            let c = src[si];
            si += 1;
            if is_newline(c) {
                continue;
            }
            if is_symbol(c) {
                j += 1;
                continue;
            }
            if c != b'=' {
                return Some(si - 1);
            }
            // Padding: legal only as the third and fourth, or the fourth symbol.
            match j {
                0 | 1 => return Some(si - 1),
                2 => {
                    while si < src.len() && is_newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Some(src.len());
                    }
                    if src[si] != b'=' {
                        return Some(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            return if si < src.len() { Some(si) } else { None };
        }
    }
}

macro_rules! decode_as {
    ($obj:expr, $variant:ident, $ty:ty) => {
        decode_value::<$ty>($obj).map(|(v, unknown)| Decoded {
            object: Typed::$variant(Box::new(v)),
            unknown,
        })
    };
}

fn decode_kind(rt: &ResourceType, obj: &Value) -> Result<Decoded, Failure> {
    match (rt.group, rt.version, rt.kind) {
        ("", "v1", "Namespace") => decode_as!(obj, Namespace, Namespace),
        ("", "v1", "Node") => decode_as!(obj, Node, Node),
        ("", "v1", "Pod") => decode_as!(obj, Pod, Pod),
        ("", "v1", "Service") => decode_as!(obj, Service, Service),
        ("", "v1", "Endpoints") => decode_as!(obj, Endpoints, Endpoints),
        ("", "v1", "Event") => decode_as!(obj, Event, Event),
        ("", "v1", "ConfigMap") => decode_as!(obj, ConfigMap, ConfigMap),
        ("", "v1", "Secret") => decode_as!(obj, Secret, Secret),
        ("", "v1", "ServiceAccount") => decode_as!(obj, ServiceAccount, ServiceAccount),
        ("", "v1", "PersistentVolume") => decode_as!(obj, PersistentVolume, PersistentVolume),
        ("", "v1", "PersistentVolumeClaim") => {
            decode_as!(obj, PersistentVolumeClaim, PersistentVolumeClaim)
        }
        ("", "v1", "ResourceQuota") => decode_as!(obj, ResourceQuota, ResourceQuota),
        ("", "v1", "LimitRange") => decode_as!(obj, LimitRange, LimitRange),
        ("apps", "v1", "Deployment") => decode_as!(obj, Deployment, Deployment),
        ("apps", "v1", "ReplicaSet") => decode_as!(obj, ReplicaSet, ReplicaSet),
        ("apps", "v1", "DaemonSet") => decode_as!(obj, DaemonSet, DaemonSet),
        ("apps", "v1", "StatefulSet") => decode_as!(obj, StatefulSet, StatefulSet),
        ("batch", "v1", "Job") => decode_as!(obj, Job, Job),
        ("batch", "v1", "CronJob") => decode_as!(obj, CronJob, CronJob),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            decode_as!(obj, HorizontalPodAutoscaler, HorizontalPodAutoscaler)
        }
        ("networking.k8s.io", "v1", "Ingress") => decode_as!(obj, Ingress, Ingress),
        ("networking.k8s.io", "v1", "IngressClass") => decode_as!(obj, IngressClass, IngressClass),
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            decode_as!(obj, EndpointSlice, EndpointSlice)
        }
        ("coordination.k8s.io", "v1", "Lease") => decode_as!(obj, Lease, Lease),
        ("rbac.authorization.k8s.io", "v1", "Role") => decode_as!(obj, Role, Role),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
            decode_as!(obj, RoleBinding, RoleBinding)
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
            decode_as!(obj, ClusterRole, ClusterRole)
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            decode_as!(obj, ClusterRoleBinding, ClusterRoleBinding)
        }
        (SKIFF_GROUP, _, "Component") => decode_as!(obj, Component, ComponentObject),
        _ => {
            // No schema: only metadata can be checked, and only its unknown
            // fields reported.
            decode_value::<MetadataOnly>(obj).map(|(v, unknown)| Decoded {
                object: Typed::Other(Box::new(v)),
                unknown: unknown
                    .into_iter()
                    .filter(|u| u.segments.first() == Some(&Segment::Key("metadata".to_string())))
                    .collect(),
            })
        }
    }
}

/// Why a body did not decode.
struct Failure {
    /// Where, as segments into the body.
    segments: Vec<Segment>,
    /// serde's message, e.g. `invalid type: string "three", expected i32`.
    message: String,
    /// Set when a required field is absent: its name.
    missing_field: Option<String>,
}

fn decode_value<T: DeserializeOwned>(obj: &Value) -> Result<(T, Vec<UnknownField>), Failure> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        let mut segments = Vec::new();
        ignored_segments(&path, &mut segments);
        unknown.push(UnknownField {
            path: render_path(&segments),
            segments,
        });
    };
    // Most bodies decode: try without tracking the path first (the tracker
    // allocates a segment for every key), and decode again with it only to
    // say where a failure is.
    let quick: Result<T, _> = T::deserialize(serde_ignored::Deserializer::new(obj, &mut record));
    if let Ok(v) = quick {
        return Ok((v, unknown));
    }
    unknown.clear();
    let mut ignore = |_: serde_ignored::Path<'_>| {};
    let result: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(obj, &mut ignore));
    match result {
        Ok(v) => Ok((v, unknown)),
        Err(e) => {
            let segments = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => {
                        Some(Segment::Key(variant.clone()))
                    }
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            let message = e.inner().to_string();
            let missing_field = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            Err(Failure {
                segments,
                message,
                missing_field,
            })
        }
    }
}

fn ignored_segments(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
    match path {
        serde_ignored::Path::Root => {}
        serde_ignored::Path::Seq { parent, index } => {
            ignored_segments(parent, out);
            out.push(Segment::Index(*index));
        }
        serde_ignored::Path::Map { parent, key } => {
            ignored_segments(parent, out);
            out.push(Segment::Key(key.clone()));
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_segments(parent, out),
    }
}

/// `spec.containers[0].image`.
fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
        }
    }
    out
}

fn value_at<'a>(obj: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    segments.iter().try_fold(obj, |v, s| match s {
        Segment::Key(k) => v.get(k.as_str()),
        Segment::Index(i) => v.get(*i),
    })
}

fn remove_at(obj: &mut Value, segments: &[Segment]) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut cur = obj;
    for s in parents {
        let next = match s {
            Segment::Key(k) => cur.get_mut(k.as_str()),
            Segment::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    if let (Segment::Key(k), Some(map)) = (last, cur.as_object_mut()) {
        map.shift_remove(k);
    }
}

fn failure_error(rt: &ResourceType, obj: &Value, failure: Failure) -> ApiError {
    let name = object_name(obj);
    if let Some(field) = failure.missing_field {
        let mut segments = failure.segments;
        segments.push(Segment::Key(field));
        return ApiError::invalid(
            rt,
            name,
            vec![FieldError::required(render_path(&segments), "")],
        );
    }
    let path = render_path(&failure.segments);
    let value = value_at(obj, &failure.segments)
        .cloned()
        .unwrap_or(Value::Null);
    let detail = match failure.message.rsplit_once(", expected ") {
        Some((_, expected)) => format!("expected {}", go_type_name(expected)),
        None => failure.message,
    };
    let path = if path.is_empty() {
        "<root>".to_string()
    } else {
        path
    };
    ApiError::bad_fields(
        rt,
        name,
        vec![FieldError::type_invalid(path, value, detail)],
    )
}

/// serde's name for what it expected, in the words of Kubernetes' schema.
fn go_type_name(expected: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" => "int32".to_string(),
        "i64" => "int64".to_string(),
        "u8" | "u16" | "u32" => "uint32".to_string(),
        "u64" => "uint64".to_string(),
        "f32" | "f64" => "number".to_string(),
        "a boolean" => "boolean".to_string(),
        "a string" | "a borrowed string" => "string".to_string(),
        "a sequence" => "array".to_string(),
        "a map" => "object".to_string(),
        "IntOrString" => "integer or string".to_string(),
        "Quantity" => "quantity (a string such as \"500m\" or \"128Mi\", or a number)".to_string(),
        "Time" | "MicroTime" => "RFC 3339 date-time string".to_string(),
        other if other.starts_with("struct ") => "object".to_string(),
        // k8s-openapi's struct visitors expect their type name (`PodSpec`).
        other if !other.is_empty() && other.chars().all(|c| c.is_ascii_alphanumeric()) => {
            "object".to_string()
        }
        other => other.to_string(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "hello:v1", "ports": [{"containerPort": 8080}]}]}
                }
            }
        })
    }

    #[test]
    fn field_validation_parameter() {
        assert_eq!(FieldValidation::parse(None).unwrap(), FieldValidation::Warn);
        assert_eq!(
            FieldValidation::parse(Some("")).unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::parse(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert_eq!(
            FieldValidation::parse(Some("Ignore")).unwrap(),
            FieldValidation::Ignore
        );
        let cause = FieldValidation::parse(Some("strict")).unwrap_err();
        let e = FieldValidation::options_error("CreateOptions", *cause);
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.message,
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        let e = decode_check(rt, &d, FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
        let s = e.to_status();
        assert_eq!(s["reason"], "BadRequest");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueTypeInvalid");
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: spec.replicas: Invalid value: \"three\": expected int32"
        );

        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("http");
        let e = decode_check(rt, &d, FieldValidation::Ignore).unwrap_err();
        assert_eq!(
            e.details.unwrap().causes[0].field,
            "spec.template.spec.containers[0].ports[0].containerPort"
        );

        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"] = json!({"name": "web"});
        let e = decode_check(rt, &d, FieldValidation::Ignore).unwrap_err();
        assert!(
            e.message.ends_with(
                "spec.template.spec.containers: Invalid value: {\"name\":\"web\"}: expected array"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_fields_per_mode() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = deployment();
        d["spec"]["replicaz"] = json!(3);
        d["spec"]["template"]["spec"]["containers"][0]["imagez"] = json!("x");
        d["metadata"]["labelz"] = json!({});

        let e = decode_check(rt, &d, FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"metadata.labelz\", unknown field \"spec.template.spec.containers[0].imagez\", unknown field \"spec.replicaz\""
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][2]["field"], "spec.replicaz");
        assert_eq!(
            s["details"]["causes"][2]["message"],
            "unknown field \"spec.replicaz\""
        );

        let warnings = decode_check(rt, &d, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 3);
        assert_eq!(warnings[2], "unknown field \"spec.replicaz\"");
        assert!(
            decode_check(rt, &d, FieldValidation::Ignore)
                .unwrap()
                .is_empty()
        );
        assert!(
            decode_check(rt, &deployment(), FieldValidation::Strict)
                .unwrap()
                .is_empty()
        );

        let pruned = prune_unknown_fields(rt, &mut d).unwrap();
        assert_eq!(pruned.len(), 3);
        assert_eq!(d, deployment());
    }

    #[test]
    fn type_meta_must_match() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = deployment();
        d["kind"] = json!("Service");
        let e = decode_check(rt, &d, FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(e.details.unwrap().causes[0].field, "kind");

        let mut d = deployment();
        d["apiVersion"] = json!("apps/v1beta1");
        let e = decode_check(rt, &d, FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message,
            "the API version in the data (apps/v1beta1) does not match the expected API version (apps/v1)"
        );
        assert_eq!(e.details.unwrap().causes[0].field, "apiVersion");

        // Absent type meta comes from the request path.
        let mut d = deployment();
        d.as_object_mut().unwrap().remove("kind");
        d.as_object_mut().unwrap().remove("apiVersion");
        assert!(decode_check(rt, &d, FieldValidation::Strict).is_ok());

        let e = decode_check(rt, &json!([1]), FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn secret_data_is_go_base64() {
        let rt = by_kind("v1", "Secret").unwrap();
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                       "data": {"ok": "aGVsbG8=", "also.ok": "aGVs\nbG8=", "bad": "not base64!"}});
        let e = decode_check(rt, &s, FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message,
            "Secret in version \"v1\" cannot be handled as a Secret: data[bad]: illegal base64 data at input byte 3"
        );
        assert_eq!(e.details.unwrap().causes[0].field, "data[bad]");
        let good = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                          "data": {"a": "aGVsbG8="}, "stringData": {"b": "x"}, "type": "Opaque"});
        assert!(
            decode_check(rt, &good, FieldValidation::Strict)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn go_base64_offsets() {
        assert_eq!(go_base64_error(b""), None);
        assert_eq!(go_base64_error(b"YQ=="), None);
        assert_eq!(go_base64_error(b"YWI="), None);
        assert_eq!(go_base64_error(b"YR=="), None); // Go ignores the trailing bits
        assert_eq!(go_base64_error(b"abc"), Some(0));
        assert_eq!(go_base64_error(b"abcde"), Some(4));
        assert_eq!(go_base64_error(b"ab!d"), Some(2));
        assert_eq!(go_base64_error(b"a==="), Some(1));
        assert_eq!(go_base64_error(b"YQ==YQ=="), Some(4));
        assert_eq!(go_base64_error(b"YQ="), Some(3));
    }

    #[test]
    fn component_spec_is_checked() {
        let rt = by_kind("skiff.dev/v1alpha1", "Component").unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let c = json!({"apiVersion": "skiff.dev/v1alpha1", "kind": "Component", "metadata": {"name": "hello.v1"},
                       "spec": {"name": "hello", "tag": "v1", "digest": digest, "size": 10,
                                "exports": ["wasi:http/incoming-handler@0.2.0"], "kind": "Http", "extra": 1}});
        assert_eq!(
            decode_check(rt, &c, FieldValidation::Warn).unwrap(),
            vec!["unknown field \"spec.extra\""]
        );
        let mut bad = c.clone();
        bad["spec"]["size"] = json!("big");
        let e = decode_check(rt, &bad, FieldValidation::Warn).unwrap_err();
        assert_eq!(
            e.message,
            "Component in version \"v1alpha1\" cannot be handled as a Component: spec.size: Invalid value: \"big\": expected uint64"
        );
        let mut missing = c.clone();
        missing["spec"].as_object_mut().unwrap().remove("digest");
        let e = decode_check(rt, &missing, FieldValidation::Warn).unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(e.details.unwrap().causes[0].field, "spec.digest");
    }

    #[test]
    fn status_conditions_without_timestamps_decode() {
        let rt = by_kind("v1", "Service").unwrap();
        let s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {"ports": [{"port": 80}]},
                       "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": ""}]}});
        assert!(decode_check(rt, &s, FieldValidation::Strict).is_ok());
    }

    /// `decode_and_prune` of `obj` as `api_version`/`kind`, in Warn mode.
    fn stored(api_version: &str, kind: &str, mut obj: Value) -> Value {
        let rt = by_kind(api_version, kind).unwrap();
        decode_and_prune(rt, &mut obj, FieldValidation::Warn).unwrap();
        obj
    }

    #[test]
    fn pod_quantities_are_stored_canonical() {
        let pod = stored(
            "v1",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "w", "image": "hello:v1", "resources": {
                    "limits": {"cpu": 0.5, "memory": 1048576},
                    "requests": {"cpu": "1000m", "memory": "1024Mi"}
                }}],
                "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": 1000000}}]
            }}),
        );
        let resources = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(
            resources["limits"],
            json!({"cpu": "500m", "memory": "1048576"})
        );
        assert_eq!(resources["requests"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(
            pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
            json!("1M")
        );
        assert_eq!(pod["spec"]["containers"][0]["image"], "hello:v1");
    }

    #[test]
    fn quota_limit_range_and_template_quantities_are_stored_canonical() {
        let quota = stored(
            "v1",
            "ResourceQuota",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                   "spec": {"hard": {"pods": 10, "requests.memory": "2048Mi", "limits.cpu": "4000m"}}}),
        );
        assert_eq!(
            quota["spec"]["hard"],
            json!({"pods": "10", "requests.memory": "2Gi", "limits.cpu": "4"})
        );

        let limits = stored(
            "v1",
            "LimitRange",
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
                   "spec": {"limits": [{"type": "Container",
                       "max": {"cpu": 2, "memory": "1024Mi"},
                       "min": {"cpu": 0.1},
                       "default": {"memory": 536870912},
                       "defaultRequest": {"cpu": "100.0m"},
                       "maxLimitRequestRatio": {"cpu": "2.0"}}]}}),
        );
        let item = &limits["spec"]["limits"][0];
        assert_eq!(item["max"], json!({"cpu": "2", "memory": "1Gi"}));
        assert_eq!(item["min"], json!({"cpu": "100m"}));
        // A number is decimal: its canonical form has no binary suffix.
        assert_eq!(item["default"], json!({"memory": "536870912"}));
        assert_eq!(item["defaultRequest"], json!({"cpu": "100m"}));
        assert_eq!(item["maxLimitRequestRatio"], json!({"cpu": "2"}));

        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["resources"] =
            json!({"limits": {"memory": "131072Ki"}, "requests": {"cpu": 0.25}});
        let d = stored("apps/v1", "Deployment", d);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["resources"],
            json!({"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}})
        );
        assert_eq!(d["spec"]["replicas"], 2, "other numbers stay numbers");
    }

    #[test]
    fn node_status_quantities_are_stored_canonical() {
        let rt = by_kind("v1", "Node").unwrap();
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                              "status": {"capacity": {"cpu": 4, "memory": "8388608Ki", "pods": 110},
                                         "allocatable": {"cpu": "3900m", "memory": 8000000000_u64}}});
        decode_and_prune_status(rt, &mut node, FieldValidation::Warn).unwrap();
        assert_eq!(
            node["status"]["capacity"],
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"})
        );
        assert_eq!(
            node["status"]["allocatable"],
            json!({"cpu": "3900m", "memory": "8G"})
        );

        // A pod's status is checked alone, and its quantities are canonical too.
        let rt = by_kind("v1", "Pod").unwrap();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                             "spec": {"containers": [{"name": "w", "image": "hello:v1"}]},
                             "status": {"phase": "Running", "containerStatuses": [{
                                 "name": "w", "image": "hello:v1", "imageID": "", "ready": true,
                                 "restartCount": 0, "allocatedResources": {"memory": 1073741824.0}}]}});
        decode_and_prune_status(rt, &mut pod, FieldValidation::Warn).unwrap();
        assert_eq!(
            pod["status"]["containerStatuses"][0]["allocatedResources"]["memory"],
            "1073741824"
        );
    }

    #[test]
    fn an_unparsable_quantity_is_kept_for_validation_to_refuse() {
        let rt = by_kind("v1", "Pod").unwrap();
        let pod = stored(
            "v1",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "w", "image": "hello:v1",
                    "resources": {"requests": {"cpu": "lots", "memory": 1024}}}]}}),
        );
        let requests = &pod["spec"]["containers"][0]["resources"]["requests"];
        assert_eq!(requests["cpu"], "lots");
        assert_eq!(requests["memory"], "1024");
        let e = crate::validate::validate_create(rt, &pod).unwrap_err();
        assert_eq!(e.code(), 422);
        assert!(
            e.message.contains(&format!(
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"lots\": {}",
                crate::quantity::FORMAT_ERROR
            )),
            "{}",
            e.message
        );
    }

    #[test]
    fn config_map_data_that_looks_like_a_quantity_is_untouched() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "data": {"memory": "1024Mi", "cpu": "1000m", "n": "1000000"}});
        assert_eq!(stored("v1", "ConfigMap", cm.clone()), cm);
        // Skiff's own Component has no schema entry and is left alone.
        let rt = by_kind("skiff.dev/v1alpha1", "Component").unwrap();
        let mut c = json!({"spec": {"size": 1000}});
        canonicalize_quantities(rt, &mut c);
        assert_eq!(c, json!({"spec": {"size": 1000}}));
    }
}
