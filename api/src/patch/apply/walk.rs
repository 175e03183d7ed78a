//! Objects walked against the schema, the way Kubernetes' structured-merge-diff
//! walks typed values: the set of fields an object sets, the difference between
//! two objects, the merge of an apply configuration into a live object, and the
//! removal of fields.
//!
//! Which values are members of a field set: scalars, nulls, empty objects,
//! atomic structs and lists, entries of schemaless maps, and the items of list
//! maps and sets (with their own fields). A non-empty struct is not a member
//! itself, only a way to its fields.

use serde_json::{Map, Value};

use super::super::strategic::json_eq;
use super::super::strategic::schema::{self, List, ListType, Shape, Type};
use super::fieldset::{FieldSet, PathElement, path_string};
use crate::resource::ResourceType;

/// What the schema says about the value at one position.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// A struct (or a map of the typed kind the schema has nothing more on):
    /// objects are walked, lists are atomic.
    Typed(Option<&'static Type>),
    /// The root of a kind without schema: fields of `ty` (`metadata`) are
    /// typed, the others schemaless.
    UnknownRoot(&'static Type),
    /// Schemaless: every object entry is a member, lists are atomic.
    Deduced,
    /// Owned and replaced whole.
    Atomic,
    /// A list field.
    List(&'static List),
    /// An item of a list map or set.
    Item {
        ty: Option<&'static Type>,
        atomic: bool,
    },
}

/// Why an apply configuration's list breaks its schema, at the list's path:
/// `.spec.template.spec.containers: duplicate entries for key [name="a"]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ListError {
    /// The list, as Kubernetes prints paths.
    path: String,
    problem: ListProblem,
}

/// What is wrong with a list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ListProblem {
    #[error("set items must be scalars, got {0}")]
    SetItemNotScalar(Value),
    #[error("list items must be objects, got {0}")]
    ItemNotObject(Value),
    #[error("associative list with keys has an element that omits key field {0:?}")]
    MissingKey(&'static str),
    /// The item's key, as Kubernetes prints it (`[name="a"]`).
    #[error("duplicate entries for key {0}")]
    Duplicate(String),
}

/// What [`compare`] found between an old and a new object.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) removed: FieldSet,
    pub(crate) modified: FieldSet,
}

/// The slot of a whole object of `kind`.
pub(crate) fn root_slot(kind: &ResourceType) -> Slot {
    match schema::root(kind) {
        (ty, true) => Slot::Typed(Some(ty)),
        (ty, false) => Slot::UnknownRoot(ty),
    }
}

impl Slot {
    /// The slot of field `key` of an object in this slot.
    fn child(self, key: &str) -> Slot {
        let typed = |ty: Option<&'static Type>| match ty.and_then(|t| t.field(key)) {
            Some(Shape::Struct { ty, .. }) => Slot::Typed(Some(ty)),
            Some(Shape::Atomic) => Slot::Atomic,
            Some(Shape::List(list)) => Slot::List(list),
            None => Slot::Typed(None),
        };
        match self {
            Slot::Typed(ty) | Slot::Item { ty, .. } => typed(ty),
            Slot::UnknownRoot(ty) if ty.field(key).is_some() => typed(Some(ty)),
            Slot::UnknownRoot(_) | Slot::Deduced => Slot::Deduced,
            Slot::Atomic | Slot::List(_) => Slot::Atomic,
        }
    }

    /// Whether objects in this slot are walked field by field.
    fn granular(self) -> bool {
        !matches!(
            self,
            Slot::Atomic | Slot::List(_) | Slot::Item { atomic: true, .. }
        )
    }

    /// Whether a non-empty object in this slot is itself a member.
    fn object_is_member(self) -> bool {
        matches!(self, Slot::Deduced | Slot::Item { .. })
    }
}

/// The items of a list map or set with their path elements; `Ok(None)` when the
/// list is atomic. A list that breaks its schema (an item without its key, a
/// duplicate) is an error when `strict`, and atomic otherwise: live objects
/// must never make bookkeeping fail.
fn itemize<'a>(
    list: &'static List,
    items: &'a [Value],
    strict: bool,
    path: &[PathElement],
) -> Result<Option<Vec<(PathElement, &'a Value)>>, ListError> {
    let fail = |problem: ListProblem| {
        if strict {
            Err(ListError {
                path: path_string(path),
                problem,
            })
        } else {
            Ok(None)
        }
    };
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
    for item in items {
        let pe = match list.list_type {
            ListType::Atomic => return Ok(None),
            ListType::Set => match item {
                Value::Object(_) | Value::Array(_) => {
                    return fail(ListProblem::SetItemNotScalar(item.clone()));
                }
                scalar => PathElement::Value(scalar.clone()),
            },
            ListType::Map(keys) => {
                let Value::Object(map) = item else {
                    return fail(ListProblem::ItemNotObject(item.clone()));
                };
                let mut fields = Vec::with_capacity(keys.len());
                for key in keys {
                    let value = match (map.get(key.name), key.default) {
                        (Some(v), _) if !v.is_null() => v.clone(),
                        (_, Some(default)) => Value::String(default.to_string()),
                        _ => return fail(ListProblem::MissingKey(key.name)),
                    };
                    fields.push((key.name.to_string(), value));
                }
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                PathElement::Key(fields)
            }
        };
        if out.iter().any(|(seen, _)| *seen == pe) {
            return fail(ListProblem::Duplicate(pe.display()));
        }
        out.push((pe, item));
    }
    Ok(Some(out))
}

