//! What a pod sees: the [`PodSpec`] that says it, one group of fields per
//! capability (see [`capability`]), and the per-`Store` [`Host`], the
//! composition of what the capabilities prepared for one instance.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capability::cli::Cli;
use crate::capability::config::ConfigSource;
use crate::capability::limits::{self, Limits};
use crate::capability::outbound_http::OutboundHttp;
use crate::capability::volumes::Mount;
use crate::capability::{self, State};
use crate::engine::Engine;
use crate::error::Result;
use crate::logs::LogBuffer;

/// Everything about a pod's container that the runtime needs to run it: who
/// the pod is, and what each capability gives it.
#[derive(Clone, Default)]
pub struct PodSpec {
    /// Pod name (`metadata.name`), given to the guest as `POD_NAME`.
    pub name: String,
    /// Pod namespace, given as `POD_NAMESPACE`.
    pub namespace: String,
    /// Pod UID, given as `POD_UID`.
    pub uid: String,
    /// Arguments, environment and working directory.
    pub cli: Cli,
    /// Volume mounts, as preopened directories.
    pub mounts: Vec<Mount>,
    /// Where the guest's outbound HTTP goes; `None` refuses it.
    pub outbound: Option<Arc<dyn OutboundHttp>>,
    /// Where its `wasi:config` values come from; `None`: no values.
    pub config: Option<Arc<dyn ConfigSource>>,
    /// Memory, time and concurrency limits.
    pub limits: Limits,
}

impl std::fmt::Debug for PodSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSpec")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("uid", &self.uid)
            .field("cli", &self.cli)
            .field("mounts", &self.mounts)
            .field("outbound", &self.outbound.is_some())
            .field("config", &self.config.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl PodSpec {
    /// `namespace/name`, as errors name the pod.
    pub fn qualified_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// The state of one `Store`: one instance of one pod.
pub(crate) struct Host {
    table: ResourceTable,
    /// What the WASI capabilities granted.
    wasi: WasiCtx,
    /// `wasi:http`'s context: an HTTP pod's incoming requests use it too.
    http: WasiHttpCtx,
    /// What the other capabilities keep.
    pub(crate) state: State,
}

impl Host {
    /// A store for a new instance of `spec`, prepared by every capability,
    /// with the pod's limits on it; its output goes to `logs`.
    pub(crate) fn store(engine: &Engine, spec: &PodSpec, logs: &LogBuffer) -> Result<Store<Self>> {
        let instance = capability::prepare(spec, logs)?;
        let mut wasi = instance.wasi;
        let host = Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            state: instance.state,
        };
        let mut store = Store::new(engine.wasmtime(), host);
        limits::install(&mut store, &spec.limits, engine.epoch_tick());
        Ok(store)
    }

    /// How many host resources (`wasi:http` requests and bodies, streams,
    /// descriptors, ...) the instance holds: a reused instance must not hold
    /// more and more as it serves requests.
    pub(crate) fn resources_held(&mut self) -> usize {
        self.table.iter_mut().count()
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.state.outbound,
        }
    }
}
