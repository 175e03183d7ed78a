//! Parsing Kubernetes REST paths into what they address.

use skiff_api::resource::{ResourceType, by_plural};
use skiff_api::status::{ApiError, Reason};

/// What a path under `/api` or `/apis` addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `/api/v1` or `/apis/{group}/{version}`: the resource list of a group version.
    GroupVersion { group: String, version: String },
    /// `/apis/{group}`: one API group.
    Group { group: String },
    /// A collection, an object or an object's subresource.
    Resource(ResourcePath),
}

/// A resource path: `.../namespaces/{ns}/{plural}/{name}/{subresource}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePath {
    pub rt: &'static ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl ResourcePath {
    /// The namespace for a namespaced kind, empty for a cluster-scoped one.
    pub fn namespace_or_empty(&self) -> &str {
        if self.rt.namespaced {
            self.namespace.as_deref().unwrap_or("")
        } else {
            ""
        }
    }
}

/// Subresources of namespaces, which would otherwise read as resource names.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => {
            return Ok(Target::Group {
                group: group.to_string(),
            });
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    if rest.is_empty() {
        return Ok(Target::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        });
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !NAMESPACE_SUBRESOURCES.contains(plural) => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(not_found()),
    };
    let Some(rt) = by_plural(group, version, plural) else {
        return Err(not_found());
    };
    if namespace.is_some() && !rt.namespaced {
        return Err(not_found());
    }
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    Ok(Target::Resource(ResourcePath {
        rt,
        namespace,
        name,
        subresource,
    }))
}

/// Kubernetes' answer for a path it does not serve.
pub fn not_found() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse(path).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namespaced_paths() {
        let r = resource("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(r.rt.kind, "Deployment");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("scale"));
        let all = resource("/api/v1/pods");
        assert_eq!(all.namespace, None);
        assert_eq!(all.name, None);
    }

    #[test]
    fn namespaces_themselves() {
        let r = resource("/api/v1/namespaces/dev");
        assert_eq!(r.rt.kind, "Namespace");
        assert_eq!(r.name.as_deref(), Some("dev"));
        let s = resource("/api/v1/namespaces/dev/finalize");
        assert_eq!(s.rt.kind, "Namespace");
        assert_eq!(s.subresource.as_deref(), Some("finalize"));
        let list = resource("/api/v1/namespaces/dev/configmaps");
        assert_eq!(list.rt.kind, "ConfigMap");
    }

    #[test]
    fn unknown_paths() {
        assert!(parse("/api/v1/widgets").is_err());
        assert!(parse("/api/v1/namespaces/default/nodes/n1").is_err());
        assert!(parse("/api/v1/pods/p1").is_err());
        assert_eq!(
            parse("/apis/apps/v1").unwrap(),
            Target::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
    }
}
