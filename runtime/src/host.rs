//! What a pod sees: the per-`Store` `Host` state, and how a [`PodSpec`] becomes a
//! WASI context (args, env, cwd, preopened dirs, captured stdio; nothing else).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::error::{Result, RuntimeError};
use crate::limits::{Limits, MemoryLimiter};
use crate::logs::{LogBuffer, LogStream};

/// A host directory made visible to the guest (a volume mount).
#[derive(Debug, Clone)]
pub struct Mount {
    /// Directory on the host.
    pub host_path: PathBuf,
    /// Path the guest opens it at (e.g. `/data`).
    pub guest_path: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// A future returned by an [`OutboundHttp`] hook.
pub type OutboundFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, String>> + Send>>;

/// Where a guest's outbound request goes, as the embedder decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundRoute {
    /// The embedder answers it ([`OutboundHttp::send`]): e.g. a Service name.
    Embedder,
    /// Sent over the network as addressed (HTTP or HTTPS): an allowed outside host.
    Network,
    /// Refused (the guest sees `HTTP-request-denied`); the message says why
    /// and is logged.
    Denied(String),
}

/// The embedder's hook for a guest's outbound HTTP requests (the node routes
/// Service names through it). Without one, outbound HTTP is refused.
pub trait OutboundHttp: Send + Sync + 'static {
    /// Where a request to `uri` (absolute: scheme and authority) goes.
    fn route(&self, uri: &http::Uri) -> OutboundRoute;
    /// Send `request` (body collected) for a request [`route`](Self::route)d
    /// to [`OutboundRoute::Embedder`] and return the complete response, or an
    /// error message that reaches the guest as an internal error.
    fn send(&self, request: http::Request<Bytes>) -> OutboundFuture;
}

/// Everything about a pod's container that the runtime needs to run it.
#[derive(Clone, Default)]
pub struct PodSpec {
    /// Pod name (`metadata.name`), given to the guest as `POD_NAME`.
    pub name: String,
    /// Pod namespace, given as `POD_NAMESPACE`.
    pub namespace: String,
    /// Pod UID, given as `POD_UID`.
    pub uid: String,
    /// Arguments after the program name (`command` + `args`).
    pub args: Vec<String>,
    /// Environment variables, in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory (`workingDir`), if any.
    pub working_dir: Option<String>,
    /// Volume mounts, as preopened directories.
    pub mounts: Vec<Mount>,
    /// Memory, time and concurrency limits.
    pub limits: Limits,
    /// Where the guest's outbound HTTP goes; `None` refuses it.
    pub outbound: Option<Arc<dyn OutboundHttp>>,
}

impl std::fmt::Debug for PodSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSpec")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("uid", &self.uid)
            .field("args", &self.args)
            .field("env", &self.env)
            .field("working_dir", &self.working_dir)
            .field("mounts", &self.mounts)
            .field("limits", &self.limits)
            .field("outbound", &self.outbound.is_some())
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

    /// Check the mounts can be opened, so a bad mount fails at pod start.
    pub(crate) fn check_mounts(&self) -> Result<()> {
        self.wasi_ctx(&LogBuffer::new(1)).map(drop)
    }

    /// A fresh WASI context for one instance of this pod.
    pub(crate) fn wasi_ctx(&self, logs: &LogBuffer) -> Result<WasiCtx> {
        let mut b = WasiCtxBuilder::new();
        // argv[0] is the program name, as a POSIX program expects.
        b.arg(&self.name);
        b.args(&self.args);
        // The downward API first, so the pod's own env can override it.
        b.env("POD_NAME", &self.name);
        b.env("POD_NAMESPACE", &self.namespace);
        b.env("POD_UID", &self.uid);
        b.envs(&self.env);
        if let Some(cwd) = &self.working_dir {
            b.initial_cwd(cwd);
        }
        b.stdout(logs.sink(LogStream::Stdout));
        b.stderr(logs.sink(LogStream::Stderr));
        for m in &self.mounts {
            let perms = if m.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&m.host_path, &m.guest_path, perms)
                .map_err(|e| RuntimeError::Mount {
                    pod: self.qualified_name(),
                    host: m.host_path.clone(),
                    guest: m.guest_path.clone(),
                    reason: format!("{e:#}"),
                })?;
        }
        // No sockets, no ambient filesystem, no inherited env or stdio: the
        // builder grants none of these unless asked.
        Ok(b.build())
    }
}

/// Outbound HTTP policy for a store: the embedder's hook, or refused.
#[derive(Default)]
pub(crate) struct OutboundHooks {
    hook: Option<Arc<dyn OutboundHttp>>,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        use wasmtime_wasi_http::Error as HttpError;
        let Some(hook) = self.hook.clone() else {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        match hook.route(request.uri()) {
            OutboundRoute::Embedder => {}
            OutboundRoute::Network => {
                return Box::new(async move {
                    let (response, io) =
                        wasmtime_wasi_http::default_send_request(request, options).await?;
                    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(io);
                    Ok((response.map(BodyExt::boxed_unsync), io))
                });
            }
            OutboundRoute::Denied(why) => {
                tracing::debug!(uri = %request.uri(), why, "outbound request refused");
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        }
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let response = hook
                .send(http::Request::from_parts(parts, body))
                .await
                .map_err(|e| HttpError::InternalError(Some(e)))?;
            let response = response.map(|b| Full::new(b).map_err(HttpError::from).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The state of one `Store`: one instance of one pod.
pub(crate) struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHooks,
    pub(crate) limiter: MemoryLimiter,
}

impl Host {
    pub(crate) fn new(spec: &PodSpec, logs: &LogBuffer) -> Result<Self> {
        Ok(Self {
            wasi: spec.wasi_ctx(logs)?,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks {
                hook: spec.outbound.clone(),
            },
            limiter: MemoryLimiter::new(spec.limits.memory_bytes),
        })
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
            hooks: &mut self.hooks,
        }
    }
}
