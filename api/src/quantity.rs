//! Kubernetes resource quantities (`500m`, `128Mi`, `1e3`): parsed once into a
//! value and the format of its suffix, compared, added, and printed in the
//! canonical form Kubernetes stores and returns (`Quantity.String()`).
//!
//! Semantics follow apimachinery's `pkg/api/resource/quantity.go`:
//! - `ParseQuantity`: the value is exact down to nano-units and a finer non-zero
//!   value is rounded away from zero (`0.1n` is `1n`), after a binary suffix is
//!   applied (`0.000000000001Ki` is `2n`); a `Ki`..`Ei` quantity is capped at
//!   2^63-1 units, a decimal one is not (`1e30` stays `1e30`). Surrounding
//!   space is trimmed, as `UnmarshalJSON` does before parsing.
//! - `String()` / `CanonicalizeBytes`: the largest suffix of the parsed format
//!   that keeps the number whole (`1024Mi` is `1Gi`, `1000` is `1k`, `0.5` is
//!   `500m`); and, as the Go fast path does, a text already in a shape Go
//!   deems canonical is kept as written (`01`, `1E3`, `1.005k`).
//!
//! Two deliberate differences: a number with no digits (`.`, `e3`, `m`), which
//! Go reads as zero, is refused, as Skiff always has; and a decimal quantity of
//! 10^29 units or more (Go keeps it exact in an `inf.Dec`) saturates there for
//! comparison and keeps its text as written.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use serde_json::Value;

/// Kubernetes' message for a malformed quantity (`ErrFormatWrong`).
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A text that is not a quantity; displays as Kubernetes' [`FORMAT_ERROR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", FORMAT_ERROR)]
pub struct QuantityError;

/// Which family of suffix a quantity was written with; its canonical form keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... `Ei`.
    BinarySi,
    /// `n`, `u`, `m`, none, `k`, `M`, ... `E`.
    DecimalSi,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// A parsed quantity: its value in nano-units (10^-9) and its format.
///
/// Equality and order are by value (`1k == 1e3`), as Go's `Quantity.Cmp`.
/// `Display` is the canonical form of the value (`CanonicalizeBytes`); use
/// [`canonical`] for what Kubernetes prints for a given text.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
    /// A decimal too large to hold exactly; `nanos` is [`DECIMAL_LIMIT`].
    saturated: bool,
}

/// What parsing a text gives: the quantity, and whether Go keeps the text.
struct Parsed {
    quantity: Quantity,
    keeps_text: bool,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
/// Kubernetes' cap on a binary-suffixed quantity: 2^63-1 units.
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;
/// Decimal quantities at or past 10^29 units saturate here.
const DECIMAL_LIMIT: u128 = 10u128.pow(38);
/// `maxInt64Factors` of quantity.go: digits an int64 always holds.
const MAX_INT64_FACTORS: usize = 18;

impl Quantity {
    /// Parses `text` as Kubernetes' JSON decoding of a `resource.Quantity`
    /// does, or fails with Kubernetes' [`FORMAT_ERROR`].
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        parse_text(text.trim()).map(|p| p.quantity)
    }

    /// The format its canonical form is printed in.
    pub fn format(self) -> Format {
        self.format
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    pub fn is_positive(self) -> bool {
        self.nanos > 0
    }

    /// Whether it is a whole number of units.
    pub fn is_integer(self) -> bool {
        self.nanos % NANOS_PER_UNIT == 0
    }

    pub fn cmp_to(self, other: Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }

    /// The value in thousandths, rounded up (`MilliValue`: cpu in millicores).
    pub fn milli_value(self) -> i64 {
        let per_milli = NANOS_PER_UNIT / 1000;
        clamp_i64(
            self.nanos.div_euclid(per_milli) + i128::from(self.nanos.rem_euclid(per_milli) != 0),
        )
    }

    /// The value in whole units, rounded up (`Value`: memory in bytes).
    pub fn value(self) -> i64 {
        clamp_i64(
            self.nanos.div_euclid(NANOS_PER_UNIT)
                + i128::from(self.nanos.rem_euclid(NANOS_PER_UNIT) != 0),
        )
    }

    /// `self + other`, as `Quantity.Add`: the sum keeps `self`'s format
    /// (`other`'s when `self` is zero). `None` if it cannot be held exactly.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.combine(other, self.nanos.checked_add(other.nanos)?)
    }

