//! `skiff token create|list`: bootstrap tokens with which nodes join the
//! cluster (`skiff_api::join`), kept as Kubernetes keeps them (Secrets
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`),
//! but with only the sha256 of the secret part; single-use unless `--reusable`.

use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::Bytes;
use rand::Rng;
use serde_json::Value;
use skiff_api::join::{
    CLUSTER_INFO, CLUSTER_INFO_CA_KEY, JoinToken, TOKEN_NAMESPACE, TOKEN_REUSABLE_KEY,
    TOKEN_SECRET_PREFIX, TOKEN_SECRET_TYPE, pem_cert_hash,
};

use crate::client::ClusterArgs;
use crate::printer::TabWriter;
use skiff_client::{ApiClient, StatusError, is_not_found, query};

/// Manage the bootstrap tokens nodes join with.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (only it, so that `T=$(skiff token create)` works)
    ///
    /// The token carries the hash of the cluster's CA certificate, so a node
    /// that joins with it can trust the control plane from the first byte.
    ///
    /// Examples:
    ///   skiff token create
    ///   skiff token create --ttl 1h --description "edge box 7"
    ///   skiff token create --ttl 0        # never expires
    ///   skiff token create --reusable     # joins any number of nodes
    ///
    /// A token is single-use: the first node that joins with it uses it up.
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),
    /// List the bootstrap tokens (ids, expiry, description; never the secrets).
    ///
    /// Example: skiff token list
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// How long the token is valid (e.g. 30m, 24h); 0: it never expires.
    #[arg(long, default_value = "24h", value_parser = crate::duration::parse)]
    pub ttl: Duration,
    /// What the token is for, shown by `skiff token list`.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Let any number of nodes join with the token until it expires (by
    /// default the first join uses it up).
    #[arg(long)]
    pub reusable: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Create(args) => create(args).await,
        TokenCommand::List(args) => list(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let ca_hash = ca_hash(&client).await?;
    let expiration = if args.ttl.is_zero() {
        None
    } else {
        let ttl = jiff::SignedDuration::try_from(args.ttl).context("the --ttl is too long")?;
        let at = jiff::Timestamp::now()
            .checked_add(ttl)
            .context("the --ttl is too long")?;
        // Whole seconds, as kubeadm writes it.
        Some(jiff::Timestamp::from_second(at.as_second())?.to_string())
    };
    // An id that is taken already is drawn again.
    for _ in 0..5 {
        let token = JoinToken {
            ca_hash: ca_hash.clone(),
            id: random_part(6),
            secret: random_part(16),
        };
        let secret = skiff_control::auth::tokens::token_secret(
            &token.id,
            &token.secret,
            expiration.as_deref(),
            &args.description,
            args.reusable,
        );
        let path = format!("/api/v1/namespaces/{TOKEN_NAMESPACE}/secrets");
        let response = client
            .send(
                http::Method::POST,
                &path,
                "application/json",
                Bytes::from(serde_json::to_vec(&secret)?),
            )
            .await?;
        match response.json() {
            Ok(_) => {
                println!("{token}");
                return Ok(());
            }
            Err(e)
                if e.downcast_ref::<StatusError>()
                    .is_some_and(|s| s.code == 409) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    bail!("could not find a free token id after 5 tries")
}

/// The hash of the CA certificate the control plane publishes.
async fn ca_hash(client: &ApiClient) -> anyhow::Result<String> {
    let (namespace, name) = CLUSTER_INFO;
    let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
    const NO_CA: &str = "the cluster has no CA yet (is the node gateway running?)";
    let cluster_info = match client.get_json(&path).await {
        Ok(cm) => cm,
        Err(e) if is_not_found(&e) => bail!(NO_CA),
        Err(e) => return Err(e),
    };
    let Some(pem) = cluster_info["data"][CLUSTER_INFO_CA_KEY].as_str() else {
        bail!(NO_CA);
    };
    pem_cert_hash(pem).with_context(|| {
        format!("the {CLUSTER_INFO_CA_KEY} in {namespace}/{name} is not a PEM certificate")
    })
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let path = format!(
        "/api/v1/namespaces/{TOKEN_NAMESPACE}/secrets{}",
        query(&[("fieldSelector", format!("type={TOKEN_SECRET_TYPE}"))])
    );
    let secrets = client.get_json(&path).await?;
    let mut writer = TabWriter::for_tables();
    writer.row(["ID", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"]);
    let mut any = false;
    for secret in secrets["items"].as_array().into_iter().flatten() {
        let name = secret["metadata"]["name"].as_str().unwrap_or("");
        if !name.starts_with(TOKEN_SECRET_PREFIX) {
            continue;
        }
        let field = |key: &str| data_field(secret, key).unwrap_or_default();
        let expiration = field("expiration");
        let (ttl, expires) = match expiration.parse::<jiff::Timestamp>() {
            Ok(at) => {
                let left = at.duration_since(jiff::Timestamp::now());
                let ttl = if left.is_negative() {
                    "<expired>".to_string()
                } else {
                    skiff_api::table::human_duration(left)
                };
                (ttl, expiration.clone())
            }
            Err(_) => ("<forever>".to_string(), "<never>".to_string()),
        };
        let description = field("description");
        let usages = if field(TOKEN_REUSABLE_KEY) == "true" {
            "reusable"
        } else {
            "single-use"
        };
        writer.row([
            field("token-id"),
            ttl,
            expires,
            usages.to_string(),
            if description.is_empty() {
                "<none>".to_string()
            } else {
                description
            },
        ]);
        any = true;
    }
    if any {
        print!("{}", writer.render());
    } else {
        eprintln!("No bootstrap tokens found: create one with `skiff token create`");
    }
    Ok(())
}

/// A `data` entry of a Secret, decoded.
fn data_field(secret: &Value, key: &str) -> Option<String> {
    let encoded = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `len` random characters of `[a-z0-9]`, kubeadm's token alphabet.
fn random_part(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_bootstrap_shape() {
        let token = JoinToken {
            ca_hash: "ab".repeat(32),
            id: random_part(6),
            secret: random_part(16),
        };
        let parsed = JoinToken::parse(&token.to_string()).unwrap();
        assert_eq!(parsed, token);
    }
}
