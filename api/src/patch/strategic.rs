//! Strategic merge patch, applied the way the Kubernetes API server applies it
//! (`k8s.io/apimachinery/pkg/util/strategicpatch`, server side).
//!
//! Like a JSON merge patch, objects merge key by key and `null` deletes a key.
//! Unlike it, lists whose Go type declares `patchStrategy:"merge"` are merged:
//! lists of objects item by item on their `patchMergeKey`, lists of scalars as
//! sets. Directives in the patch steer the merge:
//!
//! - `$patch: replace` in an object replaces it; as a list item, replaces the list
//!   with the other items. `$patch: delete` in an object clears it; as a list item,
//!   removes the items with its merge key. `$patch: merge` is the default.
//! - `$retainKeys: [..]` drops the object's keys not listed.
//! - `$deleteFromPrimitiveList/<field>: [..]` removes those scalars from a list.
//! - `$setElementOrder/<field>: [..]` orders a merged list (kubectl's three-way
//!   patch sends it so that the result follows the order of the manifest).
//!
//! The strategies come from [`schema`]. For kinds without a known schema (Skiff's
//! own) everything except `metadata` is merged like a JSON merge patch, with
//! lists replaced whole, directives still honoured.

pub(crate) mod schema;

use serde_json::{Map, Value};

use super::PatchError;
use crate::resource::ResourceType;
use schema::{Shape, Strategy, Type};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// How a strategic merge patch treats a field; see [`field_strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStrategy {
    /// Objects merge key by key; lists and scalars are replaced whole.
    Default,
    /// An object merged key by key whose patch may list the keys to keep in
    /// `$retainKeys` (`patchStrategy:"retainKeys"`, e.g. a Deployment's
    /// `spec.strategy`).
    RetainKeys,
    /// A list of objects merged item by item, matched on `key`
    /// (`patchStrategy:"merge"`, `patchMergeKey`); with `retain_keys`, items may
    /// carry `$retainKeys` (`spec.volumes`).
    MergeByKey {
        /// The merge key, e.g. `name`.
        key: &'static str,
        /// Whether items may carry `$retainKeys`.
        retain_keys: bool,
    },
    /// A list of scalars merged as a set (`metadata.finalizers`).
    MergeSet,
}

/// A `$patch` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

/// How a list is merged, with the type of its items.
#[derive(Debug, Clone, Copy)]
struct ListCtx {
    strategy: Strategy,
    item: Option<&'static Type>,
}

/// A merged list together with the order Kubernetes uses for its server-side
/// items when a `$setElementOrder` directive reorders it afterwards.
struct MergedList {
    items: Vec<Value>,
    server_order: Vec<Value>,
}

/// Applies the strategic merge patch `patch` to `original`, an object of `kind`,
/// and returns the patched object.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    kind: &ResourceType,
) -> Result<Value, PatchError> {
    let (root, _) = schema::root(kind);
    merge_document(original, patch, Some(root))
}

/// How a strategic merge patch treats the field at `path` (field names from the
/// object's root; list items are transparent, e.g. `["spec", "template",
/// "spec", "containers", "ports"]`) of objects of `kind`. Useful to build
/// patches; unknown fields and kinds get [`FieldStrategy::Default`].
pub fn field_strategy(kind: &ResourceType, path: &[&str]) -> FieldStrategy {
    let (root, _) = schema::root(kind);
    let mut current = Some(root);
    let mut shape = None;
    for segment in path {
        let Some(ty) = current else {
            return FieldStrategy::Default;
        };
        shape = ty.field(segment);
        current = match shape {
            Some(Shape::Struct { ty, .. }) => Some(*ty),
            Some(Shape::List(list)) => list.item,
            _ => None,
        };
    }
    match shape {
        Some(Shape::Struct {
            retain_keys: true, ..
        }) => FieldStrategy::RetainKeys,
        Some(Shape::List(list)) => match list.strategy {
            Strategy::MergeByKey(key) => FieldStrategy::MergeByKey {
                key,
                retain_keys: list.retain_keys,
            },
            Strategy::MergeSet => FieldStrategy::MergeSet,
            Strategy::Replace => FieldStrategy::Default,
        },
        _ => FieldStrategy::Default,
    }
}

/// The patch of a whole document, against the schema `ty`.
fn merge_document(
    original: &Value,
    patch: &Value,
    ty: Option<&'static Type>,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::InvalidDocument(format!(
            "a strategic merge patch must be a JSON object, got {}",
            describe(patch)
        )));
    };
    let Value::Object(original) = original else {
        return Err(PatchError::InvalidDocument(
            "the object to patch is not a JSON object".into(),
        ));
    };
    Ok(Value::Object(merge_map(original.clone(), patch, ty, "")?))
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<&'static Type>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    match directive(patch, path)? {
        Some(Directive::Replace) => {
            let mut rest = patch.clone();
            rest.shift_remove(DIRECTIVE);
            return merge_map(Map::new(), &rest, ty, path);
        }
        Some(Directive::Delete) => return Ok(Map::new()),
        Some(Directive::Merge) | None => {}
    }

    if let Some(keep) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, keep, path)?;
    }

    // `$setElementOrder` merges its list itself, before everything else.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let field = directive_field(field, key, path)?;
            if set_element_order(&mut original, patch, field, value, ty, path)? {
                ordered.push(field);
            }
        }
    }

    for (key, value) in patch {
        if key == DIRECTIVE || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let field = directive_field(field, key, path)?;
            delete_from_primitive_list(&mut original, field, value, path)?;
            continue;
        }
        if key.starts_with('$') {
            return Err(PatchError::strategic(
                path,
                format!(
                    "unknown directive {key:?}: expected $patch, $retainKeys, $deleteFromPrimitiveList/<field> or $setElementOrder/<field>"
                ),
            ));
        }
        if ordered.contains(&key.as_str()) {
            continue;
        }
        if value.is_null() {
            original.shift_remove(key);
            continue;
        }
        let shape = field_shape(ty, key);
        let child_path = join(path, key);
        let merged = match original.get_mut(key) {
            Some(current) => merge_value(std::mem::take(current), value, shape, &child_path)?,
            None => new_value(value, shape, &child_path)?,
        };
        match merged {
            Some(v) => {
                original.insert(key.clone(), v);
            }
            None => {
                original.shift_remove(key);
            }
        }
    }
    Ok(original)
}

