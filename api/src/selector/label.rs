//! Label selectors: the `labelSelector` query parameter and `metav1.LabelSelector`.
//!
//! The string syntax, its canonical form and its error messages follow
//! `k8s.io/apimachinery/pkg/labels` (`labels.Parse`) token for token, so that
//! `kubectl -l` behaves, and fails, as it does against Kubernetes.
//! [`LabelSelector::from_object`] follows `metav1.LabelSelectorAsSelector`, with the
//! field validation of `ValidateLabelSelector` so that each problem names its field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::json::Pointer as _;
use crate::status::{ApiError, FieldError};
// Label keys and values follow Kubernetes' rules, with its messages.
use crate::validate::names::{
    is_qualified_name as qualified_name_errors, is_valid_label_value as label_value_errors,
};

/// How a [`Requirement`] relates a label to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key in (a,b)`: the label is set to one of the values.
    In,
    /// `key notin (a,b)`: the label is unset, or set to none of the values.
    NotIn,
    /// `key=a`: the label is set to the value.
    Equals,
    /// `key==a`: the same as `=`, kept apart so the canonical string keeps it.
    DoubleEquals,
    /// `key!=a`: the label is unset, or set to another value.
    NotEquals,
    /// `key`: the label is set, to anything.
    Exists,
    /// `!key`: the label is unset.
    DoesNotExist,
    /// `key>1`: the label is set to an integer greater than the value.
    GreaterThan,
    /// `key<1`: the label is set to an integer less than the value.
    LessThan,
}

/// One term of a label selector: a key, an operator and the values it compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// A conjunction of label [`Requirement`]s, as Kubernetes' `labels.Selector`.
///
/// Three shapes matter to callers:
/// - empty ([`LabelSelector::everything`], the empty string, `{}`): matches every object;
/// - [`LabelSelector::nothing`]: matches no object. This is what an *absent*
///   `metav1.LabelSelector` means (`LabelSelectorAsSelector(nil)` is
///   `labels.Nothing()`), e.g. a workload whose `spec.selector` is missing selects
///   no pods rather than all of them;
/// - anything else: matches the objects whose labels meet every requirement.
///
/// Requirements are kept sorted by key (stably), as Kubernetes does, so that
/// [`Display`](fmt::Display) gives one canonical string per selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

/// Tokens of the selector syntax, as `labels.Token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// Never produced in practice: every single special character is a token.
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Where the parser is: `in` and `notin` are operators after a key but plain
/// identifiers among values (`x in (in,notin)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    position: usize,
}

/// Kubernetes' `field.Path` of a nil path, which is what `labels.Parse` reports a
/// bad key against.
const NIL_PATH: &str = "<nil>";

/// Why a `labelSelector` string does not parse, worded as `labels.Parse` words it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum SyntaxError {
    /// A requirement that does not parse, or whose key or values are invalid.
    #[error("unable to parse requirement: {0}")]
    Requirement(#[from] RequirementError),
    /// A token out of place between requirements.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
    },
}

/// Why one requirement (`key in (a,b)`) does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum RequirementError {
    /// A token out of place: `found` is its text, `expected` what the grammar allows.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
    },
    /// No `(` after `in` or `notin` (Kubernetes words this one without a comma).
    #[error("found '{0}' expected: '('")]
    NoOpenPar(String),
    /// The key or values are not valid label keys or values.
    #[error("{}", aggregate(.0))]
    Invalid(Vec<FieldError>),
}

impl RequirementError {
    fn unexpected(found: &str, expected: &'static str) -> Self {
        RequirementError::Unexpected {
            found: found.to_string(),
            expected,
        }
    }
}

/// `ErrorList.ToAggregate().Error()`: one message as is, several as `[a, b]`,
/// repeats dropped.
fn aggregate(errs: &[FieldError]) -> String {
    let mut unique: Vec<String> = Vec::with_capacity(errs.len());
    for e in errs.iter().map(FieldError::to_string) {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        unique.remove(0)
    } else {
        format!("[{}]", unique.join(", "))
    }
}

fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

impl Operator {
    fn compares_integers(self) -> bool {
        matches!(self, Operator::GreaterThan | Operator::LessThan)
    }
}

impl Requirement {
    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values compared with: one for `=`, `==`, `!=`, `>` and `<`, at least one
    /// for `in` and `notin` (possibly the empty string), none for `exists` and `!`.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` (a `metadata.labels` map) meet this requirement. A label
    /// whose JSON value is not a string counts as set but equal to no value.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.matches_label(labels.get(&self.key).map(Value::as_str))
    }

    /// Whether a typed label map meets this requirement.
    pub fn matches_strings(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_label(labels.get(&self.key).map(|v| Some(v.as_str())))
    }

    /// Whether the label this requirement names meets it: `None` when the
    /// label is not set, `Some(None)` when it is set to something not a string.
    fn matches_label(&self, label: Option<Option<&str>>) -> bool {
        let value = label.flatten();
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(|v| self.has_value(v)),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [bound] = self.values.as_slice() else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }
}

