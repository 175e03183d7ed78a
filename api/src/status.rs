//! Kubernetes `Status` errors: what every failed API call answers with.
//!
//! [`ApiError`] is the one error type the API server turns into a response; field
//! problems are collected as [`FieldError`]s and become `details.causes`, worded the
//! way Kubernetes words them so that users and `kubectl` see familiar messages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::ResourceType;

/// The machine-readable reason of a failed call (`Status.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    Timeout,
    Expired,
    TooManyRequests,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    InternalError,
    ServiceUnavailable,
}

impl Reason {
    /// The HTTP status code Kubernetes pairs with this reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Gone | Reason::Expired => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }
}

/// What is wrong with one field, as Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldErrorKind {
    /// A required field is missing or empty.
    Required,
    /// The value is malformed; carries the offending value.
    Invalid(Value),
    /// The value is not one of the supported ones.
    NotSupported(Value, Vec<String>),
    /// The value repeats one that must be unique.
    Duplicate(Value),
    /// The field may not be set (or changed) here.
    Forbidden,
    /// The value is longer than allowed; carries the maximum.
    TooLong(usize),
    /// The value has the wrong JSON type; carries the offending value.
    TypeInvalid(Value),
    /// A field that the schema does not declare (strict field validation).
    Unknown,
}

/// One problem with one field: `spec.replicas: Invalid value: -1: must be ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// JSON path in Kubernetes' notation, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    pub kind: FieldErrorKind,
    /// Free-text detail appended to the message; may be empty.
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, detail)
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(field, FieldErrorKind::Invalid(value.into()), detail)
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Forbidden, detail)
    }

    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&str],
    ) -> Self {
        Self::new(
            field,
            FieldErrorKind::NotSupported(
                value.into(),
                supported.iter().map(|s| s.to_string()).collect(),
            ),
            "",
        )
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(field, FieldErrorKind::Duplicate(value.into()), "")
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(field, FieldErrorKind::TooLong(max), "")
    }

    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(field, FieldErrorKind::TypeInvalid(value.into()), detail)
    }

    pub fn unknown(field: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Unknown, "")
    }

    pub fn new(field: impl Into<String>, kind: FieldErrorKind, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind,
            detail: detail.into(),
        }
    }

    /// `causes[].reason`, as Kubernetes spells it.
    pub fn cause_reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid(_) => "FieldValueInvalid",
            FieldErrorKind::NotSupported(..) => "FieldValueNotSupported",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong(_) => "FieldValueTooLong",
            FieldErrorKind::TypeInvalid(_) => "FieldValueTypeInvalid",
            FieldErrorKind::Unknown => "FieldValueInvalid",
        }
    }

    /// The message without the field: `Invalid value: "x": detail`.
    pub fn message(&self) -> String {
        let head = match &self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid(v) | FieldErrorKind::TypeInvalid(v) => {
                format!("Invalid value: {}", render_value(v))
            }
            FieldErrorKind::NotSupported(v, supported) => {
                let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    "Unsupported value: {}: supported values: {}",
                    render_value(v),
                    list.join(", ")
                )
            }
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {}", render_value(v)),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooLong(max) => format!("Too long: may not be more than {max} bytes"),
            FieldErrorKind::Unknown => "unknown field".to_string(),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            // Kubernetes prints strict-decoding problems as `unknown field "spec.foo"`.
            FieldErrorKind::Unknown => write!(f, "unknown field \"{}\"", self.field),
            _ => write!(f, "{}: {}", self.field, self.message()),
        }
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// A failed API call: becomes a `Status` body with the matching HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// Boxed so that `Result<T, ApiError>` stays small on the happy path.
    pub details: Option<Box<Details>>,
    /// Overrides the code implied by `reason` (e.g. 500 with a custom reason).
    pub code: Option<u16>,
}

/// `Status.details`: which object, and per-field causes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Details {
    pub name: String,
    pub group: String,
    pub kind: String,
    pub causes: Vec<FieldError>,
    pub retry_after_seconds: Option<u32>,
}

