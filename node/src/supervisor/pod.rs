//! One pod: its shared state (status model, each container's log and running
//! instance) and its task, which runs the init containers in order, then the
//! main containers side by side, and at the end reports how the pod finished.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_runtime::{Engine, Kind, LogBuffer, Stopper};
use tokio::sync::watch;

use super::container::{self, Outcome, Rule};
use super::events::{EventType, Reporter};
use super::projection::{ProjectedVolumes, RenderInputs, Source};
use super::serving::ServingHttp;
use super::status::{ContainerStatus, PodStatusModel, RestartPolicy, State, Terminated};
use super::stop::{self, Stop, StopKind, StopOrder};
use super::{ImageSource, OutboundSlot, PodAccessError, SupervisorConfig, lock};

/// Grace period when neither the deletion nor the pod names one (Kubernetes: 30 s).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Which container of the pod: an index into `initContainers` or `containers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Init(usize),
    Main(usize),
}

/// What the supervisor holds of one container besides its status.
#[derive(Default)]
pub(super) struct Runtime {
    /// HTTP or command, once its image was pulled.
    pub kind: Option<Kind>,
    /// The log of the latest instance.
    pub logs: Option<LogBuffer>,
    /// The log of the instance before it (`kubectl logs --previous`).
    pub previous_logs: Option<LogBuffer>,
    /// The running HTTP instance.
    pub serving: Option<Arc<ServingHttp>>,
    /// The running command instance.
    pub stopper: Option<Stopper>,
}

/// A pod's mutable state, behind one lock.
pub(super) struct PodState {
    pub status: PodStatusModel,
    init: Vec<Runtime>,
    main: Vec<Runtime>,
    last_sent: Option<serde_json::Value>,
}

/// Everything a pod's task and its containers share.
pub(super) struct PodCtx {
    pub engine: Engine,
    pub images: Arc<dyn ImageSource>,
    pub config: Arc<SupervisorConfig>,
    /// Where the pod's outbound HTTP goes, once the proxy is up.
    pub outbound: OutboundSlot,
    /// The ConfigMaps and Secrets the node holds for its pods.
    pub objects: Arc<super::PodObjects>,
    /// Its configMap, secret, downwardAPI and projected volumes.
    pub projected: ProjectedVolumes,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `<pods_dir>/<uid>`: log files and emptyDir volumes.
    pub pod_dir: PathBuf,
    pub reporter: Reporter,
    /// The latest object (its spec only changes where Kubernetes allows: images).
    pod: Mutex<Pod>,
    state: Mutex<PodState>,
    stop: watch::Sender<Option<StopOrder>>,
    /// Bumped when a container's image changes.
    spec_version: watch::Sender<u64>,
    /// Bumped after every state change, for [`PodCtx::wait_until`].
    version: watch::Sender<u64>,
    /// Set when the pod's task has finished.
    done: watch::Sender<bool>,
    /// The pod had already finished (Succeeded or Failed) when this supervisor got
    /// it, e.g. before the node restarted: it is not run again.
    already_final: bool,
}

/// A boxed container future, so that init, sidecar and main containers can be
/// driven together.
type ContainerRun<'a> = Pin<Box<dyn Future<Output = (Which, Outcome)> + Send + 'a>>;

impl Which {
    pub(super) fn field_path(self, name: &str) -> String {
        match self {
            Which::Init(_) => format!("spec.initContainers{{{name}}}"),
            Which::Main(_) => format!("spec.containers{{{name}}}"),
        }
    }
}

impl PodState {
    pub(super) fn status_mut(&mut self, which: Which) -> Option<&mut ContainerStatus> {
        match which {
            Which::Init(i) => self.status.init.get_mut(i),
            Which::Main(i) => self.status.main.get_mut(i),
        }
    }

    fn status(&self, which: Which) -> Option<&ContainerStatus> {
        match which {
            Which::Init(i) => self.status.init.get(i),
            Which::Main(i) => self.status.main.get(i),
        }
    }

    pub(super) fn runtime_mut(&mut self, which: Which) -> Option<&mut Runtime> {
        match which {
            Which::Init(i) => self.init.get_mut(i),
            Which::Main(i) => self.main.get_mut(i),
        }
    }

