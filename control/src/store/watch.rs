//! Watch: the event log replayed from a revision, then live changes.
//!
//! A watcher subscribes to the live fan-out first and then reads the log, so no
//! change falls between the two; duplicates are dropped by revision. A watcher
//! that falls behind the live buffer goes back to the log, and one that falls
//! behind the compaction window ends with [`StoreError::Compacted`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::{Event, KeyPrefix, Result, Revision, StoreError, WatchStream};

/// Events read from the log per step of a catch-up.
const CATCH_UP_BATCH: usize = 1024;

/// One item of a watch stream.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A change under the watched prefix.
    Event(Arc<Event>),
    /// Every change up to this revision has been delivered (a bookmark point).
    Progress(Revision),
}

/// What a backend offers watchers.
pub(super) trait EventLog: Send + Sync + 'static {
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>>;
    /// The latest revision whose events have all been published live.
    fn committed(&self) -> watch::Receiver<Revision>;
    fn compacted(&self) -> Revision;
    /// Up to `max` logged events under `prefix` after `after`, and the revision
    /// the scan covered (every event up to it was considered).
    fn read_after(
        &self,
        prefix: &KeyPrefix,
        after: Revision,
        max: usize,
    ) -> Result<(Vec<Arc<Event>>, Revision)>;
}

struct Watcher<L> {
    log: Arc<L>,
    prefix: KeyPrefix,
    /// Every event up to this revision has been delivered or skipped.
    last: Revision,
    backlog: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    committed: watch::Receiver<Revision>,
    catching_up: bool,
    progress: Option<Duration>,
    done: bool,
}

pub(super) fn watch_stream<L: EventLog>(
    log: Arc<L>,
    prefix: KeyPrefix,
    from: Revision,
    progress: Option<Duration>,
) -> Result<WatchStream> {
    let live = log.subscribe();
    let committed = log.committed();
    let oldest = log.compacted();
    if from < oldest {
        return Err(StoreError::Compacted {
            requested: from,
            oldest,
        });
    }
    let watcher = Watcher {
        log,
        prefix,
        last: from,
        backlog: VecDeque::new(),
        live,
        committed,
        catching_up: true,
        progress,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        watcher,
        |mut w| async move {
            if w.done {
                return None;
            }
            let item = w.next().await;
            if item.is_err() {
                w.done = true;
            }
            Some((item, w))
        },
    )))
}

impl<L: EventLog> Watcher<L> {
    async fn next(&mut self) -> Result<WatchItem> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Ok(WatchItem::Event(event));
            }
            if self.catching_up {
                let (events, scanned) =
                    self.log
                        .read_after(&self.prefix, self.last, CATCH_UP_BATCH)?;
                self.catching_up = events.len() >= CATCH_UP_BATCH;
                self.last = self.last.max(scanned);
                self.backlog.extend(events);
                continue;
            }
            let idle = async {
                match self.progress {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) => {
                        if let Some(event) = self.admit(event) {
                            return Ok(WatchItem::Event(event));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
                },
                _ = idle => {
                    // Everything up to `committed` has been sent live; take what is
                    // buffered, and then `committed` is a safe bookmark.
                    let committed = *self.committed.borrow_and_update();
                    loop {
                        match self.live.try_recv() {
                            Ok(event) => {
                                if let Some(event) = self.admit(event) {
                                    self.backlog.push_back(event);
                                }
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                self.catching_up = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if self.backlog.is_empty() && !self.catching_up {
                        self.last = self.last.max(committed);
                        return Ok(WatchItem::Progress(self.last));
                    }
                }
            }
        }
    }

    /// Drops duplicates and events outside the prefix; advances `last`.
    fn admit(&mut self, event: Arc<Event>) -> Option<Arc<Event>> {
        if event.revision <= self.last {
            return None;
        }
        self.last = event.revision;
        self.prefix.contains(&event.key).then_some(event)
    }
}
