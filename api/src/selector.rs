//! Label and field selectors, as the Kubernetes API takes them.
//!
//! A [`LabelSelector`] comes from the `labelSelector` query parameter
//! (`app=web,tier in (front,back),!canary`) or from a `metav1.LabelSelector` in an
//! object (`spec.selector` with `matchLabels` and `matchExpressions`), and selects
//! objects by `metadata.labels`. A [`FieldSelector`] comes from the `fieldSelector`
//! query parameter (`status.phase!=Running,spec.nodeName=`) and selects objects by
//! the few fields each kind makes selectable.
//!
//! Both parse, print and fail as `k8s.io/apimachinery` does, so `kubectl -l` and
//! `kubectl --field-selector` behave as against Kubernetes: the same canonical
//! strings, and 400 errors with the same messages. Both match objects held as
//! `serde_json::Value` in their API JSON form.

mod field;
mod label;

pub use field::{FieldOperator, FieldRequirement, FieldSelector};
pub use label::{LabelSelector, Operator, Requirement};
