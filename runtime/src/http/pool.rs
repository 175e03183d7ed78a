//! The idle instances of an HTTP pod that reuses them ([`InstanceReuse`]): a
//! stack, where the instance used last serves next, so a burst's extra instances
//! sink to the bottom and age out (`max_idle`), and the pool shrinks back to
//! the concurrency the pod really sees. It never holds more than the pod's
//! concurrency limit, and a closed pool (the pod is stopping) holds nothing.
//!
//! Whether an instance may go back is decided by [`Life::after_request`], a
//! pure function of what it has served and holds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

use crate::capability::limits::InstanceReuse;
use crate::host::Host;

/// One instance between two requests.
pub(super) struct Idle {
    pub(super) store: Store<Host>,
    pub(super) proxy: Proxy,
    pub(super) life: Life,
}

/// What the pool knows of an instance: its age, what it served, what it holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Life {
    born: Instant,
    /// Requests it has served to the end.
    served: u32,
    /// Host resources it held after its first request (a guest may keep some
    /// for good, e.g. wasi-libc's preopened directories); it may never hold
    /// more after a later one.
    baseline: Option<usize>,
    /// When it last went back to the pool.
    idle_since: Instant,
}

/// Why an instance is not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retire {
    /// It served `max_requests`.
    Served,
    /// It lived `max_age`.
    Old,
    /// It holds more host resources than after its first request: something
    /// of a request (a body, a stream, fields) outlived it.
    Holds { baseline: usize, now: usize },
}

/// The pool of one HTTP container.
pub(super) struct InstancePool {
    reuse: InstanceReuse,
    capacity: usize,
    state: Mutex<State>,
    reaper_started: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Oldest idle at the front, the one used last at the back.
    idle: VecDeque<Idle>,
    closed: bool,
}

impl Life {
    /// A new instance, born `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            born: now,
            served: 0,
            baseline: None,
            idle_since: now,
        }
    }

    /// Counts a request the instance served to the end, holding `held` host
    /// resources afterwards, and says whether it may serve another.
    pub(super) fn after_request(
        &mut self,
        held: usize,
        now: Instant,
        reuse: &InstanceReuse,
    ) -> Result<(), Retire> {
        self.served = self.served.saturating_add(1);
        let baseline = *self.baseline.get_or_insert(held);
        if held > baseline {
            return Err(Retire::Holds {
                baseline,
                now: held,
            });
        }
        if self.served >= reuse.max_requests {
            return Err(Retire::Served);
        }
        if now.saturating_duration_since(self.born) >= reuse.max_age {
            return Err(Retire::Old);
        }
        self.idle_since = now;
        Ok(())
    }

    /// Whether, idle in the pool, it is too old or has waited too long by `now`.
    fn expired(&self, now: Instant, reuse: &InstanceReuse) -> bool {
        now.saturating_duration_since(self.born) >= reuse.max_age
            || now.saturating_duration_since(self.idle_since) >= reuse.max_idle
    }
}

impl InstancePool {
    /// An empty pool holding at most `capacity` idle instances.
    pub(super) fn new(reuse: InstanceReuse, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            reuse,
            capacity: capacity.max(1),
            state: Mutex::default(),
            reaper_started: AtomicBool::new(false),
        })
    }

    /// The idle instance used last, if any is still fresh enough.
    pub(super) fn take(&self) -> Option<Idle> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let found = {
            let mut state = self.lock();
            loop {
                match state.idle.pop_back() {
                    Some(idle) if idle.life.expired(now, &self.reuse) => expired.push(idle),
                    other => break other,
                }
            }
        };
        // Stores are dropped outside the lock: it frees their memory.
        drop(expired);
        found
    }

    /// Puts back an instance whose request ended cleanly, unless it has
    /// served its time, holds more than it should, or the pool is closed.
    pub(super) fn give_back(self: &Arc<Self>, mut idle: Idle, pod: &str) {
        let held = idle.store.data_mut().resources_held();
        if let Err(why) = idle.life.after_request(held, Instant::now(), &self.reuse) {
            tracing::debug!(pod, ?why, "an instance is not reused");
            return;
        }
        let dropped = {
            let mut state = self.lock();
            if state.closed {
                Some(idle)
            } else {
                state.idle.push_back(idle);
                if state.idle.len() > self.capacity {
                    state.idle.pop_front()
                } else {
                    None
                }
            }
        };
        drop(dropped);
        self.start_reaper();
    }

    /// Drops every idle instance and takes none back from now on.
    pub(super) fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    /// How many instances wait in the pool.
    pub(super) fn len(&self) -> usize {
        self.lock().idle.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the queue consistent (every
        // operation on it is a single push or pop), so a poisoned lock is used.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the instances that waited `max_idle` (the oldest are at the front).
    fn reap(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut state = self.lock();
            while state
                .idle
                .front()
                .is_some_and(|i| i.life.expired(now, &self.reuse))
            {
                expired.extend(state.idle.pop_front());
            }
        }
        drop(expired);
    }

    /// Once per pool, a task that drops the instances that waited too long,
    /// so that a pod whose traffic stopped gives their memory back. It ends
    /// with the pool.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        let every = (self.reuse.max_idle / 2).max(Duration::from_millis(100));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else { break };
                if pool.lock().closed {
                    break;
                }
                pool.reap();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reuse() -> InstanceReuse {
        InstanceReuse {
            max_requests: 3,
            max_age: Duration::from_secs(60),
            max_idle: Duration::from_secs(10),
        }
    }

    #[test]
    fn an_instance_serves_at_most_max_requests() {
        let t0 = Instant::now();
        let mut life = Life::new(t0);
        assert_eq!(life.after_request(2, t0, &reuse()), Ok(()));
        assert_eq!(life.after_request(2, t0, &reuse()), Ok(()));
        assert_eq!(life.after_request(2, t0, &reuse()), Err(Retire::Served));
    }

    #[test]
    fn an_instance_that_holds_more_than_after_its_first_request_is_retired() {
        let t0 = Instant::now();
        let mut life = Life::new(t0);
        // What it keeps after the first request is its baseline ...
        assert_eq!(life.after_request(3, t0, &reuse()), Ok(()));
        // ... it may hold less later, never more.
        assert_eq!(life.after_request(1, t0, &reuse()), Ok(()));
        let mut life = Life::new(t0);
        assert_eq!(life.after_request(3, t0, &reuse()), Ok(()));
        assert_eq!(
            life.after_request(4, t0, &reuse()),
            Err(Retire::Holds {
                baseline: 3,
                now: 4
            })
        );
    }

    #[test]
    fn age_and_idleness_end_an_instance() {
        let t0 = Instant::now();
        let r = reuse();
        let mut life = Life::new(t0);
        assert_eq!(
            life.after_request(0, t0 + r.max_age, &r),
            Err(Retire::Old),
            "past max_age it does not go back"
        );
        let mut life = Life::new(t0);
        let back = t0 + Duration::from_secs(5);
        assert_eq!(life.after_request(0, back, &r), Ok(()));
        assert!(!life.expired(back + r.max_idle / 2, &r));
        assert!(life.expired(back + r.max_idle, &r), "idle too long");
        assert!(life.expired(t0 + r.max_age, &r), "too old while idle");
    }
}
