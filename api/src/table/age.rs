//! Durations as `kubectl` shows them: `5s`, `2m10s`, `3h4m`, `5d`, `2y45d`.
//!
//! These are Kubernetes' `duration.HumanDuration` and `duration.ShortHumanDuration`
//! (`k8s.io/apimachinery/pkg/util/duration`), digit for digit, so that an AGE
//! column printed by Skiff reads exactly like one printed by a Kubernetes API
//! server for the same timestamps.

use jiff::SignedDuration;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY_HOURS: i64 = 24;
const YEAR_HOURS: i64 = 24 * 365;

/// A duration with about two or three significant figures, as Kubernetes'
/// `duration.HumanDuration`: `90s`, `2m30s`, `15m`, `3h4m`, `20h`, `3d4h`,
/// `45d`, `2y45d`, `9y`.
///
/// A negative duration of up to (but excluding) two seconds reads `0s`, to
/// tolerate clock skew between machines; anything more negative is `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    // Go's `int(d.Seconds())` truncates toward zero, as `as_secs` does.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 2 * MINUTE {
        return format!("{seconds}s");
    }
    let minutes = seconds / MINUTE;
    if minutes < 10 {
        let s = seconds % MINUTE;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < DAY_HOURS * 8 {
        let h = hours % DAY_HOURS;
        if h == 0 {
            return format!("{}d", hours / DAY_HOURS);
        }
        return format!("{}d{h}h", hours / DAY_HOURS);
    }
    if hours < YEAR_HOURS * 2 {
        return format!("{}d", hours / DAY_HOURS);
    }
    if hours < YEAR_HOURS * 8 {
        let dy = (hours / DAY_HOURS) % 365;
        if dy == 0 {
            return format!("{}y", hours / YEAR_HOURS);
        }
        return format!("{}y{dy}d", hours / YEAR_HOURS);
    }
    format!("{}y", hours / YEAR_HOURS)
}

/// A duration in its single largest unit, as Kubernetes'
/// `duration.ShortHumanDuration`: `59s`, `2m`, `23h`, `364d`, `2y`.
///
/// Negative durations follow [`human_duration`]: `0s` within two seconds,
/// `<invalid>` beyond.
pub fn short_human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < MINUTE {
        return format!("{seconds}s");
    }
    let minutes = seconds / MINUTE;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / HOUR;
    if hours < DAY_HOURS {
        return format!("{hours}h");
    }
    if hours < YEAR_HOURS {
        return format!("{}d", hours / DAY_HOURS);
    }
    format!("{}y", hours / YEAR_HOURS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn human_duration_matches_kubernetes() {
        // Cases from apimachinery's duration_test.go, plus the boundaries.
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1s"),
            (90, "90s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (130, "2m10s"),
            (9 * MINUTE + 59, "9m59s"),
            (10 * MINUTE, "10m"),
            (10 * MINUTE + 30, "10m"),
            (179 * MINUTE, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + 4 * MINUTE, "3h4m"),
            (7 * HOUR + 59 * MINUTE, "7h59m"),
            (8 * HOUR, "8h"),
            (47 * HOUR + 59 * MINUTE, "47h"),
            (48 * HOUR, "2d"),
            (48 * HOUR + 5 * HOUR, "2d5h"),
            (5 * 24 * HOUR, "5d"),
            (8 * 24 * HOUR, "8d"),
            (367 * 24 * HOUR, "367d"),
            (2 * 365 * 24 * HOUR, "2y"),
            ((2 * 365 + 45) * 24 * HOUR, "2y45d"),
            ((7 * 365 + 364) * 24 * HOUR, "7y364d"),
            (8 * 365 * 24 * HOUR, "8y"),
            (30 * 365 * 24 * HOUR, "30y"),
        ];
        for &(s, want) in cases {
            assert_eq!(human_duration(secs(s)), want, "{s}s");
        }
    }

    #[test]
    fn negative_durations_tolerate_skew() {
        assert_eq!(human_duration(secs(-1)), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(-1999)), "0s");
        assert_eq!(human_duration(secs(-2)), "<invalid>");
        assert_eq!(short_human_duration(secs(-1)), "0s");
        assert_eq!(short_human_duration(secs(-2)), "<invalid>");
    }

    #[test]
    fn sub_second_precision_is_truncated() {
        assert_eq!(human_duration(SignedDuration::from_millis(1999)), "1s");
        assert_eq!(
            human_duration(SignedDuration::from_millis(150_900)),
            "2m30s"
        );
    }

    #[test]
    fn short_human_duration_matches_kubernetes() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (150, "2m"),
            (59 * MINUTE + 59, "59m"),
            (HOUR, "1h"),
            (23 * HOUR + 59 * MINUTE, "23h"),
            (24 * HOUR, "1d"),
            (364 * 24 * HOUR, "364d"),
            (365 * 24 * HOUR, "1y"),
            ((2 * 365 + 45) * 24 * HOUR, "2y"),
        ];
        for &(s, want) in cases {
            assert_eq!(short_human_duration(secs(s)), want, "{s}s");
        }
    }
}
