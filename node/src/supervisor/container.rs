//! One container's life: pull its image, configure and start an instance, watch
//! it (probes, failure at start, an image change, the pod's stop), record how it
//! ended, and restart it per the restart rule with back-off.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;
use skiff_runtime::{CommandContainer, Exit, HttpContainer, Kind, LogBuffer, PodSpec};
use tokio::time::Instant;

use super::PulledImage;
use super::backoff::{Backoff, go_duration};
use super::events::EventType;
use super::pod::{PodCtx, Which};
use super::probe::{self, Probe, Probes};
use super::serving::ServingHttp;
use super::spec::{self, ConfigError, SpecInputs};
use super::status::{ContainerStatus, RestartPolicy, State, Terminated};
use super::stop::Stop;

/// Bytes of log kept in memory per container instance.
const LOG_RING_BYTES: usize = 1 << 20;
/// Size at which a container's log file is rotated, and how many rotated files
/// are kept (the kubelet's defaults: 10 MiB, 5 files in all).
const LOG_FILE_BYTES: u64 = 10 << 20;
const LOG_FILES_KEPT: usize = 4;
/// Exit code of a container the kubelet killed (128 + SIGKILL).
const KILLED: i32 = 137;

/// When a container that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    Always,
    OnFailure,
    Never,
}

/// How a container's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It ended with this exit code and will not run again.
    Exited(i32),
    /// The pod (or, for a sidecar, its own order) stopped it.
    Stopped,
}

/// What follows the end of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Restart or not, per the rule.
    Policy,
    /// Start again at once (its image changed).
    Restart,
    /// The pod is stopping.
    Stopped,
}

/// How one instance ended.
#[derive(Debug, Clone)]
struct End {
    exit_code: i32,
    reason: &'static str,
    message: Option<String>,
    then: Then,
}

impl Rule {
    pub(super) fn for_main(policy: RestartPolicy) -> Self {
        match policy {
            RestartPolicy::Always => Rule::Always,
            RestartPolicy::OnFailure => Rule::OnFailure,
            RestartPolicy::Never => Rule::Never,
        }
    }

    /// An init container runs until it succeeds, unless the pod never restarts.
    pub(super) fn for_init(policy: RestartPolicy) -> Self {
        match policy {
            RestartPolicy::Never => Rule::Never,
            _ => Rule::OnFailure,
        }
    }

    fn restarts(self, exit_code: i32) -> bool {
        match self {
            Rule::Always => true,
            Rule::OnFailure => exit_code != 0,
            Rule::Never => false,
        }
    }
}

impl End {
    fn new(exit_code: i32, reason: &'static str, message: Option<String>, then: Then) -> Self {
        Self {
            exit_code,
            reason,
            message,
            then,
        }
    }

    fn from_exit(result: skiff_runtime::Result<Exit>, then: Then) -> Self {
        match result {
            Ok(Exit::Code(0)) => End::new(0, "Completed", None, then),
            Ok(Exit::Code(code)) => End::new(code, "Error", None, then),
            Ok(Exit::Killed) => End::new(KILLED, "Error", None, then),
            Err(e) => End::new(1, "Error", Some(e.to_string()), then),
        }
    }
}

