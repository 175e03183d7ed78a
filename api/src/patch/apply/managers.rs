//! `metadata.managedFields`: one entry per manager, operation and subresource,
//! each with the set of fields it owns.

use serde_json::{Map, Value, json};

use super::fieldset::{FieldSet, FieldsV1Error};

/// `operation` of an entry written by server-side apply.
pub(crate) const APPLY: &str = "Apply";
/// `operation` of an entry written by create, update and patch.
pub(crate) const UPDATE: &str = "Update";
/// The most `Update` entries an object keeps, as in Kubernetes.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The entry older `Update` entries are folded into beyond the cap.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
    pub(crate) subresource: String,
    /// The fields it owns, kept as a set while the object is worked on.
    set: FieldSet,
    /// `set` as `FieldsV1`, when the entry was read from a stored object and
    /// its set has not changed since: written back as it was instead of
    /// encoded again (most writes change one manager's fields, or none).
    stored: Option<Value>,
}

impl Entry {
    pub(crate) fn new(
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> Entry {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: None,
            subresource: subresource.to_string(),
            set: FieldSet::new(),
            stored: None,
        }
    }

    /// The fields it owns.
    pub(crate) fn set(&self) -> &FieldSet {
        &self.set
    }

    /// The fields it owns, to change.
    pub(crate) fn set_mut(&mut self) -> &mut FieldSet {
        self.stored = None;
        &mut self.set
    }

    /// Replaces the fields it owns; returns those it owned.
    pub(crate) fn replace_set(&mut self, set: FieldSet) -> FieldSet {
        self.stored = None;
        std::mem::replace(&mut self.set, set)
    }

    /// Gives up the fields in `changed` or `removed` (another manager
    /// changed them, or they are gone).
    pub(crate) fn release(&mut self, changed: &FieldSet, removed: &FieldSet) {
        if self.set.overlaps(changed) || self.set.overlaps(removed) {
            let kept = self.set.difference(changed).difference(removed);
            self.replace_set(kept);
        }
    }

    /// Takes the fields in `changed`.
    pub(crate) fn take(&mut self, changed: &FieldSet) {
        if !self.set.includes(changed) {
            self.set_mut().union_with(changed);
        }
    }

    /// Whether `self` and `other` are the same manager. As in Kubernetes, an
    /// applier is the same across API versions, an updater is not.
    pub(crate) fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == APPLY || self.api_version == other.api_version)
    }
}

/// Whether a request's `managedFields` asks to clear them: `[]` or `[{}]`.
pub(crate) fn is_reset(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Array(items)) => {
            items.is_empty()
                || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

/// Why `managedFields` does not parse; `usize`s are the entry's index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ManagedFieldsError {
    #[error("managedFields must be a list, got {0}")]
    NotList(Value),
    #[error("managedFields[{0}] must be an object")]
    NotObject(usize),
    #[error("managedFields[{0}]: operation must be `Apply` or `Update`")]
    Operation(usize),
    #[error("managedFields[{0}]: apiVersion must not be empty")]
    NoApiVersion(usize),
    #[error("managedFields[{0}]: fieldsType must be FieldsV1")]
    FieldsType(usize),
    #[error("managedFields[{index}]: {source}")]
    Fields { index: usize, source: FieldsV1Error },
    #[error("managedFields[{index}]: duplicate entry for manager {manager:?}")]
    Duplicate { index: usize, manager: String },
}

