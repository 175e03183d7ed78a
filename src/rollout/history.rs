//! `skiff rollout history` and `skiff rollout undo` for Deployments: the
//! revisions are the Deployment's ReplicaSets, numbered by their
//! `deployment.kubernetes.io/revision` annotation, as in kubectl.

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use super::{Resolved, Target};
use crate::printer::{TabWriter, to_yaml};

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotations of a ReplicaSet that are the controller's, not the user's, so
/// an undo does not copy them onto the Deployment (kubectl's list).
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// List the revisions of a Deployment, or show one
///
/// Examples:
///   skiff rollout history deployment/web
///   skiff rollout history deployment/web --revision=2
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: Target,
    /// Show the pod template of this revision.
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

/// Roll a Deployment back to its previous (or a given) revision
///
/// Examples:
///   skiff rollout undo deployment/web
///   skiff rollout undo deployment/web --to-revision=1
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: Target,
    /// The revision to go back to (0: the one before the current).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let object = args.target.resolve(&["Deployment"]).await?;
    let deployment = object.get().await?;
    let revisions = revisions(&object, &deployment).await?;
    if args.revision > 0 {
        let rs = revisions
            .iter()
            .find(|(r, _)| *r == args.revision)
            .map(|(_, rs)| rs)
            .with_context(|| format!("unable to find the specified revision {}", args.revision))?;
        println!("{} with revision #{}", object.display(), args.revision);
        println!("Pod Template:");
        let template = rs["spec"]["template"].clone();
        for line in to_yaml(&template)?.lines() {
            println!("  {line}");
        }
        return Ok(());
    }
    if revisions.is_empty() {
        println!("No rollout history found in {}", object.display());
        return Ok(());
    }
    println!("{}", object.display());
    let mut table = TabWriter::for_tables();
    table.row(["REVISION", "CHANGE-CAUSE"]);
    for (revision, rs) in &revisions {
        let cause = rs["metadata"]["annotations"][CHANGE_CAUSE]
            .as_str()
            .unwrap_or("<none>");
        table.row([revision.to_string(), cause.to_string()]);
    }
    print!("{}", table.render());
    println!();
    Ok(())
}

pub async fn undo(args: UndoArgs) -> anyhow::Result<()> {
    let object = args.target.resolve(&["Deployment"]).await?;
    let deployment = object.get().await?;
    if deployment["spec"]["paused"] == true {
        bail!(
            "you cannot rollback a paused deployment; resume it first with 'skiff rollout resume {}' and try again",
            object.display()
        );
    }
    let revisions = revisions(&object, &deployment).await?;
    let (revision, rs) = if args.to_revision > 0 {
        revisions
            .iter()
            .find(|(r, _)| *r == args.to_revision)
            .with_context(|| {
                format!(
                    "unable to find specified revision {} in history",
                    args.to_revision
                )
            })?
    } else {
        // The newest revision is the current one; go to the one before it.
        match revisions.len() {
            0 => bail!("no rollout history found for deployment {:?}", object.name),
            1 => bail!(
                "no revision to roll back to: {} has only one",
                object.display()
            ),
            n => &revisions[n - 2],
        }
    };
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    if canonical(&template) == canonical(&deployment["spec"]["template"]) {
        println!(
            "{} skipped rollback (current template already matches revision {revision})",
            object.display()
        );
        return Ok(());
    }
    // The Deployment keeps its own bookkeeping annotations and takes the
    // user's annotations of the revision, as kubectl's rollback does.
    let mut annotations = Map::new();
    for key in NOT_COPIED {
        if let Some(v) = deployment["metadata"]["annotations"].get(*key) {
            annotations.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !NOT_COPIED.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": deployment["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    object.patch("application/json-patch+json", &patch).await?;
    println!("{} rolled back", object.display());
    Ok(())
}

/// The Deployment's ReplicaSets by revision, oldest first.
async fn revisions(object: &Resolved, deployment: &Value) -> anyhow::Result<Vec<(i64, Value)>> {
    let uid = deployment["metadata"]["uid"].as_str().unwrap_or("");
    let path = format!("/apis/apps/v1/namespaces/{}/replicasets", object.namespace);
    let list = object.client.get_json(&path).await?;
    let mut out: Vec<(i64, Value)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["controller"] == true && r["uid"] == uid)
        })
        .filter_map(|rs| {
            let revision = rs["metadata"]["annotations"][REVISION]
                .as_str()?
                .parse()
                .ok()?;
            Some((revision, rs.clone()))
        })
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

/// A template with null, empty-map and empty-list fields dropped, so that two
/// templates the server defaulted the same way compare equal.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .filter(|(_, v)| !matches!(v, Value::Null) && v != &json!({}) && v != &json!([]))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compare_without_empty_fields() {
        let a = json!({"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                       "spec": {"containers": [{"name": "main", "image": "hello:v1", "env": []}]}});
        let b = json!({"metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "main", "image": "hello:v1"}]}});
        assert_eq!(canonical(&a), canonical(&b));
        let c = json!({"metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "main", "image": "echo:v1"}]}});
        assert_ne!(canonical(&a), canonical(&c));
    }
}