/// Run container `which` until it ends for good or is stopped.
pub(super) async fn run(ctx: &PodCtx, which: Which, rule: Rule, mut stop: Stop) -> Outcome {
    let mut backoff = Backoff::new(
        ctx.config.restart_backoff_base,
        ctx.config.restart_backoff_max,
    );
    let Some(first) = ctx.container(which) else {
        return Outcome::Stopped;
    };
    let name = first.name;
    ctx.set_status(which, |c| {
        if matches!(c.state, State::Waiting { .. }) {
            c.state = State::waiting("ContainerCreating", None);
        }
    });
    loop {
        if stop.current().is_some() {
            return Outcome::Stopped;
        }
        let Some(container) = ctx.container(which) else {
            return Outcome::Stopped;
        };
        let image_name = container.image.clone().unwrap_or_default();
        let Some(image) = pull(ctx, which, &image_name, &mut stop).await else {
            return Outcome::Stopped;
        };
        let kind = image.component.kind();
        ctx.with_runtime(which, |rt| rt.kind = Some(kind));
        let Some(spec) = configure(ctx, which, &container, kind, &mut stop).await else {
            return Outcome::Stopped;
        };
        let started = Instant::now();
        let end = instance(ctx, which, &container, &image, spec, &mut stop).await;
        match end.then {
            Then::Stopped => return Outcome::Stopped,
            Then::Restart => continue,
            Then::Policy => {}
        }
        if !rule.restarts(end.exit_code) {
            return Outcome::Exited(end.exit_code);
        }
        let delay = backoff.next_delay(started.elapsed());
        if delay.is_zero() {
            continue;
        }
        let pod_ref = format!("{}_{}({})", ctx.name, ctx.namespace, ctx.uid);
        ctx.set_status(which, |c| {
            c.set_state(State::waiting(
                "CrashLoopBackOff",
                Some(format!(
                    "back-off {} restarting failed container={name} pod={pod_ref}",
                    go_duration(delay)
                )),
            ));
        });
        ctx.event(
            which,
            EventType::Warning,
            "BackOff",
            format!("Back-off restarting failed container {name} in pod {pod_ref}"),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.requested() => return Outcome::Stopped,
        }
    }
}

/// The runtime spec of the container; while it cannot be made (a ConfigMap
/// or Secret it needs is missing, or something the node cannot honour), the
/// container waits in `CreateContainerConfigError` and tries again whenever
/// the objects the node holds change. `None` if the pod stops first.
async fn configure(
    ctx: &PodCtx,
    which: Which,
    container: &k8s_openapi::api::core::v1::Container,
    kind: skiff_runtime::Kind,
    stop: &mut Stop,
) -> Option<skiff_runtime::PodSpec> {
    let mut changed = ctx.objects.changed();
    let mut reported: Option<String> = None;
    loop {
        changed.mark_unchanged();
        let pod = ctx.pod();
        let pod_ip = ctx.update(|st| st.status.pod_ip).map(std::net::IpAddr::V4);
        let spec = spec::pod_spec(&SpecInputs {
            pod: &pod,
            container,
            kind,
            node_name: &ctx.config.node_name,
            pod_dir: &ctx.pod_dir,
            host_paths: &ctx.config.host_paths,
            objects: &ctx.objects,
            projected: &ctx.projected,
            pod_ip,
            host_ip: ctx.config.host_ip,
            allocatable: &ctx.config.allocatable,
        });
        match spec {
            Ok(mut s) => {
                s.outbound = ctx.outbound.get().map(|r| r.for_pod(&pod, pod_ip));
                return Some(s);
            }
            Err(e) => {
                let message = e.to_string();
                // Said once per cause, as the kubelet's recorder counts repeats.
                if reported.as_deref() != Some(message.as_str()) {
                    match e {
                        // The kubelet: the pod's volumes are not set up, so
                        // its containers are still being created.
                        ConfigError::Mount { .. } => {
                            ctx.set_status(which, |c| {
                                c.set_state(State::waiting("ContainerCreating", None));
                            });
                            ctx.reporter.event(
                                None,
                                EventType::Warning,
                                "FailedMount",
                                message.clone(),
                            );
                        }
                        ConfigError::Config(_) => {
                            ctx.set_status(which, |c| {
                                c.set_state(State::waiting(
                                    "CreateContainerConfigError",
                                    Some(message.clone()),
                                ));
                            });
                            ctx.event(
                                which,
                                EventType::Warning,
                                "Failed",
                                format!("Error: {message}"),
                            );
                        }
                    }
                    reported = Some(message);
                }
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { stop.requested().await; return None; },
            _ = stop.requested() => return None,
        }
    }
}

/// Pull `image`, retrying with back-off; `None` if the pod stops first.
async fn pull(ctx: &PodCtx, which: Which, image: &str, stop: &mut Stop) -> Option<PulledImage> {
    let mut backoff = Backoff::new(
        ctx.config.restart_backoff_base,
        ctx.config.restart_backoff_max,
    );
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            r = ctx.images.pull(image) => r,
            _ = stop.requested() => return None,
        };
        match result {
            Ok(pulled) => {
                let message = if pulled.was_present {
                    format!("Container image \"{image}\" already present on machine")
                } else {
                    format!(
                        "Successfully pulled image \"{image}\" in {}",
                        go_duration(Duration::from_millis(
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
                        ))
                    )
                };
                ctx.event(which, EventType::Normal, "Pulled", message);
                return Some(pulled);
            }
            Err(e) => {
                tracing::warn!(pod = %ctx.name, namespace = %ctx.namespace, image, error = %e, "image pull failed");
                ctx.set_status(which, |c| {
                    c.set_state(State::waiting("ErrImagePull", Some(e.to_string())))
                });
                ctx.event(
                    which,
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {e}"),
                );
                ctx.event(
                    which,
                    EventType::Warning,
                    "Failed",
                    "Error: ErrImagePull".into(),
                );
                let delay = backoff.next_retry();
                ctx.set_status(which, |c| {
                    c.set_state(State::waiting(
                        "ImagePullBackOff",
                        Some(format!(
                            "Back-off pulling image \"{image}\": ErrImagePull: {e}"
                        )),
                    ));
                });
                ctx.event(
                    which,
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.requested() => return None,
                }
            }
        }
    }
}

