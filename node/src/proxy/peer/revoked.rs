//! The node certificates the control plane has revoked, as it last said
//! ([`Downstream::Revoked`](skiff_api::wire::Downstream::Revoked)). The peer
//! server refuses a caller presenting one, and drops a caller's connection
//! the moment its certificate joins the list.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;

/// Revoked serials (lowercase hex).
#[derive(Debug)]
pub struct Revoked(watch::Sender<Arc<HashSet<String>>>);

impl Default for Revoked {
    fn default() -> Self {
        Revoked(watch::Sender::new(Arc::default()))
    }
}

impl Revoked {
    /// Takes the control plane's whole current list.
    pub fn replace(&self, serials: Vec<String>) {
        let serials: HashSet<String> = serials.into_iter().collect();
        self.0.send_if_modified(|current| {
            let changed = **current != serials;
            if changed {
                *current = Arc::new(serials);
            }
            changed
        });
    }

    pub fn contains(&self, serial: &str) -> bool {
        self.0.borrow().contains(serial)
    }

    /// Resolves once `serial` is revoked (never, if the list's owner is gone).
    pub async fn until_revoked(&self, serial: &str) {
        let mut list = self.0.subscribe();
        if list.wait_for(|l| l.contains(serial)).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_learns_when_its_certificate_is_revoked() {
        let revoked = Arc::new(Revoked::default());
        revoked.replace(vec!["aa".into()]);
        assert!(revoked.contains("aa") && !revoked.contains("bb"));
        let waiter = tokio::spawn({
            let revoked = revoked.clone();
            async move { revoked.until_revoked("bb").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        revoked.replace(vec!["aa".into(), "bb".into()]);
        waiter.await.unwrap();
    }
}
