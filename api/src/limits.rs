//! Limits every listener facing the network applies, so that a client that
//! sends slowly (slowloris), idles, or opens connections by the thousand costs
//! a bounded amount and is closed in bounded time. The node's NodePort and
//! Ingress listeners use [`ListenerLimits::default`]; the API server's listener
//! uses the same numbers.

use std::time::Duration;

/// How long a connection may take and how many may be open on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A request's head (request line and headers) must have arrived this long
    /// after the server started waiting for it, or the connection is closed.
    /// Covers a connection's first request (whatever the protocol, including
    /// the HTTP/2 preface) and, on HTTP/1, every later one, which makes it
    /// HTTP/1's keep-alive idle limit too. Go servers commonly use 10 s
    /// (`ReadHeaderTimeout`); a test must see slowloris connections closed
    /// within 30 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight on which nothing was read or
    /// written for this long is closed (HTTP/2 connections, which have no head
    /// timeout between requests). 90 s, as the Kubernetes API server's
    /// `IdleTimeout` and Go's `http.DefaultTransport` keep-alive.
    pub idle_timeout: Duration,
    /// Most connections open at once on one listener; one more is closed as
    /// soon as it is accepted, never queued.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 4096,
        }
    }
}
