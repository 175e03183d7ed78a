//! The REST verbs on resources: get, list, watch, create, update, patch, delete,
//! deletecollection, and the `status`, `scale` and `finalize` subresources.

use std::sync::Arc;

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::patch::PatchType;
use skiff_api::resource::ResourceType;
use skiff_api::selector::{FieldSelector, LabelSelector};
use skiff_api::status::{ApiError, success_status};
use skiff_api::validate::FieldValidation;
use skiff_api::{meta, table};

use super::path::{ResourcePath, not_found};
use super::request::{self, Query, Representation};
use super::response::{HandlerResult, json, json_with_warnings};
use super::{ApiState, watch};
use crate::registry::{DeleteOptions, PropagationPolicy, Subresource, WriteOptions, Written};
use crate::store::ObjectKey;

/// Routes one request on a resource path.
pub async fn handle(
    state: Arc<ApiState>,
    method: Method,
    rp: ResourcePath,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
) -> HandlerResult {
    let sub = rp.subresource.clone();
    match (&method, rp.name.is_some(), sub.as_deref()) {
        (&Method::GET, false, None) if query.is_watch() => {
            watch::serve(state, rp, query, &headers).await
        }
        (&Method::GET, false, None) => list(&state, &rp, &query, &headers),
        (&Method::GET, true, None | Some("status")) if query.is_watch() => {
            // `?watch=1` on an object: a watch narrowed to its name.
            watch::serve(state, rp, query, &headers).await
        }
        (&Method::GET, true, None | Some("status")) => get(&state, &rp, &query, &headers),
        (&Method::GET, true, Some("content"))
            if rp.rt.group == skiff_api::resource::SKIFF_GROUP =>
        {
            super::components::download(&state, rp.name.as_deref().unwrap_or("")).await
        }
        (&Method::GET, true, Some("scale")) if rp.rt.scale_subresource => {
            let (ns, name) = ns_name(&rp);
            Ok(json(
                StatusCode::OK,
                &state.registry.get_scale(rp.rt, ns, name)?,
            ))
        }
        (&Method::POST, false, None) => create(&state, &rp, &query, &headers, &body).await,
        (&Method::POST, true, Some("token"))
            if rp.rt.group.is_empty() && rp.rt.kind == "ServiceAccount" =>
        {
            let (ns, name) = ns_name(&rp);
            Ok(super::token_request::create(
                &state, ns, name, &headers, &body,
            )?)
        }
        (&Method::PUT, true, None | Some("status")) => {
            update(&state, &rp, &query, &headers, &body).await
        }
        (&Method::PUT, true, Some("scale")) if rp.rt.scale_subresource => {
            let (ns, name) = ns_name(&rp);
            let scale = request::parse_body(&headers, &body)?;
            let opts = write_options(&query, &headers, "UpdateOptions")?;
            Ok(json(
                StatusCode::OK,
                &state
                    .registry
                    .update_scale(rp.rt, ns, name, scale, &opts)
                    .await?,
            ))
        }
        (&Method::PUT, true, Some("finalize")) if rp.rt.kind == "Namespace" => {
            finalize_namespace(&state, &rp, &headers, &body).await
        }
        (&Method::PATCH, true, None | Some("status")) => {
            patch(&state, &rp, &query, &headers, &body).await
        }
        (&Method::PATCH, true, Some("scale")) if rp.rt.scale_subresource => {
            let (ns, name) = ns_name(&rp);
            let patch_type = patch_type(&headers)?;
            let patch = request::parse_body(&headers, &body)?;
            let opts = write_options(&query, &headers, "PatchOptions")?;
            Ok(json(
                StatusCode::OK,
                &state
                    .registry
                    .patch_scale(rp.rt, ns, name, patch_type, patch, &opts)
                    .await?,
            ))
        }
        (&Method::DELETE, true, None) => delete(&state, &rp, &query, &headers, &body).await,
        (&Method::DELETE, false, None) => {
            delete_collection(&state, &rp, &query, &headers, &body).await
        }
        (_, _, Some(_)) => Err(not_found().into()),
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))
        .into()),
    }
}

fn ns_name(rp: &ResourcePath) -> (&str, &str) {
    (rp.namespace_or_empty(), rp.name.as_deref().unwrap_or(""))
}

/// Label and field selectors of a list, watch or deletecollection.
pub struct ObjectFilter {
    labels: Vec<LabelSelector>,
    fields: Vec<FieldSelector>,
}

impl ObjectFilter {
    pub fn from_query(rt: &ResourceType, query: &Query) -> Result<Self, ApiError> {
        let label = match query.label_selector.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(LabelSelector::parse(s)?),
        };
        let field = match query.field_selector.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(FieldSelector::parse_for(rt, s)?),
        };
        Ok(ObjectFilter {
            labels: label.into_iter().collect(),
            fields: field.into_iter().collect(),
        })
    }

    /// Both filters at once.
    pub fn and(mut self, other: ObjectFilter) -> ObjectFilter {
        self.labels.extend(other.labels);
        self.fields.extend(other.fields);
        self
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels
            .iter()
            .all(|l| l.matches_labels(meta::labels(obj)))
            && self.fields.iter().all(|f| f.matches(obj))
    }

    /// An exact `metadata.namespace=` requirement narrows the scan.
    pub fn exact_namespace(&self) -> Option<&str> {
        self.fields
            .iter()
            .find_map(|f| f.exact("metadata.namespace"))
    }
}

