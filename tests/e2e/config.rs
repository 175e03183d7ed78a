//! Configuration from the cluster, through `skiff up` and the real kubectl:
//! an ordinary manifest's ConfigMap and Secret reach a pod's environment
//! through `configMapKeyRef`, `secretKeyRef` and `envFrom` with a prefix (the
//! `echo` sample shows its environment), and a pod whose Secret does not
//! exist yet waits in `CreateContainerConfigError` with the kubelet's words
//! until the Secret is created, then starts without being recreated; and no
//! file under the data directory (store, node) holds a Secret's value.

use skiff_testkit::{cluster, objects};

use cluster::{Kubectl, Server, Skiff, wait_until};
use objects::{apply, push_samples, wait_pod_ready};
use serde_json::Value;

const MANIFEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  MODE: fast
  LEVEL: "3"
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: hunter2
  user: admin
---
apiVersion: v1
kind: Pod
metadata:
  name: configured
spec:
  containers:
  - name: main
    image: echo:v1
    ports:
    - containerPort: 8080
    envFrom:
    - configMapRef:
        name: app-config
      prefix: CFG_
    - secretRef:
        name: db
    env:
    - name: ECHO_ENV
      value: CFG_MODE,CFG_LEVEL,user,MODE,PASSWORD,URL,OPTIONAL,POD_IP
    - name: MODE
      valueFrom:
        configMapKeyRef:
          name: app-config
          key: MODE
    - name: PASSWORD
      valueFrom:
        secretKeyRef:
          name: db
          key: password
    - name: URL
      value: db://$(user):$(PASSWORD)@host/$(CFG_LEVEL)
    - name: OPTIONAL
      valueFrom:
        configMapKeyRef:
          name: not-there
          key: x
          optional: true
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
"#;

const WAITING: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: waiting
spec:
  containers:
  - name: main
    image: echo:v1
    ports:
    - containerPort: 8080
    env:
    - name: ECHO_ENV
      value: TOKEN
    - name: TOKEN
      valueFrom:
        secretKeyRef:
          name: late
          key: token
"#;

