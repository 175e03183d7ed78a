//! Ingress rules compiled into a matcher: which Service a request that came
//! to the node's HTTP port goes to, by its host and path, as Kubernetes
//! specifies Ingress matching. Pure: Ingresses in, a backend (or none) out.
//!
//! - Hosts compare case-insensitively, without the port of the `Host` header
//!   (or `:authority`). A wildcard host `*.example.com` matches exactly one
//!   label more (`a.example.com`, never `example.com` or `a.b.example.com`);
//!   an exact host is tried before a wildcard one.
//! - Paths: `Exact` matches the path as written; `Prefix` matches element by
//!   element (`/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`);
//!   `ImplementationSpecific` is a `Prefix`. The longest path wins, and an
//!   `Exact` beats a `Prefix` of the same length.
//! - Rules with a host are tried first, and win only when one of their paths
//!   matches; then the rules without a host; then `spec.defaultBackend`.
//!
//! Every Skiff Ingress goes into one table (as one load balancer serves them
//! all); where two give the same host and path, or both a default backend,
//! the first by namespace and name wins.

use std::collections::HashMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use super::table::{ServiceKey, ServiceRoute};

/// A Service port as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendPort {
    /// The Service's `port` (not its target port).
    Number(u16),
    /// The name of a Service port.
    Name(String),
}

/// Where a matched request goes: a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub service: ServiceKey,
    pub port: BackendPort,
}

/// The compiled Ingresses.
#[derive(Debug, Clone, Default)]
pub struct IngressTable {
    /// Lower-case host -> its paths, best first.
    exact_hosts: HashMap<String, Vec<PathRule>>,
    /// `*.example.com` under `example.com` -> its paths, best first.
    wildcard_hosts: HashMap<String, Vec<PathRule>>,
    /// The paths of rules without a host, best first.
    any_host: Vec<PathRule>,
    default_backend: Option<Backend>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    // Declared first: sorts before a Prefix of the same length.
    Exact,
    Prefix,
}

#[derive(Debug, Clone)]
struct PathRule {
    kind: PathKind,
    /// As written for Exact; without trailing slashes for Prefix (so `/`
    /// is empty and matches every path).
    path: String,
    backend: Backend,
}

impl IngressTable {
    /// Compiles `ingresses` (already only those Skiff serves), in the order
    /// given: earlier ones win ties.
    pub fn compile<'a>(ingresses: impl IntoIterator<Item = &'a Ingress>) -> IngressTable {
        let mut table = IngressTable::default();
        for ingress in ingresses {
            let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
            let Some(spec) = &ingress.spec else {
                continue;
            };
            if table.default_backend.is_none() {
                table.default_backend = spec
                    .default_backend
                    .as_ref()
                    .and_then(|b| backend(namespace, b));
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
                let rules = if host.is_empty() {
                    &mut table.any_host
                } else if let Some(domain) = host.strip_prefix("*.") {
                    table.wildcard_hosts.entry(domain.to_string()).or_default()
                } else {
                    table.exact_hosts.entry(host).or_default()
                };
                for path in rule.http.iter().flat_map(|h| &h.paths) {
                    let Some(backend) = backend(namespace, &path.backend) else {
                        continue;
                    };
                    let written = path.path.as_deref().unwrap_or("/");
                    let (kind, path) = match path.path_type.as_str() {
                        "Exact" => (PathKind::Exact, written.to_string()),
                        _ => (PathKind::Prefix, written.trim_end_matches('/').to_string()),
                    };
                    rules.push(PathRule {
                        kind,
                        path,
                        backend,
                    });
                }
            }
        }
        let lists = table
            .exact_hosts
            .values_mut()
            .chain(table.wildcard_hosts.values_mut())
            .chain(std::iter::once(&mut table.any_host));
        for rules in lists {
            // Stable: among equals, the earlier Ingress stays first.
            rules.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.kind.cmp(&b.kind)));
        }
        table
    }

    /// Where a request for `host` (a `Host` header or `:authority`, port and
    /// all) and `path` (without the query) goes; `None`: nowhere, a 404.
    pub fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        let host = request_host(host);
        let on_host = self
            .exact_hosts
            .get(&host)
            .and_then(|rules| first_match(rules, path))
            .or_else(|| {
                let (label, domain) = host.split_once('.')?;
                if label.is_empty() {
                    return None;
                }
                first_match(self.wildcard_hosts.get(domain)?, path)
            });
        on_host
            .or_else(|| first_match(&self.any_host, path))
            .or(self.default_backend.as_ref())
    }
}

