//! The database, for both backends: opening the pool and migrating
//! (`connect`), statements built once ([`Prepared`]), the reads every
//! request makes ([`Reads`]), writing (`writer`), and [`Db`], the one
//! handle the services take. Everything is re-exported here, so
//! `crate::db::X` names each item.
//!
//! There is one way in: a service reads through [`Db`] (on the pool, or on
//! [`Db::reads`]) and writes through it, with [`Db::write`] (grouped, may
//! run again), [`Db::transaction`] (a transaction of its own) or one
//! statement executed on the `Db`. Each write takes the process's turn to
//! write to a SQLite file, which is private to this module. A step of a
//! larger change takes `&impl ConnectionTrait` and runs inside its
//! caller's transaction.

mod connect;
mod handle;
mod prepared;
mod reads;
mod writer;

use connect::stable_plans;
pub use connect::{connect, migrate, snapshot, sqlite_pool_size};
pub use handle::Db;
pub use prepared::Prepared;
pub use reads::Reads;
pub use writer::{GroupDone, GroupHook, WriteFuture, WriteTxn};

/// Now, truncated to microseconds: PostgreSQL keeps microseconds and SQLite
/// keeps what it is given, so both hold (and hash) the same instant.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
