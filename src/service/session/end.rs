//! Ending sessions: sign-out and revocation, one or all, each audited.

use std::sync::Arc;

use entity::{session, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryTrait, Statement,
    sea_query::{self, Expr},
};
use uuid::Uuid;

use super::{as_seen_by, find_with_owner, list::target, reasons, sessions_of};
use crate::{
    auth::{Actor, Caller, RequestMeta},
    db::{self, Db, Prepared},
    error::{AppError, AppResult, BAD_TOKEN},
    metrics::Metrics,
    service::{
        access,
        audit::{self, NewEvent, events},
        user as users,
    },
};

/// Ends `target` (owned by `owner`) on behalf of `caller`, with its audit
/// event, inside the caller's write transaction, and with it the
/// impersonation sessions that were opened from it. Returns the ended
/// session, or `None` when it had already ended: then nothing is written.
pub async fn end_session(
    conn: &impl ConnectionTrait,
    target: &session::Model,
    owner: &user::Model,
    actor: Actor,
    meta: &RequestMeta,
    reason: &str,
) -> AppResult<Option<session::Model>> {
    let Some((ended, has_children)) = end_one(conn, target, owner, actor, meta, reason).await?
    else {
        return Ok(None);
    };
    // Most sessions never opened an impersonation: the update said so
    // (see `end_one`), and then there is nothing more to read.
    if !has_children {
        return Ok(Some(ended));
    }
    let children = session::Entity::find()
        .filter(session::Column::ImpersonatorSessionId.eq(target.id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(db::now()))
        .find_also_related(user::Entity)
        .all(conn)
        .await?;
    for (child, child_owner) in children {
        if let Some(child_owner) = child_owner {
            end_one(
                conn,
                &child,
                &child_owner,
                actor,
                meta,
                reasons::IMPERSONATOR_SESSION_ENDED,
            )
            .await?;
        }
    }
    Ok(Some(ended))
}

/// The event of `target` (a session of `owner`) ended by `actor` at `at`
/// for `reason` (one of [`reasons`]): the one shape every revocation is
/// recorded in (and the seed data copies), before the request's origin.
pub fn revoked_event(
    target: &session::Model,
    owner: &user::Model,
    actor: Actor,
    at: chrono::DateTime<chrono::Utc>,
    reason: &str,
) -> NewEvent {
    let revoked_by = actor.id;
    NewEvent::success(
        events::SESSION_REVOKED,
        format!(
            "session {}… of {} revoked ({reason})",
            target.token_prefix, owner.email
        ),
    )
    .by_actor(actor)
    .subject(owner.id)
    .session(target.id)
    .meta("sessionId", target.id.to_string())
    .meta("userId", owner.id.to_string())
    .meta("userEmail", owner.email.clone())
    .meta("revokedBy", revoked_by.to_string())
    .meta("revokedAt", at.to_rfc3339())
    .meta("reason", reason)
}

/// Ends `target` and records it; `None` when it had already ended.
/// Otherwise the ended session, and whether impersonation sessions opened
/// from it were live when it ended (answered by the same statement, so
/// revoking a session that opened none, the usual case, is one round
/// trip here besides the audit event, which waits in the group).
async fn end_one(
    conn: &impl ConnectionTrait,
    target: &session::Model,
    owner: &user::Model,
    actor: Actor,
    meta: &RequestMeta,
    reason: &str,
) -> AppResult<Option<(session::Model, bool)>> {
    let now = db::now();
    let revoked_by = actor.id;
    let statement = end_statement(
        conn.get_database_backend(),
        target.id,
        now,
        revoked_by,
        reason,
    );
    // Conditional, so two concurrent revocations end it (and audit it) once:
    // no row when it had ended.
    let Some(row) = conn.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let has_children: bool = row.try_get_by_index(0)?;
    audit::record(
        conn,
        revoked_event(target, owner, actor, now, reason).from_request(meta),
    )
    .await?;
    let mut ended = target.clone();
    ended.revoked_at = Some(now);
    ended.revoked_by = Some(revoked_by);
    ended.revoke_reason = Some(reason.to_owned());
    Ok(Some((ended, has_children)))
}

/// Ends the session `id` if it is live (not revoked, not expired) at
/// `now`, and returns one row when it did: whether live impersonation
/// sessions were opened from it (`RETURNING EXISTS (...)`, both
/// databases). Its SQL is built once per backend (see [`Prepared`]).
fn end_statement(
    backend: DatabaseBackend,
    id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    revoked_by: Uuid,
    reason: &str,
) -> Statement {
    static END: Prepared = Prepared::new();
    // Placeholders, each distinct, swapped for the values.
    const REASON: &str = "end_statement reason";
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let micros = chrono::Duration::microseconds;
    let slots = EndValues {
        id: Uuid::from_u128(1),
        revoked_by: Uuid::from_u128(2),
        child_of: Uuid::from_u128(3),
        at: epoch,
        live_at: epoch + micros(1),
        child_live_at: epoch + micros(2),
        reason: REASON,
    };
    let values = EndValues {
        id,
        revoked_by,
        child_of: id,
        at: now,
        live_at: now,
        child_live_at: now,
        reason,
    };
    END.statement(
        backend,
        |backend| backend.build(&end_query(&slots)),
        [
            (slots.at.into(), values.at.into()),
            (slots.revoked_by.into(), values.revoked_by.into()),
            (slots.reason.into(), values.reason.into()),
            (slots.id.into(), values.id.into()),
            (slots.live_at.into(), values.live_at.into()),
            (slots.child_of.into(), values.child_of.into()),
            (slots.child_live_at.into(), values.child_live_at.into()),
        ],
    )
}

/// The values of [`end_query`], one field per bound value.
struct EndValues<'a> {
    id: Uuid,
    revoked_by: Uuid,
    /// `id` again: the session the impersonations were opened from.
    child_of: Uuid,
    at: chrono::DateTime<chrono::Utc>,
    live_at: chrono::DateTime<chrono::Utc>,
    child_live_at: chrono::DateTime<chrono::Utc>,
    reason: &'a str,
}

