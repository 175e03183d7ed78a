//! JSON helpers for the control plane's hot paths: JSON Pointer lookups
//! without allocation, and comparison that skips named fields without copying.
//!
//! `serde_json::Value::pointer` unescapes every reference token into a new
//! `String`, which made it one of the control plane's hottest allocations: the
//! controllers read `metadata.name`, `spec.nodeName` and the like on every
//! event. [`Pointer::at`] gives the same answers (RFC 6901), allocating only
//! for a token that holds an escape (`~0`, `~1`).

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Looks up a value by JSON Pointer (`"/metadata/name"`; `""` is the value itself).
pub trait Pointer {
    fn at(&self, pointer: &str) -> Option<&Value>;
}

impl Pointer for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        rest.split('/').try_fold(self, |target, token| {
            let token = unescape(token);
            match target {
                Value::Object(map) => map.get(token.as_ref()),
                Value::Array(items) => index(&token).and_then(|i| items.get(i)),
                _ => None,
            }
        })
    }
}

/// Whether two objects are equal but for the fields named in `skip`, compared
/// in place (no copy with those fields removed).
pub fn equal_except(a: &Map<String, Value>, b: &Map<String, Value>, skip: &[&str]) -> bool {
    let covered = |x: &Map<String, Value>, y: &Map<String, Value>| {
        x.iter()
            .all(|(k, v)| skip.contains(&k.as_str()) || y.get(k) == Some(v))
    };
    covered(a, b) && covered(b, a)
}

/// The length of `value` encoded as compact JSON, if it is at most `max`
/// bytes; `None` as soon as the encoding passes `max`, so that measuring a
/// huge value costs no more than `max` bytes of encoding and no allocation.
pub fn encoded_len_at_most(value: &Value, max: usize) -> Option<usize> {
    let mut counter = ByteCounter { count: 0, max };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.count)
}

/// Counts what is written to it, failing once past `max`.
struct ByteCounter {
    count: usize,
    max: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.count = self.count.saturating_add(buf.len());
        if self.count > self.max {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// An array index as RFC 6901 allows it: digits, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) || token.starts_with('+') {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encoded_len_matches_serde_json_and_stops_at_max() {
        let v = json!({"a": ["x\"y", 1, null], "b": {"c": true}});
        let len = serde_json::to_vec(&v).unwrap().len();
        assert_eq!(encoded_len_at_most(&v, len), Some(len));
        assert_eq!(encoded_len_at_most(&v, len - 1), None);
        assert_eq!(encoded_len_at_most(&json!(null), 4), Some(4));
    }

    #[test]
    fn answers_as_serde_json_pointer_does() {
        let v = json!({
            "metadata": {"name": "web", "labels": {"a/b": "1", "m~n": "2"}},
            "spec": {"containers": [{"name": "c0"}, {"name": "c1"}]},
            "": {"x": 3},
        });
        for p in [
            "",
            "/metadata/name",
            "/metadata/labels/a~1b",
            "/metadata/labels/m~0n",
            "/spec/containers/1/name",
            "/spec/containers/01/name",
            "/spec/containers/+1/name",
            "/spec/containers/2",
            "/spec/containers/x",
            "/metadata/name/deeper",
            "//x",
            "metadata",
            "/missing",
        ] {
            assert_eq!(v.at(p), v.pointer(p), "pointer {p:?}");
        }
    }

    #[test]
    fn equal_except_ignores_only_the_named_fields() {
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        let a = obj(json!({"spec": 1, "status": "a", "rv": "1"}));
        let b = obj(json!({"spec": 1, "status": "b", "rv": "2"}));
        assert!(equal_except(&a, &b, &["status", "rv"]));
        assert!(!equal_except(&a, &b, &["status"]));
        // A field on one side only is a difference, whichever side.
        let c = obj(json!({"spec": 1, "status": "a", "rv": "1", "extra": true}));
        assert!(!equal_except(&a, &c, &["status", "rv"]));
        assert!(!equal_except(&c, &a, &["status", "rv"]));
        assert!(equal_except(&a, &c, &["status", "rv", "extra"]));
    }
}
