//! The patch strategies of the built-in kinds, as a table.
//!
//! Kubernetes reads them from struct tags of the Go types (`patchStrategy`,
//! `patchMergeKey`) for strategic merge patch, and from the OpenAPI list types
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) for server-side apply.
//! Both are recorded here per field, for the types reachable from the kinds Skiff
//! serves. Only fields that need more than the default are listed: by default a
//! map (struct) is merged key by key and a list is replaced whole (atomic).
//!
//! The table itself is generated ([`crate::generated::patch_strategies`], by
//! `api/generators/patch_strategies.py` from the k8s-openapi sources; see that
//! script for the overrides).

use crate::generated::patch_strategies::{OBJECT_META, ROOTS};
use crate::resource::ResourceType;

/// A struct type: its fields that need more than the default treatment.
#[derive(Debug)]
pub(crate) struct Type {
    /// `(json name, shape)`, sorted by name.
    pub(crate) fields: &'static [(&'static str, Shape)],
}

/// What a field holds, as far as merging is concerned.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A nested struct, merged key by key.
    Struct {
        /// `patchStrategy:"retainKeys"`: kubectl sends `$retainKeys` for it.
        retain_keys: bool,
        ty: &'static Type,
    },
    /// A struct or map owned as a whole by server-side apply
    /// (`+structType=atomic`, `+mapType=atomic`). Strategic merge patch still
    /// merges it key by key, as Kubernetes does.
    Atomic,
    /// A list.
    List(List),
}

/// How a list field is merged.
#[derive(Debug)]
pub(crate) struct List {
    /// Strategic merge patch strategy (`patchStrategy` / `patchMergeKey`).
    pub(crate) strategy: Strategy,
    /// `patchStrategy:"merge,retainKeys"`: items may carry `$retainKeys`.
    pub(crate) retain_keys: bool,
    /// Server-side apply list type.
    pub(crate) list_type: ListType,
    /// Items are atomic structs (owned and replaced whole by server-side apply).
    pub(crate) item_atomic: bool,
    /// The item type, when it has fields that need more than the default.
    pub(crate) item: Option<&'static Type>,
}

/// `patchStrategy` of a list in strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// No strategy: the patch replaces the list.
    Replace,
    /// `patchStrategy:"merge"` with `patchMergeKey`: items are objects matched
    /// on that key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars: merged as a set.
    MergeSet,
}

/// `x-kubernetes-list-type` of a list in server-side apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Owned and replaced whole.
    Atomic,
    /// Scalars, each owned on its own (`v:<value>`).
    Set,
    /// Objects identified by these keys (`k:{...}`).
    Map(&'static [Key]),
}

/// One field of a list map key (`x-kubernetes-list-map-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    /// The schema default used when an item omits the field (`protocol: TCP`).
    pub(crate) default: Option<&'static str>,
}

impl Key {
    pub(crate) const fn required(name: &'static str) -> Key {
        Key {
            name,
            default: None,
        }
    }

    pub(crate) const fn defaulted(name: &'static str, default: &'static str) -> Key {
        Key {
            name,
            default: Some(default),
        }
    }
}

impl Type {
    /// The shape of field `name`, if it needs more than the default.
    pub(crate) fn field(&'static self, name: &str) -> Option<&'static Shape> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, shape)| shape)
    }
}

/// The root type of `kind`, and whether its schema is known. For kinds without
/// a known schema (Skiff's own, like `Component`) only `metadata` is typed.
pub(crate) fn root(kind: &ResourceType) -> (&'static Type, bool) {
    ROOTS
        .iter()
        .find(|(group, name, _)| *group == kind.group && *name == kind.kind)
        .map(|(_, _, ty)| (*ty, true))
        .unwrap_or((&UNKNOWN_KIND, false))
}

/// `ObjectMeta`, for callers that type `metadata` of schemaless kinds.
static UNKNOWN_KIND: Type = Type {
    fields: &[(
        "metadata",
        Shape::Struct {
            retain_keys: false,
            ty: &OBJECT_META,
        },
    )],
};

/// A struct with no special fields (e.g. `DeploymentStrategy`, which matters
/// only for its `retainKeys` strategy).
pub(crate) static EMPTY: Type = Type { fields: &[] };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{RESOURCES, SKIFF_GROUP};

    #[test]
    fn every_built_in_kind_has_a_schema() {
        for rt in RESOURCES {
            let (_, known) = root(rt);
            assert_eq!(known, rt.group != SKIFF_GROUP, "{}", rt.kind);
        }
    }

    #[test]
    fn fields_are_sorted_and_unique() {
        fn check(ty: &'static Type, seen: &mut Vec<*const Type>) {
            if seen.contains(&(ty as *const Type)) {
                return;
            }
            seen.push(ty);
            for pair in ty.fields.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
            }
            for (_, shape) in ty.fields {
                match shape {
                    Shape::Struct { ty, .. } => check(ty, seen),
                    Shape::List(List { item: Some(ty), .. }) => check(ty, seen),
                    _ => {}
                }
            }
        }
        let mut seen = Vec::new();
        for (_, _, ty) in ROOTS {
            check(ty, &mut seen);
        }
    }

    #[test]
    fn pod_spec_strategies_match_the_go_tags() {
        let pod = crate::resource::by_kind("v1", "Pod").expect("Pod is served");
        let spec = match root(pod).0.field("spec") {
            Some(Shape::Struct { ty, .. }) => *ty,
            other => panic!("{other:?}"),
        };
        let Some(Shape::List(volumes)) = spec.field("volumes") else {
            panic!()
        };
        assert_eq!(volumes.strategy, Strategy::MergeByKey("name"));
        assert!(volumes.retain_keys);
        assert!(
            spec.field("tolerations").is_none(),
            "tolerations are atomic"
        );
        let Some(Shape::List(containers)) = spec.field("containers") else {
            panic!()
        };
        let container = containers.item.unwrap();
        let Some(Shape::List(ports)) = container.field("ports") else {
            panic!()
        };
        assert_eq!(ports.strategy, Strategy::MergeByKey("containerPort"));
        const PORT_KEYS: &[Key] = &[
            Key::required("containerPort"),
            Key::defaulted("protocol", "TCP"),
        ];
        assert_eq!(ports.list_type, ListType::Map(PORT_KEYS));
        assert!(container.field("args").is_none(), "args are atomic");
    }
}
