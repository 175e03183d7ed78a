//! Field selectors: the `fieldSelector` query parameter.
//!
//! Parsing follows `k8s.io/apimachinery/pkg/fields` (`fields.ParseSelector`),
//! including its backslash escapes and error messages. Which fields a kind
//! supports, and how each is read from an object, follow the field label
//! conversions (`pkg/apis/*/v1/conversion.go`) and the `ToSelectableFields`
//! functions of Kubernetes' registries, with two documented widenings (see
//! [`FieldSelector::parse_for`]).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::json::Pointer as _;
use crate::resource::ResourceType;
use crate::status::ApiError;

/// How a [`FieldRequirement`] compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    field: String,
    operator: FieldOperator,
    value: String,
    read: Read,
}

/// A conjunction of [`FieldRequirement`]s, as Kubernetes' `fields.Selector`.
///
/// An empty selector matches every object. Terms are kept in the order Kubernetes
/// keeps them (sorted as written), so [`Display`](fmt::Display) is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// How a field's value is read from an object, rendered as the string the
/// selector compares with. Missing fields read as Go's zero values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The field label itself as a dotted JSON path (selectors parsed without a kind).
    Dotted,
    /// A string at a path; missing is `""`.
    Str(&'static [&'static str]),
    /// A boolean at a path; missing is `false`.
    Bool(&'static [&'static str]),
    /// An integer at a path; missing is `0`.
    Int(&'static [&'static str]),
    /// A pod's primary IP: `status.podIPs[0].ip`, else `status.podIP`.
    PodIp,
    /// All of a pod's IPs, comma-joined.
    PodIps,
    /// An event's `source.component`, else its `reportingComponent`.
    EventSource,
}

/// The field selectors one kind supports.
struct KindFields {
    fields: &'static [(&'static str, Read)],
    /// Old names accepted and rewritten (`spec.host` for `spec.nodeName`).
    aliases: &'static [(&'static str, &'static str)],
    unsupported: Unsupported,
}

/// How a kind words the rejection of a field it does not support.
#[derive(Clone, Copy)]
enum Unsupported {
    /// The core kinds' conversions: `field label not supported: spec.foo`.
    FieldLabel,
    /// batch/v1 Job's conversion.
    Job,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, for kinds without one.
    Default,
}

const NAME: (&str, Read) = ("metadata.name", Read::Str(&["metadata", "name"]));
const NAMESPACE: (&str, Read) = ("metadata.namespace", Read::Str(&["metadata", "namespace"]));

static DEFAULT_FIELDS: KindFields = KindFields {
    fields: &[NAME, NAMESPACE],
    aliases: &[],
    unsupported: Unsupported::Default,
};

static POD_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        ("spec.nodeName", Read::Str(&["spec", "nodeName"])),
        ("spec.restartPolicy", Read::Str(&["spec", "restartPolicy"])),
        ("spec.schedulerName", Read::Str(&["spec", "schedulerName"])),
        (
            "spec.serviceAccountName",
            Read::Str(&["spec", "serviceAccountName"]),
        ),
        ("spec.hostNetwork", Read::Bool(&["spec", "hostNetwork"])),
        ("status.phase", Read::Str(&["status", "phase"])),
        ("status.podIP", Read::PodIp),
        ("status.podIPs", Read::PodIps),
        (
            "status.nominatedNodeName",
            Read::Str(&["status", "nominatedNodeName"]),
        ),
    ],
    // For old v1 clients, as Kubernetes keeps it.
    aliases: &[("spec.host", "spec.nodeName")],
    unsupported: Unsupported::FieldLabel,
};

static NODE_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        ("spec.unschedulable", Read::Bool(&["spec", "unschedulable"])),
    ],
    aliases: &[],
    unsupported: Unsupported::FieldLabel,
};

static EVENT_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        (
            "involvedObject.kind",
            Read::Str(&["involvedObject", "kind"]),
        ),
        (
            "involvedObject.namespace",
            Read::Str(&["involvedObject", "namespace"]),
        ),
        (
            "involvedObject.name",
            Read::Str(&["involvedObject", "name"]),
        ),
        ("involvedObject.uid", Read::Str(&["involvedObject", "uid"])),
        (
            "involvedObject.apiVersion",
            Read::Str(&["involvedObject", "apiVersion"]),
        ),
        (
            "involvedObject.resourceVersion",
            Read::Str(&["involvedObject", "resourceVersion"]),
        ),
        (
            "involvedObject.fieldPath",
            Read::Str(&["involvedObject", "fieldPath"]),
        ),
        ("reason", Read::Str(&["reason"])),
        ("reportingComponent", Read::Str(&["reportingComponent"])),
        ("source", Read::EventSource),
        ("type", Read::Str(&["type"])),
    ],
    aliases: &[],
    unsupported: Unsupported::FieldLabel,
};

