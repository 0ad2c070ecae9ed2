//! Writing: the in-process turn to write to a SQLite file, write
//! transactions that hold it, and the [`Writer`] that runs writes by group
//! commit. All of it is reached through [`super::Db`].

use std::sync::Arc;

use futures_util::future::BoxFuture;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

/// The in-process turn to write to a SQLite database, one per database
/// file, shared by every writer in the process (the grouped [`Writer`],
/// [`Db::transaction`], the statements run on [`Db`]). SQLite allows one
/// writer at a time; without a turn, writers that find the database locked
/// poll with growing sleeps (SQLite's busy handler), which wastes the
/// lock's free moments and can starve a writer for the whole busy timeout
/// while the [`Writer`] commits group after group. Waiting here is first
/// come, first served, and wakes the next writer the moment the lock is
/// free. (Other processes, such as the command line, still meet the busy
/// timeout.) Private to the database layer: every write takes it there.
///
/// [`Db`]: super::Db
/// [`Db::transaction`]: super::Db::transaction
#[derive(Clone)]
pub(super) struct Turn(Option<Arc<tokio::sync::Mutex<()>>>);

type TurnGuard = tokio::sync::OwnedMutexGuard<()>;

impl Turn {
    /// The turn of the database behind `db` (SQLite); none on PostgreSQL,
    /// which needs none.
    pub(super) fn of(db: &DatabaseConnection) -> Self {
        if db.get_database_backend() != DatabaseBackend::Sqlite {
            return Self(None);
        }
        type Turns = std::collections::HashMap<std::path::PathBuf, Arc<tokio::sync::Mutex<()>>>;
        static TURNS: std::sync::OnceLock<std::sync::Mutex<Turns>> = std::sync::OnceLock::new();
        let file = db
            .get_sqlite_connection_pool()
            .connect_options()
            .get_filename()
            .to_owned();
        let turn = TURNS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(file)
            .or_default()
            .clone();
        Self(Some(turn))
    }

    /// Waits for the turn (SQLite).
    pub(super) async fn take(&self) -> Option<TurnGuard> {
        match &self.0 {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        }
    }
}

/// A write transaction that holds the turn to write (SQLite)
/// until it commits or is dropped (rolled back): see [`Db::transaction`].
///
/// [`Db::transaction`]: super::Db::transaction
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _turn: Option<TurnGuard>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Holds `lock` until this transaction ends, against every other
    /// transaction on the database that asks for it, in any process: for a
    /// check that must hold at the commit (a cap on how many rows there
    /// are, a name unique among live rows), taken before the check. Two
    /// concurrent creations then cannot both count 49 and both insert the
    /// fiftieth. A PostgreSQL transaction-scoped advisory lock; on SQLite
    /// nothing more is needed, since a write transaction (`IMMEDIATE`)
    /// already excludes every other writer of the file.
    pub async fn exclusive(&self, lock: &str) -> Result<(), DbErr> {
        if self.txn.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [advisory_key(lock).into()],
            ))
            .await
            .map(|_| ())
    }

    /// Ends it without writing, at once, before its turn is handed on.
    /// (Dropped, it rolls back too, but only when its connection is next
    /// used or returned to the pool, with the chain head or SQLite's write
    /// lock held until then.)
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// The advisory lock key of `name`: the first 8 bytes of its SHA-256,
/// the same in every process and release.
fn advisory_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("session-manager:{name}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Begins a transaction that will write, in its turn. On SQLite it is
/// `IMMEDIATE`: a deferred transaction that reads and then writes fails
/// with "database is locked" under concurrency instead of waiting for the
/// busy timeout.
pub(super) async fn begin_write(db: &DatabaseConnection, turn: &Turn) -> Result<WriteTxn, DbErr> {
    let turn = turn.take().await;
    let txn = begin_immediate(db).await?;
    Ok(WriteTxn { txn, _turn: turn })
}

async fn begin_immediate(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: (db.get_database_backend() == DatabaseBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
    })
    .await
}

