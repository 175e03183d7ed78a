//! Server-side table printing: the `meta.k8s.io/v1 Table` that `kubectl get` asks
//! for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Each kind has the columns, cell types, wide-only columns (priority 1) and cell
//! wording that the Kubernetes API server's printers give it
//! (`pkg/printers/internalversion/printers.go`), so `kubectl get` and
//! `kubectl get -o wide` print the same lines against Skiff as against
//! Kubernetes. As there, every row carries all cells, wide ones included; the
//! client hides priority-1 columns unless asked for `-o wide`. Kinds Kubernetes
//! serves through its default table convertor (Role, ClusterRole, LimitRange)
//! print `NAME, CREATED AT` as it does; Skiff's `Component` has its own columns;
//! any other kind prints `NAME, AGE`, as a CustomResourceDefinition without
//! printer columns does.
//!
//! Objects are user input in their API JSON form: a missing field renders as
//! Kubernetes renders the zero value (`<none>`, `<unknown>`, `0`...), and a field
//! that Kubernetes always defaults on write (a Service's `type`, a port's
//! `protocol`, a Deployment's `replicas`...) renders as its default, so a
//! manifest reads the same whether or not it went through defaulting.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::json::Pointer as _;
use crate::resource::{ResourceType, SKIFF_GROUP};
use crate::status::ApiError;

pub mod age;
mod apps;
mod autoscaling;
mod batch;
mod coordination;
mod core;
mod fallback;
mod labels;
mod networking;
mod rbac;
mod skiff;
mod storage;

pub use age::{human_duration, short_human_duration};

/// `apiVersion` of `Table` and `PartialObjectMetadata`.
const META_API_VERSION: &str = "meta.k8s.io/v1";

/// What each row's `object` holds, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `None`: rows carry no object.
    None,
    /// `Metadata` (the default): a `meta.k8s.io/v1 PartialObjectMetadata` with
    /// the object's `metadata`.
    #[default]
    Metadata,
    /// `Object`: the whole object.
    Object,
}

/// An `includeObject` value Kubernetes does not know; the API server answers
/// it with 400 Bad Request (`impl From<InvalidIncludeObject> for ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized includeObject value: {0:?}")]
pub struct InvalidIncludeObject(pub String);

/// One column of a kind's table, as `meta.k8s.io/v1 TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

/// How one kind prints: its columns and the cells of an object's row.
#[derive(Clone, Copy)]
struct Printer {
    columns: &'static [Column],
    cells: fn(&Value, Timestamp) -> Vec<Value>,
}

impl IncludeObject {
    /// Parses `includeObject`: `None`, `Metadata` or `Object`; absent or empty
    /// means `Metadata`. Anything else is an error, worded as Kubernetes words
    /// it.
    pub fn parse(value: Option<&str>) -> Result<Self, InvalidIncludeObject> {
        match value {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(InvalidIncludeObject(other.to_string())),
        }
    }
}

impl From<InvalidIncludeObject> for ApiError {
    fn from(e: InvalidIncludeObject) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl Column {
    const fn new(name: &'static str, ty: &'static str, description: &'static str) -> Self {
        Column {
            name,
            ty,
            format: "",
            description,
            priority: 0,
        }
    }

    /// Shown only by `kubectl get -o wide`.
    const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    const fn format(mut self, format: &'static str) -> Self {
        self.format = format;
        self
    }

    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// `metav1.ObjectMeta{}.SwaggerDoc()["name"]`.
const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// `metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]`.
const CREATION_TIMESTAMP_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The `Name` column every printer starts with.
const NAME: Column = Column::new("Name", "string", NAME_DOC).format("name");
/// The `Age` column of the built-in printers.
const AGE: Column = Column::new("Age", "string", CREATION_TIMESTAMP_DOC);
/// Wide `Containers` column of workload printers.
const CONTAINERS: Column = Column::new(
    "Containers",
    "string",
    "Names of each container in the template.",
)
.wide();
/// Wide `Images` column of workload printers.
const IMAGES: Column = Column::new(
    "Images",
    "string",
    "Images referenced by each container in the template.",
)
.wide();

/// The column definitions of `rt`'s table, as `TableColumnDefinition` JSON.
pub fn column_definitions(rt: &ResourceType) -> Vec<Value> {
    printer(rt).columns.iter().map(|c| c.to_json()).collect()
}

/// The cells of `obj`'s row in `rt`'s table, wide cells included, with ages
/// measured at `now`.
pub fn row(rt: &ResourceType, obj: &Value, now: Timestamp) -> Vec<Value> {
    (printer(rt).cells)(obj, now)
}

/// The `Table` for `objects` of kind `rt`, with column definitions.
///
/// `list_meta` becomes the table's `metadata`: the list's `resourceVersion`
/// (and `continue`, `remainingItemCount`) for a list, the object's
/// `resourceVersion` for a single object (see [`object_list_meta`]).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    now: Timestamp,
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    build(rt, objects, now, include, list_meta, true)
}

/// A `Table` without column definitions (`columnDefinitions: null`), as
/// Kubernetes sends in every watch event after the first when watching with
/// `as=Table`.
pub fn table_without_columns(
    rt: &ResourceType,
    objects: &[Value],
    now: Timestamp,
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    build(rt, objects, now, include, list_meta, false)
}

/// The table `metadata` for a single object (a GET or a watch event):
/// `{"resourceVersion": <the object's>}`, as Kubernetes sets it.
pub fn object_list_meta(obj: &Value) -> Value {
    match crate::meta::resource_version(obj) {
        Some(rv) => json!({ "resourceVersion": rv }),
        None => json!({}),
    }
}

fn build(
    rt: &ResourceType,
    objects: &[Value],
    now: Timestamp,
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    let printer = printer(rt);
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| table_row(rt, printer, obj, now, include))
        .collect();
    let columns = if with_columns {
        Value::Array(printer.columns.iter().map(|c| c.to_json()).collect())
    } else {
        // Go's nil slice: kubectl keeps the columns of the first event.
        Value::Null
    };
    let metadata = if list_meta.is_object() {
        list_meta
    } else {
        json!({})
    };
    json!({
        "kind": "Table",
        "apiVersion": META_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn table_row(
    rt: &ResourceType,
    printer: Printer,
    obj: &Value,
    now: Timestamp,
    include: IncludeObject,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
    if rt.group.is_empty() && rt.kind == "Pod" {
        let conditions = core::pod_row_conditions(obj);
        if !conditions.is_empty() {
            row.insert("conditions".into(), Value::Array(conditions));
        }
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = obj
                .get("metadata")
                .filter(|m| m.is_object())
                .cloned()
                .unwrap_or_else(|| json!({}));
            row.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": META_API_VERSION,
                    "metadata": metadata,
                }),
            );
        }
        IncludeObject::Object => {
            row.insert("object".into(), obj.clone());
        }
    }
    Value::Object(row)
}

