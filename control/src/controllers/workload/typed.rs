//! Reading typed workload objects: the metadata fields every controller
//! reads, and a workload's typed label selector as the selector Skiff
//! matches pods with.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as TypedSelector, ObjectMeta};
use skiff_api::selector::LabelSelector;
use skiff_api::status::ApiError;

/// `metadata.namespace`, or empty.
pub fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

/// `metadata.name`, or empty.
pub fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// `metadata.uid`, or empty.
pub fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or_default()
}

/// A workload's `spec.selector`; `None` selects nothing.
pub fn selector(selector: Option<&TypedSelector>) -> Result<LabelSelector, ApiError> {
    let selector = selector
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| ApiError::internal(format!("encoding a selector: {e}")))?;
    LabelSelector::from_object_at(selector.as_ref(), "spec.selector")
        .map_err(|_| ApiError::bad_request("invalid selector"))
}