/// The update of [`end_statement`], built afresh.
fn end_query(v: &EndValues<'_>) -> sea_query::UpdateStatement {
    let children = sea_query::Query::select()
        .expr(Expr::val(1))
        .from(session::Entity)
        .and_where(session::Column::ImpersonatorSessionId.eq(v.child_of))
        .and_where(session::Column::RevokedAt.is_null())
        .and_where(session::Column::ExpiresAt.gt(v.child_live_at))
        .to_owned();
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(v.at))
        .col_expr(session::Column::RevokedBy, Expr::value(v.revoked_by))
        .col_expr(session::Column::RevokeReason, Expr::value(v.reason))
        .filter(session::Column::Id.eq(v.id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(v.live_at))
        .into_query();
    update.returning(sea_query::Query::returning().expr(Expr::exists(children)));
    update
}

/// [`end_session`] as a write of its own, through the (grouping) writer.
async fn end_session_written(
    db: &Db,
    target: &session::Model,
    owner: &user::Model,
    actor: Actor,
    meta: &RequestMeta,
    reason: &'static str,
) -> AppResult<Option<session::Model>> {
    let args = Arc::new((target.clone(), owner.clone(), meta.clone()));
    db.write(move |txn| {
        let args = args.clone();
        Box::pin(async move {
            let (target, owner, meta) = &*args;
            end_session(txn, target, owner, actor, meta, reason).await
        })
    })
    .await
}

/// Ends the caller's own session (counted as revoked in `metrics`).
#[tracing::instrument(skip_all, fields(session_id = %caller.session.id))]
pub async fn sign_out(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
) -> AppResult<()> {
    let ended = end_session_written(
        db,
        &caller.session,
        &caller.user,
        caller.actor(),
        meta,
        reasons::SIGN_OUT,
    )
    .await?;
    // Ended between the token check and now (a concurrent revocation):
    // the caller is no longer signed in.
    ended.ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
    Metrics::inc(&metrics.sessions_revoked);
    Ok(())
}

