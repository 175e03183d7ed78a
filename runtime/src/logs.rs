//! A pod's log: stdout and stderr split into timestamped, numbered lines, kept in a
//! bounded ring and, optionally, appended to a size-rotated file. Readers can follow
//! it (`kubectl logs -f`): every line has a sequence number, [`LogBuffer::changed`]
//! wakes them when lines arrive, and [`LogBuffer::close`] ends them when the
//! container instance that wrote the log has ended.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

mod file;

use file::RotatingFile;

/// Longest line kept; longer output is split into several lines.
const MAX_LINE: usize = 16 * 1024;

/// Which stream a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// One line of a pod's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Position in the buffer's output: the first line is 1, each next one adds 1
    /// (lines dropped from the ring keep their numbers, so a gap shows a loss).
    pub seq: u64,
    /// When the line was completed.
    pub time: SystemTime,
    /// Where it was written.
    pub stream: LogStream,
    /// The text, without its newline (invalid UTF-8 replaced).
    pub text: String,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    bytes: usize,
    partial_out: Vec<u8>,
    partial_err: Vec<u8>,
    dropped: u64,
    /// Sequence number of the last line pushed (0: none yet).
    last_seq: u64,
    closed: bool,
    file: Option<RotatingFile>,
}

/// A bounded, shared ring buffer of log lines. Cloning shares the buffer.
///
/// When the total text exceeds the capacity, the oldest lines are dropped.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Inner>>,
    /// Wakes followers on a new line and on close (`notify_waiters`: a follower
    /// registers with [`LogBuffer::changed`] before it reads, so it misses nothing).
    notify: Arc<Notify>,
    capacity: usize,
}

