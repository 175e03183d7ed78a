//! What a node may do, end to end: a control plane (`skiff server`), real
//! `skiff node` processes, and a rogue node played by this test over raw QUIC
//! with a certificate it got by joining with a token like any node.
//!
//! - A node reports status for, and deletes, only pods bound to it; the rogue's
//!   attempts are refused, logged by the server, told to the rogue, and the pod
//!   stays as it was.
//! - Joining: a single-use token is used up, a taken or reserved name is
//!   refused, expired tokens are deleted.
//! - `skiff node revoke` closes the node's session and refuses its certificate;
//!   a new join under the same name works.
//! - Other nodes' peer proxies cut a revoked node off too.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;
use skiff_testkit::quic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use cluster::{Kubectl, Server, Skiff, wait_until};
use node::NodeProcess;
use objects::{apply, push_samples, token, wait_node_ready, wait_pod_ready};
use quic::{join, read_frame, write_frame};
use serde_json::{Value, json};
use skiff_api::join::{CONTROL_PLANE_SERVER_NAME, JoinToken};
use skiff_api::wire::{self, Downstream, Hello, Open, PROTOCOL_VERSION, Reply, Upstream};

const DEADLINE: Duration = Duration::from_secs(60);

/// A log without its colours (`\x1b[...m`), as a person reads it.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The cluster CA (PEM), as the control plane publishes it.
fn cluster_ca(kubectl: &Kubectl) -> String {
    wait_until("kube-public/cluster-info exists", || {
        let out = kubectl.run(&[
            "get",
            "configmap",
            "cluster-info",
            "-n",
            "kube-public",
            "-o",
            r"jsonpath={.data.ca\.crt}",
        ]);
        (out.status.success() && out.stdout.contains("BEGIN CERTIFICATE")).then_some(out.stdout)
    })
}

/// A QUIC client to the control plane trusting the cluster CA.
fn endpoint(ca_pem: &str, client: Option<(Vec<u8>, Vec<u8>)>) -> quinn::Endpoint {
    quic::client(ca_pem, client, wire::ALPN)
}

fn hello(name: &str, labels: &[(&str, &str)]) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        node_name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        status: json!({}),
        running: Vec::new(),
    }
}

/// The refusals a session receives, until `count` have come.
async fn denials(recv: &mut quinn::RecvStream, count: usize) -> Vec<(u16, String)> {
    let mut found = Vec::new();
    while found.len() < count {
        if let Downstream::Denied { code, message } = read_frame::<Downstream>(recv).await {
            found.push((code, message));
        }
    }
    found
}

