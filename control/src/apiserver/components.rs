//! Component push and pull over HTTP.
//!
//! `POST /apis/skiff.dev/v1alpha1/components?name=NAME:TAG` with
//! `Content-Type: application/wasm` stores the bytes by digest and creates or
//! moves the `Component` object `NAME.TAG` to them. Bytes that are not a valid
//! component are refused with 400 and what is wrong. `GET .../components/NAME.TAG/content`
//! returns the bytes.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use skiff_api::component::{self, ComponentRef, ComponentSpec};
use skiff_api::json::Pointer as _;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use super::ApiState;
use super::request::Query;
use super::response::{HandlerResult, json};
use crate::components::inspect;
use crate::registry::{Subresource, WriteOptions};

/// Stores a pushed component.
pub async fn upload(state: &ApiState, query: &Query, body: Bytes) -> HandlerResult {
    let rt = by_kind(component::API_VERSION, "Component")
        .ok_or_else(|| ApiError::internal("the Component kind is not registered"))?;
    let reference = query
        .name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("a push needs ?name=NAME:TAG naming the component"))?;
    let (name, tag) = match ComponentRef::parse(reference).map_err(ApiError::bad_request)? {
        ComponentRef::Tagged { name, tag } => (name, tag),
        ComponentRef::Digest(_) => {
            return Err(ApiError::bad_request(
                "push under a name:tag, not a digest: the digest is computed from the bytes",
            )
            .into());
        }
    };
    let found =
        inspect(&body).map_err(|e| ApiError::bad_request(format!("refusing {reference}: {e}")))?;
    let store = state.components.clone();
    let bytes = body.clone();
    let digest = tokio::task::spawn_blocking(move || store.put(&bytes))
        .await
        .map_err(|e| ApiError::internal(format!("store component: {e}")))?
        .map_err(|e| ApiError::internal(format!("store component: {e}")))?;
    let spec = ComponentSpec {
        name: name.clone(),
        tag: tag.clone(),
        digest,
        size: body.len() as u64,
        exports: found.exports,
        imports: found.imports,
        kind: found.kind,
    };
    let object_name = component::object_name(&name, &tag);
    let object = json!({
        "apiVersion": component::API_VERSION,
        "kind": "Component",
        "metadata": { "name": object_name },
        "spec": serde_json::to_value(&spec).map_err(|e| ApiError::internal(e.to_string()))?,
    });
    let opts = WriteOptions {
        field_manager: "skiff-push".into(),
        ..Default::default()
    };
    match state.registry.create(rt, "", object.clone(), &opts).await {
        Ok(written) => Ok(json(StatusCode::CREATED, &written.object)),
        Err(e) if e.reason == Reason::AlreadyExists => {
            // Re-tagging: point the existing name:tag at the new bytes.
            let written = state
                .registry
                .update(rt, "", &object_name, object, Subresource::Main, &opts)
                .await?;
            Ok(json(StatusCode::OK, &written.object))
        }
        Err(e) => Err(e.into()),
    }
}

/// The bytes of a component object.
pub fn download(state: &ApiState, name: &str) -> HandlerResult {
    let rt = by_kind(component::API_VERSION, "Component")
        .ok_or_else(|| ApiError::internal("the Component kind is not registered"))?;
    let object = state.registry.get(rt, "", name)?;
    let digest = object
        .at("/spec/digest")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bytes = state
        .components
        .get(digest)
        .map_err(|e| ApiError::internal(format!("read component {digest}: {e}")))?
        .ok_or_else(|| {
            ApiError::internal(format!(
                "component {name} names {digest}, which is missing from storage"
            ))
        })?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    );
    if let Ok(v) = HeaderValue::from_str(digest) {
        response.headers_mut().insert("Docker-Content-Digest", v);
    }
    Ok(response)
}
