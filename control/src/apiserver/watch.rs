//! Watch over HTTP: a chunked stream of `{"type": ..., "object": ...}` lines.
//!
//! Semantics follow Kubernetes: without a `resourceVersion` (or with `0`) the
//! watch starts with synthetic ADDED events for what exists; with one it replays
//! changes after it (410 Gone as an ERROR event if that is compacted). Selectors
//! are applied to both sides of a change, so an object that stops matching is
//! reported DELETED and one that starts matching ADDED. Bookmarks are sent when
//! asked for, and `sendInitialEvents` ends its initial events with one.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use skiff_api::resource::ResourceType;
use skiff_api::status::ApiError;
use skiff_api::table;

use super::ApiState;
use super::path::ResourcePath;
use super::request::{self, Query, Representation};
use super::resources::ObjectFilter;
use super::response::HandlerResult;
use crate::store::{EventType, WatchItem, object_revision};

/// Kubernetes' default watch length is 30-60 minutes; Skiff uses the lower bound.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Serves a watch request.
pub async fn serve(
    state: Arc<ApiState>,
    rp: ResourcePath,
    query: Query,
    headers: &HeaderMap,
) -> HandlerResult {
    let rt = rp.rt;
    let mut filter = ObjectFilter::from_query(rt, &query)?;
    if let Some(name) = rp.name.clone() {
        // A watch on one object: narrow by name.
        let extra = Query {
            field_selector: Some(format!("metadata.name={name}")),
            ..Default::default()
        };
        let by_name = ObjectFilter::from_query(rt, &extra)?;
        filter = filter.and(by_name);
    }
    let repr = request::representation(headers, &query)?;
    let bookmarks = request::is_true(query.allow_watch_bookmarks.as_deref());
    let initial_events = request::is_true(query.send_initial_events.as_deref());
    let timeout = query
        .timeout_seconds()?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let namespace = rp
        .namespace
        .clone()
        .or_else(|| filter.exact_namespace().map(str::to_string));

    let rv = query.resource_version.as_deref().unwrap_or("");
    let (start, initial) = match rv {
        "" | "0" => {
            let page = state
                .registry
                .list(rt, namespace.as_deref(), None, None, &|o| filter.matches(o))?;
            (page.revision, page.items)
        }
        rv => {
            let revision: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            if initial_events {
                let page = state
                    .registry
                    .list(rt, namespace.as_deref(), None, None, &|o| filter.matches(o))?;
                (page.revision.max(revision), page.items)
            } else {
                (revision, Vec::new())
            }
        }
    };
    let prefix = crate::registry::prefix(rt, namespace.as_deref());
    let progress = bookmarks.then_some(state.bookmark_interval);

    let mut encoder = Encoder {
        rt,
        repr,
        columns_sent: false,
    };
    let mut head: Vec<Bytes> = Vec::new();
    for obj in &initial {
        head.push(encoder.event("ADDED", obj));
    }
    if initial_events && bookmarks {
        head.push(encoder.bookmark(start, true));
    }

    let stream = match state.registry.store().watch(prefix, start, progress) {
        Ok(stream) => stream,
        Err(e) => {
            // Kubernetes answers a watch from a compacted revision with 200 and an
            // ERROR event carrying 410 Gone.
            let error = crate::registry::store_error(rt, "")(e);
            let line = line(&json!({ "type": "ERROR", "object": error.to_status() }));
            return Ok(stream_response(
                futures::stream::iter(vec![Ok(line)]).boxed(),
            ));
        }
    };

    let filter = Arc::new(filter);
    let open = WatchGauge::open(&state.metrics.watches);
    let events = stream
        .filter_map(move |item| {
            let filter = filter.clone();
            let out = match item {
                Ok(WatchItem::Event(event)) => {
                    let now =
                        filter.matches(&event.object) && event.event_type != EventType::Deleted;
                    let before = event.prev.as_ref().is_some_and(|p| filter.matches(p));
                    let kind = match (event.event_type, before, now) {
                        (EventType::Deleted, true, _) => Some("DELETED"),
                        (EventType::Deleted, false, _) => None,
                        (_, false, true) => Some("ADDED"),
                        (_, true, true) => Some("MODIFIED"),
                        (_, true, false) => Some("DELETED"),
                        (_, false, false) => None,
                    };
                    kind.map(|k| Ok::<_, ApiError>(Frame::Event(k, event.object.clone())))
                }
                Ok(WatchItem::Progress(revision)) => Some(Ok(Frame::Bookmark(revision))),
                Err(e) => Some(Err(crate::registry::store_error(rt, "")(e))),
            };
            futures::future::ready(out)
        })
        .map(move |frame| match frame {
            // Holding the gauge guard here keeps it alive as long as the stream.
            Ok(Frame::Event(kind, obj)) => {
                let _ = &open;
                encoder.event(kind, &obj)
            }
            Ok(Frame::Bookmark(revision)) => encoder.bookmark(revision, false),
            Err(e) => line(&json!({ "type": "ERROR", "object": e.to_status() })),
        });
    let body = futures::stream::iter(head)
        .chain(events)
        .take_until(tokio::time::sleep(timeout))
        .map(Ok::<_, Infallible>);
    Ok(stream_response(body.boxed()))
}

/// Counts an open watch for as long as its stream lives.
struct WatchGauge(prometheus_client::metrics::gauge::Gauge);

impl WatchGauge {
    fn open(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        WatchGauge(gauge.clone())
    }
}

impl Drop for WatchGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

enum Frame {
    Event(&'static str, Arc<Value>),
    Bookmark(u64),
}

/// Encodes events as the client asked: objects, or one-row Tables.
struct Encoder {
    rt: &'static ResourceType,
    repr: Representation,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.repr {
            // Written from the shared object, not a copy: every watcher of a
            // busy resource pays this for every change.
            Representation::Object => return line(&WatchEvent { kind, object: obj }),
            Representation::Table(include) => {
                let list_meta =
                    json!({ "resourceVersion": object_revision(obj).unwrap_or(0).to_string() });
                let now = jiff::Timestamp::now();
                let rows = std::slice::from_ref(obj);
                if self.columns_sent {
                    table::table_without_columns(self.rt, rows, now, include, list_meta)
                } else {
                    self.columns_sent = true;
                    table::table(self.rt, rows, now, include, list_meta)
                }
            }
        };
        line(&WatchEvent {
            kind,
            object: &object,
        })
    }

    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = match self.repr {
            Representation::Object => json!({
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version(),
                "metadata": metadata,
            }),
            Representation::Table(_) => {
                json!({
                    "kind": "Table",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                    "columnDefinitions": [],
                    "rows": [],
                })
            }
        };
        line(&json!({ "type": "BOOKMARK", "object": object }))
    }
}

/// One line of a watch stream, as Kubernetes' `WatchEvent`.
#[derive(serde::Serialize)]
struct WatchEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

fn line(value: &impl serde::Serialize) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn stream_response(
    body: futures::stream::BoxStream<'static, Result<Bytes, Infallible>>,
) -> axum::response::Response {
    let mut response = axum::response::Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}
