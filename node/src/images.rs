//! Components on this node: fetched from the control plane by reference over
//! QUIC, checked against their sha256 digest, kept on disk under
//! `<data>/components/<hex>.wasm` (with the tag -> digest map in `tags.json`, so
//! a node restarted while the control plane is away still finds them), and
//! compiled once per digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};
use skiff_api::component::{ComponentRef, DEFAULT_TAG};
use skiff_api::wire::{Open, Reply};
use skiff_runtime::{Component, Engine};
use tokio::sync::watch;

use crate::agent::frames;
use crate::supervisor::{ImageSource, PullError, PullFuture, PulledImage};

/// Largest component accepted from the control plane.
const MAX_COMPONENT: u64 = 512 << 20;
/// How long a pull waits for the control plane when it is not connected.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// How fetching a component from the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Stream(#[from] frames::StreamError),
    #[error(transparent)]
    Read(#[from] quinn::ReadToEndError),
    #[error("unexpected reply {0:?}")]
    UnexpectedReply(Box<Reply>),
    #[error("component of {size} bytes is larger than {MAX_COMPONENT}")]
    TooLarge { size: u64 },
    #[error("the bytes received hash to {actual}, not {digest}")]
    Digest { actual: String, digest: String },
}

/// The node's components.
pub struct NodeImages {
    engine: Engine,
    dir: PathBuf,
    connection: watch::Receiver<Option<quinn::Connection>>,
    /// digest -> compiled component.
    compiled: Mutex<HashMap<String, Component>>,
    /// `name:tag` -> digest, as last resolved.
    tags: Mutex<HashMap<String, String>>,
    /// One pull at a time per image.
    pulling: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl NodeImages {
    pub fn open(
        engine: Engine,
        dir: &Path,
        connection: watch::Receiver<Option<quinn::Connection>>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let tags = std::fs::read(dir.join("tags.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(NodeImages {
            engine,
            dir: dir.to_path_buf(),
            connection,
            compiled: Mutex::default(),
            tags: Mutex::new(tags),
            pulling: tokio::sync::Mutex::default(),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_of(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.dir.join(format!("{hex}.wasm")))
    }

    /// The compiled component for a digest held on disk.
    fn load_local(&self, digest: &str) -> Result<Option<Component>, PullError> {
        if let Some(c) = Self::lock(&self.compiled).get(digest) {
            return Ok(Some(c.clone()));
        }
        let Some(path) = self.file_of(digest) else {
            return Ok(None);
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PullError::Disk {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        if sha256(&bytes) != digest {
            // A damaged file is fetched again.
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        self.compile(digest, &bytes).map(Some)
    }

    fn compile(&self, digest: &str, bytes: &[u8]) -> Result<Component, PullError> {
        let component = self
            .engine
            .load(bytes)
            .map_err(|source| PullError::Compile {
                digest: digest.to_string(),
                source,
            })?;
        Self::lock(&self.compiled).insert(digest.to_string(), component.clone());
        Ok(component)
    }

    async fn pull_image(&self, image: &str) -> Result<PulledImage, PullError> {
        let reference = ComponentRef::parse(image).map_err(|source| PullError::InvalidImage {
            image: image.to_string(),
            source,
        })?;
        let lock = {
            let mut pulling = self.pulling.lock().await;
            pulling.entry(image.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let known = match &reference {
            ComponentRef::Digest(d) => Some(d.clone()),
            ComponentRef::Tagged { name, tag } => Self::lock(&self.tags)
                .get(&format!("{name}:{tag}"))
                .cloned(),
        };
        // IfNotPresent, as Kubernetes' default for anything but `:latest`.
        let always = matches!(&reference, ComponentRef::Tagged { tag, .. } if tag == DEFAULT_TAG);
        if let Some(digest) = &known
            && !always
            && let Some(component) = self.load_local(digest)?
        {
            return Ok(PulledImage {
                component,
                image_id: digest.clone(),
                was_present: true,
            });
        }
        match self.fetch(image).await {
            Ok((digest, bytes)) => {
                if let ComponentRef::Tagged { name, tag } = &reference {
                    self.remember_tag(&format!("{name}:{tag}"), &digest);
                }
                let component = match self.load_local(&digest)? {
                    Some(c) => c,
                    None => {
                        self.save(&digest, &bytes)?;
                        self.compile(&digest, &bytes)?
                    }
                };
                Ok(PulledImage {
                    component,
                    image_id: digest,
                    was_present: false,
                })
            }
            // Offline: what the node has is better than nothing.
            Err(e) => match known {
                Some(digest) => match self.load_local(&digest)? {
                    Some(component) => Ok(PulledImage {
                        component,
                        image_id: digest,
                        was_present: true,
                    }),
                    None => Err(e),
                },
                None => Err(e),
            },
        }
    }

    /// Asks the control plane for `image`; returns its digest and verified bytes.
    async fn fetch(&self, image: &str) -> Result<(String, Vec<u8>), PullError> {
        let mut rx = self.connection.clone();
        let connection =
            match tokio::time::timeout(CONNECT_WAIT, rx.wait_for(Option::is_some)).await {
                Ok(Ok(c)) => c.clone(),
                _ => None,
            }
            .ok_or_else(|| PullError::NotConnected {
                image: image.to_string(),
            })?;
        let transfer = |source: TransferError| PullError::Transfer {
            image: image.to_string(),
            source,
        };
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| transfer(e.into()))?;
        frames::write(
            &mut send,
            &Open::Fetch {
                image: image.to_string(),
            },
        )
        .await
        .map_err(|e| transfer(e.into()))?;
        let _ = send.finish();
        let (digest, size) = match frames::expect::<Reply>(&mut recv).await {
            Ok(Reply::Component { digest, size }) => (digest, size),
            Ok(Reply::Refused { message, .. }) => return Err(PullError::Refused(message)),
            Ok(other) => return Err(transfer(TransferError::UnexpectedReply(Box::new(other)))),
            Err(e) => return Err(transfer(e.into())),
        };
        if size > MAX_COMPONENT {
            return Err(transfer(TransferError::TooLarge { size }));
        }
        let bytes = recv
            .read_to_end(size as usize)
            .await
            .map_err(|e| transfer(e.into()))?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(transfer(TransferError::Digest { actual, digest }));
        }
        Ok((digest, bytes))
    }

    fn save(&self, digest: &str, bytes: &[u8]) -> Result<(), PullError> {
        let path = self
            .file_of(digest)
            .ok_or_else(|| PullError::MalformedDigest(digest.to_string()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| PullError::Disk {
                action: "store",
                path,
                source,
            })
    }

    fn remember_tag(&self, tag: &str, digest: &str) {
        let snapshot = {
            let mut tags = Self::lock(&self.tags);
            if tags.get(tag).map(String::as_str) == Some(digest) {
                return;
            }
            tags.insert(tag.to_string(), digest.to_string());
            tags.clone()
        };
        if let Ok(json) = serde_json::to_vec(&snapshot) {
            let path = self.dir.join("tags.json");
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path)) {
                tracing::warn!(error = %e, "could not record component tags");
            }
        }
    }
}

impl ImageSource for NodeImages {
    fn pull<'a>(&'a self, image: &'a str) -> PullFuture<'a> {
        Box::pin(self.pull_image(image))
    }
}

fn sha256(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}