/// A continue token: where the next page starts.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    /// The encoded key of the last item returned.
    #[serde(rename = "k")]
    after: String,
    #[serde(rename = "rv")]
    revision: u64,
}

fn encode_continue(key: &ObjectKey, revision: u64) -> String {
    let token = ContinueToken {
        after: key.encode(),
        revision,
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<ContinueToken, ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn list(state: &ApiState, rp: &ResourcePath, query: &Query, headers: &HeaderMap) -> HandlerResult {
    let rt = rp.rt;
    let filter = ObjectFilter::from_query(rt, query)?;
    let repr = request::representation(headers, query)?;
    let namespace = rp.namespace.as_deref().or_else(|| filter.exact_namespace());
    let (after, first_revision) = match query.continue_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => {
            let token = decode_continue(token)?;
            (ObjectKey::decode(&token.after), Some(token.revision))
        }
        None => (None, None),
    };
    let page = state
        .registry
        .list(rt, namespace, after, query.limit()?, &|o| filter.matches(o))?;
    if query.resource_version_match.as_deref() == Some("Exact")
        && let Some(rv) = query.resource_version.as_deref()
        && rv != page.revision.to_string()
    {
        // Skiff keeps no snapshots of past revisions: an exact read of an older
        // one is gone, as a compacted revision is in Kubernetes.
        return Err(ApiError::gone(format!(
            "too old resource version: {rv} ({})",
            page.revision
        ))
        .into());
    }
    // Every page of a paged list reports the revision of its first page.
    let revision = first_revision.unwrap_or(page.revision);
    let mut list_meta = json!({ "resourceVersion": revision.to_string() });
    if let Some(next) = &page.continue_after {
        list_meta["continue"] = json!(encode_continue(next, revision));
    }
    let body = match repr {
        Representation::Object => json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": list_meta,
            "items": page.items,
        }),
        Representation::Table(include) => {
            table::table(rt, &page.items, jiff::Timestamp::now(), include, list_meta)
        }
    };
    Ok(json(StatusCode::OK, &body))
}

fn get(state: &ApiState, rp: &ResourcePath, query: &Query, headers: &HeaderMap) -> HandlerResult {
    let (ns, name) = ns_name(rp);
    let obj = state.registry.get(rp.rt, ns, name)?;
    match request::representation(headers, query)? {
        Representation::Object => Ok(json(StatusCode::OK, &obj)),
        Representation::Table(include) => {
            let list_meta =
                json!({ "resourceVersion": meta::resource_version(&obj).unwrap_or_default() });
            Ok(json(
                StatusCode::OK,
                &table::table(
                    rp.rt,
                    std::slice::from_ref(&obj),
                    jiff::Timestamp::now(),
                    include,
                    list_meta,
                ),
            ))
        }
    }
}

/// Options of a write; `verb` names Kubernetes' options kind for errors
/// (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
fn write_options(query: &Query, headers: &HeaderMap, verb: &str) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        dry_run: query.is_dry_run()?,
        field_manager: request::field_manager(headers, query),
        field_validation: FieldValidation::parse(query.field_validation.as_deref())
            .map_err(|cause| FieldValidation::options_error(verb, *cause))?,
        force: request::is_true(query.force.as_deref()),
        applied: false,
    })
}

