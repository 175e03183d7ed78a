//! Crash recovery: `skiff server` killed with SIGKILL in the middle of a burst
//! of writes, restarted on the same data directory, round after round. Every
//! write it acknowledged must be there afterwards, revisions never go back, and
//! a watch resumes from a revision. A second server on a data directory in use
//! is refused.

use skiff_testkit::api;
use skiff_testkit::cluster;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::Api;
use cluster::{DEADLINE, Server};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const ROUNDS: usize = 6;
const WRITERS: usize = 16;

/// A write the server acknowledged (2xx).
#[derive(Debug, Clone)]
struct Acked {
    name: String,
    data: Value,
    resource_version: u64,
}

/// Why a writer stopped.
#[derive(Debug)]
enum WriterEnd {
    /// The request failed in transport: the server is gone.
    Failed,
    /// The server answered a create with an error status.
    Refused(u16, String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_watches_resume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut server = tokio::task::block_in_place(|| Server::start(&data_dir));
    let mut acked: Vec<Acked> = Vec::new();

    for round in 0..ROUNDS {
        let api = Api::new(&server.kubeconfig());
        let target = rand::random_range(20..=150usize);
        let count = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(api.clone(), round, w, count.clone(), log.clone())))
            .collect();

        // Kill the server while the writers are busy: after `target` acknowledgements.
        let deadline = Instant::now() + DEADLINE;
        while count.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "round {round}: only {} of {target} creates acknowledged within {DEADLINE:?}",
                count.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let status = server.kill();
        assert!(
            !status.success(),
            "the server was killed, yet exited with {status}"
        );

        for (w, handle) in writers.into_iter().enumerate() {
            let end = tokio::time::timeout(DEADLINE, handle)
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round}: writer {w} still running after the kill")
                })
                .expect("writer task");
            match end {
                WriterEnd::Failed => {}
                WriterEnd::Refused(status, body) => {
                    panic!("round {round}: writer {w}: a create was refused with {status}: {body}")
                }
            }
        }
        let new: Vec<Acked> = std::mem::take(&mut *log.lock().expect("ack log"));
        assert!(
            new.len() >= target,
            "round {round}: {} acknowledged, expected at least {target}",
            new.len()
        );
        eprintln!(
            "round {round}: SIGKILL after {} acknowledged creates (target {target}), {} in all so far",
            new.len(),
            acked.len() + new.len()
        );
        acked.extend(new);

        server = tokio::task::block_in_place(|| Server::start(&data_dir));
        let api = Api::new(&server.kubeconfig());
        assert_all_present(&api, &acked, round).await;

        // The list's revision is not behind anything acknowledged.
        let max_rv = acked.iter().map(|a| a.resource_version).max().unwrap_or(0);
        let list = api.get(CONFIGMAPS).await.expect("list configmaps");
        assert_eq!(list.status, 200, "{}", list.text());
        let list = list.json();
        let list_rv = rv(&list["metadata"]["resourceVersion"]);
        assert!(
            list_rv >= max_rv,
            "round {round}: list resourceVersion {list_rv} < acknowledged {max_rv}"
        );
        let listed: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        for a in &acked {
            assert!(
                listed.contains(&a.name.as_str()),
                "round {round}: {} missing from the list",
                a.name
            );
        }

        // A watch from the list's revision delivers a create made after it...
        let watch_path = format!("{CONFIGMAPS}?watch=1&resourceVersion={list_rv}");
        let mut watch = api
            .watch(&watch_path)
            .await
            .expect("start a watch after the restart");
        let name = format!("after-restart-{round}");
        let created = create(&api, &name, json!({ "round": round.to_string() })).await;
        let deadline = Instant::now() + DEADLINE;
        let is_it =
            |e: &Value| e["type"] == "ADDED" && e["object"]["metadata"]["name"] == name.as_str();
        let event = watch
            .wait_for(deadline, is_it)
            .await
            .expect("the watch delivers the new create");
        assert_eq!(
            rv(&event["object"]["metadata"]["resourceVersion"]),
            created.resource_version
        );
        assert_eq!(event["object"]["data"], created.data);
        // ...and so does one started after the create, from the same revision.
        let mut resumed = api.watch(&watch_path).await.expect("start a second watch");
        let event = resumed
            .wait_for(deadline, is_it)
            .await
            .expect("a watch resumes from its revision");
        assert_eq!(
            rv(&event["object"]["metadata"]["resourceVersion"]),
            created.resource_version
        );
        assert!(
            created.resource_version > list_rv,
            "a new write has a later revision than the list"
        );
        acked.push(created);
    }
}

