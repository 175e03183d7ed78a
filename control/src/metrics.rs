//! Prometheus metrics of the control plane, served as text at `/metrics`.
//!
//! Names follow the Kubernetes API server's where one exists
//! (`apiserver_request_total`, `apiserver_request_duration_seconds`), so
//! existing dashboards read them; the store's are Skiff's own.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
    pub code: String,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
}

/// Every metric of the control plane.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<VerbLabels, Histogram>,
    /// Watches open now.
    pub watches: Gauge,
    /// Store commits (each one disk sync).
    pub store_commits: Counter,
    /// Write requests per commit: how well group commit shares the sync.
    pub store_batch_size: Histogram,
    /// Time to apply and sync one commit.
    pub store_commit_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "apiserver_request",
            "API requests by verb, resource and HTTP code",
            requests.clone(),
        );
        let latency = Family::<VerbLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "apiserver_request_duration_seconds",
            "API request latency by verb",
            latency.clone(),
        );
        let watches = Gauge::default();
        registry.register("apiserver_watches", "Watches being served", watches.clone());
        let store_commits = Counter::default();
        registry.register(
            "skiff_store_commits",
            "Durable store commits",
            store_commits.clone(),
        );
        let store_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "skiff_store_batch_size",
            "Write requests sharing one commit",
            store_batch_size.clone(),
        );
        let store_commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "skiff_store_commit_duration_seconds",
            "Time to apply and sync one store commit",
            store_commit_seconds.clone(),
        );
        crate::controllers::runtime::metrics::register(&mut registry);
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            watches,
            store_commits,
            store_batch_size,
            store_commit_seconds,
        })
    }

    /// Records one finished API request.
    pub fn observe_request(&self, verb: &str, resource: &str, code: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.into(),
                resource: resource.into(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&VerbLabels { verb: verb.into() })
            .observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
