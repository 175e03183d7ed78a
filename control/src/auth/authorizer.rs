//! The authorizer every API request goes through: members of
//! `system:masters` may do anything (Kubernetes' privileged-group
//! authorizer), everyone else is decided by RBAC over a [`Policy`] kept
//! current from the RBAC informers.
//!
//! A denial is checked once more against a policy rebuilt after the caches
//! caught up with the store, so a request made right after the RoleBinding
//! that allows it is not refused for a cache a few milliseconds behind.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::attributes::Attributes;
use super::rbac::{Decision, Policy};
use super::user::{MASTERS, UserInfo};
use crate::informer::{Cache, Informer};
use crate::registry::Registry;
use crate::store::Revision;

/// How long a denial waits for the RBAC caches to reach the store's revision.
const CATCH_UP: Duration = Duration::from_secs(1);

/// The RBAC kinds' caches.
#[derive(Clone)]
pub struct RbacInformers {
    pub cluster_roles: Informer<ClusterRole>,
    pub roles: Informer<Role>,
    pub cluster_role_bindings: Informer<ClusterRoleBinding>,
    pub role_bindings: Informer<RoleBinding>,
}

/// Decides whether a request is allowed.
pub struct Authorizer {
    informers: RbacInformers,
    registry: Registry,
    /// The policy and the revision its caches had all reached when built.
    policy: RwLock<(Arc<Policy>, Revision)>,
}

impl RbacInformers {
    pub fn start(registry: &Registry) -> RbacInformers {
        RbacInformers {
            cluster_roles: Informer::start(registry),
            roles: Informer::start(registry),
            cluster_role_bindings: Informer::start(registry),
            role_bindings: Informer::start(registry),
        }
    }

    fn all(&self) -> [&Cache; 4] {
        [
            &self.cluster_roles,
            &self.roles,
            &self.cluster_role_bindings,
            &self.role_bindings,
        ]
    }
}

impl Authorizer {
    /// An authorizer over `informers`, rebuilt as they change, until the
    /// process ends.
    pub fn start(registry: Registry, informers: RbacInformers) -> Arc<Authorizer> {
        let authorizer = Arc::new(Authorizer {
            informers,
            registry,
            policy: RwLock::new((Arc::new(Policy::default()), 0)),
        });
        let mut feeds: Vec<_> = authorizer
            .informers
            .all()
            .iter()
            .map(|i| i.subscribe())
            .collect();
        authorizer.rebuild();
        let weak = Arc::downgrade(&authorizer);
        tokio::spawn(async move {
            loop {
                let next =
                    futures::future::select_all(feeds.iter_mut().map(|f| Box::pin(f.next())));
                let (change, _, _) = next.await;
                let Some(authorizer) = weak.upgrade() else {
                    return;
                };
                if change.is_none() {
                    return;
                }
                authorizer.rebuild();
            }
        });
        authorizer
    }

    /// Whether the request is allowed, from the current policy.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.in_group(MASTERS) {
            return Decision::Allow(String::new());
        }
        self.current().0.authorize(attrs)
    }

    /// As [`Authorizer::authorize`]; a denial is checked again once the
    /// caches have caught up with every write made before this call.
    pub async fn authorize_fresh(&self, attrs: &Attributes) -> Decision {
        let decision = self.authorize(attrs);
        if decision.allowed() {
            return decision;
        }
        let revision = self.registry.store().revision();
        if self.current().1 >= revision {
            return decision;
        }
        let caught_up = futures::future::join_all(
            self.informers
                .all()
                .into_iter()
                .map(|i| i.wait_for(revision)),
        );
        let _ = tokio::time::timeout(CATCH_UP, caught_up).await;
        self.rebuild();
        self.authorize(attrs)
    }

    /// The RBAC caches it reads.
    pub fn informers(&self) -> &RbacInformers {
        &self.informers
    }

    /// The rules that apply to `user` in `namespace`.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        self.current().0.rules_for(user, namespace)
    }

    fn current(&self) -> (Arc<Policy>, Revision) {
        let guard = self.policy.read().unwrap_or_else(|e| e.into_inner());
        (guard.0.clone(), guard.1)
    }

    fn rebuild(&self) {
        let observed = self
            .informers
            .all()
            .iter()
            .map(|i| i.observed())
            .min()
            .unwrap_or(0);
        let list = |i: &Cache| i.list(None, |_| true);
        let (cr, r, crb, rb) = (
            list(&self.informers.cluster_roles),
            list(&self.informers.roles),
            list(&self.informers.cluster_role_bindings),
            list(&self.informers.role_bindings),
        );
        let policy = Policy::from_objects(
            cr.iter().map(|v| v.as_ref()),
            r.iter().map(|v| v.as_ref()),
            crb.iter().map(|v| v.as_ref()),
            rb.iter().map(|v| v.as_ref()),
        );
        let mut guard = self.policy.write().unwrap_or_else(|e| e.into_inner());
        if observed >= guard.1 {
            *guard = (Arc::new(policy), observed);
        }
    }
}