#[test]
fn a_rogue_node_cannot_report_on_or_delete_another_nodes_pod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, &["hello"]);
    let _n1 = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &dir.path().join("n1"),
        Some(&token(&skiff)),
        &[],
    );
    wait_node_ready(&server, "n1");
    apply(
        &kubectl,
        dir.path(),
        "web",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: n1\n  containers:\n  - name: main\n    image: hello:v1\n",
    );
    let before = wait_pod_ready(&server, "web");
    let uid = before["metadata"]["uid"].as_str().expect("uid").to_string();

    let ca = cluster_ca(&kubectl);
    let rogue_token = skiff.ok(&["token", "create"]).stdout.trim().to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (status_refusal, delete_refusal, label_refusal) = runtime.block_on(async {
        let addr = server.quic_addr();
        let identity = join(addr, &ca, &rogue_token, "rogue").await;
        let endpoint = endpoint(&ca, Some(identity));
        let connect = || async {
            endpoint
                .connect(addr, CONTROL_PLANE_SERVER_NAME)
                .expect("connect")
                .await
                .expect("mutual TLS with a valid rogue certificate")
        };
        let connection = connect().await;
        let (mut send, mut recv) = connection.open_bi().await.expect("session stream");
        write_frame(&mut send, &Open::Session(hello("rogue", &[]))).await;
        match read_frame::<Reply>(&mut recv).await {
            Reply::Welcome { .. } => {}
            other => panic!("the rogue's own session must open: {other:?}"),
        }
        // Running, with an address of its choosing, for n1's pod; then "it has stopped".
        let status =
            json!({"phase": "Running", "podIP": "10.99.99.99", "message": "rogue was here"});
        write_frame(
            &mut send,
            &Upstream::PodStatus {
                namespace: "default".into(),
                name: "web".into(),
                uid: uid.clone(),
                status,
            },
        )
        .await;
        write_frame(
            &mut send,
            &Upstream::PodTerminated {
                namespace: "default".into(),
                name: "web".into(),
                uid: uid.clone(),
            },
        )
        .await;
        let refused = tokio::time::timeout(DEADLINE, denials(&mut recv, 2))
            .await
            .expect("the rogue is told of both refusals");

        // A second session that sets a label only the operator may set.
        let other = connect().await;
        let (mut send, mut recv) = other.open_bi().await.expect("session stream");
        let labelled = hello(
            "rogue",
            &[("node-restriction.kubernetes.io/trusted", "yes")],
        );
        write_frame(&mut send, &Open::Session(labelled)).await;
        let label_refusal = match read_frame::<Reply>(&mut recv).await {
            Reply::Refused { code, message } => (code, message),
            other => panic!("a restricted label must be refused: {other:?}"),
        };
        // Renewing, it asks for n1's name and the control plane's: it gets its own.
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![CONTROL_PLANE_SERVER_NAME.to_string()])
            .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .expect("CSR");
        let (mut send, mut recv) = connection.open_bi().await.expect("renew stream");
        write_frame(&mut send, &Open::Renew { csr_pem }).await;
        let _ = send.finish();
        let renewed = match read_frame::<Reply>(&mut recv).await {
            Reply::Joined(renewed) => renewed.cert_pem,
            other => panic!("the rogue renews its own certificate: {other:?}"),
        };
        let der = skiff_api::join::pem_cert_der(&renewed).expect("PEM");
        let (_, issued) = x509_parser::parse_x509_certificate(&der).expect("parse");
        let subject = issued.subject().to_string();
        assert!(
            subject.contains("system:node:rogue") && !subject.contains("system:node:n1"),
            "{subject}"
        );
        let names = format!(
            "{:?}",
            issued
                .subject_alternative_name()
                .expect("SAN")
                .map(|san| san.value.general_names.clone())
        );
        assert!(
            names.contains("rogue") && !names.contains(CONTROL_PLANE_SERVER_NAME),
            "{names}"
        );
        (refused[0].clone(), refused[1].clone(), label_refusal)
    });

    assert_eq!(status_refusal.0, 403);
    assert_eq!(
        status_refusal.1,
        r#"node "rogue" can only update pod status for pods with spec.nodeName set to itself"#
    );
    assert_eq!(delete_refusal.0, 403);
    assert_eq!(
        delete_refusal.1,
        r#"node "rogue" can only delete pods with spec.nodeName set to itself"#
    );
    assert_eq!(label_refusal.0, 403);
    assert!(
        label_refusal
            .1
            .contains(r#"node "rogue" is not allowed to modify labels: node-restriction.kubernetes.io/trusted"#),
        "{}",
        label_refusal.1
    );

    // Every refusal is in the server's log, with the node, the pod and the action.
    let log = plain(&server.log());
    for action in ["update pod status", "delete pod"] {
        assert!(
            log.lines().any(|l| l.contains("node request refused")
                && l.contains("rogue")
                && l.contains("default/web")
                && l.contains(action)),
            "no log line for {action}:\n{log}"
        );
    }
    assert!(
        log.lines().any(|l| l.contains("node request refused")
            && l.contains("rogue")
            && l.contains("node-restriction.kubernetes.io/trusted")),
        "no log line for the label:\n{log}"
    );

    // The pod is as n1 reports it: there, Running, with n1's address.
    let pod: Value =
        serde_json::from_str(&kubectl.ok(&["get", "pod", "web", "-o", "json"])).expect("pod json");
    assert_eq!(pod["metadata"]["uid"], uid.as_str());
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["podIP"], before["status"]["podIP"]);
    assert_ne!(pod["status"]["podIP"], "10.99.99.99");
    assert!(pod["metadata"].get("deletionTimestamp").is_none(), "{pod}");
    let line = kubectl.ok(&["get", "pod", "web", "--no-headers"]);
    assert!(line.contains("Running") && line.contains("1/1"), "{line}");
    drop(runtime);
}

/// Starts `skiff node` as `name` with `token` and waits for it to give up;
/// returns its log.
fn refused_join(server: &Server, dir: &std::path::Path, name: &str, token: &str) -> String {
    std::fs::create_dir_all(dir).expect("create the node's parent directory");
    let mut node = NodeProcess::start(server.quic_addr(), name, &dir.join(name), Some(token), &[]);
    let status = wait_until(&format!("node {name} gives up joining"), || node.try_wait());
    assert!(!status.success(), "a refused join must fail: {status}");
    plain(&node.log())
}

fn secret_exists(kubectl: &Kubectl, name: &str) -> bool {
    kubectl
        .run(&["get", "secret", name, "-n", "kube-system"])
        .status
        .success()
}

