//! The encryption configuration file: Kubernetes' `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`, the file `kube-apiserver
//! --encryption-provider-config` reads), of which Skiff takes the `aesgcm` and
//! `identity` providers:
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets]
//!     providers:
//!       - aesgcm:
//!           keys:
//!             - name: key1
//!               secret: <32 random bytes, base64>
//!       - identity: {}
//! ```
//!
//! [`EncryptionConfiguration::generate`] writes that at first start; rotation
//! puts a new key first ([`EncryptionConfiguration::with_new_key`]) and later
//! drops the others ([`EncryptionConfiguration::without_old_keys`]).

use std::path::{Path, PathBuf};

use aes_gcm::aead::Generate;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{AesKey, Encryption, KeyError, Provider, ResourceRule};

const API_VERSION: &str = "apiserver.config.k8s.io/v1";
const KIND: &str = "EncryptionConfiguration";

/// Why the configuration could not be read, used or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read encryption configuration {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("encryption configuration {0} is not a valid EncryptionConfiguration: {1}")]
    Parse(PathBuf, String),
    #[error("encryption configuration {0}: {1}")]
    Invalid(PathBuf, String),
    #[error("encryption configuration {0}: {1}")]
    Provider(PathBuf, #[source] ProviderError),
    #[error("write encryption configuration {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("generate an encryption key: {0}")]
    Random(String),
    #[error("cannot rotate the key: {0}")]
    Rotate(String),
}

/// What is wrong with one provider of the configuration; `at` is where it is
/// (`resources[0].providers[1]`).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{at}: the {provider} provider is not supported; Skiff seals with aesgcm")]
    Unsupported { at: String, provider: &'static str },
    #[error("{at}: names no provider")]
    NoProvider { at: String },
    #[error("{at}: names more than one provider ({})", .providers.join(", "))]
    SeveralProviders {
        at: String,
        providers: Vec<&'static str>,
    },
    #[error("{at}.aesgcm.keys is empty")]
    NoKeys { at: String },
    /// A name must say which key sealed a value.
    #[error("{at}: key name {name:?} is used twice")]
    DuplicateKey { at: String, name: String },
    #[error("{at}: key {name:?}: secret is not base64: {source}")]
    NotBase64 {
        at: String,
        name: String,
        source: base64::DecodeError,
    },
    #[error("{at}: {source}")]
    Key { at: String, source: KeyError },
}

/// `apiserver.config.k8s.io/v1` `EncryptionConfiguration`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionConfiguration {
    pub api_version: String,
    pub kind: String,
    pub resources: Vec<ResourceConfiguration>,
}

/// Which resources, sealed how.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfiguration {
    pub resources: Vec<String>,
    pub providers: Vec<ProviderConfiguration>,
}

/// One provider: exactly one field is set. Those Skiff does not implement are
/// read so that the error can name them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfiguration {
    pub keys: Vec<Key>,
}

/// A named key, its bytes in standard base64.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub name: String,
    pub secret: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("name", &self.name).finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfiguration {}

