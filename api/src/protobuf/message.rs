//! The schema's shape, and one message's bytes turned into its JSON value.
//!
//! The JSON is what Go's `encoding/json` writes for the Go struct Kubernetes
//! decodes the message into: fields in declaration order, a zero non-pointer
//! scalar dropped (`omitempty`), a set pointer kept even at zero, an embedded
//! struct's fields inlined, `[]byte` as base64, and the handful of apimachinery
//! types with a JSON form of their own ([`Special`]).

use serde_json::{Map, Number, Value};

use super::ProtobufError;
use super::wire::{Reader, WireValue};
use crate::generated::protobuf_schema::MESSAGES;

/// How deep messages may nest. The deepest path in the schema (a volume
/// projection's field selector inside a pod template inside a CronJob) is well
/// under this; the bound only stops a hostile body from exhausting the stack.
pub(super) const MAX_DEPTH: usize = 32;

/// A message of the schema.
#[derive(Debug)]
pub(crate) struct Message {
    /// Its name in Kubernetes' `.proto` files, e.g. `k8s.io.api.core.v1.PodSpec`.
    pub name: &'static str,
    pub special: Special,
    /// In Go declaration order, which is the order JSON writes them in.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    pub number: u32,
    /// The JSON key; empty for [`Card::Inline`].
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
}

/// A field's type: a scalar, or a message by its index in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    // No served kind has a float64 field yet (k8s-pb has a few elsewhere).
    #[allow(dead_code)]
    Double,
    Message(u16),
}

/// How many values a field holds, and when JSON writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    /// One value; a zero scalar is left out (a non-pointer Go field with
    /// `omitempty`). A message is written whenever present.
    Optional,
    /// One scalar, written even when zero: a Go pointer, or a field without
    /// `omitempty`.
    Always,
    /// A list; left out when empty.
    Repeated,
    /// A `map<string, _>`; left out when empty.
    Map,
    /// An embedded struct (`json:",inline"`): its fields are the parent's.
    Inline,
}

