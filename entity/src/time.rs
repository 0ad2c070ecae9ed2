//! Reading the timestamps of the hot rows (the token check, the sessions
//! list) without sqlx's general date parser (issue 21).
//!
//! On SQLite a `DateTimeUtc` column holds the text sqlx wrote for it,
//! `DateTime::to_rfc3339_opts(SecondsFormat::AutoSi, false)`:
//! `2026-12-01T20:00:00.123456+00:00`. sqlx reads it back through chrono's
//! general RFC 3339 parser; [`parse_utc`] reads exactly that shape (and the
//! same with `Z`) and gives up (`None`) on anything else, which then goes
//! through sqlx as before. PostgreSQL sends timestamps as binary
//! microseconds: those always go through sqlx.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use sea_orm::{
    QueryResult, TryGetError, TryGetable,
    sqlx::{Decode, Row, Sqlite, ValueRef},
};

/// `YYYY-MM-DDTHH:MM:SS[.f…]` then `+00:00` or `Z`, with 1 to 9 digits of
/// fraction and a second below 60: the same instant as chrono's
/// `DateTime::parse_from_rfc3339` gives for it. `None` for any other text
/// (other offsets, leap seconds, other separators), which the caller
/// leaves to the general parser.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = digits(0, 4)?;
    let (month, day) = (digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut at = 19;
    let mut nanos = 0;
    if b[at] == b'.' {
        let start = at + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let count = end - start;
        if !(1..=9).contains(&count) {
            return None;
        }
        nanos = digits(start, end)? * 10u32.pow(9 - count as u32);
        at = end;
    }
    match &b[at..] {
        b"+00:00" | b"Z" => {}
        _ => return None,
    }
    if second >= 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// A `DateTimeUtc` column by position: on SQLite through [`parse_utc`]
/// when its text has that shape, otherwise (and on every other backend)
/// as SeaORM reads it.
pub(crate) fn get<T: FromUtc>(row: &QueryResult, index: usize) -> Result<T, TryGetError> {
    if let Some(sqlite) = row.try_as_sqlite_row()
        && let Ok(value) = sqlite.try_get_raw(index)
    {
        if value.is_null() {
            if let Some(null) = T::null() {
                return Ok(null);
            }
        } else if let Ok(text) = <&str as Decode<Sqlite>>::decode(value)
            && let Some(at) = parse_utc(text)
        {
            return Ok(T::from_utc(at));
        }
    } else if crate::is_null(row, index)
        && let Some(null) = T::null()
    {
        // Without SeaORM's error for a `NULL` (see `crate::nullable`).
        return Ok(null);
    }
    row.try_get_by_index_nullable(index)
}

/// `DateTime<Utc>` and `Option<DateTime<Utc>>`, for [`get`].
pub(crate) trait FromUtc: TryGetable {
    fn from_utc(at: DateTime<Utc>) -> Self;
    /// The value of SQL `NULL`, if this type has one.
    fn null() -> Option<Self>;
}

impl FromUtc for DateTime<Utc> {
    fn from_utc(at: DateTime<Utc>) -> Self {
        at
    }
    fn null() -> Option<Self> {
        None
    }
}

impl FromUtc for Option<DateTime<Utc>> {
    fn from_utc(at: DateTime<Utc>) -> Self {
        Some(at)
    }
    fn null() -> Option<Self> {
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, SecondsFormat, TimeZone};

    fn general(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    #[test]
    fn the_stored_shape_reads_as_chrono_reads_it() {
        let mut at = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let mut nanos: i64 = 0;
        for i in 0..20_000 {
            // Walk years, days and every fraction length.
            at += Duration::seconds(86_400 * 7 + 3_601 * (i % 24) + i % 60);
            nanos = nanos
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407)
                .rem_euclid(1_000_000_000);
            let scaled = match i % 4 {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            let t = at + Duration::nanoseconds(scaled);
            for format in [
                SecondsFormat::AutoSi,
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Micros,
                SecondsFormat::Nanos,
            ] {
                for z in [false, true] {
                    let text = t.to_rfc3339_opts(format, z);
                    if matches!(format, SecondsFormat::AutoSi | SecondsFormat::Nanos) {
                        assert_eq!(parse_utc(&text), Some(t), "{text}");
                    }
                    assert_eq!(parse_utc(&text), general(&text), "{text}");
                }
            }
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_parser() {
        for text in [
            "",
            "2026-12-01",
            "2026-12-01T20:00:00",
            "2026-12-01 20:00:00+00:00",
            "2026-12-01t20:00:00+00:00",
            "2026-12-01T20:00:00+01:00",
            "2026-12-01T20:00:00-00:00",
            "2026-12-01T20:00:00.+00:00",
            "2026-12-01T20:00:00.1234567890+00:00",
            "2026-12-01T20:00:60+00:00",
            "2026-12-01T24:00:00+00:00",
            "2026-02-30T20:00:00+00:00",
            "2026-13-01T20:00:00+00:00",
            "2026-12-01T20:00:00+00:00 ",
            "2026-12-01T20:00:00z",
            "+2026-12-01T20:00:00+00:00",
            "2026-12-0aT20:00:00+00:00",
            "2026-12-01T20:00:00.12a+00:00",
            "2026-12-01 20:00:00.123",
        ] {
            assert_eq!(parse_utc(text), None, "{text:?}");
        }
    }
}
