//! The ServiceAccount controller, as kube-controller-manager's
//! `serviceaccounts-controller` (`pkg/controller/serviceaccount/serviceaccounts_controller.go`):
//! every active namespace has a ServiceAccount `default`, made again when it
//! is deleted. A new namespace gets it in its own commit (the registry does
//! that); this loop covers namespaces from before, and deletions.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use serde_json::json;
use skiff_api::meta;
use skiff_api::status::{ApiError, Reason};

use crate::admission::service_account::{DEFAULT, service_account_type};
use crate::controllers::Deps;
use crate::controllers::runtime::{Action, Controller};
use crate::informer::{Informer, ObjectRef};
use crate::registry::{Registry, WriteOptions};

pub const NAME: &str = "service-account-controller";

struct Context {
    registry: Registry,
    namespaces: Informer<Namespace>,
}

/// Runs the controller until the process ends.
pub async fn run(deps: Deps) {
    let registry = deps.registry;
    let namespaces = deps.informers.namespaces;
    let accounts: Informer<ServiceAccount> = Informer::start(&registry);
    let ctx = Arc::new(Context {
        registry,
        namespaces: namespaces.clone(),
    });
    Controller::new(NAME, &namespaces)
        // A deleted `default` queues its namespace, to be made again.
        .watches(&accounts, |account| {
            match (meta::name(account), meta::namespace(account)) {
                (Some(DEFAULT), Some(ns)) => vec![(String::new(), ns.to_string())],
                _ => Vec::new(),
            }
        })
        .run(1, ctx, reconcile)
        .await;
}

async fn reconcile(ctx: Arc<Context>, (_, namespace): ObjectRef) -> Result<Action, ApiError> {
    let registry = &ctx.registry;
    let Some(ns) = ctx.namespaces.get_typed("", &namespace) else {
        return Ok(Action::Done);
    };
    if ns.metadata.deletion_timestamp.is_some() {
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
