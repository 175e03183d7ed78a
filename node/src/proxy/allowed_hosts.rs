//! The outside hosts a pod may call, from its `skiff.dev/allowed-outbound-hosts`
//! annotation: entries separated by commas or whitespace, each
//! `[scheme://]host[:port]`. `host` is a name or address, `*.example.com`
//! (any name under example.com) or `*` (any host); no `scheme` allows http and
//! https; no `port` (or `:*`) allows any port.

use http::Uri;

/// The parsed annotation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct AllowedHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// `http` or `https`; `None` allows both.
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
    Exact(String),
}

impl AllowedHosts {
    /// The entries of `annotation`, and the ones that are not
    /// `[scheme://]host[:port]` (left out).
    pub(super) fn parse(annotation: &str) -> (AllowedHosts, Vec<String>) {
        let mut entries = Vec::new();
        let mut rejected = Vec::new();
        for raw in annotation
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            match Entry::parse(raw) {
                Some(entry) => entries.push(entry),
                None => rejected.push(raw.to_string()),
            }
        }
        (AllowedHosts { entries }, rejected)
    }

    /// Whether a request to `uri` may go out.
    pub(super) fn allows(&self, uri: &Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        // `Uri::host` keeps an IPv6 address's brackets.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches([']', '.'])
            .to_ascii_lowercase();
        let https = uri.scheme_str() == Some("https");
        let scheme = if https { "https" } else { "http" };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        self.entries.iter().any(|e| {
            e.scheme.as_deref().is_none_or(|s| s == scheme)
                && e.port.is_none_or(|p| p == port)
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
                    HostPattern::Exact(h) => *h == host,
                }
        })
    }
}

impl Entry {
    fn parse(raw: &str) -> Option<Entry> {
        let lower = raw.to_ascii_lowercase();
        let (scheme, rest) = match lower.split_once("://") {
            Some((s @ ("http" | "https"), rest)) => (Some(s.to_string()), rest),
            Some(_) => return None,
            None => (None, lower.as_str()),
        };
        let rest = rest.trim_end_matches('/');
        // `[v6]:port`, `host:port` or a bare host.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => match v6.split_once(']')? {
                (host, "") => (host, None),
                (host, after) => (host, port(after.strip_prefix(':')?)?),
            },
            None => match rest.split_once(':') {
                Some((host, p)) => (host, port(p)?),
                None => (rest, None),
            },
        };
        let host = match host {
            "" => return None,
            "*" => HostPattern::Any,
            h => match h.strip_prefix("*.") {
                Some(domain) if valid_name(domain) => HostPattern::Suffix(format!(".{domain}")),
                Some(_) => return None,
                None if valid_name(h) || h.parse::<std::net::IpAddr>().is_ok() => {
                    HostPattern::Exact(h.trim_end_matches('.').to_string())
                }
                None => return None,
            },
        };
        Some(Entry { scheme, host, port })
    }
}

/// `*` (any port) or a port number; `None` when it is neither.
fn port(text: &str) -> Option<Option<u16>> {
    match text {
        "*" => Some(None),
        p => p.parse::<u16>().ok().map(Some),
    }
}

/// A DNS name: labels of letters, digits, `-` and `_`.
fn valid_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(annotation: &str, uri: &str) -> bool {
        let (allowed, rejected) = AllowedHosts::parse(annotation);
        assert!(rejected.is_empty(), "{rejected:?}");
        allowed.allows(&uri.parse().expect("uri"))
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allows("", "http://example.com/"));
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard() {
        assert!(allows("example.com", "http://example.com/a"));
        assert!(allows("example.com", "https://EXAMPLE.com:8443/"));
        assert!(!allows("example.com", "http://api.example.com/"));
        assert!(allows("*.example.com", "http://api.example.com/"));
        assert!(allows("*.example.com", "http://a.b.example.com/"));
        assert!(!allows("*.example.com", "http://example.com/"));
        assert!(!allows("*.example.com", "http://badexample.com/"));
        assert!(allows("*", "http://anything.test/"));
        assert!(allows("10.0.0.1, other.test", "http://10.0.0.1/"));
    }

    #[test]
    fn schemes_and_ports_narrow_an_entry() {
        assert!(allows("https://example.com", "https://example.com/"));
        assert!(!allows("https://example.com", "http://example.com/"));
        assert!(allows("example.com:8080", "http://example.com:8080/"));
        assert!(!allows("example.com:8080", "http://example.com/"));
        assert!(allows("http://example.com:80", "http://example.com/"));
        assert!(allows("example.com:*", "http://example.com:9/"));
        assert!(allows("[::1]:8080", "http://[::1]:8080/"));
        assert!(allows(
            "127.0.0.1:8080 example.org",
            "http://127.0.0.1:8080/"
        ));
    }

    #[test]
    fn malformed_entries_are_reported() {
        let (allowed, rejected) = AllowedHosts::parse("ftp://x, ok.test, bad host!, a:99999");
        assert_eq!(rejected, ["ftp://x", "host!", "a:99999"]);
        assert!(allowed.allows(&"http://ok.test/".parse().expect("uri")));
        // "bad" alone is a valid host name.
        assert!(allowed.allows(&"http://bad/".parse().expect("uri")));
    }
}
