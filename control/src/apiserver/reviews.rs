//! The review APIs, answered from the same authenticator and authorizer that
//! guard every request, so a review says what the real request would get:
//!
//! - `authentication.k8s.io` SelfSubjectReview (`kubectl auth whoami`);
//! - `authorization.k8s.io` SelfSubjectAccessReview (`kubectl auth can-i`),
//!   SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectRulesReview
//!   (`kubectl auth can-i --list`).
//!
//! Each is create-only and stores nothing; the access check already decided
//! whether the caller may create it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use skiff_api::status::{ApiError, FieldError, Reason};

use super::ApiState;
use super::access::{RequestUser, user_info_json};
use super::response::{HandlerResult, json};
use crate::auth::attributes::{Attributes, Request, ResourceAttributes};
use crate::auth::rbac::Decision;
use crate::auth::user::UserInfo;

/// A review request, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    SelfSubject { version: String },
    SelfSubjectAccess,
    SubjectAccess,
    LocalSubjectAccess { namespace: String },
    SelfSubjectRules,
}

/// The review a path names, if it names one.
pub fn parse(path: &str) -> Option<Review> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [
            "apis",
            "authentication.k8s.io",
            version @ ("v1" | "v1beta1"),
            "selfsubjectreviews",
        ] => Some(Review::SelfSubject {
            version: version.to_string(),
        }),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => Some(Review::SelfSubjectAccess),
        ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"] => {
            Some(Review::SubjectAccess)
        }
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "namespaces",
            ns,
            "localsubjectaccessreviews",
        ] => Some(Review::LocalSubjectAccess {
            namespace: ns.to_string(),
        }),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
        ] => Some(Review::SelfSubjectRules),
        _ => None,
    }
}

/// Answers a review.
pub async fn handle(
    state: Arc<ApiState>,
    review: Review,
    method: Method,
    headers: &HeaderMap,
    user: Option<RequestUser>,
    body: Bytes,
) -> HandlerResult {
    if method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))
        .into());
    }
    let user = user
        .map(|u| u.0.as_ref().clone())
        .ok_or_else(|| ApiError::internal("no authenticated user on the request"))?;
    let body: Value = super::request::parse_body(headers, &body)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let (kind, group_version, status) = match review {
        Review::SelfSubject { version } => (
            "SelfSubjectReview",
            format!("authentication.k8s.io/{version}"),
            json!({ "userInfo": user_info_json(&user) }),
        ),
        Review::SelfSubjectAccess => {
            let attrs = attributes_of(&spec, user, None)?;
            (
                "SelfSubjectAccessReview",
                v1(),
                decide(&state, &attrs).await,
            )
        }
        Review::SubjectAccess => {
            let attrs = attributes_of(&spec, subject_of(&spec)?, None)?;
            ("SubjectAccessReview", v1(), decide(&state, &attrs).await)
        }
        Review::LocalSubjectAccess { namespace } => {
            let attrs = attributes_of(&spec, subject_of(&spec)?, Some(&namespace))?;
            (
                "LocalSubjectAccessReview",
                v1(),
                decide(&state, &attrs).await,
            )
        }
        Review::SelfSubjectRules => {
            let namespace = spec["namespace"].as_str().unwrap_or("");
            (
                "SelfSubjectRulesReview",
                v1(),
                rules(&state, &user, namespace),
            )
        }
    };
    Ok(created(json!({
        "kind": kind,
        "apiVersion": group_version,
        "metadata": { "creationTimestamp": null },
        "spec": spec,
        "status": status,
    })))
}

fn v1() -> String {
    "authorization.k8s.io/v1".into()
}

fn created(body: Value) -> Response {
    json(StatusCode::CREATED, &body)
}

async fn decide(state: &ApiState, attrs: &Attributes) -> Value {
    match state.authorizer.authorize_fresh(attrs).await {
        Decision::Allow(reason) if reason.is_empty() => json!({ "allowed": true }),
        Decision::Allow(reason) => json!({ "allowed": true, "reason": reason }),
        Decision::Deny => json!({ "allowed": false }),
    }
}

