//! kubectl's imperative commands against a real `skiff server`. The typed ones
//! (`kubectl create deployment`, `create configmap`, `create secret` ...) send
//! their objects as Kubernetes protobuf, which Skiff decodes into the JSON the
//! same object would have been; `kubectl run` and `kubectl expose` send JSON.
//! What `kubectl get -o jsonpath` shows afterwards is the check.

use skiff_testkit::cluster;

use cluster::{Kubectl, Server};

/// A server in its own temporary directory, and kubectl pointed at it.
struct Cluster {
    kubectl: Kubectl,
    _server: Server,
    _dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"));
    Cluster {
        kubectl: Kubectl::new(&server.kubeconfig()),
        _server: server,
        _dir: dir,
    }
}

/// Runs a kubectl command that must send its object as protobuf (checked in
/// its `-v=8` request log, so the test cannot pass on a JSON fallback) and
/// succeed; returns its stdout.
fn create_protobuf(k: &Kubectl, args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.push("-v=8");
    let out = k.run(&args);
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl {} did not send protobuf:\n{}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}

fn jsonpath(k: &Kubectl, object: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(object);
    let arg = format!("jsonpath={path}");
    args.extend(["-o", &arg]);
    k.ok(&args)
}

#[test]
fn typed_create_commands_send_protobuf_and_create_the_objects() {
    let c = cluster();
    let k = &c.kubectl;

    let out = create_protobuf(
        k,
        &[
            "create",
            "deployment",
            "web",
            "--image=hello:v1",
            "--replicas=2",
            "--port=8080",
        ],
    );
    assert_eq!(out.trim(), "deployment.apps/web created");
    assert_eq!(
        jsonpath(
            k,
            &["deployment", "web"],
            "{.spec.replicas} {.spec.selector.matchLabels.app} \
             {.spec.template.spec.containers[0].name} {.spec.template.spec.containers[0].image} \
             {.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "2 web hello hello:v1 8080"
    );

    // replicas is a pointer in Go: a zero on the wire is meant, not "unset".
    create_protobuf(
        k,
        &[
            "create",
            "deployment",
            "idle",
            "--image=hello:v1",
            "--replicas=0",
        ],
    );
    assert_eq!(
        jsonpath(k, &["deployment", "idle"], "{.spec.replicas}"),
        "0"
    );

    let out = create_protobuf(
        k,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
            "--from-literal=greeting=hello world",
        ],
    );
    assert_eq!(out.trim(), "configmap/settings created");
    assert_eq!(
        jsonpath(
            k,
            &["configmap", "settings"],
            "{.data.color}/{.data.greeting}"
        ),
        "blue/hello world"
    );

    // Secret data is bytes in protobuf and base64 in JSON.
    let out = create_protobuf(
        k,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cret",
        ],
    );
    assert_eq!(out.trim(), "secret/creds created");
    assert_eq!(
        jsonpath(k, &["secret", "creds"], "{.type} {.data.password}"),
        "Opaque czNjcmV0"
    );

    let out = create_protobuf(k, &["create", "namespace", "team"]);
    assert_eq!(out.trim(), "namespace/team created");
    assert_eq!(
        k.ok(&["get", "namespaces", "-o", "name"])
            .lines()
            .filter(|l| *l == "namespace/team")
            .count(),
        1
    );

    create_protobuf(k, &["create", "job", "once", "--image=pi:v1"]);
    assert_eq!(
        jsonpath(
            k,
            &["job", "once"],
            "{.spec.template.spec.containers[0].image} {.spec.template.spec.restartPolicy}"
        ),
        "pi:v1 Never"
    );

    create_protobuf(
        k,
        &[
            "create",
            "cronjob",
            "tick",
            "--image=pi:v1",
            "--schedule=*/1 * * * *",
        ],
    );
    assert_eq!(
        jsonpath(
            k,
            &["cronjob", "tick"],
            "{.spec.schedule}|{.spec.jobTemplate.spec.template.spec.containers[0].image}"
        ),
        "*/1 * * * *|pi:v1"
    );

    // targetPort is an IntOrString: a number here.
    create_protobuf(
        k,
        &["create", "service", "clusterip", "api", "--tcp=80:8080"],
    );
    assert_eq!(
        jsonpath(
            k,
            &["service", "api"],
            "{.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}"
        ),
        "ClusterIP 80 8080 api"
    );
}

#[test]
fn run_and_expose() {
    let c = cluster();
    let k = &c.kubectl;

    let out = k.ok(&[
        "run",
        "p",
        "--image=hello:v1",
        "--env=A=1",
        "--port=80",
        "--labels=x=y",
    ]);
    assert_eq!(out.trim(), "pod/p created");
    assert_eq!(
        jsonpath(
            k,
            &["pod", "p"],
            "{.metadata.labels.x} {.spec.containers[0].image} \
             {.spec.containers[0].env[0].name}={.spec.containers[0].env[0].value} \
             {.spec.containers[0].ports[0].containerPort}"
        ),
        "y hello:v1 A=1 80"
    );

    create_protobuf(
        k,
        &[
            "create",
            "deployment",
            "web",
            "--image=hello:v1",
            "--port=8080",
        ],
    );
    let out = k.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    assert_eq!(out.trim(), "service/web exposed");
    assert_eq!(
        jsonpath(
            k,
            &["service", "web"],
            "{.spec.selector.app} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.ports[0].protocol}"
        ),
        "web 80 8080 TCP"
    );
}