/// Parses `managedFields`; absent or `null` is no entries.
pub(crate) fn decode(value: Option<&Value>) -> Result<Vec<Entry>, ManagedFieldsError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ManagedFieldsError::NotList(other.clone())),
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(ManagedFieldsError::NotObject(i));
        };
        let text = |key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let operation = text("operation");
        if operation != APPLY && operation != UPDATE {
            return Err(ManagedFieldsError::Operation(i));
        }
        if text("apiVersion").is_empty() {
            return Err(ManagedFieldsError::NoApiVersion(i));
        }
        if text("fieldsType") != "FieldsV1" {
            return Err(ManagedFieldsError::FieldsType(i));
        }
        let set = match map.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(fields) => FieldSet::from_fields_v1(fields)
                .map_err(|source| ManagedFieldsError::Fields { index: i, source })?,
        };
        let entry = Entry {
            manager: text("manager"),
            operation,
            api_version: text("apiVersion"),
            time: map.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: text("subresource"),
            set,
            stored: None,
        };
        if entries.iter().any(|e| e.same_manager(&entry)) {
            return Err(ManagedFieldsError::Duplicate {
                index: i,
                manager: entry.manager,
            });
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// [`decode`] for the `managedFields` of a stored object, which this module
/// encoded: each entry keeps its `FieldsV1` to be written back unchanged if
/// its set does not change.
pub(crate) fn decode_stored(value: Option<&Value>) -> Result<Vec<Entry>, ManagedFieldsError> {
    let mut entries = decode(value)?;
    if let Some(Value::Array(items)) = value {
        for (entry, item) in entries.iter_mut().zip(items) {
            entry.stored = item.get("fieldsV1").filter(|v| v.is_object()).cloned();
        }
    }
    Ok(entries)
}

/// Drops entries that own nothing, caps the `Update` entries and returns the
/// `managedFields` JSON, sorted as Kubernetes sorts it (operation, time,
/// manager).
pub(crate) fn encode(entries: &mut Vec<Entry>) -> Value {
    entries.retain(|e| !e.set.is_empty());
    cap_updates(entries);
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        entries
            .iter_mut()
            .map(|e| {
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                });
                if let Some(time) = &e.time {
                    entry["time"] = json!(time);
                }
                entry["fieldsType"] = json!("FieldsV1");
                entry["fieldsV1"] = e.stored.take().unwrap_or_else(|| e.set.to_fields_v1());
                if !e.subresource.is_empty() {
                    entry["subresource"] = json!(e.subresource);
                }
                entry
            })
            .collect(),
    )
}

/// Folds the oldest `Update` entries into `ancient-changes` until at most
/// [`MAX_UPDATE_MANAGERS`] remain.
fn cap_updates(entries: &mut Vec<Entry>) {
    loop {
        let updates: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].operation == UPDATE)
            .collect();
        if updates.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        let Some(&oldest) = updates
            .iter()
            .filter(|&&i| entries[i].manager != ANCIENT_CHANGES)
            .min_by(|&&a, &&b| {
                (&entries[a].time, &entries[a].manager)
                    .cmp(&(&entries[b].time, &entries[b].manager))
            })
        else {
            return;
        };
        let old = entries.remove(oldest);
        let bucket = Entry::new(ANCIENT_CHANGES, UPDATE, &old.api_version, "");
        match entries.iter_mut().find(|e| e.same_manager(&bucket)) {
            Some(existing) => {
                existing.take(&old.set);
                existing.time = old.time;
            }
            None => entries.push(Entry {
                set: old.set,
                stored: old.stored,
                time: old.time,
                ..bucket
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_json(manager: &str, operation: &str, time: &str) -> Value {
        json!({
            "manager": manager, "operation": operation, "apiVersion": "apps/v1", "time": time,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}
        })
    }

    #[test]
    fn decode_and_encode() {
        let value = json!([
            entry_json("kubectl", "Update", "2025-01-02T00:00:00Z"),
            entry_json("mgr", "Apply", "2025-01-03T00:00:00Z"),
        ]);
        let mut entries = decode(Some(&value)).unwrap();
        assert_eq!(entries.len(), 2);
        // Apply entries sort before Update ones.
        assert_eq!(
            encode(&mut entries),
            json!([
                entry_json("mgr", "Apply", "2025-01-03T00:00:00Z"),
                entry_json("kubectl", "Update", "2025-01-02T00:00:00Z")
            ])
        );
        assert!(decode(None).unwrap().is_empty());
        assert!(decode(Some(&json!([{"manager": "x"}]))).is_err());
        assert!(
            decode(Some(&json!([
                entry_json("a", "Apply", "t"),
                entry_json("a", "Apply", "u")
            ])))
            .is_err()
        );
        assert!(is_reset(Some(&json!([]))));
        assert!(is_reset(Some(&json!([{}]))));
        assert!(!is_reset(None));
        assert!(!is_reset(Some(&value)));
    }

    #[test]
    fn update_entries_are_capped() {
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| {
                let mut e = Entry::new(&format!("m{i:02}"), UPDATE, "v1", "");
                e.time = Some(format!("2025-01-01T00:00:{i:02}Z"));
                e.set_mut()
                    .insert(&[super::super::fieldset::PathElement::Field(format!("f{i}"))]);
                e
            })
            .collect();
        let encoded = encode(&mut entries);
        let managers: Vec<&str> = encoded
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers.len(), 10);
        assert_eq!(managers[0], "ancient-changes");
        // Folding the first one creates the bucket, so three go.
        assert!(!managers.contains(&"m02") && managers.contains(&"m03"));
        let ancient = &encoded[0];
        assert_eq!(
            ancient["fieldsV1"],
            json!({"f:f0": {}, "f:f1": {}, "f:f2": {}})
        );
        assert_eq!(ancient["time"], "2025-01-01T00:00:02Z");
    }
}
