//! [`Db`], the one handle on the database that the services take.

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, ExecResult, QueryResult,
    Statement, metric,
};

use super::{
    Reads,
    writer::{self, GroupHook, Turn, WriteFuture, WriteTxn, Writer},
};

/// The database: the pool, the [`Reads`] beside it, the grouped writer,
/// and the turn to write that they share. Cheap to clone (clones share
/// all of it).
///
/// Reading: as a connection, a `Db` reads on the pool; [`Db::reads`] is
/// for the reads every request makes (the token check, the sessions list).
///
/// Writing, in one of three forms, each taking the process's turn to
/// write (SQLite) for as long as it writes:
///
/// - [`Db::write`]: a write that may be grouped with other requests'
///   writes, and so may be run more than once; the usual form
///   ([`Db::write_contended`] for one whose row locks others wait for).
/// - [`Db::transaction`]: a transaction of its own, for writes that must
///   not run again (they consume something from outside, such as an
///   expired session met by one request) or that are long (maintenance).
/// - A statement executed on the `Db` itself (`update_many().exec(db)`):
///   one statement, committed on its own, in one round trip and without a
///   transaction; for single-statement writes such as the activity update
///   on the token check. A write through SeaORM's `RETURNING` path would
///   be a query, so a `Db` says it does not support `RETURNING`: inserts
///   and updates through it execute, then read back.
#[derive(Clone)]
pub struct Db {
    pool: DatabaseConnection,
    reads: Reads,
    writer: Writer,
    turn: Turn,
}

impl Db {
    /// The handle on the database behind `pool` (migrated or not), with
    /// `hook` run with every group of grouped writes (see [`GroupHook`]).
    /// On SQLite this starts the writing thread.
    pub async fn new(
        pool: DatabaseConnection,
        hook: Option<Arc<dyn GroupHook>>,
    ) -> anyhow::Result<Self> {
        let turn = Turn::of(&pool);
        Ok(Self {
            reads: Reads::new(pool.clone()).await?,
            writer: Writer::new(pool.clone(), turn.clone(), hook)?,
            turn,
            pool,
        })
    }

    /// The pool, for what is no service's business: migrations, health
    /// checks, the event tail's listener, tests; and for reads that must
    /// see one committed state throughout ([`super::snapshot`], the audit
    /// chain's walk). Services write through the `Db`, never on the pool.
    pub fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// The reads every request makes (see [`Reads`]).
    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    /// Runs `work` in a write transaction and returns its result once that
    /// is committed. The write is grouped with others waiting (one
    /// transaction, one commit and one sync for all, on both databases)
    /// and, if any of the group fails, run again alone: `work` may run more
    /// than once, each time in a fresh transaction, and an error from it
    /// undoes what it wrote. Its locks are held until the group commits;
    /// a write whose locks must be its own uses [`Db::transaction`].
    pub async fn write<T, F>(&self, work: F) -> crate::error::AppResult<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t sea_orm::DatabaseTransaction) -> WriteFuture<'t, T>
            + Send
            + Sync
            + 'static,
    {
        self.writer.write(work, true).await
    }

    /// [`Db::write`] for a write whose row locks other writes contend for
    /// (the sign-in throttle's rows of an account and an address): grouped
    /// on SQLite, where every write transaction locks the whole database
    /// anyway, so a group holds nothing a single write would not; a
    /// transaction of its own on PostgreSQL, where a group would hold the
    /// write's locks until the others' are done too, and two groups taking
    /// such rows in opposite orders (one address, many accounts) would
    /// deadlock. Like [`Db::write`], `work` may run more than once.
    pub async fn write_contended<T, F>(&self, work: F) -> crate::error::AppResult<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t sea_orm::DatabaseTransaction) -> WriteFuture<'t, T>
            + Send
            + Sync
            + 'static,
    {
        self.writer.write(work, false).await
    }

    /// Begins a write transaction of its own, in its turn (held until it
    /// commits or is dropped, which rolls it back). On SQLite it is
    /// `IMMEDIATE`.
    pub async fn transaction(&self) -> Result<WriteTxn, DbErr> {
        writer::begin_write(&self.pool, &self.turn).await
    }

    /// Calls `callback` after each statement run on the pool or through
    /// [`Self::reads`] (not those of the grouped writer), as
    /// [`DatabaseConnection::set_metric_callback`] does for a pool.
    pub fn set_metric_callback<F>(&mut self, callback: F)
    where
        F: Fn(&metric::Info<'_>) + Send + Sync + 'static,
    {
        let callback = Arc::new(callback);
        let pool = callback.clone();
        self.pool.set_metric_callback(move |info| pool(info));
        self.reads.set_metric_callback(move |info| callback(info));
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.pool.ping().await
    }

    /// Closes the read connections and the pool, so that SQLite finishes
    /// its files cleanly (at shutdown).
    pub async fn close(&self) -> Result<(), DbErr> {
        self.reads.close().await;
        self.pool.clone().close().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.pool.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let _turn = self.turn.take().await;
        self.pool.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let _turn = self.turn.take().await;
        self.pool.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.pool.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.pool.query_all_raw(stmt).await
    }

    /// No: a write with `RETURNING` is run as a query, which would not
    /// take the turn to write.
    fn support_returning(&self) -> bool {
        false
    }
}