/// The JSON answer of the `echo` pod `name` through the API's pod proxy;
/// `None` while it does not answer 200 with JSON.
fn echo_answer(k: &Kubectl, name: &str) -> Option<Value> {
    let out = get(k, name, "/");
    if !out.status.success() {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

/// The environment the `echo` pod `name` shows.
fn env_of(k: &Kubectl, name: &str) -> Value {
    echo_answer(k, name).expect("echo answers")["env"].clone()
}

/// A `skiff up` with `samples` pushed and `manifest` applied, once pod
/// `ready` is Ready.
struct Up {
    dir: tempfile::TempDir,
    server: Server,
    k: Kubectl,
}

fn up(samples: &[&str], manifest: &str, ready: &str) -> Up {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_command("up", &dir.path().join("data"));
    let k = Kubectl::new(&server.kubeconfig());
    push_samples(&Skiff::new(&server.kubeconfig()), samples);
    apply(&k, dir.path(), ready, manifest);
    wait_pod_ready(&server, ready);
    Up { dir, server, k }
}

#[test]
fn config_maps_and_secrets_reach_the_environment_and_a_missing_secret_holds_the_pod() {
    let Up { dir, server, k } = up(&["echo"], MANIFEST, "configured");

    let env = env_of(&k, "configured");
    let pod_ip = k.ok(&["get", "pod", "configured", "-o", "jsonpath={.status.podIP}"]);
    assert!(!pod_ip.is_empty(), "the pod has an address");
    let expected = serde_json::json!({
        "CFG_MODE": "fast",
        "CFG_LEVEL": "3",
        "user": "admin",
        "MODE": "fast",
        "PASSWORD": "hunter2",
        "URL": "db://admin:hunter2@host/3",
        "OPTIONAL": null,
        "POD_IP": pod_ip,
    });
    assert_eq!(env, expected);

    // A Secret that does not exist yet: the pod waits, in the kubelet's words.
    apply(&k, dir.path(), "waiting", WAITING);
    let jsonpath = |path: &str| k.ok(&["get", "pod", "waiting", "-o", &format!("jsonpath={path}")]);
    let message = wait_until("pod waiting waits for its Secret", || {
        (jsonpath("{.status.containerStatuses[0].state.waiting.reason}")
            == "CreateContainerConfigError")
            .then(|| jsonpath("{.status.containerStatuses[0].state.waiting.message}"))
    });
    assert_eq!(message, r#"secret "late" not found"#);
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=waiting",
    ]);
    assert!(
        events.contains("Failed") && events.contains(r#"Error: secret "late" not found"#),
        "{events}"
    );
    let uid = jsonpath("{.metadata.uid}");

    // Created, it releases the pod: the same pod starts, and sees the value.
    k.ok(&[
        "create",
        "secret",
        "generic",
        "late",
        "--from-literal=token=s3cr3t",
    ]);
    wait_pod_ready(&server, "waiting");
    assert_eq!(jsonpath("{.metadata.uid}"), uid, "the same pod");
    assert_eq!(
        env_of(&k, "waiting"),
        serde_json::json!({"TOKEN": "s3cr3t"})
    );

    // Neither the store nor the node's files hold a Secret value in plaintext
    // (nor its base64).
    for value in ["hunter2", "aHVudGVyMg", "s3cr3t", "czNjcjN0"] {
        let leaks = files_containing(&dir.path().join("data"), value.as_bytes());
        assert!(leaks.is_empty(), "{value:?} found in {leaks:?}");
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                files += 1;
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    assert!(files > 0, "the data directory has files to search");
    found
}

const VOLUMES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  mode: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: tls
stringData:
  key: k1-very-secret
---
apiVersion: v1
kind: Pod
metadata:
  name: mounted
  labels:
    app: web
spec:
  containers:
  - name: main
    image: echo:v1
    ports:
    - containerPort: 8080
    env:
    - name: ECHO_FILES
      value: /etc/web/mode,/etc/tls/key,/etc/podinfo/labels,/etc/all/conf/mode,/etc/all/name,/etc/fixed/mode
    volumeMounts:
    - name: web
      mountPath: /etc/web
    - name: tls
      mountPath: /etc/tls
    - name: podinfo
      mountPath: /etc/podinfo
    - name: all
      mountPath: /etc/all
    - name: all
      mountPath: /etc/fixed
      subPath: conf
  volumes:
  - name: web
    configMap:
      name: web-config
  - name: tls
    secret:
      secretName: tls
      defaultMode: 0400
  - name: podinfo
    downwardAPI:
      items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
  - name: all
    projected:
      sources:
      - configMap:
          name: web-config
          items:
          - key: mode
            path: conf/mode
      - downwardAPI:
          items:
          - path: name
            fieldRef:
              fieldPath: metadata.name
"#;

const MISSING_VOLUME: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: unmounted
spec:
  containers:
  - name: main
    image: echo:v1
    ports:
    - containerPort: 8080
    env:
    - name: ECHO_FILES
      value: /etc/late/greeting
    volumeMounts:
    - name: late
      mountPath: /etc/late
  volumes:
  - name: late
    configMap:
      name: late-config
"#;

/// The files the `echo` pod `name` shows; `None` while it does not answer 200.
fn files_of(k: &Kubectl, name: &str) -> Option<Value> {
    Some(echo_answer(k, name)?["files"].clone())
}

#[test]
fn cluster_volumes_hold_their_files_and_follow_changes_without_a_restart() {
    let Up { dir, server, k } = up(&["echo"], VOLUMES, "mounted");
    let files = files_of(&k, "mounted").expect("echo answers");
    assert_eq!(
        files,
        serde_json::json!({
            "/etc/web/mode": "fast",
            "/etc/tls/key": "k1-very-secret",
            "/etc/podinfo/labels": "app=\"web\"",
            "/etc/all/conf/mode": "fast",
            "/etc/all/name": "mounted",
            "/etc/fixed/mode": "fast",
        })
    );

    // The ConfigMap changes: the mounted files follow, the subPath copy does
    // not, and every request meanwhile is answered.
    k.ok(&[
        "patch",
        "configmap",
        "web-config",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    let files = wait_until("the mounted files show the new value", || {
        let files = files_of(&k, "mounted").expect("every request is answered");
        (files["/etc/web/mode"] == "slow" && files["/etc/all/conf/mode"] == "slow").then_some(files)
    });
    assert_eq!(
        files["/etc/fixed/mode"], "fast",
        "a subPath does not update"
    );
    // So do the Secret's, and the pod's labels.
    k.ok(&[
        "patch",
        "secret",
        "tls",
        "-p",
        r#"{"stringData":{"key":"k2-very-secret"}}"#,
    ]);
    k.ok(&["label", "pod", "mounted", "tier=front"]);
    wait_until("the Secret's file and the labels follow", || {
        let files = files_of(&k, "mounted").expect("every request is answered");
        (files["/etc/tls/key"] == "k2-very-secret"
            && files["/etc/podinfo/labels"] == "app=\"web\"\ntier=\"front\"")
            .then_some(())
    });
    let restarts = k.ok(&[
        "get",
        "pod",
        "mounted",
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts, "0", "the pod was not restarted");

    // A volume whose ConfigMap does not exist yet holds the pod in
    // ContainerCreating with the kubelet's FailedMount, until it is created.
    apply(&k, dir.path(), "unmounted", MISSING_VOLUME);
    let events = wait_until("a FailedMount event", || {
        let events = k.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=unmounted",
        ]);
        events.contains("FailedMount").then_some(events)
    });
    assert!(
        events.contains(
            r#"MountVolume.SetUp failed for volume "late" : configmap "late-config" not found"#
        ),
        "{events}"
    );
    let reason = k.ok(&[
        "get",
        "pod",
        "unmounted",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
    ]);
    assert_eq!(reason, "ContainerCreating");
    k.ok(&[
        "create",
        "configmap",
        "late-config",
        "--from-literal=greeting=hello",
    ]);
    wait_pod_ready(&server, "unmounted");
    assert_eq!(
        files_of(&k, "unmounted").expect("echo answers"),
        serde_json::json!({"/etc/late/greeting": "hello"})
    );

    // The Secret's files were in memory only.
    for value in ["k1-very-secret", "k2-very-secret"] {
        let leaks = files_containing(&dir.path().join("data"), value.as_bytes());
        assert!(leaks.is_empty(), "{value:?} found in {leaks:?}");
    }
}

const SETTINGS: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
  level: "3"
---
apiVersion: v1
kind: Secret
metadata:
  name: settings-secret
stringData:
  token: t0k3n
  mode: from-the-secret
---
apiVersion: v1
kind: Pod
metadata:
  name: settings
  annotations:
    skiff.dev/wasi-config: ConfigMap/settings, Secret/settings-secret
spec:
  containers:
  - name: main
    image: settings:v1
    ports:
    - containerPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: unsettled
  annotations:
    skiff.dev/wasi-config: ConfigMap/absent
spec:
  containers:
  - name: main
    image: settings:v1
    ports:
    - containerPort: 8080
"#;

/// `GET path` of pod `name` through the API's pod proxy.
fn get(k: &Kubectl, name: &str, path: &str) -> cluster::Outcome {
    k.run(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{name}/proxy{path}"),
    ])
}

/// `wasi:config` from the annotation's ConfigMap and Secret, a later
/// source's key winning; a change reaches the next request; a source that
/// does not exist holds the pod, in the kubelet's words.
#[test]
fn wasi_config_serves_the_keys_of_the_objects_a_pod_names() {
    let Up {
        dir: _dir,
        server: _server,
        k,
    } = up(&["settings"], SETTINGS, "settings");
    let all = get(&k, "settings", "/");
    assert!(all.status.success(), "{}", all.stderr);
    assert_eq!(all.stdout, "level=3\nmode=from-the-secret\ntoken=t0k3n\n");
    let missing = get(&k, "settings", "/nope");
    assert!(
        !missing.status.success(),
        "an unset key is 404: {}",
        missing.stdout
    );

    k.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"level":"4"}}"#,
    ]);
    wait_until("the next request sees the new value", || {
        let level = get(&k, "settings", "/level");
        assert!(
            level.status.success(),
            "every request is answered: {}",
            level.stderr
        );
        (level.stdout == "4").then_some(())
    });

    let jsonpath =
        |path: &str| k.ok(&["get", "pod", "unsettled", "-o", &format!("jsonpath={path}")]);
    let message = wait_until("pod unsettled waits for its ConfigMap", || {
        (jsonpath("{.status.containerStatuses[0].state.waiting.reason}")
            == "CreateContainerConfigError")
            .then(|| jsonpath("{.status.containerStatuses[0].state.waiting.message}"))
    });
    assert_eq!(message, r#"configmap "absent" not found"#);
}
