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
//! The grammar is [`skiff_api::cron`], the one the API server validates with;
//! this module steps a parsed schedule through time.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};
use skiff_api::cron::{self, Fields, ParseError, STAR};

/// How far ahead a schedule is searched, in years, as robfig's `Next`.
const YEARS_AHEAD: i16 = 5;

/// A parsed schedule ([`skiff_api::cron`]), stepped through time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(cron::Schedule);

impl Schedule {
    /// Parses a standard schedule (`cron.ParseStandard`).
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        cron::Schedule::parse(spec).map(Schedule)
    }

    /// The first time strictly after `t` at which the schedule fires, on the
    /// wall clock of `tz`; `None` when there is none within five years (a
    /// schedule such as `0 0 30 2 *`).
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match &self.0 {
            cron::Schedule::Every(seconds) => {
                Timestamp::from_second(t.as_second().checked_add(*seconds)?).ok()
            }
            cron::Schedule::Fields(fields) => next_after(fields, t, tz),
        }
    }
}

fn next_after(fields: &Fields, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
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
        while !has(fields.month, z.month()) {
            z = midnight(z.date().first_of_month().checked_add(1.month()).ok()?, tz)?;
            if z.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(fields, &z) {
            z = midnight(z.date().tomorrow().ok()?, tz)?;
            if z.day() == 1 {
                continue 'wrap;
            }
        }
        while !has(fields.hour, z.hour()) {
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
        while !has(fields.minute, z.minute()) {
            z = z.checked_add(SignedDuration::from_mins(1)).ok()?;
            if z.minute() == 0 {
                continue 'wrap;
            }
        }
        return Some(z.timestamp());
    }
}

/// robfig's `dayMatches`: AND when either field is a star, else OR.
fn day_matches(fields: &Fields, z: &Zoned) -> bool {
    let dom = has(fields.dom, z.day());
    let dow = has(fields.dow, z.weekday().to_sunday_zero_offset());
    if fields.dom & STAR != 0 || fields.dow & STAR != 0 {
        dom && dow
    } else {
        dom || dow
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
