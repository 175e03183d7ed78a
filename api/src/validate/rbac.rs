//! Roles, ClusterRoles and their bindings (rbac.authorization.k8s.io).

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use super::{Errors, child, index, invalid_each, names};
use crate::status::FieldError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Role and ClusterRole rules: Kubernetes' `ValidatePolicyRule`.
pub(crate) fn validate_rules(rules: Option<&[PolicyRule]>, namespaced: bool, errs: &mut Errors) {
    for (i, rule) in rules.unwrap_or_default().iter().enumerate() {
        let p = index("rules", i);
        if rule.verbs.is_empty() {
            errs.push(FieldError::required(
                child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let resource_names = rule.resource_names.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            let urls_json = serde_json::Value::from(urls.to_vec());
            if namespaced {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    urls_json.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() || !resource_names.is_empty() {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    urls_json,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errs.push(FieldError::required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errs.push(FieldError::required(
                child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// RoleBinding and ClusterRoleBinding: Kubernetes' `ValidateRoleBinding`.
pub(crate) fn validate_role_binding(
    role_ref: &RoleRef,
    subjects: Option<&[Subject]>,
    namespaced: bool,
    errs: &mut Errors,
) {
    if role_ref.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            role_ref.api_group.as_str(),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        invalid_each(
            "roleRef.name",
            &role_ref.name,
            names::is_valid_path_segment_name(&role_ref.name),
            errs,
        );
    }
    for (i, s) in subjects.unwrap_or_default().iter().enumerate() {
        validate_subject(s, namespaced, &index("subjects", i), errs);
    }
}

fn validate_subject(s: &Subject, namespaced: bool, path: &str, errs: &mut Errors) {
    if s.name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                invalid_each(
                    &child(path, "name"),
                    &s.name,
                    names::is_dns1123_subdomain(&s.name),
                    errs,
                );
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(
                    child(path, "apiGroup"),
                    group,
                    &[""],
                ));
            }
            if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(child(path, "namespace"), ""));
            }
        }
        // An absent apiGroup defaults to the RBAC group for users and groups.
        "User" | "Group" => {
            if !group.is_empty() && group != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    child(path, "apiGroup"),
                    group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            child(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// A binding's roleRef cannot change.
pub(crate) fn validate_role_ref_update(old: &RoleRef, new: &RoleRef, errs: &mut Errors) {
    if old != new {
        errs.push(FieldError::invalid(
            "roleRef",
            super::to_json(new),
            "cannot change roleRef",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strings(errs: &Errors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn rbac() {
        let rules: Vec<PolicyRule> = serde_json::from_value(json!([
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": [], "apiGroups": []},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}
        ]))
        .unwrap();
        let mut errs = Errors::new();
        validate_rules(Some(&rules), true, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].resources: Required value: resource rules must supply at least one resource",
                "rules[2].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
                "rules[2].nonResourceURLs: Invalid value: [\"/healthz\"]: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
        let role_ref: RoleRef = serde_json::from_value(
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}),
        )
        .unwrap();
        let subjects: Vec<Subject> = serde_json::from_value(json!([
            {"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "r2"}
        ])).unwrap();
        let mut errs = Errors::new();
        validate_role_binding(&role_ref, Some(&subjects), false, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[1].namespace: Required value",
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
    }
}
