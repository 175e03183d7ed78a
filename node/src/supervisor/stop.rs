//! Stop orders: why a pod (or one sidecar) stops and by when. A later order can
//! shorten the deadline (`kubectl delete --grace-period=0` after a plain delete),
//! never extend it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Why a pod stops, which decides what is reported at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum StopKind {
    /// A sidecar whose pod's main containers have all finished.
    Finished,
    /// The node shuts down: the pod runs again when it comes back, so no final
    /// status is reported.
    Shutdown,
    /// The pod's object was deleted gracefully: final status, then `Terminated`.
    Delete,
    /// The pod is no longer bound here: stop, report nothing more.
    Remove,
}

/// A request to stop by a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StopOrder {
    pub deadline: Instant,
    pub kind: StopKind,
}

impl StopOrder {
    /// Time left before the deadline.
    pub(super) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The earlier deadline and the weightier kind of both.
    fn merge(self, other: StopOrder) -> StopOrder {
        StopOrder {
            deadline: self.deadline.min(other.deadline),
            kind: self.kind.max(other.kind),
        }
    }
}

/// `grace` from now; a grace period past what an `Instant` holds (the pod's
/// object is not trusted to be validated) means about thirty years.
fn deadline_after(grace: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(grace)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Ask for a stop on `tx`, merged with any earlier order. True if it changed.
pub(super) fn order(
    tx: &watch::Sender<Option<StopOrder>>,
    kind: StopKind,
    grace: Duration,
) -> bool {
    let new = StopOrder {
        deadline: deadline_after(grace),
        kind,
    };
    tx.send_if_modified(|cur| {
        let merged = cur.map_or(new, |c| c.merge(new));
        let changed = *cur != Some(merged);
        *cur = Some(merged);
        changed
    })
}

/// What a container watches for a stop: its pod's order and (for a sidecar) its own.
#[derive(Debug, Clone)]
pub(super) struct Stop {
    pod: watch::Receiver<Option<StopOrder>>,
    own: Option<watch::Receiver<Option<StopOrder>>>,
}

impl Stop {
    pub(super) fn new(
        pod: watch::Receiver<Option<StopOrder>>,
        own: Option<watch::Receiver<Option<StopOrder>>>,
    ) -> Self {
        Self { pod, own }
    }

    /// The order in force now, if any.
    pub(super) fn current(&self) -> Option<StopOrder> {
        let pod = *self.pod.borrow();
        let own = self.own.as_ref().and_then(|o| *o.borrow());
        match (pod, own) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolves with the order once there is one.
    pub(super) async fn requested(&mut self) -> StopOrder {
        loop {
            if let Some(o) = self.current() {
                return o;
            }
            self.changed().await;
        }
    }

    /// Resolves when the deadline in force has passed (following changes to it).
    pub(super) async fn deadline(&mut self) {
        loop {
            let order = self.requested().await;
            tokio::select! {
                _ = tokio::time::sleep_until(order.deadline) => return,
                _ = self.changed() => {}
            }
        }
    }

    /// Resolves when either order changes (never, once both senders are gone).
    async fn changed(&mut self) {
        let Stop { pod, own } = self;
        let pod = async {
            if pod.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let own = async {
            let open = match own {
                Some(o) => o.changed().await.is_ok(),
                None => false,
            };
            if !open {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = pod => {}
            _ = own => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `terminationGracePeriodSeconds: 9223372036854775807` on a pod that
    /// skipped validation must not panic the node.
    #[tokio::test(start_paused = true)]
    async fn a_huge_grace_period_does_not_overflow() {
        let (tx, rx) = watch::channel(None);
        assert!(order(
            &tx,
            StopKind::Delete,
            Duration::from_secs(i64::MAX as u64)
        ));
        let order = rx.borrow().unwrap();
        assert!(order.remaining() > Duration::from_secs(365 * 24 * 3600));
    }

    #[tokio::test(start_paused = true)]
    async fn orders_merge_to_the_earliest_deadline() {
        let (tx, rx) = watch::channel(None);
        let mut stop = Stop::new(rx, None);
        assert!(stop.current().is_none());
        assert!(order(&tx, StopKind::Delete, Duration::from_secs(30)));
        let first = stop.requested().await;
        assert_eq!(first.kind, StopKind::Delete);
        // A longer grace does not extend it; a shorter one shortens it.
        assert!(!order(&tx, StopKind::Delete, Duration::from_secs(60)));
        assert!(order(&tx, StopKind::Delete, Duration::from_secs(1)));
        let start = Instant::now();
        stop.deadline().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(order(&tx, StopKind::Remove, Duration::from_secs(5)));
        assert_eq!(stop.current().map(|o| o.kind), Some(StopKind::Remove));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sidecar_stops_on_its_own_order_too() {
        let (_pod_tx, pod_rx) = watch::channel(None);
        let (own_tx, own_rx) = watch::channel(None);
        let mut stop = Stop::new(pod_rx, Some(own_rx));
        let waiter = tokio::spawn(async move { stop.requested().await.kind });
        order(&own_tx, StopKind::Finished, Duration::ZERO);
        assert_eq!(waiter.await.expect("join"), StopKind::Finished);
    }
}
