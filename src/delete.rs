//! `skiff delete TYPE NAME... | -f FILE`: delete objects and, like kubectl,
//! wait until they are gone.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::json;

use crate::client::ClusterArgs;
use crate::manifest;
use skiff_client::discovery::{Discovery, Resource};
use skiff_client::watch::Watch;
use skiff_client::{ACCEPT_JSON, ApiClient, StatusError, is_not_found, query};

/// Delete objects by type and name, by label, or as named in manifests
///
/// By default the command waits until the objects are gone (a pod on a node
/// stops first, within its grace period).
///
/// Examples:
///   skiff delete pod hello
///   skiff delete deploy/web svc/web -n demo
///   skiff delete pods -l app=web
///   skiff delete -f app.yaml
///   skiff delete pod hello --now --wait=false
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// TYPE NAME..., or TYPE/NAME...
    #[arg(value_name = "TYPE[/NAME]", required_unless_present = "files")]
    pub targets: Vec<String>,
    /// Delete the objects in these manifests (file, directory or `-`; repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "targets"
    )]
    pub files: Vec<String>,
    /// Namespace of the objects [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Delete every object of TYPE matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Seconds a pod gets to stop; -1 keeps the pod's own setting.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Stop immediately (a grace period of 1 second).
    #[arg(long, conflicts_with = "grace_period")]
    pub now: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long to wait for the objects to go (0: no limit), e.g. 30s, 2m.
    #[arg(long, default_value = "0", value_parser = crate::duration::parse)]
    pub timeout: Duration,
    /// Succeed when an object does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// One object to delete.
struct Target<'a> {
    resource: &'a Resource,
    namespace: Option<String>,
    name: String,
}

/// An object whose deletion was accepted, to wait for.
struct Deleting<'a> {
    target: Target<'a>,
    uid: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let discovery = Discovery::load(&client).await?;
    let default_namespace = client.namespace(args.namespace.as_deref());
    let targets = if args.files.is_empty() {
        targets(&client, &discovery, &args, default_namespace).await?
    } else {
        let mut out = Vec::new();
        for m in manifest::read_all(&args.files)? {
            let resource = discovery.by_kind(m.api_version(), m.kind())?;
            let namespace = resource
                .namespaced
                .then(|| m.namespace().unwrap_or(default_namespace).to_string());
            out.push(Target {
                resource,
                namespace,
                name: m.name().to_string(),
            });
        }
        out
    };
    if targets.is_empty() {
        if args.selector.is_some() {
            eprintln!("No resources found");
            return Ok(());
        }
        bail!("no objects to delete: name them (skiff delete pod NAME) or pass -f FILE");
    }

    let grace = if args.now { 1 } else { args.grace_period };
    let mut options = json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Background",
    });
    if grace >= 0 {
        options["gracePeriodSeconds"] = json!(grace);
    }
    let body = Bytes::from(serde_json::to_vec(&options)?);

    let mut errors: Vec<anyhow::Error> = Vec::new();
    let mut deleting = Vec::new();
    for target in targets {
        let path = target
            .resource
            .object_path(target.namespace.as_deref(), &target.name);
        let response = client
            .request(
                http::Method::DELETE,
                &path,
                ACCEPT_JSON,
                Some("application/json"),
                body.clone(),
            )
            .await?;
        match response.json() {
            Ok(answer) => {
                println!(
                    "{} \"{}\" deleted",
                    target.resource.type_name(),
                    target.name
                );
                // A Status means it is gone already; an object is still going.
                if answer["kind"] != "Status"
                    && let Some(uid) = answer["metadata"]["uid"].as_str()
                {
                    let uid = uid.to_string();
                    deleting.push(Deleting { target, uid });
                }
            }
            Err(e) if args.ignore_not_found && is_not_found(&e) => {}
            Err(e) => errors.push(e),
        }
    }

    if args.wait {
        let wait_all = async {
            for d in &deleting {
                wait_gone(&client, d).await?;
            }
            anyhow::Ok(())
        };
        if args.timeout.is_zero() {
            wait_all.await?;
        } else {
            match tokio::time::timeout(args.timeout, wait_all).await {
                Ok(result) => result?,
                Err(_) => bail!(
                    "timed out after {:?} waiting for the objects to be deleted (a pod on a node that is down cannot stop; try --now, or --wait=false)",
                    args.timeout
                ),
            }
        }
    }
    let Some(last) = errors.pop() else {
        return Ok(());
    };
    for e in errors {
        eprintln!("{e:#}");
    }
    Err(last)
}

