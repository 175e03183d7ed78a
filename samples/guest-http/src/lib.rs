//! The few lines every HTTP sample needs on top of the raw `wasi:http` 0.2
//! bindings: read the request line, headers and body, and send a complete
//! response. Shared so that each sample shows only the behaviour it is for.

use std::io::{Read, Write};

pub use wasip2;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The request method as it appears on the wire (`GET`, `POST`, ...).
pub fn method(request: &IncomingRequest) -> String {
    match request.method() {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    }
}

/// The path with its query (`/grow?mb=8`); `/` when the request carries none.
pub fn path_with_query(request: &IncomingRequest) -> String {
    request
        .path_with_query()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// The path without its query: `/grow` for `/grow?mb=8`.
pub fn path_of(path_with_query: &str) -> &str {
    path_with_query
        .split_once('?')
        .map_or(path_with_query, |(path, _)| path)
}

/// The first value of query parameter `name`, undecoded: `query_param("/grow?mb=8", "mb")`
/// is `Some("8")`.
pub fn query_param<'a>(path_with_query: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// Header names and values in the order the request carried them.
pub fn headers(request: &IncomingRequest) -> Vec<(String, Vec<u8>)> {
    request.headers().entries()
}

/// Reads the whole request body.
pub fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "request body already consumed".to_string())?;
    let mut bytes = Vec::new();
    {
        let mut stream = body
            .stream()
            .map_err(|()| "request body stream already taken".to_string())?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("read request body: {e}"))?;
    }
    // Trailers are not used by the samples; finishing the body is enough.
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Sends a complete response with a `content-type` and a `content-length`.
///
/// A client that went away while the body is written is not an error the guest
/// can do anything about, so write failures are ignored.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let fields = [
        ("content-type".to_string(), content_type.as_bytes().to_vec()),
        (
            "content-length".to_string(),
            body.len().to_string().into_bytes(),
        ),
    ];
    let headers = Fields::from_list(&fields).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    // Only 100..=599 can fail, and the samples pass constants in range.
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let _ = stream.write_all(body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_and_query() {
        assert_eq!(path_of("/grow?mb=8"), "/grow");
        assert_eq!(path_of("/healthz"), "/healthz");
        assert_eq!(query_param("/grow?mb=8", "mb"), Some("8"));
        assert_eq!(query_param("/grow?a=1&mb=16&mb=2", "mb"), Some("16"));
        assert_eq!(query_param("/grow?flag", "flag"), Some(""));
        assert_eq!(query_param("/grow", "mb"), None);
        assert_eq!(query_param("/grow?mbx=3", "mb"), None);
    }
}