/// Run one instance of the container and record how it ended.
async fn instance(
    ctx: &PodCtx,
    which: Which,
    container: &Container,
    image: &PulledImage,
    spec: PodSpec,
    stop: &mut Stop,
) -> End {
    let logs = new_log(ctx, &container.name);
    let image_name = container.image.clone().unwrap_or_default();
    let id = InstanceId {
        container_id: format!("skiff://{:016x}", rand::random::<u64>()),
        image: image_name.clone(),
        image_id: image.image_id.clone(),
    };
    let container_id = &id.container_id;
    ctx.with_runtime(which, |rt| rt.previous_logs = rt.logs.replace(logs.clone()));
    let started_at = Timestamp::now();
    let plain_init =
        matches!(which, Which::Init(_)) && container.restart_policy.as_deref() != Some("Always");
    let end = match image.component.kind() {
        Kind::Http if plain_init => start_failed(
            ctx,
            which,
            format!(
                "init container {:?} must be a command component (exporting wasi:cli/run) that runs to completion; {image_name} is an HTTP component",
                container.name
            ),
        ),
        Kind::Http => http_instance(ctx, which, container, image, spec, &logs, stop, &id).await,
        Kind::Command => {
            command_instance(ctx, which, container, image, spec, &logs, stop, &id).await
        }
    };
    logs.close();
    let ran = end.reason != "StartError";
    ctx.update(|st| {
        if let Some(c) = st.status_mut(which) {
            if !ran {
                id.begin(c);
            }
            c.set_state(State::Terminated(Terminated {
                exit_code: end.exit_code,
                reason: end.reason.into(),
                message: end.message.clone(),
                started_at: ran.then_some(started_at),
                finished_at: Timestamp::now(),
                container_id: Some(container_id.clone()),
            }));
            c.ready = false;
            c.started = false;
        }
        if let Some(rt) = st.runtime_mut(which) {
            rt.serving = None;
            rt.stopper = None;
        }
    });
    tracing::debug!(pod = %ctx.name, container = %container.name, exit_code = end.exit_code, reason = end.reason, "container instance ended");
    end
}

