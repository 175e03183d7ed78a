//! The Kubernetes API server (axum): Kubernetes' paths, JSON shapes, status
//! codes and semantics, so that `kubectl` and client libraries work unchanged.
//!
//! It serves HTTPS only ([`listener`]); every request is authenticated and
//! authorized first ([`access`]). Discovery and OpenAPI documents are static
//! ([`discovery`], [`openapi`]); the review APIs are answered by [`reviews`];
//! everything under `/api/v1/...` and `/apis/{group}/{version}/...` goes
//! through [`path::parse`] to [`resources::handle`], which calls the
//! [`Registry`].

pub mod access;
pub mod discovery;
pub mod listener;
pub mod openapi;

mod components;
mod path;
mod pods;
mod request;
mod resources;
mod response;
mod reviews;
mod token_request;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use skiff_api::status::{ApiError, Reason};

use crate::auth::authorizer::{Authorizer, RbacInformers};
use crate::auth::service_account_token::TokenSigner;
use crate::components::ComponentStore;
use crate::metrics::Metrics;
use crate::registry::Registry;
use path::Target;
use response::{ErrorResponse, HandlerResult};

/// The largest object body accepted, as Kubernetes' 3 MiB request limit.
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every handler shares.
pub struct ApiState {
    pub registry: Registry,
    pub components: Arc<ComponentStore>,
    /// How often a watch that allows bookmarks gets one when idle.
    pub bookmark_interval: Duration,
    /// Set once startup (bootstrap objects, controllers) is done.
    pub ready: AtomicBool,
    pub metrics: Arc<Metrics>,
    /// Calls to nodes (pod logs, pod proxy), when a node gateway runs.
    pub nodes: Option<crate::gateway::NodeCalls>,
    /// Decides every request.
    pub authorizer: Arc<Authorizer>,
    /// Signs and checks ServiceAccount tokens.
    pub tokens: Arc<TokenSigner>,
}

impl ApiState {
    /// The state of an API over `registry`, with RBAC read from it and
    /// ServiceAccount tokens signed by `tokens`.
    pub fn new(
        registry: Registry,
        components: Arc<ComponentStore>,
        metrics: Arc<Metrics>,
        tokens: Arc<TokenSigner>,
    ) -> Self {
        let authorizer = Authorizer::start(registry.clone(), RbacInformers::start(&registry));
        ApiState {
            registry,
            components,
            bookmark_interval: Duration::from_secs(15),
            ready: AtomicBool::new(false),
            metrics,
            nodes: None,
            authorizer,
            tokens,
        }
    }
}

/// The API server's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(legacy_discovery))
        .route("/apis", get(group_discovery))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_root))
        .route("/openapi/v3/{*path}", get(openapi_v3_document))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::check,
        ))
        .with_state(state)
}

async fn version() -> Response {
    response::json(StatusCode::OK, &discovery::version_info())
}

async fn legacy_discovery(headers: HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(&headers)) {
        aggregated(discovery::aggregated_discovery(true))
    } else {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1:6443");
        response::json(StatusCode::OK, &discovery::api_versions(host))
    }
}

async fn group_discovery(headers: HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(&headers)) {
        aggregated(discovery::aggregated_discovery(false))
    } else {
        response::json(StatusCode::OK, &discovery::api_group_list())
    }
}

