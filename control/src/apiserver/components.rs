//! Component push and pull over HTTP.
//!
//! `POST /apis/skiff.dev/v1alpha1/components?name=NAME:TAG` with
//! `Content-Type: application/wasm` stores the bytes by digest and creates or
//! moves the `Component` object `NAME.TAG` to them. The body streams to a
//! file as it arrives (up to [`MAX_COMPONENT_BYTES`], then 413), so a push
//! costs the server no more memory than one piece of it. Bytes that are not
//! a valid component are refused with 400 and what is wrong, and leave
//! nothing behind. `GET .../components/NAME.TAG/content`
//! returns the bytes.

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use skiff_api::component::{self, ComponentRef, ComponentSpec};
use skiff_api::json::Pointer as _;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use super::ApiState;
use super::path::ResourcePath;
use super::request::{self, Query};
use super::response::{HandlerResult, json};
use crate::components::{CommitError, inspect};
use crate::registry::{Subresource, WriteOptions};

/// The largest component a push may send. Components are code: the biggest
/// real ones (interpreters with their standard library) are tens of MiB.
pub const MAX_COMPONENT_BYTES: u64 = 512 * 1024 * 1024;

/// Whether a request is a component push, whose body streams to disk
/// instead of being read into memory under the 3 MiB object limit.
pub fn is_push(method: &Method, rp: &ResourcePath, headers: &HeaderMap) -> bool {
    method == Method::POST
        && rp.rt.group == skiff_api::resource::SKIFF_GROUP
        && rp.rt.kind == "Component"
        && rp.name.is_none()
        && request::media_type(headers) == "application/wasm"
}

/// Stores a pushed component.
pub async fn upload(
    state: &ApiState,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> HandlerResult {
    let rt = by_kind(component::API_VERSION, "Component")
        .ok_or_else(|| ApiError::internal("the Component kind is not registered"))?;
    let reference = query
        .name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("a push needs ?name=NAME:TAG naming the component"))?;
    let (name, tag) =
        match ComponentRef::parse(reference).map_err(|e| ApiError::bad_request(e.to_string()))? {
            ComponentRef::Tagged { name, tag } => (name, tag),
            ComponentRef::Digest(_) => {
                return Err(ApiError::bad_request(
                    "push under a name:tag, not a digest: the digest is computed from the bytes",
                )
                .into());
            }
        };
    super::check_declared_length(headers, MAX_COMPONENT_BYTES)?;
    let store_error = |e: std::io::Error| ApiError::internal(format!("store component: {e}"));
    let mut upload = state.components.begin().await.map_err(store_error)?;
    let mut pieces = body.into_data_stream();
    while let Some(piece) = pieces.next().await {
        let piece =
            piece.map_err(|e| ApiError::bad_request(format!("read the request body: {e}")))?;
        if upload.size().saturating_add(piece.len() as u64) > MAX_COMPONENT_BYTES {
            return Err(super::too_large(MAX_COMPONENT_BYTES).into());
        }
        upload.write(&piece).await.map_err(store_error)?;
    }
    let size = upload.size();
    let (digest, found) = upload.commit(inspect).await.map_err(|e| match e {
        CommitError::Refused(e) => ApiError::bad_request(format!("refusing {reference}: {e}")),
        CommitError::Io(e) => store_error(e),
    })?;
    let spec = ComponentSpec {
        name: name.clone(),
        tag: tag.clone(),
        digest,
        size,
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

/// The bytes of a component object, streamed from its file.
pub async fn download(state: &ApiState, name: &str) -> HandlerResult {
    let rt = by_kind(component::API_VERSION, "Component")
        .ok_or_else(|| ApiError::internal("the Component kind is not registered"))?;
    let object = state.registry.get(rt, "", name)?;
    let digest = object
        .at("/spec/digest")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let stored = state
        .components
        .read(digest)
        .await
        .map_err(|e| ApiError::internal(format!("read component {digest}: {e}")))?
        .ok_or_else(|| {
            ApiError::internal(format!(
                "component {name} names {digest}, which is missing from storage"
            ))
        })?;
    let size = stored.size;
    let mut response = Response::new(Body::from_stream(stored.into_pieces()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(digest) {
        headers.insert("Docker-Content-Digest", v);
    }
    Ok(response)
}
