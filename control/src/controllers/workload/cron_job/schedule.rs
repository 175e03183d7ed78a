//! CronJob schedules, parsed and stepped exactly as `robfig/cron` v3's standard
//! parser (the library Kubernetes' CronJob controller uses), so that a schedule
//! fires here when it would fire on Kubernetes:
//!
//! - five fields (minute, hour, day of month, month, day of week) with `*`, `?`,
//!   lists, ranges, steps and English month and day names, or a descriptor:
//!   `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`),
//!   `@hourly`, `@every <Go duration>`;
//! - day of month and day of week are OR'ed when both are restricted and AND'ed
//!   when either starts with `*` or `?` (Vixie cron's rule; like robfig, a step
//!   over `*` such as `*/2` counts as restricted);
//! - times are matched on the wall clock of the schedule's time zone while time
//!   moves forward in real time: a wall-clock time skipped by a DST change does
//!   not fire that day, and one repeated by a DST change fires at both
//!   occurrences.
//!
//! The API server validates schedules with its own copy of this grammar (for
//! robfig's error messages); the two agree on what is valid.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};
use skiff_api::validate::cron::{Bounds, DAYS_OF_MONTH, DAYS_OF_WEEK, HOURS, MINUTES, MONTHS};

/// Set when a field starts with `*` or `?` (with no step above 1).
const STAR: u64 = 1 << 63;
/// How far ahead a schedule is searched, in years, as robfig's `Next`.
const YEARS_AHEAD: i16 = 5;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
}

/// Why a schedule does not parse (robfig's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields(Fields),
    /// `@every`: a fixed delay, in whole seconds.
    Every(i64),
}

/// One bit per allowed value, plus [`STAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

impl Schedule {
    /// Parses a standard schedule (`cron.ParseStandard`).
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ParseError("empty spec string".into()));
        }
        if let Some(descriptor) = spec.strip_prefix('@') {
            return descriptor_schedule(descriptor, spec);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(ParseError(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        };
        Ok(Schedule {
            kind: Kind::Fields(Fields {
                minute: parse_field(minute, &MINUTES)?,
                hour: parse_field(hour, &HOURS)?,
                dom: parse_field(dom, &DAYS_OF_MONTH)?,
                month: parse_field(month, &MONTHS)?,
                dow: parse_field(dow, &DAYS_OF_WEEK)?,
            }),
        })
    }

    /// The first time strictly after `t` at which the schedule fires, on the
    /// wall clock of `tz`; `None` when there is none within five years (a
    /// schedule such as `0 0 30 2 *`).
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(seconds) => {
                Timestamp::from_second(t.as_second().checked_add(*seconds)?).ok()
            }
            Kind::Fields(fields) => fields.next_after(t, tz),
        }
    }
}

impl Fields {
    fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // The next whole minute: the seconds field of a standard schedule is 0.
        let second = t.as_second();
        let start = Timestamp::from_second(second - second.rem_euclid(60) + 60).ok()?;
        let mut z = start.to_zoned(tz.clone());
        let year_limit = z.year().saturating_add(YEARS_AHEAD);
        // Each loop moves its field on and starts the smaller ones again from
        // their lowest value; a wrap into the next larger unit checks again from the top.
        'wrap: loop {
            if z.year() > year_limit {
                return None;
            }
            while !has(self.month, z.month()) {
                z = midnight(z.date().first_of_month().checked_add(1.month()).ok()?, tz)?;
                if z.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&z) {
                z = midnight(z.date().tomorrow().ok()?, tz)?;
                if z.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(self.hour, z.hour()) {
                // Real hours, not wall-clock ones: across a DST change the wall
                // clock skips or repeats an hour, as robfig's `t.Add(time.Hour)`.
                let top_of_hour = z
                    .checked_sub(SignedDuration::from_mins(i64::from(z.minute())))
                    .ok()?;
                z = top_of_hour
                    .checked_add(SignedDuration::from_hours(1))
                    .ok()?;
                if z.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(self.minute, z.minute()) {
                z = z.checked_add(SignedDuration::from_mins(1)).ok()?;
                if z.minute() == 0 {
                    continue 'wrap;
                }
            }
            return Some(z.timestamp());
        }
    }

