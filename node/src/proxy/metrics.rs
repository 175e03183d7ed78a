//! The proxy's metrics, per Service and endpoint: requests by HTTP code,
//! errors by reason, and a latency histogram. Registered in the node's
//! registry, served at the node's `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::table::{EndpointRoute, ServiceKey};

/// Which Service and endpoint a figure is about; `endpoint` and `pod` are
/// empty when no endpoint was picked.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EndpointLabels {
    namespace: String,
    service: String,
    endpoint: String,
    pod: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    #[prometheus(flatten)]
    target: EndpointLabels,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    #[prometheus(flatten)]
    target: EndpointLabels,
    reason: &'static str,
}

/// Why the proxy could not get an answer from an endpoint.
#[derive(Debug, Clone, Copy)]
pub(super) enum ErrorReason {
    /// The endpoint never got the request (it was tried elsewhere).
    NotSent,
    /// Its node could not be reached.
    Unreachable,
    /// It got the request and failed (answered 502).
    Failed,
    /// No endpoint could take it (answered 503).
    NoEndpoint,
}

impl ErrorReason {
    fn label(self) -> &'static str {
        match self {
            ErrorReason::NotSent => "not_sent",
            ErrorReason::Unreachable => "unreachable",
            ErrorReason::Failed => "failed",
            ErrorReason::NoEndpoint => "no_endpoint",
        }
    }
}

/// The proxy's metric families.
#[derive(Debug)]
pub(crate) struct ProxyMetrics {
    requests: Family<CodeLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
}

impl ProxyMetrics {
    /// The families, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> ProxyMetrics {
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "skiff_proxy_requests",
            "Requests a Service's endpoint answered, by HTTP code",
            requests.clone(),
        );
        let errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "skiff_proxy_errors",
            "Requests an endpoint (or the Service, when no endpoint could) did not answer, by reason",
            errors.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 3 minutes.
            Histogram::new(exponential_buckets(0.00005, 2.0, 22))
        });
        registry.register(
            "skiff_proxy_request_duration_seconds",
            "Time from handing a request to an endpoint to its response head",
            latency.clone(),
        );
        ProxyMetrics {
            requests,
            errors,
            latency,
        }
    }

    /// An endpoint answered with `code` after `took`.
    pub(super) fn answered(&self, target: EndpointLabels, code: u16, took: Duration) {
        self.latency
            .get_or_create(&target)
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&CodeLabels { target, code })
            .inc();
    }

    /// An endpoint (or the Service) did not answer.
    pub(super) fn error(&self, target: EndpointLabels, reason: ErrorReason) {
        self.errors
            .get_or_create(&ReasonLabels {
                target,
                reason: reason.label(),
            })
            .inc();
    }
}

/// The labels of `endpoint` of `service`; `None` for the Service alone.
pub(super) fn labels(service: &ServiceKey, endpoint: Option<&EndpointRoute>) -> EndpointLabels {
    EndpointLabels {
        namespace: service.namespace.clone(),
        service: service.name.clone(),
        endpoint: endpoint.map(|e| e.ip.to_string()).unwrap_or_default(),
        pod: endpoint
            .and_then(|e| e.pod.as_ref())
            .map(|p| p.name.clone())
            .unwrap_or_default(),
    }
}
