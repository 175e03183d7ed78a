//! Who made a request, as Kubernetes' `user.Info`: a name, a uid, groups and
//! extra attributes; and the names Kubernetes gives its built-in users and
//! groups.

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;

/// The user of a request that carried no credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of every anonymous request.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group of every authenticated request.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group whose members may do anything (Kubernetes' privileged group).
pub const MASTERS: &str = "system:masters";
/// The admin the kubeconfig of `skiff server`/`up` names.
pub const ADMIN: &str = "skiff-admin";
/// Prefix of a ServiceAccount's user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// The group of every ServiceAccount.
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The user of a request without credentials.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..Default::default()
        }
    }

    /// A user with `groups` plus `system:authenticated`.
    pub fn authenticated(name: &str, groups: impl IntoIterator<Item = String>) -> Self {
        let mut user = UserInfo {
            name: name.into(),
            groups: groups.into_iter().collect(),
            ..Default::default()
        };
        user.add_group(AUTHENTICATED);
        user
    }

    /// The user of ServiceAccount `namespace/name`, with its groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        let mut user = UserInfo::authenticated(
            &service_account_user(namespace, name),
            [
                SERVICE_ACCOUNTS.to_string(),
                format!("{SERVICE_ACCOUNTS}:{namespace}"),
            ],
        );
        user.uid = uid.into();
        user
    }

    /// The user a verified client certificate names: `CN` is the user, each
    /// `O` a group (Kubernetes' x509 authenticator). `None` without a `CN`.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        let subject = parsed.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?;
        if name.is_empty() {
            return None;
        }
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string);
        Some(UserInfo::authenticated(name, groups))
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    fn add_group(&mut self, group: &str) {
        if !self.in_group(group) {
            self.groups.push(group.into());
        }
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// The (namespace, name) of a ServiceAccount user name.
pub fn parse_service_account_user(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names_round_trip() {
        let user = UserInfo::service_account("team", "robot", "u1");
        assert_eq!(user.name, "system:serviceaccount:team:robot");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        assert_eq!(
            parse_service_account_user(&user.name),
            Some(("team", "robot"))
        );
        assert_eq!(
            parse_service_account_user("system:serviceaccount:team"),
            None
        );
        assert_eq!(parse_service_account_user("alice"), None);
    }
}
