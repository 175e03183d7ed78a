//! Instance reuse, through `skiff up` and the real kubectl: a pod annotated
//! `skiff.dev/instance-reuse: "true"` answers from one instance request after
//! request (the `crasher` sample's `/count` grows, through the API's pod
//! proxy), a trap gives it a fresh instance, a pod without the annotation gets
//! a fresh instance per request, and a value other than "true" or "false" is
//! the node's `CreateContainerConfigError`, naming the annotation.

use skiff_testkit::{cluster, objects};

use cluster::{Kubectl, Server, Skiff, wait_until};
use objects::{apply, push_samples, wait_pod_ready};

fn crasher_pod(name: &str, reuse: Option<&str>) -> String {
    let annotations = reuse
        .map(|v| format!("  annotations:\n    skiff.dev/instance-reuse: \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotations}spec:\n  containers:\n  - name: main\n    image: crasher:v1\n    ports:\n    - containerPort: 8080\n"
    )
}

/// `GET path` of pod `name` through the API's pod proxy, with kubectl.
fn through_proxy(k: &Kubectl, name: &str, path: &str) -> cluster::Outcome {
    k.run(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{name}/proxy{path}"),
    ])
}

fn counts(k: &Kubectl, name: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = through_proxy(k, name, "/count");
            assert!(out.status.success(), "{name}: {}", out.stderr);
            out.stdout.trim().to_string()
        })
        .collect()
}

#[test]
fn an_annotated_pod_reuses_its_instances_and_a_bad_value_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_command("up", &dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    push_samples(&Skiff::new(&server.kubeconfig()), &["crasher"]);
    apply(&k, dir.path(), "fresh", &crasher_pod("fresh", None));
    apply(
        &k,
        dir.path(),
        "reused",
        &crasher_pod("reused", Some("true")),
    );
    apply(&k, dir.path(), "typo", &crasher_pod("typo", Some("yes")));
    wait_pod_ready(&server, "fresh");
    wait_pod_ready(&server, "reused");

    assert_eq!(counts(&k, "reused", 4), ["1", "2", "3", "4"]);
    assert_eq!(counts(&k, "fresh", 3), ["1", "1", "1"]);

    // A trap ends the instance: the next request starts from a fresh one.
    let crash = through_proxy(&k, "reused", "/crash");
    assert!(!crash.status.success(), "/crash answered {}", crash.stdout);
    assert_eq!(counts(&k, "reused", 2), ["1", "2"]);

    let jsonpath = |path: &str| k.ok(&["get", "pod", "typo", "-o", &format!("jsonpath={path}")]);
    let message = wait_until("pod typo is refused by its node", || {
        (jsonpath("{.status.containerStatuses[0].state.waiting.reason}")
            == "CreateContainerConfigError")
            .then(|| jsonpath("{.status.containerStatuses[0].state.waiting.message}"))
    });
    let expected = r#"annotation skiff.dev/instance-reuse: "yes" is neither "true" nor "false""#;
    assert_eq!(message, expected);
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=typo",
    ]);
    assert!(
        events.contains("Failed") && events.contains(expected),
        "{events}"
    );
}