#[test]
fn joins_use_up_single_use_tokens_and_refuse_taken_and_reserved_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    cluster_ca(&kubectl);
    let create = || skiff.ok(&["token", "create"]).stdout.trim().to_string();
    let secret_of = |token: &str| JoinToken::parse(token).expect("token").secret_name();

    // A single-use token joins one node and is gone.
    let first = create();
    let _n1 = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &dir.path().join("n1"),
        Some(&first),
        &[],
    );
    wait_node_ready(&server, "n1");
    assert!(!secret_exists(&kubectl, &secret_of(&first)));
    let log = refused_join(&server, dir.path(), "n9", &first);
    assert!(
        log.contains("the bootstrap token is not valid for this cluster"),
        "{log}"
    );

    // A taken name is refused, and the refusal does not use the token up.
    let second = create();
    let log = refused_join(&server, &dir.path().join("again"), "n1", &second);
    assert!(
        log.contains(r#"a node named "n1" is already registered"#),
        "{log}"
    );
    assert!(secret_exists(&kubectl, &secret_of(&second)));
    let _n2 = NodeProcess::start(
        server.quic_addr(),
        "n2",
        &dir.path().join("n2"),
        Some(&second),
        &[],
    );
    wait_node_ready(&server, "n2");
    // Reused: refused.
    let log = refused_join(&server, dir.path(), "n3", &second);
    assert!(log.contains("the bootstrap token is not valid"), "{log}");

    // Reserved names are refused, whatever the token.
    let reusable = skiff
        .ok(&["token", "create", "--reusable"])
        .stdout
        .trim()
        .to_string();
    for reserved in ["skiff-control-plane", "localhost"] {
        let log = refused_join(&server, dir.path(), reserved, &reusable);
        assert!(
            log.contains(&format!("the node name \"{reserved}\" is reserved")),
            "{log}"
        );
    }
    assert!(
        secret_exists(&kubectl, &secret_of(&reusable)),
        "a reusable token stays"
    );
    let list = skiff.ok(&["token", "list"]).stdout;
    assert!(list.contains("reusable"), "{list}");

    // An expired token is deleted by the cleaner.
    let brief = skiff
        .ok(&["token", "create", "--ttl", "1s"])
        .stdout
        .trim()
        .to_string();
    wait_until("the expired token is deleted", || {
        (!secret_exists(&kubectl, &secret_of(&brief))).then_some(())
    });
    assert!(
        plain(&server.log()).contains("deleted an expired bootstrap token"),
        "{}",
        plain(&server.log())
    );
}

#[test]
fn a_revoked_node_loses_its_session_and_cannot_reconnect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    let node_dir = dir.path().join("n1");
    let n1 = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &node_dir,
        Some(&token(&skiff)),
        &[],
    );
    wait_node_ready(&server, "n1");

    let out = skiff.ok(&["node", "revoke", "n1"]);
    assert!(
        out.stdout.contains(r#"node "n1" revoked"#),
        "{}",
        out.stdout
    );
    wait_until("the server revokes n1", || {
        plain(&server.log())
            .lines()
            .any(|l| {
                l.contains("its certificates are revoked") && l.contains("session_closed=true")
            })
            .then_some(())
    });
    // The node keeps trying, and is told why it may not come back.
    wait_until("the node is told its certificate is revoked", || {
        plain(&n1.log())
            .contains("has been revoked (its Node was deleted)")
            .then_some(())
    });
    let gone = kubectl.run(&["get", "node", "n1"]);
    assert!(
        gone.stderr.contains(r#"nodes "n1" not found"#),
        "the revoked node must not register again: {} {}",
        gone.stdout,
        gone.stderr
    );
    drop(n1);

    // Restarted with its old certificate: still refused.
    let restarted = NodeProcess::start(server.quic_addr(), "n1", &node_dir, None, &[]);
    wait_until("the restarted node is refused", || {
        plain(&restarted.log())
            .contains("has been revoked")
            .then_some(())
    });
    assert!(!kubectl.run(&["get", "node", "n1"]).status.success());
    drop(restarted);
    assert!(
        skiff
            .fails(&["node", "revoke", "n1"])
            .contains(r#"node "n1" not found"#)
    );

    // A new join under the same name gets a new certificate, which works.
    let _again = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &dir.path().join("n1-again"),
        Some(&token(&skiff)),
        &[],
    );
    wait_node_ready(&server, "n1");
}

/// Where a node's peer proxy listens: its address and its
/// `daemonEndpoints.kubeletEndpoint.Port`, as its Node says.
fn peer_addr(node: &Value) -> SocketAddr {
    let ip = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the node has an InternalIP: {node}"));
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("the node has a peer port: {node}"));
    SocketAddr::new(ip, port)
}

