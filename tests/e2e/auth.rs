//! Secure by default, end to end with the real kubectl: the API speaks only
//! HTTPS, strangers get 401, the admin kubeconfig may do everything, a
//! ServiceAccount token may do what RBAC grants it and gets Kubernetes' 403
//! text for the rest, `kubectl auth can-i` and `whoami` answer as the real
//! requests are decided, and impersonation needs its own permission.

use skiff_testkit::api;
use skiff_testkit::cluster;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cluster::{ApiGet, Kubectl, Server, wait_until};
use serde_json::Value;

const ROBOT: &str = "system:serviceaccount:team:robot";

/// A server with a namespace `team`, a ServiceAccount `robot` in it, and a
/// Role granting it: get/list pods, get pods/log, get the ConfigMap
/// `app-config` only.
struct Cluster {
    server: Server,
    admin: Kubectl,
    dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    let admin = Kubectl::new(&server.kubeconfig());
    admin.ok(&["create", "namespace", "team"]);
    admin.ok(&["create", "namespace", "other"]);
    admin.ok(&["create", "serviceaccount", "robot", "-n", "team"]);
    let role = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: robot, namespace: team}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["app-config"]
  verbs: ["get"]
"#;
    let path = dir.path().join("role.yaml");
    std::fs::write(&path, role).expect("write role");
    admin.ok(&["apply", "-f", path.to_str().expect("utf-8")]);
    admin.ok(&[
        "create",
        "rolebinding",
        "robot",
        "-n",
        "team",
        "--role=robot",
        "--serviceaccount=team:robot",
    ]);
    Cluster { server, admin, dir }
}

impl Cluster {
    /// A kubeconfig for `token`: the cluster's server and CA, no certificate.
    fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let admin: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(self.server.kubeconfig()).expect("read kubeconfig"),
        )
        .expect("kubeconfig is YAML");
        let ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .expect("the kubeconfig carries the CA");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: team}}\ncurrent-context: x\n",
            self.server.addr()
        );
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    fn robot_token(&self) -> String {
        let token = self
            .admin
            .ok(&["create", "token", "robot", "-n", "team"])
            .trim()
            .to_string();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        token
    }

    /// `kubectl auth can-i ARGS`: true for yes, false for no.
    fn can_i(&self, kubectl: &Kubectl, args: &[&str]) -> bool {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = kubectl.run(&all);
        // (Warnings that a resource is cluster-scoped are kubectl's own.)
        assert!(
            !out.stderr.contains("doesn't have a resource type"),
            "kubectl auth can-i {}: {}",
            args.join(" "),
            out.stderr
        );
        match out.stdout.trim() {
            "yes" => true,
            "no" => false,
            other => panic!(
                "kubectl auth can-i {}: {other:?}\nstderr: {}",
                args.join(" "),
                out.stderr
            ),
        }
    }
}

#[test]
fn strangers_get_401_except_public_info() {
    let c = cluster();
    let stranger = ApiGet::stranger(&c.server.kubeconfig(), c.server.addr(), None);
    for path in [
        "/api/v1/secrets",
        "/api/v1/namespaces/team/pods",
        "/metrics",
        "/apis",
        "/openapi/v3",
    ] {
        let (code, body) = stranger.get(path).expect("GET");
        assert_eq!(code, 401, "{path}: {body}");
        let status: Value = serde_json::from_str(&body).expect("a Status");
        assert_eq!(status["reason"], "Unauthorized", "{path}: {body}");
        assert_eq!(status["message"], "Unauthorized", "{path}: {body}");
    }
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, body) = stranger.get(path).expect("GET");
        assert_eq!(code, 200, "{path}: {body}");
    }
    // A forged or foreign token is no better than none.
    let forged = ApiGet::stranger(
        &c.server.kubeconfig(),
        c.server.addr(),
        Some("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
    );
    assert_eq!(forged.get("/api/v1/secrets").expect("GET").0, 401);

    // Plain HTTP on the API port gets no answer from the API.
    let plain = cluster::http_get(c.server.addr(), "/api/v1/secrets");
    assert!(
        !matches!(plain, Ok((200..=499, _))),
        "plain HTTP was answered: {plain:?}"
    );
}