fn item_slot(list: &'static List) -> Slot {
    Slot::Item {
        ty: list.item,
        atomic: list.item_atomic,
    }
}

/// The set of fields `value` sets.
pub(crate) fn field_set(value: &Value, slot: Slot, strict: bool) -> Result<FieldSet, ListError> {
    let mut set = FieldSet::new();
    collect(value, slot, &mut Vec::new(), &mut set, strict)?;
    Ok(set)
}

fn collect(
    value: &Value,
    slot: Slot,
    path: &mut Vec<PathElement>,
    set: &mut FieldSet,
    strict: bool,
) -> Result<(), ListError> {
    match (slot, value) {
        (Slot::List(list), Value::Array(items)) => match itemize(list, items, strict, path)? {
            Some(items) => {
                for (pe, item) in items {
                    path.push(pe);
                    set.insert(path);
                    collect(item, item_slot(list), path, set, strict)?;
                    path.pop();
                }
            }
            None => set.insert(path),
        },
        (slot, Value::Object(map)) if slot.granular() && !map.is_empty() => {
            if slot.object_is_member() {
                set.insert(path);
            }
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                collect(child, slot.child(key), path, set, strict)?;
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// The fields added, removed and changed from `old` to `new`.
pub(crate) fn compare(old: &Value, new: &Value, slot: Slot) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), slot, &mut Vec::new(), &mut out);
    out
}

fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    slot: Slot,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (None, Some(new)) => {
            // Lenient walks cannot fail.
            let _ = collect(new, slot, path, &mut out.added, false);
            return;
        }
        (Some(old), None) => {
            let _ = collect(old, slot, path, &mut out.removed, false);
            return;
        }
        (Some(old), Some(new)) => (old, new),
    };
    match (slot, old, new) {
        (slot, Value::Object(o), Value::Object(n))
            if slot.granular() && !(o.is_empty() && n.is_empty()) =>
        {
            for key in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
                path.push(PathElement::Field(key.clone()));
                compare_at(o.get(key), n.get(key), slot.child(key), path, out);
                path.pop();
            }
        }
        (Slot::List(list), Value::Array(o), Value::Array(n)) if !(o.is_empty() && n.is_empty()) => {
            match (itemize(list, o, false, path), itemize(list, n, false, path)) {
                (Ok(Some(o)), Ok(Some(n))) => {
                    let all = o.iter().map(|(pe, _)| pe).chain(
                        n.iter()
                            .map(|(pe, _)| pe)
                            .filter(|pe| find_item(&o, pe).is_none()),
                    );
                    for pe in all.cloned().collect::<Vec<_>>() {
                        let (before, after) = (find_item(&o, &pe), find_item(&n, &pe));
                        path.push(pe);
                        compare_at(before, after, item_slot(list), path, out);
                        path.pop();
                    }
                }
                _ => leaf(old, new, path, out),
            }
        }
        _ => leaf(old, new, path, out),
    }
}

fn find_item<'a>(items: &[(PathElement, &'a Value)], pe: &PathElement) -> Option<&'a Value> {
    items.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
}

fn leaf(old: &Value, new: &Value, path: &[PathElement], out: &mut Comparison) {
    if !deep_eq(old, new) {
        out.modified.insert(path);
    }
}

/// Merges the apply configuration `config` into `live`. `Ok(None)` when the
/// configuration unsets the value (`null`).
pub(crate) fn merge(live: &Value, config: &Value, slot: Slot) -> Result<Option<Value>, ListError> {
    merge_at(live, config, slot, &mut Vec::new())
}