/// Revokes the session `id` (already authorised; `checked` is what the
/// guard read), counted in `metrics` when this ended it. Revoking a
/// session that has already ended changes nothing and writes no event;
/// either way the session is returned as it now stands, as `caller` may
/// see it.
#[tracing::instrument(skip_all, fields(session_id = %id))]
pub async fn revoke(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    checked: Option<(session::Model, user::Model)>,
) -> AppResult<session::Model> {
    let (target, owner) = target(db, caller, id, checked).await?;
    let was_revoked = target.revoked_at.is_some();
    let ended =
        end_session_written(db, &target, &owner, caller.actor(), meta, reasons::REVOKE).await?;
    let revoked = match ended {
        Some(ended) => ended,
        // Ended meanwhile or before: show it as stored.
        None => find_with_owner(db, target.id)
            .await?
            .map_or(target, |(s, _)| s),
    };
    if !was_revoked && revoked.revoked_at.is_some() {
        Metrics::inc(&metrics.sessions_revoked);
    }
    Ok(as_seen_by(caller, revoked))
}

/// Ends every active session of the user `user_id` (the caller when
/// `None`; already authorised), keeping the caller's own session when
/// `except_current`. Returns how many ended (counted as revoked in
/// `metrics`); one event per ended session, all in one
/// transaction; an impersonation session the caller has no rights over
/// the impersonator of is left running.
pub async fn revoke_all(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
    user_id: Option<Uuid>,
    except_current: bool,
) -> AppResult<u64> {
    let owner = users::target(db, caller, user_id).await?;
    let ended = revoke_all_of(db, caller, meta, &owner, except_current).await?;
    Metrics::add(&metrics.sessions_revoked, ended);
    Ok(ended)
}

/// Ends every active session of `owner`, keeping the caller's own session
/// when `except_current`. One event per ended session, all in one
/// transaction. Returns how many ended.
///
/// An impersonation session of `owner` is skipped (left running) when the
/// caller has no rights over the admin who opened it (see
/// [`access::may_revoke_session`]): an admin ending another admin's
/// sessions does not end an owner's impersonation of them.
#[tracing::instrument(skip_all, fields(user_id = %owner.id))]
async fn revoke_all_of(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    owner: &user::Model,
    except_current: bool,
) -> AppResult<u64> {
    let keep = except_current.then_some(caller.session.id);
    let actor = caller.actor();
    let args = Arc::new((owner.clone(), meta.clone(), caller.clone()));
    db.write(move |txn| {
        let args = args.clone();
        Box::pin(async move {
            let (owner, meta, caller) = &*args;
            let listed = sessions_of(txn, owner.id, false).await?;
            let impersonators = impersonators_of(txn, caller, owner, &listed).await?;
            let mut ended = 0;
            for target in listed {
                if Some(target.id) == keep {
                    continue;
                }
                let impersonator = target
                    .impersonator_id
                    .and_then(|id| impersonators.iter().find(|u| u.id == id));
                if access::may_revoke_session(caller, owner, impersonator).is_err() {
                    continue;
                }
                if end_session(txn, &target, owner, actor, meta, reasons::BULK)
                    .await?
                    .is_some()
                {
                    ended += 1;
                }
            }
            Ok(ended)
        })
    })
    .await
}

/// The admins behind the impersonation sessions among `listed`, when the
/// caller's rights over them matter (not the caller's own sessions, nor
/// impersonations the caller opened).
async fn impersonators_of(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    owner: &user::Model,
    listed: &[session::Model],
) -> AppResult<Vec<user::Model>> {
    if owner.id == caller.user.id {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = listed
        .iter()
        .filter_map(|s| s.impersonator_id)
        .filter(|id| *id != caller.user.id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_end_statement_is_the_query_built_afresh() {
        let (id, by) = (Uuid::now_v7(), Uuid::now_v7());
        let now = db::now();
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            for reason in [reasons::REVOKE, reasons::BULK] {
                let fresh = backend.build(&end_query(&EndValues {
                    id,
                    revoked_by: by,
                    child_of: id,
                    at: now,
                    live_at: now,
                    child_live_at: now,
                    reason,
                }));
                let cached = end_statement(backend, id, now, by, reason);
                assert_eq!(cached.sql, fresh.sql, "{backend:?}");
                assert_eq!(cached.values, fresh.values, "{backend:?}");
                assert!(cached.sql.contains("RETURNING EXISTS"), "{}", cached.sql);
            }
        }
    }
}
