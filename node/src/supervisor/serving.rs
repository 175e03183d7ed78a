//! One running instance of an HTTP container, as the supervisor serves it:
//! requests in flight are counted so a graceful stop can drain them, a failure
//! before the first good answer marks the container as failed at start, and a
//! kill ends what is still in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use skiff_runtime::{HttpContainer, RuntimeError};
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

    /// Hand a request to a fresh instance. An instance failure before any
    /// request was answered fails the container at start.
    pub(super) async fn handle(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, RuntimeError> {
        let result = self.container.handle(request).await;
        match &result {
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
        result
    }

    /// Like [`ServingHttp::handle`], but given up (`None`) if the instance is
    /// killed first.
    pub(super) async fn handle_unless_killed(
        &self,
        request: http::Request<Bytes>,
    ) -> Option<Result<http::Response<Bytes>, RuntimeError>> {
        tokio::select! {
            r = self.handle(request) => Some(r),
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

    /// End every request still in flight: their callers get an error.
    pub(super) fn kill(&self) {
        self.stop_accepting();
        self.killed.send_replace(true);
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