/// Merges `patch` into the existing value `current`; `None` removes the key.
fn merge_value(
    current: Value,
    patch: &Value,
    shape: Option<&'static Shape>,
    path: &str,
) -> Result<Option<Value>, PatchError> {
    match (current, patch) {
        (Value::Object(current), Value::Object(patch)) => Ok(Some(Value::Object(merge_map(
            current,
            patch,
            map_type(shape),
            path,
        )?))),
        (Value::Array(current), Value::Array(patch)) => Ok(Some(Value::Array(
            merge_list(current, patch, list_ctx(shape), path)?.items,
        ))),
        (_, patch) => new_value(patch, shape, path),
    }
}

/// The value a patch sets where there was none (or one of another type): the
/// patch with its directives applied to nothing and its nulls dropped. `None`
/// when nothing should be set (`null`, or an object that says `$patch: delete`).
fn new_value(
    patch: &Value,
    shape: Option<&'static Shape>,
    path: &str,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(map) => {
            if directive(map, path)? == Some(Directive::Delete) {
                return Ok(None);
            }
            Ok(Some(Value::Object(merge_map(
                Map::new(),
                map,
                map_type(shape),
                path,
            )?)))
        }
        Value::Array(items) => Ok(Some(Value::Array(
            merge_list(Vec::new(), items, list_ctx(shape), path)?.items,
        ))),
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    ctx: ListCtx,
    path: &str,
) -> Result<MergedList, PatchError> {
    match ctx.strategy {
        Strategy::Replace => {
            // Replaced whole; nulls inside mean "unset", as in a new value.
            let items: Vec<Value> = patch.iter().map(without_nulls).collect();
            Ok(MergedList {
                server_order: items.clone(),
                items,
            })
        }
        Strategy::MergeSet => merge_scalars(original, patch, path),
        Strategy::MergeByKey(key) => merge_by_key(original, patch, key, ctx.item, path),
    }
}

/// A list of scalars with merge strategy: the union, patch items in patch order.
fn merge_scalars(
    original: Vec<Value>,
    patch: &[Value],
    path: &str,
) -> Result<MergedList, PatchError> {
    let mut replace = false;
    let mut added = Vec::new();
    for (i, item) in patch.iter().enumerate() {
        match item {
            Value::Array(_) => return Err(list_of_lists(path)),
            Value::Object(map) => match directive(map, &index(path, i))? {
                Some(Directive::Replace) if map.len() == 1 => replace = true,
                Some(Directive::Merge) if map.len() == 1 => {}
                _ => {
                    return Err(PatchError::strategic(
                        &index(path, i),
                        format!(
                            "expected a scalar in a list merged as a set, got {}",
                            describe(item)
                        ),
                    ));
                }
            },
            scalar => added.push(scalar.clone()),
        }
    }
    if let Some(bad) = original.iter().find(|v| v.is_object() || v.is_array()) {
        if bad.is_array() {
            return Err(list_of_lists(path));
        }
        return Err(PatchError::strategic(
            path,
            format!(
                "the list is merged as a set of scalars but holds {}",
                describe(bad)
            ),
        ));
    }
    if replace {
        let items = dedup(added);
        return Ok(MergedList {
            server_order: original,
            items,
        });
    }
    let mut merged = original.clone();
    merged.extend(added.iter().cloned());
    let merged = dedup(merged);
    let items = normalize_order(merged, &added, &original, None);
    Ok(MergedList {
        items,
        server_order: original,
    })
}

/// A list of objects merged on `key`.
fn merge_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    item_ty: Option<&'static Type>,
    path: &str,
) -> Result<MergedList, PatchError> {
    let original_len = original.len();
    let mut replace = false;
    let mut items: Vec<(usize, Map<String, Value>)> = Vec::new();
    for (i, item) in patch.iter().enumerate() {
        let item_path = index(path, i);
        let map = match item {
            Value::Object(map) => map,
            Value::Array(_) => return Err(list_of_lists(path)),
            other => {
                return Err(PatchError::strategic(
                    &item_path,
                    format!(
                        "expected an object in a list merged by key {key:?}, got {}",
                        describe(other)
                    ),
                ));
            }
        };
        match directive(map, &item_path)? {
            Some(Directive::Delete) => {
                let value = merge_key(map, key, &item_path)?;
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, value)));
            }
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) => {
                let mut rest = map.clone();
                rest.shift_remove(DIRECTIVE);
                if !rest.is_empty() {
                    items.push((i, rest));
                }
            }
            None => items.push((i, map.clone())),
        }
    }
    if let Some(bad) = original.iter().find(|v| !v.is_object()) {
        if bad.is_array() {
            return Err(list_of_lists(path));
        }
        return Err(PatchError::strategic(
            path,
            format!(
                "the list is merged by key {key:?} but holds {}",
                describe(bad)
            ),
        ));
    }

    if replace {
        let mut out = Vec::new();
        for (i, item) in &items {
            out.push(Value::Object(merge_map(
                Map::new(),
                item,
                item_ty,
                &index(path, *i),
            )?));
        }
        return Ok(MergedList {
            server_order: out.clone(),
            items: out,
        });
    }

    let post_delete: Vec<Value> = original
        .iter()
        .filter_map(|o| o.get(key).cloned())
        .collect();
    let mut appended = Vec::new();
    let mut patch_order = Vec::new();
    for (i, item) in &items {
        let item_path = index(path, *i);
        let value = merge_key(item, key, &item_path)?.clone();
        match original
            .iter()
            .position(|o| o.get(key).is_some_and(|v| json_eq(v, &value)))
        {
            Some(pos) => {
                let current = match std::mem::take(&mut original[pos]) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                original[pos] = Value::Object(merge_map(current, item, item_ty, &item_path)?);
            }
            None => {
                original.push(Value::Object(merge_map(
                    Map::new(),
                    item,
                    item_ty,
                    &item_path,
                )?));
                appended.push(value.clone());
            }
        }
        patch_order.push(value);
    }
    // Kubernetes orders a later `$setElementOrder` pass by the original list as
    // this merge left it in place: the surviving items, then the first appended
    // ones, cut to the original length.
    let server_order: Vec<Value> = post_delete
        .iter()
        .chain(appended.iter())
        .take(original_len)
        .cloned()
        .collect();
    let items = normalize_order(original, &patch_order, &post_delete, Some(key));
    Ok(MergedList {
        items,
        server_order,
    })
}

