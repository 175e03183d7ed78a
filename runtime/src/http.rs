//! HTTP containers: a component exporting `wasi:http/incoming-handler`, pre-instantiated
//! once, with a fresh instance per request and no socket in between; or, for a
//! pod that opts in ([`InstanceReuse`](crate::InstanceReuse)), instances that
//! serve request after request from a pool of idle ones (`http/pool.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::body::{self, BodyError};
use crate::capability::{self, limits};
use crate::engine::{Component, Engine};
use crate::error::{Result, RuntimeError, guest_error};
use crate::host::{Host, PodSpec};
use crate::kind::Kind;
use crate::logs::LogBuffer;
use pool::{Idle, InstancePool, Life};

mod pool;

/// Largest response body collected from a guest.
const MAX_RESPONSE_BODY: usize = 64 << 20;

/// Counters of one HTTP container, for the node's metrics.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    instances: AtomicU64,
    in_flight: AtomicU64,
    errors: AtomicU64,
    instance_nanos: AtomicU64,
    memory_high_water: AtomicU64,
}

/// A snapshot of an HTTP container's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpMetrics {
    /// Requests taken.
    pub requests: u64,
    /// Instances made to serve them: one per request, fewer when the pod
    /// reuses instances.
    pub instances: u64,
    /// Instances waiting in the pool for a request (always 0 without reuse).
    pub idle_instances: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Requests that ended in an error (trap, timeout, memory limit, overload).
    pub errors: u64,
    /// Total wall time spent in instances.
    pub instance_time: Duration,
    /// Highest linear memory any one instance reached, in bytes.
    pub memory_high_water: u64,
}

/// A running HTTP pod: call [`HttpContainer::handle`] once per request.
pub struct HttpContainer {
    engine: Engine,
    pre: ProxyPre<Host>,
    spec: Arc<PodSpec>,
    pod: Arc<str>,
    logs: LogBuffer,
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
    /// Idle instances, when the pod reuses them.
    pool: Option<Arc<InstancePool>>,
    /// Set to end every running instance.
    stopped: watch::Sender<bool>,
}

impl std::fmt::Debug for HttpContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpContainer")
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

impl HttpContainer {
    /// Link and pre-instantiate `component` for the pod `spec`; its output goes to
    /// `logs`. Fails if the component is not an HTTP component, imports what the
    /// host does not offer, or a mount cannot be opened.
    pub fn new(
        engine: &Engine,
        component: &Component,
        spec: PodSpec,
        logs: LogBuffer,
    ) -> Result<Self> {
        let pod: Arc<str> = spec.qualified_name().into();
        if component.kind() != Kind::Http {
            return Err(RuntimeError::WrongKind {
                pod: pod.to_string(),
                actual: component.kind().as_str(),
                wanted: Kind::Http.as_str(),
            });
        }
        capability::configure(&spec)?;
        let pre = engine
            .linker()
            .instantiate_pre(&component.inner)
            .map_err(RuntimeError::Link)?;
        let pre = ProxyPre::new(pre).map_err(RuntimeError::Link)?;
        // At most `max_concurrency` instances are busy at once, so no more
        // can be idle either.
        let pool = spec
            .limits
            .reuse
            .map(|reuse| InstancePool::new(reuse, spec.limits.max_concurrency));
        Ok(Self {
            engine: engine.clone(),
            pre,
            pool,
            permits: Arc::new(Semaphore::new(spec.limits.max_concurrency.max(1))),
            spec: Arc::new(spec),
            pod,
            logs,
            counters: Arc::default(),
            stopped: watch::Sender::new(false),
        })
    }

