//! Durations on the command line as kubectl takes them (Go's
//! `time.ParseDuration`): `30s`, `5m`, `1h30m`, `1.5h`, `250ms`, and `0`.

use std::time::Duration;

/// Text that is not a duration (or is a negative one); the message says what
/// is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use a number with a unit, e.g. 30s, 5m, 1h30m, 24h")]
pub struct InvalidDuration(String);

/// Parses a Go-style duration. Usable as a clap `value_parser`.
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    match skiff_api::duration::parse(text.trim()) {
        Ok(nanos) if nanos >= 0 => Ok(Duration::from_nanos(nanos.unsigned_abs())),
        _ => Err(InvalidDuration(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        for bad in ["", "10", "h", "5x", "1h-3m", "-1s"] {
            assert!(parse(bad).unwrap_err().to_string().contains("30s"), "{bad}");
        }
    }
}