/// Applies `$setElementOrder/<field>`: merges the field's patch list (if any)
/// and orders the result. Returns whether the field was handled, so that the
/// main pass skips it.
fn set_element_order(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    field: &str,
    order: &Value,
    ty: Option<&'static Type>,
    path: &str,
) -> Result<bool, PatchError> {
    let field_path = join(path, field);
    let Value::Array(order) = order else {
        return Err(PatchError::strategic(
            path,
            format!(
                "invalid patch format of setElementOrder list: {SET_ELEMENT_ORDER}{field} must be a list"
            ),
        ));
    };
    let shape = field_shape(ty, field);
    let ctx = list_ctx(shape);
    let key = match ctx.strategy {
        // Ordering only means something for merged lists; a replaced list
        // takes the order of the patch.
        Strategy::Replace => return Ok(false),
        Strategy::MergeByKey(key) => Some(key),
        Strategy::MergeSet => None,
    };
    let current = match original.get(field) {
        Some(Value::Array(items)) => Some(items.clone()),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(PatchError::strategic(
                &field_path,
                format!("expected a list, got {}", describe(other)),
            ));
        }
    };
    let patch_list = match patch.get(field) {
        Some(Value::Array(items)) => Some(items.as_slice()),
        None => None,
        // `null` deletes the list; the main pass does that.
        Some(Value::Null) => return Ok(false),
        Some(other) => {
            return Err(PatchError::strategic(
                &field_path,
                format!("expected a list, got {}", describe(other)),
            ));
        }
    };
    let order_ids = order
        .iter()
        .enumerate()
        .map(|(i, item)| match key {
            Some(key) => match item {
                Value::Object(map) => merge_key(map, key, &format!("{SET_ELEMENT_ORDER}{field}[{i}]")).cloned(),
                other => Err(PatchError::strategic(
                    path,
                    format!("{SET_ELEMENT_ORDER}{field}[{i}]: expected an object with key {key:?}, got {}", describe(other)),
                )),
            },
            None => Ok(item.clone()),
        })
        .collect::<Result<Vec<Value>, PatchError>>()?;
    if let Some(list) = patch_list {
        check_order(list, &order_ids, key, field, &field_path)?;
    }

    let merged = match (current, patch_list) {
        (Some(current), None) => {
            let server_order = identities(&current, key);
            MergedList {
                items: current,
                server_order,
            }
        }
        (None, Some(list)) => {
            let merged = merge_list(Vec::new(), list, ctx, &field_path)?;
            let server_order = identities(&merged.items, key);
            MergedList {
                items: merged.items,
                server_order,
            }
        }
        (Some(current), Some(list)) => merge_list(current, list, ctx, &field_path)?,
        (None, None) => return Ok(true),
    };
    let items = normalize_order(merged.items, &order_ids, &merged.server_order, key);
    original.insert(field.to_string(), Value::Array(items));
    Ok(true)
}

/// Checks that the patch list follows the `$setElementOrder` list: its items
/// (deletions aside) must appear there, in the same relative order.
fn check_order(
    list: &[Value],
    order: &[Value],
    key: Option<&str>,
    field: &str,
    path: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || list.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::new();
    for (i, item) in list.iter().enumerate() {
        match (key, item) {
            (Some(key), Value::Object(map)) => match directive(map, &index(path, i))? {
                // Deletions are not ordered; other directives are skipped.
                Some(_) => {}
                None => ids.push(merge_key(map, key, &index(path, i))?.clone()),
            },
            (None, Value::Object(_)) => {}
            (_, other) => ids.push(other.clone()),
        }
    }
    let (mut p, mut o) = (0, 0);
    while p < ids.len() && o < order.len() {
        if json_eq(&ids[p], &order[o]) {
            p += 1;
        }
        o += 1;
    }
    if p < ids.len() {
        return Err(PatchError::strategic(
            path,
            format!(
                "the order in patch list {} doesn't match {SET_ELEMENT_ORDER}{field} list {}",
                Value::Array(list.to_vec()),
                Value::Array(order.to_vec())
            ),
        ));
    }
    Ok(())
}

/// Orders a merged list as Kubernetes does: the items named by the patch in
/// the patch's order, the others in their server order, interleaved so that
/// each server-only item stays before the patch items that followed it on the
/// server.
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let position = |order: &[Value], item: &Value| -> Option<usize> {
        let id = identity(item, key)?;
        order.iter().position(|o| json_eq(o, id))
    };
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(patch_order, item).is_some());
    from_patch.sort_by_key(|item| position(patch_order, item).unwrap_or(usize::MAX));
    server_only.sort_by_key(|item| position(server_order, item).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (position(server_order, l), position(server_order, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// `$deleteFromPrimitiveList/<field>`: removes those values from the list,
/// whatever the field's strategy. A missing list stays missing.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    field: &str,
    value: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let Value::Array(remove) = value else {
        return Err(PatchError::strategic(
            path,
            format!(
                "invalid patch format of primitive list: {DELETE_FROM_PRIMITIVE_LIST}{field} must be a list"
            ),
        ));
    };
    if let Some(Value::Array(items)) = original.get_mut(field) {
        items.retain(|item| !remove.iter().any(|r| json_eq(r, item)));
    }
    Ok(())
}

/// `$retainKeys`: drops the keys of `original` not listed. Every key the patch
/// sets must be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keep: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let bad = || {
        PatchError::strategic(
            path,
            "invalid patch format of retainKeys: $retainKeys must be a list of field names",
        )
    };
    let Value::Array(list) = keep else {
        return Err(bad());
    };
    let names = list
        .iter()
        .map(|v| v.as_str().ok_or_else(bad))
        .collect::<Result<Vec<&str>, _>>()?;
    for (key, value) in patch {
        if value.is_null() || key.starts_with('$') {
            continue;
        }
        if !names.contains(&key.as_str()) {
            return Err(PatchError::strategic(
                path,
                format!(
                    "invalid patch format of retainKeys: the patch sets {key:?}, which $retainKeys does not list"
                ),
            ));
        }
    }
    original.retain(|key, _| names.contains(&key.as_str()));
    Ok(())
}

/// The `$patch` directive of an object, if any.
fn directive(map: &Map<String, Value>, path: &str) -> Result<Option<Directive>, PatchError> {
    match map.get(DIRECTIVE) {
        None => Ok(None),
        Some(Value::String(s)) if s == "replace" => Ok(Some(Directive::Replace)),
        Some(Value::String(s)) if s == "delete" => Ok(Some(Directive::Delete)),
        Some(Value::String(s)) if s == "merge" => Ok(Some(Directive::Merge)),
        Some(other) => Err(PatchError::strategic(
            path,
            format!(
                "unknown patch type: {other} in map: {}: $patch must be \"replace\", \"delete\" or \"merge\"",
                Value::Object(map.clone())
            ),
        )),
    }
}

