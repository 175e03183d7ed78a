//! `skiff apply -f FILE|DIR|-`: write manifests to the cluster with
//! server-side apply, pushing local components named as images first.

mod local_images;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::Value;

use crate::client::ClusterArgs;
use crate::manifest::{self, Manifest};
use crate::push::push_component;
use skiff_client::discovery::{Discovery, Resource};
use skiff_client::{ApiClient, is_not_found};

/// Create or update objects from manifests (server-side apply)
///
/// Every object in the files is applied with field manager `skiff`; a
/// container image that is a path to a local `.wasm` file is pushed first as
/// `<file stem>:<12 hex of its sha256>` and the object applied with that.
/// Namespaces are applied before the objects that may live in them.
///
/// Examples:
///   skiff apply -f app.yaml
///   skiff apply -f manifests/          # every *.yaml, *.yml, *.json in it
///   cat app.yaml | skiff apply -f -
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A manifest file, a directory of them, or `-` for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Namespace of objects that do not name one [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut manifests = manifest::read_all(&args.files)?;
    if manifests.is_empty() {
        bail!("no objects passed to apply (the manifests are empty)");
    }
    // Find every local component before changing anything, so a missing file
    // fails the whole apply up front.
    let mut images = Vec::with_capacity(manifests.len());
    for m in &manifests {
        images.push(local_images::find(m)?);
    }
    let client = args.cluster.connect()?;
    let discovery = Discovery::load(&client).await?;

    let mut pushed: HashMap<PathBuf, String> = HashMap::new();
    for (m, found) in manifests.iter_mut().zip(&images) {
        for image in found {
            let reference = match pushed.get(&image.file) {
                Some(reference) => reference.clone(),
                None => {
                    let reference = push_file(&client, &image.file).await?;
                    pushed.insert(image.file.clone(), reference.clone());
                    reference
                }
            };
            local_images::set_image(&mut m.object, &image.pointer, &reference);
        }
    }

    // Namespaces first, the rest in the order written.
    manifests.sort_by_key(|m| !(m.api_version() == "v1" && m.kind() == "Namespace"));
    let default_namespace = client.namespace(args.namespace.as_deref());
    let mut failed = 0;
    for m in &manifests {
        match apply_one(&client, &discovery, m, default_namespace).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("{e:#}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} object(s) could not be applied",
            manifests.len()
        );
    }
    Ok(())
}

/// Pushes a local component file and prints what it became.
async fn push_file(client: &ApiClient, file: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let reference = local_images::reference_for(file, &bytes);
    push_component(client, bytes, &reference)
        .await
        .with_context(|| format!("push {} as {reference}", file.display()))?;
    println!("component/{reference} pushed");
    Ok(reference)
}

/// Applies one object; returns the line to print (`pod/hello created`).
async fn apply_one(
    client: &ApiClient,
    discovery: &Discovery,
    manifest: &Manifest,
    default_namespace: &str,
) -> anyhow::Result<String> {
    let resource = discovery
        .by_kind(manifest.api_version(), manifest.kind())
        .with_context(|| format!("apply {}", manifest.source))?;
    let name = manifest.name();
    if name.is_empty() {
        bail!(
            "{}: a {} needs metadata.name to be applied",
            manifest.source,
            manifest.kind()
        );
    }
    let mut object = manifest.object.clone();
    let namespace = namespace_for(resource, manifest, default_namespace, &mut object);
    let path = resource.object_path(namespace.as_deref(), name);

    let before = match client.get_json(&path).await {
        Ok(existing) => resource_version(&existing),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(e),
    };
    let body = serde_json::to_vec(&object).context("encode the object")?;
    let response = client
        .request(
            http::Method::PATCH,
            &format!("{path}?fieldManager=skiff&force=true"),
            skiff_client::ACCEPT_JSON,
            Some("application/apply-patch+yaml"),
            Bytes::from(body),
        )
        .await?;
    let created = response.status == http::StatusCode::CREATED;
    let written = response.json()?;
    let verb = if created || before.is_none() {
        "created"
    } else if before == resource_version(&written) {
        "unchanged"
    } else {
        "configured"
    };
    Ok(format!("{}/{name} {verb}", resource.type_name()))
}

/// The namespace the object is applied in (`None` for cluster-scoped
/// kinds), written into the object so path and body agree.
fn namespace_for(
    resource: &Resource,
    manifest: &Manifest,
    default_namespace: &str,
    object: &mut Value,
) -> Option<String> {
    if !resource.namespaced {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        return None;
    }
    let namespace = manifest
        .namespace()
        .unwrap_or(default_namespace)
        .to_string();
    object["metadata"]["namespace"] = Value::String(namespace.clone());
    Some(namespace)
}

fn resource_version(object: &Value) -> Option<String> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string)
}
