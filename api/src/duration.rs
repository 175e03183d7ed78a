//! Go's `time.Duration` as Kubernetes and its tools write it: parsed as
//! `time.ParseDuration` reads it (`1h30m`, `1.5h`, `250ms`, `-2s`, `0`) and
//! printed as `Duration.String()` does (`1m30s`, `1.6s`, `200ms`, `0s`). The
//! one copy for the CLI's flags, CronJob `@every` schedules, protobuf bodies
//! and the node's back-off messages.

/// Why text is not a Go duration (Go's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration {0:?}")]
pub struct InvalidDuration(pub String);

/// Units, longest first where one is a prefix of another.
const UNITS: [(&str, i128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration as Go's `time.ParseDuration`, in nanoseconds. As in
/// Go, a number needs a unit (but `0`), and more than about 292 years is an
/// error.
pub fn parse(text: &str) -> Result<i64, InvalidDuration> {
    let invalid = || InvalidDuration(text.to_string());
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = digits(rest);
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let frac_part = match rest.strip_prefix('.') {
            Some(after) => {
                let n = digits(after);
                rest = &after[n..];
                &after[..n]
            }
            None => "",
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let (unit, scale) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())
            .ok_or_else(invalid)?;
        rest = &rest[unit.len()..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else if int_part.len() > 20 {
            return Err(invalid());
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        // Digits past the 18th cannot change a whole nanosecond of an hour.
        let frac = &frac_part[..frac_part.len().min(18)];
        let fraction: i128 = if frac.is_empty() {
            0
        } else {
            let value: i128 = frac.parse().map_err(|_| invalid())?;
            value * scale / 10i128.pow(frac.len() as u32)
        };
        total = whole
            .checked_mul(*scale)
            .and_then(|w| w.checked_add(fraction))
            .and_then(|v| total.checked_add(v))
            .filter(|t| *t <= i128::from(i64::MAX))
            .ok_or_else(invalid)?;
    }
    let total = i64::try_from(total).map_err(|_| invalid())?;
    Ok(if negative { -total } else { total })
}

/// A duration as Go's `Duration.String()` prints it: `0s`, `1.5µs`,
/// `300ms`, `1m30s`, `2h0m0s`.
pub fn format(nanos: i64) -> String {
    fn frac(v: u64, digits: u32) -> String {
        let s = format!("{:0width$}", v, width = digits as usize);
        let s = s.trim_end_matches('0');
        if s.is_empty() {
            String::new()
        } else {
            format!(".{s}")
        }
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (unit, digits) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let scale = 10u64.pow(digits);
        return format!("{sign}{}{}{unit}", u / scale, frac(u % scale, digits));
    }
    let secs = u / 1_000_000_000;
    let fraction = frac(u % 1_000_000_000, 9);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}{fraction}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}{fraction}s")
    } else {
        format!("{sign}{s}{fraction}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_as_go_does() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("24h"), Ok(86_400 * S));
        assert_eq!(parse("1h30m"), Ok(5_400 * S));
        assert_eq!(parse("1.5h"), Ok(5_400 * S));
        assert_eq!(parse(".5s"), Ok(S / 2));
        assert_eq!(parse("250ms"), Ok(250_000_000));
        assert_eq!(parse("1µs"), Ok(1_000));
        assert_eq!(parse("-2s"), Ok(-2 * S));
        assert_eq!(parse("+2s"), Ok(2 * S));
        assert_eq!(parse("2562047h"), Ok(2_562_047 * 3_600 * S));
        for bad in [
            "",
            "10",
            "h",
            "5x",
            ".s",
            "1h-3m",
            "3000000h",
            "99999999999999999999999s",
        ] {
            assert_eq!(parse(bad), Err(InvalidDuration(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn prints_as_go_does() {
        for (nanos, text) in [
            (0, "0s"),
            (1_500, "1.5µs"),
            (200_000_000, "200ms"),
            (1_600_000_000, "1.6s"),
            (20 * S, "20s"),
            (160 * S, "2m40s"),
            (300 * S, "5m0s"),
            (3_725 * S, "1h2m5s"),
            (-90 * S, "-1m30s"),
        ] {
            assert_eq!(format(nanos), text);
            assert_eq!(parse(text), Ok(nanos), "{text} reads back");
        }
    }
}