/// The container could not be started: the kubelet's `StartError`.
fn start_failed(ctx: &PodCtx, which: Which, message: String) -> End {
    ctx.event(
        which,
        EventType::Warning,
        "Failed",
        format!("Error: {message}"),
    );
    End::new(128, "StartError", Some(message), Then::Policy)
}

/// What identifies one instance of a container in its status.
struct InstanceId {
    container_id: String,
    image: String,
    image_id: String,
}

impl InstanceId {
    /// Count the instance in the status (a restart unless it is the first),
    /// together with its first state change, so no status shows one without the other.
    fn begin(&self, c: &mut ContainerStatus) {
        if c.has_run {
            c.restart_count = c.restart_count.saturating_add(1);
        }
        c.has_run = true;
        c.image = self.image.clone();
        c.image_id = self.image_id.clone();
        c.container_id = Some(self.container_id.clone());
    }
}

/// Mark the instance running and report it: the Events first, so that whoever
/// sees the container running (or the pod Ready) finds them already recorded.
fn started(ctx: &PodCtx, which: Which, name: &str, id: &InstanceId, started: bool, ready: bool) {
    let now = Timestamp::now();
    ctx.event(
        which,
        EventType::Normal,
        "Created",
        format!("Created container: {name}"),
    );
    ctx.event(
        which,
        EventType::Normal,
        "Started",
        format!("Started container {name}"),
    );
    ctx.set_status(which, |c| {
        id.begin(c);
        c.set_state(State::Running { started_at: now });
        c.started = started;
        c.ready = ready;
    });
}

#[allow(clippy::too_many_arguments)]
async fn http_instance(
    ctx: &PodCtx,
    which: Which,
    container: &Container,
    image: &PulledImage,
    spec: PodSpec,
    logs: &LogBuffer,
    stop: &mut Stop,
    id: &InstanceId,
) -> End {
    let http = match HttpContainer::new(&ctx.engine, &image.component, spec, logs.clone()) {
        Ok(h) => h,
        Err(e) => return start_failed(ctx, which, e.to_string()),
    };
    let serving = Arc::new(ServingHttp::new(http));
    let probes = Probes::of(container);
    let name = container.name.as_str();
    let image_name = container.image.clone().unwrap_or_default();
    ctx.with_runtime(which, |rt| rt.serving = Some(serving.clone()));
    // With no startup probe it has started; with no readiness probe, started is ready.
    let is_started = probes.startup.is_none();
    started(
        ctx,
        which,
        name,
        id,
        is_started,
        is_started && probes.readiness.is_none(),
    );
    if ctx.is_stopping() && !has_pre_stop(container) {
        serving.stop_accepting();
    }
    let end = tokio::select! {
        message = serving.failed() => {
            tracing::info!(pod = %ctx.name, container = name, error = %message, "HTTP container failed at start");
            End::new(1, "Error", Some(message), Then::Policy)
        }
        kind = probe::run(ctx, which, &serving, &probes) => {
            ctx.event(
                which,
                EventType::Normal,
                "Killing",
                format!("Container {name} failed {} probe, will be restarted", kind.label().to_lowercase()),
            );
            End::new(KILLED, "Error", None, Then::Policy)
        }
        _ = ctx.image_changed(which, &image_name) => {
            ctx.event(which, EventType::Normal, "Killing", format!("Container {name} definition changed, will be restarted"));
            End::new(KILLED, "Error", None, Then::Restart)
        }
        _ = stop.requested() => {
            ctx.event(which, EventType::Normal, "Killing", format!("Stopping container {name}"));
            let drain = async {
                pre_stop(ctx, which, container, Some(&serving)).await;
                serving.stop_accepting();
                serving.drained().await;
            };
            tokio::select! {
                _ = drain => End::new(0, "Completed", None, Then::Stopped),
                _ = stop.deadline() => End::new(KILLED, "Error", None, Then::Stopped),
            }
        }
    };
    // Whatever is still in flight belonged to this instance.
    serving.kill();
    end
}

