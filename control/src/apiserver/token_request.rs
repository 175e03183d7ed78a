//! `POST .../serviceaccounts/{name}/token`: the TokenRequest subresource
//! (`kubectl create token NAME`), as Kubernetes serves it
//! (pkg/registry/core/serviceaccount/storage/token.go): a JWT for the
//! ServiceAccount, for the audiences asked (the API's by default), valid for
//! `expirationSeconds` (3600 by default, at least 600), optionally bound to a
//! Pod, Secret or Node so that it dies with that object.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, FieldError};

use super::ApiState;
use super::response::json;
use crate::auth::service_account_token::{Claims, ISSUER, KubernetesClaims, ObjectClaim};
use crate::auth::user::service_account_user;

/// Kubernetes' default and bounds for `spec.expirationSeconds`.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;

/// Issues a token for ServiceAccount `namespace/name`.
pub fn create(
    state: &Arc<ApiState>,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let request: Value = super::request::parse_body(headers, body)?;
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let invalid = |cause: FieldError| {
        let mut e = ApiError::new(
            skiff_api::status::Reason::Invalid,
            format!("TokenRequest.authentication.k8s.io {name:?} is invalid: {cause}"),
        );
        e.details = Some(Box::new(skiff_api::status::Details {
            name: name.into(),
            group: "authentication.k8s.io".into(),
            kind: "TokenRequest".into(),
            causes: vec![cause],
            ..Default::default()
        }));
        e
    };
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            invalid(FieldError::invalid(
                "spec.expirationSeconds",
                v.clone(),
                "must be an integer",
            ))
        })?,
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(FieldError::invalid(
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration less than 10 minutes",
        )));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(FieldError::invalid(
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        )));
    }
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![ISSUER.to_string()],
    };

    let sa_type = by_kind("v1", "ServiceAccount")
        .ok_or_else(|| ApiError::internal("no ServiceAccount kind"))?;
    let account = state.registry.get(sa_type, namespace, name)?;
    let uid = |obj: &Value| obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let mut kubernetes = KubernetesClaims {
        namespace: namespace.into(),
        serviceaccount: ObjectClaim {
            name: name.into(),
            uid: uid(&account),
        },
        pod: None,
        secret: None,
        node: None,
    };
    if let Some(bound) = spec.get("boundObjectRef").filter(|v| v.is_object()) {
        let kind = bound["kind"].as_str().unwrap_or("");
        let bound_name = bound["name"].as_str().unwrap_or("");
        let Some(rt) = by_kind("v1", kind).filter(|_| matches!(kind, "Pod" | "Secret" | "Node"))
        else {
            return Err(invalid(FieldError::not_supported(
                "spec.boundObjectRef.kind",
                json!(kind),
                &["Pod", "Secret", "Node"],
            )));
        };
        let ns = if rt.namespaced { namespace } else { "" };
        let object = state.registry.get(rt, ns, bound_name)?;
        let object_uid = uid(&object);
        if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && wanted != object_uid
        {
            return Err(ApiError::conflict(
                rt,
                bound_name,
                &format!(
                    "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let claim = Some(ObjectClaim {
            name: bound_name.into(),
            uid: object_uid,
        });
        match kind {
            "Pod" => kubernetes.pod = claim,
            "Secret" => kubernetes.secret = claim,
            _ => kubernetes.node = claim,
        }
    }

    let now = jiff::Timestamp::now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(expiration))
        .map_err(|e| ApiError::internal(format!("token expiry: {e}")))?;
    let claims = Claims {
        iss: ISSUER.into(),
        sub: service_account_user(namespace, name),
        aud: audiences.clone(),
        exp: expires.as_second(),
        iat: now.as_second(),
        nbf: now.as_second(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes,
    };
    let token = state
        .tokens
        .issue(&claims)
        .map_err(|e| ApiError::internal(format!("sign the token: {e}")))?;
    tracing::info!(namespace, serviceaccount = name, expiration, "token issued");
    let mut spec_out = json!({ "audiences": audiences, "expirationSeconds": expiration });
    spec_out["boundObjectRef"] = spec.get("boundObjectRef").cloned().unwrap_or(Value::Null);
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            },
            "spec": spec_out,
            "status": {
                "token": token,
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            },
        }),
    ))
}
