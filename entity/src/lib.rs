//! SeaORM entities of session-manager. Nothing here knows about GraphQL: the
//! server maps these models to its own GraphQL types, so internals such as
//! `token_hash` cannot reach the schema by accident.

pub mod api_key;
pub mod audit_chain;
pub mod audit_checkpoint;
pub mod audit_event;
pub mod installation_secret;
pub mod outbox_attempt;
pub mod outbox_cursor;
pub mod session;
pub mod sign_in_failure;
pub mod sign_in_throttle_key;
pub mod ssf_stream;
pub mod time;
pub mod user;
pub mod webhook_endpoint;

/// Column positions from `at` on, the next one at each call (for the
/// models' `from_row_at`).
pub(crate) fn positions(at: usize) -> impl FnMut() -> usize {
    let mut next = at;
    move || {
        next += 1;
        next - 1
    }
}

/// A nullable column by position, as `try_get_by_index_nullable` reads it,
/// without its cost for a `NULL`: SeaORM reads the value as non-null and
/// turns the error it gets into `None`, and that error carries the column
/// formatted into a fresh string (measured: ~400 instructions per `NULL`;
/// 6 % of the token check's instructions, whose impersonation and end
/// columns are `NULL` for almost every session). Here the value's own
/// flag is looked at first, on the sqlx backends; anything else reads as
/// before.
pub(crate) fn nullable<T: sea_orm::TryGetable>(
    row: &sea_orm::QueryResult,
    index: usize,
) -> Result<Option<T>, sea_orm::TryGetError> {
    if is_null(row, index) {
        return Ok(None);
    }
    row.try_get_by_index_nullable(index)
}

/// The column at `index` is SQL `NULL`, by the value's own flag (sqlx
/// backends); `false` when that cannot be told (another backend, no such
/// column), leaving the answer to SeaORM's read.
pub(crate) fn is_null(row: &sea_orm::QueryResult, index: usize) -> bool {
    use sea_orm::sqlx::{Row, ValueRef};
    if let Some(sqlite) = row.try_as_sqlite_row() {
        sqlite.try_get_raw(index).is_ok_and(|value| value.is_null())
    } else if let Some(pg) = row.try_as_pg_row() {
        pg.try_get_raw(index).is_ok_and(|value| value.is_null())
    } else {
        false
    }
}