impl LogBuffer {
    /// A buffer that keeps about `capacity_bytes` of text.
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            inner: Arc::default(),
            notify: Arc::new(Notify::new()),
            capacity: capacity_bytes.max(1),
        }
    }

    /// Also append every line to the file at `path` (created if missing, appended
    /// to if present), as `<RFC 3339 time> <stdout|stderr> <text>`. Before a line
    /// would take the file past `max_bytes`, the file is renamed to `<path>.1`,
    /// older files shift up (`.1` to `.2`, ...) keeping at most `keep` of them, and a
    /// new file is started; with `keep == 0` the old file is deleted instead.
    /// A line longer than `max_bytes` gets a file of its own.
    ///
    /// If writing the file fails later, the error is logged and the file is
    /// abandoned; the ring keeps working.
    pub fn with_file(self, path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let file = RotatingFile::open(path, max_bytes, keep)?;
        self.lock().file = Some(file);
        Ok(self)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the ring consistent enough to read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lines currently held, oldest first (partial lines not included).
    pub fn lines(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    /// The held lines numbered after `seq`, oldest first: what a follower that has
    /// seen up to `seq` has not seen yet (`lines_since(0)` is every held line).
    /// Lines already dropped from the ring are skipped.
    pub fn lines_since(&self, seq: u64) -> Vec<LogLine> {
        let inner = self.lock();
        // Numbers are consecutive in the ring, so the first one to return is found
        // by arithmetic rather than a scan.
        let first = inner.lines.front().map_or(0, |l| l.seq);
        let skip =
            usize::try_from(seq.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        inner.lines.iter().skip(skip).cloned().collect()
    }

    /// The sequence number of the newest line (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// Resolves when a line arrives or the buffer is closed after this call (at
    /// once if it is closed already). The wait is registered when `changed` is
    /// called, not when the future is first polled, so a follower calls it, then
    /// reads with [`LogBuffer::lines_since`], then awaits it, and never misses a line:
    ///
    /// ```text
    /// let mut seen = 0;
    /// loop {
    ///     let changed = log.changed();
    ///     let lines = log.lines_since(seen);
    ///     // ... send lines, seen = last seq ...
    ///     if lines.is_empty() && log.is_closed() { break }
    ///     changed.await;
    /// }
    /// ```
    pub fn changed(&self) -> impl Future<Output = ()> + Send + '_ {
        let notified = self.notify.notified();
        let closed = self.is_closed();
        async move {
            if !closed {
                notified.await;
            }
        }
    }

    /// The lines after `seq`, waiting for at least one; empty once the buffer is
    /// closed and holds nothing newer (the follower is done).
    pub async fn next_lines(&self, seq: u64) -> Vec<LogLine> {
        loop {
            let changed = self.changed();
            let lines = self.lines_since(seq);
            if !lines.is_empty() || self.is_closed() {
                return lines;
            }
            changed.await;
        }
    }

    /// Mark the log complete: the instance that wrote it has ended. Unterminated
    /// output is flushed into the ring, the file (if any) is released, and
    /// followers wake up and find it closed. Later writes still enter the ring.
    pub fn close(&self) {
        self.flush();
        {
            let mut inner = self.lock();
            inner.closed = true;
            inner.file = None;
        }
        self.notify.notify_waiters();
    }

    /// Whether [`LogBuffer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The held lines as text, one per line, without timestamps.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in self.lock().lines.iter() {
            out.push_str(&l.text);
            out.push('\n');
        }
        out
    }

    /// How many lines were dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Append raw output of `stream`; complete lines enter the ring.
    pub fn write(&self, stream: LogStream, bytes: &[u8]) {
        let mut inner = self.lock();
        let mut done = Vec::new();
        {
            let partial = match stream {
                LogStream::Stdout => &mut inner.partial_out,
                LogStream::Stderr => &mut inner.partial_err,
            };
            for &b in bytes {
                if b == b'\n' {
                    done.push(std::mem::take(partial));
                } else {
                    partial.push(b);
                    if partial.len() >= MAX_LINE {
                        done.push(std::mem::take(partial));
                    }
                }
            }
        }
        let any = !done.is_empty();
        for raw in done {
            self.push_line(&mut inner, stream, raw);
        }
        drop(inner);
        if any {
            self.notify.notify_waiters();
        }
    }

    /// Move any unterminated output into the ring (at exit).
    pub fn flush(&self) {
        let mut inner = self.lock();
        let out = std::mem::take(&mut inner.partial_out);
        let err = std::mem::take(&mut inner.partial_err);
        let any = !out.is_empty() || !err.is_empty();
        if !out.is_empty() {
            self.push_line(&mut inner, LogStream::Stdout, out);
        }
        if !err.is_empty() {
            self.push_line(&mut inner, LogStream::Stderr, err);
        }
        drop(inner);
        if any {
            self.notify.notify_waiters();
        }
    }

    fn push_line(&self, inner: &mut Inner, stream: LogStream, raw: Vec<u8>) {
        inner.last_seq += 1;
        let line = LogLine {
            seq: inner.last_seq,
            time: SystemTime::now(),
            stream,
            text: String::from_utf8_lossy(&raw).into_owned(),
        };
        if let Some(file) = &mut inner.file
            && let Err(e) = file.append(&line)
        {
            tracing::warn!(error = %e, "pod log file failed; keeping the log in memory only");
            inner.file = None;
        }
        inner.bytes += line.text.len();
        inner.lines.push_back(line);
        while inner.bytes > self.capacity {
            match inner.lines.pop_front() {
                Some(old) => {
                    inner.bytes -= old.text.len();
                    inner.dropped += 1;
                }
                None => break,
            }
        }
    }

    /// A WASI output stream writing into this buffer as `stream`.
    pub(crate) fn sink(&self, stream: LogStream) -> LogSink {
        LogSink {
            buffer: self.clone(),
            stream,
        }
    }
}

/// The guest side of a [`LogBuffer`]: given to WASI as stdout or stderr.
#[derive(Debug, Clone)]
pub(crate) struct LogSink {
    buffer: LogBuffer,
    stream: LogStream,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.buffer.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_bounds_size() {
        let log = LogBuffer::new(10);
        log.write(LogStream::Stdout, b"tick 1\ntick");
        log.write(LogStream::Stdout, b" 2\ntick 3\n");
        assert_eq!(log.text(), "tick 3\n");
        assert_eq!(log.dropped(), 2);
        log.write(LogStream::Stderr, b"oops");
        log.flush();
        assert_eq!(
            log.lines().last().map(|l| l.stream),
            Some(LogStream::Stderr)
        );
    }

