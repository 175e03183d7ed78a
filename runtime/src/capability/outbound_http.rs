//! The outbound HTTP capability: `wasi:http/outgoing-handler`, each request
//! going where the embedder's [`OutboundHttp`] hook routes it, or refused
//! without one. It links all of `wasi:http`: its types also carry an HTTP
//! pod's incoming requests.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::Linker;
use wasmtime_wasi_http::WasiHttpHooks;

use super::{Capability, Instance};
use crate::error::Result;
use crate::host::{Host, PodSpec};

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

pub(crate) struct OutboundHttpCapability;

impl Capability for OutboundHttpCapability {
    fn link(&self, linker: &mut Linker<Host>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    fn prepare(&self, spec: &PodSpec, instance: &mut Instance<'_>) -> Result<()> {
        instance.state.outbound = OutboundHooks {
            hook: spec.outbound.clone(),
        };
        Ok(())
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
