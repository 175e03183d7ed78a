//! JSON merge patch (RFC 7386): what `kubectl label`, `kubectl annotate`,
//! `kubectl scale` and `kubectl patch --type merge` send.

use serde_json::Value;

/// Applies a JSON merge patch to `target` in place: objects merge key by key,
/// `null` deletes a key, and anything else (lists included) replaces the target
/// value whole. A patch that is not an object replaces the whole target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(target: Value, patch: Value) -> Value {
        let mut target = target;
        merge_patch(&mut target, &patch);
        target
    }

    /// The examples of RFC 7386, appendix A.
    #[test]
    fn rfc_7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(
                merged(target.clone(), patch.clone()),
                expected,
                "{target} + {patch}"
            );
        }
    }

    /// What `kubectl label pod web tier=front app-` sends.
    #[test]
    fn kubectl_label() {
        let pod = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]}
        });
        let patch = json!({"metadata": {"labels": {"app": null, "tier": "front"}}});
        assert_eq!(
            merged(pod, patch),
            json!({
                "metadata": {"name": "web", "labels": {"env": "prod", "tier": "front"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}
            })
        );
    }

    /// Lists are replaced, never merged: a merge patch of containers drops the rest.
    #[test]
    fn lists_are_replaced() {
        let target = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "x"}]}});
        assert_eq!(
            merged(target, patch),
            json!({"spec": {"containers": [{"name": "b", "image": "x"}]}})
        );
    }
}
