//! CronJob schedules: `robfig/cron` v3's standard grammar (the library
//! Kubernetes' CronJob controller uses), with its error messages. The one
//! parser: the API server validates with it and the CronJob controller
//! steps the parsed fields (`control/src/controllers/workload/cron_job/schedule.rs`).
//!
//! Five fields (minute, hour, day of month, month, day of week) with `*`,
//! `?`, lists, ranges, steps and English month and day names, or a
//! descriptor: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//! (`@midnight`), `@hourly`, `@every <Go duration>`.

/// Set in a field's bits when it starts with `*` or `?` (with no step above 1):
/// day of month and day of week are AND'ed when either has it, else OR'ed.
pub const STAR: u64 = 1 << 63;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fields(Fields),
    /// `@every`: a fixed delay, in whole seconds.
    Every(i64),
}

/// One bit per allowed value, plus [`STAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub minute: u64,
    pub hour: u64,
    pub dom: u64,
    pub month: u64,
    pub dow: u64,
}

/// Why a schedule does not parse (robfig's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl Schedule {
    /// Parses a standard schedule (`cron.ParseStandard`).
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ParseError("empty spec string".into()));
        }
        if let Some(d) = spec.strip_prefix('@') {
            return descriptor(d, spec);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(ParseError(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        };
        Ok(Schedule::Fields(Fields {
            minute: parse_field(minute, &MINUTES)?,
            hour: parse_field(hour, &HOURS)?,
            dom: parse_field(dom, &DAYS_OF_MONTH)?,
            month: parse_field(month, &MONTHS)?,
            dow: parse_field(dow, &DAYS_OF_WEEK)?,
        }))
    }
}

/// The values one field of a schedule takes, and the names it accepts for them
/// .
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    pub names: &'static [(&'static str, u32)],
}

pub const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
pub const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
pub const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
pub const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
pub const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Checks a standard 5-field schedule (or a `@descriptor`); the error is
fn descriptor(descriptor: &str, spec: &str) -> Result<Schedule, ParseError> {
    let standard = match descriptor {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        d => {
            let Some(duration) = d.strip_prefix("every ") else {
                return Err(ParseError(format!("unrecognized descriptor: {spec}")));
            };
            let duration = duration.trim();
            let nanos = crate::duration::parse(duration)
                .map_err(|e| ParseError(format!("failed to parse duration {spec}: {e}")))?;
            // robfig's `Every`: at least a second, truncated to whole seconds
            // (a negative duration counts as zero).
            return Ok(Schedule::Every((nanos / 1_000_000_000).max(1)));
        }
    };
    Schedule::parse(standard)
}

/// One comma-separated field, as bits.
fn parse_field(field: &str, bounds: &Bounds) -> Result<u64, ParseError> {
    field
        .split(',')
        .try_fold(0, |bits, expr| Ok(bits | parse_range(expr, bounds)?))
}

/// robfig's `getRange`: `*`, `?`, `N`, `N-M`, each optionally `/step`.
fn parse_range(expr: &str, bounds: &Bounds) -> Result<u64, ParseError> {
    let err = |m: String| ParseError(m);
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        extra = STAR;
        (bounds.min, bounds.max)
    } else {
        let start = parse_int_or_name(expr, low_and_high[0], bounds)?;
        match low_and_high[..] {
            [_] => (start, start),
            [_, high] => (start, parse_int_or_name(expr, high, bounds)?),
            _ => return Err(err(format!("too many hyphens: {expr}"))),
        }
    };
    let step = match range_and_step[..] {
        [_] => 1,
        [_, step] => {
            let step = parse_int(expr, step)?;
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(err(format!("too many slashes: {expr}"))),
    };
    if start < bounds.min {
        return Err(err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        )));
    }
    if end > bounds.max {
        return Err(err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        )));
    }
    if start > end {
        return Err(err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(err(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    let mut bits = extra;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn parse_int_or_name(expr: &str, part: &str, bounds: &Bounds) -> Result<u32, ParseError> {
    let lower = part.to_lowercase();
    match bounds.names.iter().find(|(name, _)| *name == lower) {
        Some((_, n)) => Ok(*n),
        None => parse_int(expr, part),
    }
}

fn parse_int(expr: &str, part: &str) -> Result<u32, ParseError> {
    match part.parse::<i64>() {
        Ok(n) if n < 0 => Err(ParseError(format!(
            "negative number ({n}) not allowed: {expr}"
        ))),
        Ok(n) => u32::try_from(n).map_err(|_| {
            ParseError(format!(
                "failed to parse int from {part}: strconv.Atoi: parsing {part:?}: value out of range"
            ))
        }),
        Err(_) => Err(ParseError(format!(
            "failed to parse int from {part}: strconv.Atoi: parsing {part:?}: invalid syntax"
        ))),
    }
}