    fn runtime(&self, which: Which) -> Option<&Runtime> {
        match which {
            Which::Init(i) => self.init.get(i),
            Which::Main(i) => self.main.get(i),
        }
    }

    fn runtimes(&self) -> impl Iterator<Item = &Runtime> {
        self.init.iter().chain(&self.main)
    }
}

impl PodCtx {
    /// The context of `pod`, run by `sup`, at address `ip`.
    pub(super) fn new(
        sup: &super::PodSupervisor,
        pod: Pod,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Arc<Self> {
        let config = &sup.config;
        let meta = &pod.metadata;
        let uid = meta.uid.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let name = meta.name.clone().unwrap_or_default();
        let mut status = PodStatusModel::new(&pod, Timestamp::now());
        status.pod_ip = ip;
        status.host_ip = config.host_ip;
        let already_final = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        let runtimes = |n: usize| (0..n).map(|_| Runtime::default()).collect();
        let state = PodState {
            init: runtimes(status.init.len()),
            main: runtimes(status.main.len()),
            status,
            last_sent: None,
        };
        Arc::new(Self {
            engine: sup.engine.clone(),
            images: sup.images.clone(),
            config: config.clone(),
            outbound: sup.outbound.clone(),
            objects: sup.objects.clone(),
            projected: ProjectedVolumes::new(
                pods_dir(config).join(&uid).join("volumes"),
                config
                    .memory_dir
                    .as_ref()
                    .map(|m| m.join(&uid).join("volumes")),
            ),
            pod_dir: pods_dir(config).join(&uid),
            reporter: Reporter::new(sup.reports.clone(), &namespace, &name, &uid),
            uid,
            namespace,
            name,
            pod: Mutex::new(pod),
            state: Mutex::new(state),
            stop: watch::Sender::new(None),
            spec_version: watch::Sender::new(0),
            version: watch::Sender::new(0),
            done: watch::Sender::new(false),
            already_final,
        })
    }

    /// A copy of the latest pod object.
    pub(super) fn pod(&self) -> Pod {
        lock(&self.pod).clone()
    }

    /// The spec of one container, as the latest object has it.
    pub(super) fn container(&self, which: Which) -> Option<Container> {
        let pod = lock(&self.pod);
        let spec = pod.spec.as_ref()?;
        match which {
            Which::Init(i) => spec.init_containers.as_ref()?.get(i).cloned(),
            Which::Main(i) => spec.containers.get(i).cloned(),
        }
    }

    /// Change the state and report the new status if it changed.
    pub(super) fn update<R>(&self, f: impl FnOnce(&mut PodState) -> R) -> R {
        let out = {
            let mut st = lock(&self.state);
            let out = f(&mut st);
            let status = st.status.render(Timestamp::now());
            if st.last_sent.as_ref() != Some(&status) {
                self.reporter.status(status.clone());
                st.last_sent = Some(status);
            }
            out
        };
        self.version.send_modify(|v| *v += 1);
        out
    }

    /// Change one container's status.
    pub(super) fn set_status(&self, which: Which, f: impl FnOnce(&mut ContainerStatus)) {
        self.update(|st| {
            if let Some(c) = st.status_mut(which) {
                f(c);
            }
        });
    }

    /// Change one container's runtime handles (no status change).
    pub(super) fn with_runtime<R>(
        &self,
        which: Which,
        f: impl FnOnce(&mut Runtime) -> R,
    ) -> Option<R> {
        lock(&self.state).runtime_mut(which).map(f)
    }

    /// Report an Event about one container.
    pub(super) fn event(
        &self,
        which: Which,
        kind: EventType,
        reason: &'static str,
        message: String,
    ) {
        let name = match which {
            Which::Init(i) => lock(&self.state).status.init.get(i).map(|c| c.name.clone()),
            Which::Main(i) => lock(&self.state).status.main.get(i).map(|c| c.name.clone()),
        };
        let field_path = name.map(|n| which.field_path(&n));
        self.reporter.event(field_path, kind, reason, message);
    }

    /// Resolves once `pred` holds for the state.
    pub(super) async fn wait_until(&self, pred: impl Fn(&PodState) -> bool) {
        let mut rx = self.version.subscribe();
        loop {
            if pred(&lock(&self.state)) {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when the image of `which` is no longer `image`.
    pub(super) async fn image_changed(&self, which: Which, image: &str) {
        let mut rx = self.spec_version.subscribe();
        loop {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let now = self
                .container(which)
                .and_then(|c| c.image)
                .unwrap_or_default();
            if now != image {
                return;
            }
        }
    }

    /// What a container watches for the pod's stop.
    pub(super) fn stop_watch(&self) -> Stop {
        Stop::new(self.stop.subscribe(), None)
    }

    fn stop_order(&self) -> Option<StopOrder> {
        *self.stop.borrow()
    }

    /// Whether the pod is stopping (or has stopped).
    pub(super) fn is_stopping(&self) -> bool {
        self.stop_order().is_some()
    }

    /// Whether the pod's task has finished.
    pub(super) fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Resolves when the pod's task has finished.
    pub(super) async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        if rx.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Start stopping the pod within `grace`: from now on no container is ready,
    /// and containers without a preStop hook take no new requests.
    pub(super) fn begin_stop(&self, kind: StopKind, grace: Duration) {
        if kind == StopKind::Remove {
            self.reporter.mute();
        }
        let pod = lock(&self.pod).clone();
        let has_pre_stop =
            |c: &Container| c.lifecycle.as_ref().is_some_and(|l| l.pre_stop.is_some());
        self.update(|st| {
            st.status.terminating = true;
            let spec = pod.spec.as_ref();
            let inits = spec.and_then(|s| s.init_containers.as_ref());
            let mains = spec.map(|s| &s.containers);
            let specs = inits
                .into_iter()
                .flatten()
                .chain(mains.into_iter().flatten());
            for (rt, c) in st.init.iter().chain(&st.main).zip(specs) {
                if let Some(s) = &rt.serving
                    && !has_pre_stop(c)
                {
                    s.stop_accepting();
                }
            }
        });
        if kind == StopKind::Shutdown {
            // The pod runs again when the node is back: its last word is "not ready".
            self.reporter.mute_status();
        }
        if stop::order(&self.stop, kind, grace) {
            tracing::info!(pod = %self.name, namespace = %self.namespace, ?kind, ?grace, "stopping pod");
        }
    }

    /// The grace period for a graceful deletion of `pod`.
    pub(super) fn deletion_grace(pod: &Pod) -> Duration {
        match pod.metadata.deletion_grace_period_seconds {
            Some(s) => Duration::from_secs(u64::try_from(s).unwrap_or(0)),
            None => Self::termination_grace(pod),
        }
    }

    /// `spec.terminationGracePeriodSeconds`, else 30 s.
    pub(super) fn termination_grace(pod: &Pod) -> Duration {
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .map_or(DEFAULT_GRACE, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            })
    }

    /// A new version of the pod's object: a deletion starts a graceful stop, a
    /// changed image restarts that container; other spec changes are ignored
    /// (Kubernetes forbids them).
    pub(super) fn apply(&self, new: Pod) {
        let deletion = new.metadata.deletion_timestamp.is_some();
        let grace = Self::deletion_grace(&new);
        let images_changed = {
            let mut cur = lock(&self.pod);
            let names = |p: &Pod| -> Vec<(String, Option<String>)> {
                let spec = p.spec.as_ref();
                spec.and_then(|s| s.init_containers.as_ref())
                    .into_iter()
                    .flatten()
                    .chain(spec.map(|s| &s.containers).into_iter().flatten())
                    .map(|c| (c.name.clone(), c.image.clone()))
                    .collect()
            };
            let (old, newer) = (names(&cur), names(&new));
            let same_containers =
                old.len() == newer.len() && old.iter().zip(&newer).all(|(a, b)| a.0 == b.0);
            if same_containers {
                let changed = old != newer;
                *cur = new;
                changed
            } else {
                tracing::warn!(pod = %self.name, namespace = %self.namespace, "ignoring a change to the pod's list of containers");
                cur.metadata = new.metadata;
                false
            }
        };
        if deletion {
            self.begin_stop(StopKind::Delete, grace);
        } else if images_changed {
            self.spec_version.send_modify(|v| *v += 1);
        }
    }

    /// The log of a container (see [`super::PodSupervisor::logs`]).
    pub(super) fn logs(
        &self,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogBuffer, PodAccessError> {
        let pod = &self.name;
        let (which, name) = self.pick_container(container)?;
        let st = lock(&self.state);
        let (Some(status), Some(rt)) = (st.status(which), st.runtime(which)) else {
            return Err(PodAccessError::BadRequest(format!(
                "container {name} is not valid for pod {pod}"
            )));
        };
        // As the kubelet picks: "current" is the running instance, or the last one
        // that ended; "previous" is the one before the running instance, or the
        // last one that ended while the container waits to restart.
        let waiting = matches!(status.state, State::Waiting { .. });
        if previous {
            let log = if waiting {
                rt.logs.clone().filter(|_| status.last_state.is_some())
            } else {
                rt.previous_logs.clone()
            };
            return log.ok_or_else(|| {
                PodAccessError::BadRequest(format!(
                    "previous terminated container \"{name}\" in pod \"{pod}\" not found"
                ))
            });
        }
        match (&rt.logs, &status.state) {
            (Some(log), _) => Ok(log.clone()),
            (None, State::Waiting { reason, .. }) => Err(PodAccessError::BadRequest(format!(
                "container \"{name}\" in pod \"{pod}\" is waiting to start: {reason}"
            ))),
            (None, _) => Err(PodAccessError::BadRequest(format!(
                "container \"{name}\" in pod \"{pod}\" has no log on this node"
            ))),
        }
    }

    /// The container a log request means, by the API server's rules.
    fn pick_container(&self, container: Option<&str>) -> Result<(Which, String), PodAccessError> {
        let pod = lock(&self.pod);
        let spec = pod.spec.as_ref();
        let mains: Vec<&str> = spec
            .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let inits: Vec<&str> = spec
            .and_then(|s| s.init_containers.as_ref())
            .map(|cs| cs.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let name = match container.filter(|c| !c.is_empty()) {
            Some(n) => n,
            None if mains.len() == 1 => mains[0],
            None => {
                let mut msg = format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    self.name,
                    mains.join(" ")
                );
                if !inits.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        inits.join(" ")
                    ));
                }
                return Err(PodAccessError::BadRequest(msg));
            }
        };
        if let Some(i) = mains.iter().position(|n| *n == name) {
            return Ok((Which::Main(i), name.to_string()));
        }
        if let Some(i) = inits.iter().position(|n| *n == name) {
            return Ok((Which::Init(i), name.to_string()));
        }
        Err(PodAccessError::BadRequest(format!(
            "container {name} is not valid for pod {}",
            self.name
        )))
    }

    /// The running HTTP instance that serves `port` (see
    /// [`super::PodSupervisor::serve`]). On the path of every request: it
    /// allocates nothing unless it fails.
    pub(super) fn serving_for(
        &self,
        port: Option<u16>,
    ) -> Result<Arc<ServingHttp>, PodAccessError> {
        let who = || format!("pod {}/{}", self.namespace, self.name);
        let pod = lock(&self.pod);
        let st = lock(&self.state);
        let spec = pod.spec.as_ref();
        // Main containers, then sidecars: what a Service can send traffic to.
        let mains = spec
            .map(|s| &s.containers)
            .into_iter()
            .flatten()
            .enumerate();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"));
        let candidates = || {
            mains
                .clone()
                .map(|(i, c)| (Which::Main(i), c))
                .chain(sidecars.clone().map(|(i, c)| (Which::Init(i), c)))
        };
        let kind = |w: Which| st.runtime(w).and_then(|rt| rt.kind);
        // A port no container declares still reaches the first HTTP container: in
        // Kubernetes `containerPort` is informational, and a Wasm pod listens on no
        // socket, so there is nothing else it could mean.
        let declared = port.and_then(|p| {
            candidates()
                .find(|(_, c)| {
                    c.ports
                        .iter()
                        .flatten()
                        .any(|cp| cp.container_port == i32::from(p))
                })
                .map(|(w, _)| w)
        });
        let which = match declared {
            Some(w) => w,
            None => match candidates()
                .map(|(w, _)| w)
                .find(|w| kind(*w) == Some(Kind::Http))
            {
                Some(w) => w,
                None if candidates().any(|(w, _)| kind(w).is_none()) => {
                    return Err(PodAccessError::Unavailable(format!(
                        "{} is not running yet",
                        who()
                    )));
                }
                None => {
                    return Err(PodAccessError::Unavailable(format!(
                        "{} has no HTTP container to serve the request",
                        who()
                    )));
                }
            },
        };
        let (Some(status), Some(rt)) = (st.status(which), st.runtime(which)) else {
            return Err(PodAccessError::Unavailable(format!(
                "{} is not running",
                who()
            )));
        };
        if let Some(s) = &rt.serving {
            return Ok(s.clone());
        }
        if rt.kind == Some(Kind::Command) {
            return Err(PodAccessError::Unavailable(format!(
                "container \"{}\" of {} is a command, not an HTTP component",
                status.name,
                who()
            )));
        }
        let why = match &status.state {
            State::Waiting { reason, .. } => format!(" ({reason})"),
            State::Terminated(t) => format!(" (terminated: {})", t.reason),
            State::Running { .. } => String::new(),
        };
        let what = if self.is_stopping() {
            "is terminating"
        } else {
            "is not running"
        };
        Err(PodAccessError::Unavailable(format!(
            "container \"{}\" of {} {what}{why}",
            status.name,
            who()
        )))
    }

    /// End every instance at once (the supervisor is dropped).
    pub(super) fn kill_now(&self) {
        let st = lock(&self.state);
        for rt in st.runtimes() {
            if let Some(s) = &rt.stopper {
                s.stop(Duration::ZERO);
            }
            if let Some(s) = &rt.serving {
                s.kill();
            }
        }
    }

    /// The last steps once every container has stopped.
    async fn finish(&self, order: StopOrder) {
        // A pod that is over keeps no Secret on this node.
        self.projected.forget_secrets();
        match order.kind {
            StopKind::Delete => {
                if !self.already_final {
                    self.update(|st| {
                        for c in st.status.init.iter_mut().chain(st.status.main.iter_mut()) {
                            finalize(c);
                        }
                        st.status.terminal = true;
                    });
                }
                // As the kubelet: the object goes only once the pod's files
                // (volumes, logs) are cleaned up.
                self.remove_files().await;
                self.reporter.terminated();
            }
            StopKind::Remove => self.remove_files().await,
            StopKind::Shutdown | StopKind::Finished => {}
        }
        tracing::info!(pod = %self.name, namespace = %self.namespace, kind = ?order.kind, "pod stopped");
        self.done.send_replace(true);
    }

    /// Remove the pod's directory: its emptyDir volumes and log files.
    async fn remove_files(&self) {
        match tokio::fs::remove_dir_all(&self.pod_dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(pod = %self.name, dir = %self.pod_dir.display(), error = %e, "could not remove the pod's files");
            }
        }
    }
}