impl Backend {
    /// The name of the port of `route` (the backend's Service) this backend
    /// means (empty for a single unnamed port), or `None` if it has no such
    /// port.
    pub fn port_name<'a>(&self, route: &'a ServiceRoute) -> Option<&'a str> {
        route
            .ports
            .iter()
            .find(|p| match &self.port {
                BackendPort::Number(n) => p.port == *n,
                BackendPort::Name(name) => p.name == *name,
            })
            .map(|p| p.name.as_str())
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.port {
            BackendPort::Number(n) => write!(f, "service {} port {n}", self.service),
            BackendPort::Name(name) => write!(f, "service {} port {name:?}", self.service),
        }
    }
}

/// The host of a `Host` header or `:authority`: lower case, without the port
/// or a trailing dot; an IPv6 literal keeps its brackets.
pub fn request_host(raw: &str) -> String {
    let raw = raw.trim();
    let host = match raw.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(raw, |end| &raw[..end + 2]),
        None => match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        },
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn first_match<'a>(rules: &'a [PathRule], path: &str) -> Option<&'a Backend> {
    rules
        .iter()
        .find(|rule| rule.matches(path))
        .map(|rule| &rule.backend)
}

impl PathRule {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.path,
            PathKind::Prefix => path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// A Service backend; a resource backend (`backend.resource`) is not one
/// Skiff can serve, so its path is left out.
fn backend(namespace: &str, backend: &IngressBackend) -> Option<Backend> {
    let service = backend.service.as_ref()?;
    let port = service.port.as_ref()?;
    let port = match (port.number, port.name.as_deref()) {
        (Some(n), _) => BackendPort::Number(u16::try_from(n).ok()?),
        (None, Some(name)) if !name.is_empty() => BackendPort::Name(name.to_string()),
        _ => return None,
    };
    Some(Backend {
        service: ServiceKey {
            namespace: namespace.to_string(),
            name: service.name.clone(),
        },
        port,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::table::{Policy, ServicePortRoute};
    use super::*;

    fn ingress(name: &str, spec: Value) -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn path(kind: &str, path: &str, service: &str) -> Value {
        json!({"path": path, "pathType": kind,
            "backend": {"service": {"name": service, "port": {"number": 80}}}})
    }

    fn table(ingresses: &[Ingress]) -> IngressTable {
        IngressTable::compile(ingresses)
    }

    /// The Service a request goes to, or "404".
    fn to(table: &IngressTable, host: &str, path: &str) -> String {
        table
            .route(host, path)
            .map_or("404".into(), |b| b.service.name.clone())
    }

    #[test]
    fn hosts_compare_without_case_or_port_and_wildcards_take_one_label() {
        let t = table(&[ingress(
            "i",
            json!({"rules": [
                {"host": "hello.example.com", "http": {"paths": [path("Prefix", "/", "hello")]}},
                {"host": "*.example.com", "http": {"paths": [path("Prefix", "/", "any")]}},
            ]}),
        )]);
        assert_eq!(to(&t, "hello.example.com", "/"), "hello");
        assert_eq!(to(&t, "HELLO.Example.COM:8080", "/x"), "hello");
        assert_eq!(to(&t, "hello.example.com.", "/"), "hello");
        // The exact host is tried before the wildcard.
        assert_eq!(to(&t, "other.example.com", "/"), "any");
        assert_eq!(to(&t, "example.com", "/"), "404");
        assert_eq!(to(&t, "a.b.example.com", "/"), "404");
        assert_eq!(to(&t, "", "/"), "404");
        assert_eq!(request_host("[::1]:8080"), "[::1]");
        assert_eq!(request_host("[::1]"), "[::1]");
        assert_eq!(request_host("Shop.example"), "shop.example");
    }

    #[test]
    fn prefix_matches_by_path_element() {
        let t = table(&[ingress(
            "i",
            json!({"rules": [{"http": {"paths": [
                path("Prefix", "/foo", "foo"),
                path("Prefix", "/bar/", "bar"),
                path("ImplementationSpecific", "/baz", "baz"),
            ]}}]}),
        )]);
        assert_eq!(to(&t, "h", "/foo"), "foo");
        assert_eq!(to(&t, "h", "/foo/"), "foo");
        assert_eq!(to(&t, "h", "/foo/bar"), "foo");
        assert_eq!(to(&t, "h", "/foobar"), "404");
        // A trailing slash on the prefix changes nothing.
        assert_eq!(to(&t, "h", "/bar"), "bar");
        assert_eq!(to(&t, "h", "/bar/x"), "bar");
        assert_eq!(to(&t, "h", "/barx"), "404");
        // ImplementationSpecific is a Prefix.
        assert_eq!(to(&t, "h", "/baz/1"), "baz");
        assert_eq!(to(&t, "h", "/"), "404");
    }

    #[test]
    fn longest_match_wins_and_exact_beats_prefix_of_the_same_length() {
        let t = table(&[ingress(
            "i",
            json!({"rules": [{"http": {"paths": [
                path("Prefix", "/", "root"),
                path("Prefix", "/api", "api"),
                path("Exact", "/api", "api-exact"),
                path("Prefix", "/api/v2", "v2"),
                path("Exact", "/api/v2/health", "health"),
            ]}}]}),
        )]);
        assert_eq!(to(&t, "h", "/"), "root");
        assert_eq!(to(&t, "h", "/index.html"), "root");
        assert_eq!(to(&t, "h", "/api"), "api-exact");
        // Exact does not match a trailing slash; the Prefix does.
        assert_eq!(to(&t, "h", "/api/"), "api");
        assert_eq!(to(&t, "h", "/api/v1"), "api");
        assert_eq!(to(&t, "h", "/api/v2/x"), "v2");
        assert_eq!(to(&t, "h", "/api/v2/health"), "health");
        assert_eq!(to(&t, "h", "/api/v2/health/x"), "v2");
    }

    #[test]
    fn host_rules_win_only_when_a_path_matches_then_the_default_backend() {
        let t = table(&[ingress(
            "i",
            json!({
                "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
                "rules": [
                    {"host": "shop.example", "http": {"paths": [path("Prefix", "/cart", "cart")]}},
                    {"http": {"paths": [path("Prefix", "/static", "static")]}},
                ],
            }),
        )]);
        assert_eq!(to(&t, "shop.example", "/cart/1"), "cart");
        // The host matches but none of its paths: the host-less rules next.
        assert_eq!(to(&t, "shop.example", "/static/a.css"), "static");
        assert_eq!(to(&t, "other.example", "/static/a.css"), "static");
        // The host-less rules do not reach a host rule's paths.
        assert_eq!(to(&t, "other.example", "/cart"), "fallback");
        assert_eq!(to(&t, "shop.example", "/"), "fallback");
        assert_eq!(
            t.route("x", "/").map(|b| b.port.clone()),
            Some(BackendPort::Name("http".into()))
        );

        let without = table(&[ingress(
            "i",
            json!({"rules": [{"host": "shop.example", "http": {"paths": [path("Prefix", "/", "shop")]}}]}),
        )]);
        assert_eq!(to(&without, "other.example", "/"), "404");
        assert_eq!(to(&table(&[]), "shop.example", "/"), "404");
    }

    #[test]
    fn the_first_ingress_wins_a_tie_and_backends_are_in_its_namespace() {
        let mut other = ingress(
            "b",
            json!({"defaultBackend": {"service": {"name": "second", "port": {"number": 80}}},
                "rules": [{"http": {"paths": [path("Prefix", "/", "second")]}}]}),
        );
        other.metadata.namespace = Some("shop".into());
        let t = table(&[
            ingress(
                "a",
                json!({"defaultBackend": {"service": {"name": "first", "port": {"number": 80}}},
                    "rules": [{"http": {"paths": [path("Prefix", "/", "first")]}}]}),
            ),
            other,
        ]);
        assert_eq!(to(&t, "h", "/"), "first");
        let resource = ingress(
            "r",
            json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}]}),
        );
        assert_eq!(to(&table(&[resource]), "h", "/"), "404");
        let mut shop = ingress(
            "s",
            json!({"rules": [{"http": {"paths": [path("Prefix", "/", "web")]}}]}),
        );
        shop.metadata.namespace = Some("shop".into());
        let t = table(&[shop]);
        assert_eq!(
            t.route("h", "/").map(|b| b.service.to_string()),
            Some("shop/web".into())
        );
    }

    #[test]
    fn a_backend_port_resolves_by_number_or_name() {
        let route = ServiceRoute {
            key: ServiceKey {
                namespace: "default".into(),
                name: "web".into(),
            },
            service_type: "ClusterIP".into(),
            ports: vec![
                ServicePortRoute {
                    name: "http".into(),
                    port: 80,
                    node_port: None,
                    target_port: Some("8080".into()),
                },
                ServicePortRoute {
                    name: "admin".into(),
                    port: 9000,
                    node_port: None,
                    target_port: None,
                },
            ],
            affinity: None,
            policy: Policy::RoundRobin,
            endpoints: Vec::new(),
        };
        let backend = |port| Backend {
            service: route.key.clone(),
            port,
        };
        assert_eq!(
            backend(BackendPort::Number(9000)).port_name(&route),
            Some("admin")
        );
        assert_eq!(
            backend(BackendPort::Name("http".into())).port_name(&route),
            Some("http")
        );
        // The target port is not the Service port.
        assert_eq!(backend(BackendPort::Number(8080)).port_name(&route), None);
        assert_eq!(
            backend(BackendPort::Name("grpc".into())).port_name(&route),
            None
        );
    }
}
