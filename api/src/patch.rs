//! The patch formats Kubernetes clients send, applied to objects in their API
//! JSON form.
//!
//! A `PATCH` request names its format in `Content-Type` ([`PatchType`]): a JSON
//! patch ([`json_patch`], RFC 6902), a JSON merge patch ([`merge_patch`],
//! RFC 7386), a strategic merge patch ([`strategic_merge_patch`], what `kubectl
//! apply`, `edit`, `patch`, `rollout` and `set` send for built-in kinds) or a
//! server-side apply configuration ([`server_side_apply`]). After every write
//! the API server calls [`record_update`] so that `metadata.managedFields`
//! tracks which manager set which field, which server-side apply relies on.
//! Everything here is pure: objects in, objects (or a [`PatchError`]) out.

mod apply;
mod json;
mod merge;
pub(crate) mod strategic;

pub use apply::{
    ApplyError, Conflict, ListError, record_subresource_update, record_update, server_side_apply,
};
pub use json::json_patch;
pub use merge::merge_patch;
pub use strategic::{FieldStrategy, field_strategy, strategic_merge_patch};

use crate::status::{ApiError, Reason};

/// The most operations a JSON patch may carry, as in the Kubernetes API server.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes (as JSON) the `copy` operations of one JSON patch may add
/// together. Kubernetes bounds the same sum (`JSONPatchMaxCopyBytes`, handed to
/// json-patch's `AccumulatedCopySizeLimit` in apiserver `pkg/server/config.go`)
/// because a few dozen operations copying a field into itself double it each
/// time. Skiff uses the object limit ([`crate::resource::MAX_OBJECT_BYTES`]):
/// copies adding more than that can only build an object the store refuses,
/// and the server's memory for one patch stays a small multiple of it.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = crate::resource::MAX_OBJECT_BYTES;

/// The patch formats, by the `Content-Type` a client sends them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document does not have the shape its format requires (a JSON
    /// patch that is not a list of operations, a merge patch that is not an
    /// object, ...).
    #[error("invalid patch: {0}")]
    InvalidDocument(String),
    /// A JSON patch has more operations than [`MAX_JSON_PATCH_OPERATIONS`].
    #[error("the allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations {
        /// The limit.
        max: usize,
        /// How many the patch had.
        got: usize,
    },
    /// One JSON patch operation could not be applied.
    #[error("json patch operation {index} ({op} {path}) failed: {reason}")]
    JsonPatchFailed {
        /// Index of the operation in the patch, from 0.
        index: usize,
        /// The operation: `add`, `remove`, `replace`, `move`, `copy` or `test`.
        op: String,
        /// Its target JSON pointer.
        path: String,
        /// What went wrong, e.g. `path "/spec/foo" does not exist`.
        reason: String,
    },
    /// A strategic merge patch is malformed at `path` (of the patch document,
    /// e.g. `spec.template.spec.containers[0]`): an unknown or malformed
    /// directive, a list item without its merge key, ...
    #[error("{}", at(path, message))]
    Strategic {
        /// Where in the patch, empty at its root.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A strategic merge patch is well formed but cannot be applied to this
    /// object (Kubernetes answers these with 422), e.g. a list of lists.
    #[error("{}", at(path, message))]
    Unprocessable {
        /// Where in the patch, empty at its root.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl PatchType {
    /// The patch type named by a `Content-Type` header value; parameters such as
    /// `; charset=utf-8` and letter case are ignored.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type of this patch format.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

impl PatchError {
    pub(crate) fn strategic(path: &str, message: impl Into<String>) -> PatchError {
        PatchError::Strategic {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn unprocessable(path: &str, message: impl Into<String>) -> PatchError {
        PatchError::Unprocessable {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// `path: message`, or just `message` at the root.
fn at(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

impl From<PatchError> for ApiError {
    /// Kubernetes answers a malformed patch with 400 BadRequest, a JSON patch
    /// operation that does not apply (and a few strategic merge patch errors)
    /// with 422, and too many JSON patch operations with 413.
    fn from(err: PatchError) -> ApiError {
        let reason = match &err {
            PatchError::InvalidDocument(_) | PatchError::Strategic { .. } => Reason::BadRequest,
            PatchError::TooManyOperations { .. } => Reason::RequestEntityTooLarge,
            PatchError::JsonPatchFailed { .. } | PatchError::Unprocessable { .. } => {
                Reason::Invalid
            }
        };
        ApiError::new(reason, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("Application/Strategic-Merge-Patch+JSON"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type(""), None);
        for pt in [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ] {
            assert_eq!(PatchType::from_content_type(pt.content_type()), Some(pt));
        }
    }

    #[test]
    fn errors_become_statuses() {
        let e: ApiError =
            PatchError::InvalidDocument("a JSON patch must be a list of operations".into()).into();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message,
            "invalid patch: a JSON patch must be a list of operations"
        );

        let e: ApiError = PatchError::JsonPatchFailed {
            index: 1,
            op: "remove".into(),
            path: "/spec/foo".into(),
            reason: "path \"/spec/foo\" does not exist".into(),
        }
        .into();
        assert_eq!(e.code(), 422);
        assert_eq!(e.to_status()["reason"], "Invalid");
        assert_eq!(
            e.message,
            "json patch operation 1 (remove /spec/foo) failed: path \"/spec/foo\" does not exist"
        );

        let e: ApiError = PatchError::strategic("spec.containers[0]", "missing merge key").into();
        assert_eq!(e.code(), 400);
        assert_eq!(e.message, "spec.containers[0]: missing merge key");

        let e: ApiError = PatchError::TooManyOperations {
            max: 10_000,
            got: 10_001,
        }
        .into();
        assert_eq!(e.code(), 413);
    }
}
