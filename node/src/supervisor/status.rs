//! What the supervisor knows about a pod's containers, and the `PodStatus` it
//! reports: phase, conditions and container statuses, by the kubelet's rules.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod, PodSpec};
use serde_json::{Value, json};
use skiff_api::meta::format_timestamp;

/// A container's current state.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

/// One container's status, as the kubelet keeps it.
#[derive(Debug, Clone)]
pub(super) struct ContainerStatus {
    pub name: String,
    pub image: String,
    /// `sha256:<hex>` once pulled; empty before.
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_state: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
    /// An instance ran before (here, or before this node restarted, as the pod's
    /// earlier status shows), so the next start is a restart.
    pub has_run: bool,
    /// A restartable init container (`restartPolicy: Always`): a sidecar.
    pub sidecar: bool,
}

/// The pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Everything the pod's status is built from.
#[derive(Debug, Clone)]
pub(super) struct PodStatusModel {
    /// The pod's address, from the node's pod CIDR.
    pub pod_ip: Option<std::net::Ipv4Addr>,
    /// The node's address.
    pub host_ip: Option<std::net::IpAddr>,
    pub init: Vec<ContainerStatus>,
    pub main: Vec<ContainerStatus>,
    pub restart_policy: RestartPolicy,
    pub start_time: Timestamp,
    pub qos_class: String,
    /// Deletion (or node shutdown) has begun: no container counts as ready.
    pub terminating: bool,
    /// The pod has stopped for good after its deletion: the phase is final.
    pub terminal: bool,
    /// Once the phase is Succeeded or Failed it never changes.
    final_phase: Option<&'static str>,
    /// Once Initialized is True it stays so.
    initialized: bool,
    /// `(type, status, lastTransitionTime)` of each condition as last reported.
    transitions: Vec<(String, bool, Timestamp)>,
}

impl State {
    pub(super) fn waiting(reason: &str, message: Option<String>) -> Self {
        State::Waiting {
            reason: reason.into(),
            message,
        }
    }
}

impl RestartPolicy {
    pub(super) fn parse(policy: Option<&str>) -> Self {
        match policy {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }
}

impl ContainerStatus {
    fn new(c: &k8s_openapi::api::core::v1::Container, reason: &str, sidecar: bool) -> Self {
        Self {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting {
                reason: reason.into(),
                message: None,
            },
            last_state: None,
            restart_count: 0,
            ready: false,
            started: false,
            has_run: false,
            sidecar,
        }
    }

    /// Move to `state`; leaving a terminated state keeps it as `lastState`.
    pub(super) fn set_state(&mut self, state: State) {
        let old = std::mem::replace(&mut self.state, state);
        if let State::Terminated(t) = old
            && !matches!(self.state, State::Terminated(_))
        {
            self.last_state = Some(t);
        }
    }

    /// Whether this init container has done its part (a sidecar: started).
    fn init_done(&self) -> bool {
        if self.sidecar {
            self.started
        } else {
            matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
        }
    }

    fn to_json(&self, terminating: bool, init: bool) -> Value {
        let ready = if init && !self.sidecar {
            // A completed init container reports ready, as the kubelet does.
            self.init_done()
        } else {
            self.ready && !terminating
        };
        let mut v = json!({
            "name": self.name,
            "state": state_json(&self.state),
            "lastState": self.last_state.as_ref().map_or_else(|| json!({}), |t| json!({"terminated": terminated_json(t)})),
            "ready": ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
        });
        if let Some(id) = &self.container_id {
            v["containerID"] = json!(id);
        }
        v["started"] = json!(self.started && matches!(self.state, State::Running { .. }));
        v
    }
}

impl PodStatusModel {
    /// The model of a pod about to be started on this node, continuing from the
    /// status it already has (restart counts, start time, transition times) so
    /// that a node restart does not reset them.
    pub(super) fn new(pod: &Pod, now: Timestamp) -> Self {
        let default_spec = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        let main_reason = if inits.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let mut model = Self {
            init: inits
                .iter()
                .map(|c| {
                    let sidecar = c.restart_policy.as_deref() == Some("Always");
                    ContainerStatus::new(c, "PodInitializing", sidecar)
                })
                .collect(),
            main: spec
                .containers
                .iter()
                .map(|c| ContainerStatus::new(c, main_reason, false))
                .collect(),
            restart_policy: RestartPolicy::parse(spec.restart_policy.as_deref()),
            start_time: now,
            qos_class: qos_class(spec).into(),
            terminating: false,
            terminal: false,
            final_phase: None,
            initialized: false,
            transitions: Vec::new(),
            pod_ip: None,
            host_ip: None,
        };
        if let Some(status) = &pod.status {
            if let Some(t) = &status.start_time {
                model.start_time = t.0;
            }
            if let Some(q) = &status.qos_class {
                model.qos_class = q.clone();
            }
            for c in status.conditions.iter().flatten() {
                if let Some(t) = &c.last_transition_time {
                    model
                        .transitions
                        .push((c.type_.clone(), c.status == "True", t.0));
                }
            }
            let seed = |ours: &mut [ContainerStatus], theirs: Option<&Vec<_>>| {
                for old in theirs.into_iter().flatten() {
                    let old: &k8s_openapi::api::core::v1::ContainerStatus = old;
                    let Some(c) = ours.iter_mut().find(|c| c.name == old.name) else {
                        continue;
                    };
                    c.restart_count = old.restart_count.max(0);
                    let state = old.state.as_ref();
                    let last = old.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                    let ended = state.and_then(|s| s.terminated.as_ref()).or(last);
                    c.last_state = ended.map(seed_terminated);
                    c.has_run = state.is_some_and(|s| s.running.is_some()) || ended.is_some();
                }
            };
            seed(&mut model.init, status.init_container_statuses.as_ref());
            seed(&mut model.main, status.container_statuses.as_ref());
        }
        model
    }