#[test]
fn the_admin_kubeconfig_is_private_and_does_everything() {
    let c = cluster();
    let kubeconfig = c.server.kubeconfig();
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&kubeconfig), 0o600, "kubeconfig mode");
    assert_eq!(mode(c.server.data_dir()), 0o700, "data dir mode");
    for key in ["pki/ca.key", "pki/admin.key", "pki/service-account.key"] {
        assert_eq!(mode(&c.server.data_dir().join(key)), 0o600, "{key} mode");
    }
    let text = std::fs::read_to_string(&kubeconfig).expect("read kubeconfig");
    for field in [
        "certificate-authority-data",
        "client-certificate-data",
        "client-key-data",
        &format!("server: https://{}", c.server.addr()),
    ] {
        assert!(text.contains(field), "kubeconfig lacks {field}:\n{text}");
    }

    let who = c.admin.ok(&["auth", "whoami"]);
    assert!(who.contains("skiff-admin"), "{who}");
    assert!(who.contains("system:masters"), "{who}");
    c.admin.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    c.admin.ok(&["get", "secrets", "-A"]);
    c.admin.ok(&["get", "--raw", "/metrics"]);
    c.admin.ok(&["delete", "namespace", "other"]);
    assert!(c.can_i(&c.admin, &["*", "*"]), "the admin may do anything");

    // The CLI speaks TLS with the same credentials.
    let skiff = cluster::Skiff::new(&kubeconfig);
    let out = skiff.ok(&["get", "namespaces"]);
    assert!(out.stdout.contains("team"), "{}", out.stdout);
}

#[test]
fn a_service_account_token_gets_what_rbac_grants_and_403_for_the_rest() {
    let c = cluster();
    let robot = Kubectl::new(&c.token_kubeconfig("robot", &c.robot_token()));

    let who = robot.ok(&["auth", "whoami"]);
    assert!(who.contains(ROBOT), "{who}");
    assert!(who.contains("system:serviceaccounts:team"), "{who}");

    robot.ok(&["get", "pods"]);
    let denied = robot.fails(&["get", "secrets"]);
    assert!(
        denied.contains(&format!(
            r#"Error from server (Forbidden): secrets is forbidden: User "{ROBOT}" cannot list resource "secrets" in API group "" in the namespace "team""#
        )),
        "{denied}"
    );
    let denied = robot.fails(&["get", "pods", "-n", "other"]);
    assert!(
        denied.contains(&format!(
            r#"pods is forbidden: User "{ROBOT}" cannot list resource "pods" in API group "" in the namespace "other""#
        )),
        "{denied}"
    );
    let denied = robot.fails(&["get", "nodes"]);
    assert!(
        denied.contains(&format!(
            r#"nodes is forbidden: User "{ROBOT}" cannot list resource "nodes" in API group "" at the cluster scope"#
        )),
        "{denied}"
    );
    let denied = robot.fails(&["delete", "pod", "nothing"]);
    assert!(
        denied.contains(&format!(
            r#"pods "nothing" is forbidden: User "{ROBOT}" cannot delete resource "pods" in API group "" in the namespace "team""#
        )),
        "{denied}"
    );

    // Granted later, allowed at once; revoked, refused again.
    c.admin.ok(&[
        "create",
        "rolebinding",
        "robot-view",
        "-n",
        "team",
        "--clusterrole=view",
        "--serviceaccount=team:robot",
    ]);
    robot.ok(&["get", "deployments,services,configmaps"]);
    robot.fails(&["get", "secrets"]);
    c.admin
        .ok(&["delete", "rolebinding", "robot-view", "-n", "team"]);
    wait_until("the revoked binding stops granting", || {
        (!robot.run(&["get", "services"]).status.success()).then_some(())
    });

    // Impersonation needs its own permission.
    let denied = robot.fails(&["get", "pods", "--as", "skiff-admin"]);
    assert!(
        denied.contains(&format!(
            r#"users "skiff-admin" is forbidden: User "{ROBOT}" cannot impersonate resource "users" in API group "" at the cluster scope"#
        )),
        "{denied}"
    );

    // A token dies with its ServiceAccount.
    c.admin
        .ok(&["delete", "serviceaccount", "robot", "-n", "team"]);
    let gone = robot.fails(&["get", "pods"]);
    assert!(
        gone.contains("Unauthorized") || gone.contains("must be logged in"),
        "{gone}"
    );
}

