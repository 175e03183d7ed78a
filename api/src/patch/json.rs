//! JSON patch (RFC 6902): what `kubectl patch --type json` and `kubectl rollout
//! undo` send. A list of operations applied in order; if one fails, none apply.

use json_patch::jsonptr::Pointer;
use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::{MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS, PatchError};
use crate::json::encoded_len_at_most;

/// Applies the JSON patch `patch` (a list of operations) to `target`. On error
/// `target` is left unchanged and the error names the failing operation's index,
/// its path and why it failed.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = decode(patch)?;
    // Applied one by one to a copy: the copy is the document as the failing
    // operation saw it, which is what an error message must describe.
    let mut work = target.clone();
    // What the copies so far added, checked before each copy runs: a patch
    // doubling a field forty times is refused at the step that would pass the
    // limit, never after building the result.
    let mut copied = 0usize;
    for (index, op) in ops.iter().enumerate() {
        if let PatchOperation::Copy(copy) = op
            && let Ok(from) = copy.from.resolve(&work)
        {
            let budget = MAX_JSON_PATCH_COPY_BYTES - copied;
            match encoded_len_at_most(from, budget) {
                Some(len) => copied += len,
                None => {
                    return Err(PatchError::JsonPatchFailed {
                        index,
                        op: "copy".to_string(),
                        path: copy.path.as_str().to_string(),
                        reason: format!(
                            "the accumulated size increase of copy would exceed the limit of {MAX_JSON_PATCH_COPY_BYTES} bytes"
                        ),
                    });
                }
            }
        }
        if let Err(err) = json_patch::patch_unsafe(&mut work, std::slice::from_ref(op)) {
            return Err(PatchError::JsonPatchFailed {
                index,
                op: op_name(op).to_string(),
                path: op.path().as_str().to_string(),
                reason: explain(&work, op, &err.kind),
            });
        }
    }
    *target = work;
    Ok(())
}

/// Decodes the operations one by one, so that a malformed one is named.
fn decode(patch: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    let Value::Array(items) = patch else {
        return Err(PatchError::InvalidDocument(format!(
            "a JSON patch must be a list of operations, got {}",
            type_name(patch)
        )));
    };
    if items.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: items.len(),
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            if !item.is_object() {
                return Err(PatchError::InvalidDocument(format!(
                    "operation {index} must be an object, got {}",
                    type_name(item)
                )));
            }
            serde_json::from_value::<PatchOperation>(item.clone())
                .map_err(|e| PatchError::InvalidDocument(format!("operation {index}: {e}")))
        })
        .collect()
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// Why `op` failed on `doc`, in words.
fn explain(doc: &Value, op: &PatchOperation, kind: &PatchErrorKind) -> String {
    match (op, kind) {
        (PatchOperation::Test(t), _) => match t.path.resolve(doc) {
            Ok(actual) => format!(
                "the value at {:?} is {actual}, not {}",
                t.path.as_str(),
                t.value
            ),
            Err(_) => missing(doc, &t.path, false),
        },
        (PatchOperation::Move(m), PatchErrorKind::CannotMoveInsideItself) => {
            format!("cannot move {:?} into itself", m.from.as_str())
        }
        (PatchOperation::Move(m), PatchErrorKind::InvalidFromPointer) => {
            missing(doc, &m.from, false)
        }
        (PatchOperation::Copy(c), PatchErrorKind::InvalidFromPointer) => {
            missing(doc, &c.from, false)
        }
        (PatchOperation::Add(a), _) => missing(doc, &a.path, true),
        (PatchOperation::Move(m), _) => missing(doc, &m.path, true),
        (PatchOperation::Copy(c), _) => missing(doc, &c.path, true),
        (PatchOperation::Remove(r), _) => missing(doc, &r.path, false),
        (PatchOperation::Replace(r), _) => missing(doc, &r.path, false),
    }
}

