//! Probes: `httpGet` startup, liveness and readiness probes, sent in-process to
//! the container's HTTP handler, with Kubernetes' timing and thresholds. Startup
//! gates the other two; readiness sets `ready`; a failed liveness (or startup)
//! probe asks for the container to be killed.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe as ProbeSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_runtime::RuntimeError;
use tokio::time::MissedTickBehavior;

use super::events::EventType;
use super::pod::{PodCtx, Which};
use super::serving::ServingHttp;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

/// Why a probe failed, in the kubelet's words.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    /// The probe's path or headers do not make a request.
    #[error("Get \"{url}\": {source}")]
    Request { url: String, source: http::Error },
    /// No answer within the probe's timeout.
    #[error(
        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    )]
    Timeout { url: String },
    /// The handler failed.
    #[error("Get \"{url}\": {source}")]
    Handler { url: String, source: RuntimeError },
    /// An answer outside 200..400.
    #[error("HTTP probe failed with statuscode: {0}")]
    Status(u16),
}

/// One probe, with Kubernetes' defaults filled in.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    kind: ProbeKind,
    path: String,
    /// `host:port` for the URL in messages and the `Host` header.
    authority: String,
    headers: Vec<(String, String)>,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

/// A container's probes (only `httpGet` ones; API validation refuses the others).
#[derive(Debug, Clone, Default)]
pub(super) struct Probes {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

/// Consecutive results against the thresholds.
#[derive(Debug, Clone)]
struct Counter {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
}

impl ProbeKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

impl Probes {
    pub(super) fn of(c: &Container) -> Self {
        let one = |kind, spec: &Option<ProbeSpec>| {
            let spec = spec.as_ref()?;
            Some(Probe::new(kind, spec, spec.http_get.as_ref()?, c))
        };
        Self {
            startup: one(ProbeKind::Startup, &c.startup_probe),
            liveness: one(ProbeKind::Liveness, &c.liveness_probe),
            readiness: one(ProbeKind::Readiness, &c.readiness_probe),
        }
    }
}

impl Probe {
    /// A preStop `httpGet` hook, sent as a probe is; the grace period bounds it.
    pub(super) fn hook(get: &HTTPGetAction, c: &Container) -> Self {
        let spec = ProbeSpec {
            timeout_seconds: Some(i32::MAX),
            ..ProbeSpec::default()
        };
        Probe::new(ProbeKind::Liveness, &spec, get, c)
    }

    fn new(kind: ProbeKind, spec: &ProbeSpec, get: &HTTPGetAction, c: &Container) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(min)).unwrap_or(0))
        };
        let count =
            |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        let port = match &get.port {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map_or_else(|| name.clone(), |p| p.container_port.to_string()),
        };
        // No pod IP to name: the handler is called in-process.
        let host = get
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let path = get
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        Self {
            kind,
            path,
            authority: format!("{host}:{port}"),
            headers: get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            initial_delay: secs(spec.initial_delay_seconds, 0, 0),
            period: secs(spec.period_seconds, 10, 1),
            timeout: secs(spec.timeout_seconds, 1, 1),
            // Liveness and startup probes must use 1, as API validation insists.
            success_threshold: match kind {
                ProbeKind::Readiness => count(spec.success_threshold, 1),
                _ => 1,
            },
            failure_threshold: count(spec.failure_threshold, 3),
        }
    }

    fn counter(&self) -> Counter {
        Counter {
            success_threshold: self.success_threshold,
            failure_threshold: self.failure_threshold,
            successes: 0,
            failures: 0,
        }
    }

    /// Send the probe once: `Ok` for a status in 200..400, else why it failed, in
    /// the kubelet's words.
    pub(super) async fn check(&self, serving: &ServingHttp) -> Result<(), ProbeError> {
        let url = format!("http://{}{}", self.authority, self.path);
        let request = match self.request() {
            Ok(request) => request,
            Err(source) => return Err(ProbeError::Request { url, source }),
        };
        match tokio::time::timeout(self.timeout, serving.handle(request)).await {
            Err(_) => Err(ProbeError::Timeout { url }),
            Ok(Err(source)) => Err(ProbeError::Handler { url, source }),
            Ok(Ok(resp)) if (200..400).contains(&resp.status().as_u16()) => Ok(()),
            Ok(Ok(resp)) => Err(ProbeError::Status(resp.status().as_u16())),
        }
    }

    fn request(&self) -> Result<http::Request<Bytes>, http::Error> {
        let mut request = http::Request::get(self.path.as_str())
            .header(http::header::USER_AGENT, "kube-probe/1.33")
            .header(http::header::ACCEPT, "*/*")
            .body(Bytes::new())?;
        let headers = request.headers_mut();
        let mut set = |name: &str, value: &str| -> Result<(), http::Error> {
            let name = http::HeaderName::from_bytes(name.as_bytes())?;
            let value = http::HeaderValue::from_str(value)?;
            headers.insert(name, value);
            Ok(())
        };
        set("host", &self.authority)?;
        // The probe's own headers win, `Host` included.
        for (name, value) in &self.headers {
            set(name, value)?;
        }
        Ok(request)
    }

    /// Probe every period after the initial delay until `on_result` says stop.
    async fn each_period<R>(
        &self,
        serving: &ServingHttp,
        mut on_result: impl FnMut(Result<(), ProbeError>) -> Option<R>,
    ) -> R {
        tokio::time::sleep(self.initial_delay).await;
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(out) = on_result(self.check(serving).await) {
                return out;
            }
        }
    }
}

