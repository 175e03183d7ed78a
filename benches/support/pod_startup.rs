//! Pod startup as the `pods` and `config` benchmarks time it: pods created
//! through the API by several creators on keep-alive connections, each timed
//! from just before its create request is sent to the arrival of the watch
//! event that shows it Ready.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use skiff_testkit::objects::is_ready;
use tokio::sync::Mutex;

use super::api_client::{Connection, Endpoint, Watch};

/// Where pods are created, in the `default` namespace.
pub const PODS: &str = "/api/v1/namespaces/default/pods";

/// One pod's creation, as the creators and the watch saw it.
#[derive(Debug, Default, Clone, Copy)]
struct PodTimes {
    sent: Option<Instant>,
    ready: Option<Instant>,
}

/// The resourceVersion of a list of pods: where a watch starts so that it
/// misses nothing created after.
pub async fn list_revision(conn: &mut Connection) -> anyhow::Result<String> {
    let list = conn.get_json(&format!("{PODS}?limit=1")).await?;
    skiff_api::meta::resource_version(&list)
        .map(str::to_string)
        .context("the pod list has no resourceVersion")
}

/// Creates `pods` (name, manifest), in order, with `creators` requests in
/// flight (each creator connects before the first request is sent), and
/// waits until a watch of the pods matching `selector` (URL-encoded) has
/// shown each Ready, within `deadline`. Each pod's time from its request to
/// that event, in the order of `pods`.
pub async fn create_until_ready(
    api: &Endpoint,
    pods: Vec<(String, Value)>,
    creators: usize,
    selector: &str,
    deadline: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut conn = Connection::open(api).await?;
    let since = list_revision(&mut conn).await?;
    let mut watch = Watch::start(
        api,
        &format!("{PODS}?watch=true&labelSelector={selector}&resourceVersion={since}"),
    )
    .await?;
    let names: Vec<String> = pods.iter().map(|(n, _)| n.clone()).collect();
    let times: Arc<Mutex<HashMap<String, PodTimes>>> = Arc::new(Mutex::new(
        names
            .iter()
            .map(|n| (n.clone(), PodTimes::default()))
            .collect(),
    ));
    let queue = Arc::new(Mutex::new(VecDeque::from(pods)));
    let mut connections = Vec::new();
    for _ in 0..creators.min(names.len()) {
        connections.push(Connection::open(api).await?);
    }
    let mut tasks = Vec::new();
    for mut conn in connections {
        let (queue, times) = (queue.clone(), times.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((name, manifest)) = queue.lock().await.pop_front() else {
                    return anyhow::Ok(());
                };
                let body = Bytes::from(serde_json::to_vec(&manifest)?);
                let sent = Instant::now();
                times.lock().await.entry(name.clone()).or_default().sent = Some(sent);
                conn.request(Method::POST, PODS, "application/json", body)
                    .await?
                    .expect(StatusCode::CREATED, &format!("create pod {name}"))?;
            }
        }));
    }
    let mut waiting = names.len();
    let until = tokio::time::Instant::now() + deadline;
    while waiting > 0 {
        let event = tokio::time::timeout_at(until, watch.next_event())
            .await
            .with_context(|| format!("{waiting} pods were not Ready within {deadline:?}"))??;
        let Some((arrived, event)) = event else {
            bail!("the pod watch ended with {waiting} pods not Ready");
        };
        let pod = &event["object"];
        let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        if !is_ready(pod) {
            continue;
        }
        let mut times = times.lock().await;
        if let Some(t) = times.get_mut(name)
            && t.ready.is_none()
        {
            t.ready = Some(arrived);
            waiting -= 1;
        }
    }
    for task in tasks {
        task.await.context("a creator panicked")??;
    }
    let times = times.lock().await;
    names
        .iter()
        .map(|n| match times.get(n) {
            Some(PodTimes {
                sent: Some(s),
                ready: Some(r),
            }) => Ok(r.saturating_duration_since(*s)),
            _ => bail!("no timing for pod {n}"),
        })
        .collect()
}

/// Deletes `names` (grace period 0) and waits until they are gone.
pub async fn delete_pods(api: &Endpoint, names: &[&str], deadline: Duration) -> anyhow::Result<()> {
    let mut conn = Connection::open(api).await?;
    for name in names {
        conn.request(
            Method::DELETE,
            &format!("{PODS}/{name}?gracePeriodSeconds=0"),
            "application/json",
            Bytes::new(),
        )
        .await?
        .expect(StatusCode::OK, &format!("delete pod {name}"))?;
    }
    let until = Instant::now() + deadline;
    for name in names {
        loop {
            let reply = conn
                .request(
                    Method::GET,
                    &format!("{PODS}/{name}"),
                    "application/json",
                    Bytes::new(),
                )
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                break;
            }
            if Instant::now() > until {
                bail!("pod {name} was not gone within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
