//! Whether one RBAC rule or subject covers a request: Kubernetes' matching
//! rules (plugin/pkg/auth/authorizer/rbac/rbac.go and pkg/apis/rbac/v1/evaluation_helpers.go).

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use crate::auth::attributes::{Attributes, Request};
use crate::auth::user::{UserInfo, service_account_user};

const ALL: &str = "*";

/// Whether `rule` allows the request.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    match &attrs.request {
        Request::Resource(r) => {
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            verb_matches(rule, &attrs.verb)
                && api_group_matches(rule, &r.api_group)
                && resource_matches(rule, &combined, &r.subresource)
                && resource_name_matches(rule, &r.name)
        }
        Request::NonResource { path } => {
            verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, path)
        }
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups
        .iter()
        .flatten()
        .any(|g| g == ALL || g == group)
}

fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().flatten().any(|r| {
        r == ALL
            || r == combined
            || (!subresource.is_empty()
                && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => !name.is_empty() && names.iter().any(|n| n == name),
    }
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().flatten().any(|url| {
        url == ALL
            || url == path
            || url
                .strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `subject` of a binding in `namespace` ("" for a ClusterRoleBinding)
/// names `user`.
pub fn subject_matches(subject: &Subject, namespace: &str, user: &UserInfo) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let sa_namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => namespace,
            };
            !sa_namespace.is_empty()
                && service_account_user(sa_namespace, &subject.name) == user.name
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::attributes::{ResourceAttributes, of_request};

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            api_groups: strings(groups),
            resources: strings(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resource_names: if names.is_empty() {
                None
            } else {
                strings(names)
            },
            non_resource_urls: None,
        }
    }

    fn request(method: &str, path: &str) -> Attributes {
        let (verb, request) = of_request(method, path, None);
        Attributes {
            user: UserInfo::authenticated("alice", []),
            verb,
            request,
        }
    }

    #[test]
    fn resources_subresources_and_names() {
        let pods_read = rule(&[""], &["pods"], &["get", "list"], &[]);
        assert!(rule_allows(
            &request("GET", "/api/v1/namespaces/a/pods"),
            &pods_read
        ));
        assert!(rule_allows(
            &request("GET", "/api/v1/namespaces/a/pods/p"),
            &pods_read
        ));
        assert!(!rule_allows(
            &request("DELETE", "/api/v1/namespaces/a/pods/p"),
            &pods_read
        ));
        // A subresource needs its own entry.
        assert!(!rule_allows(
            &request("GET", "/api/v1/namespaces/a/pods/p/log"),
            &pods_read
        ));
        let logs = rule(&[""], &["pods/log"], &["get"], &[]);
        assert!(rule_allows(
            &request("GET", "/api/v1/namespaces/a/pods/p/log"),
            &logs
        ));
        let any_status = rule(&["*"], &["*/status"], &["get"], &[]);
        assert!(rule_allows(
            &request("GET", "/apis/apps/v1/namespaces/a/deployments/d/status"),
            &any_status
        ));
        assert!(!rule_allows(
            &request("GET", "/apis/apps/v1/namespaces/a/deployments/d"),
            &any_status
        ));
        // The API group must match.
        assert!(!rule_allows(
            &request("GET", "/apis/apps/v1/namespaces/a/pods"),
            &pods_read
        ));
        // resourceNames limit to the named objects, so never a list.
        let one = rule(&[""], &["configmaps"], &["get", "list"], &["app-config"]);
        assert!(rule_allows(
            &request("GET", "/api/v1/namespaces/a/configmaps/app-config"),
            &one
        ));
        assert!(!rule_allows(
            &request("GET", "/api/v1/namespaces/a/configmaps/other"),
            &one
        ));
        assert!(!rule_allows(
            &request("GET", "/api/v1/namespaces/a/configmaps"),
            &one
        ));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let mut r = rule(&[], &[], &["get"], &[]);
        r.non_resource_urls = Some(vec!["/healthz".into(), "/apis/*".into()]);
        let get = |path: &str| Attributes {
            user: UserInfo::anonymous(),
            verb: "get".into(),
            request: Request::NonResource { path: path.into() },
        };
        assert!(rule_allows(&get("/healthz"), &r));
        assert!(!rule_allows(&get("/healthz/etcd"), &r));
        assert!(rule_allows(&get("/apis/apps/v1"), &r));
        assert!(!rule_allows(&get("/api"), &r));
        // A resource rule never covers a path.
        let res = Attributes {
            request: Request::Resource(ResourceAttributes::default()),
            ..get("/x")
        };
        assert!(!rule_allows(&res, &r));
    }

    #[test]
    fn subjects() {
        let alice = UserInfo::authenticated("alice", ["devs".to_string()]);
        let robot = UserInfo::service_account("team", "robot", "");
        let subject = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
            api_group: None,
        };
        assert!(subject_matches(&subject("User", "alice", None), "", &alice));
        assert!(subject_matches(&subject("Group", "devs", None), "", &alice));
        assert!(subject_matches(
            &subject("Group", "system:authenticated", None),
            "",
            &alice
        ));
        assert!(!subject_matches(&subject("Group", "ops", None), "", &alice));
        assert!(subject_matches(
            &subject("ServiceAccount", "robot", Some("team")),
            "",
            &robot
        ));
        // A RoleBinding's ServiceAccount without a namespace is in the binding's.
        assert!(subject_matches(
            &subject("ServiceAccount", "robot", None),
            "team",
            &robot
        ));
        assert!(!subject_matches(
            &subject("ServiceAccount", "robot", None),
            "other",
            &robot
        ));
        assert!(!subject_matches(
            &subject("ServiceAccount", "robot", None),
            "",
            &robot
        ));
    }
}