/// Messages whose JSON is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    /// `metav1.Time`: RFC 3339 in seconds, `null` when zero.
    Time,
    /// `metav1.MicroTime`: RFC 3339 in microseconds, `null` when zero.
    MicroTime,
    /// `metav1.Duration`: Go's `time.Duration` string, e.g. `1m30s`.
    Duration,
    /// `metav1.FieldsV1`: raw JSON.
    FieldsV1,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`: raw JSON.
    RawExtension,
    /// A named `[]string` (`ExtraValue`): a JSON list of its strings.
    StringList,
}

/// What has been read for one field, before it becomes JSON.
enum Slot<'a> {
    Empty,
    Scalar(Value),
    /// The occurrences of a single message field; more than one are merged, as
    /// protobuf merges a message that appears twice.
    Parts(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

/// Field constructor for the generated schema, to keep it one line a field.
pub(crate) const fn field(number: u32, json: &'static str, ty: Ty, card: Card) -> Field {
    Field {
        number,
        json,
        ty,
        card,
    }
}

/// The schema's message at `index`.
pub(super) fn message(index: u16) -> Result<&'static Message, ProtobufError> {
    MESSAGES
        .get(usize::from(index))
        .ok_or_else(|| ProtobufError::malformed(format!("no schema message {index}")))
}

/// Decodes `bytes` as the message `msg` into its JSON value.
pub(super) fn decode(msg: &Message, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::malformed(format!(
            "messages nested more than {MAX_DEPTH} deep"
        )));
    }
    match msg.special {
        Special::None => decode_fields(msg, bytes, depth).map(Value::Object),
        special => decode_special(special, bytes),
    }
}

fn decode_fields(
    msg: &Message,
    bytes: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut slots: Vec<Slot> = msg.fields.iter().map(|_| Slot::Empty).collect();
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        // Unknown fields are skipped, as Go's decoder does: a newer client may
        // send fields this schema does not have yet.
        let Some(i) = msg.fields.iter().position(|f| f.number == number) else {
            continue;
        };
        let (field, slot) = (&msg.fields[i], &mut slots[i]);
        read_field(field, value, slot, depth).map_err(|e| e.at(field_name(msg, field)))?;
    }

    let mut out = Map::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        match slot {
            Slot::Empty => {}
            Slot::Scalar(v) => {
                if field.card != Card::Optional || !is_zero(&v) {
                    out.insert(field.json.to_string(), v);
                }
            }
            Slot::Parts(parts) => {
                let value =
                    decode_parts(field, &parts, depth).map_err(|e| e.at(field_name(msg, field)))?;
                match (field.card, value) {
                    (Card::Inline, Value::Object(inner)) => out.extend(inner),
                    (Card::Inline, _) => {
                        return Err(ProtobufError::malformed("an inline field is not an object")
                            .at(field_name(msg, field)));
                    }
                    (_, value) => {
                        out.insert(field.json.to_string(), value);
                    }
                }
            }
            Slot::List(items) => {
                if !items.is_empty() {
                    out.insert(field.json.to_string(), Value::Array(items));
                }
            }
            Slot::Map(map) => {
                if !map.is_empty() {
                    out.insert(field.json.to_string(), Value::Object(map));
                }
            }
        }
    }
    Ok(out)
}

/// Reads one occurrence of `field` into its slot.
fn read_field<'a>(
    field: &Field,
    value: WireValue<'a>,
    slot: &mut Slot<'a>,
    depth: usize,
) -> Result<(), ProtobufError> {
    match field.card {
        Card::Optional | Card::Always | Card::Inline => match field.ty {
            Ty::Message(_) => {
                let bytes = expect_bytes(value)?;
                match slot {
                    Slot::Parts(parts) => parts.push(bytes),
                    _ => *slot = Slot::Parts(vec![bytes]),
                }
            }
            ty => *slot = Slot::Scalar(scalar(ty, value)?),
        },
        Card::Repeated => {
            if !matches!(slot, Slot::List(_)) {
                *slot = Slot::List(Vec::new());
            }
            if let Slot::List(items) = slot {
                read_repeated(field.ty, value, items, depth)?;
            }
        }
        Card::Map => {
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(Map::new());
            }
            if let Slot::Map(map) = slot {
                let (key, v) = map_entry(field.ty, expect_bytes(value)?, depth)?;
                map.insert(key, v);
            }
        }
    }
    Ok(())
}

/// Reads one occurrence of a repeated field: one element, or a packed run.
fn read_repeated(
    ty: Ty,
    value: WireValue,
    items: &mut Vec<Value>,
    depth: usize,
) -> Result<(), ProtobufError> {
    match (ty, value) {
        (Ty::Message(index), value) => {
            let bytes = expect_bytes(value)?;
            let item = decode(message(index)?, bytes, depth + 1)
                .map_err(|e| e.at(format!("[{}]", items.len())))?;
            items.push(item);
        }
        // A packed run of numbers: Go writes Kubernetes' lists unpacked, but
        // protobuf decoders accept both.
        (ty @ (Ty::Bool | Ty::Int32 | Ty::Int64 | Ty::Double), WireValue::Bytes(run)) => {
            let mut run = Reader::new(run);
            while !run.is_empty() {
                let v = match ty {
                    Ty::Double => WireValue::Fixed64(u64::from_le_bytes(run.fixed::<8>()?)),
                    _ => WireValue::Varint(run.varint()?),
                };
                items.push(scalar(ty, v)?);
            }
        }
        (ty, value) => items.push(scalar(ty, value)?),
    }
    Ok(())
}

/// A map entry: a message with the key as field 1 and the value as field 2.
/// Either may be missing, meaning its zero value.
fn map_entry(ty: Ty, bytes: &[u8], depth: usize) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    let mut reader = Reader::new(bytes);
    while let Some((number, v)) = reader.next_field()? {
        match number {
            1 => key = string(expect_bytes(v)?),
            2 => value = Some(v),
            _ => {}
        }
    }
    let value = match (ty, value) {
        (Ty::Message(index), v) => {
            let bytes = v.map(expect_bytes).transpose()?.unwrap_or_default();
            decode(message(index)?, bytes, depth + 1).map_err(|e| e.at(format!("[{key:?}]")))?
        }
        (ty, Some(v)) => scalar(ty, v).map_err(|e| e.at(format!("[{key:?}]")))?,
        (ty, None) => zero(ty),
    };
    Ok((key, value))
}

fn decode_parts(field: &Field, parts: &[&[u8]], depth: usize) -> Result<Value, ProtobufError> {
    let Ty::Message(index) = field.ty else {
        return Err(ProtobufError::malformed("a scalar field read as a message"));
    };
    let msg = message(index)?;
    match parts {
        [one] => decode(msg, one, depth + 1),
        many => decode(msg, &many.concat(), depth + 1),
    }
}

fn decode_special(special: Special, bytes: &[u8]) -> Result<Value, ProtobufError> {
    // Field numbers as in Kubernetes' .proto files (the generator checks them
    // against k8s-pb): Time and MicroTime {1: seconds, 2: nanos}, Duration
    // {1: nanoseconds}, IntOrString {1: type, 2: intVal, 3: strVal}, and
    // {1: the value} for the rest.
    let (mut first, mut second) = (0i64, 0i64);
    let mut raw: Option<&[u8]> = None;
    let mut items = Vec::new();
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        match (special, number) {
            (Special::StringList, 1) => items.push(Value::String(string(expect_bytes(value)?))),
            (Special::Quantity | Special::FieldsV1 | Special::RawExtension, 1)
            | (Special::IntOrString, 3) => raw = Some(expect_bytes(value)?),
            (Special::Time | Special::MicroTime | Special::Duration | Special::IntOrString, 1) => {
                first = expect_varint(value)? as i64;
            }
            (Special::Time | Special::MicroTime | Special::IntOrString, 2) => {
                second = expect_varint(value)? as i64;
            }
            _ => {}
        }
    }
    let empty = bytes.is_empty();
    Ok(match special {
        Special::None => Value::Object(Map::new()),
        // A zero time is written as an empty message, and JSON says null.
        Special::Time | Special::MicroTime if empty => Value::Null,
        // Kubernetes keeps only the seconds of a Time.
        Special::Time => timestamp(first, 0, "%Y-%m-%dT%H:%M:%SZ")?,
        Special::MicroTime => timestamp(first, second as i32, "%Y-%m-%dT%H:%M:%S%.6fZ")?,
        Special::Duration => Value::String(crate::duration::format(first)),
        Special::Quantity => Value::String(raw.map_or_else(|| "0".to_string(), string)),
        Special::IntOrString if first == 1 => Value::String(raw.map(string).unwrap_or_default()),
        Special::IntOrString => Value::from(second as i32),
        Special::StringList => Value::Array(items),
        Special::FieldsV1 | Special::RawExtension => match raw {
            None | Some([]) => Value::Null,
            Some(json) => serde_json::from_slice(json).map_err(|e| {
                ProtobufError::malformed(format!("embedded JSON is not valid: {e}"))
            })?,
        },
    })
}

fn timestamp(seconds: i64, nanos: i32, format: &str) -> Result<Value, ProtobufError> {
    let ts = jiff::Timestamp::new(seconds, nanos.clamp(0, 999_999_999))
        .map_err(|_| ProtobufError::malformed(format!("time {seconds}s is out of range")))?;
    Ok(Value::String(ts.strftime(format).to_string()))
}

fn scalar(ty: Ty, value: WireValue) -> Result<Value, ProtobufError> {
    Ok(match (ty, value) {
        (Ty::String, WireValue::Bytes(b)) => Value::String(string(b)),
        (Ty::Bytes, WireValue::Bytes(b)) => Value::String(base64(b)),
        (Ty::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        // Negative int32s are sign-extended to 64 bits on the wire.
        (Ty::Int32, WireValue::Varint(v)) => Value::from(v as i64 as i32),
        (Ty::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Ty::Double, WireValue::Fixed64(v)) => double(f64::from_bits(v))?,
        (ty, value) => {
            return Err(ProtobufError::malformed(format!(
                "wire type {} for a field of type {ty:?}",
                value.wire_type()
            )));
        }
    })
}

/// A float64 as Go's JSON writes it: an integral value without a fraction.
fn double(v: f64) -> Result<Value, ProtobufError> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return Ok(Value::from(v as i64));
    }
    Number::from_f64(v)
        .map(Value::Number)
        .ok_or_else(|| ProtobufError::malformed("a double that is not a finite number"))
}

fn zero(ty: Ty) -> Value {
    match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 => Value::from(0),
        Ty::Double => Value::from(0.0),
        Ty::Message(_) => Value::Object(Map::new()),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn expect_bytes(value: WireValue<'_>) -> Result<&[u8], ProtobufError> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(ProtobufError::malformed(format!(
            "wire type {} where a length-delimited value belongs",
            other.wire_type()
        ))),
    }
}

fn expect_varint(value: WireValue) -> Result<u64, ProtobufError> {
    match value {
        WireValue::Varint(v) => Ok(v),
        other => Err(ProtobufError::malformed(format!(
            "wire type {} where a varint belongs",
            other.wire_type()
        ))),
    }
}

/// Go converts proto strings without checking them, and its JSON encoder then
/// replaces invalid UTF-8 with U+FFFD; so does this.
fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Standard base64 with padding, as Go's JSON encodes `[]byte`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `spec` for a field, or the message's name for an inline one.
fn field_name(msg: &Message, field: &Field) -> String {
    if field.json.is_empty() {
        format!("({})", msg.name.rsplit('.').next().unwrap_or(msg.name))
    } else {
        field.json.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn durations_match_go() {
        // Expected strings from Go's time.Duration.String documentation and tests.
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * 60 * 1_000_000_000 + 5_000_000_000, "4m5s"),
            (4 * 60 * 1_000_000_000 + 5_001_000_000, "4m5.001s"),
            (
                5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60 * 1_000_000_000 + 1, "8m0.000000001s"),
            (3_600_000_000_000, "1h0m0s"),
            (-1_000, "-1µs"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(crate::duration::format(nanos), want, "{nanos}");
        }
    }
}
