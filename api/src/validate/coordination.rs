//! Lease (coordination.k8s.io).

use k8s_openapi::api::coordination::v1::Lease;

use super::{Errors, invalid_each, names};
use crate::status::FieldError;

/// Lease: positive duration, non-negative transitions.
pub(crate) fn validate_lease(lease: &Lease, errs: &mut Errors) {
    let Some(spec) = &lease.spec else { return };
    if let Some(d) = spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(strategy) = spec.strategy.as_deref() {
        invalid_each(
            "spec.strategy",
            strategy,
            names::is_qualified_name(strategy),
            errs,
        );
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        && spec.strategy.is_none()
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
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
    fn leases() {
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})).unwrap();
        let mut errs = Errors::new();
        validate_lease(&lease, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }
}
