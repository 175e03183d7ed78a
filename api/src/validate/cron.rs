//! CronJob schedules, checked with the one cron grammar ([`crate::cron`]),
//! with `robfig/cron`'s error messages.

use crate::cron::{ParseError, Schedule};

/// `cron.ParseStandard`: `Ok` for a valid schedule, else `robfig/cron`'s message.
pub(crate) fn parse_standard(spec: &str) -> Result<(), ParseError> {
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        // The zone itself is not resolved here; the caller refuses TZ anyway.
        spec = spec.split_once(' ').map_or("", |(_, rest)| rest.trim());
    }
    Schedule::parse(spec).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_schedules() {
        for s in [
            "*/5 * * * *",
            "0 3 * * 1-5",
            "15,45 9-17 * jan-jun MON",
            "0 0 1 */2 ?",
            "@hourly",
            "@every 1h30m",
            "TZ=UTC 0 0 * * *",
        ] {
            assert_eq!(parse_standard(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn refuses_like_robfig_cron() {
        assert_eq!(
            parse_standard("* * * *"),
            Err(ParseError(
                "expected exactly 5 fields, found 4: [* * * *]".into()
            ))
        );
        assert_eq!(
            parse_standard("60 * * * *"),
            Err(ParseError(
                "end of range (60) above maximum (59): 60".into()
            ))
        );
        assert_eq!(
            parse_standard("* * 0 * *"),
            Err(ParseError(
                "beginning of range (0) below minimum (1): 0".into()
            ))
        );
        assert_eq!(
            parse_standard("5-1 * * * *"),
            Err(ParseError(
                "beginning of range (5) beyond end of range (1): 5-1".into()
            ))
        );
        assert_eq!(
            parse_standard("*/0 * * * *"),
            Err(ParseError(
                "step of range should be a positive number: */0".into()
            ))
        );
        assert_eq!(
            parse_standard("x * * * *"),
            Err(ParseError(
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax".into()
            ))
        );
        assert_eq!(
            parse_standard("@often"),
            Err(ParseError("unrecognized descriptor: @often".into()))
        );
        assert!(parse_standard("@every soon").is_err());
        assert_eq!(
            parse_standard("* * * * 7"),
            Err(ParseError("end of range (7) above maximum (6): 7".into()))
        );
    }
}