fn aggregated(body: serde_json::Value) -> Response {
    let mut response = response::json(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
    );
    response
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// kubectl decodes `/openapi/v2` as protobuf; an empty document is enough for
/// it to validate `kind: List` manifests client-side and leave the rest to the
/// server (see `openapi::v2`).
async fn openapi_v2(headers: HeaderMap) -> Response {
    if openapi::wants_openapi_v2_protobuf(accept(&headers)) {
        let mut response = Response::new(axum::body::Body::from(openapi::openapi_v2_protobuf()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(openapi::OPENAPI_V2_PROTOBUF),
        );
        response
    } else {
        response::json(StatusCode::OK, &openapi::openapi_v2())
    }
}

async fn openapi_v3_root() -> Response {
    let mut response = response::json(StatusCode::OK, &openapi::openapi_v3_root());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// One group version's OpenAPI v3 document, with the caching kubectl expects:
/// immutable under its content hash, revalidated by ETag otherwise.
async fn openapi_v3_document(Path(path): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return ErrorResponse(path::not_found()).into_response(),
    };
    let (Some(bytes), Some(hash)) = (
        openapi::openapi_v3_json(group, version),
        openapi::openapi_v3_hash(group, version),
    ) else {
        return ErrorResponse(path::not_found()).into_response();
    };
    let etag = format!("\"{hash}\"");
    let requested_hash = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("hash="));
    if let Some(requested) = requested_hash
        && requested != hash
    {
        let location = format!(
            "/openapi/v3/{}?hash={hash}",
            openapi::group_version_key(group, version)
        );
        let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return response;
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = Response::new(axum::body::Body::from(bytes));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if requested_hash.is_some() {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
        h.insert(
            header::EXPIRES,
            HeaderValue::from_static("Fri, 01 Jan 2100 00:00:00 GMT"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
    }
    response
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if !state.ready.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting up").into_response()
    } else if !state.registry.store().writable() {
        // E.g. its disk is full: writes would fail until space is freed.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the store cannot write",
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

/// Everything under `/api/...` and `/apis/...`.
async fn dispatch(State(state): State<Arc<ApiState>>, request: Request) -> HandlerResult {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    if let Ok(Target::Resource(rp)) = path::parse(uri.path())
        && components::is_push(&method, &rp, &headers)
    {
        let query = request::Query::parse(uri.query())?;
        return components::upload(&state, &query, &headers, body).await;
    }
    let body = read_body(&headers, body).await?;
    if let Some(review) = reviews::parse(uri.path()) {
        let user = parts.extensions.get::<access::RequestUser>().cloned();
        return reviews::handle(state, review, method, &headers, user, body).await;
    }
    if let Some(call) = pods::parse(uri.path()) {
        return pods::handle(state.clone(), call, method, &uri, &headers, body).await;
    }
    let target = path::parse(uri.path())?;
    tracing::debug!(%method, path = uri.path(), "api request");
    match target {
        Target::GroupVersion { group, version } => {
            match discovery::api_resource_list(&group, &version) {
                Some(list) if method == Method::GET => Ok(response::json(StatusCode::OK, &list)),
                _ => Err(path::not_found().into()),
            }
        }
        Target::Group { group } => match discovery::api_group(&group) {
            Some(g) if method == Method::GET => Ok(response::json(StatusCode::OK, &g)),
            _ => Err(path::not_found().into()),
        },
        Target::Resource(rp) => {
            let query = request::Query::parse(uri.query())?;
            let verb = verb(&method, &rp, &query);
            let resource = rp.rt.resource_id();
            let started = std::time::Instant::now();
            let metrics = state.metrics.clone();
            let result = resources::handle(state, method, rp, query, headers, body).await;
            let code = match &result {
                Ok(response) => response.status().as_u16(),
                Err(e) => e.0.code(),
            };
            metrics.observe_request(verb, &resource, code, started.elapsed());
            result
        }
    }
}

/// The request body, read only up to Kubernetes' 3 MiB limit: a longer
/// body is refused with 413 after reading no more than the limit. (A
/// component push streams to disk instead: [`components::upload`].)
async fn read_body(headers: &HeaderMap, body: axum::body::Body) -> Result<Bytes, ErrorResponse> {
    check_declared_length(headers, MAX_BODY_BYTES as u64)?;
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(MAX_BODY_BYTES as u64).into())
        }
        Err(e) => Err(ErrorResponse(ApiError::bad_request(format!(
            "read the request body: {e}"
        )))),
    }
}

/// 413, as Kubernetes words it.
fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        Reason::RequestEntityTooLarge,
        format!("Request entity too large: limit is {limit}"),
    )
}

/// Refuses a body whose declared `Content-Length` is over `limit` before
/// reading any of it.
fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// Kubernetes' verb for a request, as its metrics and audit logs name it.
fn verb(method: &Method, rp: &path::ResourcePath, query: &request::Query) -> &'static str {
    match (method.as_str(), rp.name.is_some()) {
        ("GET", _) if query.is_watch() => "WATCH",
        ("GET", false) => "LIST",
        ("GET", true) => "GET",
        ("POST", _) => "POST",
        ("PUT", _) => "PUT",
        ("PATCH", _) => "PATCH",
        ("DELETE", false) => "DELETECOLLECTION",
        ("DELETE", true) => "DELETE",
        _ => "OTHER",
    }
}