impl fmt::Display for Requirement {
    /// `Requirement.String()`: `x in (a,b)`, `x notin (a)`, `x=a`, `x==a`, `x!=a`,
    /// `x>1`, `x<1`, `x`, `!x`; several values are printed sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        if let [only] = self.values.as_slice() {
            f.write_str(only)?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl LabelSelector {
    /// The selector that matches every object (the empty string, `{}`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object, which is what an absent
    /// `metav1.LabelSelector` means. It prints as the empty string, as
    /// `labels.Nothing()` does, so it does not round-trip through
    /// [`LabelSelector::parse`].
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the `labelSelector` query syntax: comma-joined requirements
    /// `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`,
    /// with whitespace allowed between tokens. Keys and values are validated as
    /// Kubernetes validates them. A syntax or validation error is a 400 worded as
    /// `labels.Parse` words it, e.g. `unable to parse requirement: found 'b',
    /// expected: ',' or ')'`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut requirements =
            parse_requirements(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The selector requiring each label of `labels` to equal its value, as
    /// `labels.SelectorFromSet` (a Service's `spec.selector`). Not validated; an
    /// empty map gives the empty selector, which matches everything. A value that
    /// is not a JSON string is compared as its JSON text, so it matches no label.
    pub fn from_map(labels: &Map<String, Value>) -> Self {
        let mut requirements: Vec<Requirement> = labels
            .iter()
            .map(|(key, value)| Requirement {
                key: key.clone(),
                operator: Operator::Equals,
                values: vec![
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string),
                ],
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels`, `matchExpressions` with
    /// operators `In`, `NotIn`, `Exists`, `DoesNotExist`), as
    /// `metav1.LabelSelectorAsSelector`. JSON `null` means an absent selector and
    /// gives [`LabelSelector::nothing`]; `{}` (or empty lists) gives the empty
    /// selector, which matches everything. Problems are reported as Kubernetes'
    /// `ValidateLabelSelector` reports them, with fields relative to the selector
    /// (`matchExpressions[0].operator`); see [`LabelSelector::from_object_at`] to
    /// prefix them.
    pub fn from_object(selector: &Value) -> Result<Self, Vec<FieldError>> {
        Self::from_object_at(Some(selector), "")
    }

    /// As [`LabelSelector::from_object`], for the selector found at `path` in an
    /// object (e.g. `spec.selector`): `None` or `null` gives
    /// [`LabelSelector::nothing`], and error fields are prefixed with `path`
    /// (`spec.selector.matchLabels`).
    pub fn from_object_at(selector: Option<&Value>, path: &str) -> Result<Self, Vec<FieldError>> {
        let selector = match selector {
            None | Some(Value::Null) => return Ok(Self::nothing()),
            Some(Value::Object(selector)) => selector,
            Some(other) => {
                return Err(vec![FieldError::type_invalid(
                    path,
                    other.clone(),
                    "must be an object",
                )]);
            }
        };
        let mut errs = Vec::new();
        let mut requirements = Vec::new();

        let labels_path = child(path, "matchLabels");
        match selector.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    // ValidateLabels reports both problems against `matchLabels`
                    // itself, not `matchLabels[key]`.
                    for msg in qualified_name_errors(key) {
                        errs.push(FieldError::invalid(&labels_path, key.as_str(), msg));
                    }
                    let Some(value) = value.as_str() else {
                        errs.push(FieldError::type_invalid(
                            format!("{labels_path}[{key}]"),
                            value.clone(),
                            "must be a string",
                        ));
                        continue;
                    };
                    for msg in label_value_errors(value) {
                        errs.push(FieldError::invalid(&labels_path, value, msg));
                    }
                    requirements.push(Requirement {
                        key: key.clone(),
                        operator: Operator::Equals,
                        values: vec![value.to_string()],
                    });
                }
            }
            Some(other) => errs.push(FieldError::type_invalid(
                &labels_path,
                other.clone(),
                "must be a map of strings",
            )),
        }

        let exprs_path = child(path, "matchExpressions");
        match selector.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    let expr_path = format!("{exprs_path}[{i}]");
                    if let Some(r) = expression_requirement(expr, &expr_path, &mut errs) {
                        requirements.push(r);
                    }
                }
            }
            Some(other) => errs.push(FieldError::type_invalid(
                &exprs_path,
                other.clone(),
                "must be a list",
            )),
        }

        if !errs.is_empty() {
            return Err(errs);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Whether this selector restricts nothing, i.e. matches every object.
    /// [`LabelSelector::nothing`] is not empty.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is [`LabelSelector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The one value `key` must have for an object to match, when the selector
    /// says so (`key=v`, `key==v` or `key in (v)`), as `RequiresExactMatch`: lets
    /// a store or index narrow a scan. Only the first requirement on `key` counts.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [only]) => Some(only),
            _ => None,
        }
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object with these typed labels (`ObjectMeta::labels`) is
    /// selected; `None` means it has no labels.
    pub fn matches_strings(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        !self.nothing && self.requirements.iter().all(|r| r.matches_strings(labels))
    }

    /// As [`LabelSelector::matches`], where `None` means the object has no labels.
    pub fn matches_labels(&self, labels: Option<&Map<String, Value>>) -> bool {
        match labels {
            Some(labels) => self.matches(labels),
            None => self.matches(&Map::new()),
        }
    }

    /// Whether `obj` (an object in API JSON) is selected by its `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches_labels(obj.at("/metadata/labels").and_then(Value::as_object))
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string: requirements sorted by key, comma-joined, without
    /// spaces except around `in` and `notin`. Empty for [`LabelSelector::everything`]
    /// and for [`LabelSelector::nothing`].
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

impl FromStr for LabelSelector {
    type Err = ApiError;

    /// Same as [`LabelSelector::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One `matchExpressions` entry, validated as `ValidateLabelSelectorRequirement`.
fn expression_requirement(
    expr: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Requirement> {
    let Some(expr) = expr.as_object() else {
        errs.push(FieldError::type_invalid(
            path,
            expr.clone(),
            "must be an object",
        ));
        return None;
    };
    let before = errs.len();
    let values_path = child(path, "values");

    // A missing field reads as Go's zero value, the empty string or list.
    let key = match expr.get("key") {
        None | Some(Value::Null) => "",
        Some(Value::String(key)) => key.as_str(),
        Some(other) => {
            errs.push(FieldError::type_invalid(
                child(path, "key"),
                other.clone(),
                "must be a string",
            ));
            ""
        }
    };
    let operator = match expr.get("operator") {
        None | Some(Value::Null) => "",
        Some(Value::String(op)) => op.as_str(),
        Some(other) => {
            errs.push(FieldError::type_invalid(
                child(path, "operator"),
                other.clone(),
                "must be a string",
            ));
            return None;
        }
    };
    let mut values = Vec::new();
    match expr.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (j, v) in list.iter().enumerate() {
                match v.as_str() {
                    Some(v) => values.push(v.to_string()),
                    None => errs.push(FieldError::type_invalid(
                        format!("{values_path}[{j}]"),
                        v.clone(),
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => errs.push(FieldError::type_invalid(
            &values_path,
            other.clone(),
            "must be a list of strings",
        )),
    }

    let op = match operator {
        "In" => Some(Operator::In),
        "NotIn" => Some(Operator::NotIn),
        "Exists" => Some(Operator::Exists),
        "DoesNotExist" => Some(Operator::DoesNotExist),
        _ => None,
    };
    match op {
        Some(Operator::In | Operator::NotIn) if values.is_empty() => {
            errs.push(FieldError::required(
                &values_path,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ));
        }
        Some(Operator::Exists | Operator::DoesNotExist) if !values.is_empty() => {
            errs.push(FieldError::forbidden(
                &values_path,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ));
        }
        Some(_) => {}
        None => errs.push(FieldError::invalid(
            child(path, "operator"),
            operator,
            "not a valid selector operator",
        )),
    }
    for msg in qualified_name_errors(key) {
        errs.push(FieldError::invalid(child(path, "key"), key, msg));
    }
    for (j, v) in values.iter().enumerate() {
        for msg in label_value_errors(v) {
            errs.push(FieldError::invalid(
                format!("{values_path}[{j}]"),
                v.as_str(),
                msg,
            ));
        }
    }

    match op {
        Some(operator) if errs.len() == before => Some(Requirement {
            key: key.to_string(),
            operator,
            values,
        }),
        _ => None,
    }
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn special_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

impl<'a> Lexer<'a> {
    /// The next byte, or 0 at the end. As in Go, a NUL byte in the input also
    /// reads as the end.
    fn read(&mut self) -> u8 {
        match self.src.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    /// Slices of the input are always cut next to ASCII bytes, so on character
    /// boundaries; `get` keeps that an invariant rather than a panic.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or_default()
    }

    fn lex(&mut self) -> (Token, &'a str) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::EndOfString, "");
        }
        self.unread();
        if is_special(ch) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }

    fn scan_id_or_keyword(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let end = loop {
            let at = self.pos;
            let ch = self.read();
            if ch == 0 {
                break at;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break at;
            }
        };
        let literal = self.slice(start, end);
        let token = match literal {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        (token, literal)
    }

    /// The longest run of special characters that is a token (`!=`, `==`), one
    /// character at a time as `scanSpecialSymbol` does.
    fn scan_special_symbol(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let mut last: Option<(Token, usize)> = None;
        loop {
            let at = self.pos;
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special(ch) {
                self.unread();
                break;
            }
            match special_token(self.slice(start, at + 1)) {
                Some(token) => last = Some((token, at + 1)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        match last {
            Some((token, end)) => (token, self.slice(start, end)),
            None => (Token::Error, self.slice(start, self.pos)),
        }
    }
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        let mut lexer = Lexer { src: s, pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            items.push(item);
            if item.0 == Token::EndOfString {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        let (token, literal) = self
            .items
            .get(self.position)
            .copied()
            .unwrap_or((Token::EndOfString, ""));
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SyntaxError> {
        let unexpected = |found: &str, expected| SyntaxError::Unexpected {
            found: found.to_string(),
            expected,
        };
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(self.parse_requirement()?);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(unexpected(literal, "identifier after ','"));
                            }
                        }
                        _ => return Err(unexpected(literal, "',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => return Err(unexpected(literal, "!, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, RequirementError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return new_parsed_requirement(key, op, BTreeSet::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_parsed_requirement(key, operator, values)
    }

    /// The key, with `Exists` inferred when nothing follows it and `DoesNotExist`
    /// when it is preceded by `!`.
    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(&'a str, Option<Operator>), RequirementError> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(RequirementError::unexpected(literal, "identifier"));
        }
        let errs = qualified_name_errors(literal);
        if !errs.is_empty() {
            return Err(RequirementError::Invalid(vec![FieldError::invalid(
                NIL_PATH,
                literal,
                errs.join("; "),
            )]));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma)
            && operator != Some(Operator::DoesNotExist)
        {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, RequirementError> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(RequirementError::unexpected(
                    literal,
                    "in, notin, =, ==, !=, gt, lt",
                ));
            }
        })
    }

    /// `(a,b)`; `()` is the set holding the empty string.
    fn parse_values(&mut self) -> Result<BTreeSet<String>, RequirementError> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(RequirementError::NoOpenPar(literal.to_string()));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(RequirementError::unexpected(literal, "')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(RequirementError::unexpected(
                literal,
                "',', ')' or identifier",
            )),
        }
    }

    /// A comma-separated list in which empty items are the empty string: `(,a)`,
    /// `(a,)` and `(a,,b)` all hold `""`.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, RequirementError> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal.to_string());
                    let (next, literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(RequirementError::unexpected(literal, "',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.insert(String::new());
                    }
                }
                _ => return Err(RequirementError::unexpected(literal, "',', or identifier")),
            }
        }
    }

    /// The one value after `=`, `==`, `!=`, `>` or `<`; nothing means `""`.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, RequirementError> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal.to_string()]))
        } else {
            Err(RequirementError::unexpected(literal, "identifier"))
        }
    }
}

fn parse_requirements(s: &str) -> Result<Vec<Requirement>, SyntaxError> {
    Parser::new(s).parse()
}

/// `labels.NewRequirement` for what the parser produced. The grammar already
/// guarantees the number of values for each operator and the key was checked
/// while parsing, so only the values remain to validate; the field paths are
/// those of a nil root path, as in Kubernetes' messages (`values[0][key]`).
fn new_parsed_requirement(
    key: &str,
    operator: Operator,
    values: BTreeSet<String>,
) -> Result<Requirement, RequirementError> {
    let values: Vec<String> = values.into_iter().collect();
    let mut errs = Vec::new();
    if operator.compares_integers() {
        for (i, v) in values.iter().enumerate() {
            if v.parse::<i64>().is_err() {
                errs.push(FieldError::invalid(
                    format!("values[{i}]"),
                    v.as_str(),
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let msgs = label_value_errors(v);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("values[{i}][{key}]"),
                v.as_str(),
                msgs.join("; "),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(RequirementError::Invalid(errs));
    }
    Ok(Requirement {
        key: key.to_string(),
        operator,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {}", e.message))
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel:?}"),
            Err(e) => {
                assert_eq!(e.code(), 400, "{s:?}");
                e.message
            }
        }
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    // TestSelectorParse: good strings round-trip to themselves minus spaces.
    #[test]
    fn good_strings_round_trip() {
        for s in [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ] {
            assert_eq!(parse(s).to_string(), s.replace(' ', ""), "{s:?}");
        }
    }

    #[test]
    fn bad_strings_fail() {
        for s in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
            parse_err(s);
        }
    }

    #[test]
    fn parse_is_deterministic() {
        assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
        assert_eq!(parse("a=x,x=a").to_string(), "a=x,x=a");
    }

    // TestSelectorMatches
    #[test]
    fn matches_like_kubernetes() {
        let yes =
            |s: &str, l: &[(&str, &str)]| assert!(parse(s).matches(&labels(l)), "{s:?} {l:?}");
        let no =
            |s: &str, l: &[(&str, &str)]| assert!(!parse(s).matches(&labels(l)), "{s:?} {l:?}");
        yes("", &[("x", "y")]);
        yes("x=y", &[("x", "y")]);
        yes("x=y,z=w", &[("x", "y"), ("z", "w")]);
        yes("x!=y,z!=w", &[("x", "z"), ("z", "a")]);
        yes("notin=in", &[("notin", "in")]);
        yes("x", &[("x", "z")]);
        yes("!x", &[("y", "z")]);
        yes("x>1", &[("x", "2")]);
        yes("x<1", &[("x", "0")]);
        no("x=z", &[]);
        no("x=y", &[("x", "z")]);
        no("x=y,z=w", &[("x", "w"), ("z", "w")]);
        no("x!=y,z!=w", &[("x", "z"), ("z", "w")]);
        no("x", &[("y", "z")]);
        no("!x", &[("x", "z")]);
        no("x>1", &[("x", "0")]);
        no("x<1", &[("x", "2")]);

        let set = [("foo", "bar"), ("baz", "blah")];
        yes("foo=bar", &set);
        yes("baz=blah", &set);
        yes("foo=bar,baz=blah", &set);
        no("foo=blah", &set);
        no("baz=bar", &set);
        no("foo=bar,foobar=bar,baz=blah", &set);
    }

    // TestRequirementSelectorMatching
    #[test]
    fn set_based_matching() {
        let yes =
            |s: &str, l: &[(&str, &str)]| assert!(parse(s).matches(&labels(l)), "{s:?} {l:?}");
        let no =
            |s: &str, l: &[(&str, &str)]| assert!(!parse(s).matches(&labels(l)), "{s:?} {l:?}");
        yes("x in (foo),y notin (alpha)", &[("x", "foo"), ("y", "baz")]);
        no("x in (foo),y in (alpha)", &[("x", "foo"), ("y", "baz")]);
        yes("x notin (),y", &[("y", "")]);
        yes("!x,y", &[("y", "")]);
        no("x notin (),!y", &[("y", "")]);
        no("x in ()", &[("y", "baz")]);
        yes("x in ()", &[("x", "")]);
        yes("z>1", &[("z", "2")]);
        no("z>1", &[("z", "v2")]);
        // notin and != also match when the label is absent.
        yes("x notin (a)", &[]);
        yes("x!=a", &[]);
        no("x!=a", &[("x", "a")]);
        yes("x==a", &[("x", "a")]);
        yes("x>10", &[("x", "11")]);
        no("x<10", &[("x", "10")]);
        no("x<10", &[]);
    }

    // TestSetSelectorParser, with the parsed requirements spelled out.
    #[test]
    fn parses_into_requirements() {
        use Operator::*;
        let cases: &[(&str, Vec<Requirement>)] = &[
            ("", vec![]),
            ("\rx", vec![req("x", Exists, &[])]),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                vec![req("this-is-a-dns.domain.com/key-with-dash", Exists, &[])],
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                vec![req(
                    "this-is-another-dns.domain.com/key-with-dash",
                    In,
                    &["so", "what"],
                )],
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                vec![req(
                    "0.1.2.domain/99",
                    NotIn,
                    &["10.10.100.1", "tick.tack.clock"],
                )],
            ),
            ("foo  in\t (abc)", vec![req("foo", In, &["abc"])]),
            ("x notin\n (abc)", vec![req("x", NotIn, &["abc"])]),
            (
                "x  notin\t\t\t(abc,def)",
                vec![req("x", NotIn, &["abc", "def"])],
            ),
            ("x in (abc,def)", vec![req("x", In, &["abc", "def"])]),
            ("x in (abc,)", vec![req("x", In, &["", "abc"])]),
            ("x in ()", vec![req("x", In, &[""])]),
            (
                "x notin (abc,,def),bar,z in (),w",
                vec![
                    req("bar", Exists, &[]),
                    req("w", Exists, &[]),
                    req("x", NotIn, &["", "abc", "def"]),
                    req("z", In, &[""]),
                ],
            ),
            (
                "x,y in (a)",
                vec![req("x", Exists, &[]), req("y", In, &["a"])],
            ),
            ("x,y", vec![req("x", Exists, &[]), req("y", Exists, &[])]),
            ("x=a", vec![req("x", Equals, &["a"])]),
            ("x>1", vec![req("x", GreaterThan, &["1"])]),
            ("x<7", vec![req("x", LessThan, &["7"])]),
            (
                "x=a,y!=b",
                vec![req("x", Equals, &["a"]), req("y", NotEquals, &["b"])],
            ),
            (
                "x=a,y!=b,z in (h,i,j)",
                vec![
                    req("x", Equals, &["a"]),
                    req("y", NotEquals, &["b"]),
                    req("z", In, &["h", "i", "j"]),
                ],
            ),
            ("x notin ( )", vec![req("x", NotIn, &[""])]),
            ("x notin (, a)", vec![req("x", NotIn, &["", "a"])]),
            ("a ", vec![req("a", Exists, &[])]),
            (
                "a in (x,y,notin, z,in)",
                vec![req("a", In, &["in", "notin", "x", "y", "z"])],
            ),
            ("x in (a,a,b)", vec![req("x", In, &["a", "b"])]),
            ("in in (in)", vec![req("in", In, &["in"])]),
            ("x==y", vec![req("x", DoubleEquals, &["y"])]),
            // `!x` followed by something else still parses `!x` first.
            ("!x", vec![req("x", DoesNotExist, &[])]),
            (
                " ! x , y ",
                vec![req("x", DoesNotExist, &[]), req("y", Exists, &[])],
            ),
            // Same key twice: both kept, in their order.
            (
                "x=b,x!=a",
                vec![req("x", Equals, &["b"]), req("x", NotEquals, &["a"])],
            ),
        ];
        for (s, want) in cases {
            assert_eq!(parse(s).requirements(), want.as_slice(), "{s:?}");
        }
    }

    #[test]
    fn bad_selectors_fail_as_kubernetes_says() {
        let cases: &[(&str, String)] = &[
            (
                "x=a||y=b",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {VALUE_REGEX}"),
            ),
            ("x==a==b", "found '==', expected: ',' or 'end of string'".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            ("x,,y", "found ',', expected: identifier after ','".into()),
            (",x,y", "found ',', expected: !, identifier, or 'end of string'".into()),
            (
                "x nott in (y)",
                "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt".into(),
            ),
            ("a in (xyz),", "found '', expected: identifier after ','".into()),
            ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'".into()),
            (
                "a in (xyz abc)",
                "unable to parse requirement: found 'abc', expected: ',' or ')'".into(),
            ),
            (
                "a notin(",
                "unable to parse requirement: found '', expected: ',', ')' or identifier".into(),
            ),
            (
                "a (",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt".into(),
            ),
            ("(", "found '(', expected: !, identifier, or 'end of string'".into()),
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("x in x", "unable to parse requirement: found 'x' expected: '('".into()),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'".into()),
            ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier".into()),
            // `(,,)` and `(a,,)` are errors in Kubernetes too: the second comma is
            // consumed and the `)` then read as a value.
            ("x in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier".into()),
            ("x in (a,,)", "unable to parse requirement: found ')', expected: ',', or identifier".into()),
            // Values are label values even for Gt/Lt, so negative bounds are rejected.
            (
                "x>-5",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-5\": {VALUE_REGEX}"),
            ),
            ("x=(", "unable to parse requirement: found '(', expected: identifier".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            ("!!x", "unable to parse requirement: found '!', expected: identifier".into()),
            ("x=a b", "found 'b', expected: ',' or 'end of string'".into()),
            (
                "a_",
                format!("unable to parse requirement: <nil>: Invalid value: \"a_\": {NAME_PART_REGEX}"),
            ),
            (
                "/a",
                "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty".into(),
            ),
            (
                "a/",
                format!("unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_REGEX}"),
            ),
            (
                "Example.com/a",
                "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
            ),
            (
                "a/b/c",
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into(),
            ),
            (
                "x in (-a,b_)",
                format!("unable to parse requirement: [values[0][x]: Invalid value: \"-a\": {VALUE_REGEX}, values[1][x]: Invalid value: \"b_\": {VALUE_REGEX}]"),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(&parse_err(s), want, "{s:?}");
        }
    }

    #[test]
    fn key_and_value_lengths() {
        let long_name = "a".repeat(64);
        assert_eq!(
            parse_err(&long_name),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long_name}\": name part must be no more than 63 characters"
            )
        );
        parse(&"a".repeat(63));
        // A prefix may be up to 253 characters.
        let prefix = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(prefix.len(), 253);
        parse(&format!("{prefix}/x"));
        parse_err(&format!("{prefix}e/x"));
        assert_eq!(
            parse_err(&format!("x={}", "v".repeat(64))),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"{}\": must be no more than 63 characters",
                "v".repeat(64)
            )
        );
        parse(&format!("x={}", "v".repeat(63)));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "é=x",
            "x=é",
            "x in (é)",
            "(((",
            ")))",
            "!=!=",
            "=",
            "==",
            "<>",
            "x><1",
            "\0",
            "a=b\0c",
            "🦀",
            "x in (🦀,",
            "x\u{2028}=y",
            ",",
            "x,",
            "x=y,",
            "!x,!",
        ] {
            let _ = LabelSelector::parse(s);
        }
        // Non-ASCII is never a valid key or value.
        parse_err("é=x");
        parse_err("x=é");
    }

    #[test]
    fn lexer_takes_longest_operator() {
        let tokens = |s: &str| {
            let p = Parser::new(s);
            p.items.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        };
        use Token::*;
        assert_eq!(
            tokens("== != (), = notin"),
            [
                DoubleEquals,
                NotEquals,
                OpenPar,
                ClosedPar,
                Comma,
                Equals,
                NotIn,
                EndOfString
            ]
        );
        assert_eq!(
            tokens("key>2"),
            [Identifier, GreaterThan, Identifier, EndOfString]
        );
        assert_eq!(tokens("!key"), [DoesNotExist, Identifier, EndOfString]);
        assert_eq!(tokens("~"), [Identifier, EndOfString]);
        assert_eq!(tokens("||"), [Identifier, EndOfString]);
        assert_eq!(
            tokens("x=!y"),
            [Identifier, Equals, DoesNotExist, Identifier, EndOfString]
        );
        assert_eq!(tokens("==="), [DoubleEquals, Equals, EndOfString]);
    }

    // TestToString: values print sorted, each operator in its own form.
    #[test]
    fn canonical_string() {
        use Operator::*;
        let sel = |reqs: Vec<Requirement>| LabelSelector {
            requirements: reqs,
            nothing: false,
        };
        assert_eq!(
            sel(vec![
                req("x", In, &["abc", "def"]),
                req("y", NotIn, &["jkl"]),
                req("z", Exists, &[])
            ])
            .to_string(),
            "x in (abc,def),y notin (jkl),z"
        );
        assert_eq!(
            sel(vec![
                req("x", NotIn, &["def", "abc"]),
                req("y", NotEquals, &["jkl"]),
                req("z", DoesNotExist, &[])
            ])
            .to_string(),
            "x notin (abc,def),y!=jkl,!z"
        );
        assert_eq!(
            sel(vec![
                req("x", NotIn, &["abc"]),
                req("y", In, &["jkl", "mno"]),
                req("z", NotIn, &[""])
            ])
            .to_string(),
            "x notin (abc),y in (jkl,mno),z notin ()"
        );
        assert_eq!(
            sel(vec![
                req("x", Equals, &["abc"]),
                req("y", DoubleEquals, &["jkl"]),
                req("z", NotEquals, &["a"]),
                req("z", Exists, &[])
            ])
            .to_string(),
            "x=abc,y==jkl,z!=a,z"
        );
        assert_eq!(
            sel(vec![
                req("x", GreaterThan, &["2"]),
                req("y", LessThan, &["8"]),
                req("z", Exists, &[])
            ])
            .to_string(),
            "x>2,y<8,z"
        );
        // Parsing normalizes spacing and value order.
        assert_eq!(
            parse(" z  notin (b, a) , x in (c,,a) ").to_string(),
            "x in (,a,c),z notin (a,b)"
        );
        assert_eq!(parse("x in (,)").to_string(), "x in ()");
    }

    #[test]
    fn canonical_string_reparses_to_the_same_selector() {
        for s in [
            "x in (a,b),!y,z",
            "a.b/c notin (),d==e,f!=,g>1,h<2",
            "x in (,a),x notin (b)",
        ] {
            let once = parse(s);
            assert_eq!(parse(&once.to_string()), once, "{s:?}");
        }
    }

    #[test]
    fn everything_nothing_and_empty() {
        let everything = LabelSelector::everything();
        assert!(everything.is_empty());
        assert!(everything.matches(&labels(&[("x", "y")])));
        assert!(everything.matches_labels(None));
        assert_eq!(everything, parse(""));
        assert_eq!(everything, parse("  "));

        let nothing = LabelSelector::nothing();
        assert!(!nothing.is_empty());
        assert!(nothing.is_nothing());
        assert!(!nothing.matches(&labels(&[])));
        assert!(!nothing.matches_labels(None));
        assert_eq!(nothing.to_string(), "");

        assert!(!parse("x").is_empty());
    }

    #[test]
    fn matches_labels_and_objects() {
        let sel = parse("app=web,!canary");
        assert!(!sel.matches_labels(None));
        assert!(parse("!canary").matches_labels(None));
        assert!(parse("x notin (a)").matches_labels(None));
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
        assert!(sel.matches_object(&pod));
        let canary = json!({"metadata": {"labels": {"app": "web", "canary": ""}}});
        assert!(!sel.matches_object(&canary));
        assert!(!sel.matches_object(&json!({"metadata": {}})));
        assert!(parse("").matches_object(&json!({})));
        // A non-string label is set but equals nothing.
        let odd = json!({"metadata": {"labels": {"n": 1}}});
        assert!(parse("n").matches_object(&odd));
        assert!(!parse("n=1").matches_object(&odd));
        assert!(parse("n!=1").matches_object(&odd));
        assert!(!parse("n>0").matches_object(&odd));
    }

    #[test]
    fn exact_match() {
        assert_eq!(parse("a=b,c=d").requires_exact_match("c"), Some("d"));
        assert_eq!(parse("a==b").requires_exact_match("a"), Some("b"));
        assert_eq!(parse("a in (b)").requires_exact_match("a"), Some("b"));
        assert_eq!(parse("a in (b,c)").requires_exact_match("a"), None);
        assert_eq!(parse("a!=b").requires_exact_match("a"), None);
        assert_eq!(parse("a").requires_exact_match("a"), None);
        assert_eq!(parse("a=").requires_exact_match("a"), Some(""));
        assert_eq!(parse("a=b").requires_exact_match("x"), None);
        assert_eq!(LabelSelector::nothing().requires_exact_match("a"), None);
    }

    #[test]
    fn from_str_and_from_map() {
        let sel: LabelSelector = "a=b".parse().unwrap();
        assert_eq!(sel, parse("a=b"));
        assert!("a b".parse::<LabelSelector>().is_err());

        let map = labels(&[("tier", "web"), ("app", "shop")]);
        let sel = LabelSelector::from_map(&map);
        assert_eq!(sel.to_string(), "app=shop,tier=web");
        assert!(sel.matches(&labels(&[("app", "shop"), ("tier", "web"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("app", "shop")])));
        assert!(LabelSelector::from_map(&Map::new()).is_empty());
    }

    #[test]
    fn from_object_converts_match_labels_and_expressions() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "team", "operator": "Exists", "values": []},
            ],
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env in (prod,staging),team,tier=front,zone notin (b)"
        );
        let ok = labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "prod"),
            ("team", "t"),
        ]);
        assert!(sel.matches(&ok));
        let mut bad = ok.clone();
        bad.insert("canary".into(), "1".into());
        assert!(!sel.matches(&bad));
        let mut bad = ok.clone();
        bad.insert("zone".into(), "b".into());
        assert!(!sel.matches(&bad));
        let mut bad = ok.clone();
        bad.remove("team");
        assert!(!sel.matches(&bad));
    }

    #[test]
    fn from_object_empty_matches_everything_absent_matches_nothing() {
        for empty in [
            json!({}),
            json!({"matchLabels": {}}),
            json!({"matchLabels": null, "matchExpressions": []}),
        ] {
            let sel = LabelSelector::from_object(&empty).unwrap();
            assert!(sel.is_empty(), "{empty}");
            assert!(sel.matches_labels(None));
        }
        let absent = LabelSelector::from_object(&Value::Null).unwrap();
        assert!(absent.is_nothing());
        assert!(!absent.matches(&labels(&[("app", "web")])));
        let absent = LabelSelector::from_object_at(None, "spec.selector").unwrap();
        assert!(absent.is_nothing());
        let obj = json!({"spec": {}});
        assert!(
            LabelSelector::from_object_at(obj.at("/spec/selector"), "spec.selector")
                .unwrap()
                .is_nothing()
        );
    }

    #[test]
    fn from_object_reports_fields_as_validate_label_selector() {
        let errs = LabelSelector::from_object_at(
            Some(&json!({
                "matchLabels": {"bad key": "ok", "k": "bad value"},
                "matchExpressions": [
                    {"key": "a", "operator": "In"},
                    {"key": "b", "operator": "Exists", "values": ["x"]},
                    {"key": "c", "operator": "Gt", "values": ["1"]},
                    {"key": "d_", "operator": "NotIn", "values": ["ok", "-no"]},
                ],
            })),
            "spec.selector",
        )
        .unwrap_err();
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            vec![
                format!("spec.selector.matchLabels: Invalid value: \"bad key\": {NAME_PART_REGEX}"),
                format!("spec.selector.matchLabels: Invalid value: \"bad value\": {VALUE_REGEX}"),
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".to_string(),
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".to_string(),
                "spec.selector.matchExpressions[2].operator: Invalid value: \"Gt\": not a valid selector operator".to_string(),
                format!("spec.selector.matchExpressions[3].key: Invalid value: \"d_\": {NAME_PART_REGEX}"),
                format!("spec.selector.matchExpressions[3].values[1]: Invalid value: \"-no\": {VALUE_REGEX}"),
            ]
        );
        assert_eq!(errs[2].cause_reason(), "FieldValueRequired");
        assert_eq!(errs[3].cause_reason(), "FieldValueForbidden");
    }

