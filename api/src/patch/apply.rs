//! Server-side apply (`kubectl apply --server-side`) and the field ownership
//! it rests on, following <https://kubernetes.io/docs/reference/using-api/server-side-apply/>.
//!
//! Every object records in `metadata.managedFields` which manager owns which
//! fields. An apply merges the configuration into the live object; a field the
//! configuration changes that another manager owns is a conflict unless the
//! apply is forced, which moves the ownership. Fields the manager applied before
//! and no longer applies are removed unless someone else owns them. Other
//! writes (create, update, patch) go through [`record_update`], which gives
//! their manager the fields they changed.
//!
//! Not tracked: `apiVersion`, `kind`, the server-set `metadata` fields, and
//! `status` on kinds with a status subresource (`spec` for writes to it).

mod fieldset;
mod managers;
mod walk;

use serde_json::{Map, Value};

use crate::resource::ResourceType;
use crate::status::{ApiError, Reason};
use fieldset::{FieldSet, PathElement, path_string};
use managers::{APPLY, Entry, UPDATE};
use walk::Slot;

pub use walk::ListError;

/// The manager Kubernetes gives the fields of an object that had no managed
/// fields when it was first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The configuration changes fields other managers own (409 Conflict).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration is malformed (400 BadRequest), e.g. no field
    /// manager or `metadata.managedFields` set.
    #[error("{0}")]
    Invalid(String),
    /// A list in the configuration breaks its schema (400 BadRequest), e.g. an
    /// item without its key.
    #[error(transparent)]
    List(#[from] ListError),
}

/// A field an apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owning manager, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// How it came to own the field: `Apply` or `Update`.
    pub operation: String,
    /// The API version the owner wrote with.
    pub api_version: String,
    /// The subresource the owner wrote through (`status`), or empty.
    pub subresource: String,
    /// The field, as Kubernetes prints paths: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

impl Conflict {
    /// The owner as Kubernetes names it in conflict messages: `"mgr"`, or
    /// `"mgr" using apps/v1` for an updater.
    pub fn manager_description(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// `Apply failed with 1 conflict: conflict with "mgr": .spec.replicas`, or for
/// several, one block per manager.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_description(),
            only.field
        );
    }
    let mut lines = Vec::new();
    let mut current: Option<String> = None;
    for c in conflicts {
        let who = c.manager_description();
        if current.as_ref() != Some(&who) {
            lines.push(format!("conflicts with {who}:"));
            current = Some(who);
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl From<ApplyError> for ApiError {
    fn from(err: ApplyError) -> ApiError {
        match err {
            ApplyError::Conflicts(_) => ApiError::new(Reason::Conflict, err.to_string()),
            ApplyError::Invalid(message) => ApiError::bad_request(message),
            ApplyError::List(e) => ApiError::bad_request(e.to_string()),
        }
    }
}

/// Applies the configuration `applied` (an apply patch, already parsed) as
/// `manager` to `live` (`None` when creating) and returns the object to store,
/// with `metadata.managedFields` updated and `now` (RFC 3339) as the time of
/// the manager's entry. With `force`, conflicting fields change hands instead
/// of failing.
///
/// The result carries whatever the configuration sets, `resourceVersion`
/// included; preconditions, defaulting and validation are the caller's.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    kind: &ResourceType,
    now: &str,
) -> Result<Value, ApplyError> {
    if manager.is_empty() {
        return Err(ApplyError::Invalid(
            "PATCH: fieldManager is required for apply requests".into(),
        ));
    }
    let Value::Object(config_map) = applied else {
        return Err(ApplyError::Invalid(
            "an apply configuration must be an object".into(),
        ));
    };
    if config_map
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let mut config = applied.clone();
    if kind.status_subresource {
        // The API server resets status on writes to the main resource.
        remove_key(&mut config, "status");
    }

    let root = walk::root_slot(kind);
    let ignored = Ignored::new(kind, None);
    let api_version = kind.api_version();
    let live_obj = live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));

    let mut entries = live
        .map(|l| managers::decode_stored(managed_fields(l)).unwrap_or_default())
        .unwrap_or_default();
    if live.is_some() && entries.is_empty() {
        // Kubernetes gives the fields of an object nobody tracked yet to
        // `before-first-apply`, so that applying over them can conflict.
        let mut before = Entry::new(BEFORE_FIRST_APPLY, UPDATE, &api_version, "");
        before.replace_set(tracked_set(&live_obj, root, &ignored));
        before.time = Some(now.to_string());
        entries.push(before);
    }

    let config_set = walk::field_set(&ignored.strip(&config), root, true)?;
    let mut merged =
        walk::merge(&live_obj, &config, root)?.unwrap_or_else(|| Value::Object(Map::new()));

    let me = Entry::new(manager, APPLY, &api_version, "");
    let (mine, is_new) = match entries.iter().position(|e| e.same_manager(&me)) {
        Some(i) => (i, false),
        None => {
            entries.push(me);
            (entries.len() - 1, true)
        }
    };
    let previous = entries[mine].replace_set(config_set);
    entries[mine].api_version = api_version.clone();

    // Remove what this manager applied before and nobody claims any more.
    if !previous.is_empty() {
        let mut owned = FieldSet::new();
        for e in &entries {
            owned.union_with(e.set());
        }
        for path in previous.difference(&owned).paths() {
            walk::remove(&mut merged, &path, root, &owned);
        }
    }

    let diff = walk::compare(&ignored.strip(&live_obj), &ignored.strip(&merged), root);
    let mut changed = diff.added;
    changed.union_with(&diff.modified);
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if i == mine {
            continue;
        }
        for path in e.set().intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                field: path_string(&path),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| {
            (&a.manager, &a.operation, &a.subresource).cmp(&(
                &b.manager,
                &b.operation,
                &b.subresource,
            ))
        });
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if i != mine {
            e.release(&changed, &diff.removed);
        }
    }
    if is_new || !walk::deep_eq(&merged, &live_obj) {
        entries[mine].time = Some(now.to_string());
    }
    set_managed_fields(&mut merged, &mut entries);
    Ok(merged)
}