    /// `self - other`, as `Quantity.Sub` (formats as [`Quantity::checked_add`]).
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.combine(other, self.nanos.checked_sub(other.nanos)?)
    }

    fn combine(self, other: Quantity, nanos: i128) -> Option<Quantity> {
        if self.saturated || other.saturated {
            return None;
        }
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Some(Quantity {
            nanos,
            format,
            saturated: false,
        })
    }

    /// Whether its canonical form is exactly `s`, without building a string.
    fn renders_as(self, s: &str) -> bool {
        let mut matcher = Matcher { rest: s };
        write!(matcher, "{self}").is_ok() && matcher.rest.is_empty()
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// `Quantity.CanonicalizeBytes`: the largest suffix that keeps the number whole.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        if self.nanos < 0 {
            f.write_char('-')?;
        }
        let abs = self.nanos.unsigned_abs();
        let per_unit = NANOS_PER_UNIT.unsigned_abs();
        let binary = self.format == Format::BinarySi
            // Below 1Ki, or not whole: binary would round, so decimal.
            && abs >= 1024 * per_unit
            && abs.is_multiple_of(per_unit);
        if binary {
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut number = abs / per_unit;
            let mut power = 0;
            while number.is_multiple_of(1024) && power < SUFFIXES.len() - 1 {
                number /= 1024;
                power += 1;
            }
            return write!(f, "{number}{}", SUFFIXES[power]);
        }
        let mut number = abs;
        let mut exponent: i32 = -9;
        while number.is_multiple_of(1000) {
            number /= 1000;
            exponent += 3;
        }
        let si = match exponent {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (self.format, si) {
            (Format::DecimalExponent, _) if exponent == 0 => write!(f, "{number}"),
            // Past `E` DecimalSI has no suffix; Kubernetes falls back to `e`.
            (Format::DecimalExponent, _) | (_, None) => write!(f, "{number}e{exponent}"),
            (_, Some(suffix)) => write!(f, "{number}{suffix}"),
        }
    }
}

/// A `fmt::Write` that checks what is written against `rest`.
struct Matcher<'a> {
    rest: &'a str,
}

impl fmt::Write for Matcher<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.rest = self.rest.strip_prefix(s).ok_or(fmt::Error)?;
        Ok(())
    }
}

/// `Quantity.String()` of the quantity written `text`, borrowing when that is
/// the text itself (trimmed); `None` if it is not a quantity.
pub fn canonical(text: &str) -> Option<Cow<'_, str>> {
    let s = text.trim();
    let parsed = parse_text(s).ok()?;
    let q = parsed.quantity;
    if parsed.keeps_text || q.saturated || q.renders_as(s) {
        Some(Cow::Borrowed(s))
    } else {
        Some(Cow::Owned(q.to_string()))
    }
}

/// `Quantity.String()` of the quantity written `s`: its canonical form, or `s`
/// as written when it does not parse.
pub fn canonical_quantity(s: &str) -> String {
    canonical(s).map_or_else(|| s.to_string(), Cow::into_owned)
}

/// `Quantity.String()` of the quantity `value` (a JSON string or number, as
/// YAML gives); `"0"` for a missing one, as a zero `Quantity` prints.
pub fn quantity_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "0".to_string(),
        Some(Value::String(s)) => canonical_quantity(s),
        Some(Value::Number(n)) => canonical_quantity(&n.to_string()),
        Some(other) => other.to_string(),
    }
}

/// `a + b` in canonical form ([`Quantity::checked_add`]). `None` if either is
/// not a quantity or the sum cannot be held.
pub fn add_quantities(a: &str, b: &str) -> Option<String> {
    let sum = Quantity::parse(a)
        .ok()?
        .checked_add(Quantity::parse(b).ok()?)?;
    Some(sum.to_string())
}

