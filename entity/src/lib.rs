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
