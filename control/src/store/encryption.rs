//! Encryption at rest: the bytes the store writes for chosen resources (Secrets)
//! are sealed with AES-256-GCM, the rest pass through untouched.
//!
//! This is Kubernetes' value transformer
//! (`staging/src/k8s.io/apiserver/pkg/storage/value/transformer.go` and
//! `encrypt/aes/aes.go`) at the store boundary: everything above the store (the
//! registry, watch, informers) sees plaintext; only the bytes on disk are sealed.
//! A sealed value is the envelope Kubernetes writes to etcd:
//! `k8s:enc:aesgcm:v1:<key name>:` + a random 96-bit nonce + ciphertext and tag,
//! with the value's storage key as additional authenticated data, so a sealed
//! value copied under another key does not open.
//!
//! Writes use the first provider configured for the resource (its first key);
//! reads use whichever provider the value's prefix names, so a new key can be
//! put first while values sealed under the old one stay readable until they are
//! sealed again ([`config`] reads the file, `store::redb::reseal` rewrites).
//! A sealed value naming a key that is not configured is an error, never passed
//! through; plaintext is read only where the `identity` provider is listed.

pub mod config;

use std::borrow::Cow;

use aes_gcm::aead::{AeadInOut, Generate, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};

/// The start of every sealed value, whatever the provider.
const SEALED: &[u8] = b"k8s:enc:";
/// The start of a value sealed by the `aesgcm` provider, before the key name.
const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// `Result` with [`EncryptionError`].
pub type Result<T, E = EncryptionError> = std::result::Result<T, E>;

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    #[error(
        "sealed with key {0:?}, which the encryption configuration does not list (was the key removed or the file replaced?)"
    )]
    UnknownKey(String),
    #[error("sealed by a provider the encryption configuration does not list")]
    UnknownProvider,
    #[error(
        "does not open with key {0:?}: the key is not the one it was sealed with, or the stored bytes were changed"
    )]
    Open(String),
    #[error(
        "stored unencrypted, and the encryption configuration lists no identity provider for it"
    )]
    Plaintext,
    #[error("sealing with key {0:?} failed: {1}")]
    Seal(String, String),
}

/// Why a key cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The name goes into every envelope, between `:`s.
    #[error("key name {0:?} must be non-empty and must not contain ':'")]
    Name(String),
    #[error("key {name:?} is {len} bytes; aesgcm keys here are 32 bytes (AES-256)")]
    Length { name: String, len: usize },
}

/// How values are sealed, per resource. [`Encryption::none`] seals nothing.
#[derive(Debug, Default)]
pub struct Encryption {
    rules: Vec<ResourceRule>,
}

/// The providers for a set of resources, in order: the first one writes.
#[derive(Debug)]
pub struct ResourceRule {
    /// Resource ids as the store keys them (`secrets`, `deployments.apps`).
    pub resources: Vec<String>,
    pub providers: Vec<Provider>,
}

/// One way of storing a value.
#[derive(Debug)]
pub enum Provider {
    /// AES-256-GCM under one of these keys; the first one seals.
    AesGcm(Vec<AesKey>),
    /// Plaintext.
    Identity,
}

/// A named AES-256 key.
pub struct AesKey {
    name: String,
    /// `k8s:enc:aesgcm:v1:<name>:`
    prefix: Vec<u8>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for AesKey {
    /// Only the name: the key itself never goes to a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesKey").field("name", &self.name).finish()
    }
}