async fn create(
    state: &ApiState,
    rp: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> HandlerResult {
    let obj = request::parse_body(headers, body)?;
    let opts = write_options(query, headers, "CreateOptions")?;
    let namespace = rp.namespace.as_deref().unwrap_or("");
    if rp.rt.namespaced && namespace.is_empty() {
        return Err(not_found().into());
    }
    let written = state.registry.create(rp.rt, namespace, obj, &opts).await?;
    Ok(json_with_warnings(
        StatusCode::CREATED,
        &written.object,
        &written.warnings,
    ))
}

fn subresource(rp: &ResourcePath) -> Result<Subresource, ApiError> {
    match rp.subresource.as_deref() {
        None => Ok(Subresource::Main),
        Some("status") if rp.rt.status_subresource => Ok(Subresource::Status),
        Some(_) => Err(not_found()),
    }
}

async fn update(
    state: &ApiState,
    rp: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> HandlerResult {
    let (ns, name) = ns_name(rp);
    let obj = request::parse_body(headers, body)?;
    let opts = write_options(query, headers, "UpdateOptions")?;
    let written = state
        .registry
        .update(rp.rt, ns, name, obj, subresource(rp)?, &opts)
        .await?;
    Ok(written_response(&written))
}

/// 201 for a write that created the object, 200 otherwise, with warnings.
fn written_response(written: &Written) -> Response {
    let code = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_with_warnings(code, &written.object, &written.warnings)
}

fn patch_type(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    let media = request::media_type(headers);
    PatchType::from_content_type(&media).ok_or_else(|| ApiError::unsupported_media_type(&media))
}

async fn patch(
    state: &ApiState,
    rp: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> HandlerResult {
    let (ns, name) = ns_name(rp);
    let patch_type = patch_type(headers)?;
    let patch = request::parse_body(headers, body)?;
    let mut opts = write_options(query, headers, "PatchOptions")?;
    if patch_type == PatchType::Apply {
        if query.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requests require a fieldManager query parameter",
            )
            .into());
        }
    } else if opts.force {
        return Err(ApiError::bad_request(
            "force is only supported for apply patches (application/apply-patch+yaml)",
        )
        .into());
    }
    if patch_type == PatchType::Apply
        && opts.field_validation == FieldValidation::Warn
        && query.field_validation.is_none()
    {
        // Kubernetes validates apply configurations strictly by default.
        opts.field_validation = FieldValidation::Strict;
    }
    let written = state
        .registry
        .patch(rp.rt, ns, name, patch_type, patch, subresource(rp)?, &opts)
        .await?;
    Ok(written_response(&written))
}

/// `DeleteOptions` from the query and an optional JSON body (kubectl sends one).
fn delete_options(
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        grace_period_seconds: query.grace_period_seconds()?,
        propagation_policy: query
            .propagation_policy
            .as_deref()
            .map(PropagationPolicy::parse)
            .transpose()?,
        dry_run: query.is_dry_run()?,
        ..Default::default()
    };
    if let Some(orphan) = query.orphan_dependents.as_deref() {
        opts.propagation_policy
            .get_or_insert(if request::is_true(Some(orphan)) {
                PropagationPolicy::Orphan
            } else {
                PropagationPolicy::Background
            });
    }
    if !body.is_empty() {
        let options = request::parse_body(headers, body)?;
        if let Some(grace) = options.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace_period_seconds = Some(grace);
        }
        if let Some(policy) = options.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation_policy = Some(PropagationPolicy::parse(policy)?);
        }
        if let Some(orphan) = options.get("orphanDependents").and_then(Value::as_bool) {
            opts.propagation_policy.get_or_insert(if orphan {
                PropagationPolicy::Orphan
            } else {
                PropagationPolicy::Background
            });
        }
        opts.precondition_uid = options
            .at("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_resource_version = options
            .at("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"))
        {
            opts.dry_run = true;
        }
    }
    Ok(opts)
}

async fn delete(
    state: &ApiState,
    rp: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> HandlerResult {
    let (ns, name) = ns_name(rp);
    let opts = delete_options(query, headers, body)?;
    let deleted = state.registry.delete(rp.rt, ns, name, &opts).await?;
    Ok(deleted_response(rp.rt, &deleted))
}

fn deleted_response(rt: &ResourceType, deleted: &crate::registry::Deleted) -> Response {
    let name = meta::name(&deleted.object).unwrap_or_default();
    if deleted.gone && rt.kind != "Pod" {
        json(
            StatusCode::OK,
            &success_status(rt, name, meta::uid(&deleted.object).unwrap_or_default()),
        )
    } else {
        json(StatusCode::OK, &deleted.object)
    }
}

async fn delete_collection(
    state: &ApiState,
    rp: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> HandlerResult {
    let rt = rp.rt;
    let filter = ObjectFilter::from_query(rt, query)?;
    let opts = delete_options(query, headers, body)?;
    let page = state
        .registry
        .list(rt, rp.namespace.as_deref(), None, None, &|o| {
            filter.matches(o)
        })?;
    let mut items = Vec::with_capacity(page.items.len());
    for item in page.items {
        let ns = meta::namespace(&item).unwrap_or_default().to_string();
        let name = meta::name(&item).unwrap_or_default().to_string();
        match state.registry.delete(rt, &ns, &name, &opts).await {
            Ok(deleted) => items.push(deleted.object),
            Err(e) if e.reason == skiff_api::Reason::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": { "resourceVersion": state.registry.store().revision().to_string() },
            "items": items,
        }),
    ))
}

/// `PUT /api/v1/namespaces/{name}/finalize`: sets `spec.finalizers`; a
/// terminating namespace with none left is removed.
async fn finalize_namespace(
    state: &ApiState,
    rp: &ResourcePath,
    headers: &HeaderMap,
    body: &Bytes,
) -> HandlerResult {
    let name = rp.name.as_deref().unwrap_or("");
    let obj = request::parse_body(headers, body)?;
    let finalizers = obj.at("/spec/finalizers").cloned().unwrap_or(json!([]));
    let result = state.registry.finalize_namespace(name, finalizers).await?;
    Ok(json(StatusCode::OK, &result))
}