/// Targets named on the command line: `TYPE NAME...`, `TYPE/NAME...`, or
/// `TYPE -l SELECTOR`.
async fn targets<'a>(
    client: &ApiClient,
    discovery: &'a Discovery,
    args: &Args,
    default_namespace: &str,
) -> anyhow::Result<Vec<Target<'a>>> {
    let namespace_of = |r: &Resource| r.namespaced.then(|| default_namespace.to_string());
    let mut out = Vec::new();
    if args.targets[0].contains('/') {
        for arg in &args.targets {
            let Some((kind, name)) = arg.split_once('/') else {
                bail!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form: write {arg:?} as TYPE/NAME"
                );
            };
            let resource = discovery.by_name(kind)?;
            out.push(Target {
                resource,
                namespace: namespace_of(resource),
                name: name.to_string(),
            });
        }
        return Ok(out);
    }
    let resource = discovery.by_name(&args.targets[0])?;
    let names = &args.targets[1..];
    if let Some(selector) = &args.selector {
        if !names.is_empty() {
            bail!("name objects or select them with -l, not both");
        }
        let namespace = namespace_of(resource);
        let path = format!(
            "{}{}",
            resource.collection_path(namespace.as_deref()),
            query(&[("labelSelector", selector.clone())])
        );
        let list = client.get_json(&path).await?;
        for item in list["items"].as_array().into_iter().flatten() {
            out.push(Target {
                resource,
                namespace: namespace.clone(),
                name: item["metadata"]["name"].as_str().unwrap_or("").to_string(),
            });
        }
        return Ok(out);
    }
    if names.is_empty() {
        bail!(
            "resource(s) were provided, but no name was specified: skiff delete {} NAME (or -l SELECTOR)",
            args.targets[0]
        );
    }
    for name in names {
        out.push(Target {
            resource,
            namespace: namespace_of(resource),
            name: name.clone(),
        });
    }
    Ok(out)
}

/// Waits until the object is gone: not found, or replaced by one with another uid.
async fn wait_gone(client: &ApiClient, d: &Deleting<'_>) -> anyhow::Result<()> {
    let r = d.target.resource;
    let namespace = d.target.namespace.as_deref();
    loop {
        let current = match client
            .get_json(&r.object_path(namespace, &d.target.name))
            .await
        {
            Ok(object) => object,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if current["metadata"]["uid"].as_str() != Some(d.uid.as_str()) {
            return Ok(());
        }
        let rv = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let path = format!(
            "{}{}",
            r.collection_path(namespace),
            query(&[
                ("fieldSelector", format!("metadata.name={}", d.target.name)),
                ("watch", "1".into()),
                ("resourceVersion", rv),
            ])
        );
        let mut watch = Watch::open(client, &path, ACCEPT_JSON).await?;
        loop {
            match watch.next().await {
                Ok(Some(event)) if event.kind == "DELETED" => {
                    if event.object["metadata"]["uid"].as_str() == Some(d.uid.as_str()) {
                        return Ok(());
                    }
                }
                Ok(Some(_)) => {}
                // The watch ended or expired (410 Gone): look again.
                Ok(None) => break,
                Err(e) if e.downcast_ref::<StatusError>().is_some() => break,
                Err(e) => return Err(e).context("watch the deletion"),
            }
        }
    }
}
