//! One running instance of an HTTP container, as the supervisor serves it:
//! requests in flight are counted so a graceful stop can drain them, a failure
//! before the first good answer marks the container as failed at start, and a
//! kill ends what is still in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use skiff_runtime::{Body, HttpContainer, RuntimeError};
use tokio::sync::watch;

/// Whether new requests are let in, and how many are in flight.
#[derive(Debug, Clone, Copy)]
struct Gate {
    accepting: bool,
    in_flight: usize,
}

/// A started HTTP container instance.
pub(super) struct ServingHttp {
    container: HttpContainer,
    gate: watch::Sender<Gate>,
    /// It has answered a request (any response) since it started.
    answered: AtomicBool,
    /// The error that failed it at start, if any.
    failure: watch::Sender<Option<String>>,
    killed: watch::Sender<bool>,
}

/// A request let in by [`ServingHttp::enter`]; leaving drops the count.
pub(super) struct InFlight {
    serving: Arc<ServingHttp>,
}

impl ServingHttp {
    pub(super) fn new(container: HttpContainer) -> Self {
        Self {
            container,
            gate: watch::Sender::new(Gate {
                accepting: true,
                in_flight: 0,
            }),
            answered: AtomicBool::new(false),
            failure: watch::Sender::new(None),
            killed: watch::Sender::new(false),
        }
    }

    /// Let a request in, unless the instance is stopping.
    pub(super) fn enter(self: &Arc<Self>) -> Option<InFlight> {
        let mut admitted = false;
        self.gate.send_if_modified(|g| {
            if g.accepting {
                g.in_flight += 1;
                admitted = true;
            }
            admitted
        });
        admitted.then(|| InFlight {
            serving: self.clone(),
        })
    }

    /// Hand a request to a fresh instance and take its whole answer (probes).
    /// An instance failure before any request was answered fails the container
    /// at start.
    pub(super) async fn handle(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, RuntimeError> {
        let result = self.container.handle(request).await;
        self.note(&result);
        result
    }

    /// Like [`ServingHttp::handle`], streaming both bodies.
    pub(super) async fn handle_stream(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, RuntimeError> {
        let result = self.container.handle_stream(request).await;
        self.note(&result);
        result
    }

    fn note<T>(&self, result: &Result<T, RuntimeError>) {
        match result {
            Ok(_) => self.answered.store(true, Ordering::SeqCst),
            Err(e) if fails_at_start(e) && !self.answered.load(Ordering::SeqCst) => {
                let message = e.to_string();
                self.failure.send_if_modified(|f| {
                    let first = f.is_none();
                    if first {
                        *f = Some(message);
                    }
                    first
                });
            }
            Err(_) => {}
        }
    }

    /// Like [`ServingHttp::handle_stream`], but given up (`None`) if the
    /// instance is killed before it answers.
    pub(super) async fn handle_unless_killed(
        &self,
        request: http::Request<Body>,
    ) -> Option<Result<http::Response<Body>, RuntimeError>> {
        tokio::select! {
            r = self.handle_stream(request) => Some(r),
            _ = self.killed() => None,
        }
    }

    /// Resolves with the error once the container has failed at start.
    pub(super) async fn failed(&self) -> String {
        let mut rx = self.failure.subscribe();
        let message = match rx.wait_for(Option::is_some).await {
            Ok(f) => f.clone(),
            Err(_) => None,
        };
        match message {
            Some(m) => m,
            // The sender lives in `self`: it cannot be gone while borrowed.
            None => std::future::pending().await,
        }
    }

    /// Refuse new requests from now on.
    pub(super) fn stop_accepting(&self) {
        self.gate.send_modify(|g| g.accepting = false);
    }

    /// Resolves when no request is in flight.
    pub(super) async fn drained(&self) {
        let mut rx = self.gate.subscribe();
        if rx.wait_for(|g| g.in_flight == 0).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// End every request still in flight: their callers get an error, their
    /// response bodies break off.
    pub(super) fn kill(&self) {
        self.stop_accepting();
        self.killed.send_replace(true);
        self.container.stop_instances();
    }

    async fn killed(&self) {
        let mut rx = self.killed.subscribe();
        if rx.wait_for(|k| *k).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.serving
            .gate
            .send_modify(|g| g.in_flight = g.in_flight.saturating_sub(1));
    }
}

impl InFlight {
    /// `body`, counted in flight until it ends or is dropped: a graceful stop
    /// waits for streamed answers too.
    pub(super) fn hold(self, body: Body) -> Body {
        use http_body_util::BodyExt;
        Held {
            body,
            _in_flight: self,
        }
        .boxed_unsync()
    }
}

/// A response body that keeps its request in flight.
struct Held {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = skiff_runtime::BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Errors that mean the instance itself failed (not that the host refused or
/// gave up on a request): a trap, the memory limit, no valid response. A slow
/// request (timeout) is not a failure to start.
fn fails_at_start(e: &RuntimeError) -> bool {
    matches!(
        e,
        RuntimeError::Trap { .. }
            | RuntimeError::MemoryLimit { .. }
            | RuntimeError::BadResponse { .. }
    )
}