/// Records in `new.metadata.managedFields` the fields `manager` set or changed
/// in a create (`old` is `None`), update or patch of the main resource, taking
/// them from the managers that owned them, as Kubernetes does for `Update`
/// operations. `now` (RFC 3339) becomes the entry's time when it changed
/// something. A request that sends `managedFields` replaces them (`[]` or `[{}]`
/// clears them); otherwise those of `old` are kept.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    kind: &ResourceType,
    now: &str,
) {
    record(old, new, manager, kind, None, now);
}

/// [`record_update`] for a write through a subresource (`status`): the entry
/// carries the subresource, requests cannot replace `managedFields`, and for
/// `status` only the status fields are tracked.
pub fn record_subresource_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    kind: &ResourceType,
    subresource: &str,
    now: &str,
) {
    record(
        old,
        new,
        manager,
        kind,
        Some(subresource).filter(|s| !s.is_empty()),
        now,
    );
}

fn record(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    kind: &ResourceType,
    subresource: Option<&str>,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let sent = managed_fields(new);
    let from_old = || {
        old.and_then(|o| managers::decode_stored(managed_fields(o)).ok())
            .unwrap_or_default()
    };
    let mut entries = match subresource {
        Some(_) => from_old(),
        None if managers::is_reset(sent) => Vec::new(),
        None => match managers::decode(sent) {
            Ok(entries) if !entries.is_empty() => entries,
            _ => from_old(),
        },
    };

    let root = walk::root_slot(kind);
    let ignored = Ignored::new(kind, subresource);
    // `managedFields` is among the ignored paths, so one stripped copy of each
    // side is all the comparison needs.
    let old_obj = old
        .map(|o| ignored.strip(o))
        .unwrap_or_else(|| Value::Object(Map::new()));
    let diff = walk::compare(&old_obj, &ignored.strip(new), root);
    let mut changed = diff.added;
    changed.union_with(&diff.modified);

    for e in entries.iter_mut() {
        e.release(&changed, &diff.removed);
    }
    if !changed.is_empty() {
        let me = Entry::new(
            manager,
            UPDATE,
            &kind.api_version(),
            subresource.unwrap_or_default(),
        );
        let mine = match entries.iter().position(|e| e.same_manager(&me)) {
            Some(i) => i,
            None => {
                entries.push(me);
                entries.len() - 1
            }
        };
        entries[mine].take(&changed);
        entries[mine].time = Some(now.to_string());
    }
    set_managed_fields(new, &mut entries);
}

/// The paths server-side apply does not track for a kind.
struct Ignored(Vec<Vec<PathElement>>);