#[allow(clippy::too_many_arguments)]
async fn command_instance(
    ctx: &PodCtx,
    which: Which,
    container: &Container,
    image: &PulledImage,
    spec: PodSpec,
    logs: &LogBuffer,
    stop: &mut Stop,
    id: &InstanceId,
) -> End {
    let run = match CommandContainer::start(&ctx.engine, &image.component, spec, logs.clone()) {
        Ok(r) => r,
        Err(e) => return start_failed(ctx, which, e.to_string()),
    };
    let stopper = run.stopper();
    let name = container.name.as_str();
    let image_name = container.image.clone().unwrap_or_default();
    ctx.with_runtime(which, |rt| rt.stopper = Some(stopper.clone()));
    // Probes do not apply to a command: it is ready while it runs.
    started(ctx, which, name, id, true, true);
    let wait = run.wait();
    tokio::pin!(wait);
    tokio::select! {
        r = &mut wait => End::from_exit(r, Then::Policy),
        _ = ctx.image_changed(which, &image_name) => {
            ctx.event(which, EventType::Normal, "Killing", format!("Container {name} definition changed, will be restarted"));
            stopper.stop(Duration::ZERO);
            End::from_exit(wait.await, Then::Restart)
        }
        _ = stop.requested() => {
            ctx.event(which, EventType::Normal, "Killing", format!("Stopping container {name}"));
            // The command may finish during its preStop hook; then the rest of the
            // grace period is its to finish in (WASI has no signal to send it).
            let hook = async {
                tokio::select! {
                    _ = pre_stop(ctx, which, container, None) => {}
                    _ = stop.deadline() => {}
                }
            };
            let early = tokio::select! {
                r = &mut wait => Some(r),
                _ = hook => None,
            };
            let result = match early {
                Some(r) => r,
                None => {
                    stopper.stop(stop.current().map_or(Duration::ZERO, |o| o.remaining()));
                    wait.await
                }
            };
            End::from_exit(result, Then::Stopped)
        }
    }
}

fn has_pre_stop(c: &Container) -> bool {
    c.lifecycle.as_ref().is_some_and(|l| l.pre_stop.is_some())
}

/// Run the container's preStop hook, if any: `sleep`, or `httpGet` sent to the
/// container's handler in-process. A failure is an Event; the stop goes on.
async fn pre_stop(
    ctx: &PodCtx,
    which: Which,
    container: &Container,
    serving: Option<&ServingHttp>,
) {
    let Some(hook) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    else {
        return;
    };
    let failed = |why: String| {
        ctx.event(
            which,
            EventType::Warning,
            "FailedPreStopHook",
            format!("PreStopHook failed: {why}"),
        );
    };
    if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(sleep.seconds).unwrap_or(0),
        ))
        .await;
    } else if let Some(get) = &hook.http_get {
        match serving {
            Some(s) => {
                if let Err(why) = Probe::hook(get, container).check(s).await {
                    failed(why.to_string());
                }
            }
            None => failed(format!(
                "an httpGet hook needs an HTTP container, and {:?} is a command",
                container.name
            )),
        }
    } else {
        failed("only sleep and httpGet hooks are supported".into());
    }
}

/// A fresh log for a new instance, also written to `<pod dir>/<container>.log`.
fn new_log(ctx: &PodCtx, container: &str) -> LogBuffer {
    let log = LogBuffer::new(LOG_RING_BYTES);
    if let Err(e) = std::fs::create_dir_all(&ctx.pod_dir) {
        tracing::warn!(dir = %ctx.pod_dir.display(), error = %e, "cannot create the pod's directory; logging in memory only");
        return log;
    }
    let path = ctx.pod_dir.join(format!("{container}.log"));
    match log.clone().with_file(&path, LOG_FILE_BYTES, LOG_FILES_KEPT) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open the container's log file; logging in memory only");
            log
        }
    }
}
