//! The object lifecycle over the store: what create, update, patch and delete
//! mean for a Kubernetes object (Kubernetes' "registry" layer).
//!
//! The API server calls it for every request and controllers call it for their
//! writes, so the rules hold whoever writes: `uid`, `creationTimestamp` and
//! `generation` are set here; optimistic concurrency on `resourceVersion`;
//! status-subresource separation; finalizers and `deletionTimestamp`; validation
//! and defaulting; field ownership (`managedFields`).

mod allocate;
mod delete;
mod namespace;
mod scale;
pub mod strategy;

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::patch::{PatchType, record_subresource_update, record_update, server_side_apply};
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, FieldError, Reason};
use skiff_api::validate::{self, FieldValidation};

use crate::store::{
    Action, Committed, KeyPrefix, ListPage, ListRequest, ObjectKey, Op, Precondition, Store,
    StoreError, object_revision,
};

pub use delete::{
    DeleteOptions, Deleted, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, PropagationPolicy,
};

/// `Result` with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Kubernetes' words for an update from a stale `resourceVersion`.
const STALE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// How many times a write without a client precondition (a patch, a PUT
/// without resourceVersion) is tried again when the object changed under it.
/// Each conflict means another write succeeded, so this only bounds how long
/// one client can be outpaced; Kubernetes' GuaranteedUpdate has no bound.
const PATCH_RETRIES: usize = 100;

/// How many times a create is admitted again when a quota it charges was
/// charged by another create in between.
const QUOTA_RETRIES: usize = 32;

/// The object lifecycle over a [`Store`].
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    reserved: Arc<allocate::ReservedLock>,
    /// `tolerationSeconds` of the not-ready and unreachable NoExecute
    /// tolerations every new pod gets (Kubernetes' DefaultTolerationSeconds
    /// admission; its default there is 300 s).
    default_toleration_seconds: i64,
}

