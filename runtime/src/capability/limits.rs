//! The limits capability: per-instance limits, a memory cap (a `ResourceLimiter`)
//! and a time and CPU budget (epoch deadlines), how long an HTTP instance may
//! live when the pod reuses instances ([`InstanceReuse`]), and the markers that
//! let a trap be reported as "memory limit" or "timeout". It links nothing;
//! what it prepares acts on the instance's `Store` ([`install`], and
//! [`arm_deadline`] again before each request a reused instance serves).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

use super::{Capability, Instance};
use crate::error::Result;
use crate::host::{Host, PodSpec};

/// Limits applied to every instance of a pod.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The most linear memory (bytes) one instance may grow to, summed over its
    /// memories. `None`: only the engine's per-memory maximum applies.
    pub memory_bytes: Option<u64>,
    /// How long one HTTP request (or one command run, if set) may run before the
    /// instance is interrupted. `None` for commands means no limit.
    pub timeout: Option<Duration>,
    /// Most HTTP requests in flight at once for this pod.
    pub max_concurrency: usize,
    /// CPU budget of each instance in millicores, from `resources.limits.cpu`
    /// (`100m` is 100, `"1"` is 1000). `None`, or 1000 and more, means no
    /// throttling (an instance runs on one thread, so it cannot use more than a core).
    ///
    /// Semantics: on every epoch tick a running instance yields to the executor
    /// (always, budget or not, so a spinning guest never holds a worker thread).
    /// With a budget of `m` millicores it then also pauses, off the CPU, for
    /// `ran * (1000 - m) / m`, where `ran` is the wall time it ran since it last
    /// resumed (capped at two ticks, so time spent blocked in the host is not
    /// charged as CPU): a `100m` instance runs about one tick in ten. The budget is
    /// per instance, not per pod: `max_concurrency` instances of a pod may each use
    /// it. The pauses count toward `timeout`, which still ends the instance.
    pub cpu_millis: Option<u32>,
    /// Whether an HTTP pod's finished instances serve later requests, and for
    /// how long. `None` (the default): a fresh instance per request, so
    /// nothing one request leaves in memory reaches the next.
    pub reuse: Option<InstanceReuse>,
}

/// How long a reused HTTP instance lives. An instance goes back to its pod's
/// pool of idle instances only if its request ended cleanly: `handle`
/// returned, the guest set a response, nothing trapped, timed out, hit the
/// memory limit or was stopped, and the guest holds no more host resources
/// (`wasi:http` requests, bodies, streams...) than after its first request.
/// Every request still gets its own timeout and CPU budget; memory is the
/// instance's, so a guest that grows to its limit traps and is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Most requests one instance serves; then it is dropped, so that what a
    /// guest leaks per request has a bound.
    pub max_requests: u32,
    /// Most time an instance lives from its instantiation; it finishes the
    /// request it is serving, then is dropped.
    pub max_age: Duration,
    /// How long an instance waits in the pool before it is dropped (it holds
    /// its memory and a slot of the engine's instance pool meanwhile).
    pub max_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: Some(128 << 20),
            timeout: Some(Duration::from_secs(30)),
            max_concurrency: 64,
            cpu_millis: None,
            reuse: None,
        }
    }
}

impl Default for InstanceReuse {
    fn default() -> Self {
        Self {
            max_requests: 10_000,
            max_age: Duration::from_secs(600),
            max_idle: Duration::from_secs(30),
        }
    }
}

pub(crate) struct LimitsCapability;

impl Capability for LimitsCapability {
    fn prepare(&self, spec: &PodSpec, instance: &mut Instance<'_>) -> Result<()> {
        instance.state.limiter = MemoryLimiter::new(spec.limits.memory_bytes);
        Ok(())
    }
}

/// Put `limits` on `store`, whose host the capability prepared: its memory
/// cap, and its time and CPU budget, ticking every `tick`. A `Store` has one
/// limiter and one epoch callback, so this is done once the store exists.
pub(crate) fn install(store: &mut Store<Host>, limits: &Limits, tick: Duration) {
    store.limiter(|h| &mut h.state.limiter);
    arm_deadline(store, limits, tick);
}