    /// The pod's phase, by the kubelet's rules (`getPhase`).
    pub(super) fn phase(&self) -> &'static str {
        if let Some(p) = self.final_phase {
            return p;
        }
        if self.terminal {
            // After deletion every container has been made terminated.
            let failed_init = self.init.iter().any(|c| {
                !c.sidecar && matches!(&c.state, State::Terminated(t) if t.exit_code != 0)
            });
            let all_ok = self
                .main
                .iter()
                .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
            return if all_ok && !failed_init {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        let any_main_started = self
            .main
            .iter()
            .any(|c| !matches!(c.state, State::Waiting { .. }) || c.last_state.is_some());
        let (mut pending_init, mut failed_init) = (0, 0);
        for c in &self.init {
            if c.sidecar {
                if !c.init_done() {
                    pending_init += 1;
                }
                continue;
            }
            match &c.state {
                State::Running { .. } => pending_init += 1,
                State::Terminated(t) => failed_init += usize::from(t.exit_code != 0),
                State::Waiting { .. } => match &c.last_state {
                    Some(t) => failed_init += usize::from(t.exit_code != 0),
                    None => pending_init += 1,
                },
            }
        }
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for c in &self.main {
            match &c.state {
                State::Running { .. } => running += 1,
                State::Terminated(t) => {
                    stopped += 1;
                    succeeded += usize::from(t.exit_code == 0);
                }
                State::Waiting { .. } if c.last_state.is_some() => stopped += 1,
                State::Waiting { .. } => waiting += 1,
            }
        }
        let policy = self.restart_policy;
        if failed_init > 0 && policy == RestartPolicy::Never {
            return "Failed";
        }
        if pending_init > 0 && !any_main_started || waiting > 0 {
            return "Pending";
        }
        if running > 0 {
            return "Running";
        }
        if stopped == 0 {
            return "Pending";
        }
        match policy {
            RestartPolicy::Always => "Running",
            _ if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
            RestartPolicy::OnFailure => "Running",
        }
    }

    /// The complete `PodStatus` as JSON, at `now` (for condition transitions).
    /// Takes `&mut self`: it records condition transitions and a final phase.
    pub(super) fn render(&mut self, now: Timestamp) -> Value {
        let phase = self.phase();
        if matches!(phase, "Succeeded" | "Failed") {
            self.final_phase = Some(phase);
        }
        let completed = phase == "Succeeded";

        let incomplete: Vec<&str> = self
            .init
            .iter()
            .filter(|c| !c.init_done())
            .map(|c| c.name.as_str())
            .collect();
        self.initialized |= incomplete.is_empty();
        let initialized = self.initialized;
        let unready: Vec<&str> = self
            .init
            .iter()
            .filter(|c| c.sidecar)
            .chain(&self.main)
            .filter(|c| !c.ready || self.terminating)
            .map(|c| c.name.as_str())
            .collect();
        let ready = unready.is_empty() && !completed;

        let (init_reason, init_message) = if completed {
            (Some("PodCompleted".to_string()), None)
        } else if initialized {
            (None, None)
        } else {
            (
                Some("ContainersNotInitialized".to_string()),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )),
            )
        };
        let (ready_reason, ready_message) = if completed {
            (Some("PodCompleted".to_string()), None)
        } else if ready {
            (None, None)
        } else {
            (
                Some("ContainersNotReady".to_string()),
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            )
        };
        let conditions = [
            ("PodReadyToStartContainers", true, None, None),
            ("Initialized", initialized, init_reason, init_message),
            ("Ready", ready, ready_reason.clone(), ready_message.clone()),
            ("ContainersReady", ready, ready_reason, ready_message),
            ("PodScheduled", true, None, None),
        ];
        let conditions: Vec<Value> = conditions
            .into_iter()
            .map(|(kind, status, reason, message)| {
                let since = self.transition(kind, status, now);
                let mut c = json!({
                    "type": kind,
                    "status": if status { "True" } else { "False" },
                    "lastProbeTime": null,
                    "lastTransitionTime": format_timestamp(since),
                });
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                if let Some(m) = message {
                    c["message"] = json!(m);
                }
                c
            })
            .collect();

        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "startTime": format_timestamp(self.start_time),
        });
        if let Some(ip) = self.host_ip {
            status["hostIP"] = json!(ip.to_string());
            status["hostIPs"] = json!([{"ip": ip.to_string()}]);
        }
        if let Some(ip) = self.pod_ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        if !self.init.is_empty() {
            status["initContainerStatuses"] = self
                .init
                .iter()
                .map(|c| c.to_json(self.terminating, true))
                .collect();
        }
        status["containerStatuses"] = self
            .main
            .iter()
            .map(|c| c.to_json(self.terminating, false))
            .collect();
        status["qosClass"] = json!(self.qos_class);
        status
    }

    /// When condition `kind` last changed to `status`; now if it just did.
    fn transition(&mut self, kind: &str, status: bool, now: Timestamp) -> Timestamp {
        match self.transitions.iter_mut().find(|(k, _, _)| k == kind) {
            Some((_, s, t)) if *s == status => *t,
            Some(entry) => {
                entry.1 = status;
                entry.2 = now;
                now
            }
            None => {
                self.transitions.push((kind.to_string(), status, now));
                now
            }
        }
    }
}