impl Ignored {
    fn new(kind: &ResourceType, subresource: Option<&str>) -> Ignored {
        let field = |parts: &[&str]| {
            parts
                .iter()
                .map(|p| PathElement::Field(p.to_string()))
                .collect::<Vec<_>>()
        };
        let mut paths = vec![field(&["apiVersion"]), field(&["kind"])];
        for meta in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            paths.push(field(&["metadata", meta]));
        }
        match subresource {
            Some("status") => paths.push(field(&["spec"])),
            Some(_) => {}
            None if kind.status_subresource => paths.push(field(&["status"])),
            None => {}
        }
        Ignored(paths)
    }

    /// A copy of `obj` without the ignored fields (and without a `metadata`
    /// left empty by that). Ignored subtrees are skipped, not copied: for a
    /// status write that is the whole `spec`.
    fn strip(&self, obj: &Value) -> Value {
        let Value::Object(map) = obj else {
            return obj.clone();
        };
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
            if self.ignores_field(key) {
                continue;
            }
            let ignored_children: Vec<&str> = self.ignored_under(key).collect();
            let value = match value {
                Value::Object(children) if !ignored_children.is_empty() => {
                    let kept: Map<String, Value> = children
                        .iter()
                        .filter(|(k, _)| !ignored_children.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if kept.is_empty() && key == "metadata" {
                        continue;
                    }
                    Value::Object(kept)
                }
                Value::Object(children) if children.is_empty() && key == "metadata" => continue,
                other => other.clone(),
            };
            out.insert(key.clone(), value);
        }
        Value::Object(out)
    }

    /// Whether the top-level field `key` is ignored as a whole.
    fn ignores_field(&self, key: &str) -> bool {
        self.0
            .iter()
            .any(|path| matches!(path.as_slice(), [PathElement::Field(k)] if k == key))
    }

    /// The ignored fields directly under the top-level field `parent`.
    fn ignored_under<'a>(&'a self, parent: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter_map(move |path| match path.as_slice() {
            [PathElement::Field(p), PathElement::Field(key)] if p == parent => Some(key.as_str()),
            _ => None,
        })
    }
}

fn tracked_set(obj: &Value, root: Slot, ignored: &Ignored) -> FieldSet {
    walk::field_set(&ignored.strip(obj), root, false).unwrap_or_default()
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields"))
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata") {
        remove_key(meta, "managedFields");
    }
    out
}

fn remove_key(obj: &mut Value, key: &str) {
    if let Value::Object(map) = obj {
        map.shift_remove(key);
    }
}

