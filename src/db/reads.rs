//! Connections for the reads that every request makes: the token check and
//! the sessions list.
//!
//! On SQLite each sqlx connection is a thread of its own, and sqlx's pool
//! pings every connection it takes back: after each statement, one more
//! round trip to that thread (two thread wake-ups and a spawned task), which
//! costs about as much as one of these small reads. Here a connection goes
//! back to the idle list as soon as its statement has run to the end; one
//! whose statement did not (its request was dropped mid-way) is closed
//! rather than reused, which is what the ping is there to catch. Everywhere
//! else (PostgreSQL; an in-memory SQLite database, which lives only in its
//! pool's connections) the reads go through the pool.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, ExecResult, QueryResult,
    RuntimeErr, Statement, metric,
    sqlx::{
        self, AssertSqlSafe, Connection,
        sqlite::{SqliteConnectOptions, SqliteConnection},
    },
};
use sea_query_sqlx::SqlxValues;

type MetricCallback = Arc<dyn Fn(&metric::Info<'_>) + Send + Sync>;

/// Runs reads on connections of its own (SQLite files) or on the pool;
/// writes always go to the pool.
#[derive(Clone)]
pub struct Reads {
    db: DatabaseConnection,
    sqlite: Option<Arc<SqliteReads>>,
    metric: Option<MetricCallback>,
}

struct SqliteReads {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    /// One per connection that may exist, idle or in use.
    permits: tokio::sync::Semaphore,
}

impl Reads {
    /// Reads for the database behind `db` (whose pool must have run the
    /// migrations already, so that the file exists).
    pub async fn new(db: DatabaseConnection) -> Result<Self, DbErr> {
        let sqlite = if db.get_database_backend() == DatabaseBackend::Sqlite && is_file(&db).await?
        {
            let options = (*db.get_sqlite_connection_pool().connect_options()).clone();
            Some(Arc::new(SqliteReads {
                options,
                idle: Mutex::new(Vec::new()),
                // Two per core, as many as the baseline's read pool on two
                // cores: WAL readers do not wait for writers, but each read
                // waits for its connection's thread to wake and to hand the
                // row back, and with one per core the connections sat in
                // those hand-offs while requests queued here (W6, measured:
                // 25 000 -> 37 000 req/s with two per core, 39 000 with
                // four; each connection costs a page cache of up to 2 MB).
                permits: tokio::sync::Semaphore::new(2 * super::sqlite_pool_size()),
            }))
        } else {
            None
        };
        Ok(Self {
            db,
            sqlite,
            metric: None,
        })
    }

    /// Closes the connections kept for reads, as `DatabaseConnection::close`
    /// does the pool's, so that SQLite finishes its files cleanly at
    /// shutdown. A later read opens a connection again.
    pub async fn close(&self) {
        let Some(sqlite) = &self.sqlite else { return };
        let idle = std::mem::take(&mut *sqlite.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for conn in idle {
            if let Err(err) = conn.close().await {
                tracing::warn!(error = %err, "closing a read connection failed");
            }
        }
    }

    /// Calls `callback` after each statement run here or on its pool,
    /// as [`DatabaseConnection::set_metric_callback`] does for the pool.
    pub fn set_metric_callback<F>(&mut self, callback: F)
    where
        F: Fn(&metric::Info<'_>) + Send + Sync + 'static,
    {
        let callback: MetricCallback = Arc::new(callback);
        let pool = callback.clone();
        self.db.set_metric_callback(move |info| pool(info));
        self.metric = Some(callback);
    }

    async fn fetch(
        &self,
        sqlite: &SqliteReads,
        stmt: &Statement,
        one: bool,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let started = self.metric.as_ref().map(|_| Instant::now());
        let rows = sqlite.fetch(stmt, one).await;
        if let (Some(callback), Some(started)) = (&self.metric, started) {
            callback(&metric::Info {
                elapsed: started.elapsed(),
                statement: stmt,
                failed: rows.is_err(),
            });
        }
        rows
    }
}

/// The database is a file (an in-memory one has no file name).
async fn is_file(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
        ))
        .await?;
    let file: Option<String> = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => None,
    };
    Ok(file.is_some_and(|file| !file.is_empty()))
}

impl SqliteReads {
    async fn fetch(&self, stmt: &Statement, one: bool) -> Result<Vec<QueryResult>, DbErr> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.open().await?,
        };
        let values = stmt
            .values
            .clone()
            .unwrap_or_else(|| sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values));
        // If this future is dropped before the statement has run to the
        // end, `conn` is dropped with it: closed, never reused.
        let rows = if one {
            query
                .fetch_optional(&mut conn)
                .await
                .map(|row| row.into_iter().collect())
        } else {
            query.fetch_all(&mut conn).await
        };
        match rows {
            Ok(rows) => {
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
                Ok(rows.into_iter().map(QueryResult::from).collect())
            }
            // A failed statement leaves the connection as it was; a failed
            // connection is not worth keeping. Telling them apart is not
            // worth it for an error path: close it.
            Err(err) => Err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))),
        }
    }

    async fn open(&self) -> Result<SqliteConnection, DbErr> {
        let conn_err = |err| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)));
        let mut conn = SqliteConnection::connect_with(&self.options)
            .await
            .map_err(conn_err)?;
        super::stable_plans(&mut conn).await.map_err(conn_err)?;
        Ok(conn)
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.db.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.sqlite {
            Some(sqlite) => Ok(self.fetch(sqlite, &stmt, true).await?.pop()),
            None => self.db.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.sqlite {
            Some(sqlite) => self.fetch(sqlite, &stmt, false).await,
            None => self.db.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}
