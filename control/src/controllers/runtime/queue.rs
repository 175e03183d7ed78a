//! The work queue under every controller, as client-go's: keys (not events)
//! are queued, a key queued twice is reconciled once, one reconcile is in flight
//! per key (a key queued while in flight runs again after), a failed reconcile is
//! retried with per-key exponential backoff, and a reconcile may ask to be run
//! again after a while (`Action::RequeueAfter`). A reconcile that panics counts
//! as a failure: its worker carries on and the key is retried with backoff, so
//! one bad object never stops a controller (client-go's `HandleCrash` recovers
//! the same way).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;

use super::metrics::{METRICS, Outcome};

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    Done,
    /// Run again after this long (a deadline, a timer) unless queued earlier.
    RequeueAfter(Duration),
}

impl Action {
    /// Nothing until something changes (kube-runtime's name).
    pub fn await_change() -> Action {
        Action::Done
    }

    /// Run again after `delay`, unless a change queues it earlier.
    pub fn requeue_after(delay: Duration) -> Action {
        Action::RequeueAfter(delay)
    }
}

/// The first retry delay after an error; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A deduplicating queue of keys with one reconcile in flight per key.
pub struct WorkQueue<K> {
    /// Its name in `workqueue_depth`, if it reports one.
    name: Option<&'static str>,
    state: Mutex<State<K>>,
    ready: Notify,
}

struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    in_flight: HashSet<K>,
    /// Queued again while in flight: goes back on the queue when done.
    again: HashSet<K>,
    failures: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    pub fn new() -> Arc<Self> {
        Self::with_name(None)
    }

    /// A queue whose depth is served as `workqueue_depth{name}`.
    pub fn named(name: &'static str) -> Arc<Self> {
        Self::with_name(Some(name))
    }

    fn with_name(name: Option<&'static str>) -> Arc<Self> {
        Arc::new(WorkQueue {
            name,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                in_flight: HashSet::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    /// Queues `key` (a no-op if it is already queued).
    pub fn add(&self, key: K) {
        let mut st = self.lock();
        if st.in_flight.contains(&key) {
            st.again.insert(key);
            return;
        }
        if st.queued.insert(key.clone()) {
            st.queue.push_back(key);
            let depth = st.queue.len();
            drop(st);
            self.report_depth(depth);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// How many keys wait (not counting those in flight).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn take(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut st = self.lock();
                if let Some(key) = st.queue.pop_front() {
                    st.queued.remove(&key);
                    st.in_flight.insert(key.clone());
                    let depth = st.queue.len();
                    drop(st);
                    self.report_depth(depth);
                    return key;
                }
            }
            notified.await;
        }
    }

    fn done(self: &Arc<Self>, key: K, outcome: Result<Action, ()>) {
        let delay = {
            let mut st = self.lock();
            st.in_flight.remove(&key);
            let again = st.again.remove(&key);
            let delay = match outcome {
                Ok(action) => {
                    st.failures.remove(&key);
                    match action {
                        Action::Done => None,
                        Action::RequeueAfter(d) => Some(d),
                    }
                }
                Err(()) => {
                    let n = st.failures.entry(key.clone()).or_insert(0);
                    *n = n.saturating_add(1);
                    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
                    Some((FIRST_BACKOFF * factor).min(MAX_BACKOFF))
                }
            };
            if again {
                drop(st);
                self.add(key.clone());
            }
            delay
        };
        if let Some(d) = delay {
            self.add_after(key, d);
        }
    }

    fn report_depth(&self, depth: usize) {
        if let Some(name) = self.name {
            METRICS.set_depth(name, depth);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `workers` reconcile loops over `queue` until the process ends. An error
/// is logged (with the controller's name) and retried with backoff.
pub async fn run_workers<K, F, Fut, E>(
    name: &'static str,
    queue: Arc<WorkQueue<K>>,
    workers: usize,
    reconcile: F,
) where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send,
    E: std::fmt::Display,
{
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let key = queue.take().await;
                let started = std::time::Instant::now();
                // The key is in flight until `done`: a panic that ended this
                // task would leave it there and never reconcile it again.
                let run = AssertUnwindSafe(reconcile(key.clone())).catch_unwind();
                let result = run.await;
                let measured = match &result {
                    Ok(Ok(Action::Done)) => Outcome::Success,
                    Ok(Ok(Action::RequeueAfter(_))) => Outcome::RequeueAfter,
                    Ok(Err(_)) => Outcome::Error,
                    Err(_) => Outcome::Panic,
                };
                METRICS.reconciled(name, measured, started.elapsed());
                let outcome = match result {
                    Ok(Ok(action)) => Ok(action),
                    Ok(Err(e)) => {
                        tracing::debug!(controller = name, key = ?key, error = %e, "reconcile failed; will retry");
                        Err(())
                    }
                    Err(panic) => {
                        tracing::error!(
                            controller = name,
                            key = ?key,
                            panic = panic_message(panic.as_ref()),
                            "reconcile panicked; will retry"
                        );
                        Err(())
                    }
                };
                queue.done(key, outcome);
            }
        }));
    }
    futures::future::join_all(tasks).await;
}

/// The message a panic was raised with, when it is text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_key_queued_twice_runs_once_and_one_queued_in_flight_runs_again() {
        let queue: Arc<WorkQueue<String>> = WorkQueue::new();
        queue.add("a".into());
        queue.add("a".into());
        assert_eq!(queue.len(), 1);
        let key = queue.take().await;
        queue.add("a".into()); // While in flight.
        assert_eq!(queue.len(), 0);
        queue.done(key, Ok(Action::Done));
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_success_forgets() {
        let queue: Arc<WorkQueue<&'static str>> = WorkQueue::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        queue.add("k");
        tokio::spawn(run_workers("test", queue.clone(), 1, move |_k| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err("not yet")
                } else {
                    Ok(Action::Done)
                }
            }
        }));
        // 5 + 10 + 20 ms of backoff: the fourth run succeeds within 40 ms.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4, "a success is not retried");
    }

    /// A reconcile that panics is retried with backoff on the same worker, and
    /// the other keys keep being reconciled meanwhile.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_reconcile_is_retried_and_the_worker_goes_on() {
        let queue: Arc<WorkQueue<&'static str>> = WorkQueue::new();
        let bad_runs = Arc::new(AtomicUsize::new(0));
        let good_runs = Arc::new(AtomicUsize::new(0));
        let (bad, good) = (bad_runs.clone(), good_runs.clone());
        let panics_before = METRICS.reconciles("panicky", "panic");
        tokio::spawn(run_workers("panicky", queue.clone(), 1, move |k| {
            let (bad, good) = (bad.clone(), good.clone());
            async move {
                if k == "bad" {
                    if bad.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("reconcile of {k} panicked");
                    }
                } else {
                    good.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, String>(Action::Done)
            }
        }));
        queue.add("bad");
        queue.add("good");
        // Two panics (5 + 10 ms of backoff), then the third run succeeds.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(bad_runs.load(Ordering::SeqCst), 3);
        assert_eq!(good_runs.load(Ordering::SeqCst), 1);
        assert_eq!(METRICS.reconciles("panicky", "panic"), panics_before + 2);
        // The single worker is still there for new keys.
        queue.add("good");
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(good_runs.load(Ordering::SeqCst), 2);
        assert!(queue.is_empty());
    }
}