/// Where pod files go: the configured directory, or one under the system's
/// temporary directory when none is configured.
fn pods_dir(config: &SupervisorConfig) -> PathBuf {
    if config.pods_dir.as_os_str().is_empty() {
        std::env::temp_dir().join("skiff-pods")
    } else {
        config.pods_dir.clone()
    }
}

/// A container's state once its pod has stopped for good: a container waiting to
/// restart shows how it last ended; one that never ran could not be found, in the
/// kubelet's words.
fn finalize(c: &mut ContainerStatus) {
    c.ready = false;
    c.started = false;
    let end = match (&c.state, &c.last_state) {
        (State::Terminated(_), _) => return,
        (State::Waiting { .. }, Some(last)) => last.clone(),
        _ => Terminated {
            exit_code: 137,
            reason: "ContainerStatusUnknown".into(),
            message: Some("The container could not be located when the pod was terminated".into()),
            started_at: None,
            finished_at: Timestamp::now(),
            container_id: None,
        },
    };
    c.state = State::Terminated(end);
}

/// The pod's task: run it until it is stopped, then finish.
pub(super) async fn run(ctx: Arc<PodCtx>) {
    if !ctx.already_final {
        tracing::info!(pod = %ctx.name, namespace = %ctx.namespace, uid = %ctx.uid, "starting pod");
        // The first status: Pending, every container waiting.
        ctx.update(|_| {});
        tokio::select! {
            () = lifecycle(&ctx) => {}
            () = refresh_volumes(&ctx) => {}
        }
    }
    let order = ctx.stop_watch().requested().await;
    ctx.finish(order).await;
}