impl EncryptionConfiguration {
    /// The configuration Skiff starts with: Secrets sealed with one new random
    /// key, and plaintext still readable (for Secrets a store held before it
    /// sealed them; they are sealed at that start).
    pub fn generate() -> Result<Self, ConfigError> {
        Ok(EncryptionConfiguration {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            resources: vec![ResourceConfiguration {
                resources: vec!["secrets".into()],
                providers: vec![
                    ProviderConfiguration {
                        aesgcm: Some(KeysConfiguration {
                            keys: vec![Key::generate("key1")?],
                        }),
                        ..Default::default()
                    },
                    ProviderConfiguration {
                        identity: Some(IdentityConfiguration {}),
                        ..Default::default()
                    },
                ],
            }],
        })
    }

    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        let config: EncryptionConfiguration = serde_yaml_ng::from_str(&text)
            .map_err(|e| ConfigError::Parse(path.into(), e.to_string()))?;
        config.encryption(path)?;
        warn_if_readable_by_others(path);
        Ok(config)
    }

    /// Writes the file readable by its owner only, atomically: a crash leaves
    /// the old file or the new one, never a torn one (the keys in it are the
    /// only way to read the Secrets).
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write as _;
        let err = |e| ConfigError::Write(path.into(), e);
        let text = serde_yaml_ng::to_string(self)
            .map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let tmp = path.with_extension("yaml.tmp");
        // A stale temporary file may have other permissions; start afresh.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(err)?;
        // The rename is durable once the directory is.
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }

    /// The sealing rules this configuration describes; `path` names the file
    /// in errors.
    pub fn encryption(&self, path: &Path) -> Result<Encryption, ConfigError> {
        let invalid = |msg: String| ConfigError::Invalid(path.into(), msg);
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(invalid(format!(
                "apiVersion and kind must be {API_VERSION} and {KIND}, not {} and {}",
                self.api_version, self.kind
            )));
        }
        let mut seen_resources = std::collections::HashSet::new();
        let mut rules = Vec::with_capacity(self.resources.len());
        for (i, entry) in self.resources.iter().enumerate() {
            if entry.resources.is_empty() {
                return Err(invalid(format!("resources[{i}].resources is empty")));
            }
            for resource in &entry.resources {
                // Kubernetes also takes `*.group` wildcards; Skiff names resources.
                if resource.is_empty() || resource.contains(['*', '/']) {
                    return Err(invalid(format!(
                        "resources[{i}]: {resource:?} is not a resource name such as \"secrets\" (wildcards are not supported)"
                    )));
                }
                if !seen_resources.insert(resource.as_str()) {
                    return Err(invalid(format!(
                        "resources[{i}]: {resource:?} is listed more than once"
                    )));
                }
            }
            if entry.providers.is_empty() {
                return Err(invalid(format!("resources[{i}].providers is empty")));
            }
            let mut providers = Vec::with_capacity(entry.providers.len());
            let mut names = std::collections::HashSet::new();
            for (j, provider) in entry.providers.iter().enumerate() {
                let at = format!("resources[{i}].providers[{j}]");
                providers.push(
                    provider
                        .build(at, &mut names)
                        .map_err(|e| ConfigError::Provider(path.into(), e))?,
                );
            }
            rules.push(ResourceRule {
                resources: entry.resources.clone(),
                providers,
            });
        }
        Ok(Encryption::new(rules))
    }

    /// The name of the key new values are sealed with, for the first resource
    /// entry whose first provider is `aesgcm`.
    pub fn primary_key_name(&self) -> Option<&str> {
        self.resources.iter().find_map(|r| {
            let keys = r.providers.first()?.aesgcm.as_ref()?;
            Some(keys.keys.first()?.name.as_str())
        })
    }

    /// A copy with a new random key first in every entry's `aesgcm` provider,
    /// so that it seals from now on while the other keys still open what they
    /// sealed; and the new key's name. Every entry must write with `aesgcm`.
    pub fn with_new_key(&self) -> Result<(Self, String), ConfigError> {
        let name = self.unused_key_name();
        let key = Key::generate(&name)?;
        let mut next = self.clone();
        for (i, entry) in next.resources.iter_mut().enumerate() {
            match entry.providers.first_mut().and_then(|p| p.aesgcm.as_mut()) {
                Some(keys) => keys.keys.insert(0, key.clone()),
                None => {
                    return Err(ConfigError::Rotate(format!(
                        "resources[{i}] ({}) is not written with aesgcm (its first provider)",
                        entry.resources.join(", ")
                    )));
                }
            }
        }
        Ok((next, name))
    }

    /// A copy that keeps, of all `aesgcm` keys, only `keep`; an `aesgcm`
    /// provider left without keys goes too.
    pub fn without_old_keys(&self, keep: &str) -> Self {
        let mut next = self.clone();
        for entry in &mut next.resources {
            for provider in &mut entry.providers {
                if let Some(keys) = &mut provider.aesgcm {
                    keys.keys.retain(|k| k.name == keep);
                }
            }
            entry
                .providers
                .retain(|p| p.aesgcm.as_ref().is_none_or(|k| !k.keys.is_empty()));
        }
        next
    }

    /// The names of every `aesgcm` key.
    pub fn key_names(&self) -> Vec<&str> {
        self.resources
            .iter()
            .flat_map(|r| &r.providers)
            .filter_map(|p| p.aesgcm.as_ref())
            .flat_map(|k| &k.keys)
            .map(|k| k.name.as_str())
            .collect()
    }

    /// `key<N>`, one past the highest such name in use.
    fn unused_key_name(&self) -> String {
        let names = self.key_names();
        let highest = names
            .iter()
            .filter_map(|n| n.strip_prefix("key")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let mut n = highest.saturating_add(1);
        loop {
            let name = format!("key{n}");
            if !names.contains(&name.as_str()) {
                return name;
            }
            n = n.wrapping_add(1);
        }
    }
}

impl ProviderConfiguration {
    /// The provider, with every key checked; `at` is where it is, for errors,
    /// and `names` are the key names seen so far in this entry (a name must
    /// say which key sealed a value).
    fn build<'a>(
        &'a self,
        at: String,
        names: &mut std::collections::HashSet<&'a str>,
    ) -> Result<Provider, ProviderError> {
        let set = [
            ("aesgcm", self.aesgcm.is_some()),
            ("identity", self.identity.is_some()),
            ("aescbc", self.aescbc.is_some()),
            ("secretbox", self.secretbox.is_some()),
            ("kms", self.kms.is_some()),
        ];
        let named: Vec<&'static str> = set.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
        match named[..] {
            ["aesgcm"] => {}
            ["identity"] => return Ok(Provider::Identity),
            [provider] => return Err(ProviderError::Unsupported { at, provider }),
            [] => return Err(ProviderError::NoProvider { at }),
            _ => {
                return Err(ProviderError::SeveralProviders {
                    at,
                    providers: named,
                });
            }
        }
        let keys = self
            .aesgcm
            .as_ref()
            .map(|k| &k.keys[..])
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(ProviderError::NoKeys { at });
        }
        let mut built = Vec::with_capacity(keys.len());
        for key in keys {
            if !names.insert(key.name.as_str()) {
                return Err(ProviderError::DuplicateKey {
                    at,
                    name: key.name.clone(),
                });
            }
            let secret = match BASE64.decode(key.secret.trim()) {
                Ok(secret) => secret,
                Err(source) => {
                    return Err(ProviderError::NotBase64 {
                        at,
                        name: key.name.clone(),
                        source,
                    });
                }
            };
            match AesKey::new(&key.name, &secret) {
                Ok(key) => built.push(key),
                Err(source) => return Err(ProviderError::Key { at, source }),
            }
        }
        Ok(Provider::AesGcm(built))
    }
}