/// Start `limits`' time and CPU budget over, from now: a reused instance gets
/// a whole timeout for each request, not what its earlier ones left.
pub(crate) fn arm_deadline<T: 'static>(store: &mut Store<T>, limits: &Limits, tick: Duration) {
    install_deadline(store, limits.timeout, limits.cpu_millis, tick);
}

/// Raised inside the store when a guest grows memory past its limit.
#[derive(Debug)]
pub(crate) struct MemoryLimitExceeded {
    pub limit: u64,
    pub requested: u64,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory limit of {} bytes exceeded (asked for {})",
            self.limit, self.requested
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Raised inside the store when a guest runs past its deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timeout: guest ran past its deadline")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Tracks one instance's memory against its limit (none by default).
#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    limit: Option<u64>,
    /// Highest total linear memory seen, in bytes.
    pub high_water: u64,
    /// Current size of each memory, in bytes, by order of creation. Components
    /// usually have one or two.
    current: u64,
    /// Where the high-water mark is also published as it rises, for metrics read
    /// while the instance runs.
    published: Option<Arc<AtomicU64>>,
}

impl MemoryLimiter {
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            high_water: 0,
            current: 0,
            published: None,
        }
    }

    /// Also raise `to` to the high-water mark whenever memory grows.
    pub fn publish_high_water(&mut self, to: Arc<AtomicU64>) {
        to.fetch_max(self.high_water, Ordering::Relaxed);
        self.published = Some(to);
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = (desired - current.min(desired)) as u64;
        let total = self.current + grow;
        if let Some(limit) = self.limit
            && total > limit
        {
            // An error (rather than `Ok(false)`) traps the instance at once, with a
            // cause the runtime can name, instead of letting the guest see -1 and
            // abort with a less clear message.
            return Err(MemoryLimitExceeded {
                limit,
                requested: total,
            }
            .into());
        }
        self.current = total;
        self.high_water = self.high_water.max(total);
        if let Some(p) = &self.published {
            p.fetch_max(total, Ordering::Relaxed);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The pause owed after running for `ran` under a budget of `cpu_millis`
/// (see [`Limits::cpu_millis`]); zero without a budget below one core.
pub(crate) fn cpu_pause(ran: Duration, cpu_millis: Option<u32>) -> Duration {
    match cpu_millis {
        Some(m) if m < 1000 => {
            let m = m.max(1);
            ran * (1000 - m) / m
        }
        _ => Duration::ZERO,
    }
}

/// Make the store yield to the async executor on every epoch tick (so a spinning
/// guest cannot hold a worker thread), pause it to keep it within `cpu_millis`
/// (see [`Limits::cpu_millis`]), and trap once `timeout` has passed.
fn install_deadline<T: 'static>(
    store: &mut Store<T>,
    timeout: Option<Duration>,
    cpu_millis: Option<u32>,
    tick: Duration,
) {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut resumed = Instant::now();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        if let Some(d) = deadline
            && now >= d
        {
            return Err(DeadlineExceeded.into());
        }
        let ran = now.saturating_duration_since(resumed).min(tick * 2);
        let mut pause = cpu_pause(ran, cpu_millis);
        if let Some(d) = deadline {
            pause = pause.min(d - now);
        }
        resumed = now + pause;
        if pause.is_zero() {
            Ok(UpdateDeadline::Yield(1))
        } else {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::time::sleep(pause)),
            ))
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_pauses() {
        let tick = Duration::from_millis(10);
        assert_eq!(cpu_pause(tick, Some(100)), Duration::from_millis(90));
        assert_eq!(cpu_pause(tick, Some(500)), tick);
        assert_eq!(cpu_pause(tick, Some(1000)), Duration::ZERO);
        assert_eq!(cpu_pause(tick, None), Duration::ZERO);
    }
}