/// How often a pod's volumes are checked for changes besides when the objects
/// change: what the downward API writes (labels, annotations) changes with
/// the pod.
const VOLUME_RESYNC: Duration = Duration::from_secs(2);

/// Keeps the pod's cluster volumes current while it runs: at once when a
/// ConfigMap or Secret changes, and every [`VOLUME_RESYNC`] for a downward
/// API volume. A pod without such volumes waits on nothing. Never returns.
async fn refresh_volumes(ctx: &PodCtx) {
    let (cluster, downward) = {
        let pod = ctx.pod();
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        (
            volumes.iter().any(|v| Source::of(v).is_some()),
            volumes.iter().any(Source::follows_pod),
        )
    };
    if !cluster {
        return std::future::pending().await;
    }
    let mut changed = ctx.objects.changed();
    loop {
        let resync = async {
            if downward {
                tokio::time::sleep(VOLUME_RESYNC).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = changed.changed() => if r.is_err() { std::future::pending::<()>().await },
            () = resync => {}
        }
        let pod = ctx.pod();
        ctx.projected.refresh(&RenderInputs {
            pod: &pod,
            objects: &ctx.objects,
            allocatable: &ctx.config.allocatable,
        });
    }
}

/// Init containers in order (sidecars started and left running), then the main
/// containers together, until all have stopped for good or the pod is stopped.
async fn lifecycle(ctx: &PodCtx) {
    let pod = ctx.pod();
    let grace = PodCtx::termination_grace(&pod);
    let spec = pod.spec.unwrap_or_default();
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let mut running: FuturesUnordered<ContainerRun<'_>> = FuturesUnordered::new();
    let mut sidecar_stops = Vec::new();

    let inits = spec.init_containers.unwrap_or_default();
    let mut initialized = true;
    for (i, c) in inits.iter().enumerate() {
        let which = Which::Init(i);
        if c.restart_policy.as_deref() == Some("Always") {
            let (tx, rx) = watch::channel(None);
            sidecar_stops.push(tx);
            let stop = Stop::new(ctx.stop.subscribe(), Some(rx));
            running.push(Box::pin(async move {
                (which, container::run(ctx, which, Rule::Always, stop).await)
            }));
            // The next init container starts once the sidecar has started.
            let mut stop = ctx.stop_watch();
            let started = async {
                tokio::select! {
                    _ = ctx.wait_until(|st| st.status.init.get(i).is_some_and(|c| c.started)) => true,
                    _ = stop.requested() => false,
                }
            };
            if !drive(&mut running, started).await {
                initialized = false;
                break;
            }
        } else {
            let rule = Rule::for_init(policy);
            let outcome = drive(
                &mut running,
                container::run(ctx, which, rule, ctx.stop_watch()),
            )
            .await;
            if outcome != Outcome::Exited(0) {
                initialized = false;
                break;
            }
        }
    }

    let mut mains_left = 0;
    if initialized {
        let rule = Rule::for_main(policy);
        for j in 0..spec.containers.len() {
            let which = Which::Main(j);
            mains_left += 1;
            running.push(Box::pin(async move {
                (
                    which,
                    container::run(ctx, which, rule, ctx.stop_watch()).await,
                )
            }));
        }
    }
    if mains_left == 0 {
        stop_sidecars(&sidecar_stops, grace);
    }
    while let Some((which, _)) = running.next().await {
        if matches!(which, Which::Main(_)) {
            mains_left -= 1;
            if mains_left == 0 {
                // Sidecars serve the main containers: when those are done, so are they.
                stop_sidecars(&sidecar_stops, grace);
            }
        }
    }
}

fn stop_sidecars(stops: &[watch::Sender<Option<StopOrder>>], grace: Duration) {
    for tx in stops {
        stop::order(tx, StopKind::Finished, grace);
    }
}

/// Await `fut` while also driving the containers already running.
async fn drive<F: Future>(running: &mut FuturesUnordered<ContainerRun<'_>>, fut: F) -> F::Output {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            Some(_) = running.next(), if !running.is_empty() => {}
        }
    }
}
