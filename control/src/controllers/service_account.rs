//! The ServiceAccount controller, as kube-controller-manager's
//! `serviceaccounts-controller` (`pkg/controller/serviceaccount/serviceaccounts_controller.go`):
//! every active namespace has a ServiceAccount `default`, made again when it
//! is deleted. A new namespace gets it in its own commit (the registry does
//! that); this loop covers namespaces from before, and deletions.

use std::sync::Arc;

use serde_json::json;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use super::work_queue::{Action, WorkQueue, run_workers};
use crate::admission::service_account::{DEFAULT, service_account_type};
use crate::informer::{Change, Informer};
use crate::registry::{Registry, WriteOptions};
use crate::store::EventType;

const NAME: &str = "service-account-controller";

/// Runs the controller until the process ends.
pub async fn run(registry: Registry) {
    let (Some(ns_type), Ok(sa_type)) = (by_kind("v1", "Namespace"), service_account_type()) else {
        return;
    };
    let namespaces = Informer::start(&registry, ns_type);
    let accounts = Informer::start(&registry, sa_type);
    let queue: Arc<WorkQueue<String>> = WorkQueue::new();
    tokio::spawn(feed(namespaces.clone(), accounts, queue.clone()));
    run_workers(NAME, queue, 1, move |namespace| {
        reconcile(registry.clone(), namespaces.clone(), namespace)
    })
    .await;
}

async fn feed(namespaces: Informer, accounts: Informer, queue: Arc<WorkQueue<String>>) {
    let mut ns_changes = namespaces.subscribe();
    let mut sa_changes = accounts.subscribe();
    namespaces.synced().await;
    accounts.synced().await;
    let all = |queue: &WorkQueue<String>| {
        for ns in namespaces.list(None, |_| true) {
            queue.add(meta::name(&ns).unwrap_or_default().to_string());
        }
    };
    all(&queue);
    loop {
        tokio::select! {
            change = ns_changes.next() => match change {
                Some(Change::Object { event_type: EventType::Deleted, .. }) => {}
                Some(Change::Object { object, .. }) => {
                    queue.add(meta::name(&object).unwrap_or_default().to_string());
                }
                Some(Change::Resync) => all(&queue),
                None => return,
            },
            change = sa_changes.next() => match change {
                Some(Change::Object { event_type: EventType::Deleted, object, .. })
                    if meta::name(&object) == Some(DEFAULT) =>
                {
                    queue.add(meta::namespace(&object).unwrap_or_default().to_string());
                }
                Some(Change::Object { .. }) => {}
                Some(Change::Resync) => all(&queue),
                None => return,
            },
        }
    }
}

async fn reconcile(
    registry: Registry,
    namespaces: Informer,
    namespace: String,
) -> Result<Action, ApiError> {
    let Some(ns) = namespaces.get("", &namespace) else {
        return Ok(Action::Done);
    };
    if meta::deletion_timestamp(&ns).is_some() {
        return Ok(Action::Done);
    }
    let sa_type = service_account_type()?;
    if registry.try_get(sa_type, &namespace, DEFAULT)?.is_some() {
        return Ok(Action::Done);
    }
    let opts = WriteOptions {
        field_manager: NAME.into(),
        ..Default::default()
    };
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT}});
    match registry.create(sa_type, &namespace, account, &opts).await {
        Ok(_) => Ok(Action::Done),
        // Made meanwhile, or the namespace is going or gone: nothing to do.
        Err(e) if matches!(e.reason, Reason::AlreadyExists | Reason::NotFound) => Ok(Action::Done),
        Err(e) if e.reason == Reason::Forbidden && e.message.contains("being terminated") => {
            Ok(Action::Done)
        }
        Err(e) => Err(e),
    }
}