/// Describes the first step of `ptr` that does not resolve in `doc`. With
/// `adding`, the last step may name a new object key or the end of a list.
fn missing(doc: &Value, ptr: &Pointer, adding: bool) -> String {
    if ptr.is_root() {
        return "the whole document cannot be removed or replaced this way".to_string();
    }
    let tokens: Vec<_> = ptr.tokens().collect();
    let mut current = doc;
    let mut walked = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        let name = token.decoded();
        let here = if walked.is_empty() {
            "the document".to_string()
        } else {
            format!("{walked:?}")
        };
        walked.push('/');
        walked.push_str(token.encoded());
        match current {
            Value::Object(map) => match map.get(name.as_ref()) {
                Some(next) => current = next,
                None if last && adding => break,
                None => return format!("path {walked:?} does not exist"),
            },
            Value::Array(items) => {
                if last && adding && name == "-" {
                    break;
                }
                let Ok(index) = name.parse::<usize>() else {
                    return format!("{here} is a list and {name:?} is not a list index");
                };
                let limit = if last && adding {
                    items.len() + 1
                } else {
                    items.len()
                };
                if index >= limit {
                    return format!(
                        "index {index} is out of bounds: {here} has {} items",
                        items.len()
                    );
                }
                match items.get(index) {
                    Some(next) => current = next,
                    None => break,
                }
            }
            other => return format!("{here} is {}, not an object or a list", type_name(other)),
        }
    }
    // Everything resolved: the pointer is well formed but the operation was not
    // (e.g. a malformed list index such as "01").
    format!("path {:?} is invalid", ptr.as_str())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ApiError;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
        })
    }

    #[test]
    fn applies_operations_in_order() {
        let mut d = doc();
        json_patch(
            &mut d,
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
                {"op": "remove", "path": "/metadata/labels/app"},
                {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "side"}},
                {"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"},
                {"op": "move", "from": "/metadata/generateName", "path": "/metadata/alias"}
            ]),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({
                "metadata": {"name": "web", "labels": {"tier": "front"}, "alias": "web"},
                "spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "web", "image": "web:1"}, {"name": "side"}
                ]}}}
            })
        );
    }

    /// `kubectl rollout undo` replaces the template and the annotations, which a
    /// Deployment always has (the controller records its revision there).
    #[test]
    fn rollout_undo_shape() {
        let mut d = doc();
        d["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        let template = json!({"spec": {"containers": [{"name": "web", "image": "web:0"}]}});
        json_patch(
            &mut d,
            &json!([
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
            ]),
        )
        .unwrap();
        assert_eq!(d["spec"]["template"], template);
        assert_eq!(
            d["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision": "1"})
        );
    }

    #[test]
    fn failure_names_index_path_and_reason_and_changes_nothing() {
        let mut d = doc();
        let err = json_patch(
            &mut d,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "remove", "path": "/spec/paused"}
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::JsonPatchFailed {
                index: 1,
                op: "remove".into(),
                path: "/spec/paused".into(),
                reason: "path \"/spec/paused\" does not exist".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "json patch operation 1 (remove /spec/paused) failed: path \"/spec/paused\" does not exist"
        );
        assert_eq!(d, doc(), "a failed patch must not change the target");
    }

    #[test]
    fn failure_reasons() {
        let reason = |patch: Value| match json_patch(&mut doc(), &patch) {
            Err(PatchError::JsonPatchFailed { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(json!([{"op": "test", "path": "/spec/replicas", "value": 2}])),
            "the value at \"/spec/replicas\" is 1, not 2"
        );
        assert_eq!(
            reason(json!([{"op": "add", "path": "/spec/strategy/type", "value": "Recreate"}])),
            "path \"/spec/strategy\" does not exist"
        );
        assert_eq!(
            reason(
                json!([{"op": "replace", "path": "/spec/template/spec/containers/3/image", "value": "x"}])
            ),
            "index 3 is out of bounds: \"/spec/template/spec/containers\" has 1 items"
        );
        assert_eq!(
            reason(
                json!([{"op": "add", "path": "/spec/template/spec/containers/web", "value": {}}])
            ),
            "\"/spec/template/spec/containers\" is a list and \"web\" is not a list index"
        );
        assert_eq!(
            reason(json!([{"op": "add", "path": "/spec/replicas/x", "value": 1}])),
            "\"/spec/replicas\" is a number, not an object or a list"
        );
        assert_eq!(
            reason(json!([{"op": "move", "from": "/spec/nope", "path": "/spec/x"}])),
            "path \"/spec/nope\" does not exist"
        );
        assert_eq!(
            reason(json!([{"op": "move", "from": "/spec", "path": "/spec/template/x"}])),
            "cannot move \"/spec\" into itself"
        );
    }

    /// Forty copies of a list into itself would make 2^40 elements: the copy
    /// that would pass the limit is refused, and the target is unchanged.
    #[test]
    fn self_copy_amplification_is_refused_at_the_limit() {
        let mut d = json!({"spec": {"x": ["0123456789abcdef"]}});
        let ops: Vec<Value> = (0..40)
            .map(|_| json!({"op": "copy", "from": "/spec/x", "path": "/spec/x/-"}))
            .collect();
        let err = json_patch(&mut d, &Value::Array(ops)).unwrap_err();
        let PatchError::JsonPatchFailed {
            index, op, reason, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(op, "copy");
        // 2^k copies of a 19-byte item pass 1.5 MiB at about step 17.
        assert!((15..20).contains(index), "refused at {index}");
        assert!(reason.contains("exceed the limit"), "{reason}");
        assert_eq!(ApiError::from(err).code(), 422);
        assert_eq!(d, json!({"spec": {"x": ["0123456789abcdef"]}}));
    }

    #[test]
    fn copies_within_the_limit_apply() {
        let mut d = json!({"a": "x".repeat(1000)});
        let ops: Vec<Value> = (0..100)
            .map(|i| json!({"op": "copy", "from": "/a", "path": format!("/b{i}")}))
            .collect();
        json_patch(&mut d, &Value::Array(ops)).unwrap();
        assert_eq!(d.as_object().unwrap().len(), 101);
    }

    #[test]
    fn add_at_end_of_list_by_index() {
        let mut d = json!({"a": [1, 2]});
        json_patch(&mut d, &json!([{"op": "add", "path": "/a/2", "value": 3}])).unwrap();
        assert_eq!(d, json!({"a": [1, 2, 3]}));
    }

    #[test]
    fn malformed_documents() {
        let err = json_patch(&mut doc(), &json!({"op": "add"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid patch: a JSON patch must be a list of operations, got an object"
        );
        let err = json_patch(
            &mut doc(),
            &json!([{"op": "add", "path": "/a", "value": 1}, 3]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid patch: operation 1 must be an object, got a number"
        );
        let err = json_patch(&mut doc(), &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid patch: operation 0: unknown variant `frobnicate`"),
            "{err}"
        );
        let err = json_patch(&mut doc(), &json!([{"op": "add", "path": "/a"}])).unwrap_err();
        assert!(err.to_string().contains("missing field `value`"), "{err}");
        let too_many = Value::Array(vec![
            json!({"op": "test", "path": "", "value": 1});
            MAX_JSON_PATCH_OPERATIONS + 1
        ]);
        assert_eq!(
            json_patch(&mut doc(), &too_many).unwrap_err(),
            PatchError::TooManyOperations {
                max: MAX_JSON_PATCH_OPERATIONS,
                got: MAX_JSON_PATCH_OPERATIONS + 1
            }
        );
    }
}