/// The work of one write: runs inside a transaction it does not own.
pub type WriteFuture<'t, T> = futures_util::future::BoxFuture<'t, crate::error::AppResult<T>>;

/// A queued write. `run` may be called more than once (see [`Writer`]);
/// each call keeps its result for `finish`, which answers the caller once
/// the fate of the transaction is known.
struct Job {
    run: Run,
    finish: Finish,
}

/// Runs the write in the given transaction, keeps its result, and says
/// whether it succeeded.
type Run = Box<dyn for<'t> FnMut(&'t DatabaseTransaction) -> BoxFuture<'t, bool> + Send>;
/// Answers the caller: the kept result, unless the commit (`Err`) failed.
type Finish = Box<dyn FnOnce(Result<(), &DbErr>) + Send>;

/// What runs with every group of writes the grouped writer ([`Db::write`])
/// commits in one transaction, whatever the writes are: given to the writer when
/// it is made, so that the database layer knows nothing of what runs (the
/// services' hooks are wired in by whoever builds the writer).
///
/// A hook can keep state for one group (the audit log keeps the group's
/// events, to append them together): [`Self::scope`] runs the
/// whole group, its writes, [`Self::before_commit`] and the commit, so a
/// task-local set there lives exactly as long as the group, and a group
/// that is rolled back (then run again write by write, each a group of its
/// own) takes its state with it.
///
/// [`Db::write`]: super::Db::write
pub trait GroupHook: Send + Sync + 'static {
    /// Runs `group`, within whatever context the hook keeps per group.
    fn scope<'a>(&'a self, group: BoxFuture<'a, GroupDone>) -> BoxFuture<'a, GroupDone>;

    /// The group's last statements, in its transaction, after its writes
    /// and before the commit. An error rolls the group back like a failed
    /// write.
    fn before_commit<'t>(
        &'t self,
        txn: &'t DatabaseTransaction,
    ) -> BoxFuture<'t, Result<(), DbErr>>;
}

/// How a group ended, as [`GroupHook::scope`] passes it on (opaque to the
/// hook).
pub struct GroupDone(Result<bool, DbErr>);

/// Most writes committed together.
const MAX_GROUP: usize = 64;

/// Runs write transactions by group commit, on both databases.
///
/// SQLite lets one transaction write at a time and, with
/// `synchronous=FULL`, syncs the disk at every commit, so a busy server
/// spends most of a small write waiting for the lock and the sync.
/// PostgreSQL commits concurrent transactions by itself, but every write
/// that audits appends to one hash chain, whose head is locked from the
/// append to the commit: those writes, on every replica, commit one at a
/// time, each waiting for its own WAL flush (revocations ran at a third
/// of SQLite's rate). Here the writes queue up for one writer (a thread on
/// SQLite; on PostgreSQL [`POSTGRES_GROUPS_IN_FLIGHT`] tasks) that runs
/// all those waiting in one transaction and commits them with one sync,
/// taking the chain head once for all of them (see the audit log's
/// `GroupHead`). If any of them fails (or panics), that transaction is
/// rolled back and each write of the group is run again in a transaction
/// of its own, so a failing write undoes only itself; writes must
/// therefore be safe to run again from the start, which a rolled-back
/// attempt is. No caller hears of its write before the commit that makes
/// it durable; if that commit fails, every write in it fails.
///
/// On PostgreSQL a group holds the row locks its writes take until it
/// commits, so a write may wait behind another group, of this process or
/// another replica (or that group behind it), a little longer than it
/// would alone. Two groups that lock rows in opposite orders deadlock;
/// PostgreSQL ends one of them with an error after `deadlock_timeout`, and
/// that group is run again write by write like any failed one, so no write
/// is lost to it. Writes whose rows
/// others contend for (the sign-in throttle's) are not grouped on
/// PostgreSQL ([`Db::write_contended`]), and those that need a transaction
/// of their own (the session cap's lock on the user, held while a session
/// opens) use [`Db::transaction`].
///
/// [`Db::transaction`]: super::Db::transaction
/// [`Db::write_contended`]: super::Db::write_contended
#[derive(Clone)]
pub(super) struct Writer {
    db: DatabaseConnection,
    queue: tokio::sync::mpsc::UnboundedSender<Job>,
}

