//! The Lease printer (coordination.k8s.io).

use jiff::Timestamp;
use serde_json::Value;

use super::{AGE, Column, NAME, Printer, age_cell, name_cell, str_at};

pub(super) const LEASE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
        ),
        AGE,
    ],
    cells: lease_cells,
};

/// `printLease`: NAME HOLDER AGE.
fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_cell(lease),
        Value::from(str_at(lease, "/spec/holderIdentity")),
        age_cell(lease, now),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn leases() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let lease = json!({"metadata": {"name": "node-1"}, "spec": {"holderIdentity": "node-1"}});
        assert_eq!(lease_cells(&lease, now)[1], json!("node-1"));
        assert_eq!(lease_cells(&json!({}), now)[1], json!(""));
    }
}
