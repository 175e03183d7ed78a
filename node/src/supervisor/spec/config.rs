//! The pod's `wasi:config` values: the keys of the ConfigMaps and Secrets its
//! `skiff.dev/wasi-config` annotation names ([`skiff_api::wasi_config`]),
//! read from what the node holds when each instance starts, so that a change
//! reaches an HTTP pod's next request. The sources must exist when the
//! container starts, as `envFrom`'s must.

use std::sync::Arc;

use skiff_api::wasi_config::{ANNOTATION, SourceKind, sources};
use skiff_runtime::ConfigSource;

use super::{ConfigError, Result, SpecInputs};
use crate::supervisor::objects::PodObjects;

/// The pod's config source, if its annotation names any.
pub(super) fn config(inputs: &SpecInputs<'_>) -> Result<Option<Arc<dyn ConfigSource>>> {
    let meta = &inputs.pod.metadata;
    let Some(value) = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION)) else {
        return Ok(None);
    };
    let named =
        sources(value).map_err(|e| ConfigError::Config(format!("annotation {ANNOTATION}: {e}")))?;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let mut list = Vec::with_capacity(named.len());
    for source in named {
        let found = match source.kind {
            SourceKind::ConfigMap => inputs
                .objects
                .config_map(&namespace, source.name)
                .map(|_| ()),
            SourceKind::Secret => inputs.objects.secret(&namespace, source.name).map(|_| ()),
        };
        found.map_err(|e| ConfigError::Config(e.to_string()))?;
        list.push((source.kind, source.name.to_string()));
    }
    Ok(Some(Arc::new(PodConfig {
        objects: inputs.objects.clone(),
        namespace,
        sources: list,
    })))
}

/// The sources of one pod, read afresh for each instance.
struct PodConfig {
    objects: Arc<PodObjects>,
    namespace: String,
    sources: Vec<(SourceKind, String)>,
}

impl ConfigSource for PodConfig {
    fn values(&self) -> Vec<(String, String)> {
        let mut values = Vec::new();
        for (kind, name) in &self.sources {
            match kind {
                SourceKind::ConfigMap => {
                    if let Ok(cm) = self.objects.config_map(&self.namespace, name) {
                        values.extend(
                            cm.data
                                .iter()
                                .flatten()
                                .map(|(k, v)| (k.clone(), v.clone())),
                        );
                    }
                }
                SourceKind::Secret => {
                    if let Ok(secret) = self.objects.secret(&self.namespace, name) {
                        // wasi:config values are strings: a value that is not
                        // UTF-8 text is left out rather than changed.
                        values.extend(secret.data.iter().flatten().filter_map(|(k, v)| {
                            String::from_utf8(v.0.clone()).ok().map(|v| (k.clone(), v))
                        }));
                    }
                }
            }
        }
        values
    }
}
