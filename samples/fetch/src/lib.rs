//! `fetch`: an HTTP pod that makes one outbound request. `GET /?url=<url>` (the
//! URL percent-encoded or not) sends `GET <url>` through `wasi:http/outgoing-handler`
//! and answers `200` with `<status>\n<body>` of what came back; if the host refuses
//! or the request fails, it answers `502` with `fetch failed: <error>`. Without
//! `url` it answers `400`; `/healthz` answers `200`. It shows that outbound HTTP
//! goes through the host, which may route or refuse it.

use std::io::Read;

use guest_http::{path_of, path_with_query, query_param, respond};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, ResponseOutparam, Scheme,
};

const TEXT: &str = "text/plain; charset=utf-8";

struct Fetch;

impl Guest for Fetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = path_with_query(&request);
        if path_of(&target) == "/healthz" {
            return respond(out, 200, TEXT, b"ok\n");
        }
        let Some(url) = query_param(&target, "url").map(percent_decode) else {
            return respond(out, 400, TEXT, b"fetch: give ?url=http://host/path\n");
        };
        let Some(url) = Url::parse(&url) else {
            return respond(
                out,
                400,
                TEXT,
                format!("fetch: bad url {url:?}\n").as_bytes(),
            );
        };
        match fetch(&url) {
            Ok((status, body)) => {
                let mut text = format!("{status}\n").into_bytes();
                text.extend_from_slice(&body);
                respond(out, 200, TEXT, &text);
            }
            Err(e) => respond(out, 502, TEXT, format!("fetch failed: {e}\n").as_bytes()),
        }
    }
}

wasip2::http::proxy::export!(Fetch);

/// The parts of an absolute `http(s)://authority/path?query` URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Option<Self> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            (true, url.strip_prefix("https://")?)
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return None;
        }
        let path_with_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(Self {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

/// Send `GET url` and read the whole response.
fn fetch(url: &Url) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "bad scheme".to_string())?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| format!("bad authority {:?}", url.authority))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| format!("bad path {:?}", url.path_with_query))?;
    // An empty request body, finished before sending.
    let body = request
        .body()
        .map_err(|()| "request body already taken".to_string())?;
    OutgoingBody::finish(body, None).map_err(|e| format!("finish request body: {e:?}"))?;

    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        Some(Err(())) => return Err("response already taken".into()),
        None => return Err("response not ready".into()),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "response body already taken".to_string())?;
    let mut bytes = Vec::new();
    {
        let mut stream = body
            .stream()
            .map_err(|()| "response body stream already taken".to_string())?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("read response body: {e}"))?;
    }
    Ok((status, bytes))
}

/// Decode `%XX` escapes (and `+` as a space is not used: URLs rarely carry spaces).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            Url::parse("http://hello.default.svc/greet?x=1"),
            Some(Url {
                https: false,
                authority: "hello.default.svc".into(),
                path_with_query: "/greet?x=1".into(),
            })
        );
        let u = Url::parse("https://example.com").expect("url");
        assert!(u.https);
        assert_eq!(u.path_with_query, "/");
        assert_eq!(Url::parse("ftp://x/"), None);
        assert_eq!(Url::parse("http:///x"), None);
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(
            percent_decode("http%3A%2F%2Fa%2Fb%3Fc%3D1"),
            "http://a/b?c=1"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
