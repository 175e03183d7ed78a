//! A pod's log: stdout and stderr split into timestamped lines, kept in a bounded ring
//! and, optionally, appended to a size-rotated file.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::io::AsyncWrite;
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
    file: Option<RotatingFile>,
}

/// A bounded, shared ring buffer of log lines. Cloning shares the buffer.
///
/// When the total text exceeds the capacity, the oldest lines are dropped.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

impl LogBuffer {
    /// A buffer that keeps about `capacity_bytes` of text.
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            inner: Arc::default(),
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
        for raw in done {
            self.push_line(&mut inner, stream, raw);
        }
    }

    /// Move any unterminated output into the ring (at exit).
    pub fn flush(&self) {
        let mut inner = self.lock();
        let out = std::mem::take(&mut inner.partial_out);
        let err = std::mem::take(&mut inner.partial_err);
        if !out.is_empty() {
            self.push_line(&mut inner, LogStream::Stdout, out);
        }
        if !err.is_empty() {
            self.push_line(&mut inner, LogStream::Stderr, err);
        }
    }

    fn push_line(&self, inner: &mut Inner, stream: LogStream, raw: Vec<u8>) {
        let line = LogLine {
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