fn merge_at(
    live: &Value,
    config: &Value,
    slot: Slot,
    path: &mut Vec<PathElement>,
) -> Result<Option<Value>, ListError> {
    match (slot, live, config) {
        (_, _, Value::Null) => Ok(None),
        (slot, Value::Object(l), Value::Object(c)) if slot.granular() => {
            let mut out = l.clone();
            for (key, value) in c {
                path.push(PathElement::Field(key.clone()));
                let merged = match l.get(key) {
                    Some(current) => merge_at(current, value, slot.child(key), path)?,
                    None => fresh(value, slot.child(key), path)?,
                };
                path.pop();
                match merged {
                    Some(v) => {
                        out.insert(key.clone(), v);
                    }
                    None => {
                        out.shift_remove(key);
                    }
                }
            }
            Ok(Some(Value::Object(out)))
        }
        (Slot::List(list), Value::Array(l), Value::Array(c)) => {
            let Some(config_items) = itemize(list, c, true, path)? else {
                return fresh(config, slot, path);
            };
            let Ok(Some(live_items)) = itemize(list, l, false, path) else {
                return fresh(config, slot, path);
            };
            merge_items(&live_items, &config_items, item_slot(list), path)
                .map(|items| Some(Value::Array(items)))
        }
        _ => fresh(config, slot, path),
    }
}

/// A configured value where there was none: checked like any configuration,
/// with its nulls dropped.
fn fresh(
    config: &Value,
    slot: Slot,
    path: &mut Vec<PathElement>,
) -> Result<Option<Value>, ListError> {
    match (slot, config) {
        (_, Value::Null) => Ok(None),
        (slot, Value::Object(_)) if slot.granular() => {
            merge_at(&Value::Object(Map::new()), config, slot, path)
        }
        (Slot::List(list), Value::Array(c)) => match itemize(list, c, true, path)? {
            Some(items) => merge_items(&[], &items, item_slot(list), path)
                .map(|items| Some(Value::Array(items))),
            None => Ok(Some(config.clone())),
        },
        _ => Ok(Some(config.clone())),
    }
}

/// Merges list items by path element. Live items keep their place; configured
/// items come in the configuration's order, each run of them placed where its
/// last shared item was.
fn merge_items(
    live: &[(PathElement, &Value)],
    config: &[(PathElement, &Value)],
    slot: Slot,
    path: &mut Vec<PathElement>,
) -> Result<Vec<Value>, ListError> {
    let mut out = Vec::with_capacity(live.len() + config.len());
    let mut next = 0;
    let emit = |upto: usize,
                next: &mut usize,
                out: &mut Vec<Value>,
                path: &mut Vec<PathElement>|
     -> Result<(), ListError> {
        while *next < upto {
            let (pe, value) = &config[*next];
            path.push(pe.clone());
            let merged = match find_item(live, pe) {
                Some(current) => merge_at(current, value, slot, path)?,
                None => fresh(value, slot, path)?,
            };
            path.pop();
            out.extend(merged);
            *next += 1;
        }
        Ok(())
    };
    for (pe, value) in live {
        match config.iter().position(|(p, _)| p == pe) {
            Some(at) => emit(at + 1, &mut next, &mut out, path)?,
            None => out.push((*value).clone()),
        }
    }
    emit(config.len(), &mut next, &mut out, path)?;
    Ok(out)
}

/// Removes the value at `path` from `object`, then the objects and lists that
/// removal emptied, up to the first one `keep` owns.
pub(crate) fn remove(object: &mut Value, path: &[PathElement], slot: Slot, keep: &FieldSet) {
    if remove_at(object, path, slot) {
        for len in (1..path.len()).rev() {
            let prefix = &path[..len];
            if keep.contains(prefix) {
                break;
            }
            let empty = matches!(get(object, prefix, slot), Some(Value::Object(m)) if m.is_empty())
                || matches!(get(object, prefix, slot), Some(Value::Array(a)) if a.is_empty());
            if !empty || !remove_at(object, prefix, slot) {
                break;
            }
        }
    }
}

fn remove_at(value: &mut Value, path: &[PathElement], slot: Slot) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (child_slot, position) = match (first, &*value) {
        (PathElement::Field(key), Value::Object(_)) => (slot.child(key), None),
        (PathElement::Key(_) | PathElement::Value(_), Value::Array(items)) => {
            let Slot::List(list) = slot else { return false };
            let Ok(Some(items)) = itemize(list, items, false, &[]) else {
                return false;
            };
            let Some(i) = items.iter().position(|(pe, _)| pe == first) else {
                return false;
            };
            (item_slot(list), Some(i))
        }
        _ => return false,
    };
    match (value, position, rest.is_empty()) {
        (Value::Object(map), None, true) => {
            first_field(first).is_some_and(|k| map.shift_remove(k).is_some())
        }
        (Value::Object(map), None, false) => first_field(first)
            .and_then(|k| map.get_mut(k))
            .is_some_and(|child| remove_at(child, rest, child_slot)),
        (Value::Array(items), Some(i), true) => {
            items.remove(i);
            true
        }
        (Value::Array(items), Some(i), false) => items
            .get_mut(i)
            .is_some_and(|child| remove_at(child, rest, child_slot)),
        _ => false,
    }
}

