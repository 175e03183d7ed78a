//! The `scale` subresource: an `autoscaling/v1 Scale` view of a workload's
//! replica count, as `kubectl scale` and autoscalers use it.

use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::patch::PatchType;
use skiff_api::resource::ResourceType;
use skiff_api::status::{ApiError, FieldError, Reason};

use super::{Registry, Result, Subresource, WriteOptions};
use crate::store::object_revision;

impl Registry {
    /// The Scale of a workload.
    pub fn get_scale(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        Ok(to_scale(&self.get(rt, namespace, name)?))
    }

    /// Sets `spec.replicas` from a Scale (PUT .../scale).
    pub async fn update_scale(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        scale: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let replicas = replicas_of(rt, name, &scale)?;
        let pinned = meta::resource_version(&scale);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let old = self.get(rt, namespace, name)?;
            if let Some(rv) = pinned
                && Some(rv) != old.at("/metadata/resourceVersion").and_then(Value::as_str)
            {
                return Err(ApiError::conflict(rt, name, super::STALE));
            }
            let expected = object_revision(&old).unwrap_or(0);
            let mut new = old.clone();
            super::strategy::set_path(&mut new, &["spec", "replicas"], json!(replicas));
            // Without a resourceVersion from the client, a write that lands
            // in between is no conflict of the client's: take it and retry.
            match self
                .write_update(rt, old, new, expected, Subresource::Main, opts)
                .await
            {
                Err(e)
                    if e.reason == Reason::Conflict
                        && pinned.is_none()
                        && attempt < super::PATCH_RETRIES => {}
                Err(e) => return Err(e),
                Ok(written) => return Ok(to_scale(&written.object)),
            }
        }
    }

    /// Patches the Scale of a workload (PATCH .../scale, as `kubectl scale` does).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_scale(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let mut current = self.get_scale(rt, namespace, name)?;
        if patch
            .at("/metadata/resourceVersion")
            .is_none_or(Value::is_null)
            && let Some(metadata) = current.get_mut("metadata").and_then(Value::as_object_mut)
        {
            // The client set no precondition: the update may retry against
            // whatever version it finds.
            metadata.remove("resourceVersion");
        }
        let mut patched = current.clone();
        match patch_type {
            PatchType::Json => skiff_api::patch::json_patch(&mut patched, &patch)?,
            // A Scale has no lists, so a strategic merge is a plain merge; an apply
            // of a Scale sets the fields it names.
            PatchType::Merge | PatchType::StrategicMerge | PatchType::Apply => {
                skiff_api::patch::merge_patch(&mut patched, &patch)
            }
        }
        self.update_scale(rt, namespace, name, patched, opts).await
    }
}

fn replicas_of(rt: &ResourceType, name: &str, scale: &Value) -> Result<i64> {
    match scale.at("/spec/replicas") {
        Some(v) => match v.as_i64() {
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                rt,
                name,
                vec![FieldError::invalid(
                    "spec.replicas",
                    v.clone(),
                    "must be greater than or equal to 0",
                )],
            )),
        },
        None => Ok(0),
    }
}

/// The Scale view of a workload.
fn to_scale(obj: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.at(&format!("/metadata/{field}")) {
            metadata.insert(field.into(), v.clone());
        }
    }
    let selector = obj
        .at("/spec/selector")
        .map(selector_string)
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": { "replicas": obj.at("/spec/replicas").and_then(Value::as_i64).unwrap_or(0) },
        "status": {
            "replicas": obj.at("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// A `LabelSelector` object in query-string form, as `Scale.status.selector` has it.
fn selector_string(selector: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        let mut pairs: Vec<_> = labels.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in pairs {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match expr
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}
