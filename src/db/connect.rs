//! Opening the pool (per backend settings), running the migrations, and
//! consistent reads on it ([`snapshot`]).

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    DbErr, IsolationLevel, TransactionTrait,
    sqlx::sqlite::{SqliteConnection, SqliteJournalMode, SqliteSynchronous},
};

/// Opens the pool. SQLite: WAL, `synchronous=FULL` (an acknowledged
/// revocation survives a power cut, not only a process crash), a busy
/// timeout and foreign keys on, the file (and its directory) created if
/// missing.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    if let Some(dir) = crate::config::Config::with_database(url).sqlite_dir()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!("cannot create database directory {}: {e}", dir.display())
        })?;
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // sqlx pings every connection it hands out by default: one more
        // round trip to the connection's thread per statement, for a file
        // that cannot hang up on us.
        opts.test_before_acquire(false)
            .max_connections(sqlite_pool_size() as u32)
            .min_connections(1)
            // An in-memory database vanishes with its last connection.
            .idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
                    .create_if_missing(true)
            })
            .map_sqlx_sqlite_pool_opts(|o| {
                o.after_connect(|conn, _| Box::pin(async move { stable_plans(conn).await }))
            });
    } else {
        // Ping only a connection that sat idle long enough for a server
        // restart or a proxy to have dropped it, not one per statement.
        opts.test_before_acquire_if_idle_for(Duration::from_secs(30))
            .max_connections(20)
            .min_connections(1);
    }
    if url.starts_with("sqlite:") {
        no_memory_statistics();
        wal_before_pool(url).await?;
    }
    let db = Database::connect(opts).await?;
    Ok(db)
}

/// Puts the file in WAL mode on one connection before the pool opens any.
/// The pool opens its connections concurrently (its minimum in the
/// background, the first request's beside it), and each sets WAL as it
/// opens: on a new file, the first of them converts the file from the
/// rollback journal, which takes an exclusive lock, and SQLite answers the
/// other one `SQLITE_BUSY` at once rather than waiting out the busy
/// timeout (seen: `session-manager migrate` on a new file failed once in
/// about 50 runs with "database is locked"). On a file already in WAL
/// mode, setting it again changes nothing and takes no such lock.
async fn wal_before_pool(url: &str) -> anyhow::Result<()> {
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _, sqlite::SqliteConnectOptions};
    let options: SqliteConnectOptions = url.parse()?;
    let conn = options
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .create_if_missing(true)
        .connect()
        .await?;
    conn.close().await?;
    Ok(())
}

/// Connections of the SQLite pool (and twice as many for
/// [`Reads`](super::Reads) beside it, see there): one per core (at least
/// two). SQLite's work is the CPU's, so more connections than
/// cores add no throughput, yet each deep audit-log walk in flight holds
/// megabytes (measured: with 4 pool connections beside the 2 read ones, the
/// benchmark's deep unfiltered page peaked at 97 MB of RSS; with 2, 76 MB, at
/// the same rate).
pub fn sqlite_pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// Turns off SQLite's memory statistics for the process, before its first
/// connection opens (SQLite accepts the setting only before it
/// initializes). With them on (the bundled build's default), every
/// allocation and free SQLite makes takes one process-wide mutex to count
/// it, and it makes dozens per statement (a copy of every value of every
/// row sqlx reads): measured, 5 % of the token check's instructions and a
/// lock all the connection threads share. Nothing here reads the
/// statistics, and no heap limit is set that would need them. Later calls
/// (a second pool in the same process) find SQLite initialized and change
/// nothing.
#[allow(unsafe_code)]
fn no_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config is
        // not thread-safe against other SQLite calls, and this runs before
        // this process has opened any SQLite connection (the `Once`, and
        // `connect` being the only place that opens them); if SQLite is
        // initialized already it refuses with SQLITE_MISUSE and nothing
        // changes.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                code = rc,
                "SQLite was initialized already; memory statistics left on"
            );
        }
    });
}

/// Turns on SQLite's query planner stability guarantee for a connection.
///
/// Without it SQLite plans a statement around the values bound to it
/// wherever a value could change the plan, and so re-prepares (parses and
/// plans again) a cached statement every time such a parameter is bound.
/// SeaORM binds every `LIMIT` as a parameter, so every `.one()` query
/// (the token check among them) was parsed afresh on each request. Our
/// plans come from the indexes, never from bound values, so nothing is
/// lost.
#[allow(unsafe_code)]
pub(super) async fn stable_plans(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle
        .as_raw_handle()
        .as_ptr()
        .cast::<libsqlite3_sys::sqlite3>();
    let mut enabled: std::ffi::c_int = 0;
    // SAFETY: `db` is this connection's open handle, locked for our
    // exclusive use while `handle` lives; SQLITE_DBCONFIG_ENABLE_QPSG takes
    // an int and an int pointer to report the new setting.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            &mut enabled as *mut std::ffi::c_int,
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK || enabled != 1 {
        return Err(sea_orm::sqlx::Error::Configuration(
            format!("cannot enable SQLite's query planner stability guarantee (code {rc})").into(),
        ));
    }
    Ok(())
}

/// Runs the migrations that have not run yet.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// A read-only transaction on `pool` that sees one committed state of the
/// database from its first read to its end, for reads that must agree with
/// each other while others write (walking the audit chain against its
/// head). PostgreSQL: `REPEATABLE READ READ ONLY` (its default, `READ
/// COMMITTED`, takes a new snapshot per statement). SQLite: a deferred
/// transaction, whose first read fixes the snapshot it keeps in WAL mode
/// (SQLite takes no isolation level; it is serializable anyway). Dropped or
/// committed, it ends.
pub async fn snapshot(pool: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match pool.get_database_backend() {
        DatabaseBackend::Postgres => {
            pool.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => pool.begin().await,
    }
}
