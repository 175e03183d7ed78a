//! Which scheduled time a CronJob owes a Job for, and when to look again: a port
//! of Kubernetes' `mostRecentScheduleTime`, `nextScheduleTime` and
//! `nextScheduleTimeDuration` (`pkg/controller/cronjob/utils.go`).
//!
//! Only the most recent missed time is run (never a backlog), and the number of
//! missed times is estimated from the schedule's period rather than counted, so
//! that a clock that jumped by years costs no more than a normal look.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::CronJob;

use super::schedule::Schedule;

/// More missed times than this and Kubernetes warns with `TooManyMissedTimes`.
const MANY_MISSED: i64 = 100;
/// Kubernetes' `nextScheduleDelta`: look a little after the time, not before it.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// How many scheduled times went by without a Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// What the CronJob's history and the clock say about its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The time from which scheduled times count (creation, the last
    /// scheduled time, or now minus the starting deadline).
    pub earliest: Timestamp,
    /// The most recent scheduled time at or before now, after `earliest`.
    pub most_recent: Option<Timestamp>,
    pub missed: Missed,
}

/// A schedule whose next two times are less than a second apart (robfig
/// parses `59 23 31 2 *`, which never fires, into one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("time difference between two schedules is less than 1 second")]
pub struct TooFrequent;

/// What a CronJob's spec and status say about its times.
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub created: Timestamp,
    pub last_schedule: Option<Timestamp>,
    pub starting_deadline_seconds: Option<i64>,
}

impl History {
    /// A CronJob's history as stored: its creation (`now` if not yet set),
    /// `status.lastScheduleTime` and `spec.startingDeadlineSeconds`.
    pub fn of(cj: &CronJob, now: Timestamp) -> History {
        History {
            created: cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
            last_schedule: cj
                .status
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .map(|t| t.0),
            starting_deadline_seconds: cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds),
        }
    }
}

