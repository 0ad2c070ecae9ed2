//! Writing the seed: multi-row inserts, a chunk per write transaction,
//! built on a blocking thread while the previous chunk is written, and the
//! audit events appended to the chain in batches.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, InsertMany, QueryTrait, Statement,
};
use tokio::sync::mpsc;

use session_manager::{
    db::Db,
    error::{AppError, AppResult},
    service::audit::{self, NewEvent},
};

use super::{
    ROWS_PER_STATEMENT, SeedPlan,
    fake::{Rng, World, fake_event},
};

/// What one write transaction writes, built off the runtime.
pub(super) enum Batch {
    /// Multi-row inserts.
    Rows(Vec<Statement>),
    /// Audit events, appended to the chain with [`audit::record_batch`].
    Events(Vec<(NewEvent, DateTime<Utc>)>),
}

/// Runs `produce` on a blocking thread and writes each batch it sends in a
/// write transaction of its own. Building rows, events and SQL costs about
/// as much as the database's inserting them, so the two overlap. Returns
/// the chain head's `seq` after the last batch of events, if any.
pub(super) async fn write_pipelined(
    db: &Db,
    produce: impl FnOnce(mpsc::Sender<Batch>) -> AppResult<()> + Send + 'static,
) -> AppResult<Option<i64>> {
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let producer = tokio::task::spawn_blocking(move || produce(tx));
    let written = async {
        let mut head_seq = None;
        while let Some(batch) = rx.recv().await {
            head_seq = write_batch(db, batch).await?.or(head_seq);
        }
        Ok::<_, AppError>(head_seq)
    }
    .await;
    // On a write error the receiver is gone, so the producer stops too.
    let produced = producer.await.map_err(AppError::internal)?;
    let head_seq = written?;
    produced?;
    Ok(head_seq)
}

pub(super) async fn write_batch(db: &Db, batch: Batch) -> AppResult<Option<i64>> {
    let txn = db.transaction().await?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        // Inserts into the random-order indexes (user, actor, session, token
        // hash) re-read pages that SQLite's default 2 MB cache has dropped.
        txn.execute_unprepared("PRAGMA cache_size = -524288")
            .await?;
    }
    let head_seq = match batch {
        Batch::Rows(statements) => {
            for statement in statements {
                txn.execute_raw(statement).await?;
            }
            None
        }
        Batch::Events(events) => Some(audit::record_batch(&txn, events).await?),
    };
    txn.commit().await?;
    Ok(head_seq)
}

/// Inserts `rows` in multi-row statements, `batch` rows per write
/// transaction.
pub(super) async fn insert_rows<M, A>(
    db: &Db,
    batch: usize,
    rows: Arc<Vec<M>>,
    statement: fn(&[M]) -> InsertMany<A>,
) -> AppResult<()>
where
    M: Send + Sync + 'static,
    A: ActiveModelTrait + 'static,
{
    let backend = db.get_database_backend();
    write_pipelined(db, move |tx| {
        for chunk in rows.chunks(batch.max(1)) {
            let statements = chunk
                .chunks(ROWS_PER_STATEMENT)
                .map(|part| statement(part).build(backend))
                .collect();
            if tx.blocking_send(Batch::Rows(statements)).is_err() {
                break;
            }
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// Appends `plan.audit_events` events, spread over `span` from `start`, to
/// the chain with [`audit::record_batch`], `plan.batch` per transaction;
/// returns the new head `seq`.
pub(super) async fn append_events(
    db: &Db,
    world: World,
    plan: &SeedPlan,
    start: DateTime<Utc>,
    span: Duration,
    mut rng: Rng,
) -> AppResult<i64> {
    let total = plan.audit_events;
    let bench_events = plan.bench_user_events.min(total / 2);
    let per_transaction = plan.batch.max(1);
    let span_us = span.num_microseconds().unwrap_or(i64::MAX) as u128;
    let head_seq = write_pipelined(db, move |tx| {
        let mut done = 0usize;
        while done < total {
            let count = per_transaction.min(total - done);
            let mut batch = Vec::with_capacity(count);
            for i in done..done + count {
                // `bench_events` of them, evenly spaced, are about the bench user.
                let is_bench = (i + 1) * bench_events / total != i * bench_events / total;
                let subject = if is_bench {
                    0
                } else {
                    world.any_user(&mut rng)
                };
                let offset_us = (i as u128 * span_us / total as u128) as i64;
                let created_at = start + Duration::microseconds(offset_us);
                let event = loop {
                    let event = fake_event(&world, &mut rng, subject, created_at);
                    // The bench user's count is exact: skip the kinds that
                    // name no user (a sign-in with an unknown email).
                    if !is_bench || event.user_id == Some(world.users[0].id) {
                        break event;
                    }
                };
                batch.push((event, created_at));
            }
            if tx.blocking_send(Batch::Events(batch)).is_err() {
                break;
            }
            done += count;
        }
        Ok(())
    })
    .await?;
    match head_seq {
        Some(seq) => Ok(seq),
        // No events: the head as it stands.
        None => Ok(audit::lock_head(db).await?.head_seq),
    }
}
