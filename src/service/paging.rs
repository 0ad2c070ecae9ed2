//! The paging arguments every list takes, checked the same way: `limit`
//! and `offset` within their bounds, and a keyset cursor as handed out.

use crate::error::{AppError, AppResult};

/// `value` of the argument `field` if it is within `min..=max`, else
/// `BAD_USER_INPUT` naming the bounds.
pub fn bounded(field: &'static str, value: i32, min: u64, max: u64) -> AppResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            AppError::bad_input(field, format!("{field} must be between {min} and {max}"))
        })
}

/// The argument `after`: a cursor is the chain position of the last event
/// of a page (`pagination.nextCursor`).
pub fn cursor(after: &str) -> AppResult<i64> {
    after
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq > 0)
        .ok_or_else(|| {
            AppError::bad_input(
                "after",
                "after must be a cursor returned in pagination.nextCursor",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_named_in_the_error() {
        assert_eq!(bounded("limit", 1, 1, 500).unwrap(), 1);
        assert_eq!(bounded("limit", 500, 1, 500).unwrap(), 500);
        for value in [0, 501, -1] {
            let err = bounded("limit", value, 1, 500).unwrap_err();
            assert_eq!(err.to_string(), "limit must be between 1 and 500");
        }
    }

    #[test]
    fn cursors_are_positive_chain_positions() {
        assert_eq!(cursor("42").unwrap(), 42);
        for bad in ["0", "-3", "x", ""] {
            assert!(cursor(bad).is_err(), "{bad:?}");
        }
    }
}
