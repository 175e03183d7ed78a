//! What a connection's watchdog reads: when bytes last moved, whether a
//! request has arrived, and how many are in flight. The connection's I/O
//! ([`Watched`]) and its service update it; neither waits on the other.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// One connection's activity.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` that bytes last moved.
    last_ms: AtomicU64,
    requested: AtomicBool,
    in_flight: AtomicUsize,
}

/// Counts a request in flight until dropped.
pub(super) struct InFlight(Arc<Activity>);

/// The connection's I/O, noting each read and write that moved bytes.
pub(super) struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// A request has arrived: it is in flight until the guard drops.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.requested.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection must be closed unless something happens before:
    /// `head` after opening until the first request arrives, then `idle` after
    /// bytes last moved while no request is in flight; `None` while one is.
    pub(super) fn deadline(&self, head: Duration, idle: Duration) -> Option<Instant> {
        if !self.requested.load(Ordering::Relaxed) {
            return Some(self.opened + head);
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.opened + last + idle)
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<IO> Watched<IO> {
    pub(super) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_first_request_then_idleness() {
        let (head, idle) = (Duration::from_secs(10), Duration::from_secs(90));
        let activity = Activity::new();
        let opened = Instant::now();
        assert_eq!(activity.deadline(head, idle), Some(opened + head));
        tokio::time::advance(Duration::from_secs(3)).await;
        let request = activity.request();
        assert_eq!(activity.deadline(head, idle), None, "a request in flight");
        tokio::time::advance(Duration::from_secs(200)).await;
        drop(request);
        let done = Instant::now();
        assert_eq!(activity.deadline(head, idle), Some(done + idle));
    }
}