static NAMESPACE_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        ("status.phase", Read::Str(&["status", "phase"])),
    ],
    aliases: &[],
    unsupported: Unsupported::FieldLabel,
};

static SECRET_FIELDS: KindFields = KindFields {
    fields: &[NAME, NAMESPACE, ("type", Read::Str(&["type"]))],
    aliases: &[],
    unsupported: Unsupported::FieldLabel,
};

static SERVICE_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        ("spec.clusterIP", Read::Str(&["spec", "clusterIP"])),
        ("spec.type", Read::Str(&["spec", "type"])),
    ],
    aliases: &[],
    unsupported: Unsupported::FieldLabel,
};

static REPLICA_SET_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        ("status.replicas", Read::Int(&["status", "replicas"])),
    ],
    aliases: &[],
    unsupported: Unsupported::Default,
};

static JOB_FIELDS: KindFields = KindFields {
    fields: &[
        NAME,
        NAMESPACE,
        // Named `successful` in the selector, `succeeded` in the object.
        ("status.successful", Read::Int(&["status", "succeeded"])),
    ],
    aliases: &[],
    unsupported: Unsupported::Job,
};

impl KindFields {
    fn of(kind: &ResourceType) -> &'static KindFields {
        match (kind.group, kind.kind) {
            ("", "Pod") => &POD_FIELDS,
            ("", "Node") => &NODE_FIELDS,
            ("", "Event") => &EVENT_FIELDS,
            ("", "Namespace") => &NAMESPACE_FIELDS,
            ("", "Secret") => &SECRET_FIELDS,
            ("", "Service") => &SERVICE_FIELDS,
            ("apps", "ReplicaSet") => &REPLICA_SET_FIELDS,
            ("batch", "Job") => &JOB_FIELDS,
            _ => &DEFAULT_FIELDS,
        }
    }

    /// The canonical name of `label` and how to read it, if supported.
    fn resolve(&self, label: &str) -> Option<(&'static str, Read)> {
        let label = self
            .aliases
            .iter()
            .find(|(alias, _)| *alias == label)
            .map_or(label, |(_, canonical)| canonical);
        self.fields.iter().find(|(name, _)| *name == label).copied()
    }

    fn rejection(&self, label: &str) -> ApiError {
        ApiError::bad_request(match self.unsupported {
            Unsupported::FieldLabel => format!("field label not supported: {label}"),
            Unsupported::Job => format!("field label {label:?} not supported for batchv1.Job"),
            Unsupported::Default => format!(
                "{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            ),
        })
    }
}

fn lookup<'a, 'p>(obj: &'a Value, mut path: impl Iterator<Item = &'p str>) -> Option<&'a Value> {
    path.try_fold(obj, |v, key| v.get(key))
}

/// A JSON value as the string a field selector compares with: strings as they
/// are, booleans as `true`/`false`, numbers in decimal, anything else as `""`.
fn render(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Bool(true)) => Cow::Borrowed("true"),
        Some(Value::Bool(false)) => Cow::Borrowed("false"),
        Some(Value::Number(n)) => Cow::Owned(n.to_string()),
        _ => Cow::Borrowed(""),
    }
}

fn render_or<'a>(value: Option<&'a Value>, zero: &'static str) -> Cow<'a, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(zero),
        value => render(value),
    }
}

