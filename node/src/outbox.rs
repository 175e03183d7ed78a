//! What the node has to tell the control plane, kept while the link is down:
//! the newest status of each pod (older ones are superseded), finished
//! deletions, and recent Events (bounded; the oldest go first). On reconnect
//! every pod's status is sent again, so the control plane converges.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

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