fn state_json(state: &State) -> Value {
    match state {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        State::Running { started_at } => {
            json!({"running": {"startedAt": format_timestamp(*started_at)}})
        }
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({"exitCode": t.exit_code, "reason": t.reason});
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    if let Some(s) = t.started_at {
        v["startedAt"] = json!(format_timestamp(s));
    }
    v["finishedAt"] = json!(format_timestamp(t.finished_at));
    if let Some(id) = &t.container_id {
        v["containerID"] = json!(id);
    }
    v
}

fn seed_terminated(t: &ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| s.0),
        finished_at: t.finished_at.as_ref().map_or_else(Timestamp::now, |f| f.0),
        container_id: t.container_id.clone(),
    }
}

/// The pod's QoS class from its containers' requests and limits.
fn qos_class(spec: &PodSpec) -> &'static str {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.as_ref();
        let limits = res.and_then(|r| r.limits.as_ref());
        let requests = res.and_then(|r| r.requests.as_ref());
        for name in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(name));
            let request = requests.and_then(|r| r.get(name));
            any |= limit.is_some() || request.is_some();
            // A request defaults to its limit.
            let same = match (limit, request) {
                (Some(l), Some(r)) => l.0 == r.0,
                (Some(_), None) => true,
                _ => false,
            };
            guaranteed &= same;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn model(policy: &str, inits: usize, mains: usize) -> PodStatusModel {
        let c = |n: String| json!({"name": n, "image": "x"});
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "restartPolicy": policy,
                "initContainers": (0..inits).map(|i| c(format!("i{i}"))).collect::<Vec<_>>(),
                "containers": (0..mains).map(|i| c(format!("c{i}"))).collect::<Vec<_>>(),
            },
        }));
        PodStatusModel::new(&p, Timestamp::now())
    }

    fn ended(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: Timestamp::now(),
            container_id: None,
        }
    }

    fn running() -> State {
        State::Running {
            started_at: Timestamp::now(),
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let mut m = model("Always", 1, 2);
        assert_eq!(m.phase(), "Pending");
        m.init[0].state = running();
        assert_eq!(m.phase(), "Pending", "init running");
        m.init[0].state = State::Terminated(ended(0));
        m.main[0].state = running();
        assert_eq!(m.phase(), "Pending", "one main container still waiting");
        m.main[1].state = running();
        assert_eq!(m.phase(), "Running");
        // Crash looping: waiting with a last state counts as stopped, and Always
        // keeps the pod Running.
        m.main[1].state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        };
        m.main[1].last_state = Some(ended(1));
        m.main[0].state = State::Terminated(ended(1));
        assert_eq!(m.phase(), "Running");

        let mut m = model("Never", 0, 2);
        m.main[0].state = State::Terminated(ended(0));
        m.main[1].state = running();
        assert_eq!(m.phase(), "Running");
        m.main[1].state = State::Terminated(ended(0));
        assert_eq!(m.phase(), "Succeeded");
        let mut m = model("Never", 0, 2);
        m.main[0].state = State::Terminated(ended(0));
        m.main[1].state = State::Terminated(ended(2));
        assert_eq!(m.phase(), "Failed");
        let mut m = model("OnFailure", 0, 1);
        m.main[0].state = State::Terminated(ended(1));
        assert_eq!(m.phase(), "Running", "OnFailure restarts it");

        // A failed init container fails a Never pod, and keeps others Pending.
        let mut m = model("Never", 1, 1);
        m.init[0].state = State::Terminated(ended(1));
        assert_eq!(m.phase(), "Failed");
        let mut m = model("OnFailure", 1, 1);
        m.init[0].state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        };
        m.init[0].last_state = Some(ended(1));
        assert_eq!(m.phase(), "Pending");

        // After deletion: by exit codes.
        let mut m = model("Always", 0, 1);
        m.main[0].state = State::Terminated(ended(0));
        m.terminal = true;
        assert_eq!(m.phase(), "Succeeded");
        m.main[0].state = State::Terminated(ended(137));
        assert_eq!(m.phase(), "Failed");
    }

    #[test]
    fn final_phase_sticks() {
        let mut m = model("Never", 0, 1);
        m.main[0].state = State::Terminated(ended(0));
        assert_eq!(m.render(Timestamp::now())["phase"], "Succeeded");
        m.main[0].state = running();
        assert_eq!(m.render(Timestamp::now())["phase"], "Succeeded");
    }

    #[test]
    fn conditions_and_container_statuses() {
        let mut m = model("Always", 1, 2);
        let t0 = Timestamp::now();
        let s = m.render(t0);
        let cond = |s: &Value, kind: &str| {
            s["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == kind).cloned())
                .expect("condition")
        };
        assert_eq!(cond(&s, "Initialized")["status"], "False");
        assert_eq!(
            cond(&s, "Initialized")["message"],
            "containers with incomplete status: [i0]"
        );
        assert_eq!(
            cond(&s, "Ready")["message"],
            "containers with unready status: [c0 c1]"
        );
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(s["containerStatuses"][1]["lastState"], json!({}));
        assert_eq!(s["qosClass"], "BestEffort");
        // The whole status is a valid PodStatus.
        let _: k8s_openapi::api::core::v1::PodStatus =
            serde_json::from_value(s.clone()).expect("a PodStatus");

        m.init[0].state = State::Terminated(ended(0));
        for c in &mut m.main {
            c.state = running();
            c.ready = true;
            c.started = true;
        }
        let later = t0 + jiff::SignedDuration::from_secs(5);
        let s = m.render(later);
        assert_eq!(s["phase"], "Running");
        assert_eq!(cond(&s, "Ready")["status"], "True");
        assert_eq!(
            cond(&s, "Ready")["lastTransitionTime"],
            format_timestamp(later)
        );
        assert_eq!(
            cond(&s, "PodScheduled")["lastTransitionTime"],
            format_timestamp(t0),
            "unchanged conditions keep their time"
        );
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert_eq!(s["containerStatuses"][0]["started"], true);

        m.terminating = true;
        let s = m.render(later);
        assert_eq!(cond(&s, "Ready")["status"], "False");
        assert_eq!(cond(&s, "ContainersReady")["status"], "False");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
    }

    #[test]
    fn restart_counts_continue_from_the_earlier_status() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
            "status": {
                "startTime": "2024-01-02T03:04:05Z",
                "containerStatuses": [{
                    "name": "a", "image": "x", "imageID": "", "ready": true, "restartCount": 4,
                    "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-01-02T03:04:05Z"}},
                }],
            },
        }));
        let mut m = PodStatusModel::new(&p, Timestamp::now());
        assert_eq!(m.main[0].restart_count, 4);
        assert!(m.main[0].has_run);
        assert_eq!(m.main[0].last_state.as_ref().map(|t| t.exit_code), Some(1));
        assert_eq!(m.main[1].restart_count, 0);
        assert!(!m.main[1].has_run);
        assert_eq!(
            m.render(Timestamp::now())["startTime"],
            "2024-01-02T03:04:05Z"
        );
    }

    #[test]
    fn qos_classes() {
        let spec = |res: Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [{"name": "c", "resources": res}]}))
                .expect("spec")
        };
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"limits": {"cpu": "1", "memory": "64Mi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(json!({"requests": {"memory": "64Mi"}}))),
            "Burstable"
        );
    }
}
