//! The outbox: the audit log, read in `seq` order by every outbound
//! destination from its own cursor. This module holds the cursors' rules,
//! the same for every kind of destination (webhook endpoints; SSF streams
//! later): which destinations are due, the lease that gives one to one
//! server process at a time, advancing past what was delivered, backing
//! off after a failure, and the log of attempts. The worker that drives
//! them is [`crate::outbox`].
//!
//! Every change to a cursor is a conditional update naming the process
//! holding the lease (and, when the cursor moves, the position it moves
//! from): a process that lost its lease, or whose destination was replayed
//! or deleted meanwhile, changes nothing and stops. That is the same SQL on
//! both databases: on PostgreSQL an `UPDATE … WHERE` waits for a
//! concurrent update of the row and re-checks its condition on the row as
//! committed, so two processes can never both claim one; on SQLite writes
//! take turns anyway.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{audit_event, outbox_attempt, outbox_cursor};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    db::Db,
    error::{AppError, AppResult},
};

/// Most attempts `attempts` answers at once.
pub const MAX_ATTEMPTS_PAGE: u64 = 100;
/// Most due destinations one pass of the worker looks at.
const DUE_PAGE: u64 = 200;
/// The longest wait between two retries, however many failed.
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(3_600);

/// A new cursor for the destination `id` of `kind`, after the event
/// `after_seq` (the destination gets the events after it).
pub fn new_cursor(
    id: Uuid,
    kind: &str,
    after_seq: i64,
    now: DateTime<Utc>,
) -> outbox_cursor::Model {
    outbox_cursor::Model {
        id,
        kind: kind.to_owned(),
        cursor_seq: after_seq,
        enabled: true,
        disabled_at: None,
        disabled_reason: None,
        lease_owner: None,
        lease_until: None,
        attempts: 0,
        failing_since: None,
        next_attempt_at: None,
        last_success_at: None,
        last_failure_at: None,
        created_at: now,
    }
}

/// The cursor of `id`, else `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<outbox_cursor::Model> {
    outbox_cursor::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("destination not found".into()))
}