/// Writes the entries into `obj.metadata.managedFields`, or removes the field
/// when no entry owns anything.
fn set_managed_fields(obj: &mut Value, entries: &mut Vec<Entry>) {
    let encoded = managers::encode(entries);
    let Value::Object(map) = obj else { return };
    let empty = encoded.as_array().is_some_and(Vec::is_empty);
    match map.get_mut("metadata") {
        Some(Value::Object(meta)) => {
            if empty {
                meta.shift_remove("managedFields");
            } else {
                meta.insert("managedFields".into(), encoded);
            }
        }
        _ if empty => {}
        _ => {
            let mut meta = Map::new();
            meta.insert("managedFields".into(), encoded);
            map.insert("metadata".into(), Value::Object(meta));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;
    use serde_json::json;

    const T1: &str = "2025-01-01T00:00:00Z";
    const T2: &str = "2025-01-02T00:00:00Z";
    const T3: &str = "2025-01-03T00:00:00Z";

    fn deploy() -> &'static ResourceType {
        by_kind("apps/v1", "Deployment").unwrap()
    }

    fn manifest(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    /// What the API server would store after creating from an apply.
    fn created(manager: &str) -> Value {
        let mut obj =
            server_side_apply(None, &manifest(2, "web:1"), manager, false, deploy(), T1).unwrap();
        obj["metadata"]["uid"] = json!("u1");
        obj["metadata"]["resourceVersion"] = json!("1");
        obj
    }

    fn entries(obj: &Value) -> Vec<(String, String)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap().to_string(),
                            e["operation"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn fields_of<'a>(obj: &'a Value, manager: &str) -> &'a Value {
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| &e["fieldsV1"])
            .unwrap()
    }

    /// The stored `FieldsV1` of an entry whose set does not change is
    /// written back as it was, and equals what encoding the set gives; an
    /// entry that gains or loses fields is encoded again.
    #[test]
    fn unchanged_entries_keep_their_stored_fields_and_changed_ones_are_encoded() {
        let applied = created("kubectl");
        let applied_fields = fields_of(&applied, "kubectl").clone();

        // Another manager scales: it takes spec.replicas from the applier.
        let mut scaled = applied.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(Some(&applied), &mut scaled, "scaler", deploy(), T2);
        let kubectl = fields_of(&scaled, "kubectl");
        assert!(kubectl["f:spec"].get("f:replicas").is_none(), "{kubectl}");
        assert_eq!(
            fields_of(&scaled, "scaler"),
            &json!({"f:spec": {"f:replicas": {}}})
        );

        // The scaler again, on the field it owns: the applier's entry is
        // untouched and the scaler's set is the same, so both are written
        // back as stored, time aside.
        let mut again = scaled.clone();
        again["spec"]["replicas"] = json!(6);
        record_update(Some(&scaled), &mut again, "scaler", deploy(), T3);
        assert_eq!(fields_of(&again, "kubectl"), fields_of(&scaled, "kubectl"));
        assert_eq!(fields_of(&again, "scaler"), fields_of(&scaled, "scaler"));
        let times: Vec<&Value> = again["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["time"])
            .collect();
        assert!(times.contains(&&json!(T3)), "{times:?}");

        // Stored fields are exactly the encoding of their set.
        for entry in again["metadata"]["managedFields"].as_array().unwrap() {
            let fields = &entry["fieldsV1"];
            let set = FieldSet::from_fields_v1(fields).unwrap();
            assert_eq!(&set.to_fields_v1(), fields);
        }
        assert_ne!(fields_of(&scaled, "kubectl"), &applied_fields);
    }

    #[test]
    fn create_by_apply_records_the_applied_fields() {
        let obj = created("kubectl");
        assert_eq!(obj["spec"]["replicas"], 2);
        assert_eq!(obj["metadata"]["name"], "web");
        let mf = &obj["metadata"]["managedFields"];
        assert_eq!(mf.as_array().unwrap().len(), 1);
        assert_eq!(mf[0]["manager"], "kubectl");
        assert_eq!(mf[0]["operation"], "Apply");
        assert_eq!(mf[0]["apiVersion"], "apps/v1");
        assert_eq!(mf[0]["time"], T1);
        assert_eq!(mf[0]["fieldsType"], "FieldsV1");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn reapplying_the_same_configuration_changes_nothing() {
        let obj = created("kubectl");
        let again = server_side_apply(
            Some(&obj),
            &manifest(2, "web:1"),
            "kubectl",
            false,
            deploy(),
            T2,
        )
        .unwrap();
        assert_eq!(again, obj, "same object, same managed fields, same time");
    }

    #[test]
    fn changing_another_managers_field_conflicts() {
        let obj = created("kubectl");
        let err = server_side_apply(
            Some(&obj),
            &json!({"spec": {"replicas": 5}}),
            "hpa",
            false,
            deploy(),
            T2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
        );
        let status = ApiError::from(err).to_status();
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "Conflict");
    }

    #[test]
    fn setting_the_same_value_shares_ownership() {
        let obj = created("kubectl");
        let shared = server_side_apply(
            Some(&obj),
            &json!({"spec": {"replicas": 2}}),
            "other",
            false,
            deploy(),
            T2,
        )
        .unwrap();
        assert_eq!(
            fields_of(&shared, "other"),
            &json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            fields_of(&shared, "kubectl")["f:spec"]["f:replicas"],
            json!({})
        );
        // Now neither can drop replicas alone.
        let dropped = server_side_apply(
            Some(&shared),
            &json!({"spec": {"paused": true}}),
            "other",
            false,
            deploy(),
            T3,
        )
        .unwrap();
        assert_eq!(dropped["spec"]["replicas"], 2);
    }

    #[test]
    fn force_moves_ownership() {
        let obj = created("kubectl");
        let forced = server_side_apply(
            Some(&obj),
            &json!({"spec": {"replicas": 5}}),
            "hpa",
            true,
            deploy(),
            T2,
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        assert_eq!(
            fields_of(&forced, "hpa"),
            &json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(
            fields_of(&forced, "kubectl")["f:spec"]
                .get("f:replicas")
                .is_none()
        );
        // The original applier now conflicts in turn.
        let err = server_side_apply(
            Some(&forced),
            &manifest(2, "web:1"),
            "kubectl",
            false,
            deploy(),
            T3,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"hpa\": .spec.replicas"
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let obj = created("kubectl");
        let mut config = manifest(2, "web:1");
        config["spec"].as_object_mut().unwrap().remove("replicas");
        config["metadata"].as_object_mut().unwrap().remove("labels");
        config["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports");
        let out = server_side_apply(Some(&obj), &config, "kubectl", false, deploy(), T2).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert!(out["metadata"].get("labels").is_none());
        assert!(
            out["spec"]["template"]["spec"]["containers"][0]
                .get("ports")
                .is_none()
        );
        assert_eq!(out["metadata"]["managedFields"][0]["time"], T2);
    }

    #[test]
    fn fields_another_manager_owns_survive_the_prune() {
        let mut obj = created("kubectl");
        // A controller (Update) also sets replicas to the same value.
        let old = obj.clone();
        obj["spec"]["replicas"] = json!(2);
        obj["metadata"]["annotations"] = json!({"note": "x"});
        record_update(Some(&old), &mut obj, "controller", deploy(), T2);
        assert_eq!(
            entries(&obj),
            vec![
                ("kubectl".into(), "Apply".into()),
                ("controller".into(), "Update".into())
            ]
        );
        let mut config = manifest(2, "web:1");
        config["spec"].as_object_mut().unwrap().remove("replicas");
        let out = server_side_apply(Some(&obj), &config, "kubectl", false, deploy(), T3).unwrap();
        // replicas was only applied by kubectl: gone. The annotation is the controller's.
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(out["metadata"]["annotations"], json!({"note": "x"}));
    }

    #[test]
    fn list_items_are_owned_by_key() {
        let obj = created("kubectl");
        // A second applier adds a sidecar container; no conflict.
        let sidecar = json!({"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "log:1"}]}}}});
        let two = server_side_apply(Some(&obj), &sidecar, "mesh", false, deploy(), T2).unwrap();
        let names: Vec<&str> = two["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "log"]);
        // Changing the other's image conflicts with a path naming the item.
        let bump = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
        let err = server_side_apply(Some(&two), &bump, "mesh", false, deploy(), T3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.template.spec.containers[name=\"web\"].image"
        );
        // The first applier dropping its container leaves the sidecar.
        let mut config = manifest(2, "web:1");
        config["spec"]["template"]["spec"]["containers"] = json!([]);
        let out = server_side_apply(Some(&two), &config, "kubectl", false, deploy(), T3).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "log", "image": "log:1"}])
        );
    }

    #[test]
    fn several_conflicts_are_listed_by_manager() {
        let mut obj = created("kubectl");
        let old = obj.clone();
        obj["spec"]["paused"] = json!(true);
        record_update(Some(&old), &mut obj, "kubectl-edit", deploy(), T2);
        let err = server_side_apply(Some(&obj), &json!({"spec": {"replicas": 9, "paused": false, "selector": {"matchLabels": {"x": "y"}}}}),
            "other", false, deploy(), T3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"kubectl\":\n- .spec.replicas\n- .spec.selector\nconflicts with \"kubectl-edit\" using apps/v1:\n- .spec.paused"
        );
        let ApplyError::Conflicts(list) = err else {
            panic!()
        };
        assert_eq!(
            list[2].manager_description(),
            "\"kubectl-edit\" using apps/v1"
        );
    }

    #[test]
    fn objects_without_managed_fields_belong_to_before_first_apply() {
        let mut live = manifest(2, "web:1");
        live["metadata"]["uid"] = json!("u1");
        let err = server_side_apply(
            Some(&live),
            &json!({"spec": {"replicas": 3}}),
            "kubectl",
            false,
            deploy(),
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let ok = server_side_apply(
            Some(&live),
            &json!({"spec": {"replicas": 2}}),
            "kubectl",
            false,
            deploy(),
            T1,
        )
        .unwrap();
        assert_eq!(
            entries(&ok),
            vec![
                ("kubectl".into(), "Apply".into()),
                ("before-first-apply".into(), "Update".into())
            ]
        );
    }

    #[test]
    fn status_is_not_applied_on_the_main_resource() {
        let mut config = manifest(2, "web:1");
        config["status"] = json!({"replicas": 7});
        let obj = server_side_apply(None, &config, "kubectl", false, deploy(), T1).unwrap();
        assert!(obj.get("status").is_none());
        assert!(fields_of(&obj, "kubectl").get("f:status").is_none());
        // Kinds without a status subresource track everything.
        let cm = by_kind("v1", "ConfigMap").unwrap();
        let obj = server_side_apply(
            None,
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
            "m",
            false,
            cm,
            T1,
        )
        .unwrap();
        assert_eq!(fields_of(&obj, "m"), &json!({"f:data": {"f:a": {}}}));
    }

    #[test]
    fn bad_configurations() {
        let bad = |config: Value, manager: &str| {
            server_side_apply(None, &config, manager, false, deploy(), T1).unwrap_err()
        };
        assert_eq!(
            bad(manifest(1, "x"), ""),
            ApplyError::Invalid("PATCH: fieldManager is required for apply requests".into())
        );
        assert_eq!(
            bad(json!([]), "m"),
            ApplyError::Invalid("an apply configuration must be an object".into())
        );
        assert_eq!(
            bad(json!({"metadata": {"managedFields": []}}), "m"),
            ApplyError::Invalid("metadata.managedFields must be nil".into())
        );
        let dup =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = bad(dup, "m");
        assert_eq!(
            err.to_string(),
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
        );
        assert_eq!(ApiError::from(err).code(), 400);
    }

    #[test]
    fn schemaless_kinds_replace_lists_and_own_objects() {
        let comp = by_kind("skiff.dev/v1alpha1", "Component").unwrap();
        let config =
            json!({"metadata": {"name": "c"}, "spec": {"args": ["a"], "source": {"path": "x"}}});
        let obj = server_side_apply(None, &config, "skiff", false, comp, T1).unwrap();
        assert_eq!(
            fields_of(&obj, "skiff"),
            &json!({"f:spec": {".": {}, "f:args": {}, "f:source": {".": {}, "f:path": {}}}})
        );
        let err = server_side_apply(
            Some(&obj),
            &json!({"spec": {"args": ["b"]}}),
            "other",
            false,
            comp,
            T2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"skiff\": .spec.args"
        );
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let mut obj = json!({"metadata": {"name": "web", "uid": "u1", "resourceVersion": "1"}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
        record_update(None, &mut obj, "kubectl-create", deploy(), T1);
        assert_eq!(
            obj["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}
            }])
        );
        // `kubectl scale` (another manager) takes replicas over.
        let old = obj.clone();
        obj["spec"]["replicas"] = json!(3);
        record_update(Some(&old), &mut obj, "kubectl-scale", deploy(), T2);
        assert_eq!(
            entries(&obj),
            vec![("kubectl-scale".into(), "Update".into())]
        );
        // A write that changes nothing keeps everything, time included.
        let old = obj.clone();
        record_update(Some(&old), &mut obj, "other", deploy(), T3);
        assert_eq!(obj, old);
        // Removing a field takes it from its owner.
        let old = obj.clone();
        obj["spec"].as_object_mut().unwrap().remove("replicas");
        obj["spec"]["paused"] = json!(true);
        record_update(Some(&old), &mut obj, "kubectl-edit", deploy(), T3);
        assert_eq!(
            entries(&obj),
            vec![("kubectl-edit".into(), "Update".into())]
        );
    }

    #[test]
    fn requests_may_replace_or_clear_managed_fields() {
        let obj = created("kubectl");
        // Sent back unchanged (as `kubectl edit` does): kept.
        let mut same = obj.clone();
        same["metadata"]["labels"]["tier"] = json!("front");
        record_update(Some(&obj), &mut same, "kubectl-edit", deploy(), T2);
        assert_eq!(
            entries(&same),
            vec![
                ("kubectl".into(), "Apply".into()),
                ("kubectl-edit".into(), "Update".into())
            ]
        );
        // Omitted: those of the old object are kept.
        let mut omitted = obj.clone();
        omitted["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        record_update(Some(&obj), &mut omitted, "x", deploy(), T2);
        assert_eq!(entries(&omitted), vec![("kubectl".into(), "Apply".into())]);
        // `[{}]` clears them.
        let mut cleared = obj.clone();
        cleared["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&obj), &mut cleared, "x", deploy(), T2);
        assert!(cleared["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn status_writes_are_recorded_with_their_subresource() {
        let obj = created("kubectl");
        let mut new = obj.clone();
        new["status"] =
            json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
        record_subresource_update(
            Some(&obj),
            &mut new,
            "deployment-controller",
            deploy(),
            "status",
            T2,
        );
        let mf = new["metadata"]["managedFields"].as_array().unwrap();
        let status = mf
            .iter()
            .find(|e| e["manager"] == "deployment-controller")
            .unwrap();
        assert_eq!(status["subresource"], "status");
        assert_eq!(
            status["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
        );
        // The main resource ignores status changes.
        let mut again = new.clone();
        again["status"]["replicas"] = json!(3);
        record_update(Some(&new), &mut again, "someone", deploy(), T3);
        assert_eq!(
            again["metadata"]["managedFields"],
            new["metadata"]["managedFields"]
        );
    }
}