fn first_field(pe: &PathElement) -> Option<&str> {
    match pe {
        PathElement::Field(key) => Some(key),
        _ => None,
    }
}

/// The value at `path`, if any.
fn get<'a>(value: &'a Value, path: &[PathElement], slot: Slot) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    match (first, value) {
        (PathElement::Field(key), Value::Object(map)) => get(map.get(key)?, rest, slot.child(key)),
        (PathElement::Key(_) | PathElement::Value(_), Value::Array(items)) => {
            let Slot::List(list) = slot else { return None };
            let items = itemize(list, items, false, &[]).ok()??;
            let (_, item) = items.into_iter().find(|(pe, _)| pe == first)?;
            get(item, rest, item_slot(list))
        }
        _ => None,
    }
}

/// Equality where numbers compare by value, at any depth.
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| deep_eq(v, w))
        }
        _ => json_eq(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;
    use serde_json::json;

    fn deploy() -> Slot {
        root_slot(by_kind("apps/v1", "Deployment").unwrap())
    }

    fn component() -> Slot {
        root_slot(by_kind("skiff.dev/v1alpha1", "Component").unwrap())
    }

    #[test]
    fn field_set_of_a_deployment() {
        let obj = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {
                    "containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 80}],
                                    "args": ["a"], "resources": {}}],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }}
            }
        });
        let set = field_set(&obj, deploy(), true).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:finalizers": {"v:\"a\"": {}}, "f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {
                        "f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                            "f:resources": {}
                        }},
                        "f:volumes": {"k:{\"name\":\"data\"}": {".": {}, "f:emptyDir": {}, "f:name": {}}}
                    }}
                }
            })
        );
    }

    #[test]
    fn schemaless_kinds_own_every_object() {
        let obj = json!({"metadata": {"finalizers": ["a"]}, "spec": {"source": {"path": "x"}, "exports": ["a"]}});
        let set = field_set(&obj, component(), true).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {".": {}, "f:exports": {}, "f:source": {".": {}, "f:path": {}}}
            })
        );
    }

    #[test]
    fn strict_walks_reject_broken_lists() {
        let dup =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        assert_eq!(
            field_set(&dup, deploy(), true).unwrap_err().to_string(),
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
        );
        // Live objects fall back to owning the list whole.
        let set = field_set(&dup, deploy(), false).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}})
        );
        let keyless = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        assert!(
            field_set(&keyless, deploy(), true)
                .unwrap_err()
                .to_string()
                .contains("omits key field \"name\"")
        );
    }

    #[test]
    fn compare_reports_added_removed_and_modified() {
        let old = json!({"spec": {"replicas": 1, "paused": true, "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let new = json!({"spec": {"replicas": 2, "minReadySeconds": 5, "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "c", "image": "c:1"}]}}}});
        let c = compare(&old, &new, deploy());
        assert_eq!(
            c.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:spec": {"f:minReadySeconds": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(
            c.removed.to_fields_v1(),
            json!({"f:spec": {"f:paused": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        let same = compare(&old, &old, deploy());
        assert!(same.added.is_empty() && same.removed.is_empty() && same.modified.is_empty());
    }

    #[test]
    fn merge_follows_list_types() {
        let live = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}, "spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "a:1", "args": ["1"]}, {"name": "b", "image": "b:1"}],
            "tolerations": [{"key": "t"}]}}}});
        let config = json!({"metadata": {"labels": {"b": "2"}, "finalizers": ["y"]}, "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "c:1"}, {"name": "b", "image": "b:2", "args": ["2"]}],
            "tolerations": [{"key": "u"}]}}}});
        let merged = merge(&live, &config, deploy()).unwrap().unwrap();
        assert_eq!(
            merged,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]}, "spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": "a:1", "args": ["1"]}, {"name": "c", "image": "c:1"},
                               {"name": "b", "image": "b:2", "args": ["2"]}],
                "tolerations": [{"key": "u"}]}}}})
        );
        let unset = merge(&live, &json!({"metadata": {"labels": null}}), deploy())
            .unwrap()
            .unwrap();
        assert!(unset["metadata"].get("labels").is_none());
    }

    #[test]
    fn remove_cleans_up_emptied_parents() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}});
        let f = |s: &str| PathElement::Field(s.to_string());
        remove(
            &mut obj,
            &[f("metadata"), f("labels"), f("a")],
            deploy(),
            &FieldSet::new(),
        );
        let item = PathElement::Key(vec![("name".into(), json!("a"))]);
        remove(
            &mut obj,
            &[f("spec"), f("template"), f("spec"), f("containers"), item],
            deploy(),
            &FieldSet::new(),
        );
        assert_eq!(obj, json!({}));
    }
}