/// `mostRecentScheduleTime`.
pub fn most_recent(
    schedule: &Schedule,
    tz: &TimeZone,
    history: &History,
    now: Timestamp,
    include_starting_deadline: bool,
) -> Result<Due, TooFrequent> {
    let mut earliest = history.last_schedule.unwrap_or(history.created);
    if include_starting_deadline && let Some(seconds) = history.starting_deadline_seconds {
        // Before the beginning of time, the deadline does not narrow anything.
        if let Ok(deadline) = now.checked_sub(jiff::SignedDuration::from_secs(seconds))
            && deadline > earliest
        {
            earliest = deadline;
        }
    }
    let none = Due {
        earliest,
        most_recent: None,
        missed: Missed::None,
    };
    let Some(t1) = schedule.next_after(earliest, tz) else {
        return Ok(none);
    };
    if now < t1 {
        return Ok(none);
    }
    let Some(t2) = schedule.next_after(t1, tz).filter(|t2| now >= *t2) else {
        return Ok(Due {
            most_recent: Some(t1),
            ..none
        });
    };
    let period = t2
        .duration_since(t1)
        .round(jiff::Unit::Second)
        .map_or(0, |d| d.as_secs());
    if period < 1 {
        return Err(TooFrequent);
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / period + 1;
    // One period further back than the estimate, so that an irregular schedule
    // (`30 6-16/4 * * 1-5`) is stepped by the schedule itself over the last stretch.
    let back = (missed_count - 2).saturating_mul(period);
    let mut t = t1
        .checked_add(jiff::SignedDuration::from_secs(back))
        .ok()
        .and_then(|start| schedule.next_after(start, tz));
    let mut most_recent = None;
    while let Some(time) = t.filter(|time| *time <= now) {
        most_recent = Some(time);
        t = schedule.next_after(time, tz);
    }
    let missed = if missed_count > MANY_MISSED {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok(Due {
        earliest,
        most_recent,
        missed,
    })
}

/// How long until the controller should look again (`nextScheduleTimeDuration`);
/// `None` when the schedule never fires again.
pub fn requeue_after(
    schedule: &Schedule,
    tz: &TimeZone,
    history: &History,
    now: Timestamp,
) -> Option<Duration> {
    let from = match most_recent(schedule, tz, history, now, false) {
        Err(TooFrequent) => now,
        Ok(Due {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(Due {
            missed: Missed::None,
            earliest,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    let next = schedule.next_after(from, tz)?;
    let wait = next.duration_since(now).unsigned_abs();
    let wait = if next < now { Duration::ZERO } else { wait };
    Some(wait + NEXT_SCHEDULE_DELTA)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// The history of a CronJob created at `created`, last run at `last`.
    fn history(created: &str, last: Option<&str>, deadline: Option<i64>) -> History {
        let mut spec = json!({"schedule": "*/1 * * * *", "jobTemplate": {}});
        if let Some(deadline) = deadline {
            spec["startingDeadlineSeconds"] = json!(deadline);
        }
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "default", "creationTimestamp": created},
            "spec": spec,
            "status": {"lastScheduleTime": last},
        }))
        .unwrap();
        History::of(&cj, ts("2000-01-01T00:00:00Z"))
    }

    fn due(spec: &str, h: &History, now: &str) -> Due {
        most_recent(
            &Schedule::parse(spec).unwrap(),
            &TimeZone::UTC,
            h,
            ts(now),
            true,
        )
        .unwrap()
    }

    #[test]
    fn the_history_is_read_from_the_cron_job() {
        let h = history(
            "2024-05-01T10:00:30Z",
            Some("2024-05-01T10:05:00Z"),
            Some(60),
        );
        assert_eq!(h.created, ts("2024-05-01T10:00:30Z"));
        assert_eq!(h.last_schedule, Some(ts("2024-05-01T10:05:00Z")));
        assert_eq!(h.starting_deadline_seconds, Some(60));
        // Never run, no deadline, not yet stored: created counts as now.
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "c"},
            "spec": {"schedule": "@hourly", "jobTemplate": {}},
        }))
        .unwrap();
        let now = ts("2024-05-01T11:00:00Z");
        let h = History::of(&cj, now);
        assert_eq!(h.created, now);
        assert_eq!((h.last_schedule, h.starting_deadline_seconds), (None, None));
    }

    #[test]
    fn nothing_is_due_before_the_first_time() {
        let h = history("2024-05-01T10:00:30Z", None, None);
        let d = due("*/1 * * * *", &h, "2024-05-01T10:00:59Z");
        assert_eq!((d.most_recent, d.missed), (None, Missed::None));
        let wait = requeue_after(
            &Schedule::parse("*/1 * * * *").unwrap(),
            &TimeZone::UTC,
            &h,
            ts("2024-05-01T10:00:59Z"),
        );
        assert_eq!(wait, Some(Duration::from_millis(1100)));
    }

    #[test]
    fn the_time_just_passed_is_due_once() {
        let h = history("2024-05-01T10:00:30Z", None, None);
        let d = due("*/1 * * * *", &h, "2024-05-01T10:01:00.5Z");
        assert_eq!(d.most_recent, Some(ts("2024-05-01T10:01:00Z")));
        assert_eq!(d.missed, Missed::None);
        // Once run (lastScheduleTime), the next is a minute on.
        let h = history("2024-05-01T10:00:30Z", Some("2024-05-01T10:01:00Z"), None);
        let d = due("*/1 * * * *", &h, "2024-05-01T10:01:00.5Z");
        assert_eq!(d.most_recent, None);
    }

    #[test]
    fn only_the_most_recent_missed_time_runs() {
        let h = history("2024-05-01T10:00:00Z", Some("2024-05-01T10:00:00Z"), None);
        let d = due("*/5 * * * *", &h, "2024-05-01T10:31:00Z");
        assert_eq!(d.most_recent, Some(ts("2024-05-01T10:30:00Z")));
        assert_eq!(d.missed, Missed::Few);
        // An irregular schedule is stepped by the schedule, not the estimate.
        let d = due("30 6-16/4 * * 1-5", &h, "2024-05-03T12:00:00Z");
        assert_eq!(d.most_recent, Some(ts("2024-05-03T10:30:00Z")));
    }

    #[test]
    fn more_than_a_hundred_missed_times_are_many() {
        let h = history("2024-05-01T00:00:00Z", None, None);
        let d = due("*/1 * * * *", &h, "2024-05-01T01:40:30Z");
        assert_eq!(d.missed, Missed::Few, "100 missed");
        let d = due("*/1 * * * *", &h, "2024-05-01T01:41:30Z");
        assert_eq!(d.missed, Missed::Many, "101 missed");
        assert_eq!(d.most_recent, Some(ts("2024-05-01T01:41:00Z")));
    }

    #[test]
    fn a_starting_deadline_limits_how_far_back_to_look() {
        let h = history("2024-05-01T00:00:00Z", None, Some(200));
        let d = due("*/1 * * * *", &h, "2024-05-01T05:00:30Z");
        assert_eq!(d.missed, Missed::Few);
        assert_eq!(d.earliest, ts("2024-05-01T04:57:10Z"));
        assert_eq!(d.most_recent, Some(ts("2024-05-01T05:00:00Z")));
        // Nothing fell within the deadline: nothing is due.
        let d = due("0 * * * *", &h, "2024-05-01T05:30:00Z");
        assert_eq!(d.most_recent, None);
    }

    #[test]
    fn an_impossible_schedule_never_comes_due() {
        let h = history("2024-05-01T00:00:00Z", None, None);
        let schedule = Schedule::parse("0 0 31 2 *").unwrap();
        let now = ts("2024-06-01T00:00:00Z");
        let d = most_recent(&schedule, &TimeZone::UTC, &h, now, true).unwrap();
        assert_eq!(d.most_recent, None);
        assert_eq!(requeue_after(&schedule, &TimeZone::UTC, &h, now), None);
    }
}
