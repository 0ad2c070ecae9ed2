//! Business logic; functions return [`AppError`]. What a function takes
//! says how it touches the database:
//!
//! - [`&Db`](crate::db::Db): the function reads and writes on its own,
//!   through the one handle: reads on the pool, or through
//!   [`Db::reads`] for the reads every request makes (the token check,
//!   the sessions list); writes with [`Db::write`] (grouped with other
//!   requests' writes on SQLite, so the work may run more than once),
//!   [`Db::transaction`] (a transaction of its own, for writes that must
//!   not run again or that are long), or one statement executed on the
//!   `Db` (committed alone: the activity update, the maintenance
//!   deletes). The function chooses; its callers only pass the handle.
//! - `&impl ConnectionTrait`: reads, and writes that are one step of a
//!   larger change; they run the same inside the caller's transaction or,
//!   given the `Db`, on its pool.
//!
//! [`AppError`]: crate::error::AppError
//! [`Db::reads`]: crate::db::Db::reads
//! [`Db::write`]: crate::db::Db::write
//! [`Db::transaction`]: crate::db::Db::transaction

pub mod access;
pub mod account;
pub mod api_key;
pub mod audit;
pub mod denials;
pub mod device;
pub mod impersonation;
pub mod outbox;
pub mod paging;
pub mod password;
pub mod session;
pub mod ssf;
pub mod throttle;
pub mod user;
pub mod webhook;