#[test]
fn a_second_server_on_a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir);

    let mut second = std::process::Command::new(cluster::skiff());
    second
        .arg("server")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--api-addr", "127.0.0.1:0"]);
    let out = cluster::run(second, "a second skiff server on the same data dir");
    assert!(
        !out.status.success(),
        "the second server exited with {}:\n{}",
        out.status,
        out.stdout
    );
    assert!(
        !out.stdout.contains("Skiff API on"),
        "the second server claims to serve:\n{}",
        out.stdout
    );
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("in use") && (stderr.contains("data dir") || stderr.contains("store")),
        "the error should say the data directory is in use:\n{}",
        out.stderr
    );

    // The first one is unharmed and its kubeconfig still points at it.
    assert_eq!(
        server.api_get("/readyz").expect("GET /readyz"),
        (200, "ok".to_string())
    );
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).expect("kubeconfig");
    assert!(
        kubeconfig.contains(&format!("https://{}", server.addr())),
        "kubeconfig was overwritten:\n{kubeconfig}"
    );
}

/// Creates ConfigMaps until a request fails or is refused.
async fn writer(
    api: Api,
    round: usize,
    w: usize,
    count: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Acked>>>,
) -> WriterEnd {
    for seq in 0.. {
        let name = format!("r{round}-w{w}-{seq}");
        let data = json!({
            "round": round.to_string(),
            "writer": w.to_string(),
            "seq": seq.to_string(),
            "payload": format!("{:032x}", rand::random::<u128>()),
        });
        let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": data });
        match api.post_json(CONFIGMAPS, &body).await {
            Ok(reply) if reply.status.is_success() => {
                let object = reply.json();
                let resource_version = rv(&object["metadata"]["resourceVersion"]);
                log.lock().expect("ack log").push(Acked {
                    name,
                    data,
                    resource_version,
                });
                count.fetch_add(1, Ordering::SeqCst);
            }
            Ok(reply) => return WriterEnd::Refused(reply.status.as_u16(), reply.text()),
            Err(_) => return WriterEnd::Failed,
        }
    }
    unreachable!("the loop only ends by returning")
}

/// Creates one ConfigMap and asserts it was acknowledged.
async fn create(api: &Api, name: &str, data: Value) -> Acked {
    let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": data });
    let reply = api
        .post_json(CONFIGMAPS, &body)
        .await
        .expect("create a configmap");
    assert_eq!(reply.status, 201, "create {name}: {}", reply.text());
    let object = reply.json();
    Acked {
        name: name.to_string(),
        data,
        resource_version: rv(&object["metadata"]["resourceVersion"]),
    }
}

/// Every acknowledged ConfigMap answers GET 200 with its data and the
/// resourceVersion its create returned.
async fn assert_all_present(api: &Api, acked: &[Acked], round: usize) {
    let results: BTreeMap<String, Result<Value, String>> = futures::stream::iter(acked)
        .map(|a| async move {
            let result = match api.get(&format!("{CONFIGMAPS}/{}", a.name)).await {
                Ok(reply) if reply.status == 200 => Ok(reply.json()),
                Ok(reply) => Err(format!("{}: {}", reply.status, reply.text())),
                Err(e) => Err(format!("{e:#}")),
            };
            (a.name.clone(), result)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut lost = Vec::new();
    for a in acked {
        match &results[&a.name] {
            Ok(object) => {
                assert_eq!(
                    object["data"], a.data,
                    "round {round}: {} has other data",
                    a.name
                );
                assert_eq!(
                    rv(&object["metadata"]["resourceVersion"]),
                    a.resource_version,
                    "round {round}: {} has another resourceVersion",
                    a.name
                );
            }
            Err(e) => lost.push(format!("{}: {e}", a.name)),
        }
    }
    assert!(
        lost.is_empty(),
        "round {round}: {} of {} acknowledged creates are lost after SIGKILL:\n{}",
        lost.len(),
        acked.len(),
        lost.join("\n")
    );
}

/// A resourceVersion as the number Skiff's revisions are.
fn rv(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("resourceVersion {value} is not a decimal string"))
}