pub(super) type Hook = Option<Arc<dyn GroupHook>>;

impl Writer {
    /// Starts the writer: on SQLite a thread, on PostgreSQL a task on the
    /// current runtime. Either ends when the last `Writer` is dropped and
    /// the queue closes.
    ///
    /// The writes of a group run one statement after another, each a round
    /// trip to the connection's thread. On the server's runtime the SQLite
    /// writer would wait behind every request task between two statements
    /// (the groups took ~600 us per write under load, measured); on a
    /// thread and runtime of its own it is scheduled as soon as a
    /// statement returns. On PostgreSQL the writer is a task on the
    /// server's runtime, the one the pool's connections do their I/O on.
    ///
    /// `hook`, if any, runs with every group (see [`GroupHook`]).
    pub(super) fn new(db: DatabaseConnection, turn: Turn, hook: Hook) -> std::io::Result<Self> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(receiver));
        let writer_db = db.clone();
        if db.get_database_backend() == DatabaseBackend::Sqlite {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || {
                    runtime.block_on(write_groups(writer_db, turn, hook, queue, MAX_GROUP))
                })?;
        } else {
            for _ in 0..POSTGRES_GROUPS_IN_FLIGHT {
                let (db, turn, hook) = (writer_db.clone(), turn.clone(), hook.clone());
                tokio::spawn(write_groups(
                    db,
                    turn,
                    hook,
                    queue.clone(),
                    MAX_POSTGRES_GROUP,
                ));
            }
        }
        Ok(Self { db, queue: sender })
    }

    /// Runs `work` in a write transaction and returns its result once that
    /// is committed. An error from `work` undoes what it wrote. `work` may
    /// be run more than once, each time in a fresh transaction. Unless
    /// `grouped`, on PostgreSQL it is a transaction of its own (see
    /// [`super::Db::write_contended`]).
    pub(super) async fn write<T, F>(&self, work: F, grouped: bool) -> crate::error::AppResult<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t DatabaseTransaction) -> WriteFuture<'t, T> + Send + Sync + 'static,
    {
        if !grouped && self.db.get_database_backend() == DatabaseBackend::Postgres {
            let txn = begin_immediate(&self.db).await?;
            // On error the transaction is dropped, which rolls it back.
            let value = caught(work(&txn)).await?;
            txn.commit().await?;
            return Ok(value);
        }
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let result: Arc<std::sync::Mutex<Option<crate::error::AppResult<T>>>> = Arc::default();
        let kept = result.clone();
        let work = Arc::new(work);
        let job = Job {
            run: Box::new(move |txn| {
                let (work, kept) = (work.clone(), kept.clone());
                Box::pin(async move {
                    let outcome = caught(work(txn)).await;
                    let ok = outcome.is_ok();
                    if let Ok(mut kept) = kept.lock() {
                        *kept = Some(outcome);
                    }
                    ok
                })
            }),
            finish: Box::new(move |committed| {
                let outcome = result.lock().ok().and_then(|mut kept| kept.take());
                let outcome = match (outcome, committed) {
                    (Some(Ok(value)), Ok(())) => Ok(value),
                    (Some(Err(err)), _) => Err(err),
                    (Some(Ok(_)), Err(err)) | (None, Err(err)) => Err(failed_group(err)),
                    (None, Ok(())) => Err(crate::error::AppError::internal(anyhow::anyhow!(
                        "a write was answered before it ran"
                    ))),
                };
                // The caller may have gone (a dropped request): fine.
                let _ = reply.send(outcome);
            }),
        };
        self.queue.send(job).map_err(|_| {
            crate::error::AppError::internal(anyhow::anyhow!("the database writer has stopped"))
        })?;
        outcome.await.map_err(|_| {
            crate::error::AppError::internal(anyhow::anyhow!("the database writer dropped a write"))
        })?
    }
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

