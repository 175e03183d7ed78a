//! `skiff rollout`: watch, list, undo, restart, pause and resume the rollouts
//! of Deployments (and DaemonSets and StatefulSets where Kubernetes allows),
//! as `kubectl rollout` does.

mod history;
mod status;

use anyhow::bail;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::client::ClusterArgs;
use skiff_client::ApiClient;
use skiff_client::discovery::{Discovery, Resource};

/// Manage the rollout of a Deployment, DaemonSet or StatefulSet
///
/// Examples:
///   skiff rollout status deployment/web
///   skiff rollout history deployment/web
///   skiff rollout undo deployment/web --to-revision=1
///   skiff rollout restart deployment/web
///   skiff rollout pause deployment/web && skiff rollout resume deployment/web
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show the status of the rollout, waiting until it is done.
    Status(status::Args),
    /// List the revisions of a Deployment, or show one.
    History(history::HistoryArgs),
    /// Roll a Deployment back to its previous (or a given) revision.
    Undo(history::UndoArgs),
    /// Restart every pod, rolling, by stamping the pod template.
    Restart(Target),
    /// Stop rolling out changes to a Deployment's pod template.
    Pause(Target),
    /// Roll out the changes made while the Deployment was paused.
    Resume(Target),
}

/// The object a rollout command acts on.
#[derive(clap::Args)]
pub struct Target {
    /// TYPE/NAME or TYPE NAME
    #[arg(value_name = "TYPE[/NAME]", required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// Namespace of the object [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// An object resolved and read from the cluster.
pub struct Resolved {
    pub client: ApiClient,
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Status(a) => status::run(a).await,
        Command::History(a) => history::history(a).await,
        Command::Undo(a) => history::undo(a).await,
        Command::Restart(t) => restart(t).await,
        Command::Pause(t) => set_paused(t, true).await,
        Command::Resume(t) => set_paused(t, false).await,
    }
}

impl Target {
    /// Resolves the object, refusing kinds that have no rollout.
    pub async fn resolve(&self, allowed: &[&str]) -> anyhow::Result<Resolved> {
        let client = self.cluster.connect()?;
        let discovery = Discovery::load(&client).await?;
        let (resource, name) = discovery.one_object(&self.target)?;
        if !allowed.contains(&resource.kind.as_str()) {
            bail!(
                "{} has no rollout that this command manages: use one of {}",
                resource.type_name(),
                allowed.join(", ")
            );
        }
        let resource = resource.clone();
        let namespace = client.namespace(self.namespace.as_deref()).to_string();
        Ok(Resolved {
            client,
            resource,
            namespace,
            name,
        })
    }
}

impl Resolved {
    pub fn path(&self) -> String {
        self.resource.object_path(Some(&self.namespace), &self.name)
    }

    /// `deployment.apps/web`, as kubectl names it in its messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.resource.type_name(), self.name)
    }

    pub async fn get(&self) -> anyhow::Result<Value> {
        self.client.get_json(&self.path()).await
    }

    pub async fn patch(&self, content_type: &str, patch: &Value) -> anyhow::Result<Value> {
        self.client
            .send(
                http::Method::PATCH,
                &self.path(),
                content_type,
                Bytes::from(serde_json::to_vec(patch)?),
            )
            .await?
            .json()
    }
}

async fn restart(target: Target) -> anyhow::Result<()> {
    let object = target
        .resolve(&["Deployment", "DaemonSet", "StatefulSet"])
        .await?;
    let current = object.get().await?;
    if current["spec"]["paused"] == true {
        bail!(
            "can't restart paused deployment (run rollout resume first): skiff rollout resume {}",
            object.display()
        );
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": now
    }}}}});
    object
        .patch("application/strategic-merge-patch+json", &patch)
        .await?;
    println!("{} restarted", object.display());
    Ok(())
}

async fn set_paused(target: Target, paused: bool) -> anyhow::Result<()> {
    let object = target.resolve(&["Deployment"]).await?;
    let current = object.get().await?;
    let verb = if paused { "paused" } else { "resumed" };
    match (current["spec"]["paused"] == true, paused) {
        (true, true) => bail!("{} is already paused", object.display()),
        (false, false) => bail!("{} is not paused", object.display()),
        _ => {}
    }
    object
        .patch(
            "application/merge-patch+json",
            &json!({"spec": {"paused": paused}}),
        )
        .await?;
    println!("{} {verb}", object.display());
    Ok(())
}
