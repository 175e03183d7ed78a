//! Sets of field paths, the unit of ownership in server-side apply, and their
//! `FieldsV1` encoding in `metadata.managedFields`.
//!
//! A path is a list of [`PathElement`]s: a field name (`f:name`), a list item
//! by its key fields (`k:{"name":"web"}`), a set item by value (`v:"a"`) or a
//! list item by index (`i:0`). A [`FieldSet`] is a tree of them whose nodes are
//! either members (owned) or only on the way to members; in `FieldsV1` a member
//! with children carries a `".": {}` entry, a member without children is `{}`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone)]
pub(crate) enum PathElement {
    /// A field of an object.
    Field(String),
    /// An item of a list map, by its key fields, sorted by name.
    Key(Vec<(String, Value)>),
    /// An item of a set, by its value.
    Value(Value),
    /// An item of a list, by position.
    Index(usize),
}

/// Why `FieldsV1` JSON does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FieldsV1Error {
    /// A node of the tree is not an object.
    #[error("fieldsV1 must be an object, got {0}")]
    NotObject(Value),
    /// A key without a known prefix (`f:`, `k:`, `v:`, `i:`).
    #[error("invalid path element {0:?}")]
    PathElement(String),
    /// `k:` not followed by a JSON object.
    #[error("invalid key in path element {0:?}")]
    Key(String),
    /// `v:` not followed by JSON.
    #[error("invalid value in path element {0:?}")]
    Value(String),
    /// `i:` not followed by an index.
    #[error("invalid index in path element {0:?}")]
    Index(String),
}

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key: `f:name`, `k:{"name":"web"}`, `v:"a"`, `i:0`.
    pub(crate) fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let map: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(map))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub(crate) fn decode(s: &str) -> Result<PathElement, FieldsV1Error> {
        let (prefix, rest) = s
            .split_at_checked(2)
            .ok_or_else(|| FieldsV1Error::PathElement(s.to_string()))?;
        match prefix {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(PathElement::Key(fields))
                }
                _ => Err(FieldsV1Error::Key(s.to_string())),
            },
            "v:" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|_| FieldsV1Error::Value(s.to_string())),
            "i:" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|_| FieldsV1Error::Index(s.to_string())),
            _ => Err(FieldsV1Error::PathElement(s.to_string())),
        }
    }

    /// As Kubernetes prints paths: `.name`, `[name="web"]`, `[="a"]`, `[0]`.
    pub(crate) fn display(&self) -> String {
        match self {
            PathElement::Field(name) => format!(".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// The total order of values Kubernetes' structured-merge-diff uses: numbers,
/// then strings, booleans, lists, objects and null.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (x, y) in x.iter().zip(y) {
                let c = compare_values(x, y);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `.spec.template.spec.containers[name="web"].image`
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

impl FieldSet {
    pub(crate) fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether the set has no member.
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub(crate) fn contains(&self, path: &[PathElement]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Adds every member of `other`.
    pub(crate) fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, child) in &other.children {
            self.children
                .entry(pe.clone())
                .or_default()
                .union_with(child);
        }
    }

    /// The members of `self` that are not members of `other`.
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let empty = FieldSet::new();
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = child.difference(other.children.get(pe).unwrap_or(&empty));
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// Whether the sets share a member.
    pub(crate) fn overlaps(&self, other: &FieldSet) -> bool {
        (self.member && other.member)
            || self.children.iter().any(|(pe, child)| {
                other
                    .children
                    .get(pe)
                    .is_some_and(|theirs| child.overlaps(theirs))
            })
    }

    /// Whether every member of `other` is a member of `self`.
    pub(crate) fn includes(&self, other: &FieldSet) -> bool {
        (self.member || !other.member)
            && other
                .children
                .iter()
                .all(|(pe, theirs)| match self.children.get(pe) {
                    Some(mine) => mine.includes(theirs),
                    None => theirs.is_empty(),
                })
    }

    /// The members of both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub(crate) fn paths(&self) -> Vec<Vec<PathElement>> {
        fn walk(set: &FieldSet, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
            if set.member {
                out.push(prefix.clone());
            }
            for (pe, child) in &set.children {
                prefix.push(pe.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The `FieldsV1` JSON of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            if !child.is_empty() {
                map.insert(pe.encode(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Parses `FieldsV1` JSON.
    pub(crate) fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldsV1Error> {
        let Value::Object(map) = value else {
            return Err(FieldsV1Error::NotObject(value.clone()));
        };
        let mut set = FieldSet::new();
        for (key, child) in map {
            if key == "." {
                set.member = true;
                continue;
            }
            let pe = PathElement::decode(key)?;
            let mut parsed = FieldSet::from_fields_v1(child)?;
            if child.as_object().is_some_and(Map::is_empty) {
                parsed.member = true;
            }
            set.children.insert(pe, parsed);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(paths: &[&[&str]]) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            let path: Vec<PathElement> = path
                .iter()
                .map(|p| PathElement::Field(p.to_string()))
                .collect();
            set.insert(&path);
        }
        set
    }

    #[test]
    fn overlaps_and_includes_are_about_members() {
        let spec = set_of(&[&["spec", "replicas"], &["spec", "paused"]]);
        let replicas = set_of(&[&["spec", "replicas"]]);
        let status = set_of(&[&["status", "replicas"]]);
        let spec_itself = set_of(&[&["spec"]]);
        assert!(spec.overlaps(&replicas) && replicas.overlaps(&spec));
        assert!(!spec.overlaps(&status));
        // `spec` as a member is not a member below it.
        assert!(!spec.overlaps(&spec_itself));
        assert!(spec.includes(&replicas) && !replicas.includes(&spec));
        assert!(spec.includes(&FieldSet::new()));
        assert!(!spec.includes(&spec_itself));
        for (a, b) in [(&spec, &replicas), (&spec, &status), (&replicas, &spec)] {
            assert_eq!(a.overlaps(b), !a.intersection(b).is_empty());
            assert_eq!(a.includes(b), b.difference(a).is_empty());
        }
    }
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    fn k(name: &str, value: Value) -> PathElement {
        PathElement::Key(vec![(name.to_string(), value)])
    }

    /// The managed fields of a Deployment as `kubectl apply --server-side` leaves them.
    fn deployment_fields() -> Value {
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {
                        "k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }
                    }}
                }
            }
        })
    }

    #[test]
    fn fields_v1_round_trip() {
        let set = FieldSet::from_fields_v1(&deployment_fields()).unwrap();
        assert!(set.contains(&[f("spec"), f("replicas")]));
        assert!(!set.contains(&[f("spec")]));
        let container = k("name", json!("nginx"));
        assert!(set.contains(&[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            container.clone()
        ]));
        assert!(set.contains(&[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            container,
            f("image")
        ]));
        assert_eq!(set.to_fields_v1(), deployment_fields());
        assert_eq!(set.paths().len(), 9);
    }

    #[test]
    fn encoding_and_display() {
        let port = PathElement::Key(vec![
            ("containerPort".into(), json!(80)),
            ("protocol".into(), json!("TCP")),
        ]);
        assert_eq!(
            port.encode(),
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
        );
        assert_eq!(PathElement::decode(&port.encode()).unwrap(), port);
        assert_eq!(
            path_string(&[
                f("spec"),
                f("template"),
                f("spec"),
                f("containers"),
                k("name", json!("web")),
                f("ports"),
                port
            ]),
            ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"]"
        );
        assert_eq!(
            path_string(&[
                f("metadata"),
                f("finalizers"),
                PathElement::Value(json!("a"))
            ]),
            ".metadata.finalizers[=\"a\"]"
        );
        assert_eq!(PathElement::decode("v:\"a\"").unwrap().encode(), "v:\"a\"");
        assert_eq!(PathElement::decode("i:3").unwrap(), PathElement::Index(3));
        assert!(PathElement::decode("x:1").is_err());
        assert!(PathElement::decode("k:[1]").is_err());
        assert!(PathElement::decode("").is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn order_follows_kubernetes() {
        let mut set = FieldSet::new();
        set.insert(&[f("b"), PathElement::Value(json!("x"))]);
        set.insert(&[f("b"), PathElement::Value(json!(10))]);
        set.insert(&[f("b"), PathElement::Value(json!(9))]);
        set.insert(&[f("a")]);
        let fields = set.to_fields_v1();
        let keys: Vec<&String> = fields.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["f:a", "f:b"]);
        let values: Vec<&String> = fields["f:b"].as_object().unwrap().keys().collect();
        assert_eq!(values, ["v:9", "v:10", "v:\"x\""]);
    }

    #[test]
    fn set_operations() {
        let mut a = FieldSet::new();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = FieldSet::new();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("metadata"), f("labels"), f("app")]);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![vec![f("spec"), f("replicas")]]
        );
        assert_eq!(a.difference(&b).paths(), vec![vec![f("spec"), f("paused")]]);
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u.paths().len(), 3);
        assert!(a.difference(&a).is_empty());
        assert!(
            a.difference(&a)
                .to_fields_v1()
                .as_object()
                .unwrap()
                .is_empty()
        );
    }
}
