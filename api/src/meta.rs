//! Reading and writing `metadata` on objects held as JSON.
//!
//! The store and the API server handle every kind generically as
//! `serde_json::Value`; these accessors keep the JSON paths in one place.

use crate::json::Pointer as _;
use serde_json::{Map, Value};

/// `metadata.name`, if set.
pub fn name(obj: &Value) -> Option<&str> {
    obj.at("/metadata/name").and_then(Value::as_str)
}

/// `metadata.generateName`, if set.
pub fn generate_name(obj: &Value) -> Option<&str> {
    obj.at("/metadata/generateName").and_then(Value::as_str)
}

/// `metadata.namespace`, if set.
pub fn namespace(obj: &Value) -> Option<&str> {
    obj.at("/metadata/namespace").and_then(Value::as_str)
}

/// `metadata.uid`, if set.
pub fn uid(obj: &Value) -> Option<&str> {
    obj.at("/metadata/uid").and_then(Value::as_str)
}

/// `metadata.resourceVersion`, if set and non-empty.
pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.at("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `metadata.generation`, 0 when unset.
pub fn generation(obj: &Value) -> i64 {
    obj.at("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `metadata.labels`, if any.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.at("/metadata/labels").and_then(Value::as_object)
}

/// `metadata.annotations`, if any.
pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    obj.at("/metadata/annotations").and_then(Value::as_object)
}

/// `metadata.finalizers` as strings (non-strings are skipped).
pub fn finalizers(obj: &Value) -> Vec<&str> {
    obj.at("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `metadata.deletionTimestamp`, if set.
pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    obj.at("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
}

/// `metadata.creationTimestamp`, if set.
pub fn creation_timestamp(obj: &Value) -> Option<&str> {
    obj.at("/metadata/creationTimestamp")
        .and_then(Value::as_str)
}

/// `metadata.ownerReferences`, if any.
pub fn owner_references(obj: &Value) -> &[Value] {
    obj.at("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The `metadata` object, created empty if missing. Returns `None` when the value
/// is not an object or `metadata` is not an object.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    map.entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// Sets `metadata.<key>`; a no-op on a value that is not an object.
pub fn set(obj: &mut Value, key: &str, value: impl Into<Value>) {
    if let Some(meta) = metadata_mut(obj) {
        meta.insert(key.to_string(), value.into());
    }
}

/// Removes `metadata.<key>`.
pub fn remove(obj: &mut Value, key: &str) -> Option<Value> {
    obj.get_mut("metadata")?.as_object_mut()?.remove(key)
}

/// The current time as Kubernetes writes timestamps: RFC 3339, UTC, whole seconds.
pub fn now_timestamp() -> String {
    format_timestamp(jiff::Timestamp::now())
}

/// A timestamp as Kubernetes writes it: `2024-01-02T03:04:05Z`.
pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_timestamp(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}
