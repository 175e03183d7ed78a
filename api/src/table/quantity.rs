//! Resource quantities in canonical form, as Kubernetes' `resource.Quantity`
//! prints them (`1024Mi` is `1Gi`, `1000` is `1k`, `0.5` is `500m`).
//!
//! Kubernetes decodes every quantity it stores, so a table shows the canonical
//! form whatever the manifest said. Values are held in nano-units (the finest
//! precision a quantity keeps, rounded up as Kubernetes does); a quantity that
//! does not parse, or is too large for that, prints as written.

use serde_json::Value;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Which family of suffix a quantity was written with; canonical output keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `Ki`, `Mi`, ... `Ei`.
    BinarySi,
    /// `n`, `u`, `m`, none, `k`, `M`, ... `E`.
    DecimalSi,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// `Quantity.String()` of the quantity `value` (a JSON string or number); `"0"`
/// for a missing one, as a zero `Quantity` prints.
pub(super) fn quantity_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "0".to_string(),
        Some(Value::String(s)) => canonical(s).unwrap_or_else(|| s.clone()),
        Some(Value::Number(n)) => {
            let s = n.to_string();
            canonical(&s).unwrap_or(s)
        }
        Some(other) => other.to_string(),
    }
}

/// Like [`quantity_string`], but `<nil>` for a missing quantity: what Go prints
/// for a nil `*Quantity`.
pub(super) fn quantity_ptr_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "<nil>".to_string(),
        some => quantity_string(some),
    }
}

/// `Quantity.String()` of the quantity written `s`: its canonical form, or `s`
/// as written when it does not parse.
pub fn canonical_quantity(s: &str) -> String {
    canonical(s).unwrap_or_else(|| s.to_string())
}

/// `a + b` in canonical form, as Kubernetes' `Quantity.Add` computes it: the
/// sum keeps `a`'s format (`b`'s when `a` is zero). `None` if either is not a
/// quantity or the sum overflows.
pub fn add_quantities(a: &str, b: &str) -> Option<String> {
    let (x, x_format) = parse(a)?;
    let (y, y_format) = parse(b)?;
    let format = if x == 0 { y_format } else { x_format };
    Some(render(x.checked_add(y)?, format))
}

/// `a - b` in canonical form, as `Quantity.Sub` computes it (`a`'s format,
/// `b`'s when `a` is zero). `None` if either is not a quantity or the
/// difference overflows.
pub fn sub_quantities(a: &str, b: &str) -> Option<String> {
    let (x, x_format) = parse(a)?;
    let (y, y_format) = parse(b)?;
    let format = if x == 0 { y_format } else { x_format };
    Some(render(x.checked_sub(y)?, format))
}

/// The canonical form of `s`, or `None` if it is not a quantity.
fn canonical(s: &str) -> Option<String> {
    let (nanos, format) = parse(s)?;
    Some(render(nanos, format))
}

/// Parses a quantity into nano-units and the format of its suffix.
fn parse(s: &str) -> Option<(i128, Format)> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let (base2_exponent, base10_exponent, format) = interpret_suffix(suffix)?;

    // Digits as one integer; its decimal point sits `fraction.len()` from the end.
    let mut mantissa: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    mantissa = mantissa.checked_mul(1i128.checked_shl(base2_exponent)?)?;
    let fraction_digits = i32::try_from(fraction.len()).ok()?;
    let shift = base10_exponent + 9 - fraction_digits;
    let mut nanos = if shift >= 0 {
        mantissa.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        // Finer than a nano: round up, as Kubernetes does, so that asking for
        // a little of something never reads as none of it.
        let divisor = 10i128.checked_pow(u32::try_from(-shift).ok()?);
        match divisor {
            Some(d) => mantissa / d + i128::from(mantissa % d != 0),
            None => i128::from(mantissa != 0),
        }
    };
    if negative {
        nanos = -nanos;
    }
    Some((nanos, format))
}

/// `(power of two, power of ten, format)` of a suffix.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = |exp| Some((0, exp, Format::DecimalSi));
    let binary = |exp| Some((exp, 0, Format::BinarySi));
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
            let digits = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let exp: i32 = digits.parse().ok()?;
            // Far outside what a quantity can hold; leave it as written.
            if !(-30..=30).contains(&exp) {
                return None;
            }
            Some((0, exp, Format::DecimalExponent))
        }
    }
}

/// `Quantity.CanonicalizeBytes`: the largest suffix that keeps the number whole.
fn render(nanos: i128, format: Format) -> String {
    if nanos == 0 {
        return "0".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let nanos_per_unit = NANOS_PER_UNIT.unsigned_abs();
    let format = match format {
        // Below 1Ki, or not a whole number: binary would round, so decimal.
        Format::BinarySi if abs < 1024 * nanos_per_unit || !abs.is_multiple_of(nanos_per_unit) => {
            Format::DecimalSi
        }
        other => other,
    };
    if format == Format::BinarySi {
        const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        let mut number = abs / nanos_per_unit;
        let mut power = 0;
        while number.is_multiple_of(1024) && power < SUFFIXES.len() - 1 {
            number /= 1024;
            power += 1;
        }
        return format!("{sign}{number}{}", SUFFIXES[power]);
    }
    let mut number = abs;
    let mut exponent: i32 = -9;
    while number.is_multiple_of(1000) && (format == Format::DecimalExponent || exponent < 18) {
        number /= 1000;
        exponent += 3;
    }
    let suffix = match (format, exponent) {
        (Format::DecimalExponent, 0) => String::new(),
        (Format::DecimalExponent, e) => format!("e{e}"),
        (_, e) => match e {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        }
        .to_string(),
    };
    format!("{sign}{number}{suffix}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sums_keep_the_first_format() {
        assert_eq!(add_quantities("64Mi", "64Mi").as_deref(), Some("128Mi"));
        assert_eq!(add_quantities("0", "100m").as_deref(), Some("100m"));
        assert_eq!(add_quantities("1", "1").as_deref(), Some("2"));
        assert_eq!(add_quantities("500m", "1").as_deref(), Some("1500m"));
        assert_eq!(add_quantities("x", "1"), None);
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("8Gi", "8Gi"),
            ("512", "512"),
            ("1000", "1k"),
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
            ("0", "0"),
            ("0Mi", "0"),
            ("01", "1"),
            ("-1Gi", "-1Gi"),
            ("0.1n", "1n"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn not_quantities_print_as_written() {
        for input in ["", "abc", "1.2.3", "5Xi", "."] {
            assert_eq!(canonical(input), None, "{input:?}");
        }
        assert_eq!(quantity_string(Some(&json!("lots"))), "lots");
        assert_eq!(quantity_string(None), "0");
        assert_eq!(quantity_ptr_string(None), "<nil>");
        assert_eq!(quantity_string(Some(&json!(2))), "2");
        assert_eq!(quantity_string(Some(&json!(0.25))), "250m");
    }
}