impl AesKey {
    /// A key named `name` (which the envelope carries, so it may not hold `:`)
    /// from its 32 bytes.
    pub fn new(name: &str, secret: &[u8]) -> Result<Self, KeyError> {
        if name.is_empty() || name.contains(':') {
            return Err(KeyError::Name(name.to_string()));
        }
        let cipher = Aes256Gcm::new_from_slice(secret).map_err(|_| KeyError::Length {
            name: name.to_string(),
            len: secret.len(),
        })?;
        Ok(AesKey {
            name: name.to_string(),
            prefix: format!("{AESGCM_PREFIX}{name}:").into_bytes(),
            cipher,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `prefix || nonce || ciphertext || tag`, the nonce fresh from the
    /// operating system's random source.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let failed =
            |e: &dyn std::fmt::Display| EncryptionError::Seal(self.name.clone(), e.to_string());
        // A random 96-bit nonce, as Kubernetes' aesgcm provider: safe for about
        // 2^32 writes under one key, which is why keys are rotated.
        let nonce = Nonce::<Aes256Gcm>::try_generate().map_err(|e| failed(&e))?;
        let mut out = Vec::with_capacity(self.prefix.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, aad, (&mut out[start..]).into())
            .map_err(|e| failed(&e))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The plaintext of `sealed` (without the prefix).
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let failed = || EncryptionError::Open(self.name.clone());
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(failed());
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| failed())?;
        let tag = Tag::try_from(tag).map_err(|_| failed())?;
        let mut plaintext = ciphertext.to_vec();
        self.cipher
            .decrypt_inout_detached(&nonce, aad, plaintext.as_mut_slice().into(), &tag)
            .map_err(|_| failed())?;
        Ok(plaintext)
    }
}

impl Encryption {
    /// Seals nothing: every value is stored as it is (and a sealed one fails to
    /// read).
    pub fn none() -> Self {
        Encryption::default()
    }

    pub fn new(rules: Vec<ResourceRule>) -> Self {
        Encryption { rules }
    }

    /// The rule for the resource of a storage key (`secrets/ns/name`).
    fn rule(&self, key: &str) -> Option<&ResourceRule> {
        if self.rules.is_empty() {
            return None;
        }
        let resource = key.split('/').next().unwrap_or(key);
        self.rules
            .iter()
            .find(|r| r.resources.iter().any(|res| res == resource))
    }

    /// The key new values of this storage key are sealed with; `None` when they
    /// are stored as plaintext.
    fn sealing_key(&self, key: &str) -> Option<&AesKey> {
        match self.rule(key)?.providers.first()? {
            Provider::AesGcm(keys) => keys.first(),
            Provider::Identity => None,
        }
    }

    /// Whether values under this storage key are written sealed.
    pub fn seals(&self, key: &str) -> bool {
        self.sealing_key(key).is_some()
    }

    /// The bytes to store for `plaintext` under storage key `key`, `aad` binding
    /// them to where they are stored.
    pub fn seal<'a>(&self, key: &str, aad: &[u8], plaintext: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        match self.sealing_key(key) {
            Some(aes) => Ok(Cow::Owned(aes.seal(aad, plaintext)?)),
            None => Ok(Cow::Borrowed(plaintext)),
        }
    }

    /// The plaintext of bytes stored under `key` with `aad`.
    pub fn open<'a>(&self, key: &str, aad: &[u8], stored: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        if !stored.starts_with(SEALED) {
            self.accepts_plaintext(key)?;
            return Ok(Cow::Borrowed(stored));
        }
        let rule = self.rule(key);
        let aes = rule
            .into_iter()
            .flat_map(|r| &r.providers)
            .filter_map(|p| match p {
                Provider::AesGcm(keys) => Some(keys),
                Provider::Identity => None,
            })
            .flatten()
            .find(|k| stored.starts_with(&k.prefix));
        match aes {
            Some(aes) => Ok(Cow::Owned(aes.open(aad, &stored[aes.prefix.len()..])?)),
            None => Err(unknown(stored)),
        }
    }

    /// Whether a plaintext value may be read under `key`: for a resource not
    /// configured, or one whose providers include `identity`.
    pub fn accepts_plaintext(&self, key: &str) -> Result<()> {
        match self.rule(key) {
            Some(rule)
                if !rule
                    .providers
                    .iter()
                    .any(|p| matches!(p, Provider::Identity)) =>
            {
                Err(EncryptionError::Plaintext)
            }
            _ => Ok(()),
        }
    }

    /// Whether bytes stored under `key` are already as a write would store
    /// them now: sealed with the current key, or plaintext where plaintext is
    /// written. A re-seal rewrites the rest.
    pub fn is_current(&self, key: &str, stored: &[u8]) -> bool {
        match self.sealing_key(key) {
            Some(aes) => stored.starts_with(&aes.prefix),
            None => !stored.starts_with(SEALED),
        }
    }

    /// Whether any resource is sealed at all.
    pub fn is_enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The resources the configuration names.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.resources.iter().map(String::as_str))
    }
}

