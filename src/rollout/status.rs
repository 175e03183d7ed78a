//! `skiff rollout status`: reads the object's status as kubectl's status
//! viewers do and prints each new message until the rollout is done.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use skiff_api::json::Pointer as _;

use super::Target;
use skiff_client::watch::Watch;
use skiff_client::{ACCEPT_JSON, query};

/// Show the status of the rollout, waiting until it is done
///
/// Examples:
///   skiff rollout status deployment/web
///   skiff rollout status ds/agent --timeout=2m
///   skiff rollout status deploy/web --watch=false
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Wait until the rollout is done (false: print the status once).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
    /// How long to wait (0: no limit), e.g. 30s, 5m.
    #[arg(long, default_value = "0", value_parser = crate::duration::parse)]
    pub timeout: Duration,
    /// Wait for this revision of a Deployment (0: the latest).
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let object = args
        .target
        .resolve(&["Deployment", "DaemonSet", "StatefulSet"])
        .await?;
    let follow = async {
        let mut current = object.get().await?;
        let mut last = String::new();
        loop {
            let (message, done) = rollout_status(&current, args.revision)?;
            if message != last {
                print!("{message}");
                last = message;
            }
            if done || !args.watch {
                return anyhow::Ok(());
            }
            // Watch from what was just read; a watch the server ends is reopened.
            let rv = current["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let path = format!(
                "{}{}",
                object.resource.collection_path(Some(&object.namespace)),
                query(&[
                    ("watch", "1".into()),
                    ("fieldSelector", format!("metadata.name={}", object.name)),
                    ("resourceVersion", rv),
                    ("allowWatchBookmarks", "true".into()),
                ])
            );
            let mut watch = Watch::open(&object.client, &path, ACCEPT_JSON).await?;
            loop {
                let Some(event) = watch.next().await? else {
                    current = object.get().await?;
                    break;
                };
                match event.kind.as_str() {
                    "DELETED" => bail!("object has been deleted"),
                    "ADDED" | "MODIFIED" => {}
                    _ => continue,
                }
                current = event.object;
                let (message, done) = rollout_status(&current, args.revision)?;
                if message != last {
                    print!("{message}");
                    last = message;
                }
                if done {
                    return Ok(());
                }
            }
        }
    };
    if args.timeout.is_zero() {
        follow.await
    } else {
        tokio::time::timeout(args.timeout, follow)
            .await
            .map_err(|_| anyhow::anyhow!("timed out waiting for the condition"))?
    }
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.at(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The message kubectl prints for this object's rollout, and whether it is done.
pub fn rollout_status(obj: &Value, revision: i64) -> anyhow::Result<(String, bool)> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let generation = int(obj, "/metadata/generation");
    let observed = int(obj, "/status/observedGeneration");
    match obj["kind"].as_str().unwrap_or("") {
        "Deployment" => {
            if revision > 0 {
                let running: i64 = obj
                    .at("/metadata/annotations/deployment.kubernetes.io~1revision")
                    .and_then(Value::as_str)
                    .and_then(|r| r.parse().ok())
                    .context("the deployment has no revision yet")?;
                if running != revision {
                    bail!(
                        "desired revision ({revision}) is different from the running revision ({running})"
                    );
                }
            }
            if generation > observed {
                return Ok((
                    "Waiting for deployment spec update to be observed...\n".into(),
                    false,
                ));
            }
            let timed_out = obj
                .at("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
            if timed_out {
                bail!("deployment {name:?} exceeded its progress deadline");
            }
            let replicas = obj.at("/spec/replicas").and_then(Value::as_i64);
            let updated = int(obj, "/status/updatedReplicas");
            let total = int(obj, "/status/replicas");
            let available = int(obj, "/status/availableReplicas");
            let waiting = |what: String| {
                Ok((
                    format!("Waiting for deployment {name:?} rollout to finish: {what}...\n"),
                    false,
                ))
            };
            if let Some(want) = replicas
                && updated < want
            {
                return waiting(format!(
                    "{updated} out of {want} new replicas have been updated"
                ));
            }
            if total > updated {
                return waiting(format!(
                    "{} old replicas are pending termination",
                    total - updated
                ));
            }
            if available < updated {
                return waiting(format!(
                    "{available} of {updated} updated replicas are available"
                ));
            }
            Ok((
                format!("deployment {name:?} successfully rolled out\n"),
                true,
            ))
        }
        "DaemonSet" => {
            if obj.at("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete") {
                bail!("rollout status is only available for RollingUpdate strategy type");
            }
            if generation > observed {
                return Ok((
                    "Waiting for daemon set spec update to be observed...\n".into(),
                    false,
                ));
            }
            let desired = int(obj, "/status/desiredNumberScheduled");
            let updated = int(obj, "/status/updatedNumberScheduled");
            let available = int(obj, "/status/numberAvailable");
            let waiting = |what: String| {
                Ok((
                    format!("Waiting for daemon set {name:?} rollout to finish: {what}...\n"),
                    false,
                ))
            };
            if updated < desired {
                return waiting(format!(
                    "{updated} out of {desired} new pods have been updated"
                ));
            }
            if available < desired {
                return waiting(format!(
                    "{available} of {desired} updated pods are available"
                ));
            }
            Ok((
                format!("daemon set {name:?} successfully rolled out\n"),
                true,
            ))
        }
        "StatefulSet" => {
            if obj.at("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete") {
                bail!("rollout status is only available for RollingUpdate strategy type");
            }
            if observed == 0 || generation > observed {
                return Ok((
                    "Waiting for statefulset spec update to be observed...\n".into(),
                    false,
                ));
            }
            let replicas = obj
                .at("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready = int(obj, "/status/readyReplicas");
            if ready < replicas {
                return Ok((
                    format!("Waiting for {} pods to be ready...\n", replicas - ready),
                    false,
                ));
            }
            let updated = int(obj, "/status/updatedReplicas");
            if let Some(partition) = obj
                .at("/spec/updateStrategy/rollingUpdate/partition")
                .and_then(Value::as_i64)
            {
                if updated < replicas - partition {
                    return Ok((
                        format!(
                            "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...\n",
                            replicas - partition
                        ),
                        false,
                    ));
                }
                return Ok((
                    format!(
                        "partitioned roll out complete: {updated} new pods have been updated...\n"
                    ),
                    true,
                ));
            }
            let update_rev = obj["status"]["updateRevision"].as_str().unwrap_or("");
            let current_rev = obj["status"]["currentRevision"].as_str().unwrap_or("");
            if update_rev != current_rev {
                return Ok((
                    format!(
                        "waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}...\n"
                    ),
                    false,
                ));
            }
            Ok((
                format!(
                    "statefulset rolling update complete {} pods at revision {current_rev}...\n",
                    int(obj, "/status/currentReplicas")
                ),
                true,
            ))
        }
        other => bail!("no status viewer has been implemented for {other}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
               "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn deployment_messages_follow_kubectl() {
        let (m, done) =
            rollout_status(&deployment(2, json!({"observedGeneration": 1})), 0).expect("status");
        assert_eq!(m, "Waiting for deployment spec update to be observed...\n");
        assert!(!done);
        let s = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3});
        let (m, _) = rollout_status(&deployment(2, s), 0).expect("status");
        assert_eq!(
            m,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
        );
        let s = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3});
        let (m, _) = rollout_status(&deployment(2, s), 0).expect("status");
        assert_eq!(
            m,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
        );
        let s = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2});
        let (m, _) = rollout_status(&deployment(2, s), 0).expect("status");
        assert_eq!(
            m,
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n"
        );
        let s = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        let (m, done) = rollout_status(&deployment(2, s), 0).expect("status");
        assert_eq!(m, "deployment \"web\" successfully rolled out\n");
        assert!(done);
        let s = json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        let err = rollout_status(&deployment(2, s), 0).expect_err("deadline");
        assert_eq!(
            err.to_string(),
            "deployment \"web\" exceeded its progress deadline"
        );
    }

    #[test]
    fn daemon_set_messages_follow_kubectl() {
        let ds = json!({"kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
                       "updatedNumberScheduled": 3, "numberAvailable": 2}});
        let (m, done) = rollout_status(&ds, 0).expect("status");
        assert_eq!(
            m,
            "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available...\n"
        );
        assert!(!done);
    }
}
