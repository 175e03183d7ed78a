//! Authentication, impersonation and authorization of every API request, in
//! Kubernetes' order (staging/src/k8s.io/apiserver/pkg/endpoints/filters):
//!
//! 1. Who: a verified client certificate (the listener puts its user in the
//!    request as [`PeerUser`]), else a ServiceAccount bearer token, else
//!    anonymous. A bad token is 401. Anonymous requests are accepted only for
//!    `/healthz`, `/livez`, `/readyz` and `/version` (Kubernetes 1.32's
//!    anonymous-auth conditions, as K3s would configure them); anything else
//!    is 401.
//! 2. As whom: `Impersonate-User`, `-Group`, `-Uid`, `-Extra-*` headers, each
//!    allowed only if the caller may `impersonate` it.
//! 3. May they: the [`Authorizer`](crate::auth::authorizer::Authorizer); a
//!    denial is 403 with Kubernetes' message.
//!
//! The user the request runs as is left in it as [`RequestUser`] for the
//! handlers that need it (reviews, TokenRequest).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::json;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Details, Reason};

use super::ApiState;
use super::response::ErrorResponse;
use crate::auth::attributes::{self, Attributes, Request as Target, ResourceAttributes};
use crate::auth::service_account_token::Claims;
use crate::auth::user::{
    ADMIN, AUTHENTICATED, MASTERS, SERVICE_ACCOUNTS, UNAUTHENTICATED, UserInfo,
    parse_service_account_user,
};

/// Paths anyone may read without credentials (system:public-info-viewer).
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The user a verified client certificate names, set per connection by the
/// listener; `None` when the client sent no certificate.
#[derive(Clone, Debug, Default)]
pub struct PeerUser(pub Option<Arc<UserInfo>>);

impl PeerUser {
    /// The admin of `skiff server`'s kubeconfig, for requests made in-process
    /// (`Router::oneshot` in tests).
    pub fn admin() -> Self {
        PeerUser(Some(Arc::new(UserInfo::authenticated(
            ADMIN,
            [MASTERS.to_string()],
        ))))
    }
}

/// The user a request acts as, after impersonation.
#[derive(Clone, Debug)]
pub struct RequestUser(pub Arc<UserInfo>);

/// The middleware: authenticate, impersonate, authorize.
pub async fn check(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let user = match authenticate(&state, &request) {
        Ok(user) => user,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    if user.is_anonymous() && !PUBLIC_PATHS.contains(&path.as_str()) {
        return ErrorResponse(unauthorized()).into_response();
    }
    let user = match impersonate(&state, user, request.headers()).await {
        Ok(user) => user,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    let (verb, target) =
        attributes::of_request(request.method().as_str(), &path, request.uri().query());
    let attrs = Attributes {
        user,
        verb,
        request: target,
    };
    if !state.authorizer.authorize_fresh(&attrs).await.allowed() {
        tracing::debug!(user = %attrs.user.name, verb = %attrs.verb, %path, "forbidden");
        return ErrorResponse(forbidden(&attrs, "")).into_response();
    }
    request
        .extensions_mut()
        .insert(RequestUser(Arc::new(attrs.user)));
    next.run(request).await
}

/// `401 Unauthorized`, as Kubernetes words it.
pub fn unauthorized() -> ApiError {
    ApiError::new(Reason::Unauthorized, "Unauthorized")
}

/// The user of a request, before impersonation.
fn authenticate(state: &ApiState, request: &Request) -> Result<UserInfo, ApiError> {
    if let Some(PeerUser(Some(user))) = request.extensions().get::<PeerUser>() {
        return Ok(user.as_ref().clone());
    }
    match bearer_token(request.headers()) {
        Some(token) => service_account_user(state, token).ok_or_else(unauthorized),
        None => Ok(UserInfo::anonymous()),
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The ServiceAccount a token names, if its signature and times are good and
/// the ServiceAccount (and any object it is bound to) still exists with the
/// uid it had when the token was made.
fn service_account_user(state: &ApiState, token: &str) -> Option<UserInfo> {
    let claims = match state.tokens.verify(token) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(error = %e, "bearer token refused");
            return None;
        }
    };
    let k = &claims.kubernetes;
    let exists = |api_version: &str, kind: &str, namespace: &str, name: &str, uid: &str| {
        let Some(rt) = by_kind(api_version, kind) else {
            return false;
        };
        let ns = if rt.namespaced { namespace } else { "" };
        matches!(
            state.registry.try_get(rt, ns, name),
            Ok(Some(obj)) if obj["metadata"]["uid"].as_str() == Some(uid)
        )
    };
    let sa = &k.serviceaccount;
    if !exists("v1", "ServiceAccount", &k.namespace, &sa.name, &sa.uid) {
        tracing::debug!(namespace = %k.namespace, name = %sa.name, "token of a ServiceAccount that is gone");
        return None;
    }
    for (kind, bound) in [("Pod", &k.pod), ("Secret", &k.secret), ("Node", &k.node)] {
        if let Some(bound) = bound
            && !exists("v1", kind, &k.namespace, &bound.name, &bound.uid)
        {
            tracing::debug!(kind, name = %bound.name, "token bound to an object that is gone");
            return None;
        }
    }
    let mut user = UserInfo::service_account(&k.namespace, &sa.name, &sa.uid);
    add_bound_extras(&mut user, &claims);
    Some(user)
}

/// The extra attributes Kubernetes gives a bound token's user.
fn add_bound_extras(user: &mut UserInfo, claims: &Claims) {
    let k = &claims.kubernetes;
    if let Some(pod) = &k.pod {
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod.name.clone()],
        );
        user.extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![pod.uid.clone()],
        );
    }
    if !claims.jti.is_empty() {
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", claims.jti)],
        );
    }
}