/// The subject of a (Local)SubjectAccessReview: `spec.user`, `groups`, `uid`, `extra`.
fn subject_of(spec: &Value) -> Result<UserInfo, ApiError> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let user = UserInfo {
        name: spec["user"].as_str().unwrap_or("").to_string(),
        uid: spec["uid"].as_str().unwrap_or("").to_string(),
        groups: strings(&spec["groups"]),
        extra: spec["extra"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect::<BTreeMap<_, _>>(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(invalid(vec![FieldError::invalid(
            "spec.user",
            json!(""),
            "at least one of user or group must be specified",
        )]));
    }
    Ok(user)
}

/// The attributes a review's spec asks about. `namespace` is the
/// LocalSubjectAccessReview's, which the spec must not contradict.
fn attributes_of(
    spec: &Value,
    user: UserInfo,
    namespace: Option<&str>,
) -> Result<Attributes, ApiError> {
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or("").to_string();
    let (verb, request) = match (resource, non_resource) {
        (Some(r), None) => {
            let mut attrs = ResourceAttributes {
                namespace: text(r, "namespace"),
                api_group: text(r, "group"),
                api_version: text(r, "version"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                name: text(r, "name"),
            };
            if let Some(ns) = namespace {
                if !attrs.namespace.is_empty() && attrs.namespace != ns {
                    return Err(invalid(vec![FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        json!(attrs.namespace),
                        "must match metadata.namespace",
                    )]));
                }
                attrs.namespace = ns.to_string();
            }
            (text(r, "verb"), Request::Resource(attrs))
        }
        (None, Some(n)) => (
            text(n, "verb"),
            Request::NonResource {
                path: text(n, "path"),
            },
        ),
        (Some(_), Some(_)) => {
            return Err(invalid(vec![FieldError::invalid(
                "spec.nonResourceAttributes",
                json!({}),
                "cannot be specified in combination with resourceAttributes",
            )]));
        }
        (None, None) => {
            return Err(invalid(vec![FieldError::required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )]));
        }
    };
    Ok(Attributes {
        user,
        verb,
        request,
    })
}

/// What `user` may do in `namespace`, as SelfSubjectRulesReview lists it.
fn rules(state: &ApiState, user: &UserInfo, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in state.authorizer.rules_for(user, namespace) {
        if let Some(urls) = rule.non_resource_urls.filter(|u| !u.is_empty()) {
            non_resource_rules.push(json!({ "verbs": rule.verbs, "nonResourceURLs": urls }));
        } else {
            let mut entry = json!({
                "verbs": rule.verbs,
                "apiGroups": rule.api_groups.unwrap_or_default(),
                "resources": rule.resources.unwrap_or_default(),
            });
            if let Some(names) = rule.resource_names.filter(|n| !n.is_empty()) {
                entry["resourceNames"] = json!(names);
            }
            resource_rules.push(entry);
        }
    }
    json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    })
}

fn invalid(causes: Vec<FieldError>) -> ApiError {
    let list: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
    let mut e = ApiError::new(Reason::Invalid, list.join(", "));
    e.details = Some(Box::new(skiff_api::status::Details {
        causes,
        ..Default::default()
    }));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths() {
        assert_eq!(
            parse("/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews"),
            Some(Review::LocalSubjectAccess {
                namespace: "team".into()
            })
        );
        assert_eq!(
            parse("/apis/authentication.k8s.io/v1/selfsubjectreviews"),
            Some(Review::SelfSubject {
                version: "v1".into()
            })
        );
        assert_eq!(parse("/apis/authorization.k8s.io/v1"), None);
        assert_eq!(parse("/api/v1/pods"), None);
    }

    #[test]
    fn a_spec_names_resource_or_path() {
        let alice = UserInfo::authenticated("alice", []);
        let spec = json!({"resourceAttributes": {"namespace": "a", "verb": "get", "resource": "pods", "subresource": "log", "name": "p"}});
        let attrs = attributes_of(&spec, alice.clone(), None).unwrap();
        assert_eq!(attrs.verb, "get");
        assert_eq!(attrs.resource().unwrap().subresource, "log");
        let local = attributes_of(&spec, alice.clone(), Some("b"));
        assert_eq!(local.unwrap_err().reason, Reason::Invalid);
        assert!(attributes_of(&json!({}), alice.clone(), None).is_err());
        let path = attributes_of(
            &json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}),
            alice,
            None,
        )
        .unwrap();
        assert_eq!(
            path.request,
            Request::NonResource {
                path: "/metrics".into()
            }
        );
        assert!(subject_of(&json!({})).is_err());
        assert_eq!(
            subject_of(&json!({"user": "bob", "groups": ["g"]}))
                .unwrap()
                .groups,
            ["g"]
        );
    }
}