fn pod_ips(obj: &Value) -> Vec<&str> {
    let ips: Vec<&str> = obj
        .at("/status/podIPs")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("ip").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !ips.is_empty() {
        return ips;
    }
    obj.at("/status/podIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

impl Read {
    fn read<'a>(self, field: &str, obj: &'a Value) -> Cow<'a, str> {
        match self {
            Read::Dotted => render(lookup(obj, field.split('.'))),
            Read::Str(path) => render(lookup(obj, path.iter().copied())),
            Read::Bool(path) => render_or(lookup(obj, path.iter().copied()), "false"),
            Read::Int(path) => render_or(lookup(obj, path.iter().copied()), "0"),
            Read::PodIp => Cow::Borrowed(pod_ips(obj).first().copied().unwrap_or("")),
            Read::PodIps => match pod_ips(obj).as_slice() {
                [] => Cow::Borrowed(""),
                [one] => Cow::Borrowed(one),
                many => Cow::Owned(many.join(",")),
            },
            Read::EventSource => match obj.at("/source/component").and_then(Value::as_str) {
                Some(component) if !component.is_empty() => Cow::Borrowed(component),
                _ => render(obj.get("reportingComponent")),
            },
        }
    }
}

impl FieldRequirement {
    /// The field label, e.g. `status.phase`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value compared with, unescaped; may be empty.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `obj` (an object in API JSON) meets this requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let actual = self.read.read(&self.field, obj);
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// `field=value` or `field!=value`, the value escaped; `==` prints as `=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `fieldSelector` syntax without checking the fields against a
    /// kind: comma-joined `field=value`, `field==value` or `field!=value`, where a
    /// value may be empty and may contain `\,`, `\=` and `\\`. Whitespace is not
    /// trimmed, as in Kubernetes. Each field is read from objects as a dotted JSON
    /// path. Errors are 400s worded as `fields.ParseSelector` words them.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(raw).map_err(|e| ApiError::bad_request(e.to_string()))?,
                read: Read::Dotted,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Parses a field selector for listing `kind`, rejecting fields the kind does
    /// not support with a 400 worded as Kubernetes words it for that kind
    /// (`field label not supported: spec.foo` for Pod, Node, Event, Namespace,
    /// Secret and Service; `"spec.foo" is not a known field selector: only
    /// "metadata.name", "metadata.namespace"` for kinds with only those).
    ///
    /// Every kind supports `metadata.name` and `metadata.namespace` (the latter
    /// reads as `""` on cluster-scoped objects). Beyond those: Pod `spec.nodeName`
    /// (alias `spec.host`), `spec.restartPolicy`, `spec.schedulerName`,
    /// `spec.serviceAccountName`, `spec.hostNetwork`, `status.phase`,
    /// `status.podIP`, `status.podIPs`, `status.nominatedNodeName`; Event
    /// `involvedObject.{kind,namespace,name,uid,apiVersion,resourceVersion,fieldPath}`,
    /// `reason`, `reportingComponent`, `source`, `type`; Node `spec.unschedulable`;
    /// Namespace `status.phase`; Secret `type`; Service `spec.clusterIP`,
    /// `spec.type`; ReplicaSet `status.replicas`; Job `status.successful` (read
    /// from `status.succeeded`).
    ///
    /// Where Kubernetes' documentation promises more than its server does, this
    /// follows the documentation: Node and Namespace accept `metadata.namespace`,
    /// ReplicaSet accepts `status.replicas` (kubernetes/kubernetes#135136), and
    /// `status.podIPs` compares with the pod's IPs joined by `,` (written `\,` in a
    /// selector) where Kubernetes compares with `""`.
    pub fn parse_for(kind: &ResourceType, s: &str) -> Result<Self, ApiError> {
        let mut selector = Self::parse(s)?;
        let fields = KindFields::of(kind);
        for r in &mut selector.requirements {
            let Some((name, read)) = fields.resolve(&r.field) else {
                return Err(fields.rejection(&r.field));
            };
            if r.field != name {
                r.field = name.to_string();
            }
            r.read = read;
        }
        Ok(selector)
    }

    /// Whether this selector restricts nothing, i.e. matches every object.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in canonical order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` must equal for an object to match, if a `field=value`
    /// (or `==`) requirement says so, as `RequiresExactMatch`: lets a store use
    /// `metadata.name=` or `metadata.namespace=` to narrow a scan before calling
    /// [`FieldSelector::matches`]. Only the first such requirement is returned.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether `obj` (an object in API JSON) meets every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(obj))
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical string: terms comma-joined, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = ApiError;

