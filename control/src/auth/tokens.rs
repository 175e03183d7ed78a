//! Bootstrap tokens, stored as Kubernetes stores them: a Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` with
//! `token-id`, `token-secret`, optional `expiration` (RFC 3339) and
//! `usage-bootstrap-authentication: "true"`. `skiff token create` writes one
//! through the API; `skiff up` makes its own here.

use std::time::Duration;

use base64::Engine as _;
use rand::Rng;
use serde_json::{Value, json};
use skiff_api::join::{TOKEN_NAMESPACE, TOKEN_SECRET_PREFIX, TOKEN_SECRET_TYPE, valid_part};
use skiff_api::resource::by_kind;

use crate::registry::{Registry, WriteOptions};

/// Why a token was refused. The message goes back to the node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the bootstrap token is not valid for this cluster (unknown token id or wrong secret)")]
    Invalid,
    #[error("the bootstrap token has expired; create a new one with `skiff token create`")]
    Expired,
    #[error("look up the bootstrap token: {0}")]
    Lookup(String),
}

/// Checks `<id>.<secret>` against the stored tokens.
pub fn check(registry: &Registry, token: &str) -> Result<(), TokenError> {
    let (id, secret) = token.split_once('.').ok_or(TokenError::Invalid)?;
    if !valid_part(id, 6) || !valid_part(secret, 16) {
        return Err(TokenError::Invalid);
    }
    let secret_type =
        by_kind("v1", "Secret").ok_or_else(|| TokenError::Lookup("no Secret kind".into()))?;
    let stored = registry
        .try_get(
            secret_type,
            TOKEN_NAMESPACE,
            &format!("{TOKEN_SECRET_PREFIX}{id}"),
        )
        .map_err(|e| TokenError::Lookup(e.to_string()))?
        .ok_or(TokenError::Invalid)?;
    if stored.get("type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE) {
        return Err(TokenError::Invalid);
    }
    let field = |k: &str| data_field(&stored, k);
    let expected = field("token-secret").ok_or(TokenError::Invalid)?;
    // Compare in time independent of where the first difference is.
    let same = expected.len() == secret.len()
        && expected
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same || field("token-id").as_deref() != Some(id) {
        return Err(TokenError::Invalid);
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(TokenError::Invalid);
    }
    if let Some(expiration) = field("expiration") {
        let at: jiff::Timestamp = expiration.parse().map_err(|_| TokenError::Invalid)?;
        if at <= jiff::Timestamp::now() {
            return Err(TokenError::Expired);
        }
    }
    Ok(())
}

/// Creates a token valid for `ttl` (`None`: no expiry) and returns `<id>.<secret>`.
pub async fn create(
    registry: &Registry,
    ttl: Option<Duration>,
    description: &str,
) -> Result<String, skiff_api::ApiError> {
    let secret_type =
        by_kind("v1", "Secret").ok_or_else(|| skiff_api::ApiError::internal("no Secret kind"))?;
    let id = random_part(6);
    let secret = random_part(16);
    let mut string_data = json!({
        "token-id": id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "description": description,
    });
    if let Some(ttl) = ttl {
        let at = jiff::Timestamp::now()
            + jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
        string_data["expiration"] = json!(at.to_string());
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{TOKEN_SECRET_PREFIX}{id}"), "namespace": TOKEN_NAMESPACE},
        "type": TOKEN_SECRET_TYPE,
        "stringData": string_data,
    });
    let opts = WriteOptions {
        field_manager: "skiff-token".into(),
        ..Default::default()
    };
    registry
        .create(secret_type, TOKEN_NAMESPACE, object, &opts)
        .await?;
    Ok(format!("{id}.{secret}"))
}

fn random_part(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn data_field(secret: &Value, key: &str) -> Option<String> {
    let encoded = secret.get("data")?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}
