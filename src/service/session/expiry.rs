//! Sessions that expired: their end recorded once, and the ended ones
//! deleted after retention.

use chrono::Utc;
use entity::{session, user};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use super::end_reasons;
use crate::{
    db::{self, Db},
    error::AppResult,
    service::audit::{self, NewEvent, events},
};

/// Why an expired session ended: `(end_reason, the event's reason)`.
pub fn expiry_reason(session: &session::Model) -> (&'static str, &'static str) {
    // `expires_at` is the earlier of the absolute expiry and the idle one.
    if session.expires_at >= session.absolute_expires_at {
        (end_reasons::EXPIRED, "absolute")
    } else {
        (end_reasons::IDLE_TIMEOUT, "idle")
    }
}

/// Records that `session` (owned by `owner`) has expired, inside the
/// caller's write transaction: sets its `end_reason` and appends one
/// `session.expired` event. The update is conditional (still unrecorded,
/// not revoked, expired by now), so however many requests, maintenance
/// passes and replicas meet the session, one of them records it and the
/// others write nothing. Returns whether this call recorded it.
pub async fn record_expiry(
    conn: &impl ConnectionTrait,
    session: &session::Model,
    owner: &user::Model,
) -> AppResult<bool> {
    let now = db::now();
    let (end_reason, reason) = expiry_reason(session);
    let updated = session::Entity::update_many()
        .col_expr(session::Column::EndReason, Expr::value(end_reason))
        .filter(session::Column::Id.eq(session.id))
        .filter(session::Column::EndReason.is_null())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.lte(now))
        .exec(conn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    let mut event = NewEvent::success(
        events::SESSION_EXPIRED,
        format!(
            "session {}… of {} expired ({reason})",
            session.token_prefix, owner.email
        ),
    )
    .subject(owner.id)
    .session(session.id)
    .meta("sessionId", session.id.to_string())
    .meta("userId", owner.id.to_string())
    .meta("userEmail", owner.email.clone())
    .meta("reason", reason)
    .meta("expiredAt", session.expires_at.to_rfc3339());
    if let Some(admin) = session.impersonator_id {
        event = event.meta("impersonatedBy", admin.to_string());
    }
    audit::record(conn, event).await?;
    Ok(true)
}

/// [`record_expiry`] for a request that met an expired session, as a write
/// of its own. At most one such write per session runs at a time in this
/// process: the other requests with the same token are answered at once
/// (the first one records it, or the maintenance pass will). A failure is
/// logged, never the request's error: the answer is `UNAUTHENTICATED`
/// either way.
pub(super) async fn record_expiry_once(db: &Db, session: &session::Model, owner: &user::Model) {
    static RECORDING: std::sync::Mutex<Vec<Uuid>> = std::sync::Mutex::new(Vec::new());
    /// Removes the session from [`RECORDING`] however the write ends (the
    /// request may be dropped half-way).
    struct Claim(Uuid);
    impl Drop for Claim {
        fn drop(&mut self) {
            RECORDING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|id| *id != self.0);
        }
    }
    {
        let mut recording = RECORDING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recording.contains(&session.id) {
            return;
        }
        recording.push(session.id);
    }
    let _claim = Claim(session.id);
    let written = async {
        let txn = db.transaction().await?;
        let recorded = record_expiry(&txn, session, owner).await?;
        txn.commit().await?;
        AppResult::Ok(recorded)
    }
    .await;
    if let Err(err) = written {
        tracing::warn!(session_id = %session.id, error = %err, "recording a session's expiry failed; the maintenance pass will");
    }
}

/// Records the expiry of sessions that ended unrecorded (nobody used them
/// after they expired): at most `limit` per call, oldest expiry first, in
/// write transactions of at most `per_transaction` sessions. The query
/// reads `ix_sessions_unrecorded_expiry` (see its migration), so it costs
/// the same whatever number of sessions are live or ended before. Returns how many it recorded.
pub async fn record_expired(
    db: &Db,
    now: chrono::DateTime<Utc>,
    limit: u64,
    per_transaction: usize,
) -> AppResult<u64> {
    let found = unrecorded_expired_query(now)
        .limit(limit)
        .find_also_related(user::Entity)
        .all(db)
        .await?;
    let mut recorded = 0;
    for chunk in found.chunks(per_transaction.max(1)) {
        let txn = db.transaction().await?;
        for (session, owner) in chunk {
            if let Some(owner) = owner
                && record_expiry(&txn, session, owner).await?
            {
                recorded += 1;
            }
        }
        txn.commit().await?;
        tokio::task::yield_now().await;
    }
    Ok(recorded)
}

/// Expired sessions whose end is not recorded, oldest expiry first, as
/// `ix_sessions_unrecorded_expiry` serves them on both databases.
pub fn unrecorded_expired_query(now: chrono::DateTime<Utc>) -> sea_orm::Select<session::Entity> {
    session::Entity::find()
        .filter(session::Column::EndReason.is_null())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.lte(now))
        .order_by_asc(session::Column::ExpiresAt)
}

/// Deletes sessions that ended (expired, or were revoked) before `cutoff`,
/// at most `batch` rows per statement so the write lock is never held
/// long. Their audit events stay. Returns how many were deleted.
pub async fn delete_ended_before(
    db: &Db,
    cutoff: chrono::DateTime<Utc>,
    batch: u64,
) -> AppResult<u64> {
    let mut deleted = 0;
    for ended in [session::Column::ExpiresAt, session::Column::RevokedAt] {
        loop {
            let ids: Vec<Uuid> = session::Entity::find()
                .select_only()
                .column(session::Column::Id)
                .filter(ended.lt(cutoff))
                // An expired session whose expiry is not recorded yet waits
                // for its `session.expired` event (a backlog larger than
                // maintenance records in a pass must not lose events).
                .filter(
                    Condition::any()
                        .add(session::Column::RevokedAt.is_not_null())
                        .add(session::Column::EndReason.is_not_null()),
                )
                .limit(batch)
                .into_tuple()
                .all(db)
                .await?;
            if ids.is_empty() {
                break;
            }
            // Each delete is a statement of its own on the `Db`: committed
            // alone, in its turn to write.
            deleted += session::Entity::delete_many()
                .filter(session::Column::Id.is_in(ids))
                .exec(db)
                .await?
                .rows_affected;
            tokio::task::yield_now().await;
        }
    }
    Ok(deleted)
}