    /// Same as [`FieldSelector::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits on commas not escaped by a backslash; the backslashes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, then `==`, then `=`, tried at each
/// position): the field cannot escape anything.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

/// Why a value in a field selector does not unescape, worded as Kubernetes'
/// `InvalidEscapeSequence` and `UnescapedRune`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EscapeError {
    /// A backslash before something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: \\{0}")]
    InvalidEscape(char),
    /// A backslash at the end of the value.
    #[error("invalid field selector: invalid escape sequence: \\")]
    TrailingBackslash,
    /// A `,` or `=` without a backslash. Kubernetes formats the rune with
    /// `%v`, which prints its code point (`61` for `=`); kept for the same
    /// message.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    Unescaped(char),
}

/// Removes the escapes of a value; unescaped `,` or `=` and unknown escapes are
/// errors, worded as Kubernetes'.
fn unescape_value(s: &str) -> Result<String, EscapeError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(EscapeError::InvalidEscape(c)),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(EscapeError::Unescaped(c)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(EscapeError::TrailingBackslash);
    }
    Ok(out)
}

/// `fields.EscapeValue`: backslash before `\`, `,` and `=`.
fn escape_value(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', ',', '=']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::by_kind;
    use serde_json::json;

    fn rt(api_version: &str, kind: &str) -> &'static ResourceType {
        by_kind(api_version, kind).unwrap()
    }

    fn parse(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {}", e.message))
    }

    fn parse_for(api_version: &str, kind: &str, s: &str) -> FieldSelector {
        FieldSelector::parse_for(rt(api_version, kind), s)
            .unwrap_or_else(|e| panic!("{kind} {s:?}: {}", e.message))
    }

    fn reject(api_version: &str, kind: &str, s: &str) -> String {
        match FieldSelector::parse_for(rt(api_version, kind), s) {
            Ok(sel) => panic!("{kind} {s:?} parsed as {sel:?}"),
            Err(e) => {
                assert_eq!(e.code(), 400);
                e.message
            }
        }
    }

    /// A flat object whose top-level keys are the fields.
    fn fields(pairs: &[(&str, &str)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    }

    // TestSplitTerms
    #[test]
    fn splits_terms_on_unescaped_commas() {
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a=avalue", &["a=avalue"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            (
                "a=avalue,b==bvalue,c!=cvalue",
                &["a=avalue", "b==bvalue", "c!=cvalue"],
            ),
            ("", &[]),
            ("a=a,", &["a=a", ""]),
            (",a=a", &["", "a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (s, want) in cases {
            assert_eq!(split_terms(s), *want, "{s:?}");
        }
    }

    // TestSplitTerm
    #[test]
    fn splits_a_term_at_the_first_operator() {
        use FieldOperator::*;
        type Split<'a> = Option<(&'a str, FieldOperator, &'a str)>;
        let cases: &[(&str, Split)] = &[
            ("a=value", Some(("a", Equals, "value"))),
            ("b==value", Some(("b", Equals, "value"))),
            ("c!=value", Some(("c", NotEquals, "value"))),
            ("", None),
            ("a", None),
            (r"k=\,", Some(("k", Equals, r"\,"))),
            (r"k=\=", Some(("k", Equals, r"\="))),
            (r"k=\\\a\b\=\,\", Some(("k", Equals, r"\\\a\b\=\,\"))),
            ("함=수", Some(("함", Equals, "수"))),
            ("a!==b", Some(("a", NotEquals, "=b"))),
            ("=x", Some(("", Equals, "x"))),
        ];
        for (term, want) in cases {
            assert_eq!(split_term(term), *want, "{term:?}");
        }
    }

    // TestEscapeValue
    #[test]
    fn escapes_round_trip() {
        for (raw, escaped) in [
            ("", ""),
            ("a", "a"),
            ("=", r"\="),
            (",", r"\,"),
            (r"\", r"\\"),
            (r"\=\,\", r"\\\=\\\,\\"),
        ] {
            assert_eq!(escape_value(raw), escaped);
            assert_eq!(unescape_value(escaped).unwrap(), raw);
        }
        for bad in [r"\", r"\\\", r"\a"] {
            assert!(
                unescape_value(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("invalid escape sequence"),
                "{bad:?}"
            );
        }
    }

    // TestSelectorParse
    #[test]
    fn good_strings_round_trip_and_bad_ones_fail() {
        for s in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert_eq!(parse(s).to_string(), s, "{s:?}");
        }
        let cases = [
            (
                "x=a||y=b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "x==a==b",
                "invalid field selector: unescaped character in value: 61",
            ),
            ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
            (
                "x in (a)",
                "invalid selector: 'x in (a)'; can't understand 'x in (a)'",
            ),
            (
                "x in (a,b,c)",
                "invalid selector: 'x in (a,b,c)'; can't understand 'b'",
            ),
            ("x", "invalid selector: 'x'; can't understand 'x'"),
            (
                r"x=a\b",
                r"invalid field selector: invalid escape sequence: \b",
            ),
            (
                r"x=a\",
                r"invalid field selector: invalid escape sequence: \",
            ),
        ];
        for (s, want) in cases {
            let err = FieldSelector::parse(s).unwrap_err();
            assert_eq!(err.code(), 400);
            assert_eq!(err.message, want, "{s:?}");
        }
    }

    #[test]
    fn canonical_string() {
        assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
        assert_eq!(parse("a=x,x=a").to_string(), "a=x,x=a");
        assert_eq!(parse("b==x,a!=y").to_string(), "a!=y,b=x");
        assert_eq!(parse(",a=b,,").to_string(), "a=b");
        assert_eq!(parse("spec.nodeName=").to_string(), "spec.nodeName=");
        let once = parse(r"a=\,\=\\,b!=");
        assert_eq!(once.to_string(), r"a=\,\=\\,b!=");
        assert_eq!(parse(&once.to_string()), once);
    }

    // TestSelectorMatches, with objects whose fields are top-level keys.
    #[test]
    fn matches_like_kubernetes() {
        let yes = |s: &str, f: &Value| assert!(parse(s).matches(f), "{s:?} {f}");
        let no = |s: &str, f: &Value| assert!(!parse(s).matches(f), "{s:?} {f}");
        yes("", &fields(&[("x", "y")]));
        yes("x=y", &fields(&[("x", "y")]));
        yes("x=y,z=w", &fields(&[("x", "y"), ("z", "w")]));
        yes("x!=y,z!=w", &fields(&[("x", "z"), ("z", "a")]));
        yes("notin=in", &fields(&[("notin", "in")]));
        no("x=y", &fields(&[("x", "z")]));
        no("x=y,z=w", &fields(&[("x", "w"), ("z", "w")]));
        no("x!=y,z!=w", &fields(&[("x", "z"), ("z", "w")]));

        let set = fields(&[("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")]);
        yes("foo=bar", &set);
        yes("baz=blah", &set);
        yes("foo=bar,baz=blah", &set);
        yes(r"foo=bar,baz=blah,complex=\=value\\\,\\", &set);
        no("foo=blah", &set);
        no("baz=bar", &set);
        no("foo=bar,foobar=bar,baz=blah", &set);
        // A missing field reads as "".
        yes("missing=", &set);
        no("missing!=", &set);
    }

    #[test]
    fn kindless_parse_reads_dotted_paths() {
        let obj = json!({"metadata": {"name": "a"}, "spec": {"replicas": 3, "paused": true}});
        assert!(parse("metadata.name=a,spec.replicas=3,spec.paused=true").matches(&obj));
        assert!(parse("spec.missing=,status=").matches(&obj));
        // Objects and arrays read as "".
        assert!(parse("spec=").matches(&obj));
    }

    #[test]
    fn pod_fields() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {
                "nodeName": "n1",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "serviceAccountName": "default",
                "hostNetwork": true,
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.5",
                "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
                "nominatedNodeName": "n2",
            },
        });
        for s in [
            "metadata.name=web-1",
            "metadata.namespace=shop",
            "spec.nodeName=n1",
            "spec.nodeName==n1",
            "spec.host=n1",
            "spec.restartPolicy=Always",
            "spec.schedulerName=default-scheduler",
            "spec.serviceAccountName=default",
            "spec.hostNetwork=true",
            "status.phase=Running",
            "status.phase!=Pending",
            "status.podIP=10.0.0.5",
            r"status.podIPs=10.0.0.5\,fd00::5",
            "status.nominatedNodeName=n2",
            "metadata.name=web-1,status.phase!=Failed,spec.nodeName==n1",
        ] {
            assert!(parse_for("v1", "Pod", s).matches(&pod), "{s:?}");
        }
        for s in [
            "spec.nodeName=",
            "status.phase=Running,spec.nodeName=n2",
            "spec.hostNetwork=false",
            "metadata.namespace=default",
        ] {
            assert!(!parse_for("v1", "Pod", s).matches(&pod), "{s:?}");
        }

        // An unscheduled, just-created pod: missing strings are "", bools false.
        let pending = json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {}});
        for s in [
            "spec.nodeName=",
            "spec.hostNetwork=false",
            "status.phase=",
            "status.podIP=",
            "status.podIPs=",
        ] {
            assert!(parse_for("v1", "Pod", s).matches(&pending), "{s:?}");
        }
        assert!(!parse_for("v1", "Pod", "spec.nodeName!=").matches(&pending));

        // Only `status.podIP` set (an older writer): still the pod's IP.
        let old = json!({"status": {"podIP": "10.0.0.7"}});
        assert!(parse_for("v1", "Pod", "status.podIP=10.0.0.7").matches(&old));
        assert!(parse_for("v1", "Pod", "status.podIPs=10.0.0.7").matches(&old));
    }

    #[test]
    fn spec_host_is_rewritten_to_node_name() {
        let sel = parse_for("v1", "Pod", "spec.host=n1");
        assert_eq!(sel.to_string(), "spec.nodeName=n1");
        assert_eq!(sel.exact("spec.nodeName"), Some("n1"));
    }

    #[test]
    fn unsupported_fields_are_rejected_as_kubernetes_words_it() {
        assert_eq!(
            reject("v1", "Pod", "spec.foo=x"),
            "field label not supported: spec.foo"
        );
        assert_eq!(
            reject("v1", "Pod", "metadata.name=a,status.hostIP=1.2.3.4"),
            "field label not supported: status.hostIP"
        );
        assert_eq!(
            reject("v1", "Node", "spec.nodeName=x"),
            "field label not supported: spec.nodeName"
        );
        assert_eq!(
            reject("v1", "Event", "message=x"),
            "field label not supported: message"
        );
        assert_eq!(
            reject("v1", "Namespace", "spec.finalizers=x"),
            "field label not supported: spec.finalizers"
        );
        assert_eq!(
            reject("v1", "Secret", "data=x"),
            "field label not supported: data"
        );
        assert_eq!(
            reject("v1", "Service", "spec.ports=x"),
            "field label not supported: spec.ports"
        );
        assert_eq!(
            reject("v1", "ConfigMap", "data.x=y"),
            r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            reject("apps/v1", "Deployment", "status.replicas=1"),
            r#""status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            reject("apps/v1", "ReplicaSet", "spec.replicas=1"),
            r#""spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            reject("batch/v1", "Job", "status.succeeded=1"),
            r#"field label "status.succeeded" not supported for batchv1.Job"#
        );
        // Whitespace is part of the field, as in Kubernetes.
        assert_eq!(
            reject("v1", "Pod", "status.phase = Running"),
            "field label not supported: status.phase "
        );
        // A kind's fields are its own.
        assert_eq!(
            reject("v1", "Secret", "status.phase=x"),
            "field label not supported: status.phase"
        );
        // Syntax errors come before field checks.
        assert_eq!(
            reject("v1", "Pod", "spec.foo=x,bad"),
            "invalid selector: 'spec.foo=x,bad'; can't understand 'bad'"
        );
    }

    #[test]
    fn every_kind_supports_name_and_namespace() {
        for r in crate::resource::RESOURCES {
            let sel = FieldSelector::parse_for(r, "metadata.name=a,metadata.namespace=")
                .unwrap_or_else(|e| panic!("{}: {}", r.kind, e.message));
            let obj = json!({"metadata": {"name": "a"}});
            assert!(sel.matches(&obj), "{}", r.kind);
        }
    }

    #[test]
    fn node_event_namespace_secret_service_fields() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        assert!(parse_for("v1", "Node", "spec.unschedulable=true").matches(&node));
        let fresh = json!({"metadata": {"name": "n2"}, "spec": {}});
        assert!(parse_for("v1", "Node", "spec.unschedulable=false").matches(&fresh));
        assert!(parse_for("v1", "Node", "metadata.name=n2,metadata.namespace=").matches(&fresh));

        let event = json!({
            "metadata": {"name": "web.1", "namespace": "shop"},
            "involvedObject": {
                "kind": "Pod", "namespace": "shop", "name": "web", "uid": "u1",
                "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{app}",
            },
            "reason": "BackOff",
            "type": "Warning",
            "source": {"component": "kubelet"},
            "reportingComponent": "skiff-node",
        });
        let sel = parse_for(
            "v1",
            "Event",
            "involvedObject.kind=Pod,involvedObject.namespace=shop,involvedObject.name=web,\
             involvedObject.uid=u1,involvedObject.apiVersion=v1,involvedObject.resourceVersion=42,\
             involvedObject.fieldPath=spec.containers{app},reason=BackOff,type=Warning,\
             source=kubelet,reportingComponent=skiff-node",
        );
        assert!(sel.matches(&event));
        // `source` falls back to `reportingComponent` when the component is unset.
        let newer = json!({"reportingComponent": "skiff-scheduler", "source": {}});
        assert!(parse_for("v1", "Event", "source=skiff-scheduler").matches(&newer));
        assert!(parse_for("v1", "Event", "source=").matches(&json!({})));

        let ns = json!({"metadata": {"name": "shop"}, "status": {"phase": "Terminating"}});
        assert!(parse_for("v1", "Namespace", "status.phase=Terminating").matches(&ns));
        assert!(!parse_for("v1", "Namespace", "status.phase=Active").matches(&ns));

        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert!(parse_for("v1", "Secret", "type=kubernetes.io/tls").matches(&secret));
        assert!(parse_for("v1", "Secret", "type!=Opaque").matches(&secret));

        let svc = json!({"spec": {"clusterIP": "None", "type": "ClusterIP"}});
        assert!(
            parse_for("v1", "Service", "spec.clusterIP=None,spec.type=ClusterIP").matches(&svc)
        );
    }

    #[test]
    fn replica_set_and_job_counts() {
        let rs = json!({"status": {"replicas": 3}});
        assert!(parse_for("apps/v1", "ReplicaSet", "status.replicas=3").matches(&rs));
        assert!(parse_for("apps/v1", "ReplicaSet", "status.replicas!=0").matches(&rs));
        // A new ReplicaSet has no status yet: 0, as Kubernetes' int32 zero value.
        assert!(parse_for("apps/v1", "ReplicaSet", "status.replicas=0").matches(&json!({})));

        let job = json!({"status": {"succeeded": 1}});
        assert!(parse_for("batch/v1", "Job", "status.successful=1").matches(&job));
        assert!(
            parse_for("batch/v1", "Job", "status.successful=0").matches(&json!({"status": {}}))
        );
    }

    #[test]
    fn exact_requirements_narrow_a_scan() {
        let sel = parse_for(
            "v1",
            "Pod",
            "metadata.namespace=shop,metadata.name=web-1,status.phase!=Failed",
        );
        assert_eq!(sel.exact("metadata.name"), Some("web-1"));
        assert_eq!(sel.exact("metadata.namespace"), Some("shop"));
        assert_eq!(sel.exact("status.phase"), None);
        assert_eq!(sel.exact("spec.nodeName"), None);
        assert_eq!(parse("spec.nodeName==").exact("spec.nodeName"), Some(""));
        assert_eq!(parse("a=1,a=2").exact("a"), Some("1"));
        assert_eq!(FieldSelector::everything().exact("a"), None);

        let reqs = sel.requirements();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].field(), "metadata.name");
        assert_eq!(reqs[0].operator(), FieldOperator::Equals);
        assert_eq!(reqs[0].value(), "web-1");
        assert_eq!(reqs[2].operator(), FieldOperator::NotEquals);
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", ",", ",,"] {
            let sel = parse(s);
            assert!(sel.is_empty(), "{s:?}");
            assert!(sel.matches(&json!({})));
        }
        assert!(
            FieldSelector::parse_for(rt("v1", "Pod"), "")
                .unwrap()
                .is_empty()
        );
        assert!(!parse("a=").is_empty());
        let sel: FieldSelector = "a=b".parse().unwrap();
        assert_eq!(sel, parse("a=b"));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "=",
            "==",
            "!=",
            "!",
            "\\",
            ",\\",
            "é=\\é",
            "🦀!=🦀",
            "a=\\\\\\",
            "\0=\0",
        ] {
            let _ = FieldSelector::parse(s);
            let _ = FieldSelector::parse_for(rt("v1", "Pod"), s);
        }
        assert_eq!(reject("v1", "Pod", "=x"), "field label not supported: ");
    }
}
