//! `/openapi/v2`: an empty Swagger 2.0 document, in JSON and in the protobuf
//! encoding kubectl asks for.
//!
//! Why serve one at all, when kubectl 1.32 reads the v3 documents: kubectl
//! still validates a `kind: List` manifest on the client (kubectl's
//! `QueryParamVerifierV3` reports `v1 List` as not supporting server-side
//! validation, so `--validate=strict` falls back to its schema validator),
//! and that validator loads `/openapi/v2`. Tried against kubectl 1.32 and 1.33:
//! a 404 there makes `kubectl apply -f list.yaml` fail with "error validating
//! data: the server could not find the requested resource", and so does a JSON
//! body (kubectl sends `Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and
//! protobuf-decodes whatever comes back). A valid protobuf document with no
//! definitions works: kubectl finds no schema for the items, skips client-side
//! validation, and the server still validates each item (kubectl sends
//! `fieldValidation=Strict` on every write). The same empty document also
//! tells `apply` there is no v2 patch metadata, so it uses its compiled-in
//! types as it does with a 404, and any other client that validates against
//! v2 finds no schema and leaves validation to the server instead of failing.
//!
//! Serve [`openapi_v2_protobuf`] with `Content-Type:` [`OPENAPI_V2_PROTOBUF`]
//! when [`wants_openapi_v2_protobuf`] says so, [`openapi_v2`] as
//! `application/json` otherwise. The response type must be spelled with `.v1.0`,
//! not the `@v1.0` of the request: client-go parses the response's media type
//! with Go's `mime.ParseMediaType`, which rejects `@`, and then fails the
//! request ("mime: unexpected content after media subtype").

use serde_json::{Value, json};

use crate::apiserver::discovery;

/// `Content-Type` of [`openapi_v2_protobuf`], as the Kubernetes API server
/// sends it.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The media type prefix both spellings (`@v1.0` in client-go's requests,
/// `.v1.0` in responses) share.
const PROTOBUF_PREFIX: &str = "application/com.github.proto-openapi.spec.v2";

/// Whether a `/openapi/v2` request with this `Accept` header gets
/// [`openapi_v2_protobuf`] rather than JSON: when it names the gnostic protobuf
/// type, as client-go's `OpenAPISchema` does.
pub fn wants_openapi_v2_protobuf(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let essence = range.split(';').next().unwrap_or("").trim();
        essence.to_ascii_lowercase().starts_with(PROTOBUF_PREFIX)
    })
}

/// The Swagger 2.0 document, as JSON: version and title, no paths and no
/// definitions (see the module docs).
pub fn openapi_v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": git_version() },
        "paths": {},
        "definitions": {},
    })
}

/// [`openapi_v2`] as a gnostic `openapi_v2.Document` protobuf message
/// (`swagger` = 1, `info` = 2 with `title` = 1 and `version` = 2).
pub fn openapi_v2_protobuf() -> Vec<u8> {
    let mut info = Vec::new();
    put_bytes(&mut info, 1, b"Kubernetes");
    put_bytes(&mut info, 2, git_version().as_bytes());
    let mut document = Vec::new();
    put_bytes(&mut document, 1, b"2.0");
    put_bytes(&mut document, 2, &info);
    document
}

fn git_version() -> String {
    discovery::version_info()["gitVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Appends a length-delimited field (wire type 2).
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the length-delimited fields of a message, as (field, bytes).
    fn fields(mut bytes: &[u8]) -> Vec<(u64, &[u8])> {
        fn varint(bytes: &mut &[u8]) -> u64 {
            let mut value = 0;
            for shift in (0..64).step_by(7) {
                let (b, rest) = bytes.split_first().unwrap();
                *bytes = rest;
                value |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
            }
            value
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes);
            assert_eq!(key & 7, 2, "only length-delimited fields are written");
            let len = varint(&mut bytes) as usize;
            let (value, rest) = bytes.split_at(len);
            out.push((key >> 3, value));
            bytes = rest;
        }
        out
    }

    #[test]
    fn protobuf_document_decodes() {
        let doc = openapi_v2_protobuf();
        let top = fields(&doc);
        assert_eq!(top[0], (1, &b"2.0"[..]));
        assert_eq!(top[1].0, 2);
        let info = fields(top[1].1);
        assert_eq!(info[0], (1, &b"Kubernetes"[..]));
        assert_eq!(info[1].0, 2);
        assert!(
            std::str::from_utf8(info[1].1)
                .unwrap()
                .starts_with("v1.33.0")
        );
        assert_eq!(openapi_v2()["swagger"], "2.0");
    }

    #[test]
    fn varints_past_one_byte() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn negotiates_protobuf() {
        assert!(wants_openapi_v2_protobuf(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
        assert!(wants_openapi_v2_protobuf(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!wants_openapi_v2_protobuf("application/json, */*"));
        assert!(!wants_openapi_v2_protobuf(""));
        // Go's mime parser (client-go) must accept the response type.
        assert!(!OPENAPI_V2_PROTOBUF.contains('@'));
    }
}
