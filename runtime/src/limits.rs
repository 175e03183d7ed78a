//! Per-instance limits: a memory cap (a `ResourceLimiter`) and a time budget (epoch
//! deadlines), and the markers that let a trap be reported as "memory limit" or "timeout".

use std::fmt;
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: Some(128 << 20),
            timeout: Some(Duration::from_secs(30)),
            max_concurrency: 64,
        }
    }
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

/// Tracks one instance's memory against its limit.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: Option<u64>,
    /// Highest total linear memory seen, in bytes.
    pub high_water: u64,
    /// Current size of each memory, in bytes, by order of creation. Components
    /// usually have one or two.
    current: u64,
}

impl MemoryLimiter {
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            high_water: 0,
            current: 0,
        }
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

/// Make the store yield to the async executor on every epoch tick (so a spinning
/// guest cannot hold a worker thread), and trap once `timeout` has passed.
pub(crate) fn install_deadline<T: 'static>(store: &mut Store<T>, timeout: Option<Duration>) {
    let deadline = timeout.map(|t| Instant::now() + t);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| match deadline {
        Some(d) if Instant::now() >= d => Err(DeadlineExceeded.into()),
        _ => Ok(UpdateDeadline::Yield(1)),
    });
}