impl Counter {
    /// Record a result; `Some(true)` when the success threshold is reached,
    /// `Some(false)` when the failure threshold is.
    fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (self.successes == self.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures == self.failure_threshold).then_some(false)
        }
    }
}

/// Run a started container's probes. Resolves with the probe that failed when
/// the container must be killed; runs until dropped otherwise.
pub(super) async fn run(
    ctx: &PodCtx,
    which: Which,
    serving: &ServingHttp,
    probes: &Probes,
) -> ProbeKind {
    let unhealthy = |kind: ProbeKind, message: &ProbeError| {
        ctx.event(
            which,
            EventType::Warning,
            "Unhealthy",
            format!("{} probe failed: {message}", kind.label()),
        );
    };
    if let Some(p) = &probes.startup {
        let mut counter = p.counter();
        let passed = p
            .each_period(serving, |r| {
                if let Err(m) = &r {
                    unhealthy(p.kind, m);
                }
                counter.record(r.is_ok())
            })
            .await;
        if !passed {
            return ProbeKind::Startup;
        }
        let ready_now = probes.readiness.is_none();
        ctx.set_status(which, |c| {
            c.started = true;
            c.ready = ready_now;
        });
    }
    let liveness = async {
        match &probes.liveness {
            Some(p) => {
                let mut counter = p.counter();
                p.each_period(serving, |r| {
                    if let Err(m) = &r {
                        unhealthy(p.kind, m);
                    }
                    (counter.record(r.is_ok()) == Some(false)).then_some(ProbeKind::Liveness)
                })
                .await
            }
            None => std::future::pending().await,
        }
    };
    let readiness = async {
        if let Some(p) = &probes.readiness {
            let mut counter = p.counter();
            p.each_period(serving, |r| {
                if let Err(m) = &r {
                    unhealthy(p.kind, m);
                }
                if let Some(ready) = counter.record(r.is_ok()) {
                    ctx.set_status(which, |c| c.ready = ready);
                }
                None::<()>
            })
            .await;
        }
        std::future::pending::<ProbeKind>().await
    };
    tokio::select! {
        kind = liveness => kind,
        kind = readiness => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_count_consecutive_results() {
        let mut c = Counter {
            success_threshold: 2,
            failure_threshold: 3,
            successes: 0,
            failures: 0,
        };
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(true));
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None, "a success resets the failures");
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(false));
        assert_eq!(c.record(false), None);
    }

    #[test]
    fn defaults_and_named_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                           "httpHeaders": [{"name": "X-Probe", "value": "1"}]}},
            "livenessProbe": {"httpGet": {"port": 9000}, "periodSeconds": 2, "failureThreshold": 1},
            "startupProbe": {"exec": {"command": ["true"]}},
        }))
        .expect("container");
        let p = Probes::of(&c);
        assert!(p.startup.is_none(), "only httpGet probes");
        let r = p.readiness.expect("readiness");
        assert_eq!(r.authority, "localhost:8080");
        assert_eq!(r.path, "/healthz");
        assert_eq!(r.period, Duration::from_secs(10));
        assert_eq!(r.timeout, Duration::from_secs(1));
        assert_eq!((r.success_threshold, r.failure_threshold), (1, 3));
        let req = r.request().expect("request");
        assert_eq!(req.uri(), "/healthz");
        assert_eq!(req.headers()["host"], "localhost:8080");
        assert_eq!(req.headers()["x-probe"], "1");
        let l = p.liveness.expect("liveness");
        assert_eq!(
            (l.path.as_str(), l.period, l.failure_threshold),
            ("/", Duration::from_secs(2), 1)
        );
    }
}