    #[test]
    fn from_object_missing_key_and_wrong_types() {
        let errs = LabelSelector::from_object(&json!({
            "matchExpressions": [{"operator": "Exists"}],
        }))
        .unwrap_err();
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "matchExpressions[0].key: Invalid value: \"\": name part must be non-empty"
                    .to_string(),
                format!("matchExpressions[0].key: Invalid value: \"\": {NAME_PART_REGEX}"),
            ]
        );

        let errs = LabelSelector::from_object(&json!({
            "matchLabels": {"a": 1},
            "matchExpressions": [
                "nope",
                {"key": "k", "operator": "In", "values": [2]},
                {"key": 3, "operator": "Exists"},
                {"key": "k", "operator": 4},
            ],
        }))
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "matchLabels[a]",
                "matchExpressions[0]",
                "matchExpressions[1].values[0]",
                "matchExpressions[1].values",
                "matchExpressions[2].key",
                "matchExpressions[2].key",
                "matchExpressions[2].key",
                "matchExpressions[3].operator",
            ]
        );
        assert!(LabelSelector::from_object(&json!("app=web")).is_err());
        assert!(LabelSelector::from_object(&json!({"matchLabels": []})).is_err());
        assert!(LabelSelector::from_object(&json!({"matchExpressions": {}})).is_err());
    }

    #[test]
    fn from_object_keeps_label_and_expression_on_same_key() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}],
        }))
        .unwrap();
        assert_eq!(sel.to_string(), "app=web,app notin (db)");
        assert_eq!(sel.requires_exact_match("app"), Some("web"));
    }

    #[test]
    fn validation_helpers() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert!(qualified_name_errors("A_b-C.9").is_empty());
        assert!(qualified_name_errors("1234").is_empty());
        assert!(qualified_name_errors(&"a".repeat(254)).len() == 1);
        assert_eq!(
            qualified_name_errors("").as_slice(),
            [
                "name part must be non-empty".to_string(),
                NAME_PART_REGEX.to_string()
            ]
        );
        assert!(qualified_name_errors("-a").len() == 1);
        assert!(qualified_name_errors("a.-b/c").len() == 1);
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("a").is_empty());
        assert!(label_value_errors("a.b_c-d").is_empty());
        assert_eq!(label_value_errors("a b"), vec![VALUE_REGEX.to_string()]);
        assert_eq!(label_value_errors(".a").len(), 1);
        assert_eq!(
            label_value_errors(&format!("-{}", "a".repeat(63))),
            vec![
                "must be no more than 63 characters".to_string(),
                VALUE_REGEX.to_string()
            ]
        );
    }
}