/// The cursors of the destinations `ids`, by id: for listing
/// destinations with their health in one query.
pub async fn cursors_of(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> AppResult<std::collections::HashMap<Uuid, outbox_cursor::Model>> {
    Ok(outbox_cursor::Entity::find()
        .filter(outbox_cursor::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect())
}

/// The `seq` of the newest committed audit event (0 for none).
pub async fn head_seq(conn: &impl ConnectionTrait) -> AppResult<i64> {
    let head: Option<i64> = audit_event::Entity::find()
        .select_only()
        .column_as(audit_event::Column::Seq.max(), "head")
        .into_tuple::<Option<i64>>()
        .one(conn)
        .await?
        .flatten();
    Ok(head.unwrap_or(0))
}

/// A destination that is free for `owner`: not leased, leased by `owner`
/// itself, or leased by a process whose lease has run out.
fn free_for(owner: &str, now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(outbox_cursor::Column::LeaseOwner.is_null())
        .add(outbox_cursor::Column::LeaseOwner.eq(owner))
        .add(outbox_cursor::Column::LeaseUntil.lt(now))
}

/// Destinations of `kinds` with events to deliver now: enabled, behind
/// `head`, not backing off, and free for `owner`. (Kinds the worker does
/// not deliver, such as poll streams, never come up.)
pub async fn due(
    db: &Db,
    owner: &str,
    kinds: &[&str],
    head: i64,
    now: DateTime<Utc>,
) -> AppResult<Vec<outbox_cursor::Model>> {
    Ok(outbox_cursor::Entity::find()
        .filter(outbox_cursor::Column::Enabled.eq(true))
        .filter(outbox_cursor::Column::Kind.is_in(kinds.iter().copied()))
        .filter(outbox_cursor::Column::CursorSeq.lt(head))
        .filter(
            Condition::any()
                .add(outbox_cursor::Column::NextAttemptAt.is_null())
                .add(outbox_cursor::Column::NextAttemptAt.lte(now)),
        )
        .filter(free_for(owner, now))
        .order_by_asc(outbox_cursor::Column::CursorSeq)
        .limit(DUE_PAGE)
        .all(db)
        .await?)
}

/// Takes (or renews) the lease on `id` for `owner` until `until`, if the
/// destination is free for it and still enabled. `true` when `owner`
/// holds it now.
pub async fn claim(
    db: &Db,
    id: Uuid,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> AppResult<bool> {
    let done = outbox_cursor::Entity::update_many()
        .col_expr(outbox_cursor::Column::LeaseOwner, Expr::value(owner))
        .col_expr(outbox_cursor::Column::LeaseUntil, Expr::value(until))
        .filter(outbox_cursor::Column::Id.eq(id))
        .filter(outbox_cursor::Column::Enabled.eq(true))
        .filter(free_for(owner, now))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Renews `owner`'s lease on `id` until `until`, if it still holds it
/// and the cursor is still at `at` (not replayed meanwhile). `false` when
/// it must stop.
pub async fn renew(
    db: &Db,
    id: Uuid,
    owner: &str,
    at: i64,
    until: DateTime<Utc>,
) -> AppResult<bool> {
    let done = outbox_cursor::Entity::update_many()
        .col_expr(outbox_cursor::Column::LeaseUntil, Expr::value(until))
        .filter(outbox_cursor::Column::Id.eq(id))
        .filter(outbox_cursor::Column::Enabled.eq(true))
        .filter(outbox_cursor::Column::LeaseOwner.eq(owner))
        .filter(outbox_cursor::Column::CursorSeq.eq(at))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Gives the lease on `id` up (nothing when `owner` no longer holds it).
pub async fn release(db: &Db, id: Uuid, owner: &str) -> AppResult<()> {
    outbox_cursor::Entity::update_many()
        .col_expr(
            outbox_cursor::Column::LeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(
            outbox_cursor::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(outbox_cursor::Column::Id.eq(id))
        .filter(outbox_cursor::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives up every lease `owner` holds (a server shutting down).
pub async fn release_all(db: &Db, owner: &str) -> AppResult<()> {
    outbox_cursor::Entity::update_many()
        .col_expr(
            outbox_cursor::Column::LeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(
            outbox_cursor::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(outbox_cursor::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

/// The events after `after`, oldest first, at most `limit`.
pub async fn events_after(
    conn: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> AppResult<Vec<audit_event::Model>> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::Seq.gt(after))
        .order_by_asc(audit_event::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Moves the cursor of `id` from `from` to `to` for `owner` (events the
/// destination does not want are passed over this way). `false` when the
/// lease or the position changed meanwhile: stop.
pub async fn pass_over(
    conn: &impl ConnectionTrait,
    id: Uuid,
    owner: &str,
    from: i64,
    to: i64,
) -> AppResult<bool> {
    let done = outbox_cursor::Entity::update_many()
        .col_expr(outbox_cursor::Column::CursorSeq, Expr::value(to))
        .filter(outbox_cursor::Column::Id.eq(id))
        .filter(outbox_cursor::Column::LeaseOwner.eq(owner))
        .filter(outbox_cursor::Column::CursorSeq.eq(from))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// What one attempt at one event came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    pub response_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// The event an attempt was at, as the attempt's row records it (what a
/// delivery keeps of its event until it is recorded).
#[derive(Debug, Clone)]
pub struct Attempted {
    pub id: Uuid,
    pub seq: i64,
    pub event_type: String,
}

impl From<&audit_event::Model> for Attempted {
    fn from(event: &audit_event::Model) -> Self {
        Self {
            id: event.id,
            seq: event.seq,
            event_type: event.event_type.clone(),
        }
    }
}

fn attempt_row(
    id: Uuid,
    event: Attempted,
    attempt: i32,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> outbox_attempt::ActiveModel {
    outbox_attempt::Model {
        id: Uuid::now_v7(),
        destination_id: id,
        event_id: event.id,
        event_seq: event.seq,
        event_type: event.event_type,
        attempt,
        status: if outcome.ok { "success" } else { "failed" }.to_owned(),
        response_code: outcome.response_code.map(i32::from),
        latency_ms: outcome.latency_ms,
        error: outcome.error.as_ref().map(|e| truncate(e, 500)),
        created_at: now,
    }
    .into()
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One event delivered, not yet recorded (see [`advance`]).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub event: Attempted,
    pub attempt: i32,
    pub outcome: Outcome,
}

/// Records a turn's progress since the cursor was stored at `from`: the
/// cursor moved to `to` (the last event delivered or passed over), a row
/// for each attempt in `delivered` (one insert), and, when anything was
/// delivered, the destination's failures forgotten — in one transaction.
/// The worker records a batch of deliveries at a time this way, so a
/// busy destination costs one write per batch instead of one per event
/// (a crash before the commit delivers the batch again: at-least-once, as
/// for a crash mid-attempt). `false` (nothing written) when `owner` lost
/// the lease or the cursor moved meanwhile.
///
/// It goes through the grouped writer ([`Db::write`]), so it shares the
/// commit of whatever requests write meanwhile: a transaction of its own
/// was, on SQLite, a turn of the one writer and a sync of its own for
/// every batch, taken from the requests (W2 with one webhook endpoint
/// lost 10–17 % of its rate on SQLite and none on PostgreSQL). Nothing
/// else writes the row while the lease is held but a management change,
/// which moves the cursor or the lease and so makes this write nothing.
pub async fn advance(
    db: &Db,
    id: Uuid,
    owner: &str,
    from: i64,
    to: i64,
    delivered: Vec<Delivered>,
) -> AppResult<bool> {
    let now = crate::db::now();
    let rows: Arc<Vec<outbox_attempt::ActiveModel>> = Arc::new(
        delivered
            .into_iter()
            .map(|d| attempt_row(id, d.event, d.attempt, &d.outcome, now))
            .collect(),
    );
    let owner: Arc<str> = owner.into();
    db.write(move |txn| {
        let rows = rows.clone();
        let owner = owner.clone();
        Box::pin(async move {
            let mut update = outbox_cursor::Entity::update_many()
                .col_expr(outbox_cursor::Column::CursorSeq, Expr::value(to));
            if !rows.is_empty() {
                update = update.col_expr(outbox_cursor::Column::LastSuccessAt, Expr::value(now));
                update = forget_failures(update);
            }
            let done = update
                .filter(outbox_cursor::Column::Id.eq(id))
                .filter(outbox_cursor::Column::LeaseOwner.eq(&*owner))
                .filter(outbox_cursor::Column::CursorSeq.eq(from))
                .exec(txn)
                .await?;
            if done.rows_affected != 1 {
                // Nothing was written: the group goes on without it.
                return Ok(false);
            }
            if !rows.is_empty() {
                outbox_attempt::Entity::insert_many(rows.iter().cloned())
                    .exec_without_returning(txn)
                    .await?;
            }
            Ok(true)
        })
    })
    .await
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// The event has failed for longer than the destination retries:
    /// disabled.
    Disabled,
    /// The lease or the position changed meanwhile; nothing was written.
    Lost,
}

/// The back-off after `failures` failed attempts: `base` doubled per
/// failure after the first, at most [`MAX_BACKOFF`], then between half and
/// all of it (jitter, so endpoints that failed together do not retry
/// together).
pub fn backoff(base: std::time::Duration, failures: i32, jitter: f64) -> std::time::Duration {
    let doubled = base.saturating_mul(1u32 << failures.clamp(1, 20).saturating_sub(1) as u32);
    let capped = doubled.min(MAX_BACKOFF);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A number in [0, 1) from the OS random source (0.5 if it fails).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Records a failed attempt at the event after the cursor `at` and backs
/// off, or, when the event has been failing for `retry_for` already,
/// disables the destination (the caller audits that) — in one
/// transaction, with the lease given up either way.
#[allow(clippy::too_many_arguments)]
pub async fn failed(
    db: &Db,
    cursor: &outbox_cursor::Model,
    owner: &str,
    event: &audit_event::Model,
    outcome: &Outcome,
    base: std::time::Duration,
    retry_for: std::time::Duration,
    on_disable: impl FnOnce(&str) -> crate::service::audit::NewEvent,
) -> AppResult<AfterFailure> {
    let now = crate::db::now();
    let failures = cursor.attempts.saturating_add(1);
    let since = cursor.failing_since.unwrap_or(now);
    let give_up = now - since >= crate::config::Config::chrono(retry_for);
    let txn = db.transaction().await?;
    let mut update = outbox_cursor::Entity::update_many()
        .col_expr(outbox_cursor::Column::Attempts, Expr::value(failures))
        .col_expr(outbox_cursor::Column::FailingSince, Expr::value(since))
        .col_expr(outbox_cursor::Column::LastFailureAt, Expr::value(now))
        .col_expr(
            outbox_cursor::Column::LeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(
            outbox_cursor::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        );
    let reason = format!(
        "delivery of event {} failed for {} ({} attempts): {}",
        event.seq,
        crate::config::format_duration((now - since).to_std().unwrap_or_default()),
        failures,
        outcome.error.as_deref().unwrap_or("failed")
    );
    let after = if give_up {
        update = update
            .col_expr(outbox_cursor::Column::Enabled, Expr::value(false))
            .col_expr(outbox_cursor::Column::DisabledAt, Expr::value(now))
            .col_expr(
                outbox_cursor::Column::DisabledReason,
                Expr::value(truncate(&reason, 500)),
            )
            .col_expr(
                outbox_cursor::Column::NextAttemptAt,
                Expr::value(None::<DateTime<Utc>>),
            );
        AfterFailure::Disabled
    } else {
        let wait = crate::config::Config::chrono(backoff(base, failures, jitter()));
        update = update.col_expr(
            outbox_cursor::Column::NextAttemptAt,
            Expr::value(now + wait),
        );
        AfterFailure::RetryAt(now + wait)
    };
    let done = update
        .filter(outbox_cursor::Column::Id.eq(cursor.id))
        .filter(outbox_cursor::Column::LeaseOwner.eq(owner))
        .filter(outbox_cursor::Column::CursorSeq.eq(cursor.cursor_seq))
        .exec(&txn)
        .await?;
    if done.rows_affected != 1 {
        return Ok(AfterFailure::Lost);
    }
    outbox_attempt::Entity::insert(attempt_row(cursor.id, event.into(), failures, outcome, now))
        .exec_without_returning(&txn)
        .await?;
    if give_up {
        crate::service::audit::record(&txn, on_disable(&reason)).await?;
    }
    txn.commit().await?;
    Ok(after)
}

/// `update` also forgets the destination's failures: no attempts counted,
/// not failing, nothing scheduled.
fn forget_failures(
    update: sea_orm::UpdateMany<outbox_cursor::Entity>,
) -> sea_orm::UpdateMany<outbox_cursor::Entity> {
    update
        .col_expr(outbox_cursor::Column::Attempts, Expr::value(0))
        .col_expr(
            outbox_cursor::Column::FailingSince,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(
            outbox_cursor::Column::NextAttemptAt,
            Expr::value(None::<DateTime<Utc>>),
        )
}

/// Moves the cursor of `id` back (or on) so that the next event delivered
/// is the first at or after `from_seq`, with its failures forgotten. The
/// process delivering it, if any, notices at its next step and stops; the
/// next pass starts from here.
pub async fn rewind(conn: &impl ConnectionTrait, id: Uuid, from_seq: i64) -> AppResult<()> {
    let update = outbox_cursor::Entity::update_many()
        .col_expr(outbox_cursor::Column::CursorSeq, Expr::value(from_seq - 1));
    forget_failures(update)
        .filter(outbox_cursor::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Enables or disables the destination `id`. Enabling forgets the
/// failures of the event it stopped at, which is tried again at once.
pub async fn set_enabled(conn: &impl ConnectionTrait, id: Uuid, enabled: bool) -> AppResult<()> {
    let now = crate::db::now();
    let mut update = outbox_cursor::Entity::update_many()
        .col_expr(outbox_cursor::Column::Enabled, Expr::value(enabled));
    update = forget_failures(update);
    update = if enabled {
        update
            .col_expr(
                outbox_cursor::Column::DisabledAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                outbox_cursor::Column::DisabledReason,
                Expr::value(None::<String>),
            )
    } else {
        update
            .col_expr(outbox_cursor::Column::DisabledAt, Expr::value(now))
            .col_expr(
                outbox_cursor::Column::DisabledReason,
                Expr::value("disabled by an owner"),
            )
    };
    update
        .filter(outbox_cursor::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes the cursor of `id` and its attempts (inside the caller's
/// transaction, with the destination itself).
pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    outbox_attempt::Entity::delete_many()
        .filter(outbox_attempt::Column::DestinationId.eq(id))
        .exec(conn)
        .await?;
    outbox_cursor::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

/// Attempts at `id`, newest first, at most `limit` (1 to
/// [`MAX_ATTEMPTS_PAGE`]), older than the attempt `after` when given.
pub async fn attempts(
    conn: &impl ConnectionTrait,
    id: Uuid,
    limit: u64,
    after: Option<Uuid>,
) -> AppResult<Vec<outbox_attempt::Model>> {
    if !(1..=MAX_ATTEMPTS_PAGE).contains(&limit) {
        return Err(AppError::bad_input(
            "limit",
            format!("limit must be between 1 and {MAX_ATTEMPTS_PAGE}"),
        ));
    }
    let mut query = outbox_attempt::Entity::find()
        .filter(outbox_attempt::Column::DestinationId.eq(id))
        .order_by_desc(outbox_attempt::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(outbox_attempt::Column::Id.lt(after));
    }
    Ok(query.all(conn).await?)
}

/// Deletes attempts made before `cutoff`, at most `batch` (maintenance).
pub async fn purge_attempts_before(db: &Db, cutoff: DateTime<Utc>, batch: u64) -> AppResult<u64> {
    let ids: Vec<Uuid> = outbox_attempt::Entity::find()
        .select_only()
        .column(outbox_attempt::Column::Id)
        .filter(outbox_attempt::Column::CreatedAt.lt(cutoff))
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let done = outbox_attempt::Entity::delete_many()
        .filter(outbox_attempt::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// A kind of destination the worker delivers to (webhook endpoints; SSF
/// streams later): how to open one by its id.
#[async_trait::async_trait]
pub trait Destination: Send + Sync + 'static {
    /// The `kind` of its cursors.
    fn kind(&self) -> &'static str;

    /// What delivering to the destination `id` needs, read afresh at the
    /// start of each turn and after every event that changed it
    /// ([`Sender::changed_by`]); `None` when it no longer exists.
    async fn open(&self, db: &Db, id: Uuid) -> AppResult<Option<Box<dyn Sender>>>;
}

/// One destination, opened for a turn of delivery.
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    /// Does it take this event? Others are passed over.
    fn wants(&self, event: &audit_event::Model) -> bool;

    /// Does this event record a change of the destination itself (its
    /// filter, address or key)? The worker then opens it afresh before the
    /// next event, so a change applies from the next event in chain order
    /// on, even to a turn that opened it before the change committed.
    fn changed_by(&self, event: &audit_event::Model) -> bool;

    /// One attempt at delivering `event`; it must end within the lease
    /// (the worker renews the lease just before).
    async fn send(&self, event: &audit_event::Model) -> Outcome;

    /// The audit event recording that the destination was disabled after
    /// failing for too long, with `reason`.
    fn disabled_event(&self, reason: &str) -> crate::service::audit::NewEvent;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn back_off_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(base, 1, 0.0), Duration::from_millis(2_500));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(base, 4, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(base, 30, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(base, 1_000, 0.0), MAX_BACKOFF / 2);
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(300), 501);
        assert!(cut.len() <= 504 && cut.ends_with('…'), "{cut}");
    }
}
