//! RBAC, enforced: the policy (Roles, ClusterRoles and their bindings) as a
//! typed snapshot, and the decision for one request, as Kubernetes' RBAC
//! authorizer makes it (plugin/pkg/auth/authorizer/rbac): a request is allowed
//! when a binding that names the user (or one of its groups or its
//! ServiceAccount) grants a role with a rule that covers it; there are no deny
//! rules.
//!
//! - [`rules`]: whether one rule or subject matches.
//! - [`bootstrap`]: the roles and bindings every cluster starts with.
//! - [`Policy`]: the snapshot and the decision; [`Policy::rules_for`] lists what
//!   a user may do in a namespace (SelfSubjectRulesReview).

pub mod bootstrap;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

use super::attributes::Attributes;
use super::user::UserInfo;
use rules::{rule_allows, subject_matches};

/// The RBAC objects of a cluster, typed.
#[derive(Debug, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    /// By (namespace, name).
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// By namespace.
    role_bindings: HashMap<String, Vec<RoleBinding>>,
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and why (`RBAC: allowed by ...`).
    Allow(String),
    /// No rule allows it.
    Deny,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

impl Policy {
    /// A snapshot of the given objects; objects that do not decode are left
    /// out (they grant nothing).
    pub fn from_objects<'a>(
        cluster_roles: impl IntoIterator<Item = &'a Value>,
        roles: impl IntoIterator<Item = &'a Value>,
        cluster_role_bindings: impl IntoIterator<Item = &'a Value>,
        role_bindings: impl IntoIterator<Item = &'a Value>,
    ) -> Policy {
        let mut policy = Policy::default();
        for role in cluster_roles.into_iter().filter_map(decode::<ClusterRole>) {
            let name = role.metadata.name.unwrap_or_default();
            policy
                .cluster_roles
                .insert(name, role.rules.unwrap_or_default());
        }
        for role in roles.into_iter().filter_map(decode::<Role>) {
            let key = (
                role.metadata.namespace.unwrap_or_default(),
                role.metadata.name.unwrap_or_default(),
            );
            policy.roles.insert(key, role.rules.unwrap_or_default());
        }
        policy.cluster_role_bindings = cluster_role_bindings
            .into_iter()
            .filter_map(decode::<ClusterRoleBinding>)
            .collect();
        for binding in role_bindings.into_iter().filter_map(decode::<RoleBinding>) {
            let namespace = binding.metadata.namespace.clone().unwrap_or_default();
            policy
                .role_bindings
                .entry(namespace)
                .or_default()
                .push(binding);
        }
        policy
    }

    /// Whether RBAC allows the request.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut found = Decision::Deny;
        self.visit_rules(&attrs.user, namespace_of(attrs), |source, rules| {
            if rules.iter().any(|rule| rule_allows(attrs, rule)) {
                found = Decision::Allow(format!("RBAC: allowed by {source}"));
                true
            } else {
                false
            }
        });
        found
    }

    /// Every rule that applies to `user` in `namespace` ("" for the cluster
    /// scope only).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut all = Vec::new();
        self.visit_rules(user, namespace, |_, rules| {
            all.extend(rules.iter().cloned());
            false
        });
        all
    }

    /// Calls `visit` with each role bound to `user` (cluster-wide, then in
    /// `namespace`) until it returns true.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(String, &[PolicyRule]) -> bool,
    ) {
        for binding in &self.cluster_role_bindings {
            let Some(subject) = binding
                .subjects
                .iter()
                .flatten()
                .find(|s| subject_matches(s, "", user))
            else {
                continue;
            };
            if binding.role_ref.kind != "ClusterRole" {
                continue;
            }
            if let Some(rules) = self.cluster_roles.get(&binding.role_ref.name) {
                let source = format!(
                    "ClusterRoleBinding {:?} of ClusterRole {:?} to {} {:?}",
                    binding.metadata.name.as_deref().unwrap_or(""),
                    binding.role_ref.name,
                    subject.kind,
                    subject.name
                );
                if visit(source, rules) {
                    return;
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        for binding in self.role_bindings.get(namespace).into_iter().flatten() {
            let Some(subject) = binding
                .subjects
                .iter()
                .flatten()
                .find(|s| subject_matches(s, namespace, user))
            else {
                continue;
            };
            let rules = match binding.role_ref.kind.as_str() {
                "ClusterRole" => self.cluster_roles.get(&binding.role_ref.name),
                "Role" => self
                    .roles
                    .get(&(namespace.to_string(), binding.role_ref.name.clone())),
                _ => None,
            };
            if let Some(rules) = rules {
                let source = format!(
                    "RoleBinding {:?} of {} {:?} to {} {:?}",
                    format!(
                        "{}/{namespace}",
                        binding.metadata.name.as_deref().unwrap_or("")
                    ),
                    binding.role_ref.kind,
                    binding.role_ref.name,
                    subject.kind,
                    subject.name
                );
                if visit(source, rules) {
                    return;
                }
            }
        }
    }
}

fn namespace_of(attrs: &Attributes) -> &str {
    attrs.resource().map(|r| r.namespace.as_str()).unwrap_or("")
}

fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    T::deserialize(value).ok()
}

/// A policy shared by the request path and the task that keeps it current.
pub type SharedPolicy = Arc<std::sync::RwLock<Arc<Policy>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::attributes::of_request;
    use serde_json::json;

    fn attrs(user: &UserInfo, method: &str, path: &str) -> Attributes {
        let (verb, request) = of_request(method, path, None);
        Attributes {
            user: user.clone(),
            verb,
            request,
        }
    }

    #[test]
    fn bindings_grant_roles_in_their_scope() {
        let reader = json!({"metadata": {"name": "pod-reader", "namespace": "team"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        let viewer = json!({"metadata": {"name": "secret-viewer"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
        let rb = json!({"metadata": {"name": "read-pods", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot"}]});
        // A ClusterRole bound in a namespace grants only there.
        let rb2 = json!({"metadata": {"name": "view-secrets", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-viewer"},
            "subjects": [{"kind": "User", "name": "alice"}]});
        let policy = Policy::from_objects([&viewer], [&reader], [], [&rb, &rb2]);
        let robot = UserInfo::service_account("team", "robot", "");
        let alice = UserInfo::authenticated("alice", []);

        let decision = policy.authorize(&attrs(&robot, "GET", "/api/v1/namespaces/team/pods"));
        assert_eq!(
            decision,
            Decision::Allow(
                r#"RBAC: allowed by RoleBinding "read-pods/team" of Role "pod-reader" to ServiceAccount "robot""#
                    .into()
            )
        );
        assert_eq!(
            policy.authorize(&attrs(&robot, "GET", "/api/v1/namespaces/other/pods")),
            Decision::Deny
        );
        assert_eq!(
            policy.authorize(&attrs(&robot, "GET", "/api/v1/pods")),
            Decision::Deny
        );
        assert_eq!(
            policy.authorize(&attrs(&robot, "DELETE", "/api/v1/namespaces/team/pods/p")),
            Decision::Deny
        );
        assert!(
            policy
                .authorize(&attrs(&alice, "GET", "/api/v1/namespaces/team/secrets/s"))
                .allowed()
        );
        assert!(
            !policy
                .authorize(&attrs(&alice, "GET", "/api/v1/namespaces/x/secrets/s"))
                .allowed()
        );
        assert_eq!(policy.rules_for(&alice, "team").len(), 1);
        assert!(policy.rules_for(&alice, "").is_empty());
    }

    #[test]
    fn bootstrap_policy_grants_discovery_and_admin() {
        let objects = bootstrap::objects().expect("bootstrap policy parses");
        let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
        let mut roles: Vec<Value> = of_kind("ClusterRole").cloned().collect();
        bootstrap::aggregate_all(&mut roles);
        let policy = Policy::from_objects(roles.iter(), [], of_kind("ClusterRoleBinding"), []);
        let nobody = UserInfo::authenticated("nobody", []);
        assert!(
            policy
                .authorize(&attrs(&nobody, "GET", "/apis/apps/v1"))
                .allowed()
        );
        assert!(
            policy
                .authorize(&attrs(
                    &nobody,
                    "POST",
                    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
                ))
                .allowed()
        );
        assert!(
            !policy
                .authorize(&attrs(&nobody, "GET", "/api/v1/namespaces/default/pods"))
                .allowed()
        );
        assert!(
            !policy
                .authorize(&attrs(&nobody, "GET", "/metrics"))
                .allowed()
        );
        let anonymous = UserInfo::anonymous();
        assert!(
            policy
                .authorize(&attrs(&anonymous, "GET", "/healthz"))
                .allowed()
        );
        assert!(
            !policy
                .authorize(&attrs(&anonymous, "GET", "/api"))
                .allowed()
        );
        let master = UserInfo::authenticated("root", ["system:masters".to_string()]);
        assert!(
            policy
                .authorize(&attrs(&master, "DELETE", "/api/v1/nodes/n1"))
                .allowed()
        );

        // admin aggregates edit and view: roles, secrets and pods/log.
        let admin_rules = roles
            .iter()
            .find(|r| r["metadata"]["name"] == "admin")
            .and_then(|r| r["rules"].as_array())
            .map(Vec::len)
            .unwrap_or(0);
        assert!(admin_rules > 10, "admin has {admin_rules} rules");
        let rb = json!({"metadata": {"name": "bob-admin", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "bob"}]});
        let policy = Policy::from_objects(roles.iter(), [], of_kind("ClusterRoleBinding"), [&rb]);
        let bob = UserInfo::authenticated("bob", []);
        for (method, path) in [
            (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            ),
            ("GET", "/api/v1/namespaces/team/secrets"),
            ("GET", "/api/v1/namespaces/team/pods/p/log"),
            ("PATCH", "/apis/apps/v1/namespaces/team/deployments/d/scale"),
        ] {
            assert!(
                policy.authorize(&attrs(&bob, method, path)).allowed(),
                "{method} {path}"
            );
        }
        assert!(
            !policy
                .authorize(&attrs(&bob, "GET", "/api/v1/nodes"))
                .allowed()
        );
    }
}
