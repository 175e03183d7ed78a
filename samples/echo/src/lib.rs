//! `echo`: answers every request with a JSON picture of what it received, so
//! tests can check that the runtime hands a request over intact and gives the
//! pod the environment its spec says:
//!
//! ```json
//! {"method":"POST","path":"/a?b=1","headers":{"content-type":"text/plain"},
//!  "body":"hi","env":{"POD_NAME":"echo-1","MISSING":null}}
//! ```
//!
//! `headers` keeps the order of the request; a repeated header's values are
//! joined with `, ` as HTTP allows. `body` is the body as UTF-8 (invalid bytes
//! become U+FFFD). `env` lists the variables named in `ECHO_ENV`
//! (comma-separated), `null` for one that is unset; `files` the contents of
//! the files named in `ECHO_FILES` (comma-separated paths, as the pod's
//! volumes mount them), `null` for one that cannot be read.

use guest_http::{headers, method, path_of, path_with_query, read_body, respond};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if path_of(&path_with_query(&request)) == "/stream" {
            return stream_back(request, out);
        }
        let body = match read_body(&request) {
            Ok(body) => body,
            Err(e) => {
                let message = format!("echo: {e}\n");
                return respond(out, 400, "text/plain; charset=utf-8", message.as_bytes());
            }
        };
        let env = selected_env(&std::env::var("ECHO_ENV").unwrap_or_default());
        let files = selected_files(&std::env::var("ECHO_FILES").unwrap_or_default());
        let json = render(
            &method(&request),
            &path_with_query(&request),
            &headers(&request),
            &body,
            &env,
            &files,
        );
        respond(out, 200, "application/json", json.as_bytes());
    }
}

wasip2::http::proxy::export!(Echo);

/// Answers 200 at once, then writes back each chunk of the request body as it
/// is read, until the request body ends.
fn stream_back(request: IncomingRequest, out: ResponseOutparam) {
    let headers = Fields::from_list(&[(
        "content-type".to_string(),
        b"application/octet-stream".to_vec(),
    )])
    .unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    let (Ok(incoming), Ok(output)) = (request.consume(), outgoing.write()) else {
        return;
    };
    if let Ok(input) = incoming.stream() {
        // A read error is the end of the request body (closed) or a broken
        // one: either way nothing more comes back.
        'reading: while let Ok(chunk) = input.blocking_read(64 * 1024) {
            // One call writes at most 4096 bytes.
            for piece in chunk.chunks(4096) {
                if output.blocking_write_and_flush(piece).is_err() {
                    break 'reading;
                }
            }
        }
        drop(input);
    }
    drop(IncomingBody::finish(incoming));
    drop(output);
    let _ = OutgoingBody::finish(outgoing, None);
}

fn selected_env(names: &str) -> Vec<(String, Option<String>)> {
    names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| (name.to_string(), std::env::var(name).ok()))
        .collect()
}

fn selected_files(paths: &str) -> Vec<(String, Option<String>)> {
    paths
        .split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| (path.to_string(), std::fs::read_to_string(path).ok()))
        .collect()
}

/// A value per name, or `null`, as a JSON object's members.
fn push_members(out: &mut String, members: &[(String, Option<String>)]) {
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, name);
        out.push(':');
        match value {
            Some(value) => push_json_string(out, value),
            None => out.push_str("null"),
        }
    }
}

fn render(
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    env: &[(String, Option<String>)],
    files: &[(String, Option<String>)],
) -> String {
    // Join repeated headers, keeping the order of first appearance.
    let mut joined: Vec<(&str, String)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value);
        match joined.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => joined.push((name, value.into_owned())),
        }
    }

    let mut out = String::from("{\"method\":");
    push_json_string(&mut out, method);
    out.push_str(",\"path\":");
    push_json_string(&mut out, path);
    out.push_str(",\"headers\":{");
    for (i, (name, value)) in joined.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, name);
        out.push(':');
        push_json_string(&mut out, value);
    }
    out.push_str("},\"body\":");
    push_json_string(&mut out, &String::from_utf8_lossy(body));
    out.push_str(",\"env\":{");
    push_members(&mut out, env);
    out.push_str("},\"files\":{");
    push_members(&mut out, files);
    out.push_str("}}\n");
    out
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_request_and_env_as_json() {
        let headers = vec![
            ("host".to_string(), b"localhost".to_vec()),
            ("x-tag".to_string(), b"a".to_vec()),
            ("x-tag".to_string(), b"b".to_vec()),
        ];
        let env = vec![
            ("POD_NAME".to_string(), Some("echo-1".to_string())),
            ("MISSING".to_string(), None),
        ];
        let files = vec![("/etc/app/mode".to_string(), Some("fast\n".to_string()))];
        let json = render("POST", "/a?b=1", &headers, b"say \"hi\"\n\x01", &env, &files);
        assert_eq!(
            json,
            concat!(
                r#"{"method":"POST","path":"/a?b=1","#,
                r#""headers":{"host":"localhost","x-tag":"a, b"},"#,
                r#""body":"say \"hi\"\n\u0001","#,
                r#""env":{"POD_NAME":"echo-1","MISSING":null},"#,
                r#""files":{"/etc/app/mode":"fast\n"}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn empty_request_is_valid_json() {
        assert_eq!(
            render("GET", "/", &[], b"", &[], &[]),
            "{\"method\":\"GET\",\"path\":\"/\",\"headers\":{},\"body\":\"\",\"env\":{},\"files\":{}}\n"
        );
    }
}