impl Key {
    /// A key of 32 bytes from the operating system's random source.
    fn generate(name: &str) -> Result<Self, ConfigError> {
        let bytes = <[u8; 32]>::try_generate().map_err(|e| ConfigError::Random(e.to_string()))?;
        Ok(Key {
            name: name.into(),
            secret: BASE64.encode(bytes),
        })
    }
}

/// The file holds the keys to every Secret; say so if others may read it.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the encryption configuration is readable by other users; it should be mode 0600"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Encryption, ConfigError> {
        let config: EncryptionConfiguration = serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::Parse("t".into(), e.to_string()))?;
        config.encryption(Path::new("t"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn reads_the_kubernetes_shape() {
        let enc = parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {KEY}
      - identity: {{}}
"
        ))
        .unwrap();
        assert!(enc.seals("secrets/ns/a"));
        assert!(!enc.seals("configmaps/ns/a"));
        assert_eq!(enc.resources().collect::<Vec<_>>(), ["secrets"]);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";
        let with = |providers: &str| {
            format!("{head}resources:\n  - resources: [secrets]\n    providers:\n{providers}")
        };
        let e = error(&with(
            "      - aescbc:\n          keys: [{name: k, secret: x}]\n",
        ));
        assert!(e.contains("aescbc provider is not supported"), "{e}");
        let e = error(&with("      - aesgcm:\n          keys: []\n"));
        assert!(e.contains("keys is empty"), "{e}");
        let e = error(&with(
            "      - aesgcm:\n          keys: [{name: k, secret: c2hvcnQ=}]\n",
        ));
        assert!(e.contains("32 bytes"), "{e}");
        let e = error(&with(
            "      - aesgcm:\n          keys: [{name: k, secret: '%%%'}]\n",
        ));
        assert!(e.contains("not base64"), "{e}");
        let e = error(&with(&format!(
            "      - aesgcm:\n          keys: [{{name: k, secret: {KEY}}}, {{name: k, secret: {KEY}}}]\n"
        )));
        assert!(e.contains("used twice"), "{e}");
        let e = error(&with("      - {}\n"));
        assert!(e.contains("names no provider"), "{e}");
        let e = error(&format!(
            "{head}resources:\n  - resources: ['*.*']\n    providers:\n      - identity: {{}}\n"
        ));
        assert!(e.contains("wildcards"), "{e}");
        let e = error(&with("      - identity: {}\n").replace("EncryptionConfiguration", "Foo"));
        assert!(e.contains("apiVersion and kind"), "{e}");
        let e = error(&format!("{head}resources: []\nextra: 1\n"));
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn generated_files_round_trip_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption-config.yaml");
        let config = EncryptionConfiguration::generate().unwrap();
        config.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("aesgcm:") && text.contains("identity: {}"),
            "{text}"
        );
        assert_eq!(EncryptionConfiguration::read(&path).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(config.primary_key_name(), Some("key1"));
        // Two generated keys differ.
        let other = EncryptionConfiguration::generate().unwrap();
        assert_ne!(
            config.resources[0].providers[0].aesgcm,
            other.resources[0].providers[0].aesgcm
        );
    }

    #[test]
    fn rotation_puts_a_new_key_first_then_drops_the_others() {
        let config = EncryptionConfiguration::generate().unwrap();
        let (rotating, name) = config.with_new_key().unwrap();
        assert_eq!(name, "key2");
        assert_eq!(rotating.key_names(), ["key2", "key1"]);
        assert_eq!(rotating.primary_key_name(), Some("key2"));
        let done = rotating.without_old_keys(&name);
        assert_eq!(done.key_names(), ["key2"]);
        // identity stays.
        assert!(done.resources[0].providers[1].identity.is_some());
        assert!(done.encryption(Path::new("t")).is_ok());

        let mut plain = config.clone();
        plain.resources[0].providers.remove(0);
        let e = plain.with_new_key().unwrap_err().to_string();
        assert!(e.contains("not written with aesgcm"), "{e}");
    }
}
