//! Restart back-off, as the kubelet does it: the first restart of a failed
//! container is immediate, the next waits the base delay, and every further one
//! doubles it up to the maximum. A container that ran long enough without
//! failing starts over.

use std::time::Duration;

/// A container that ran this long before it failed is treated as healthy: its
/// next restart is immediate again (Kubernetes: 10 minutes).
pub(super) const RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off state of one container (or one image pull).
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    base: Duration,
    max: Duration,
    /// The delay the next failure will wait; zero before the first failure.
    next: Duration,
}

impl Backoff {
    pub(super) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            next: Duration::ZERO,
        }
    }

    /// The delay before restarting an instance that failed after running for
    /// `ran`, and advance the back-off.
    pub(super) fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.next = Duration::ZERO;
        }
        let delay = self.next;
        self.next = if delay.is_zero() {
            self.base
        } else {
            delay.saturating_mul(2).min(self.max)
        };
        delay
    }

    /// The delay before retrying something that just failed, never zero (image
    /// pulls wait from the first failure on).
    pub(super) fn next_retry(&mut self) -> Duration {
        if self.next.is_zero() {
            self.next = self.base;
        }
        self.next_delay(Duration::ZERO)
    }
}

/// A duration as Go prints one (`time.Duration.String`), which is how Kubernetes
/// writes back-off delays in messages: `200ms`, `1.6s`, `20s`, `2m40s`, `5m0s`.
pub(super) fn go_duration(d: Duration) -> String {
    skiff_api::duration::format(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let mut b = Backoff::new(10 * S, 300 * S);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay(S).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_long_run_resets_the_back_off() {
        let mut b = Backoff::new(10 * S, 300 * S);
        b.next_delay(S);
        b.next_delay(S);
        assert_eq!(b.next_delay(S), 20 * S);
        assert_eq!(b.next_delay(RESET_AFTER), Duration::ZERO);
        assert_eq!(b.next_delay(S), 10 * S);
    }

    #[test]
    fn retries_wait_from_the_first_failure() {
        let mut b = Backoff::new(10 * S, 300 * S);
        assert_eq!(b.next_retry(), 10 * S);
        assert_eq!(b.next_retry(), 20 * S);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_millis(1600)), "1.6s");
        assert_eq!(go_duration(20 * S), "20s");
        assert_eq!(go_duration(160 * S), "2m40s");
        assert_eq!(go_duration(300 * S), "5m0s");
        assert_eq!(go_duration(3725 * S), "1h2m5s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