    /// robfig's `dayMatches`: AND when either field is a star, else OR.
    fn day_matches(&self, z: &Zoned) -> bool {
        let dom = has(self.dom, z.day());
        let dow = has(self.dow, z.weekday().to_sunday_zero_offset());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn has(bits: u64, value: i8) -> bool {
    u32::try_from(value).is_ok_and(|v| v < 63 && bits & (1 << v) != 0)
}

/// The start of `date` in `tz`: midnight, or the first moment after a gap
/// that swallowed it.
fn midnight(date: Date, tz: &TimeZone) -> Option<Zoned> {
    date.to_datetime(Time::midnight()).to_zoned(tz.clone()).ok()
}

fn descriptor_schedule(descriptor: &str, spec: &str) -> Result<Schedule, ParseError> {
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
            let nanos = go_duration_nanos(duration).ok_or_else(|| {
                ParseError(format!(
                    "failed to parse duration {spec}: time: invalid duration \"{duration}\""
                ))
            })?;
            // robfig's `Every`: at least a second, truncated to whole seconds.
            let seconds = (nanos / 1_000_000_000).max(1);
            return Ok(Schedule {
                kind: Kind::Every(i64::try_from(seconds).unwrap_or(i64::MAX)),
            });
        }
    };
    Schedule::parse(standard)
}

