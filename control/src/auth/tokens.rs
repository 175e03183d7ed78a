//! Bootstrap tokens, stored as Kubernetes stores them (a Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! with `token-id`, optional `expiration` (RFC 3339) and
//! `usage-bootstrap-authentication: "true"`), except that the secret part is kept
//! only as its sha256 (`token-secret-sha256`), so that whoever reads the Secret
//! cannot join with it.
//!
//! A token is single-use unless its Secret says `usage-bootstrap-reusable:
//! "true"` (`skiff token create --reusable`): a successful join deletes it.
//! Expired tokens are deleted by [`run_cleaner`], as Kubernetes' tokencleaner
//! controller does (`pkg/controller/bootstrap/tokencleaner.go`).
//! `skiff token create` writes tokens through the API; `skiff up` makes its own here.

use std::time::Duration;

use base64::Engine as _;
use rand::Rng;
use serde_json::{Value, json};
use skiff_api::join::{
    TOKEN_NAMESPACE, TOKEN_REUSABLE_KEY, TOKEN_SECRET_HASH_KEY, TOKEN_SECRET_PREFIX,
    TOKEN_SECRET_TYPE, token_secret_hash, valid_part,
};
use skiff_api::meta;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::Reason;

use crate::registry::{DeleteOptions, Registry, WriteOptions};

/// How often expired tokens are looked for.
const CLEAN_EVERY: Duration = Duration::from_secs(5);

/// Why a token was refused. The message goes back to the node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the bootstrap token is not valid for this cluster (unknown token id or wrong secret)")]
    Invalid,
    #[error("the bootstrap token has expired; create a new one with `skiff token create`")]
    Expired,
    #[error(
        "the bootstrap token has been used already (tokens are single-use unless created with `skiff token create --reusable`); create a new one with `skiff token create`"
    )]
    Used,
    #[error("look up the bootstrap token: {0}")]
    Lookup(String),
}

/// A token that checked out: its Secret, to consume it after the join.
#[derive(Debug)]
pub struct ValidToken {
    secret: Value,
    reusable: bool,
}

fn secret_type() -> Result<&'static ResourceType, TokenError> {
    by_kind("v1", "Secret").ok_or_else(|| TokenError::Lookup("no Secret kind".into()))
}

/// Checks `<id>.<secret>` against the stored tokens.
pub fn check(registry: &Registry, token: &str) -> Result<ValidToken, TokenError> {
    let (id, secret) = token.split_once('.').ok_or(TokenError::Invalid)?;
    if !valid_part(id, 6) || !valid_part(secret, 16) {
        return Err(TokenError::Invalid);
    }
    let stored = registry
        .try_get(
            secret_type()?,
            TOKEN_NAMESPACE,
            &format!("{TOKEN_SECRET_PREFIX}{id}"),
        )
        .map_err(|e| TokenError::Lookup(e.to_string()))?
        .ok_or(TokenError::Invalid)?;
    let reusable = verify(&stored, id, secret, jiff::Timestamp::now())?;
    Ok(ValidToken {
        secret: stored,
        reusable,
    })
}

/// Checks a token's Secret at `now`; returns whether the token is reusable.
fn verify(
    stored: &Value,
    id: &str,
    secret: &str,
    now: jiff::Timestamp,
) -> Result<bool, TokenError> {
    if stored.get("type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE) {
        return Err(TokenError::Invalid);
    }
    let field = |k: &str| data_field(stored, k);
    let expected = field(TOKEN_SECRET_HASH_KEY).ok_or(TokenError::Invalid)?;
    let given = token_secret_hash(secret);
    // Compare in time independent of where the first difference is.
    let same = expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same || field("token-id").as_deref() != Some(id) {
        return Err(TokenError::Invalid);
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(TokenError::Invalid);
    }
    if expired(stored, now) {
        return Err(TokenError::Expired);
    }
    Ok(field(TOKEN_REUSABLE_KEY).as_deref() == Some("true"))
}

/// Whether a token's Secret has an expiration at or before `now` (one that does
/// not parse counts as expired: it cannot be honoured).
fn expired(stored: &Value, now: jiff::Timestamp) -> bool {
    match data_field(stored, "expiration") {
        None => false,
        Some(at) => match at.parse::<jiff::Timestamp>() {
            Ok(at) => at <= now,
            Err(_) => true,
        },
    }
}

/// Uses the token up, unless it is reusable: its Secret is deleted, only if it
/// is still the one checked (uid and resourceVersion), so that of two joins
/// racing with one token only one wins.
pub async fn consume(registry: &Registry, token: &ValidToken) -> Result<(), TokenError> {
    if token.reusable {
        return Ok(());
    }
    let name = meta::name(&token.secret).unwrap_or_default();
    let opts = DeleteOptions {
        precondition_uid: meta::uid(&token.secret).map(str::to_string),
        precondition_resource_version: meta::resource_version(&token.secret).map(str::to_string),
        ..Default::default()
    };
    match registry
        .delete(secret_type()?, TOKEN_NAMESPACE, name, &opts)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Err(TokenError::Used),
        Err(e) => Err(TokenError::Lookup(e.to_string())),
    }
}

