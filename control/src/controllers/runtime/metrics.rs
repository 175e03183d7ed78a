//! Every controller's metrics, under the names controller-runtime and
//! client-go's work queue give them, so that existing dashboards read them:
//! `controller_runtime_reconcile_total{controller,result}`,
//! `controller_runtime_reconcile_errors_total{controller}`,
//! `controller_runtime_reconcile_panics_total{controller}`,
//! `controller_runtime_reconcile_time_seconds{controller}` and
//! `workqueue_depth{name}`. They are process-wide, as client-go's are.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub controller: String,
    /// `success`, `requeue_after`, `error` or `panic`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub name: String,
}

/// The families, shared by every controller of the process.
pub struct ControllerMetrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    panics: Family<ControllerLabels, Counter>,
    latency: Family<ControllerLabels, Histogram>,
    depth: Family<QueueLabels, Gauge>,
}

pub static METRICS: LazyLock<ControllerMetrics> = LazyLock::new(|| ControllerMetrics {
    reconciles: Family::default(),
    errors: Family::default(),
    panics: Family::default(),
    latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18))),
    depth: Family::default(),
});

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    RequeueAfter,
    Error,
    Panic,
}

impl ControllerMetrics {
    /// Records one reconcile of `controller`.
    pub fn reconciled(&self, controller: &str, outcome: Outcome, took: Duration) {
        let result = match outcome {
            Outcome::Success => "success",
            Outcome::RequeueAfter => "requeue_after",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
        };
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.to_string(),
                result,
            })
            .inc();
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        match outcome {
            Outcome::Error => {
                self.errors.get_or_create(&labels).inc();
            }
            Outcome::Panic => {
                self.panics.get_or_create(&labels).inc();
            }
            Outcome::Success | Outcome::RequeueAfter => {}
        }
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Sets how many keys wait in `queue`.
    pub fn set_depth(&self, queue: &str, depth: usize) {
        self.depth
            .get_or_create(&QueueLabels {
                name: queue.to_string(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Reconciles of `controller` that ended with `result`, so far.
    pub fn reconciles(&self, controller: &str, result: &'static str) -> u64 {
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.to_string(),
                result,
            })
            .get()
    }
}

/// Registers the families in the control plane's registry.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register(
        "controller_runtime_reconcile",
        "Reconciles per controller and result",
        m.reconciles.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_errors",
        "Reconciles that returned an error, per controller (each is retried with backoff)",
        m.errors.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_panics",
        "Reconciles that panicked, per controller (each is retried with backoff)",
        m.panics.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_time_seconds",
        "Time per reconcile, per controller",
        m.latency.clone(),
    );
    registry.register(
        "workqueue_depth",
        "Keys waiting in a controller's work queue",
        m.depth.clone(),
    );
}
