//! The headers a proxy hop changes: hop-by-hop ones dropped (RFC 9110 7.6.1)
//! and the usual forwarded headers added (`X-Forwarded-*`, RFC 7239
//! `Forwarded`).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop, never forwarded (RFC 9110 7.6.1).
pub(super) fn hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239), appending to
/// what earlier proxies set.
pub(super) fn forwarded_headers(headers: &mut HeaderMap, uri: &http::Uri, client: IpAddr) {
    hop_by_hop(headers);
    // HTTP/2 carries the host in `:authority`, which the pod sees as `Host`.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    if let Some(host) = &host
        && !headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert(header::HOST, v);
    }
    append(headers, "x-forwarded-for", client.to_string());
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = &host
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert("x-forwarded-host", v);
    }
    let node = match client {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    let mut forwarded = format!("for={node};proto=http");
    if let Some(host) = &host {
        forwarded.push_str(&format!(";host=\"{host}\""));
    }
    append(headers, "forwarded", forwarded);
}

/// Appends `value` to a list header (`name` in lower case).
fn append(headers: &mut HeaderMap, name: &'static str, value: String) {
    let joined = match headers.get(name).and_then(|v| v.to_str().ok()) {
        Some(old) => format!("{old}, {value}"),
        None => value,
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_and_strip_hop_by_hop() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("shop.example"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        let uri: http::Uri = "/cart".parse().unwrap();
        forwarded_headers(&mut headers, &uri, "10.1.2.3".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "shop.example");
        assert_eq!(
            headers["forwarded"],
            "for=10.1.2.3;proto=http;host=\"shop.example\""
        );
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key("x-secret"));
    }

    #[test]
    fn http2_authority_becomes_host() {
        let mut headers = HeaderMap::new();
        let uri: http::Uri = "http://svc.example:30080/x".parse().unwrap();
        forwarded_headers(&mut headers, &uri, "::1".parse().unwrap());
        assert_eq!(headers[header::HOST], "svc.example:30080");
        assert_eq!(
            headers["forwarded"],
            "for=\"[::1]\";proto=http;host=\"svc.example:30080\""
        );
    }
}