/// `Result` with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            details: None,
            code: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            Reason::NotFound,
            format!("{} \"{}\" not found", rt.qualified_resource(), name),
        );
        e.details = Some(Box::new(Details::object(rt, name, Vec::new())));
        e
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            Reason::AlreadyExists,
            format!("{} \"{}\" already exists", rt.qualified_resource(), name),
        );
        e.details = Some(Box::new(Details::object(rt, name, Vec::new())));
        e
    }

    /// A stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                rt.qualified_resource(),
                name,
                why
            ),
        );
        e.details = Some(Box::new(Details::object(rt, name, Vec::new())));
        e
    }

    /// A watch or list from a revision that has been compacted away.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(Reason::Expired, message)
    }

    /// 422 Invalid with the field causes, worded as Kubernetes does.
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<FieldError>) -> Self {
        let list: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            Reason::Invalid,
            format!(
                "{} \"{}\" is invalid: {}",
                rt.qualified_kind(),
                name,
                joined
            ),
        );
        // Invalid names the kind (not the resource) in details, as Kubernetes'
        // NewInvalid does; kubectl prints `The Deployment "x" is invalid`.
        let mut details = Details::object(rt, name, causes);
        details.kind = rt.kind.to_string();
        e.details = Some(Box::new(details));
        e
    }

    /// 400 BadRequest naming the fields that could not be decoded (wrong type,
    /// unknown field under strict validation).
    pub fn bad_fields(rt: &ResourceType, name: &str, causes: Vec<FieldError>) -> Self {
        let list: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
        let mut e = Self::new(
            Reason::BadRequest,
            format!(
                "{} in version \"{}\" cannot be handled as a {}: {}",
                rt.kind,
                rt.version,
                rt.kind,
                list.join(", ")
            ),
        );
        e.details = Some(Box::new(Details::object(rt, name, causes)));
        e
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(Reason::MethodNotAllowed, message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
            ),
        )
    }

    /// The HTTP status code to answer with.
    pub fn code(&self) -> u16 {
        self.code.unwrap_or_else(|| self.reason.code())
    }

    /// The `Status` object, as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code(),
        });
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if !d.name.is_empty() {
                details.insert("name".into(), d.name.clone().into());
            }
            if !d.group.is_empty() {
                details.insert("group".into(), d.group.clone().into());
            }
            if !d.kind.is_empty() {
                details.insert("kind".into(), d.kind.clone().into());
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "reason": c.cause_reason(),
                            "message": match c.kind {
                                FieldErrorKind::Unknown => c.to_string(),
                                _ => c.message(),
                            },
                            "field": c.field,
                        })
                    })
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            if let Some(secs) = d.retry_after_seconds {
                details.insert("retryAfterSeconds".into(), secs.into());
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl Details {
    pub fn object(rt: &ResourceType, name: &str, causes: Vec<FieldError>) -> Self {
        Details {
            name: name.to_string(),
            group: rt.group.to_string(),
            kind: rt.plural.to_string(),
            causes,
            retry_after_seconds: None,
        }
    }
}

/// A `Status` reporting success, e.g. the answer to a delete of an object that is
/// gone at once.
pub fn success_status(rt: &ResourceType, name: &str, uid: &str) -> Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": name, "group": rt.group, "kind": rt.plural, "uid": uid },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;

    #[test]
    fn invalid_reads_like_kubernetes() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let err = ApiError::invalid(
            rt,
            "Bad_Name",
            vec![FieldError::invalid(
                "metadata.name",
                "Bad_Name",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
            )],
        );
        let s = err.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert!(s["message"].as_str().unwrap().starts_with(
            "Deployment.apps \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ));
    }

    #[test]
    fn required_message() {
        let e = FieldError::required("spec.selector", "");
        assert_eq!(e.to_string(), "spec.selector: Required value");
    }
}
