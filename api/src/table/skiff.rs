//! The printer for Skiff's own `Component` kind: NAME TAG DIGEST KIND SIZE AGE,
//! with EXPORTS in `-o wide`.
//!
//! Component follows the conventions of a custom resource, so its AGE column is
//! a `date` column like a CustomResourceDefinition's.

use jiff::Timestamp;
use serde_json::Value;

use super::fallback::CRD_AGE;
use super::{Column, NAME, Printer, age_cell, arr_at, name_cell, opt_int, str_at};

pub(super) const COMPONENT: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Tag",
            "string",
            "The tag that names this version of the component.",
        ),
        Column::new(
            "Digest",
            "string",
            "The sha256 of the component's bytes, shortened to 12 hex digits.",
        ),
        Column::new(
            "Kind",
            "string",
            "What the component is, read from its exports: Http (an instance per request), Command (runs until it exits) or Unknown.",
        ),
        Column::new("Size", "string", "The size of the component."),
        CRD_AGE,
        Column::new("Exports", "string", "Interfaces the component exports.").wide(),
    ],
    cells: component_cells,
};

/// Hex digits of a digest that the DIGEST column keeps, as `docker images` does.
const SHORT_DIGEST_HEX: usize = 12;

/// NAME TAG DIGEST KIND SIZE AGE | EXPORTS.
fn component_cells(component: &Value, now: Timestamp) -> Vec<Value> {
    let size = opt_int(component, "/spec/size")
        .filter(|s| *s >= 0)
        .map(|s| human_size(s.unsigned_abs()))
        .unwrap_or_else(|| "<none>".to_string());
    let exports: Vec<&str> = arr_at(component, "/spec/exports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![
        name_cell(component),
        Value::from(super::or_none(str_at(component, "/spec/tag"))),
        Value::from(super::or_none(&short_digest(str_at(
            component,
            "/spec/digest",
        )))),
        Value::from(super::or_none(str_at(component, "/spec/kind"))),
        Value::from(size),
        age_cell(component, now),
        Value::from(super::or_none(&exports.join(","))),
    ]
}

/// `sha256:<first 12 hex digits>`; anything that is not a sha256 digest as is.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.is_ascii() && hex.len() > SHORT_DIGEST_HEX => {
            format!("sha256:{}", &hex[..SHORT_DIGEST_HEX])
        }
        _ => digest.to_string(),
    }
}

/// Bytes in binary units with one decimal: `512B`, `1.2MiB`, `18.0MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit when the value, as printed, would read 1024.0 or more.
    while value >= 1023.95 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn components() {
        let digest = format!("sha256:3f5a9c2e7b1d{}", "0".repeat(52));
        let component = json!({
            "apiVersion": "skiff.dev/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "hello.v1", "creationTimestamp": "2024-05-01T11:58:30Z"},
            "spec": {
                "name": "hello",
                "tag": "v1",
                "digest": digest,
                "size": 1_258_291,
                "exports": ["wasi:http/incoming-handler@0.2.0", "wasi:cli/run@0.2.0"],
                "imports": [],
                "kind": "Http",
            },
        });
        assert_eq!(
            component_cells(&component, now()),
            vec![
                json!("hello.v1"),
                json!("v1"),
                json!("sha256:3f5a9c2e7b1d"),
                json!("Http"),
                json!("1.2MiB"),
                json!("90s"),
                json!("wasi:http/incoming-handler@0.2.0,wasi:cli/run@0.2.0"),
            ]
        );
        let empty = json!({"metadata": {"name": "broken"}});
        assert_eq!(
            component_cells(&empty, now())[1..7],
            [
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn sizes_and_digests() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(1024), "1.0KiB");
        assert_eq!(human_size(18 * 1024 * 1024), "18.0MiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0GiB");
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(short_digest("md5:abcdef0123456789"), "md5:abcdef0123456789");
    }
}
