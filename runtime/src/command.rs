//! Command containers: a component exporting `wasi:cli/run`, run once until it
//! returns, with a graceful stop (a grace period, then forced).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::capability;
use crate::engine::{Component, Engine};
use crate::error::{Result, RuntimeError, guest_error};
use crate::host::{Host, PodSpec};
use crate::kind::Kind;
use crate::logs::LogBuffer;

/// How a command ended, when it was not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It returned (or called `exit`) with this code: 0 is success. WASI 0.2's
    /// `run` carries only success (0) or failure (1); `exit` carries a code.
    Code(i32),
    /// It was still running at the end of its grace period and was ended.
    Killed,
}

/// A snapshot of a command container's metrics: the fields of
/// [`HttpMetrics`](crate::HttpMetrics) that apply to a single run, plus how it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandMetrics {
    /// Wall time the instance has run (so far, or in all once it ended), from the
    /// start of instantiation.
    pub instance_time: Duration,
    /// Highest linear memory the instance reached, in bytes (updated as it grows).
    pub memory_high_water: u64,
    /// The exit code once the command returned or called `exit`; `None` while it
    /// runs, and when it was killed or ended in an error (trap, timeout, memory
    /// limit).
    pub exit_code: Option<i32>,
}

/// What a command's task records for [`CommandContainer::metrics`].
#[derive(Debug)]
struct Counters {
    started: Instant,
    /// Set once the instance has ended.
    ran: Mutex<Option<Duration>>,
    exit_code: Mutex<Option<i32>>,
    memory_high_water: Arc<AtomicU64>,
}

/// Asks a running command to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stopper {
    tx: Arc<watch::Sender<Option<Duration>>>,
}

impl Stopper {
    /// Stop the command: it gets `grace` to finish, then its instance is dropped.
    /// WASI 0.2 has no signals, so the grace period only lets a command that is
    /// about to finish do so.
    pub fn stop(&self, grace: Duration) {
        self.tx.send_replace(Some(grace));
    }
}

/// A running command pod. [`CommandContainer::wait`] for its end.
#[derive(Debug)]
pub struct CommandContainer {
    pod: Arc<str>,
    logs: LogBuffer,
    stopper: Stopper,
    counters: Arc<Counters>,
    task: JoinHandle<Result<Exit>>,
}

impl CommandContainer {
    /// Instantiate `component` for pod `spec` and start running it on the current
    /// tokio runtime. Its output goes to `logs`.
    pub fn start(
        engine: &Engine,
        component: &Component,
        spec: PodSpec,
        logs: LogBuffer,
    ) -> Result<Self> {
        let pod: Arc<str> = spec.qualified_name().into();
        if component.kind() != Kind::Command {
            return Err(RuntimeError::WrongKind {
                pod: pod.to_string(),
                actual: component.kind().as_str(),
                wanted: Kind::Command.as_str(),
            });
        }
        capability::configure(&spec)?;
        let pre = engine
            .linker()
            .instantiate_pre(&component.inner)
            .map_err(RuntimeError::Link)?;
        let pre = CommandPre::new(pre).map_err(RuntimeError::Link)?;
        let mut store = Host::store(engine, &spec, &logs)?;
        let counters = Arc::new(Counters {
            started: Instant::now(),
            ran: Mutex::new(None),
            exit_code: Mutex::new(None),
            memory_high_water: Arc::default(),
        });
        store
            .data_mut()
            .state
            .limiter
            .publish_high_water(counters.memory_high_water.clone());
        let timeout_ms = spec
            .limits
            .timeout
            .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));

        let (tx, mut rx) = watch::channel(None);
        let task_pod = pod.clone();
        let task_logs = logs.clone();
        let task_counters = counters.clone();
        let task = tokio::spawn(async move {
            let run = async {
                let cmd = pre.instantiate_async(&mut store).await?;
                cmd.wasi_cli_run().call_run(&mut store).await
            };
            tokio::pin!(run);
            let outcome = tokio::select! {
                r = &mut run => Some(r),
                grace = stop_requested(&mut rx) => {
                    tokio::time::timeout(grace, &mut run).await.ok()
                }
            };
            task_logs.flush();
            let result = match outcome {
                None => Ok(Exit::Killed),
                Some(Ok(Ok(()))) => Ok(Exit::Code(0)),
                Some(Ok(Err(()))) => Ok(Exit::Code(1)),
                Some(Err(e)) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => Ok(Exit::Code(exit.0)),
                    None => Err(guest_error(&task_pod, timeout_ms, e)),
                },
            };
            task_counters.finish(&result);
            result
        });
        Ok(Self {
            pod,
            logs,
            stopper: Stopper { tx: Arc::new(tx) },
            counters,
            task,
        })
    }

    /// A snapshot of the command's metrics.
    pub fn metrics(&self) -> CommandMetrics {
        let c = &self.counters;
        CommandMetrics {
            instance_time: lock(&c.ran).unwrap_or_else(|| c.started.elapsed()),
            memory_high_water: c.memory_high_water.load(Ordering::Relaxed),
            exit_code: *lock(&c.exit_code),
        }
    }

    /// The pod's log.
    pub fn logs(&self) -> &LogBuffer {
        &self.logs
    }

    /// A handle to stop this command from elsewhere.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Whether the command has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait for the command to end.
    pub async fn wait(self) -> Result<Exit> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(RuntimeError::Trap {
                pod: self.pod.to_string(),
                message: format!("instance task failed: {e}"),
            }),
        }
    }

    /// Stop the command (see [`Stopper::stop`]) and wait for it to end.
    pub async fn stop(self, grace: Duration) -> Result<Exit> {
        self.stopper.stop(grace);
        self.wait().await
    }
}

impl Counters {
    fn finish(&self, result: &Result<Exit>) {
        *lock(&self.ran) = Some(self.started.elapsed());
        if let Ok(Exit::Code(code)) = result {
            *lock(&self.exit_code) = Some(*code);
        }
    }
}

/// The counters hold plain values, consistent even after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resolves with the grace period once a stop is asked for; never if all
/// [`Stopper`]s are dropped without asking.
async fn stop_requested(rx: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        if let Some(grace) = *rx.borrow_and_update() {
            return grace;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
