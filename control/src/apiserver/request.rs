//! What a request says beyond its path: query parameters, body, and the
//! representation it accepts.

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use skiff_api::status::ApiError;
use skiff_api::table::IncludeObject;

/// Query parameters Kubernetes clients send; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub timeout_seconds: Option<String>,
    pub dry_run: Option<String>,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: Option<String>,
    pub grace_period_seconds: Option<String>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<String>,
    pub include_object: Option<String>,
    /// `skiff push`: `name:tag` of an uploaded component.
    pub name: Option<String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        serde_urlencoded_query(raw)
    }

    pub fn is_watch(&self) -> bool {
        truthy(self.watch.as_deref())
    }

    pub fn is_dry_run(&self) -> Result<bool, ApiError> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        parse_opt(self.limit.as_deref(), "limit")
    }

    pub fn timeout_seconds(&self) -> Result<Option<u64>, ApiError> {
        parse_opt(self.timeout_seconds.as_deref(), "timeoutSeconds")
    }

    pub fn grace_period_seconds(&self) -> Result<Option<i64>, ApiError> {
        parse_opt(self.grace_period_seconds.as_deref(), "gracePeriodSeconds")
    }
}

fn serde_urlencoded_query(raw: &str) -> Result<Query, ApiError> {
    let pairs = form_pairs(raw);
    let map: serde_json::Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
}

/// Decodes `a=b&c=d` (with `+` and percent escapes); the last value of a repeated
/// key wins.
fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True"))
}

/// `true`/`1` as Kubernetes reads boolean parameters.
pub fn is_true(v: Option<&str>) -> bool {
    truthy(v)
}

fn parse_opt<T: std::str::FromStr>(v: Option<&str>, name: &str) -> Result<Option<T>, ApiError> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for {name}: {s:?}"))),
    }
}

/// The representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The object or list itself.
    Object,
    /// A `meta.k8s.io/v1 Table`, as `kubectl get` asks.
    Table(IncludeObject),
}

/// Reads `Accept` (and `includeObject`) into a [`Representation`].
pub fn representation(headers: &HeaderMap, query: &Query) -> Result<Representation, ApiError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Take the first media range we can serve, in the client's order.
    for range in accept.split(',') {
        let range = range.trim();
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        let is_table = params.iter().any(|p| p.eq_ignore_ascii_case("as=Table"));
        if is_table {
            return Ok(Representation::Table(IncludeObject::parse(
                query.include_object.as_deref(),
            )?));
        }
        let media = params.first().copied().unwrap_or("");
        let plain = !params.iter().any(|p| p.starts_with("as="));
        if plain
            && matches!(
                media,
                "application/json" | "*/*" | "application/*" | "" | "application/yaml"
            )
        {
            return Ok(Representation::Object);
        }
        if plain && media == "application/vnd.kubernetes.protobuf" {
            // We answer in JSON; clients that offer protobuf also accept JSON.
            continue;
        }
    }
    Ok(Representation::Object)
}

/// Parses a request body as JSON, YAML or Kubernetes protobuf according to `Content-Type`.
pub fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    // A body must say what it is: a browser cannot send these types
    // cross-site without a CORS preflight, which Skiff never answers.
    if media.is_empty() {
        return Err(ApiError::unsupported_media_type(""));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; an object is required",
        ));
    }
    match media {
        "application/yaml"
        | "application/apply-patch+yaml"
        | "text/yaml"
        | "application/x-yaml" => parse_yaml(body),
        "application/json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        // client-go's typed clients (kubectl create, run, expose ...) send
        // protobuf; it is decoded into the JSON the same object would have been.
        skiff_api::protobuf::MEDIA_TYPE => Ok(skiff_api::protobuf::decode_object(body)?),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// YAML into a JSON value (YAML is a superset, so JSON bodies parse too).
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    serde_yaml_ng::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

/// The `Content-Type` media type without parameters.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The field manager for a write: `fieldManager`, else derived from the user
/// agent as Kubernetes does (`kubectl-client-side-apply/v1.32 ...` → `kubectl-client-side-apply`).
pub fn field_manager(headers: &HeaderMap, query: &Query) -> String {
    if let Some(m) = query.field_manager.as_deref().filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    agent
        .split('/')
        .next()
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&limit=5",
        ))
        .unwrap();
        assert_eq!(q.label_selector.as_deref(), Some("app=web,tier in (a)"));
        assert!(q.is_watch());
        assert_eq!(q.limit().unwrap(), Some(5));
        assert!(Query::parse(Some("limit=x")).unwrap().limit().is_err());
    }

    #[test]
    fn table_accept() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        let q = Query::default();
        assert!(matches!(
            representation(&h, &q).unwrap(),
            Representation::Table(_)
        ));
        h.insert(http::header::ACCEPT, "application/json".parse().unwrap());
        assert_eq!(representation(&h, &q).unwrap(), Representation::Object);
    }
}