/// `a - b` in canonical form ([`Quantity::checked_sub`]). `None` if either is
/// not a quantity or the difference cannot be held.
pub fn sub_quantities(a: &str, b: &str) -> Option<String> {
    let difference = Quantity::parse(a)
        .ok()?
        .checked_sub(Quantity::parse(b).ok()?)?;
    Some(difference.to_string())
}

/// `ParseQuantity` of an already trimmed text.
fn parse_text(s: &str) -> Result<Parsed, QuantityError> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int_part, after) = rest.split_at(int_len);
    let (frac_part, suffix) = match after.strip_prefix('.') {
        Some(after_dot) => {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            after_dot.split_at(frac_len)
        }
        None => ("", after),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError);
    }
    let (base2, exp10, format) = interpret_suffix(suffix)?;
    let keeps_text = keeps_text(int_part, frac_part, base2, exp10);

    let (magnitude, format, saturated) =
        match (magnitude(int_part, frac_part, base2, exp10), format) {
            (m, Format::BinarySi) => {
                let capped = m.map_or(MAX_NANOS, |m| i128::try_from(m).unwrap_or(MAX_NANOS));
                let capped = capped.min(MAX_NANOS);
                // A binary quantity below one unit is printed as decimal.
                let format = if capped > 0 && capped < NANOS_PER_UNIT {
                    Format::DecimalSi
                } else {
                    Format::BinarySi
                };
                (capped, format, false)
            }
            (Some(m), format) if m < DECIMAL_LIMIT => (m as i128, format, false),
            (_, format) => (DECIMAL_LIMIT as i128, format, true),
        };
    Ok(Parsed {
        quantity: Quantity {
            nanos: if negative { -magnitude } else { magnitude },
            format,
            saturated,
        },
        keeps_text,
    })
}

/// `(power of two, power of ten, format)` of a suffix: `quantitySuffixer.interpret`.
fn interpret_suffix(suffix: &str) -> Result<(u32, i64, Format), QuantityError> {
    let decimal = |exp| Ok((0, exp, Format::DecimalSi));
    let binary = |exp| Ok((exp, 0, Format::BinarySi));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E']).ok_or(QuantityError)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError);
            }
            // Go parses an int64 and keeps it as an int32, wrapping.
            let exp: i64 = exp.parse().map_err(|_| QuantityError)?;
            Ok((0, i64::from(exp as i32), Format::DecimalExponent))
        }
    }
}

/// The absolute value in nano-units, rounded away from zero; `None` when it
/// does not fit in a `u128`. `int_part` and `frac_part` are ASCII digits.
fn magnitude(int_part: &str, frac_part: &str, base2: u32, exp10: i64) -> Option<u128> {
    let all = || int_part.bytes().chain(frac_part.bytes()).map(|b| b - b'0');
    let leading_zeros = all().take_while(|d| *d == 0).count();
    // Significant digits `D`; the value is D * 2^base2 * 10^scale nanos.
    let n = int_part.len() + frac_part.len() - leading_zeros;
    if n == 0 {
        return Some(0);
    }
    let scale = exp10 + 9 - i64::try_from(frac_part.len()).ok()?;
    // Digits of D * 10^scale before the point.
    let point = i64::try_from(n).ok()?.checked_add(scale)?;
    if point >= 40 {
        return None; // at least 10^39 nanos
    }
    if point <= -19 {
        return Some(1); // below 10^-19 * 2^60 < 1 nano: rounds up to one
    }
    let whole_digits = usize::try_from(point.max(0)).ok()?;
    let mut whole: u128 = 0;
    for d in all().skip(leading_zeros).take(whole_digits) {
        whole = whole.checked_mul(10)?.checked_add(u128::from(d))?;
    }
    if whole_digits > n {
        let zeros = u32::try_from(whole_digits - n).ok()?;
        whole = whole.checked_mul(10u128.checked_pow(zeros)?)?;
    }
    let whole = whole.checked_mul(1u128 << base2)?;

    // The digits after the point, times 2^base2, right to left: the final
    // carry is their whole part, and any digit left behind rounds up.
    let mut carry: u128 = 0;
    let mut remainder = false;
    let fraction = all().rev().take(n.saturating_sub(whole_digits));
    let zeros_after_point = usize::try_from((-point).max(0)).ok()?;
    for d in fraction.chain(std::iter::repeat_n(0, zeros_after_point)) {
        let v = (u128::from(d) << base2) + carry;
        remainder |= !v.is_multiple_of(10);
        carry = v / 10;
    }
    whole.checked_add(carry)?.checked_add(u128::from(remainder))
}

