//! Database connection and write transactions for both backends.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::service::audit;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
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
            .max_connections(4)
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
    let db = Database::connect(opts).await?;
    Ok(db)
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
async fn stable_plans(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
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

/// Begins a transaction that will write. On SQLite it is `IMMEDIATE`: a
/// deferred transaction that reads and then writes fails with "database is
/// locked" under concurrency instead of waiting for the busy timeout.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: (db.get_database_backend() == DatabaseBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
    })
    .await
}

/// Now, truncated to microseconds: PostgreSQL keeps microseconds and SQLite
/// keeps what it is given, so both hold (and hash) the same instant.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// The work of one write: runs inside a transaction it does not own.
pub type WriteFuture<'t, T> = futures_util::future::BoxFuture<'t, crate::error::AppResult<T>>;

/// What the batch does with a job once the batch's commit is known.
type Finish = Box<dyn FnOnce(Result<(), &DbErr>) + Send>;
/// A queued write, given the batch's transaction (or why it could not begin).
type Job = Box<
    dyn for<'t> FnOnce(Result<&'t DatabaseTransaction, &'t DbErr>) -> BoxFuture<'t, Finish> + Send,
>;

/// Most writes committed together.
const MAX_GROUP: usize = 64;

/// Runs write transactions, on SQLite by group commit.
///
/// SQLite lets one transaction write at a time and, with
/// `synchronous=FULL`, syncs the disk at every commit, so a busy server
/// spends most of a small write waiting for the lock and the sync. Here
/// the writes queue up for one task that runs all those waiting in one
/// transaction, each inside its own savepoint (a failing write is rolled
/// back alone), and commits them with one sync. No caller hears of its
/// write before the commit that makes it durable; if that commit fails,
/// every write in it fails. On PostgreSQL, which commits concurrent
/// transactions by itself, each write is a transaction of its own.
#[derive(Clone)]
pub struct Writer {
    db: DatabaseConnection,
    queue: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
}

impl Writer {
    /// Starts the writing thread (SQLite).
    ///
    /// The writes of a group run one statement after another, each a round
    /// trip to the connection's thread. On the server's runtime the writer
    /// would wait behind every request task between two statements (the
    /// groups took ~600 us per write under load, measured); on a thread and
    /// runtime of its own it is scheduled as soon as a statement returns.
    pub fn new(db: DatabaseConnection) -> std::io::Result<Self> {
        let queue = if db.get_database_backend() == DatabaseBackend::Sqlite {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let writer_db = db.clone();
            // Ends when the last `Writer` is dropped and the queue closes.
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || runtime.block_on(write_groups(writer_db, receiver)))?;
            Some(sender)
        } else {
            None
        };
        Ok(Self { db, queue })
    }

    /// Runs `work` in a write transaction and returns its result once that
    /// is committed. An error from `work` undoes what it wrote.
    pub async fn write<T, F>(&self, work: F) -> crate::error::AppResult<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t DatabaseTransaction) -> WriteFuture<'t, T> + Send + 'static,
    {
        let Some(queue) = &self.queue else {
            let txn = begin_write(&self.db).await?;
            // On error the transaction is dropped, which rolls it back.
            let value = caught(work(&txn)).await?;
            txn.commit().await?;
            return Ok(value);
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |txn| {
            Box::pin(async move {
                let result = match txn {
                    Ok(txn) => in_savepoint(txn, work).await,
                    Err(err) => Err(failed_group(err)),
                };
                Box::new(move |committed: Result<(), &DbErr>| {
                    let result = match (result, committed) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Ok(_), Err(err)) => Err(failed_group(err)),
                        (Err(err), _) => Err(err),
                    };
                    // The caller may have gone (a dropped request): fine.
                    let _ = reply.send(result);
                }) as Finish
            })
        });
        queue.send(job).map_err(|_| {
            crate::error::AppError::internal(anyhow::anyhow!("the database writer has stopped"))
        })?;
        outcome.await.map_err(|_| {
            crate::error::AppError::internal(anyhow::anyhow!("the database writer dropped a write"))
        })?
    }
}

/// Runs one write of a group inside a savepoint: released when it worked,
/// rolled back to when it failed or panicked.
async fn in_savepoint<T, F>(txn: &DatabaseTransaction, work: F) -> crate::error::AppResult<T>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> WriteFuture<'t, T>,
{
    let head = audit::group::snapshot();
    let savepoint = txn.begin().await.map_err(break_group)?;
    match caught(work(&savepoint)).await {
        Ok(value) => {
            savepoint.commit().await.map_err(break_group)?;
            Ok(value)
        }
        Err(err) => {
            // Its events are undone, and so is the chain's advance.
            audit::group::restore(head);
            savepoint.rollback().await.map_err(break_group)?;
            Err(err)
        }
    }
}

tokio::task_local! {
    /// Set when a savepoint could not be made, released or rolled back:
    /// what the group's transaction holds is then unknown, so none of it
    /// is committed.
    static GROUP_BROKEN: std::cell::Cell<bool>;
}

fn break_group(err: DbErr) -> crate::error::AppError {
    let _ = GROUP_BROKEN.try_with(|broken| broken.set(true));
    err.into()
}

/// A write's result, with a panic turned into an internal error (the
/// write is then rolled back like any failed one).
async fn caught<T>(work: WriteFuture<'_, T>) -> crate::error::AppResult<T> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(crate::error::AppError::internal(anyhow::anyhow!(
                "a write panicked; it was rolled back"
            )))
        })
}

fn failed_group(err: &DbErr) -> crate::error::AppError {
    crate::error::AppError::internal(anyhow::anyhow!("write transaction failed: {err}"))
}

/// The writing task: takes every write waiting (up to [`MAX_GROUP`]), runs
/// them in one transaction, commits, answers them, and again.
async fn write_groups(
    db: DatabaseConnection,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let group = audit::group::scope(write_group(&db, &mut group));
        GROUP_BROKEN.scope(std::cell::Cell::new(false), group).await;
    }
}

async fn write_group(db: &DatabaseConnection, group: &mut Vec<Job>) {
    let mut finishing = Vec::with_capacity(group.len());
    let started = std::time::Instant::now();
    let size = group.len();
    match begin_write(db).await {
        Ok(txn) => {
            for job in group.drain(..) {
                finishing.push(job(Ok(&txn)).await);
            }
            let ran = started.elapsed();
            let committed = if GROUP_BROKEN.with(std::cell::Cell::get) {
                Err(DbErr::Custom(
                    "a savepoint failed; the group was rolled back".into(),
                ))
            } else {
                match audit::group::store(&txn).await {
                    Ok(()) => txn.commit().await,
                    Err(err) => Err(err),
                }
            };
            tracing::debug!(
                writes = size,
                run_us = ran.as_micros() as u64,
                commit_us = (started.elapsed() - ran).as_micros() as u64,
                "write group committed"
            );
            for finish in finishing {
                finish(committed.as_ref().map(|_| ()));
            }
        }
        Err(err) => {
            for job in group.drain(..) {
                finishing.push(job(Err(&err)).await);
            }
            for finish in finishing {
                finish(Err(&err));
            }
        }
    }
}
