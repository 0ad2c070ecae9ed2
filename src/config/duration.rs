//! How duration settings are written (`30d`, `500ms`) and how far each
//! may go.

use std::time::Duration;

pub(super) const DAY: u64 = 86_400;

/// The upper bound of each duration setting, checked at start-up. The
/// lifetimes stay within a year, so that expiry instants are always close
/// to now; retention reaches back 10 years for sessions and 100 for the
/// audit log (a record kept "for ever" in practice); the rest are the
/// longest a sane deployment would wait.
pub const DURATION_BOUNDS: [(&str, Duration); 9] = [
    ("SESSION_TTL", Duration::from_secs(366 * DAY)),
    ("SESSION_IDLE_TIMEOUT", Duration::from_secs(366 * DAY)),
    ("ACTIVITY_WRITE_INTERVAL", Duration::from_secs(DAY)),
    ("IMPERSONATION_TTL", Duration::from_secs(DAY)),
    ("SESSION_RETENTION", Duration::from_secs(3_660 * DAY)),
    ("AUDIT_RETENTION", Duration::from_secs(36_600 * DAY)),
    ("SIGNIN_FAILURE_WINDOW", Duration::from_secs(DAY)),
    ("REQUEST_TIMEOUT", Duration::from_secs(3_600)),
    ("WS_INIT_TIMEOUT", Duration::from_secs(600)),
];

/// No duration reaches chrono beyond this (1 000 years), so adding it to or
/// subtracting it from any instant of this millennium stays in range.
pub const MAX_CHRONO: Duration = Duration::from_secs(366_000 * DAY);

/// A duration in the largest unit that divides it, as settings read it.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1_000) {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs();
    for (unit, per) in [("d", DAY), ("h", 3_600), ("m", 60)] {
        if secs >= per && secs.is_multiple_of(per) {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// Parses `30d`, `1h`, `15m`, `2s`, `500ms` (one number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write it like 30d, 1h, 15m, 2s or 500ms"))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("`{text}` does not start with a whole number"));
    }
    // All digits: the only way to fail is not to fit in 64 bits.
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use d, h, m, s or ms"
            ));
        }
    };
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("30d", 30 * 86_400_000),
            ("1h", 3_600_000),
            ("15m", 900_000),
            ("2s", 2_000),
            ("500ms", 500),
            (" 7d ", 7 * 86_400_000),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        for (text, why) in [
            ("", "empty"),
            ("30", "no unit"),
            ("d", "no number"),
            ("1w", "unknown unit"),
            ("-1s", "negative"),
            ("1.5h", "fraction"),
            ("99999999999999999999d", "overflow"),
            ("100000000000000000000d", "more digits than 64 bits hold"),
            ("213503982334602d", "seconds overflow"),
        ] {
            assert!(
                parse_duration(text).is_err(),
                "{text:?} ({why}) should fail"
            );
        }
        assert_eq!(
            parse_duration("100000000000000000000d"),
            Err("`100000000000000000000d` is too large".to_owned())
        );
    }

    #[test]
    fn durations_format_in_the_largest_whole_unit() {
        for (millis, text) in [
            (366 * DAY * 1_000, "366d"),
            (3_600_000, "1h"),
            (600_000, "10m"),
            (90_000, "90s"),
            (1_500, "1500ms"),
            (0, "0s"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(millis)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)));
        }
    }
}