/// Groups being written at once on PostgreSQL, each by a task of its own
/// on a connection of its own, taking the writes waiting from the one
/// queue, at most [`MAX_POSTGRES_GROUP`] each. A group's statements run
/// one after another, each a round trip; with one group at a time, every
/// write waiting (all of a busy server's) sat in one long group, then
/// waited for its commit. Two run their statements side by side and
/// overlap one's commit with the other's writes. They do not contend for
/// the chain head until their last statements, and then append in the
/// order they take it, which is their commit order (see the audit log's
/// `GroupHead`). Measured (`bench/w2.sh --db postgres`, three rounds
/// taking turns): revocations ×1.05–1.5 of one group of up to 64 (1 256
/// → 1 324, 1 019 → 1 604, 1 643 → 2 493 req/s; three groups, 1 317,
/// 2 158 and 2 249, were no better overall). SQLite has one writer at a
/// time anyway: one group.
const POSTGRES_GROUPS_IN_FLIGHT: usize = 2;

/// Most writes in one group on PostgreSQL: small enough that the writes
/// waiting are shared out among [`POSTGRES_GROUPS_IN_FLIGHT`] groups.
const MAX_POSTGRES_GROUP: usize = 16;

/// The queue of writes, shared by the tasks that write groups.
type Queue = Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Job>>>;

/// A writing thread or task: takes every write waiting (up to
/// `max_group`: [`MAX_GROUP`], on PostgreSQL [`MAX_POSTGRES_GROUP`]), runs
/// them in one transaction, commits, answers them, and again.
async fn write_groups(
    db: DatabaseConnection,
    turn: Turn,
    hook: Hook,
    queue: Queue,
    max_group: usize,
) {
    let mut group = Vec::with_capacity(max_group);
    loop {
        // The queue is held only while taking from it, so another task
        // takes the next writes while this one runs its group.
        let taken = queue.lock().await.recv_many(&mut group, max_group).await;
        if taken == 0 {
            break; // the queue is closed: the last `Writer` is gone
        }
        let _turn = turn.take().await;
        let started = std::time::Instant::now();
        let size = group.len();
        if let Ok(true) = in_scope(&hook, run_in_one(&db, &hook, &mut group)).await {
            tracing::debug!(
                writes = size,
                elapsed_us = started.elapsed().as_micros() as u64,
                "write group committed"
            );
            for job in group.drain(..) {
                (job.finish)(Ok(()));
            }
            continue;
        }
        tracing::debug!(
            writes = size,
            "write group failed; running its writes one by one"
        );
        for mut job in group.drain(..) {
            let alone = in_scope(
                &hook,
                run_in_one(&db, &hook, std::slice::from_mut(&mut job)),
            )
            .await;
            // A write that failed (`Ok(false)`) answers with its own error.
            (job.finish)(alone.as_ref().map(|_| ()));
        }
    }
}

/// Runs `jobs` in one transaction: `Ok(true)` once it is committed,
/// `Ok(false)` when one of them failed (all rolled back), `Err` when the
/// transaction itself could not begin or commit.
async fn run_in_one(db: &DatabaseConnection, hook: &Hook, jobs: &mut [Job]) -> GroupDone {
    GroupDone(run_jobs(db, hook, jobs).await)
}

/// Runs a group through the hook's [`GroupHook::scope`], if there is one.
async fn in_scope(
    hook: &Hook,
    group: impl std::future::Future<Output = GroupDone> + Send,
) -> Result<bool, DbErr> {
    match hook {
        Some(hook) => hook.scope(Box::pin(group)).await.0,
        None => group.await.0,
    }
}

async fn run_jobs(db: &DatabaseConnection, hook: &Hook, jobs: &mut [Job]) -> Result<bool, DbErr> {
    let txn = begin_immediate(db).await?;
    for job in jobs.iter_mut() {
        if !(job.run)(&txn).await {
            txn.rollback().await?;
            return Ok(false);
        }
    }
    if let Some(hook) = hook {
        hook.before_commit(&txn).await?;
    }
    txn.commit().await?;
    Ok(true)
}