/// `GET /` of pod `default/web` through a peer proxy connection: the status.
async fn call_through_peer(connection: &quinn::Connection) -> Result<u16, String> {
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    let request = wire::ProxyRequest {
        namespace: "default".into(),
        name: "web".into(),
        port: None,
        method: "GET".into(),
        path: "/".into(),
        headers: Vec::new(),
    };
    send.write_all(&wire::encode(&Open::Proxy(request)).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    let mut header = [0u8; wire::HEADER_LEN];
    recv.read_exact(&mut header)
        .await
        .map_err(|e| e.to_string())?;
    let len = wire::body_len(header).map_err(|e| e.to_string())?;
    let mut body = vec![0; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    match wire::decode::<Reply>(&body).map_err(|e| e.to_string())? {
        Reply::Proxied(head) => Ok(head.status),
        other => Err(format!("{other:?}")),
    }
}

/// A node revoked while it holds a connection to another node's peer proxy
/// loses that connection at once, and cannot open another; the other node's
/// pod is unaffected.
#[test]
fn a_revoked_node_is_cut_off_from_the_other_nodes_peer_proxies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("cp"));
    let kubectl = Kubectl::new(&server.kubeconfig());
    let skiff = Skiff::new(&server.kubeconfig());
    push_samples(&skiff, &["hello"]);
    let n1 = NodeProcess::start(
        server.quic_addr(),
        "n1",
        &dir.path().join("n1"),
        Some(&token(&skiff)),
        &[],
    );
    let n1_object = wait_node_ready(&server, "n1");
    apply(
        &kubectl,
        dir.path(),
        "web",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: n1\n  containers:\n  - name: main\n    image: hello:v1\n",
    );
    wait_pod_ready(&server, "web");
    let ca = cluster_ca(&kubectl);
    let rogue_token = skiff.ok(&["token", "create"]).stdout.trim().to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let identity = join(server.quic_addr(), &ca, &rogue_token, "rogue").await;
        // The rogue's own session, so that it is a Node that can be deleted.
        let control = endpoint(&ca, Some(identity.clone()));
        let session = control
            .connect(server.quic_addr(), CONTROL_PLANE_SERVER_NAME)
            .expect("connect")
            .await
            .expect("the rogue's session");
        let (mut send, mut recv) = session.open_bi().await.expect("session stream");
        write_frame(&mut send, &Open::Session(hello("rogue", &[]))).await;
        match read_frame::<Reply>(&mut recv).await {
            Reply::Welcome { .. } => {}
            other => panic!("the rogue's session must open: {other:?}"),
        }
        // Read what the control plane sends, as a node does, until it revokes us.
        let reader = tokio::spawn(async move {
            let mut revoked_lists = Vec::new();
            let mut header = [0u8; wire::HEADER_LEN];
            while recv.read_exact(&mut header).await.is_ok() {
                let Ok(len) = wire::body_len(header) else {
                    break;
                };
                let mut body = vec![0; len];
                if recv.read_exact(&mut body).await.is_err() {
                    break;
                }
                if let Ok(Downstream::Revoked { serials }) = wire::decode(&body) {
                    revoked_lists.push(serials);
                }
            }
            revoked_lists
        });

        let peer = quic::client(&ca, Some(identity), quic::PEER_ALPN);
        let n1_peer = peer_addr(&n1_object);
        let connection = peer
            .connect(n1_peer, "n1")
            .expect("connect")
            .await
            .expect("n1's peer proxy accepts a node certificate");
        assert_eq!(call_through_peer(&connection).await, Ok(200));

        let out = kubectl.run(&["delete", "node", "rogue"]);
        assert!(out.status.success(), "{}", out.stderr);
        let closed = tokio::time::timeout(DEADLINE, connection.closed())
            .await
            .expect("n1 closes the revoked node's connection");
        assert!(
            closed.to_string().contains("certificate revoked"),
            "closed for the reason: {closed}"
        );
        // A new connection gets as far as the handshake and is closed at once.
        let again = peer.connect(n1_peer, "n1").expect("connect").await;
        let refused = match again {
            Ok(connection) => {
                call_through_peer(&connection)
                    .await
                    .expect_err("a revoked certificate is refused");
                connection.closed().await.to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("certificate revoked"), "{refused}");
        // Every node session is told the list; the rogue's was, before it closed.
        let lists = tokio::time::timeout(DEADLINE, reader)
            .await
            .expect("the rogue's session ends")
            .expect("reader");
        assert_eq!(
            lists.first(),
            Some(&Vec::new()),
            "an empty list at the start"
        );
    });
    let log = plain(&n1.log());
    assert!(
        log.contains("closed a peer proxy connection: its certificate was revoked")
            && log.contains("caller=rogue"),
        "n1 logs the cut-off connection:\n{log}"
    );
    assert!(
        log.contains("refused a peer proxy connection with a revoked certificate"),
        "n1 logs the refused one:\n{log}"
    );
    let pod = wait_pod_ready(&server, "web");
    assert_eq!(pod["spec"]["nodeName"], "n1");
}
