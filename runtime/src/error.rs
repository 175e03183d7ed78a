//! The runtime's error type: what a node supervisor reads when a pod fails.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a pod's component.
///
/// Errors that come from a running guest name the pod (`namespace/name`) so that a
/// supervisor can log or report them without more context.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly component: the bytes do not start with the wasm magic number")]
    NotWasm,
    /// The bytes are a core module, not a component.
    #[error(
        "not a WebAssembly component: this is a core module; build for wasm32-wasip2 (or run `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not export an interface Skiff can run.
    #[error(
        "component exports neither wasi:http/incoming-handler@0.2 nor wasi:cli/run@0.2; it exports: [{exports}]"
    )]
    UnsupportedKind {
        /// Comma-separated export names.
        exports: String,
    },
    /// Compiling or validating the component failed.
    #[error("invalid component: {0:#}")]
    Compile(wasmtime::Error),
    /// The compiling child process refused the component or failed; its
    /// message (the same words as [`RuntimeError::Compile`]'s in process).
    #[error("{0}")]
    CompileWorker(String),
    /// The component imports something the host does not provide.
    #[error("cannot link component: {0:#}")]
    Link(wasmtime::Error),
    /// The engine could not be set up.
    #[error("engine configuration: {0:#}")]
    Engine(wasmtime::Error),
    /// Reading or writing the compiled-component cache failed.
    #[error("component cache at {path}: {source}")]
    Cache {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A preopened directory could not be opened.
    #[error("pod {pod}: cannot mount {host} at {guest}: {reason}")]
    Mount {
        /// `namespace/name` of the pod.
        pod: String,
        /// Host directory.
        host: PathBuf,
        /// Path seen by the guest.
        guest: String,
        /// What went wrong.
        reason: String,
    },
    /// The container was used as the wrong kind (e.g. `handle` on a command).
    #[error("pod {pod}: component is a {actual} container, not a {wanted} container")]
    WrongKind {
        /// `namespace/name` of the pod.
        pod: String,
        /// The kind the component is.
        actual: &'static str,
        /// The kind the caller wanted.
        wanted: &'static str,
    },
    /// The guest ran past its time budget and was interrupted.
    #[error("pod {pod}: timeout: guest ran longer than {limit_ms} ms and was interrupted")]
    Timeout {
        /// `namespace/name` of the pod.
        pod: String,
        /// The budget, in milliseconds.
        limit_ms: u64,
    },
    /// The guest tried to grow its memory past its limit.
    #[error(
        "pod {pod}: memory limit of {limit} bytes exceeded (guest asked for {requested} bytes)"
    )]
    MemoryLimit {
        /// `namespace/name` of the pod.
        pod: String,
        /// The limit in bytes.
        limit: u64,
        /// The size the guest asked to grow to.
        requested: u64,
    },
    /// The guest trapped (panic, `unreachable`, stack overflow, ...).
    #[error("pod {pod}: guest trapped: {message}")]
    Trap {
        /// `namespace/name` of the pod.
        pod: String,
        /// The trap and its backtrace, as wasmtime reports it.
        message: String,
    },
    /// Too many requests are in flight for this pod.
    #[error("pod {pod}: concurrency limit of {limit} requests reached")]
    Overloaded {
        /// `namespace/name` of the pod.
        pod: String,
        /// The limit.
        limit: usize,
    },
    /// The guest returned without producing a response, or the response was invalid.
    #[error("pod {pod}: bad response from guest: {message}")]
    BadResponse {
        /// `namespace/name` of the pod.
        pod: String,
        /// What went wrong.
        message: String,
    },
    /// The container was stopped before it finished.
    #[error("pod {pod}: stopped")]
    Stopped {
        /// `namespace/name` of the pod.
        pod: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Turn the error that ended a guest instance into a [`RuntimeError`] naming the pod
/// and saying what happened (memory limit, timeout, or trap).
pub(crate) fn guest_error(pod: &str, timeout_ms: u64, e: wasmtime::Error) -> RuntimeError {
    use crate::capability::limits::{DeadlineExceeded, MemoryLimitExceeded};
    for cause in e.chain() {
        if let Some(m) = cause.downcast_ref::<MemoryLimitExceeded>() {
            return RuntimeError::MemoryLimit {
                pod: pod.to_string(),
                limit: m.limit,
                requested: m.requested,
            };
        }
        if cause.downcast_ref::<DeadlineExceeded>().is_some()
            || matches!(
                cause.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            )
        {
            return RuntimeError::Timeout {
                pod: pod.to_string(),
                limit_ms: timeout_ms,
            };
        }
    }
    tracing::debug!(pod, error = ?e, "guest instance ended with an error");
    RuntimeError::Trap {
        pod: pod.to_string(),
        message: e.root_cause().to_string(),
    }
}
