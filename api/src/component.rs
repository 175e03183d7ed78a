//! Skiff's own `Component` kind: a Wasm component pushed to the cluster.
//!
//! A component is stored once, content-addressed by the sha256 of its bytes; the
//! object `skiff.dev/v1alpha1 Component` named `<name>.<tag>` records which digest a
//! `name:tag` reference points at and what the component exports. Pods name a
//! component in `containers[].image` as `name:tag` or `sha256:<hex>`.

use serde::{Deserialize, Serialize};

/// `apiVersion` of the Component kind.
pub const API_VERSION: &str = "skiff.dev/v1alpha1";
/// The tag used when a reference gives none.
pub const DEFAULT_TAG: &str = "latest";

/// What a component is, read from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComponentKind {
    /// Exports `wasi:http/incoming-handler`: an instance per request.
    Http,
    /// Exports `wasi:cli/run`: runs until it exits.
    Command,
    /// Exports neither; pods cannot run it.
    Unknown,
}

/// `spec` of a Component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Repository-style name, a DNS label (`hello`).
    pub name: String,
    /// Tag (`v1`, `latest`).
    pub tag: String,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Interfaces the component exports, e.g. `wasi:http/incoming-handler@0.2.0`.
    pub exports: Vec<String>,
    /// Interfaces the component imports.
    #[serde(default)]
    pub imports: Vec<String>,
    /// HTTP, command, or unknown.
    pub kind: ComponentKind,
}

/// Why text is not a component reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// `sha256:` followed by anything but 64 lower-case hex digits.
    #[error("{0:?} is not a sha256 digest: expected sha256: and 64 lower-case hex digits")]
    Digest(String),
    /// The name is not a DNS label.
    #[error(
        "component name {0:?} must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
    )]
    Name(String),
    /// The tag is empty, too long or has other characters.
    #[error(
        "component tag {0:?} must be 1-63 characters of lower-case letters, digits, '-' and '.', starting with a letter or digit"
    )]
    Tag(String),
}

/// A parsed `name:tag` or `sha256:<hex>` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentRef {
    Tagged { name: String, tag: String },
    Digest(String),
}

impl ComponentRef {
    /// Parses `name`, `name:tag` or `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Ok(ComponentRef::Digest(s.to_string()));
            }
            return Err(ReferenceError::Digest(s.to_string()));
        }
        let (name, tag) = s.split_once(':').unwrap_or((s, DEFAULT_TAG));
        if !is_component_name(name) {
            return Err(ReferenceError::Name(name.to_string()));
        }
        if !is_tag(tag) {
            return Err(ReferenceError::Tag(tag.to_string()));
        }
        Ok(ComponentRef::Tagged {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The Component object's name for a tagged reference: `<name>.<tag>`.
    pub fn object_name(&self) -> Option<String> {
        match self {
            ComponentRef::Tagged { name, tag } => Some(object_name(name, tag)),
            ComponentRef::Digest(_) => None,
        }
    }
}

/// The Component object's name for `name:tag`.
pub fn object_name(name: &str, tag: &str) -> String {
    format!("{name}.{tag}")
}

fn is_component_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            ComponentRef::parse("hello").unwrap(),
            ComponentRef::Tagged {
                name: "hello".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            ComponentRef::parse("hello:v1.2")
                .unwrap()
                .object_name()
                .unwrap(),
            "hello.v1.2"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            ComponentRef::parse(&digest).unwrap(),
            ComponentRef::Digest(digest.clone())
        );
        assert!(ComponentRef::parse("sha256:abc").is_err());
        assert!(ComponentRef::parse("Hello:v1").is_err());
        assert!(ComponentRef::parse("hello:").is_err());
        assert!(ComponentRef::parse("a.b:v1").is_err());
    }
}
