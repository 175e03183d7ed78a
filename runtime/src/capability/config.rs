//! The config capability: `wasi:config/store` (wasi-config 0.2, as Spin's
//! variables), served by `wasmtime-wasi-config`. Each instance sees the
//! values the embedder's [`ConfigSource`] gives when the instance starts, so
//! an HTTP pod (an instance per request) sees a change on its next request,
//! and a command pod sees the values it started with. Without a source the
//! store is empty.

use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::{Capability, Instance};
use crate::error::Result;
use crate::host::{Host, PodSpec};

/// Where a pod's `wasi:config` values come from (the node: the keys of the
/// ConfigMaps and Secrets the pod names).
pub trait ConfigSource: Send + Sync + 'static {
    /// The key-value pairs now; a key given twice keeps its last value.
    fn values(&self) -> Vec<(String, String)>;
}

pub(crate) struct ConfigCapability;

impl Capability for ConfigCapability {
    fn link(&self, linker: &mut Linker<Host>) -> wasmtime::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, |h: &mut Host| {
            WasiConfig::from(&h.state.config)
        })
    }

    fn prepare(&self, spec: &PodSpec, instance: &mut Instance<'_>) -> Result<()> {
        instance.state.config = match &spec.config {
            Some(source) => WasiConfigVariables::from_iter(source.values()),
            None => WasiConfigVariables::new(),
        };
        Ok(())
    }
}

/// A fixed set of values, for embedders whose configuration does not change.
pub struct StaticConfig(pub Vec<(String, String)>);

impl ConfigSource for StaticConfig {
    fn values(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}
