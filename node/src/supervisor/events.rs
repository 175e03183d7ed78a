//! The pod's line to the agent: status reports and Events, which can be muted
//! once the pod's object is gone (nobody is left to tell).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::{PodEvent, Report};

/// Sends one pod's reports.
#[derive(Debug)]
pub(super) struct Reporter {
    tx: mpsc::UnboundedSender<Report>,
    namespace: String,
    name: String,
    uid: String,
    /// No more status reports (node shutdown, or the object is gone).
    status_muted: AtomicBool,
    /// No more reports of any kind (the object is gone).
    muted: AtomicBool,
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Normal,
    Warning,
}

impl Reporter {
    pub(super) fn new(
        tx: mpsc::UnboundedSender<Report>,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Self {
        Self {
            tx,
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            status_muted: AtomicBool::new(false),
            muted: AtomicBool::new(false),
        }
    }

    fn send(&self, report: Report) {
        // The agent going away is not the pod's problem: it keeps running.
        if self.tx.send(report).is_err() {
            tracing::trace!(pod = %self.name, "report dropped: nobody is listening");
        }
    }

    pub(super) fn mute(&self) {
        self.muted.store(true, Ordering::SeqCst);
        self.status_muted.store(true, Ordering::SeqCst);
    }

    pub(super) fn mute_status(&self) {
        self.status_muted.store(true, Ordering::SeqCst);
    }

    pub(super) fn status(&self, status: serde_json::Value) {
        if self.status_muted.load(Ordering::SeqCst) {
            return;
        }
        self.send(Report::Status {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            status,
        });
    }

    pub(super) fn event(
        &self,
        field_path: Option<String>,
        event_type: EventType,
        reason: &'static str,
        message: String,
    ) {
        if self.muted.load(Ordering::SeqCst) {
            return;
        }
        tracing::debug!(pod = %self.name, namespace = %self.namespace, reason, %message, "pod event");
        self.send(Report::Event(PodEvent {
            namespace: self.namespace.clone(),
            pod_name: self.name.clone(),
            pod_uid: self.uid.clone(),
            field_path,
            event_type: match event_type {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            },
            reason,
            message,
        }));
    }

    pub(super) fn terminated(&self) {
        if self.muted.load(Ordering::SeqCst) {
            return;
        }
        self.send(Report::Terminated {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        });
    }
}