/// Go's `time.ParseDuration` (`1h30m`, `90s`, `1.5h`), in nanoseconds; a
/// negative duration counts as zero (robfig then uses one second).
fn go_duration_nanos(s: &str) -> Option<u128> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number: f64 = rest[..len].parse().ok()?;
        rest = &rest[len..];
        let (unit, nanos) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("μs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ]
        .into_iter()
        .filter(|(u, _)| rest.starts_with(u))
        .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        total += number * nanos;
    }
    Some(if negative { 0 } else { total as u128 })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// The next `n` firing times after `from`, as RFC 3339 with offsets in `zone`.
    fn next_n(spec: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let schedule = Schedule::parse(spec).unwrap();
        let zone = tz(zone);
        let mut t = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = schedule.next_after(t, &zone).unwrap();
            out.push(t.to_zoned(zone.clone()).strftime("%FT%T%:z").to_string());
        }
        out
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next_n("*/1 * * * *", "UTC", "2024-05-01T10:00:00Z", 2),
            ["2024-05-01T10:01:00+00:00", "2024-05-01T10:02:00+00:00"]
        );
        // Strictly after, also from the middle of a minute.
        assert_eq!(
            next_n("* * * * *", "UTC", "2024-05-01T10:00:59.5Z", 1),
            ["2024-05-01T10:01:00+00:00"]
        );
        assert_eq!(
            next_n("*/15 9-10 * * *", "UTC", "2024-05-01T10:40:00Z", 3),
            [
                "2024-05-01T10:45:00+00:00",
                "2024-05-02T09:00:00+00:00",
                "2024-05-02T09:15:00+00:00"
            ]
        );
        assert_eq!(
            next_n("5/20 * * * *", "UTC", "2024-05-01T10:00:00Z", 3),
            [
                "2024-05-01T10:05:00+00:00",
                "2024-05-01T10:25:00+00:00",
                "2024-05-01T10:45:00+00:00"
            ]
        );
    }

    #[test]
    fn names_lists_and_descriptors() {
        // 2024-05-01 is a Wednesday.
        assert_eq!(
            next_n("0 9 * jan-jun MON,fri", "UTC", "2024-05-01T00:00:00Z", 2),
            ["2024-05-03T09:00:00+00:00", "2024-05-06T09:00:00+00:00"]
        );
        assert_eq!(
            next_n("@hourly", "UTC", "2024-05-01T10:30:00Z", 1),
            ["2024-05-01T11:00:00+00:00"]
        );
        assert_eq!(
            next_n("@daily", "UTC", "2024-05-01T10:30:00Z", 1),
            ["2024-05-02T00:00:00+00:00"]
        );
        assert_eq!(
            next_n("@weekly", "UTC", "2024-05-01T10:30:00Z", 1),
            ["2024-05-05T00:00:00+00:00"]
        );
        assert_eq!(
            next_n("@monthly", "UTC", "2024-05-01T10:30:00Z", 1),
            ["2024-06-01T00:00:00+00:00"]
        );
        assert_eq!(
            next_n("@yearly", "UTC", "2024-05-01T10:30:00Z", 1),
            ["2025-01-01T00:00:00+00:00"]
        );
        assert_eq!(
            next_n("@every 1h30m", "UTC", "2024-05-01T10:30:00.7Z", 2),
            ["2024-05-01T12:00:00+00:00", "2024-05-01T13:30:00+00:00"]
        );
        assert_eq!(
            Schedule::parse("@every 10ms")
                .unwrap()
                .next_after(ts("2024-05-01T10:00:00Z"), &TimeZone::UTC),
            Some(ts("2024-05-01T10:00:01Z")),
            "at least a second"
        );
    }

    #[test]
    fn day_of_month_and_week_are_ored_when_both_restricted() {
        // The 13th, or any Friday: 2024-09-06 is a Friday, the 13th a Friday too.
        assert_eq!(
            next_n("0 0 13 * 5", "UTC", "2024-09-01T00:00:00Z", 3),
            [
                "2024-09-06T00:00:00+00:00",
                "2024-09-13T00:00:00+00:00",
                "2024-09-20T00:00:00+00:00"
            ]
        );
        // A star in either one: AND (which, with a star, is the other field).
        assert_eq!(
            next_n("0 0 13 * *", "UTC", "2024-09-01T00:00:00Z", 1),
            ["2024-09-13T00:00:00+00:00"]
        );
        assert_eq!(
            next_n("0 0 ? * 1", "UTC", "2024-09-01T00:00:00Z", 1),
            ["2024-09-02T00:00:00+00:00"]
        );
        // Leap days are found years ahead; an impossible date never.
        assert_eq!(
            next_n("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00+00:00"]
        );
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next_after(ts("2024-03-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn time_zones_move_the_wall_clock() {
        assert_eq!(
            next_n("0 3 * * *", "Europe/Berlin", "2024-05-01T00:00:00Z", 1),
            ["2024-05-01T03:00:00+02:00"]
        );
        assert_eq!(
            next_n("0 3 * * *", "Asia/Kolkata", "2024-05-01T00:00:00Z", 1),
            ["2024-05-02T03:00:00+05:30"]
        );
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // New York, 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 never happens that day.
        assert_eq!(
            next_n("30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", 2),
            ["2024-03-11T02:30:00-04:00", "2024-03-12T02:30:00-04:00"]
        );
        // Hourly: 01:00 EST, then 03:00 EDT one real hour later.
        assert_eq!(
            next_n("0 * * * *", "America/New_York", "2024-03-10T05:30:00Z", 2),
            ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"]
        );
        // Santiago, 2022-09-11: midnight itself is skipped (00:00 -> 01:00), so
        // a midnight job does not run that day, and the day starts at 01:00.
        assert_eq!(
            next_n("0 0 * * *", "America/Santiago", "2022-09-11T03:30:00Z", 1),
            ["2022-09-12T00:00:00-03:00"]
        );
        assert_eq!(
            next_n("0 1 11 9 *", "America/Santiago", "2022-09-01T00:00:00Z", 1),
            ["2022-09-11T01:00:00-03:00"]
        );
    }

    #[test]
    fn fall_back_fires_at_both_occurrences_of_the_repeated_hour() {
        // New York, 2024-11-03: 02:00 EDT falls back to 01:00 EST.
        assert_eq!(
            next_n("30 1 * * *", "America/New_York", "2024-11-03T04:00:00Z", 3),
            [
                "2024-11-03T01:30:00-04:00",
                "2024-11-03T01:30:00-05:00",
                "2024-11-04T01:30:00-05:00"
            ]
        );
        // Every 20 minutes keeps a real 20-minute rhythm through the fold.
        assert_eq!(
            next_n(
                "*/20 * * * *",
                "America/New_York",
                "2024-11-03T05:30:00Z",
                4
            ),
            [
                "2024-11-03T01:40:00-04:00",
                "2024-11-03T01:00:00-05:00",
                "2024-11-03T01:20:00-05:00",
                "2024-11-03T01:40:00-05:00"
            ]
        );
    }

    #[test]
    fn refuses_like_robfig_cron() {
        let err = |s: &str| Schedule::parse(s).unwrap_err().to_string();
        assert_eq!(
            err("* * * *"),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            err("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            err("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(err("@often"), "unrecognized descriptor: @often");
        assert!(Schedule::parse("@every soon").is_err());
        assert!(Schedule::parse("1-2-3 * * * *").is_err());
        assert!(Schedule::parse("").is_err());
    }
}
