//! Kubernetes resource quantities (`500m`, `128Mi`, `1e3`), parsed exactly enough
//! to check their form and compare them.

use std::cmp::Ordering;

/// Kubernetes' message for a malformed quantity.
pub(crate) const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity, held in nano-units (10^-9), rounded up as Kubernetes rounds
/// precision finer than that, and capped at Kubernetes' maximum (2^63-1 units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;

impl Quantity {
    /// Parses `s`, or says why it is not a quantity.
    pub fn parse(s: &str) -> Result<Quantity, &'static str> {
        let s = s.trim();
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err(FORMAT_ERROR);
        }
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            s if s.starts_with(['e', 'E']) => {
                let exp = &s[1..];
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FORMAT_ERROR);
                }
                (exp.parse::<i32>().map_err(|_| FORMAT_ERROR)?, 0)
            }
            _ => return Err(FORMAT_ERROR),
        };
        // Significant digits as an integer, scaled by 10^(exp10 + 9 - fraction digits).
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let scale = exp10 + 9 - frac_part.len() as i32;
        let nanos = if digits.is_empty() {
            0
        } else if digits.len() > 38 || scale > 38 {
            MAX_NANOS
        } else {
            let mantissa: i128 = digits.parse().map_err(|_| FORMAT_ERROR)?;
            let scaled = if scale >= 0 {
                10i128
                    .checked_pow(scale as u32)
                    .and_then(|p| mantissa.checked_mul(p))
            } else if -scale > 38 {
                Some(1) // rounds up to the smallest unit
            } else {
                let p = 10i128.pow((-scale) as u32);
                Some((mantissa + p - 1) / p)
            };
            scaled
                .and_then(|v| v.checked_mul(1i128 << exp2))
                .unwrap_or(MAX_NANOS)
                .min(MAX_NANOS)
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
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
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
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
        assert_eq!(
            q("99999999999999999999999Ei"),
            Quantity { nanos: MAX_NANOS }
        );
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("5."), q("5"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "abc", "1.2.3", "12XB", "1Mb", "e3", "1e", "1e+", "--1", ".",
        ] {
            assert_eq!(Quantity::parse(bad), Err(FORMAT_ERROR), "{bad}");
        }
    }
}
