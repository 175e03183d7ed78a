//! What a request asks to do, in the terms authorization decides on: a verb and
//! either a resource (group, resource, subresource, namespace, name) or a
//! non-resource path. Computed from the method and URL as Kubernetes'
//! `RequestInfoFactory` does (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go),
//! so that a SubjectAccessReview answers what the real request gets.

use super::user::UserInfo;

/// A request's attributes, with the user asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or another verb (`impersonate`, `bind`, ...); for
    /// non-resource requests the lowercase HTTP method.
    pub verb: String,
    pub request: Request,
}

/// What the request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Resource(ResourceAttributes),
    /// A path outside the resource tree (`/healthz`, `/api`, `/openapi/v3`).
    NonResource {
        path: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl Attributes {
    pub fn resource(&self) -> Option<&ResourceAttributes> {
        match &self.request {
            Request::Resource(r) => Some(r),
            Request::NonResource { .. } => None,
        }
    }
}

/// The verb and target of `method path?query`.
pub fn of_request(method: &str, path: &str, query: Option<&str>) -> (String, Request) {
    let non_resource = || {
        (
            method.to_ascii_lowercase(),
            Request::NonResource {
                path: path.to_string(),
            },
        )
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_group, api_version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest.to_vec()),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            (*group, *version, rest.to_vec())
        }
        _ => return non_resource(),
    };
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    // The legacy `/watch/` prefix.
    if rest.first() == Some(&"watch") {
        rest.remove(0);
        verb = "watch".into();
    }
    let mut attrs = ResourceAttributes {
        api_group: api_group.into(),
        api_version: api_version.into(),
        ..Default::default()
    };
    // `namespaces/{ns}/{resource}...`, but `namespaces/{name}` and
    // `namespaces/{name}/{status|finalize}` address the namespace itself.
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        attrs.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest.drain(..2);
        }
    }
    attrs.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    if let Some(name) = rest.get(1) {
        attrs.name = name.to_string();
    }
    if let Some(sub) = rest.get(2) {
        attrs.subresource = sub.to_string();
    }
    let query: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    if attrs.name.is_empty() && verb == "get" {
        verb = "list".into();
    }
    if attrs.name.is_empty() && verb == "delete" {
        verb = "deletecollection".into();
    }
    if verb == "list" || verb == "watch" {
        let watching = query
            .iter()
            .any(|(k, v)| *k == "watch" && !matches!(*v, "false" | "0"));
        if watching {
            verb = "watch".into();
        }
        // A list narrowed to one name by `fieldSelector=metadata.name=X` is
        // about that name (kubectl get NAME -w does this).
        if let Some(name) = query
            .iter()
            .find(|(k, _)| *k == "fieldSelector")
            .and_then(|(_, v)| field_selector_name(&percent_decode(v)))
        {
            attrs.name = name;
        }
    }
    (verb, Request::Resource(attrs))
}

/// `X` of a field selector that is exactly `metadata.name=X` (or `==X`).
fn field_selector_name(selector: &str) -> Option<String> {
    if selector.contains(',') {
        return None;
    }
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!value.is_empty()).then(|| value.to_string())
}

/// `%XX` escapes (and `+` in a query) decoded; a bad escape is kept as is.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: &str, path: &str, query: Option<&str>) -> (String, ResourceAttributes) {
        match of_request(method, path, query) {
            (verb, Request::Resource(r)) => (verb, r),
            other => panic!("{path}: not a resource request: {other:?}"),
        }
    }

    #[test]
    fn verbs_and_resources_as_kubernetes_computes_them() {
        let (verb, r) = res("GET", "/api/v1/namespaces/ns/pods", None);
        assert_eq!(
            (verb.as_str(), r.resource.as_str(), r.namespace.as_str()),
            ("list", "pods", "ns")
        );
        let (verb, _) = res("GET", "/api/v1/pods", Some("watch=true"));
        assert_eq!(verb, "watch");
        let (verb, _) = res("GET", "/api/v1/pods", Some("watch=false"));
        assert_eq!(verb, "list");
        let (verb, r) = res(
            "GET",
            "/api/v1/namespaces/ns/pods",
            Some("fieldSelector=metadata.name%3Dweb&watch=1"),
        );
        assert_eq!((verb.as_str(), r.name.as_str()), ("watch", "web"));
        let (verb, r) = res("GET", "/api/v1/namespaces/ns/pods/web/log", None);
        assert_eq!(
            (verb.as_str(), r.subresource.as_str(), r.name.as_str()),
            ("get", "log", "web")
        );
        let (verb, r) = res(
            "POST",
            "/api/v1/namespaces/ns/serviceaccounts/sa/token",
            None,
        );
        assert_eq!(
            (verb.as_str(), r.resource.as_str(), r.subresource.as_str()),
            ("create", "serviceaccounts", "token")
        );
        let (verb, r) = res(
            "GET",
            "/api/v1/namespaces/ns/pods/web/proxy/some/path",
            None,
        );
        assert_eq!((verb.as_str(), r.subresource.as_str()), ("get", "proxy"));
        let (verb, r) = res("DELETE", "/apis/apps/v1/namespaces/ns/deployments", None);
        assert_eq!(
            (verb.as_str(), r.api_group.as_str(), r.resource.as_str()),
            ("deletecollection", "apps", "deployments")
        );
        let (verb, r) = res(
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            None,
        );
        assert_eq!((verb.as_str(), r.subresource.as_str()), ("patch", "scale"));
        // A namespace is addressed by name; its namespace attribute is itself.
        let (verb, r) = res("GET", "/api/v1/namespaces/team", None);
        assert_eq!(
            (
                verb.as_str(),
                r.resource.as_str(),
                r.name.as_str(),
                r.namespace.as_str()
            ),
            ("get", "namespaces", "team", "team")
        );
        let (verb, r) = res("PUT", "/api/v1/namespaces/team/finalize", None);
        assert_eq!(
            (verb.as_str(), r.subresource.as_str()),
            ("update", "finalize")
        );
        let (_, r) = res("GET", "/api/v1/namespaces", None);
        assert_eq!(
            (r.resource.as_str(), r.namespace.as_str()),
            ("namespaces", "")
        );
        let (verb, r) = res("GET", "/api/v1/watch/namespaces/ns/pods", None);
        assert_eq!(
            (verb.as_str(), r.resource.as_str(), r.namespace.as_str()),
            ("watch", "pods", "ns")
        );
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for path in [
            "/healthz",
            "/api",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v3",
            "/version",
        ] {
            assert_eq!(
                of_request("GET", path, None),
                (
                    "get".to_string(),
                    Request::NonResource { path: path.into() }
                ),
                "{path}"
            );
        }
    }
}
