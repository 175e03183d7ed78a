//! Events (`v1/Event`) about objects, written as Kubernetes' event recorder
//! writes them: a repeat of the same (object, reason, message) bumps the
//! existing Event's `count` and `lastTimestamp` instead of adding another.
//! Recording returns at once; the write happens in the background, and an Event
//! that cannot be written is only logged (Events are best effort in Kubernetes too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use crate::registry::{Registry, Subresource, WriteOptions};
use crate::store::Op;

/// How many distinct Events are remembered for folding repeats.
const MAX_REMEMBERED_EVENTS: usize = 10_000;

/// `Normal` or `Warning`, as Events spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }

    /// Reads the wire spelling; anything but `Warning` is `Normal`.
    pub fn parse(s: &str) -> Self {
        if s == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }
}

/// The object an Event is about (`involvedObject`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub field_path: Option<String>,
}

impl Involved {
    /// The reference to an API object.
    pub fn of(obj: &Value) -> Involved {
        let text = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Involved {
            api_version: text("apiVersion"),
            kind: text("kind"),
            namespace: meta::namespace(obj).unwrap_or_default().to_string(),
            name: meta::name(obj).unwrap_or_default().to_string(),
            uid: meta::uid(obj).unwrap_or_default().to_string(),
            field_path: None,
        }
    }
}

impl Involved {
    /// The reference to a typed API object.
    pub fn of_typed<K>(obj: &K) -> Involved
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        let meta = obj.metadata();
        Involved {
            api_version: K::API_VERSION.to_string(),
            kind: K::KIND.to_string(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            field_path: None,
        }
    }
}

/// Who reports (`source.component`, `reportingComponent`) and from where.
#[derive(Debug, Clone)]
pub struct Source {
    pub component: String,
    /// `source.host`: the node, for what a node reports.
    pub host: Option<String>,
}

/// (involved object, reason, message): what makes two Events the same.
type EventKey = (Involved, String, String);

/// Writes Events, folding repeats into one with a growing `count`.
#[derive(Clone)]
pub struct EventRecorder {
    registry: Registry,
    field_manager: String,
    seen: Arc<Mutex<HashMap<EventKey, String>>>,
}

impl EventRecorder {
    pub fn new(registry: Registry, field_manager: &str) -> Self {
        EventRecorder {
            registry,
            field_manager: field_manager.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records an Event about `obj` from a control-plane `component`; returns at once.
    pub fn record(
        &self,
        obj: &Value,
        component: &str,
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let source = Source {
            component: component.to_string(),
            host: None,
        };
        self.record_about(
            Involved::of(obj),
            source,
            event_type,
            reason,
            message.into(),
        );
    }

    /// [`EventRecorder::record`] for a typed object.
    pub fn record_typed<K>(
        &self,
        obj: &K,
        component: &str,
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
    ) where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        let source = Source {
            component: component.to_string(),
            host: None,
        };
        self.record_about(
            Involved::of_typed(obj),
            source,
            event_type,
            reason,
            message.into(),
        );
    }

    /// Records an Event about `involved`; returns at once.
    pub fn record_about(
        &self,
        involved: Involved,
        source: Source,
        event_type: EventType,
        reason: &str,
        message: String,
    ) {
        let recorder = self.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            if let Err(e) = recorder
                .write(involved, &source, event_type, &reason, message)
                .await
            {
                tracing::debug!(%reason, error = %e, "event not written");
            }
        });
    }

    /// The op that creates an Event about `obj` from a control-plane
    /// `component`, to commit with the write the Event tells of (the
    /// scheduler's binding and its `Scheduled`). Such an Event is not
    /// remembered for counting repeats: there is one per write.
    pub fn create_op(
        &self,
        obj: &Value,
        component: &str,
        event_type: EventType,
        reason: &str,
        message: String,
    ) -> Result<Op, ApiError> {
        let source = Source {
            component: component.to_string(),
            host: None,
        };
        let involved = Involved::of(obj);
        let event = event_object(
            &involved,
            &source,
            event_type,
            reason,
            message,
            &meta::now_timestamp(),
        );
        let namespace = event_namespace(&involved);
        self.registry
            .create_op(event_kind()?, &namespace, event, &self.write_options())
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            field_manager: self.field_manager.clone(),
            ..Default::default()
        }
    }

    async fn write(
        &self,
        involved: Involved,
        source: &Source,
        event_type: EventType,
        reason: &str,
        message: String,
    ) -> Result<(), ApiError> {
        let rt = event_kind()?;
        let opts = self.write_options();
        let now = meta::now_timestamp();
        let namespace = event_namespace(&involved);
        let key = (involved.clone(), reason.to_string(), message.clone());
        let existing = lock(&self.seen).get(&key).cloned();
        if let Some(name) = existing {
            for _ in 0..4 {
                let Some(mut event) = self.registry.try_get(rt, &namespace, &name)? else {
                    break;
                };
                let count = event.get("count").and_then(Value::as_i64).unwrap_or(1);
                event["count"] = json!(count + 1);
                event["lastTimestamp"] = json!(now);
                match self
                    .registry
                    .update(rt, &namespace, &name, event, Subresource::Main, &opts)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(err) if err.reason == Reason::Conflict => continue,
                    Err(err) => return Err(err),
                }
            }
        }
        let event = event_object(&involved, source, event_type, reason, message, &now);
        let name = meta::name(&event).unwrap_or_default().to_string();
        self.registry.create(rt, &namespace, event, &opts).await?;
        let mut seen = lock(&self.seen);
        // Bounded: forgetting only means the next repeat starts a new Event.
        if seen.len() >= MAX_REMEMBERED_EVENTS {
            seen.clear();
        }
        seen.insert(key, name);
        Ok(())
    }
}

/// The Event kind.
fn event_kind() -> Result<&'static skiff_api::resource::ResourceType, ApiError> {
    by_kind("v1", "Event").ok_or_else(|| ApiError::internal("no Event kind"))
}

/// Events of cluster-scoped objects (Nodes) go to `default`, as Kubernetes'.
fn event_namespace(involved: &Involved) -> String {
    if involved.namespace.is_empty() {
        "default".to_string()
    } else {
        involved.namespace.clone()
    }
}

/// A new core/v1 Event (`count` 1) about `involved`.
fn event_object(
    involved: &Involved,
    source: &Source,
    event_type: EventType,
    reason: &str,
    message: String,
    now: &str,
) -> Value {
    let name = format!(
        "{}.{:x}",
        involved.name,
        jiff::Timestamp::now().as_nanosecond()
    );
    let mut involved_object = json!({
        "apiVersion": involved.api_version, "kind": involved.kind,
        "name": involved.name, "uid": involved.uid,
    });
    if !involved.namespace.is_empty() {
        involved_object["namespace"] = json!(involved.namespace);
    }
    if let Some(path) = &involved.field_path {
        involved_object["fieldPath"] = json!(path);
    }
    let mut source_json = json!({"component": source.component});
    if let Some(host) = &source.host {
        source_json["host"] = json!(host);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": event_namespace(involved)},
        "involvedObject": involved_object,
        "reason": reason,
        "message": message,
        "type": event_type.as_str(),
        "source": source_json,
        "reportingComponent": source.component,
        "reportingInstance": source.host.clone().unwrap_or_else(|| source.component.clone()),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