    /// The pod's log.
    pub fn logs(&self) -> &LogBuffer {
        &self.logs
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> HttpMetrics {
        let c = &self.counters;
        HttpMetrics {
            requests: c.requests.load(Ordering::Relaxed),
            instances: c.instances.load(Ordering::Relaxed),
            idle_instances: self.pool.as_ref().map_or(0, |p| p.len() as u64),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            instance_time: Duration::from_nanos(c.instance_nanos.load(Ordering::Relaxed)),
            memory_high_water: c.memory_high_water.load(Ordering::Relaxed),
        }
    }

    /// Handle one request in a fresh instance (or an idle one, when the pod
    /// reuses instances) and return the complete response (at most 64 MiB of
    /// body). A trap, timeout or memory limit ends only that instance and
    /// comes back as an error naming the pod.
    pub async fn handle(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>> {
        let (response, mut task) = self.start(req.map(body::full))?;
        let response = match response.await {
            Some(r) => r,
            None => return Err(self.task_error(&mut task).await),
        };
        let (parts, body) = response.into_parts();
        match http_body_util::Limited::new(body, MAX_RESPONSE_BODY)
            .collect()
            .await
        {
            Ok(b) => Ok(http::Response::from_parts(parts, b.to_bytes())),
            // The body broke off: most likely the instance trapped mid-way.
            Err(e) => match task.await {
                Ok(Err(error)) => Err(error),
                _ => Err(RuntimeError::BadResponse {
                    pod: self.pod.to_string(),
                    message: format!("response body: {e}"),
                }),
            },
        }
    }

    /// Handle one request in a fresh (or idle) instance, streaming: the guest
    /// reads the request body as it arrives, and the response comes back as
    /// soon as the guest sets it, its body following as the guest writes it.
    /// A failure before the response is an error naming the pod; one after it
    /// breaks the body off. The instance serves the request until the guest
    /// returns (bounded by the pod's timeout) or
    /// [`HttpContainer::stop_instances`].
    pub async fn handle_stream(
        &self,
        req: http::Request<body::Body>,
    ) -> Result<http::Response<body::Body>> {
        let (response, mut task) = self.start(req)?;
        match response.await {
            Some(r) => Ok(r),
            None => Err(self.task_error(&mut task).await),
        }
    }

    /// Ends every instance still running (the pod is being killed): their
    /// requests fail, their response bodies break off. Idle instances are
    /// dropped, and none is kept from now on.
    pub fn stop_instances(&self) {
        self.stopped.send_replace(true);
        if let Some(pool) = &self.pool {
            pool.close();
        }
    }

    fn timeout_ms(&self) -> u64 {
        self.spec
            .limits
            .timeout
            .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    }

    /// Starts an instance on `req`: the response (`None` if the guest ended
    /// without one; the task then says why) and the instance's task.
    #[allow(clippy::type_complexity)]
    fn start(
        &self,
        req: http::Request<body::Body>,
    ) -> Result<(
        impl Future<Output = Option<http::Response<body::Body>>> + use<>,
        JoinHandle<Result<()>>,
    )> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            return Err(RuntimeError::Overloaded {
                pod: self.pod.to_string(),
                limit: self.spec.limits.max_concurrency,
            });
        };
        // An idle instance gets a whole timeout and CPU budget of its own;
        // a fresh one is instantiated in the task, under the timeout.
        let (mut store, idle_proxy, life) = match self.pool.as_ref().and_then(|p| p.take()) {
            Some(Idle {
                mut store,
                proxy,
                life,
            }) => {
                limits::arm_deadline(&mut store, &self.spec.limits, self.engine.epoch_tick());
                (store, Some(proxy), life)
            }
            None => (
                Host::store(&self.engine, &self.spec, &self.logs)?,
                None,
                Life::new(Instant::now()),
            ),
        };

        let (mut parts, body) = req.into_parts();
        if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
            parts.headers.insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
        }
        let body = body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.0)));
        let req = http::Request::from_parts(parts, body);
        let (tx, rx) = oneshot::channel();
        // Whether the guest set a response (not an error code): an instance
        // that did not is not reused.
        let answered = Arc::new(AtomicBool::new(false));
        let pre = self.pre.clone();
        let pool = self.pool.clone();
        let counters = self.counters.clone();
        let pod = self.pod.clone();
        let timeout = self.spec.limits.timeout;
        let timeout_ms = self.timeout_ms();
        let mut stopped = self.stopped.subscribe();
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let run = async {
                let req = store
                    .data_mut()
                    .http()
                    .new_incoming_request(Scheme::Http, req)?;
                let out = store
                    .data_mut()
                    .http()
                    .new_response_outparam_from_callback({
                        let answered = answered.clone();
                        move |response| {
                            answered.store(response.is_ok(), Ordering::Relaxed);
                            // The caller may have given up on the answer already.
                            let _ = tx.send(response);
                        }
                    })?;
                let proxy = match idle_proxy {
                    Some(proxy) => proxy,
                    None => {
                        counters.instances.fetch_add(1, Ordering::Relaxed);
                        pre.instantiate_async(&mut store).await?
                    }
                };
                let result = proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await;
                counters
                    .memory_high_water
                    .fetch_max(store.data().state.limiter.high_water, Ordering::Relaxed);
                result.map(|()| proxy)
            };
            // The epoch deadline interrupts a running guest; this bounds a
            // guest that waits in the host (e.g. on a clock) as well.
            let bounded = async {
                match timeout {
                    Some(t) => {
                        match tokio::time::timeout(t + Duration::from_millis(100), run).await {
                            Ok(r) => r.map_err(|e| guest_error(&pod, timeout_ms, e)),
                            Err(_) => Err(RuntimeError::Timeout {
                                pod: pod.to_string(),
                                limit_ms: timeout_ms,
                            }),
                        }
                    }
                    None => run.await.map_err(|e| guest_error(&pod, timeout_ms, e)),
                }
            };
            let result = tokio::select! {
                r = bounded => r,
                _ = stopped.wait_for(|s| *s) => Err(RuntimeError::Stopped { pod: pod.to_string() }),
            };
            counters.instance_nanos.fetch_add(
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let result = match result {
                Ok(proxy) => {
                    // Only an instance whose request ended cleanly goes
                    // back; any error above dropped it with its store.
                    if let Some(pool) = &pool
                        && answered.load(Ordering::Relaxed)
                    {
                        pool.give_back(Idle { store, proxy, life }, &pod);
                    }
                    Ok(())
                }
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "an instance ended in an error");
                    Err(e)
                }
            };
            // Only now, with the instance back in the pool or dropped: the
            // response (its body included) may have reached the caller a
            // moment before the guest returned from `handle`.
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            result
        });
        let pod = self.pod.clone();
        let response = async move {
            match rx.await {
                Ok(Ok(response)) => Some(response.map(|b| {
                    b.map_err(move |e| BodyError(format!("pod {pod}: response body: {e}")))
                        .boxed_unsync()
                })),
                Ok(Err(code)) => Some(
                    http::Response::builder()
                        .status(http::StatusCode::INTERNAL_SERVER_ERROR)
                        .body(body::full(format!(
                            "pod {pod}: guest answered with error {code:?}\n"
                        )))
                        .unwrap_or_default(),
                ),
                // The guest ended without setting a response.
                Err(_) => None,
            }
        };
        Ok((response, task))
    }

    async fn task_error(&self, task: &mut JoinHandle<Result<()>>) -> RuntimeError {
        match task.await {
            Ok(Ok(())) => RuntimeError::BadResponse {
                pod: self.pod.to_string(),
                message: "guest returned without setting a response".into(),
            },
            Ok(Err(e)) => e,
            Err(e) => RuntimeError::Trap {
                pod: self.pod.to_string(),
                message: format!("instance task failed: {e}"),
            },
        }
    }
}