/// The user named by `Impersonate-*` headers, once the caller is allowed
/// each part of it; the caller itself without them.
async fn impersonate(
    state: &ApiState,
    caller: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let users = values("impersonate-user");
    let groups = values("impersonate-group");
    let uids = values("impersonate-uid");
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
            && let Ok(value) = value.to_str()
        {
            extra
                .entry(percent_decode_key(key))
                .or_default()
                .push(value.to_string());
        }
    }
    let Some(name) = users.first() else {
        if !groups.is_empty() || !uids.is_empty() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(caller);
    };
    let check = |attrs: ResourceAttributes| {
        let attrs = Attributes {
            user: caller.clone(),
            verb: "impersonate".into(),
            request: Target::Resource(attrs),
        };
        async move {
            if state.authorizer.authorize_fresh(&attrs).await.allowed() {
                Ok(())
            } else {
                Err(forbidden(&attrs, ""))
            }
        }
    };
    let mut user = UserInfo {
        name: name.clone(),
        ..Default::default()
    };
    match parse_service_account_user(name) {
        Some((namespace, sa)) => {
            check(ResourceAttributes {
                namespace: namespace.into(),
                resource: "serviceaccounts".into(),
                name: sa.into(),
                ..Default::default()
            })
            .await?;
            user.groups = vec![
                SERVICE_ACCOUNTS.to_string(),
                format!("{SERVICE_ACCOUNTS}:{namespace}"),
            ];
        }
        None => {
            check(ResourceAttributes {
                resource: "users".into(),
                name: name.clone(),
                ..Default::default()
            })
            .await?;
        }
    }
    for group in &groups {
        check(ResourceAttributes {
            resource: "groups".into(),
            name: group.clone(),
            ..Default::default()
        })
        .await?;
        user.groups.push(group.clone());
    }
    if let Some(uid) = uids.first() {
        check(ResourceAttributes {
            api_group: "authentication.k8s.io".into(),
            resource: "uids".into(),
            name: uid.clone(),
            ..Default::default()
        })
        .await?;
        user.uid = uid.clone();
    }
    for (key, values) in &extra {
        for value in values {
            check(ResourceAttributes {
                api_group: "authentication.k8s.io".into(),
                resource: "userextras".into(),
                subresource: key.clone(),
                name: value.clone(),
                ..Default::default()
            })
            .await?;
        }
    }
    user.extra = extra;
    // As Kubernetes: an impersonated user is authenticated unless the
    // groups asked say otherwise.
    let membership = if user.is_anonymous() {
        UNAUTHENTICATED
    } else {
        AUTHENTICATED
    };
    if !user
        .groups
        .iter()
        .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
    {
        user.groups.push(membership.to_string());
    }
    tracing::info!(caller = %caller.name, as_user = %user.name, "impersonating");
    Ok(user)
}

/// `Impersonate-Extra-` keys are path-escaped (they may hold `/`; a `+`
/// stays a `+`), and case-insensitive as header names are.
fn percent_decode_key(key: &str) -> String {
    attributes::percent_decode(&key.replace('+', "%2B")).to_lowercase()
}

/// 403 with Kubernetes' message (responsewriters.forbiddenMessage and
/// apierrors.NewForbidden): `pods is forbidden: User "x" cannot list
/// resource "pods" in API group "" in the namespace "y"`.
pub fn forbidden(attrs: &Attributes, reason: &str) -> ApiError {
    let user = &attrs.user.name;
    let (message, details) = match &attrs.request {
        Target::NonResource { path } => (
            format!(
                "forbidden: User {user:?} cannot {} path {path:?}",
                attrs.verb
            ),
            None,
        ),
        Target::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            let why = format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                attrs.verb, r.api_group
            );
            let qualified = if r.api_group.is_empty() {
                r.resource.clone()
            } else {
                format!("{}.{}", r.resource, r.api_group)
            };
            let message = if r.name.is_empty() {
                format!("{qualified} is forbidden: {why}")
            } else {
                format!("{qualified} {:?} is forbidden: {why}", r.name)
            };
            let details = Details {
                name: r.name.clone(),
                group: r.api_group.clone(),
                kind: r.resource.clone(),
                ..Default::default()
            };
            (message, Some(Box::new(details)))
        }
    };
    let message = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    let mut e = ApiError::new(Reason::Forbidden, message);
    e.details = details;
    e
}

/// The `userInfo` of a review's status.
pub fn user_info_json(user: &UserInfo) -> serde_json::Value {
    let mut info = json!({ "username": user.name, "groups": user.groups });
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}
