//! The two fallbacks: Kubernetes' default table convertor (`NAME, CREATED AT`)
//! and a CustomResourceDefinition's default columns (`NAME, AGE`).

use jiff::Timestamp;
use serde_json::Value;

use super::{CREATION_TIMESTAMP_DOC, Column, NAME, Printer, age_cell, name_cell, timestamp_at};

/// Kubernetes' default table convertor, for kinds it has no printer for (Role,
/// ClusterRole, LimitRange): the name and the creation time in RFC 3339.
pub(super) const CREATED_AT: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Created At", "date", CREATION_TIMESTAMP_DOC),
    ],
    cells: created_at_cells,
};

/// The columns of a CustomResourceDefinition that declares none: the name and
/// an age computed from `.metadata.creationTimestamp`.
pub(super) const NAME_AGE: Printer = Printer {
    columns: &[NAME, CRD_AGE],
    cells: name_age_cells,
};

/// The `Age` column Kubernetes gives a custom resource.
pub(super) const CRD_AGE: Column = Column::new(
    "Age",
    "date",
    "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp",
);

/// The default table convertor's row: the name and
/// `creationTimestamp` in RFC 3339 (Go's zero time when unset).
fn created_at_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = timestamp_at(obj, "/metadata/creationTimestamp")
        .map(crate::meta::format_timestamp)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![name_cell(obj), Value::from(created)]
}

/// A custom resource's default row: the name and its age.
fn name_age_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name_cell(obj), age_cell(obj, now)]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn fallbacks() {
        let role =
            json!({"metadata": {"name": "reader", "creationTimestamp": "2024-05-01T11:00:00Z"}});
        assert_eq!(
            created_at_cells(&role, now()),
            vec![json!("reader"), json!("2024-05-01T11:00:00Z")]
        );
        assert_eq!(
            created_at_cells(&json!({}), now()),
            vec![json!(""), json!("0001-01-01T00:00:00Z")]
        );
        assert_eq!(
            name_age_cells(&role, now()),
            vec![json!("reader"), json!("60m")]
        );
    }
}
