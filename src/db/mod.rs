//! Database connection and write transactions for both backends: opening
//! the pool and migrating (`connect`), statements built once
//! ([`Prepared`]), the reads every request makes ([`Reads`]), and writing
//! ([`Writer`], [`begin_write`], [`write_turn`]). Everything is
//! re-exported here, so `crate::db::X` names each item.

mod connect;
mod prepared;
mod reads;
mod writer;

use connect::stable_plans;
pub use connect::{connect, migrate, sqlite_pool_size};
pub use prepared::Prepared;
pub use reads::Reads;
pub use writer::{
    GroupDone, GroupHook, WriteFuture, WriteTurn, WriteTxn, Writer, begin_write, write_turn,
};

/// Now, truncated to microseconds: PostgreSQL keeps microseconds and SQLite
/// keeps what it is given, so both hold (and hash) the same instant.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
