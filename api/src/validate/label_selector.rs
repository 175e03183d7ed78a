//! `metav1.LabelSelector` as workloads carry it: its validation
//! (Kubernetes' `ValidateLabelSelector`) and whether it selects a set of labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::metadata::validate_labels;
use super::{Errors, child, index, invalid_each, names};
use crate::status::FieldError;

/// Kubernetes' `ValidateLabelSelector`.
pub(crate) fn validate(selector: &LabelSelector, path: &str, errs: &mut Errors) {
    if let Some(labels) = &selector.match_labels {
        validate_labels(labels, &child(path, "matchLabels"), errs);
    }
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let path = index(&child(path, "matchExpressions"), i);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                child(&path, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
        invalid_each(
            &child(&path, "key"),
            &req.key,
            names::is_qualified_name(&req.key),
            errs,
        );
        for (j, v) in values.iter().enumerate() {
            invalid_each(
                &index(&child(&path, "values"), j),
                v,
                names::is_valid_label_value(v),
                errs,
            );
        }
    }
}

/// Whether the selector has no requirement at all (`{}`).
pub(crate) fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether `selector` selects `labels`. An empty selector selects everything,
/// as `metav1.LabelSelectorAsSelector` makes it.
pub(crate) fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector.match_expressions.iter().flatten().all(|req| {
            let values = req.values.as_deref().unwrap_or_default();
            let value = labels.get(&req.key);
            match req.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Selector equality as Kubernetes' semantic `DeepEqual` sees it after decoding:
/// absent and empty lists and maps are the same.
pub(crate) fn same(a: &LabelSelector, b: &LabelSelector) -> bool {
    let labels = |s: &LabelSelector| s.match_labels.clone().unwrap_or_default();
    let exprs = |s: &LabelSelector| {
        s.match_expressions
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.key.clone(),
                    r.operator.clone(),
                    r.values.clone().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    labels(a) == labels(b) && exprs(a) == exprs(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matching() {
        let s = sel(json!({"matchLabels": {"app": "web"},
                           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                                {"key": "canary", "operator": "DoesNotExist"}]}));
        assert!(matches(&s, &labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!matches(&s, &labels(&[("app", "web"), ("tier", "db")])));
        assert!(!matches(
            &s,
            &labels(&[("app", "web"), ("tier", "fe"), ("canary", "1")])
        ));
        assert!(matches(&sel(json!({})), &labels(&[])));
        assert!(is_empty(&sel(json!({"matchLabels": {}}))));
    }

    #[test]
    fn validation() {
        let s = sel(json!({"matchLabels": {"app": "-"},
                           "matchExpressions": [{"key": "a", "operator": "In"},
                                                {"key": "b", "operator": "Exists", "values": ["x"]},
                                                {"key": "c", "operator": "Like"}]}));
        let mut errs = Errors::new();
        validate(&s, "spec.selector", &mut errs);
        let fields: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(fields.len(), 4);
        assert!(fields[0].starts_with("spec.selector.matchLabels: Invalid value: \"-\""));
        assert_eq!(
            fields[1],
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            fields[2],
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
        assert_eq!(
            fields[3],
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Like\": not a valid selector operator"
        );
        assert!(same(
            &sel(json!({"matchLabels": {"a": "b"}, "matchExpressions": []})),
            &sel(json!({"matchLabels": {"a": "b"}}))
        ));
    }
}