/// The error for a sealed value no configured key opens, naming its key when
/// the prefix is one of the `aesgcm` provider's.
fn unknown(stored: &[u8]) -> EncryptionError {
    let Some(rest) = stored.strip_prefix(AESGCM_PREFIX.as_bytes()) else {
        return EncryptionError::UnknownProvider;
    };
    match rest.iter().position(|b| *b == b':') {
        Some(end) => {
            EncryptionError::UnknownKey(String::from_utf8_lossy(&rest[..end]).into_owned())
        }
        None => EncryptionError::UnknownProvider,
    }
}

/// The name of the key a stored value was sealed with, if it is sealed by the
/// `aesgcm` provider.
pub fn sealed_key_name(stored: &[u8]) -> Option<String> {
    match unknown(stored) {
        EncryptionError::UnknownKey(name) => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, byte: u8) -> AesKey {
        AesKey::new(name, &[byte; 32]).unwrap()
    }

    fn secrets(providers: Vec<Provider>) -> Encryption {
        Encryption::new(vec![ResourceRule {
            resources: vec!["secrets".into()],
            providers,
        }])
    }

    #[test]
    fn a_sealed_value_carries_the_kubernetes_envelope_and_opens_again() {
        let enc = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        let plaintext = br#"{"data":{"password":"aHVudGVyMg=="}}"#;
        let sealed = enc
            .seal("secrets/ns/a", b"secrets/ns/a", plaintext)
            .unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        assert_eq!(sealed.len(), 23 + 12 + plaintext.len() + 16);
        assert!(!sealed.windows(10).any(|w| w == b"aHVudGVyMg"));
        let opened = enc.open("secrets/ns/a", b"secrets/ns/a", &sealed).unwrap();
        assert_eq!(&opened[..], plaintext);
        assert_eq!(sealed_key_name(&sealed).as_deref(), Some("key1"));

        // A fresh nonce per write: the same value seals differently.
        let again = enc
            .seal("secrets/ns/a", b"secrets/ns/a", plaintext)
            .unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn other_resources_pass_through() {
        let enc = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        let value = br#"{"data":{"a":"b"}}"#;
        let stored = enc
            .seal("configmaps/ns/a", b"configmaps/ns/a", value)
            .unwrap();
        assert!(matches!(stored, Cow::Borrowed(_)));
        assert_eq!(
            &enc.open("configmaps/ns/a", b"configmaps/ns/a", value)
                .unwrap()[..],
            value
        );
        // A resource whose name only starts like a sealed one is not sealed.
        assert!(!enc.seals("secretsx/ns/a"));
        assert!(enc.seals("secrets/ns/a"));
    }

    #[test]
    fn a_value_moved_to_another_key_or_changed_does_not_open() {
        let enc = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        let sealed = enc
            .seal("secrets/ns/a", b"secrets/ns/a", b"{}")
            .unwrap()
            .into_owned();
        assert_eq!(
            enc.open("secrets/ns/b", b"secrets/ns/b", &sealed),
            Err(EncryptionError::Open("key1".into()))
        );
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(
            enc.open("secrets/ns/a", b"secrets/ns/a", &changed),
            Err(EncryptionError::Open("key1".into()))
        );
        let truncated = &sealed[..30];
        assert!(
            enc.open("secrets/ns/a", b"secrets/ns/a", truncated)
                .is_err()
        );
    }

    #[test]
    fn a_wrong_or_missing_key_is_an_error_never_plaintext() {
        let one = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        let sealed = one
            .seal("secrets/ns/a", b"secrets/ns/a", b"{}")
            .unwrap()
            .into_owned();
        // Same name, other bytes (a replaced key file).
        let other = secrets(vec![
            Provider::AesGcm(vec![key("key1", 2)]),
            Provider::Identity,
        ]);
        assert_eq!(
            other.open("secrets/ns/a", b"secrets/ns/a", &sealed),
            Err(EncryptionError::Open("key1".into()))
        );
        // The key is gone, even with identity listed.
        let gone = secrets(vec![
            Provider::AesGcm(vec![key("key2", 2)]),
            Provider::Identity,
        ]);
        assert_eq!(
            gone.open("secrets/ns/a", b"secrets/ns/a", &sealed),
            Err(EncryptionError::UnknownKey("key1".into()))
        );
        // Encryption switched off for the resource entirely.
        assert_eq!(
            Encryption::none().open("secrets/ns/a", b"secrets/ns/a", &sealed),
            Err(EncryptionError::UnknownKey("key1".into()))
        );
        assert_eq!(
            one.open("secrets/ns/a", b"secrets/ns/a", b"k8s:enc:kms:v2:x:abc"),
            Err(EncryptionError::UnknownProvider)
        );
    }

    #[test]
    fn plaintext_reads_only_with_identity_listed() {
        let strict = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        assert_eq!(
            strict.open("secrets/ns/a", b"secrets/ns/a", b"{}"),
            Err(EncryptionError::Plaintext)
        );
        let lenient = secrets(vec![
            Provider::AesGcm(vec![key("key1", 1)]),
            Provider::Identity,
        ]);
        assert_eq!(
            &lenient
                .open("secrets/ns/a", b"secrets/ns/a", b"{}")
                .unwrap()[..],
            b"{}"
        );
        assert!(!lenient.is_current("secrets/ns/a", b"{}"));
    }

    #[test]
    fn the_first_key_writes_and_every_listed_key_reads() {
        let old = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        let sealed_old = old
            .seal("secrets/ns/a", b"secrets/ns/a", b"{\"v\":1}")
            .unwrap()
            .into_owned();
        let rotating = secrets(vec![Provider::AesGcm(vec![key("key2", 2), key("key1", 1)])]);
        assert!(!rotating.is_current("secrets/ns/a", &sealed_old));
        assert_eq!(
            &rotating
                .open("secrets/ns/a", b"secrets/ns/a", &sealed_old)
                .unwrap()[..],
            b"{\"v\":1}"
        );
        let sealed_new = rotating
            .seal("secrets/ns/a", b"secrets/ns/a", b"{}")
            .unwrap();
        assert!(sealed_new.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        assert!(rotating.is_current("secrets/ns/a", &sealed_new));
    }

    #[test]
    fn identity_first_writes_plaintext_and_still_reads_sealed_values() {
        let sealing = secrets(vec![Provider::AesGcm(vec![key("key1", 1)])]);
        let sealed = sealing
            .seal("secrets/ns/a", b"secrets/ns/a", b"{}")
            .unwrap()
            .into_owned();
        let decrypting = secrets(vec![
            Provider::Identity,
            Provider::AesGcm(vec![key("key1", 1)]),
        ]);
        assert!(!decrypting.seals("secrets/ns/a"));
        assert_eq!(
            &decrypting
                .open("secrets/ns/a", b"secrets/ns/a", &sealed)
                .unwrap()[..],
            b"{}"
        );
        assert!(!decrypting.is_current("secrets/ns/a", &sealed));
    }

    #[test]
    fn key_names_and_lengths_are_checked() {
        assert!(AesKey::new("a:b", &[0; 32]).is_err());
        assert!(AesKey::new("", &[0; 32]).is_err());
        let short = AesKey::new("k", &[0; 16]).unwrap_err().to_string();
        assert!(short.contains("32 bytes"), "{short}");
    }
}