/// The field a `$deleteFromPrimitiveList/` or `$setElementOrder/` directive names.
fn directive_field<'a>(field: &'a str, key: &str, path: &str) -> Result<&'a str, PatchError> {
    if field.is_empty() {
        return Err(PatchError::strategic(
            path,
            format!("directive {key:?} does not name a field"),
        ));
    }
    Ok(field)
}

/// The merge key's value in a list item.
fn merge_key<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Value, PatchError> {
    map.get(key).ok_or_else(|| {
        PatchError::strategic(
            path,
            format!(
                "map: {} does not contain declared merge key: {key}",
                Value::Object(map.clone())
            ),
        )
    })
}

fn identity<'a>(item: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

fn identities(items: &[Value], key: Option<&str>) -> Vec<Value> {
    items
        .iter()
        .filter_map(|item| identity(item, key).cloned())
        .collect()
}

fn field_shape(ty: Option<&'static Type>, key: &str) -> Option<&'static Shape> {
    ty.and_then(|ty| ty.field(key))
}

fn map_type(shape: Option<&'static Shape>) -> Option<&'static Type> {
    match shape {
        Some(Shape::Struct { ty, .. }) => Some(*ty),
        _ => None,
    }
}

fn list_ctx(shape: Option<&'static Shape>) -> ListCtx {
    match shape {
        Some(Shape::List(list)) => ListCtx {
            strategy: list.strategy,
            item: list.item,
        },
        _ => ListCtx {
            strategy: Strategy::Replace,
            item: None,
        },
    }
}

/// Removes duplicates, keeping the first of each.
fn dedup(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        if !out.iter().any(|o| json_eq(o, &item)) {
            out.push(item);
        }
    }
    out
}

/// The value with `null` map entries dropped, at any depth.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// JSON equality where `80` and `80.0` are the same number.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        _ => a == b,
    }
}

fn list_of_lists(path: &str) -> PatchError {
    PatchError::unprocessable(path, "lists of lists are not supported")
}

fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => v.to_string(),
        Value::String(s) => format!("the string {s:?}"),
        other => other.to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;
    use schema::{Key, List, ListType};
    use serde_json::json;

    /// The `MergeItem` type of Kubernetes' own strategic merge patch tests
    /// (`k8s.io/apimachinery/pkg/util/strategicpatch/patch_test.go`).
    static MERGE_ITEM: Type = Type {
        fields: &[
            ("mergeItemPtr", merging_list(&MERGE_ITEM, false)),
            (
                "mergingIntList",
                Shape::List(List {
                    strategy: Strategy::MergeSet,
                    retain_keys: false,
                    list_type: ListType::Set,
                    item_atomic: false,
                    item: None,
                }),
            ),
            ("mergingList", merging_list(&MERGE_ITEM, false)),
            (
                "retainKeysMap",
                Shape::Struct {
                    retain_keys: true,
                    ty: &RETAIN_KEYS_MERGE_ITEM,
                },
            ),
            ("retainKeysMergingList", merging_list(&MERGE_ITEM, true)),
        ],
    };

    static RETAIN_KEYS_MERGE_ITEM: Type = Type {
        fields: &[
            (
                "mergingIntList",
                Shape::List(List {
                    strategy: Strategy::MergeSet,
                    retain_keys: false,
                    list_type: ListType::Set,
                    item_atomic: false,
                    item: None,
                }),
            ),
            ("mergingList", merging_list(&MERGE_ITEM, false)),
        ],
    };

    const fn merging_list(item: &'static Type, retain_keys: bool) -> Shape {
        Shape::List(List {
            strategy: Strategy::MergeByKey("name"),
            retain_keys,
            list_type: ListType::Map(&[Key {
                name: "name",
                default: None,
            }]),
            item_atomic: false,
            item: Some(item),
        })
    }

    fn apply(original: Value, patch: Value) -> Result<Value, PatchError> {
        merge_document(&original, &patch, Some(&MERGE_ITEM))
    }

    /// Runs `(description, original, patch, expected)` cases against `MergeItem`.
    fn check(cases: Vec<(&str, Value, Value, Value)>) {
        for (description, original, patch, expected) in cases {
            match apply(original, patch) {
                Ok(got) => assert_eq!(got, expected, "{description}"),
                Err(e) => panic!("{description}: {e}"),
            }
        }
    }

    fn error(original: Value, patch: Value) -> String {
        match apply(original, patch) {
            Ok(v) => panic!("expected an error, got {v}"),
            Err(e) => e.to_string(),
        }
    }

    // ---- Kubernetes' customStrategicMergePatchTestCaseData ----

    #[test]
    fn kubernetes_custom_cases() {
        check(vec![
            (
                "unique scalars when merging lists",
                json!({"mergingIntList": [1, 2]}),
                json!({"mergingIntList": [2, 3]}),
                json!({"mergingIntList": [1, 2, 3]}),
            ),
            (
                "delete map from nested map",
                json!({"simpleMap": {"key1": 1, "key2": 1}}),
                json!({"simpleMap": {"$patch": "delete"}}),
                json!({"simpleMap": {}}),
            ),
            (
                "delete all items from merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2}]}),
                json!({"mergingList": [{"$patch": "replace"}]}),
                json!({"mergingList": []}),
            ),
            (
                "merge empty merging lists",
                json!({"mergingList": []}),
                json!({"mergingList": []}),
                json!({"mergingList": []}),
            ),
            (
                "delete all keys from map",
                json!({"name": 1, "value": 1}),
                json!({"$patch": "replace"}),
                json!({}),
            ),
            (
                "add key and delete all keys from map",
                json!({"name": 1, "value": 1}),
                json!({"other": "a", "$patch": "replace"}),
                json!({"other": "a"}),
            ),
            (
                "delete all duplicate entries in a merging list",
                json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]}),
                json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2, "value": "a"}]}),
            ),
            (
                "retainKeys map can add a field when no retainKeys directive present",
                json!({"retainKeysMap": {"name": "foo"}}),
                json!({"retainKeysMap": {"value": "bar"}}),
                json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
            ),
            (
                "retainKeys map can change a field when no retainKeys directive present",
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
                json!({"retainKeysMap": {"value": "b"}}),
                json!({"retainKeysMap": {"name": "foo", "value": "b"}}),
            ),
            (
                "retainKeys map can delete a field when no retainKeys directive present",
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
                json!({"retainKeysMap": {"value": null}}),
                json!({"retainKeysMap": {"name": "foo"}}),
            ),
            (
                "retainKeys map merge an empty map",
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
                json!({"retainKeysMap": {}}),
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
            ),
            (
                "retainKeys list can add a field when no retainKeys directive present",
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
                json!({"retainKeysMergingList": [{"name": "foo", "value": "a"}]}),
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
            ),
            (
                "retainKeys list can delete a field when no retainKeys directive present",
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
                json!({"retainKeysMergingList": [{"name": "foo", "value": null}]}),
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
            ),
            (
                "preserve the order from the patch in a merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
            ),
            (
                "preserve the order from the patch in a merging list 2",
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
                json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
            ),
            (
                "preserve the order from the patch in a merging int list",
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"mergingIntList": [3, 1, 2]}),
                json!({"mergingIntList": [3, 1, 2]}),
            ),
            (
                "preserve the order from the patch in a merging int list 2",
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"mergingIntList": [3, 1]}),
                json!({"mergingIntList": [2, 3, 1]}),
            ),
        ]);
    }

    // ---- Kubernetes' customStrategicMergePatchRawTestCases ----

    #[test]
    fn kubernetes_custom_raw_cases() {
        check(vec![
            (
                "$setElementOrder contains item that is not present in the list to be merged",
                json!({"mergingList": [{"name": 1}, {"name": 3}]}),
                json!({"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
                       "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
                json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
            ),
            (
                "$setElementOrder contains item that is not present in the int list to be merged",
                json!({"mergingIntList": [1, 3]}),
                json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
                json!({"mergingIntList": [3, 1]}),
            ),
            (
                "$deleteFromPrimitiveList of nonexistent item in primitive list should not add the item to the list",
                json!({"mergingIntList": [1, 2]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2]}),
            ),
            (
                "$deleteFromPrimitiveList on empty primitive list should not add the item to the list",
                json!({"mergingIntList": null}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": null}),
            ),
            (
                "$deleteFromPrimitiveList on nonexistent primitive list should not add the primitive list",
                json!({"foo": ["bar"]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"foo": ["bar"]}),
            ),
            (
                "$deleteFromPrimitiveList should delete item from a list with merge patch strategy",
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [2]}),
                json!({"mergingIntList": [1, 3]}),
            ),
            (
                "$deleteFromPrimitiveList should delete item from a list without merge patch strategy",
                json!({"nonMergingIntList": [1, 2, 3]}),
                json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]}),
                json!({"nonMergingIntList": [1, 3]}),
            ),
        ]);
    }

    #[test]
    fn kubernetes_error_cases() {
        let e = error(
            json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
            json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                   "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
        );
        assert!(e.contains("doesn't match"), "{e}");
        let e = error(
            json!({"mergingIntList": [1, 3, 2]}),
            json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
        );
        assert!(e.contains("doesn't match"), "{e}");
        let e = error(
            json!({"mergingList": [{"name": 1, "value": "a"}]}),
            json!({"mergingList": [{"value": "b"}]}),
        );
        assert_eq!(
            e,
            "mergingList[0]: map: {\"value\":\"b\"} does not contain declared merge key: name"
        );
    }

    // ---- Kubernetes' createStrategicMergePatchTestCaseData: (two-way patch on
    // original -> modified) and (three-way patch on current -> result) ----

    #[test]
    fn kubernetes_two_and_three_way_cases() {
        check(vec![
            (
                "nil original: three-way",
                json!({"name": 1, "other": "a"}),
                json!({"value": 1}),
                json!({"name": 1, "value": 1, "other": "a"}),
            ),
            (
                "add field and delete field from map: two-way",
                json!({"name": 1}),
                json!({"name": null, "value": 1}),
                json!({"value": 1}),
            ),
            (
                "add field and delete field from map with conflict: three-way",
                json!({"name": "a", "other": "a"}),
                json!({"name": null, "value": 1}),
                json!({"value": 1, "other": "a"}),
            ),
            (
                "delete field from nested map with conflict: three-way",
                json!({"simpleMap": {"key1": "a", "key2": 1, "other": "a"}}),
                json!({"simpleMap": {"key1": 1, "key2": null}}),
                json!({"simpleMap": {"key1": 1, "other": "a"}}),
            ),
            (
                "replace list of scalars with conflict: three-way",
                json!({"nonMergingIntList": [1, 4]}),
                json!({"nonMergingIntList": [2, 3]}),
                json!({"nonMergingIntList": [2, 3]}),
            ),
            (
                "delete all maps from merging list with conflict: three-way",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "other": "b"}]}),
                json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 2, "$patch": "delete"}]}),
                json!({"mergingList": []}),
            ),
            (
                "delete all maps from empty merging list: three-way",
                json!({"mergingList": []}),
                json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 2, "$patch": "delete"}]}),
                json!({"mergingList": []}),
            ),
            (
                "defined null values should propagate overwrite current fields (with conflict): three-way",
                json!({"name": "a", "other": "a"}),
                json!({"name": 1, "value": 1, "other": null}),
                json!({"name": 1, "value": 1}),
            ),
            (
                "defined null values should propagate overwrite current fields (with conflict): two-way",
                json!({"name": 2}),
                json!({"name": 1, "value": 1, "other": null}),
                json!({"name": 1, "value": 1}),
            ),
            (
                "retainKeys map with no change should not be present: three-way",
                json!({"name": "a", "other": "c", "retainKeysMap": {"name": "foo"}}),
                json!({"value": "b"}),
                json!({"name": "a", "value": "b", "other": "c", "retainKeysMap": {"name": "foo"}}),
            ),
        ]);
    }

    // ---- Kubernetes' strategicMergePatchRawTestCases (three-way: patch on current) ----

    #[test]
    fn kubernetes_raw_three_way_lists() {
        check(vec![
            (
                "nested patch merge with empty list: two-way",
                json!({"name": "hi"}),
                json!({"mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]}),
                json!({"name": "hi", "mergingList": [{"name": "hello"}]}),
            ),
            (
                "nested patch merge with empty list: three-way",
                json!({"name": "hi", "mergingList": [{"name": "hello2"}]}),
                json!({"$setElementOrder/mergingList": [{"name": "hello"}, {"name": "doesntexist"}],
                       "mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]}),
                json!({"name": "hi", "mergingList": [{"name": "hello"}, {"name": "hello2"}]}),
            ),
            (
                "delete items in lists of scalars",
                json!({"mergingIntList": [1, 2, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                "delete all duplicate items in lists of scalars",
                json!({"mergingIntList": [1, 2, 3, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                "add and delete items in lists of scalars: two-way",
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"$setElementOrder/mergingIntList": [1, 2, 4], "$deleteFromPrimitiveList/mergingIntList": [3],
                       "mergingIntList": [4]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                "merge lists of maps",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
                json!({"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"},
                                       {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
            ),
            (
                "merge lists of maps with conflict",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 3, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 2, "value": 2}, {"name": 3, "value": 3}]}),
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"},
                                       {"name": 3, "value": 3}]}),
            ),
            (
                "add field to map in merging list with conflict",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                       "mergingList": [{"name": 1, "value": 1}, {"name": 2, "value": 2}]}),
                json!({"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2},
                                       {"name": 3, "value": 2, "other": "b"}]}),
            ),
            (
                "delete map from merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}],
                       "mergingList": [{"name": 1, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2, "other": "b"}]}),
            ),
            (
                "delete missing map from merging list with conflict",
                json!({"mergingList": [{"name": 3, "other": "a"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}],
                       "mergingList": [{"name": 2}, {"name": 1, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2}, {"name": 3, "other": "a"}]}),
            ),
            (
                "add map and delete map from merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
            ),
            (
                "add map and delete map from merging list with conflict",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "other": "c"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 2}, {"name": 3}, {"name": 1, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 4, "other": "c"}, {"name": 2}, {"name": 3}]}),
            ),
            (
                "delete missing field from map in merging list with conflict",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                       "mergingList": [{"name": 1, "value": null}, {"name": 2, "value": 2}]}),
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            ),
            (
                "replace non merging list nested in merging list with value conflict",
                json!({"mergingList": [{"name": 1, "other": "a", "nonMergingList": [{"name": 1, "value": "c"}]},
                                       {"name": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                       "mergingList": [{"name": 1, "nonMergingList": [{"name": 1, "value": 1}]}]}),
                json!({"mergingList": [{"name": 1, "other": "a", "nonMergingList": [{"name": 1, "value": 1}]},
                                       {"name": 2, "other": "b"}]}),
            ),
            (
                "add field to map in merging list nested in merging list with deletion conflict (reordered)",
                json!({"mergingList": [{"name": 1, "other": "a", "mergingList": [{"name": 2, "value": 2, "other": "d"}]},
                                       {"name": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                       "mergingList": [{"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}], "name": 1,
                                        "mergingList": [{"name": 1, "value": 1}]}]}),
                json!({"mergingList": [{"name": 1, "other": "a", "mergingList": [
                                            {"name": 2, "value": 2, "other": "d"}, {"name": 1, "value": 1}]},
                                       {"name": 2, "other": "b"}]}),
            ),
            (
                "add map to merging list by pointer",
                json!({"mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 3}]}),
                json!({"$setElementOrder/mergeItemPtr": [{"name": 1}, {"name": 2}], "mergeItemPtr": [{"name": 2}]}),
                json!({"mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 2}, {"name": 3}]}),
            ),
            (
                "merge lists of scalars",
                json!({"mergingIntList": [1, 2, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 3, 4]}),
            ),
            (
                "add an item in a list of primitives and preserve order",
                json!({"mergingIntList": [1, 4, 2]}),
                json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
                json!({"mergingIntList": [3, 1, 4, 2]}),
            ),
            (
                "delete an item in a list of primitives and preserve order",
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"$setElementOrder/mergingIntList": [2, 1], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [2, 1]}),
            ),
            (
                "add multiple items in a list and preserve order",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 4}, {"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "value": 4},
                                       {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
            ),
            (
                "add and delete an item in a list and preserve order",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
                json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 1}],
                       "mergingList": [{"name": 4, "value": 4}, {"name": 3, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2, "other": "b"}, {"name": 1, "other": "a"}]}),
            ),
            (
                "set elements order in a list with server-only items 2",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 9},
                                       {"name": 3, "value": 3}, {"name": 4, "value": 4}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}]}),
                json!({"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 9},
                                       {"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
            ),
            (
                "set elements order in a list with server-only items 3",
                json!({"mergingIntList": [1, 2, 7, 9, 8, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3]}),
                json!({"mergingIntList": [2, 1, 7, 9, 8, 4, 3]}),
            ),
            (
                "behavior of set element order for a merging list with duplicate",
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "dup1"}, {"name": 3},
                                       {"name": 2, "value": "dup2"}, {"name": 4}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}, {"name": 2}]}),
                json!({"mergingList": [{"name": 2, "value": "dup1"}, {"name": 2, "value": "dup2"}, {"name": 1},
                                       {"name": 4}, {"name": 3}]}),
            ),
            (
                "behavior of set element order for a merging int list with duplicate",
                json!({"mergingIntList": [1, 2, 3, 2, 4]}),
                json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]}),
                json!({"mergingIntList": [2, 2, 1, 4, 3]}),
            ),
        ]);
    }

    #[test]
    fn kubernetes_retain_keys_cases() {
        check(vec![
            (
                "retainKeys map should clear defaulted field",
                json!({"retainKeysMap": {"value": "foo"}}),
                json!({"retainKeysMap": {"$retainKeys": ["other"], "other": "bar"}}),
                json!({"retainKeysMap": {"other": "bar"}}),
            ),
            (
                "retainKeys map should clear defaulted field with conflict (discriminated union)",
                json!({"retainKeysMap": {"name": "type1", "value": "foo"}}),
                json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "name": "type2", "other": "bar"}}),
                json!({"retainKeysMap": {"name": "type2", "other": "bar"}}),
            ),
            (
                "retainKeys map adds a field and clear a field",
                json!({"retainKeysMap": {"name": "foo", "other": "a"}}),
                json!({"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "bar"}}),
                json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
            ),
            (
                "retainKeys map deletes a field and clears a field",
                json!({"retainKeysMap": {"name": "foo", "value": "bar", "other": "a"}}),
                json!({"retainKeysMap": {"$retainKeys": ["name"], "value": null}}),
                json!({"retainKeysMap": {"name": "foo"}}),
            ),
            (
                "retainKeys map clears a field",
                json!({"retainKeysMap": {"name": "foo", "value": "bar", "other": "a"}}),
                json!({"retainKeysMap": {"$retainKeys": ["name", "value"]}}),
                json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
            ),
            (
                "retainKeys map deletes a field in a nested map",
                json!({"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key2": "b", "key3": "c"}}}),
                json!({"retainKeysMap": {"$retainKeys": ["name", "simpleMap", "value"], "simpleMap": {"key2": null}}}),
                json!({"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key3": "c"}}}),
            ),
        ]);
        let e = error(
            json!({}),
            json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}}),
        );
        assert_eq!(
            e,
            "retainKeysMap: invalid patch format of retainKeys: the patch sets \"value\", which $retainKeys does not list"
        );
        let e = error(json!({}), json!({"retainKeysMap": {"$retainKeys": "name"}}));
        assert!(
            e.contains("$retainKeys must be a list of field names"),
            "{e}"
        );
    }

    // ---- directives: what Kubernetes rejects, and what Skiff adds ----

    #[test]
    fn malformed_directives_are_errors() {
        assert_eq!(
            error(
                json!({"simpleMap": {}}),
                json!({"simpleMap": {"$patch": "frobnicate"}})
            ),
            "simpleMap: unknown patch type: \"frobnicate\" in map: {\"$patch\":\"frobnicate\"}: $patch must be \"replace\", \"delete\" or \"merge\""
        );
        assert!(error(json!({}), json!({"$patch": 1})).contains("unknown patch type: 1"));
        assert!(
            error(
                json!({"mergingList": []}),
                json!({"mergingList": [{"name": 1, "$patch": "remove"}]})
            )
            .starts_with("mergingList[0]: unknown patch type: \"remove\"")
        );
        assert!(
            error(json!({}), json!({"$frobnicate": 1}))
                .contains("unknown directive \"$frobnicate\"")
        );
        assert!(
            error(json!({}), json!({"$deleteFromPrimitiveList/": [1]}))
                .contains("does not name a field")
        );
        assert!(
            error(
                json!({"mergingIntList": [1]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": 1})
            )
            .contains("invalid patch format of primitive list")
        );
        assert!(
            error(
                json!({"mergingIntList": [1]}),
                json!({"$setElementOrder/mergingIntList": 1})
            )
            .contains("invalid patch format of setElementOrder list")
        );
        assert!(
            error(
                json!({"mergingList": []}),
                json!({"mergingList": [{"$patch": "delete", "value": 1}]})
            )
            .contains("does not contain declared merge key: name")
        );
        assert!(
            error(json!({"mergingList": []}), json!({"mergingList": ["a"]}))
                .contains("expected an object")
        );
        assert!(
            error(
                json!({"mergingIntList": []}),
                json!({"mergingIntList": [{"a": 1}]})
            )
            .contains("expected a scalar")
        );
        let lists = apply(
            json!({"mergingIntList": [[1]]}),
            json!({"mergingIntList": [2]}),
        )
        .unwrap_err();
        assert!(
            matches!(lists, PatchError::Unprocessable { .. }),
            "{lists:?}"
        );
        assert!(error(json!([]), json!({})).contains("not a JSON object"));
        assert_eq!(
            error(json!({}), json!([1])),
            "invalid patch: a strategic merge patch must be a JSON object, got [1]"
        );
    }

    #[test]
    fn merge_directive_is_the_default() {
        check(vec![
            (
                "$patch: merge on a map",
                json!({"simpleMap": {"a": "1"}}),
                json!({"simpleMap": {"$patch": "merge", "b": "2"}}),
                json!({"simpleMap": {"a": "1", "b": "2"}}),
            ),
            (
                "$patch: merge as a list item",
                json!({"mergingList": [{"name": 1, "value": "a"}]}),
                json!({"mergingList": [{"$patch": "merge"}, {"name": 2}]}),
                json!({"mergingList": [{"name": 2}, {"name": 1, "value": "a"}]}),
            ),
        ]);
    }

    #[test]
    fn new_values_are_cleaned() {
        check(vec![
            (
                "nulls inside a new value are dropped",
                json!({}),
                json!({"simpleMap": {"a": null, "b": "1"}}),
                json!({"simpleMap": {"b": "1"}}),
            ),
            (
                "a deleted map that was absent stays absent",
                json!({}),
                json!({"simpleMap": {"$patch": "delete"}}),
                json!({}),
            ),
            (
                "a replaced map that was absent is set",
                json!({}),
                json!({"simpleMap": {"$patch": "replace", "a": "1"}}),
                json!({"simpleMap": {"a": "1"}}),
            ),
            (
                "a scalar replaced by a map",
                json!({"simpleMap": "x"}),
                json!({"simpleMap": {"a": "1", "b": null}}),
                json!({"simpleMap": {"a": "1"}}),
            ),
            (
                "nulls in a replaced list's items are dropped",
                json!({"nonMergingList": [{"name": 1}]}),
                json!({"nonMergingList": [{"name": 2, "value": null}]}),
                json!({"nonMergingList": [{"name": 2}]}),
            ),
            (
                "a replace item in a list of scalars",
                json!({"mergingIntList": [1, 2]}),
                json!({"mergingIntList": [{"$patch": "replace"}, 3]}),
                json!({"mergingIntList": [3]}),
            ),
            (
                "merge keys compare as numbers",
                json!({"mergingList": [{"name": 1.0, "value": "a"}]}),
                json!({"mergingList": [{"name": 1, "other": "b"}]}),
                json!({"mergingList": [{"name": 1, "value": "a", "other": "b"}]}),
            ),
        ]);
    }

    // ---- real kinds ----

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "finalizers": ["a"],
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "web", "image": "web:1",
                             "ports": [{"containerPort": 80, "protocol": "TCP"}],
                             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "args": ["--a", "--b"]},
                            {"name": "log", "image": "log:1"}
                        ],
                        "tolerations": [{"key": "a", "operator": "Exists"}],
                        "volumes": [{"name": "data", "emptyDir": {}}]
                    }
                }
            }
        })
    }

    fn deploy_kind() -> &'static ResourceType {
        by_kind("apps/v1", "Deployment").unwrap()
    }

    fn patch_deployment(patch: Value) -> Value {
        strategic_merge_patch(&deployment(), &patch, deploy_kind()).unwrap()
    }

    #[test]
    fn containers_merge_by_name() {
        // `kubectl set image deployment/web web=web:2`
        let got = patch_deployment(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}),
        );
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "web:2");
        assert_eq!(
            containers[0]["env"],
            deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
        );
        assert_eq!(containers[1], json!({"name": "log", "image": "log:1"}));
    }

    #[test]
    fn nested_lists_merge_by_their_keys_and_atomic_lists_are_replaced() {
        let got = patch_deployment(json!({"spec": {"template": {"spec": {
            "containers": [{"name": "web",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
                            "args": ["--c"]}],
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "volumes": [{"name": "config", "configMap": {"name": "cfg"}}]
        }}}}));
        let spec = &got["spec"]["template"]["spec"];
        let web = &spec["containers"][0];
        // As in Kubernetes, items a patch adds without `$setElementOrder` come
        // before the server's items.
        assert_eq!(
            web["ports"],
            json!([{"containerPort": 8080}, {"containerPort": 80, "protocol": "TCP"}])
        );
        assert_eq!(web["env"], json!([{"name": "B", "value": "3"}]));
        assert_eq!(web["args"], json!(["--c"]), "args are atomic");
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "b", "operator": "Exists"}]),
            "tolerations are atomic"
        );
        assert_eq!(
            spec["volumes"],
            json!([{"name": "config", "configMap": {"name": "cfg"}}, {"name": "data", "emptyDir": {}}])
        );
    }

    /// What `kubectl apply` sends when a manifest switches the strategy to
    /// Recreate and drops the `log` container.
    #[test]
    fn kubectl_apply_three_way_patch() {
        let got = patch_deployment(json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {
                "replicas": 3,
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null},
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"name": "log", "$patch": "delete"}]
                }}
            }
        }));
        assert_eq!(got["spec"]["replicas"], 3);
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"][0]["name"],
            "web"
        );
        assert_eq!(
            got["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
    }

    /// `kubectl rollout restart` and `kubectl rollout pause`.
    #[test]
    fn kubectl_rollout() {
        let got = patch_deployment(json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}));
        assert_eq!(
            got["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            got["spec"]["template"]["metadata"]["labels"],
            json!({"app": "web"})
        );
        let got = patch_deployment(json!({"spec": {"paused": true}}));
        assert_eq!(got["spec"]["paused"], true);
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let got = patch_deployment(json!({"metadata": {"finalizers": ["b", "a"]}}));
        assert_eq!(got["metadata"]["finalizers"], json!(["b", "a"]));
        let got = patch_deployment(json!({"metadata": {"finalizers": ["c"]}}));
        assert_eq!(got["metadata"]["finalizers"], json!(["c", "a"]));
        let got =
            patch_deployment(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
        assert_eq!(got["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        let kind = by_kind("v1", "Service").unwrap();
        let got = strategic_merge_patch(
            &svc,
            &json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
            kind,
        )
        .unwrap();
        assert_eq!(
            got["spec"]["ports"],
            json!([{"port": 443, "targetPort": 8443}, {"port": 80, "targetPort": 8080}])
        );
    }

    #[test]
    fn node_taints_are_atomic() {
        // `kubectl taint` sends the whole list.
        let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]}});
        let kind = by_kind("v1", "Node").unwrap();
        let got = strategic_merge_patch(
            &node,
            &json!({"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}],
            "podCIDRs": ["fd00::/64"]}}),
            kind,
        )
        .unwrap();
        assert_eq!(
            got["spec"]["taints"],
            json!([{"key": "b", "effect": "NoSchedule"}])
        );
        assert_eq!(got["spec"]["podCIDRs"], json!(["fd00::/64", "10.0.0.0/24"]));
    }

    #[test]
    fn pod_status_conditions_merge_by_type() {
        let pod = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}});
        let kind = by_kind("v1", "Pod").unwrap();
        let got = strategic_merge_patch(
            &pod,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            kind,
        )
        .unwrap();
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
        );
    }

    #[test]
    fn unknown_kinds_replace_lists_but_keep_directives_and_metadata() {
        let kind = by_kind("skiff.dev/v1alpha1", "Component").unwrap();
        let comp = json!({"metadata": {"name": "c", "finalizers": ["a"]}, "spec": {"exports": [{"name": "x"}], "labels": {"a": "1"}}});
        let got = strategic_merge_patch(
            &comp,
            &json!({
                "metadata": {"finalizers": ["b"]},
                "spec": {"exports": [{"name": "y"}], "labels": {"$patch": "replace", "b": "2"}}
            }),
            kind,
        )
        .unwrap();
        assert_eq!(got["spec"]["exports"], json!([{"name": "y"}]));
        assert_eq!(got["spec"]["labels"], json!({"b": "2"}));
        assert_eq!(
            got["metadata"]["finalizers"],
            json!(["b", "a"]),
            "ObjectMeta is known for every kind"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let err = strategic_merge_patch(
            &deployment(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            deploy_kind(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.template.spec.containers[0]: map: {\"image\":\"x\"} does not contain declared merge key: name"
        );
    }

    #[test]
    fn field_strategies() {
        let deploy = deploy_kind();
        assert_eq!(
            field_strategy(deploy, &["spec", "strategy"]),
            FieldStrategy::RetainKeys
        );
        assert_eq!(
            field_strategy(deploy, &["spec", "template", "spec", "volumes"]),
            FieldStrategy::MergeByKey {
                key: "name",
                retain_keys: true
            }
        );
        assert_eq!(
            field_strategy(deploy, &["spec", "template", "spec", "containers", "ports"]),
            FieldStrategy::MergeByKey {
                key: "containerPort",
                retain_keys: false
            }
        );
        assert_eq!(
            field_strategy(
                deploy,
                &["spec", "template", "spec", "initContainers", "volumeMounts"]
            ),
            FieldStrategy::MergeByKey {
                key: "mountPath",
                retain_keys: false
            }
        );
        assert_eq!(
            field_strategy(deploy, &["metadata", "finalizers"]),
            FieldStrategy::MergeSet
        );
        assert_eq!(
            field_strategy(deploy, &["metadata", "ownerReferences"]),
            FieldStrategy::MergeByKey {
                key: "uid",
                retain_keys: false
            }
        );
        assert_eq!(
            field_strategy(deploy, &["spec", "template", "spec", "tolerations"]),
            FieldStrategy::Default
        );
        assert_eq!(
            field_strategy(deploy, &["spec", "nope", "containers"]),
            FieldStrategy::Default
        );
        let sa = by_kind("v1", "ServiceAccount").unwrap();
        assert_eq!(
            field_strategy(sa, &["secrets"]),
            FieldStrategy::MergeByKey {
                key: "name",
                retain_keys: false
            }
        );
        let job = by_kind("batch/v1", "Job").unwrap();
        assert_eq!(
            field_strategy(job, &["status", "conditions"]),
            FieldStrategy::MergeByKey {
                key: "type",
                retain_keys: false
            }
        );
        let cj = by_kind("batch/v1", "CronJob").unwrap();
        assert_eq!(
            field_strategy(
                cj,
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                    "env"
                ]
            ),
            FieldStrategy::MergeByKey {
                key: "name",
                retain_keys: false
            }
        );
    }
}
