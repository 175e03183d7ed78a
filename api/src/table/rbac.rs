//! The RoleBinding and ClusterRoleBinding printers (rbac.authorization.k8s.io).

use jiff::Timestamp;
use serde_json::Value;

use super::{AGE, Column, NAME, Printer, age_cell, arr_at, name_cell, str_at};

pub(super) const ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Role",
            "string",
            "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
        ),
        AGE,
        Column::new("Users", "string", "Users in the roleBinding").wide(),
        Column::new("Groups", "string", "Groups in the roleBinding").wide(),
        Column::new(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the roleBinding",
        )
        .wide(),
    ],
    cells: role_binding_cells,
};

pub(super) const CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Role",
            "string",
            "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
        ),
        AGE,
        Column::new("Users", "string", "Users in the clusterRoleBinding").wide(),
        Column::new("Groups", "string", "Groups in the clusterRoleBinding").wide(),
        Column::new(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the clusterRoleBinding",
        )
        .wide(),
    ],
    cells: role_binding_cells,
};

/// `printRoleBinding` and `printClusterRoleBinding`: NAME ROLE AGE | USERS
/// GROUPS SERVICEACCOUNTS.
fn role_binding_cells(binding: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(binding, "/roleRef/kind"),
        str_at(binding, "/roleRef/name")
    );
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in arr_at(binding, "/subjects") {
        let name = str_at(subject, "/name");
        match str_at(subject, "/kind") {
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{name}", str_at(subject, "/namespace")))
            }
            "User" => users.push(name.to_string()),
            "Group" => groups.push(name.to_string()),
            _ => {}
        }
    }
    vec![
        name_cell(binding),
        Value::from(role),
        age_cell(binding, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(service_accounts.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn bindings() {
        let binding = json!({
            "metadata": {"name": "readers", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
            ],
        });
        assert_eq!(
            role_binding_cells(&binding, now()),
            vec![
                json!("readers"),
                json!("ClusterRole/view"),
                json!("60s"),
                json!("alice, bob"),
                json!("devs"),
                json!("tools/ci"),
            ]
        );
    }
}