/// Whether Go's `ParseQuantity` keeps the text as the quantity's string: its
/// int64 fast path, for a text whose shape it deems canonical already.
fn keeps_text(int_part: &str, frac_part: &str, base2: u32, exp10: i64) -> bool {
    let num = int_part.trim_start_matches('0');
    if num.is_empty() {
        return false; // Go's `shifted[0] != '0'` (or a zero binary value)
    }
    if base2 > 0 {
        // 1Mi (2^20) has ~6 digits of decimal precision.
        let precision = 15 - num.len() as i64 - i64::from(base2) * 3 / 10 - 1;
        let value = num.parse::<u64>().unwrap_or(0);
        return frac_part.is_empty() && precision >= 0 && value & 0x07 != 0;
    }
    let digits = num.len() + frac_part.len();
    let scale = exp10 - frac_part.len() as i64;
    let shifted = || num.bytes().chain(frac_part.bytes());
    digits <= MAX_INT64_FACTORS
        && scale >= -9
        && scale % 3 == 0
        && !(digits >= 3 && shifted().rev().take(3).all(|b| b == b'0'))
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    fn canon(s: &str) -> Option<String> {
        canonical(s).map(Cow::into_owned)
    }

    #[test]
    fn parses_and_compares() {
        assert_eq!(q("500m"), q("0.5"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("100m"), q("0.1"));
        assert!(q("129Mi") > q("128Mi"));
        assert!(q("1") > q("999m"));
        assert!(q("-1").is_negative());
        assert!(q("0.1n") > q("0"), "rounded up to a nano");
        assert_eq!(q("250m").milli_value(), 250);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("0.5").value(), 1, "rounded up");
        assert!(!q("1.5").is_integer() && q("2").is_integer());
        assert_eq!(q("1E"), q("1000P"));
        assert_eq!(q("99999999999999999999999Ei").nanos, MAX_NANOS);
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("5."), q("5"));
        assert_eq!(q(" 1Gi "), q("1Gi"), "trimmed, as UnmarshalJSON does");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "abc",
            "1.2.3",
            "12XB",
            "1Mb",
            "e3",
            "1e",
            "1e+",
            "--1",
            ".",
            "5Xi",
            "1.1.M",
            "1+1.0M",
            "0.1mi",
            "0.1am",
            "1i",
            "-3.01e-",
            "1ee3",
            "1e99999999999999999999",
        ] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError), "{bad}");
            assert_eq!(canonical(bad), None, "{bad}");
        }
        assert_eq!(QuantityError.to_string(), FORMAT_ERROR);
    }

    /// Values from apimachinery's `TestQuantityParse`.
    #[test]
    fn values_match_kubernetes() {
        let nanos = |s: &str| q(s).nanos;
        assert_eq!(nanos("3.001n"), 4);
        assert_eq!(nanos("1.1E-9"), 2);
        assert_eq!(nanos("0.0000000005"), 1);
        assert_eq!(nanos("0.00000012345"), 124);
        assert_eq!(nanos("-0.00000012345"), -124, "away from zero");
        assert_eq!(nanos("9Ei"), MAX_NANOS);
        assert_eq!(nanos("9223372036854775807Ki"), MAX_NANOS);
        assert_eq!(nanos("-9Ei"), -MAX_NANOS);
        assert_eq!(nanos("0.5Mi"), 512 * 1024 * NANOS_PER_UNIT);
        assert_eq!(nanos("100.035Ki"), 10243584 * NANOS_PER_UNIT / 100);
        assert_eq!(nanos("0.000000000001Ki"), 2, "2^10 applied before rounding");
        assert_eq!(q("0.000000000001Ki").format(), Format::DecimalSi);
        assert_eq!(nanos("1.G"), NANOS_PER_UNIT * NANOS_PER_UNIT);
        assert_eq!(nanos("1.3E+6"), 1_300_000 * NANOS_PER_UNIT);
        assert_eq!(nanos("0.5e-9"), 1);
        assert_eq!(nanos("1e-100"), 1);
        assert_eq!(nanos("0e100"), 0);
        // Decimal quantities are not capped.
        assert!(q("12E") > q("9Ei"));
        assert!(q("1e25") < q("2e25"));
        assert_eq!(q("1e30"), q("2e30"), "both saturate at 10^29 units");
        // Many digits past the nano still round correctly.
        assert_eq!(
            nanos("1234567890123456789012345678901234567890e-40"),
            123_456_790
        );
        assert_eq!(
            nanos("1.0000000000000000000000000000000000000001"),
            NANOS_PER_UNIT + 1
        );
        // Go keeps the exponent as an int32, wrapping: this is 1.
        assert_eq!(nanos("1e4294967296"), NANOS_PER_UNIT);
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1.5Gi", "1536Mi"),
            ("8Gi", "8Gi"),
            ("512", "512"),
            ("1000", "1k"),
            ("1000000", "1M"),
            ("1048576", "1048576"),
            ("100", "100"),
            ("1.5", "1500m"),
            ("0.5", "500m"),
            ("500m", "500m"),
            ("1000m", "1"),
            ("2000Mi", "2000Mi"),
            ("100M", "100M"),
            ("1200M", "1200M"),
            ("1e3", "1e3"),
            ("12e3", "12e3"),
            ("1000e3", "1e6"),
            ("0", "0"),
            ("0Mi", "0"),
            ("000", "0"),
            ("-1Gi", "-1Gi"),
            ("-1024Mi", "-1Gi"),
            ("0.1n", "1n"),
            ("3.001n", "4n"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("100.035Ki", "102435840m"),
            ("9Ei", "9223372036854775807"),
            ("100000000000000000000", "100E"),
            ("1000E", "1e21"),
            ("1e30", "1e30"),
            (" 2Gi", "2Gi"),
            // Go keeps a text its fast path deems canonical, as written.
            ("01", "01"),
            ("0500m", "0500m"),
            ("+3Mi", "+3Mi"),
            ("1E3", "1E3"),
            ("1.005k", "1.005k"),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input).as_deref(), Some(want), "{input}");
        }
        assert!(matches!(canonical("500m"), Some(Cow::Borrowed(_))));
        assert!(matches!(canonical("1Gi"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn sums_keep_the_first_format() {
        assert_eq!(add_quantities("64Mi", "64Mi").as_deref(), Some("128Mi"));
        assert_eq!(add_quantities("0", "100m").as_deref(), Some("100m"));
        assert_eq!(add_quantities("1", "1").as_deref(), Some("2"));
        assert_eq!(add_quantities("500m", "1").as_deref(), Some("1500m"));
        assert_eq!(add_quantities("512Mi", "512Mi").as_deref(), Some("1Gi"));
        assert_eq!(sub_quantities("1Gi", "512Mi").as_deref(), Some("512Mi"));
        assert_eq!(sub_quantities("1", "1500m").as_deref(), Some("-500m"));
        assert_eq!(add_quantities("x", "1"), None);
        assert_eq!(add_quantities("1e40", "1"), None, "saturated");
    }

    #[test]
    fn not_quantities_print_as_written() {
        assert_eq!(canonical_quantity("lots"), "lots");
        assert_eq!(quantity_string(Some(&json!("lots"))), "lots");
        assert_eq!(quantity_string(None), "0");
        assert_eq!(quantity_string(Some(&json!(2))), "2");
        assert_eq!(quantity_string(Some(&json!(0.25))), "250m");
        assert_eq!(quantity_string(Some(&json!(1048576))), "1048576");
        assert_eq!(quantity_string(Some(&json!("1024Mi"))), "1Gi");
    }
}