    #[test]
    fn lines_are_numbered_from_one_and_read_since_a_number() {
        let log = LogBuffer::new(20);
        assert_eq!(log.last_seq(), 0);
        assert!(log.lines_since(0).is_empty());
        log.write(LogStream::Stdout, b"one\ntwo\nthree\n");
        let seqs = |v: Vec<LogLine>| v.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(log.lines()), [1, 2, 3]);
        assert_eq!(seqs(log.lines_since(1)), [2, 3]);
        assert_eq!(seqs(log.lines_since(3)), Vec::<u64>::new());
        assert_eq!(seqs(log.lines_since(99)), Vec::<u64>::new());
        // Past the capacity, old lines go but numbers keep counting.
        log.write(LogStream::Stderr, b"four four four\nfive\n");
        assert_eq!(seqs(log.lines()), [4, 5]);
        assert_eq!(seqs(log.lines_since(0)), [4, 5]);
        assert_eq!(seqs(log.lines_since(2)), [4, 5]);
        assert_eq!(seqs(log.lines_since(4)), [5]);
        assert_eq!(log.last_seq(), 5);
        assert_eq!(log.lines_since(4)[0].text, "five");
    }

    #[tokio::test]
    async fn followers_wake_on_new_lines_and_end_on_close() {
        let log = LogBuffer::new(1 << 10);
        let follower = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                let mut got = Vec::new();
                loop {
                    let lines = log.next_lines(seen).await;
                    let Some(last) = lines.last() else { break };
                    seen = last.seq;
                    got.extend(lines.into_iter().map(|l| l.text));
                }
                got
            })
        };
        for n in 0..50 {
            log.write(LogStream::Stdout, format!("line {n}\n").as_bytes());
            if n % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        log.write(LogStream::Stdout, b"no newline");
        assert!(!log.is_closed());
        log.close();
        assert!(log.is_closed());
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), follower)
            .await
            .expect("follower ends after close")
            .expect("join");
        assert_eq!(got.len(), 51);
        assert_eq!(got[0], "line 0");
        assert_eq!(got[50], "no newline", "close flushes the partial line");
        // A closed buffer's `changed` is ready at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), log.changed())
            .await
            .expect("changed resolves on a closed buffer");
    }

    #[tokio::test]
    async fn changed_registers_before_it_is_polled() {
        let log = LogBuffer::new(1 << 10);
        let changed = log.changed();
        log.write(LogStream::Stdout, b"between\n");
        tokio::time::timeout(std::time::Duration::from_secs(1), changed)
            .await
            .expect("a line written after `changed` was called wakes it");
    }

    #[test]
    fn file_rotates_by_size_and_keeps_the_newest_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pod.log");
        let max = 1000u64;
        let log = LogBuffer::new(1 << 20)
            .with_file(&path, max, 2)
            .expect("open log file");
        // Each line is about 50 bytes with its timestamp: 95 lines rotate 4 times.
        for n in 0..95 {
            log.write(LogStream::Stdout, format!("line {n:04}\n").as_bytes());
        }
        log.write(LogStream::Stderr, b"last words\n");
        let rotated = |n: usize| dir.path().join(format!("pod.log.{n}"));
        for p in [path.clone(), rotated(1), rotated(2)] {
            let len = std::fs::metadata(&p).expect("log file exists").len();
            assert!(len > 0 && len <= max, "{}: {len} bytes", p.display());
        }
        assert!(!rotated(3).exists(), "keeps only 2 rotated files");
        let current = std::fs::read_to_string(&path).expect("read current");
        let last = current.lines().last().expect("a line");
        assert!(last.ends_with(" stderr last words"), "{last}");
        assert!(last.starts_with("20") && last.contains('T'), "{last}");
        assert!(current.contains("stdout line 0094"), "{current}");
        // Older lines are in .1, older still in .2, the oldest are gone.
        let one = std::fs::read_to_string(rotated(1)).expect("read .1");
        let two = std::fs::read_to_string(rotated(2)).expect("read .2");
        let first = |s: &str| s.lines().next().map(str::to_owned).unwrap_or_default();
        assert!(first(&two) < first(&one) && first(&one) < first(&current));
        assert!(!current.contains("line 0000") && !one.contains("line 0000"));
        assert!(!two.contains("line 0000"), "oldest lines rotated away");
        // The ring still has everything.
        assert_eq!(log.lines().len(), 96);
    }
}