/// The Secret of a new token: what `skiff token create` and [`create`] write.
pub fn token_secret(
    id: &str,
    secret: &str,
    expiration: Option<&str>,
    description: &str,
    reusable: bool,
) -> Value {
    let mut string_data = json!({
        "token-id": id,
        TOKEN_SECRET_HASH_KEY: token_secret_hash(secret),
        "usage-bootstrap-authentication": "true",
        "description": description,
    });
    if let Some(at) = expiration {
        string_data["expiration"] = json!(at);
    }
    if reusable {
        string_data[TOKEN_REUSABLE_KEY] = json!("true");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{TOKEN_SECRET_PREFIX}{id}"), "namespace": TOKEN_NAMESPACE},
        "type": TOKEN_SECRET_TYPE,
        "stringData": string_data,
    })
}

/// Creates a token valid for `ttl` (`None`: no expiry) and returns `<id>.<secret>`.
pub async fn create(
    registry: &Registry,
    ttl: Option<Duration>,
    description: &str,
    reusable: bool,
) -> Result<String, skiff_api::ApiError> {
    let secret_type =
        by_kind("v1", "Secret").ok_or_else(|| skiff_api::ApiError::internal("no Secret kind"))?;
    let id = random_part(6);
    let secret = random_part(16);
    let expiration = ttl.map(|ttl| {
        let at = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MAX);
        at.to_string()
    });
    let object = token_secret(&id, &secret, expiration.as_deref(), description, reusable);
    let opts = WriteOptions {
        field_manager: "skiff-token".into(),
        ..Default::default()
    };
    registry
        .create(secret_type, TOKEN_NAMESPACE, object, &opts)
        .await?;
    Ok(format!("{id}.{secret}"))
}

/// Deletes expired bootstrap tokens now and then, until the task is dropped.
pub async fn run_cleaner(registry: Registry) {
    let mut tick = tokio::time::interval(CLEAN_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = clean_expired(&registry).await {
            tracing::debug!(error = %e, "bootstrap token cleanup");
        }
    }
}

/// Deletes every expired bootstrap token; returns how many.
pub async fn clean_expired(registry: &Registry) -> Result<usize, TokenError> {
    let rt = secret_type()?;
    let now = jiff::Timestamp::now();
    let page = registry
        .list(rt, Some(TOKEN_NAMESPACE), None, None, &|s| {
            s.get("type").and_then(Value::as_str) == Some(TOKEN_SECRET_TYPE) && expired(s, now)
        })
        .map_err(|e| TokenError::Lookup(e.to_string()))?;
    let mut deleted = 0;
    for secret in &page.items {
        let Some(name) = meta::name(secret) else {
            continue;
        };
        let opts = DeleteOptions {
            precondition_uid: meta::uid(secret).map(str::to_string),
            ..Default::default()
        };
        match registry.delete(rt, TOKEN_NAMESPACE, name, &opts).await {
            Ok(_) => {
                tracing::info!(secret = name, "deleted an expired bootstrap token");
                deleted += 1;
            }
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => return Err(TokenError::Lookup(e.to_string())),
        }
    }
    Ok(deleted)
}

fn random_part(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A `data` (or, before the API server folded it, `stringData`) entry of a Secret.
fn data_field(secret: &Value, key: &str) -> Option<String> {
    if let Some(encoded) = secret.get("data").and_then(|d| d.get(key)?.as_str()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    secret
        .get("stringData")
        .and_then(|d| d.get(key)?.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "abcdef";
    const SECRET: &str = "0123456789abcdef";

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_secret_keeps_only_a_hash_of_the_token_secret() {
        let stored = token_secret(ID, SECRET, None, "edge", false);
        let text = stored.to_string();
        assert!(!text.contains(SECRET), "{text}");
        assert_eq!(
            stored["stringData"][TOKEN_SECRET_HASH_KEY],
            token_secret_hash(SECRET)
        );
        assert_eq!(stored["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(stored["type"], TOKEN_SECRET_TYPE);
        assert!(stored["stringData"].get("token-secret").is_none());
        assert!(stored["stringData"].get(TOKEN_REUSABLE_KEY).is_none());
    }

    #[test]
    fn a_token_is_checked_against_its_hash() {
        let single = token_secret(ID, SECRET, None, "", false);
        assert_eq!(verify(&single, ID, SECRET, now()), Ok(false));
        let reusable = token_secret(ID, SECRET, None, "", true);
        assert_eq!(verify(&reusable, ID, SECRET, now()), Ok(true));
        assert_eq!(
            verify(&single, ID, "0123456789abcdeg", now()),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(&single, "abcdeg", SECRET, now()),
            Err(TokenError::Invalid)
        );
        // A Secret holding the plain secret (and no hash) does not let it in.
        let mut plain = single.clone();
        plain["stringData"] = json!({
            "token-id": ID, "token-secret": SECRET,
            "usage-bootstrap-authentication": "true",
        });
        assert_eq!(verify(&plain, ID, SECRET, now()), Err(TokenError::Invalid));
        // The hash given as the secret is not the secret.
        let hash = token_secret_hash(SECRET);
        assert_eq!(verify(&single, ID, &hash, now()), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tokens_are_refused_and_found_by_the_cleaner() {
        let past = token_secret(ID, SECRET, Some("2029-12-31T23:59:59Z"), "", false);
        assert_eq!(verify(&past, ID, SECRET, now()), Err(TokenError::Expired));
        assert!(expired(&past, now()));
        let future = token_secret(ID, SECRET, Some("2030-01-01T00:00:01Z"), "", false);
        assert!(!expired(&future, now()));
        assert!(!expired(&token_secret(ID, SECRET, None, "", false), now()));
        let garbage = token_secret(ID, SECRET, Some("soon"), "", false);
        assert!(expired(&garbage, now()));
    }
}