#[test]
fn can_i_answers_as_the_real_requests_are_decided() {
    let c = cluster();
    let as_robot = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--as", ROBOT]);
        c.can_i(&c.admin, &all)
    };
    let cases: &[(&[&str], bool)] = &[
        (&["get", "pods", "-n", "team"], true),
        (&["list", "pods", "-n", "team"], true),
        (&["watch", "pods", "-n", "team"], false),
        (&["delete", "pods", "-n", "team"], false),
        (&["get", "pods", "-n", "other"], false),
        (&["get", "pods", "--subresource=log", "-n", "team"], true),
        (
            &["create", "pods", "--subresource=exec", "-n", "team"],
            false,
        ),
        (&["get", "configmaps/app-config", "-n", "team"], true),
        (&["get", "configmaps/other", "-n", "team"], false),
        (&["list", "configmaps", "-n", "team"], false),
        (&["get", "/healthz"], true),
        (&["get", "/metrics"], false),
        (
            &["get", "pods", "--subresource=status", "-n", "team"],
            false,
        ),
        // The review APIs are discovered under their groups: everyone may
        // ask about themselves (basic-user), not about others.
        (
            &["create", "selfsubjectaccessreviews.authorization.k8s.io"],
            true,
        ),
        (
            &["create", "subjectaccessreviews.authorization.k8s.io"],
            false,
        ),
    ];
    for (args, want) in cases {
        assert_eq!(as_robot(args), *want, "can-i {} as {ROBOT}", args.join(" "));
    }
    // The same questions from the robot's own kubeconfig, and the real
    // requests behind two of them, agree.
    let robot = Kubectl::new(&c.token_kubeconfig("robot", &c.robot_token()));
    assert!(c.can_i(&robot, &["list", "pods"]));
    assert!(!c.can_i(&robot, &["create", "deployments"]));
    c.admin.ok(&[
        "create",
        "configmap",
        "app-config",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    c.admin.ok(&[
        "create",
        "configmap",
        "other",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    robot.ok(&["get", "configmap", "app-config"]);
    robot.fails(&["get", "configmap", "other"]);
    // --list reads the rules (SelfSubjectRulesReview).
    let list = robot.ok(&["auth", "can-i", "--list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list]")),
        "{list}"
    );
}

#[test]
fn oversized_bodies_get_413_without_being_buffered() {
    let c = cluster();
    let api = api::Api::new(&c.server.kubeconfig());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = c.server.rss_kib();
    let big = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"k\":\"{}\"}}}}",
        "x".repeat(4 << 20)
    );
    for _ in 0..5 {
        let reply = runtime
            .block_on(api.request(
                http::Method::POST,
                "/api/v1/namespaces/team/configmaps",
                "application/json",
                big.clone(),
            ))
            .expect("POST");
        assert_eq!(reply.status, 413, "{}", reply.text());
        let status = reply.json();
        assert_eq!(status["reason"], "RequestEntityTooLarge", "{status}");
    }
    let grown = c.server.rss_kib().saturating_sub(before);
    assert!(grown < 10 * 1024, "RSS grew by {grown} KiB");
    c.admin.fails(&["get", "configmap", "big", "-n", "team"]);

    // A write without a Content-Type is refused (a browser cannot send a
    // JSON type cross-site without a preflight, which is never answered).
    let reply = runtime
        .block_on(api.request(
            http::Method::POST,
            "/api/v1/namespaces/team/configmaps",
            "",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
        ))
        .expect("POST");
    assert_eq!(reply.status, 415, "{}", reply.text());
}
