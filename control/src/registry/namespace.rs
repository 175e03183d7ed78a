//! Namespace finalization: the last step of deleting a namespace.

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::status::ApiError;

use super::{Registry, Result, key, namespace_type, store_error};
use crate::store::{Action, Op, Precondition, object_revision};

impl Registry {
    /// Sets a namespace's `spec.finalizers`; once a terminating namespace has no
    /// finalizers left (spec or metadata), it is removed.
    pub async fn finalize_namespace(&self, name: &str, finalizers: Value) -> Result<Value> {
        let rt = namespace_type();
        if !finalizers.is_array() {
            return Err(ApiError::bad_request("spec.finalizers must be a list"));
        }
        let old = self.get(rt, "", name)?;
        let mut new = old.clone();
        super::strategy::set_path(&mut new, &["spec", "finalizers"], finalizers.clone());
        let done = meta::deletion_timestamp(&new).is_some()
            && finalizers.as_array().is_some_and(Vec::is_empty)
            && meta::finalizers(&new).is_empty();
        let revision = object_revision(&old).unwrap_or(0);
        let action = if done {
            Action::Delete
        } else {
            Action::Put(new)
        };
        let op = Op {
            key: key(rt, "", name),
            precondition: Precondition::Revision(revision),
            action,
            prev: None,
        };
        let committed = self.commit(vec![op]).await.map_err(store_error(rt, name))?;
        Ok(committed
            .into_iter()
            .next()
            .map(|c| Arc::unwrap_or_clone(c.object))
            .unwrap_or(json!({})))
    }
}