fn printer(rt: &ResourceType) -> Printer {
    match (rt.group, rt.kind) {
        ("", "Pod") => core::POD,
        ("", "Node") => core::NODE,
        ("", "Namespace") => core::NAMESPACE,
        ("", "Event") => core::EVENT,
        ("", "ConfigMap") => core::CONFIG_MAP,
        ("", "Secret") => core::SECRET,
        ("", "ServiceAccount") => core::SERVICE_ACCOUNT,
        ("", "ResourceQuota") => core::RESOURCE_QUOTA,
        ("", "Service") => networking::SERVICE,
        ("", "Endpoints") => networking::ENDPOINTS,
        ("discovery.k8s.io", "EndpointSlice") => networking::ENDPOINT_SLICE,
        ("networking.k8s.io", "Ingress") => networking::INGRESS,
        ("networking.k8s.io", "IngressClass") => networking::INGRESS_CLASS,
        ("", "PersistentVolume") => storage::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => storage::PERSISTENT_VOLUME_CLAIM,
        ("apps", "Deployment") => apps::DEPLOYMENT,
        ("apps", "ReplicaSet") => apps::REPLICA_SET,
        ("apps", "DaemonSet") => apps::DAEMON_SET,
        ("apps", "StatefulSet") => apps::STATEFUL_SET,
        ("batch", "Job") => batch::JOB,
        ("batch", "CronJob") => batch::CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::HORIZONTAL_POD_AUTOSCALER,
        ("coordination.k8s.io", "Lease") => coordination::LEASE,
        ("rbac.authorization.k8s.io", "RoleBinding") => rbac::ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => rbac::CLUSTER_ROLE_BINDING,
        // Kubernetes has no printer for these and serves them through its
        // default table convertor.
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") | ("", "LimitRange") => {
            fallback::CREATED_AT
        }
        (SKIFF_GROUP, "Component") => skiff::COMPONENT,
        _ => fallback::NAME_AGE,
    }
}

// Reading cells out of objects held as JSON. Every accessor answers the zero
// value for a missing or mistyped field, as a Go struct decoded from the same
// JSON would hold, so no object can make a printer fail.

/// The string at `ptr`, or `None` if missing or not a string.
fn opt_str<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.at(ptr).and_then(Value::as_str)
}

/// The string at `ptr`, or `""`.
fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    opt_str(obj, ptr).unwrap_or("")
}

/// The integer at `ptr`, or `None` if missing or not an integer.
fn opt_int(obj: &Value, ptr: &str) -> Option<i64> {
    let v = obj.at(ptr)?;
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// The integer at `ptr`, or 0.
fn int_at(obj: &Value, ptr: &str) -> i64 {
    opt_int(obj, ptr).unwrap_or(0)
}

/// The boolean at `ptr`, or `None`.
fn opt_bool(obj: &Value, ptr: &str) -> Option<bool> {
    obj.at(ptr).and_then(Value::as_bool)
}

/// The array at `ptr`, or an empty slice.
fn arr_at<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.at(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at `ptr`, or `None` if missing, `null` or not an object (a nil
/// pointer in Go).
fn obj_at<'a>(obj: &'a Value, ptr: &str) -> Option<&'a Map<String, Value>> {
    obj.at(ptr).and_then(Value::as_object)
}

/// Whether `ptr` holds anything but `null`: a non-nil pointer in Go.
fn is_set(obj: &Value, ptr: &str) -> bool {
    obj.at(ptr).is_some_and(|v| !v.is_null())
}

/// The timestamp at `ptr`; `None` when missing, unparseable or Go's zero time.
fn timestamp_at(obj: &Value, ptr: &str) -> Option<Timestamp> {
    // 0001-01-01T00:00:00Z: what Go writes for a zero `metav1.Time`.
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    opt_str(obj, ptr)
        .and_then(crate::meta::parse_timestamp)
        .filter(|t| t.as_second() != GO_ZERO_TIME)
}

/// How long ago `ts` was, as `translateTimestampSince`: `<unknown>` for none.
fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// The `metadata.name` cell.
fn name_cell(obj: &Value) -> Value {
    Value::from(str_at(obj, "/metadata/name"))
}

/// The `Age` cell: time since `metadata.creationTimestamp`.
fn age_cell(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(timestamp_at(obj, "/metadata/creationTimestamp"), now))
}

/// `s`, or `<none>` when empty.
fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

/// `layoutContainerCells`: container names and images, each comma-joined.
fn container_cells(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

#[cfg(test)]
mod tests;
