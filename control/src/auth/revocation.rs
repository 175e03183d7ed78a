//! Which node certificates the CA issued and which it has revoked, kept in
//! `<data>/pki/node-certs.json` (written atomically) so that a revoked node
//! stays refused across restarts. Entries go once their certificate has
//! expired: an expired certificate is refused by TLS anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::ca::{CaError, NodeCert};

/// The ledger's file content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ledger {
    /// node -> serial -> notAfter, for certificates not revoked.
    issued: BTreeMap<String, BTreeMap<String, i64>>,
    /// serial -> (node, notAfter).
    revoked: BTreeMap<String, (String, i64)>,
}

/// Issued and revoked node certificates.
pub struct NodeCertLedger {
    path: PathBuf,
    inner: Mutex<Ledger>,
    /// The revoked serials, for those who pass the list on (nodes' peer proxies).
    revoked: watch::Sender<Arc<Vec<String>>>,
}

impl NodeCertLedger {
    /// Loads the ledger at `path`, empty if there is none yet.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let ledger = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CaError::Ledger {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(source) => {
                return Err(CaError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let revoked = watch::Sender::new(Arc::new(ledger.revoked.keys().cloned().collect()));
        Ok(NodeCertLedger {
            path: path.to_path_buf(),
            inner: Mutex::new(ledger),
            revoked,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a certificate just issued.
    pub fn record_issued(&self, cert: &NodeCert) -> Result<(), CaError> {
        let mut ledger = self.lock();
        ledger
            .issued
            .entry(cert.node.clone())
            .or_default()
            .insert(cert.serial.clone(), cert.not_after);
        self.save(&mut ledger)
    }

    /// Revokes every certificate issued to `node` (and `also_serial`, a
    /// certificate seen on its connection that the ledger may predate).
    /// Returns how many were revoked.
    pub fn revoke_node(&self, node: &str, also_serial: Option<&str>) -> Result<usize, CaError> {
        let mut ledger = self.lock();
        let mut serials = ledger.issued.remove(node).unwrap_or_default();
        if let Some(serial) = also_serial {
            // Its expiry is unknown here: keep it a year, the longest a node
            // certificate lives.
            let until = now().saturating_add(skiff_api::join::NODE_CERT_VALIDITY.as_secs() as i64);
            serials.entry(serial.to_string()).or_insert(until);
        }
        let mut count = 0;
        for (serial, not_after) in serials {
            if ledger
                .revoked
                .insert(serial, (node.to_string(), not_after))
                .is_none()
            {
                count += 1;
            }
        }
        self.save(&mut ledger)?;
        Ok(count)
    }

    /// The revoked serials that have not expired, now and as they change.
    pub fn revoked_serials(&self) -> watch::Receiver<Arc<Vec<String>>> {
        self.revoked.subscribe()
    }

    /// Whether the certificate with this serial is revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.lock().revoked.contains_key(serial)
    }

    fn save(&self, ledger: &mut Ledger) -> Result<(), CaError> {
        let now = now();
        for serials in ledger.issued.values_mut() {
            serials.retain(|_, not_after| *not_after > now);
        }
        ledger.issued.retain(|_, serials| !serials.is_empty());
        ledger.revoked.retain(|_, (_, not_after)| *not_after > now);
        let serials: Vec<String> = ledger.revoked.keys().cloned().collect();
        self.revoked.send_if_modified(|current| {
            let changed = **current != serials;
            if changed {
                *current = Arc::new(serials);
            }
            changed
        });
        let text = serde_json::to_string_pretty(&*ledger).map_err(|e| CaError::Ledger {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        super::ca::write_private(&self.path, &text)
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