/// Options shared by create, update and patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, but write nothing.
    pub dry_run: bool,
    /// `fieldManager`, or a name derived from the user agent.
    pub field_manager: String,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` (server-side apply only).
    pub force: bool,
    /// Set for a server-side apply, which records field ownership itself.
    pub applied: bool,
}

/// The result of a write: the object, whether it was created, and warnings for
/// the `Warning` header.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

impl Written {
    /// The write of the first op of a commit (the object; the others are
    /// what it charged to quotas and the like).
    fn first(committed: Vec<Committed>, created: bool, warnings: Vec<String>) -> Result<Written> {
        let committed = committed
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("store returned no result for a commit"))?;
        Ok(Written {
            object: Arc::unwrap_or_clone(committed.object),
            created,
            warnings,
        })
    }
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            reserved: Arc::default(),
            default_toleration_seconds: strategy::DEFAULT_TOLERATION_SECONDS,
        }
    }

    /// Sets the `tolerationSeconds` new pods get for the not-ready and
    /// unreachable taints: how long their lost node's pods wait before they
    /// are evicted and replaced elsewhere.
    pub fn with_default_toleration_seconds(mut self, seconds: i64) -> Self {
        self.default_toleration_seconds = seconds;
        self
    }

    /// The underlying store (for watches).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The object, or 404.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        self.store
            .get(&key(rt, namespace, name))
            .map_err(store_error(rt, name))?
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// The object, if it exists.
    pub fn try_get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Option<Value>> {
        self.store
            .get(&key(rt, namespace, name))
            .map_err(store_error(rt, name))
    }

    /// A page of objects of one kind (in one namespace, or all when `None`).
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        after: Option<ObjectKey>,
        limit: Option<usize>,
        filter: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<ListPage> {
        let prefix = prefix(rt, namespace);
        self.store
            .list(&ListRequest {
                prefix,
                after,
                limit,
                filter,
            })
            .map_err(store_error(rt, ""))
    }

    /// Creates an object in `namespace` (ignored for cluster-scoped kinds).
    pub async fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let (obj, warnings) = self.checked_for_create(rt, namespace, obj, opts)?;
        let name = meta::name(&obj).unwrap_or_default().to_string();
        let ns = meta::namespace(&obj).unwrap_or_default().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let charges = crate::admission::validate(self, rt, &obj).await?;
            if opts.dry_run {
                return Ok(Written {
                    object: obj,
                    created: true,
                    warnings,
                });
            }
            let mut ops = vec![Op {
                key: key(rt, &ns, &name),
                precondition: Precondition::Absent,
                action: Action::Put(obj.clone()),
                prev: None,
            }];
            ops.extend(charges);
            if rt.kind == "Namespace" && rt.group.is_empty() {
                ops.push(default_service_account(&name)?);
            }
            match self.store.commit(ops).await {
                Ok(committed) => return Written::first(committed, true, warnings),
                // A quota charged by a concurrent create: check against it again.
                Err(StoreError::Conflict { key, .. })
                    if key.resource == "resourcequotas" && attempt < QUOTA_RETRIES => {}
                Err(e) => return Err(store_error(rt, &name)(e)),
            }
        }
    }

    /// The op that creates `obj` in `namespace`, checked and filled in as
    /// [`Registry::create`] does, to commit together with other writes (an
    /// Event in the commit of what it tells of). Only for kinds that no
    /// validating admission reads ([`crate::admission::validates`]): their
    /// create commits nothing else.
    pub fn create_op(
        &self,
        rt: &ResourceType,
        namespace: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Op> {
        if crate::admission::validates(rt) {
            return Err(ApiError::internal(format!(
                "{} are admitted on create: they cannot join another commit",
                rt.plural
            )));
        }
        let (obj, _) = self.checked_for_create(rt, namespace, obj, opts)?;
        let key = key(
            rt,
            meta::namespace(&obj).unwrap_or_default(),
            meta::name(&obj).unwrap_or_default(),
        );
        Ok(Op {
            key,
            precondition: Precondition::Absent,
            action: Action::Put(obj),
            prev: None,
        })
    }

    /// A new object decoded, filled in (server fields, defaults, allocations,
    /// mutating admission, managedFields) and validated; with the decoder's
    /// warnings. What is left of a create is validating admission and the
    /// commit.
    fn checked_for_create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<(Value, Vec<String>)> {
        let warnings = validate::decode_and_prune(rt, &mut obj, opts.field_validation)?;
        self.prepare_create(rt, namespace, &mut obj, opts.applied)?;
        strategy::prepare_for_create(rt, &mut obj);
        if rt.kind == "Pod" && rt.group.is_empty() {
            strategy::add_default_tolerations(&mut obj, self.default_toleration_seconds);
        }
        if rt.kind == "Ingress" && rt.group == "networking.k8s.io" {
            self.default_ingress_class(&mut obj)?;
        }
        allocate::allocate(self, rt, None, &mut obj)?;
        crate::admission::mutate(self, rt, &mut obj)?;
        validate::validate_create(rt, &obj)?;
        if !opts.applied && !opts.field_manager.is_empty() {
            record_update(
                None,
                &mut obj,
                &opts.field_manager,
                rt,
                &meta::now_timestamp(),
            );
        }
        Ok((obj, warnings))
    }

    /// Kubernetes' DefaultIngressClass admission, against the stored
    /// IngressClasses.
    fn default_ingress_class(&self, ingress: &mut Value) -> Result<()> {
        let Some(rt) = skiff_api::resource::by_kind("networking.k8s.io/v1", "IngressClass") else {
            return Ok(());
        };
        let classes = self.list(rt, None, None, None, &skiff_api::ingress::is_default_class)?;
        skiff_api::ingress::set_default_class(ingress, &classes.items);
        Ok(())
    }

    /// Fills in what the server owns on a new object and checks the namespace.
    /// `applied`: the object comes from a server-side apply, whose
    /// `managedFields` are kept.
    fn prepare_create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        obj: &mut Value,
        applied: bool,
    ) -> Result<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        if rt.namespaced {
            match meta::namespace(obj) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta::set(obj, "namespace", namespace),
            }
            self.check_namespace_open(namespace)?;
        } else {
            meta::remove(obj, "namespace");
        }
        if meta::resource_version(obj).is_some() {
            return Err(ApiError::invalid(
                rt,
                meta::name(obj).unwrap_or_default(),
                vec![FieldError::invalid(
                    "metadata.resourceVersion",
                    meta::resource_version(obj).unwrap_or_default(),
                    "must be empty",
                )],
            ));
        }
        if meta::name(obj).is_none_or(str::is_empty)
            && let Some(prefix) = meta::generate_name(obj).map(str::to_string)
        {
            meta::set(obj, "name", format!("{prefix}{}", random_suffix()));
        }
        meta::set(obj, "uid", uuid::Uuid::new_v4().to_string());
        meta::set(obj, "creationTimestamp", meta::now_timestamp());
        for field in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
            meta::remove(obj, field);
        }
        if !applied {
            meta::remove(obj, "managedFields");
        }
        if strategy::tracks_generation(rt) {
            meta::set(obj, "generation", 1);
        } else {
            meta::remove(obj, "generation");
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), rt.api_version().into());
            map.insert("kind".into(), rt.kind.into());
        }
        Ok(())
    }

    /// New objects may go only into a namespace that exists and is not terminating.
    fn check_namespace_open(&self, namespace: &str) -> Result<()> {
        let ns_type = namespace_type();
        let stored = self
            .store
            .get_raw(&key(ns_type, "", namespace))
            .map_err(store_error(ns_type, namespace))?;
        let Some(stored) = stored else {
            let mut err = ApiError::not_found(ns_type, namespace);
            err.message = format!("namespaces \"{namespace}\" not found");
            return Err(err);
        };
        // Only `deletionTimestamp` is read: every create in the namespace asks.
        let terminating = serde_json::from_slice::<NamespaceLifecycle>(&stored)
            .map_err(|e| ApiError::internal(format!("namespace {namespace} unreadable: {e}")))?
            .metadata
            .deletion_timestamp
            .is_some();
        if terminating {
            let mut err = ApiError::new(
                Reason::Forbidden,
                format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            );
            err.details = Some(Box::new(skiff_api::status::Details::object(
                ns_type,
                namespace,
                Vec::new(),
            )));
            return Err(err);
        }
        Ok(())
    }

    /// Replaces an object (PUT). An empty `resourceVersion` in the body means an
    /// unconditional update, retried if another write lands in between (as
    /// Kubernetes' GuaranteedUpdate does); a stale one is a 409 Conflict.
    pub async fn update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let warnings = check_body(rt, name, &mut obj, opts)?;
        let unconditional = meta::resource_version(&obj).is_none();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let old = self.get(rt, namespace, name)?;
            let retry = unconditional && attempt < PATCH_RETRIES;
            let body = if retry {
                obj.clone()
            } else {
                std::mem::take(&mut obj)
            };
            match self
                .update_checked(rt, old, body, sub, opts, warnings.clone())
                .await
            {
                Err(e) if e.reason == Reason::Conflict && retry => continue,
                result => return result,
            }
        }
    }

    /// [`Registry::update`] over `old`, the object as the caller has just read
    /// it, which saves reading and decoding it again. If the object changed
    /// since, the write fails with a Conflict, as any stale write does.
    pub async fn update_from(
        &self,
        rt: &ResourceType,
        old: Value,
        mut obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let name = meta::name(&old).unwrap_or_default().to_string();
        let warnings = check_body(rt, &name, &mut obj, opts)?;
        self.update_checked(rt, old, obj, sub, opts, warnings).await
    }

    async fn update_checked(
        &self,
        rt: &ResourceType,
        old: Value,
        obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
        warnings: Vec<String>,
    ) -> Result<Written> {
        let name = meta::name(&old).unwrap_or_default();
        let expected = match meta::resource_version(&obj) {
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid resourceVersion {rv:?}: must be a decimal integer"
                    ))
                })?;
                if Some(rv) != object_revision(&old) {
                    return Err(ApiError::conflict(rt, name, STALE));
                }
                rv
            }
            None => object_revision(&old).unwrap_or(0),
        };
        let mut written = self.write_update(rt, old, obj, expected, sub, opts).await?;
        written.warnings.extend(warnings);
        Ok(written)
    }

    /// Applies a patch, retrying when the object changed in between (unless the
    /// patch itself pins a `resourceVersion`).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let old = self.try_get(rt, namespace, name)?;
            let Some(old) = old else {
                if patch_type == PatchType::Apply && sub == Subresource::Main {
                    return self.apply_create(rt, namespace, name, patch, opts).await;
                }
                return Err(ApiError::not_found(rt, name));
            };
            let expected = object_revision(&old).unwrap_or(0);
            let mut new = apply_patch(rt, &old, patch_type, &patch, opts)?;
            let applied_opts = WriteOptions {
                applied: patch_type == PatchType::Apply,
                ..opts.clone()
            };
            let opts = &applied_opts;
            if let Some(rv) = meta::resource_version(&new)
                && rv != expected.to_string()
            {
                return Err(ApiError::conflict(rt, name, STALE));
            }
            let warnings = validate::decode_and_prune(rt, &mut new, opts.field_validation)?;
            match self.write_update(rt, old, new, expected, sub, opts).await {
                Err(e)
                    if e.reason == Reason::Conflict
                        && attempt < PATCH_RETRIES
                        && !pins_version(&patch) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(mut written) => {
                    written.warnings.extend(warnings);
                    return Ok(written);
                }
            }
        }
    }

    /// Server-side apply of an object that does not exist yet: a create.
    async fn apply_create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        applied: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        if let Some(body_name) = meta::name(&applied)
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let obj = server_side_apply(
            None,
            &applied,
            &opts.field_manager,
            opts.force,
            rt,
            &meta::now_timestamp(),
        )
        .map_err(|e| apply_error(rt, name, e))?;
        // The apply already recorded ownership as "Apply"; do not record an Update too.
        let create_opts = WriteOptions {
            applied: true,
            ..opts.clone()
        };
        let mut written = self.create(rt, namespace, obj, &create_opts).await?;
        written.created = true;
        Ok(written)
    }

    /// The shared tail of update and patch: server-owned fields, status rules,
    /// generation, finalizer completion, validation, and the conditional write.
    async fn write_update(
        &self,
        rt: &ResourceType,
        old: Value,
        new: Value,
        expected: u64,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written> {
        self.write_update_with(rt, old, new, expected, sub, opts, Checks::Whole)
            .await
    }

    /// Writes `status` over `old` through the status subresource, as a node's
    /// report does. For a kind whose rules read nothing of its status
    /// ([`validate::status_checked_alone`]: Pods) only the status is decoded
    /// and checked; the rest is the stored object, checked when it was
    /// written. Other kinds are checked whole, as [`Registry::update_from`].
    pub async fn update_status_from(
        &self,
        rt: &ResourceType,
        old: Value,
        status: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let mut body = json!({
            "apiVersion": old.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": old.get("kind").cloned().unwrap_or(Value::Null),
            "status": status,
        });
        if !validate::status_checked_alone(rt) {
            let mut whole = old.clone();
            whole["status"] = body["status"].take();
            return self
                .update_from(rt, old, whole, Subresource::Status, opts)
                .await;
        }
        let warnings = validate::decode_and_prune_status(rt, &mut body, opts.field_validation)?;
        let expected = object_revision(&old).unwrap_or(0);
        let checks = Checks::StatusAlone;
        let mut written = self
            .write_update_with(rt, old, body, expected, Subresource::Status, opts, checks)
            .await?;
        written.warnings.extend(warnings);
        Ok(written)
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_update_with(
        &self,
        rt: &ResourceType,
        old: Value,
        mut new: Value,
        expected: u64,
        sub: Subresource,
        opts: &WriteOptions,
        checks: Checks,
    ) -> Result<Written> {
        let name = meta::name(&old).unwrap_or_default().to_string();
        let namespace = meta::namespace(&old).unwrap_or_default().to_string();
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        if sub == Subresource::Status {
            new = strategy::status_update(&old, &new);
        } else if rt.status_subresource {
            strategy::keep_status(&old, &mut new);
        }
        strategy::keep_server_fields(rt, &old, &mut new);
        if sub == Subresource::Main {
            strategy::prepare_for_update(rt, &old, &mut new);
            allocate::allocate(self, rt, Some(&old), &mut new)?;
        }
        match (sub, checks) {
            (Subresource::Status, Checks::StatusAlone) => {}
            (Subresource::Status, Checks::Whole) => validate::validate_status_update(rt, &new)?,
            (Subresource::Main, _) => validate::validate_update(rt, &old, &new)?,
        }
        // An apply recorded its own ownership ("Apply"); other writes record "Update".
        if !opts.field_manager.is_empty() && !opts.applied {
            match sub {
                Subresource::Main => record_update(
                    Some(&old),
                    &mut new,
                    &opts.field_manager,
                    rt,
                    &meta::now_timestamp(),
                ),
                Subresource::Status => record_subresource_update(
                    Some(&old),
                    &mut new,
                    &opts.field_manager,
                    rt,
                    "status",
                    &meta::now_timestamp(),
                ),
            }
        }
        if strategy::unchanged(&old, &new) {
            return Ok(Written {
                object: old,
                created: false,
                warnings: Vec::new(),
            });
        }
        let finished = finished_deleting(rt, &new);
        let prev = Arc::new(old);
        let quota = |new: &Value| {
            if sub == Subresource::Main && !finished {
                crate::admission::validate_update(self, rt, &prev, new)
            } else {
                Ok(Vec::new())
            }
        };
        let mut charges = quota(&new)?;
        if opts.dry_run {
            return Ok(Written {
                object: new,
                created: false,
                warnings: Vec::new(),
            });
        }
        let key = key(rt, &namespace, &name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A quota charged by a concurrent write: check against it again.
            let retry = !charges.is_empty() && attempt < QUOTA_RETRIES;
            let action = match (finished, retry) {
                (true, _) => Action::Delete,
                (false, true) => Action::Put(new.clone()),
                (false, false) => Action::Put(std::mem::take(&mut new)),
            };
            let mut ops = vec![Op {
                key: key.clone(),
                precondition: Precondition::Revision(expected),
                action,
                prev: Some(prev.clone()),
            }];
            ops.append(&mut charges);
            match self.store.commit(ops).await {
                Ok(committed) => return Written::first(committed, false, Vec::new()),
                Err(StoreError::Conflict { key, .. })
                    if retry && key.resource == "resourcequotas" =>
                {
                    charges = quota(&new)?;
                }
                Err(e) => return Err(store_error(rt, &name)(e)),
            }
        }
    }

    /// Commits several ops atomically.
    pub async fn commit(&self, ops: Vec<Op>) -> std::result::Result<Vec<Committed>, StoreError> {
        self.store.commit(ops).await
    }
}

/// The op that creates a new namespace's `default` ServiceAccount in the
/// namespace's own commit, so that the first pod in it finds its account
/// (the ServiceAccount controller makes it in namespaces that lack it).
/// It replaces any account of that name left over: the namespace is new.
fn default_service_account(namespace: &str) -> Result<Op> {
    use crate::admission::service_account;
    let rt = service_account::service_account_type()?;
    Ok(Op {
        key: key(rt, namespace, service_account::DEFAULT),
        precondition: Precondition::None,
        action: Action::Put(service_account::default_object(namespace)),
        prev: None,
    })
}

/// What the namespace lifecycle check reads of a Namespace.
#[derive(serde::Deserialize)]
struct NamespaceLifecycle {
    #[serde(default)]
    metadata: NamespaceLifecycleMeta,
}

#[derive(serde::Deserialize, Default)]
struct NamespaceLifecycleMeta {
    #[serde(rename = "deletionTimestamp", default)]
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

/// Decodes and prunes the body of an update, and checks that it names the
/// object of the URL; returns the decoder's warnings.
/// What a write still has to check of the object it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Everything: the object as the kind's rules read it.
    Whole,
    /// Nothing more: its status was decoded alone, and the rest is the stored
    /// object ([`Registry::update_status_from`]).
    StatusAlone,
}

fn check_body(
    rt: &ResourceType,
    name: &str,
    obj: &mut Value,
    opts: &WriteOptions,
) -> Result<Vec<String>> {
    let warnings = validate::decode_and_prune(rt, obj, opts.field_validation)?;
    if let Some(body_name) = meta::name(obj)
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(warnings)
}

/// Computes the patched object.
fn apply_patch(
    rt: &ResourceType,
    old: &Value,
    patch_type: PatchType,
    patch: &Value,
    opts: &WriteOptions,
) -> Result<Value> {
    let name = meta::name(old).unwrap_or_default();
    match patch_type {
        PatchType::Json => {
            let mut new = old.clone();
            skiff_api::patch::json_patch(&mut new, patch)?;
            Ok(new)
        }
        PatchType::Merge => {
            let mut new = old.clone();
            skiff_api::patch::merge_patch(&mut new, patch);
            Ok(new)
        }
        PatchType::StrategicMerge => Ok(skiff_api::patch::strategic_merge_patch(old, patch, rt)?),
        PatchType::Apply => server_side_apply(
            Some(old),
            patch,
            &opts.field_manager,
            opts.force,
            rt,
            &meta::now_timestamp(),
        )
        .map_err(|e| apply_error(rt, name, e)),
    }
}

fn apply_error(rt: &ResourceType, name: &str, e: skiff_api::patch::ApplyError) -> ApiError {
    let mut err: ApiError = e.into();
    if let Some(details) = err.details.as_mut() {
        details.name = name.to_string();
        details.group = rt.group.to_string();
        details.kind = rt.plural.to_string();
    }
    err
}

/// Whether a patch body sets `metadata.resourceVersion` (then a conflict is final).
fn pins_version(patch: &Value) -> bool {
    patch
        .at("/metadata/resourceVersion")
        .is_some_and(|v| !v.is_null())
}

/// The store key of an object.
pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> ObjectKey {
    let ns = if rt.namespaced { namespace } else { "" };
    ObjectKey::new(rt.resource_id(), ns, name)
}

/// The store prefix of a kind, optionally within a namespace.
pub fn prefix(rt: &ResourceType, namespace: Option<&str>) -> KeyPrefix {
    let ns = if rt.namespaced {
        namespace.map(str::to_string)
    } else {
        None
    };
    KeyPrefix::new(rt.resource_id(), ns)
}

/// Maps a store error to the API error a client should see.
pub fn store_error<'a>(
    rt: &'a ResourceType,
    name: &'a str,
) -> impl Fn(StoreError) -> ApiError + 'a {
    move |e| match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(rt, name),
        StoreError::NotFound(_) => ApiError::not_found(rt, name),
        StoreError::Conflict { .. } => ApiError::conflict(rt, name, STALE),
        StoreError::Compacted { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        StoreError::Closed => {
            ApiError::new(Reason::ServiceUnavailable, "the store is shutting down")
        }
        StoreError::Unavailable(why) => {
            tracing::warn!(error = %why, "store unavailable");
            ApiError::new(
                Reason::ServiceUnavailable,
                format!("the store cannot write now: {why}"),
            )
        }
        // Kubernetes' words for a request over a size limit
        // (apimachinery errors.NewRequestEntityTooLargeError).
        StoreError::TooLarge { max, .. } => ApiError::new(
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: limit is {max}"),
        ),
        other => {
            tracing::error!(error = %other, "store failure");
            ApiError::internal(other.to_string())
        }
    }
}

fn namespace_type() -> &'static ResourceType {
    by_kind("v1", "Namespace").unwrap_or(&skiff_api::resource::RESOURCES[0])
}

/// Five characters as Kubernetes' `generateName` uses (no vowels, no confusables).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Whether an update completes a pending deletion: the last finalizer is off
/// and, for a pod deleted gracefully, its node has stopped it (as Kubernetes'
/// pod strategy, which deletes on update only once the grace period is 0).
fn finished_deleting(rt: &ResourceType, obj: &Value) -> bool {
    if meta::deletion_timestamp(obj).is_none() || !meta::finalizers(obj).is_empty() {
        return false;
    }
    let is_pod = rt.kind == "Pod" && rt.group.is_empty();
    !is_pod
        || obj
            .at("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_none_or(|g| g == 0)
}
