//! What the node has to tell the control plane, kept while the link is down:
//! the newest status of each pod (older ones are superseded), finished
//! deletions, and recent Events (bounded; the oldest go first). On reconnect
//! every pod's status is sent again, so the control plane converges.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::wire::{EventReport, Upstream};
use tokio::sync::Notify;

use crate::supervisor::Report;

/// Most Events held while disconnected.
const MAX_EVENTS: usize = 1000;

#[derive(Default)]
struct State {
    /// uid -> (latest status frame, not yet sent).
    statuses: HashMap<String, (Upstream, bool)>,
    terminated: Vec<Upstream>,
    events: VecDeque<EventReport>,
}

/// Reports waiting to be sent.
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a report from the supervisor.
    pub fn push(&self, report: Report) {
        {
            let mut state = self.lock();
            match report {
                Report::Status {
                    namespace,
                    name,
                    uid,
                    status,
                } => {
                    let frame = Upstream::PodStatus {
                        namespace,
                        name,
                        uid: uid.clone(),
                        status,
                    };
                    state.statuses.insert(uid, (frame, true));
                }
                Report::Terminated {
                    namespace,
                    name,
                    uid,
                } => {
                    state.terminated.push(Upstream::PodTerminated {
                        namespace,
                        name,
                        uid,
                    });
                }
                Report::Event(e) => {
                    if state.events.len() >= MAX_EVENTS {
                        state.events.pop_front();
                    }
                    state.events.push_back(EventReport {
                        namespace: e.namespace,
                        pod_name: e.pod_name,
                        pod_uid: e.pod_uid,
                        field_path: e.field_path,
                        event_type: e.event_type.to_string(),
                        reason: e.reason.to_string(),
                        message: e.message,
                    });
                }
            }
        }
        self.notify.notify_one();
    }

    /// A pod is gone: nothing more to say about it.
    pub fn forget(&self, uid: &str) {
        self.lock().statuses.remove(uid);
    }

    /// The control plane's copy of a pod arrived: when its `Ready` differs
    /// from what this node last sent (the node lifecycle controller marked it
    /// not ready while the node was late), the node's status goes again, as
    /// kubelet's status manager reconciles with the API server.
    pub fn reconcile(&self, pod: &Value) {
        let Some(uid) = pod.at("/metadata/uid").and_then(Value::as_str) else {
            return;
        };
        let resend = {
            let mut state = self.lock();
            let Some((Upstream::PodStatus { status, .. }, dirty)) = state.statuses.get_mut(uid)
            else {
                return;
            };
            let stale = !*dirty && ready(status) != pod.get("status").and_then(ready);
            if stale {
                *dirty = true;
            }
            stale
        };
        if resend {
            self.notify.notify_one();
        }
    }

    /// After a reconnect: every status goes again.
    pub fn resend_all(&self) {
        for (_, dirty) in self.lock().statuses.values_mut() {
            *dirty = true;
        }
        self.notify.notify_one();
    }

    /// Waits until there may be something to send.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }

    /// Everything not yet sent: statuses first, then deletions, then Events.
    pub fn drain(&self) -> Vec<Upstream> {
        let mut state = self.lock();
        let mut out = Vec::new();
        for (frame, dirty) in state.statuses.values_mut() {
            if std::mem::take(dirty) {
                out.push(frame.clone());
            }
        }
        for t in std::mem::take(&mut state.terminated) {
            if let Upstream::PodTerminated { uid, .. } = &t {
                let uid = uid.clone();
                state.statuses.remove(&uid);
            }
            out.push(t);
        }
        out.extend(state.events.drain(..).map(Upstream::Event));
        out
    }

    /// Puts back what could not be sent (the link dropped mid-way).
    pub fn requeue(&self, frames: Vec<Upstream>) {
        let mut state = self.lock();
        for frame in frames {
            match frame {
                Upstream::PodStatus { ref uid, .. } => {
                    let uid = uid.clone();
                    state.statuses.entry(uid).or_insert((frame, true)).1 = true;
                }
                Upstream::PodTerminated { .. } => state.terminated.push(frame),
                Upstream::Event(e) => state.events.push_back(e),
                Upstream::Heartbeat => {}
            }
        }
    }
}

/// The status of a pod status's `Ready` condition.
fn ready(status: &Value) -> Option<&str> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?
        .get("status")?
        .as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status(ready: &str) -> Value {
        json!({"phase": "Running", "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": ready},
        ]})
    }

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "web", "uid": "u1"}, "status": status})
    }

    fn outbox_that_sent(ready: &str) -> Outbox {
        let outbox = Outbox::default();
        outbox.push(Report::Status {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            status: status(ready),
        });
        assert_eq!(outbox.drain().len(), 1);
        outbox
    }

    #[test]
    fn a_pod_marked_not_ready_by_the_control_plane_gets_its_status_again() {
        let outbox = outbox_that_sent("True");
        outbox.reconcile(&pod(status("False")));
        let again = outbox.drain();
        assert_eq!(again.len(), 1, "{again:?}");
        let Upstream::PodStatus { status: sent, .. } = &again[0] else {
            panic!("not a status: {again:?}");
        };
        assert_eq!(ready(sent), Some("True"));
        // Once is enough: nothing more until something differs again.
        assert!(outbox.drain().is_empty());
    }

    #[test]
    fn an_agreeing_or_unknown_pod_sends_nothing() {
        let outbox = outbox_that_sent("True");
        outbox.reconcile(&pod(status("True")));
        assert!(outbox.drain().is_empty());
        // A pod this node has not reported on.
        outbox.reconcile(&json!({"metadata": {"uid": "u2"}, "status": status("False")}));
        assert!(outbox.drain().is_empty());
        // No uid at all.
        outbox.reconcile(&json!({"status": {}}));
        assert!(outbox.drain().is_empty());
    }
}
