//! Reading sessions: one with its owner, a user's list, as a caller may
//! see them, and the active count.

use chrono::Utc;
use entity::{session, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, Iterable, PaginatorTrait,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, SelectTwo, Statement,
    TryGetError, sea_query::IntoCondition,
};
use uuid::Uuid;

use crate::{
    auth::{Caller, RequestMeta},
    db::{self, Db, Prepared},
    error::{AppError, AppResult},
    service::{
        access,
        audit::{self, NewEvent, events},
        user as users,
    },
};

/// One session with its owner: read by every guard of a session by id
/// (`revokeSession`, `session`) and for the impersonator of an
/// impersonation session, so, like the token check, its SQL is built once
/// and its row read by position (built and read by name, this one read was
/// a fifth of a revocation's instructions, measured).
pub async fn find_with_owner(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<(session::Model, user::Model)>> {
    let Some(row) = conn
        .query_one_raw(by_id(conn.get_database_backend(), id))
        .await?
    else {
        return Ok(None);
    };
    let (session, owner) = session_and_user(&row)?;
    Ok(owner.map(|owner| (session, owner)))
}

/// The session matching `condition` (at most one), joined with its user.
pub(super) fn with_owner_query(
    condition: impl IntoCondition,
) -> SelectTwo<session::Entity, user::Entity> {
    session::Entity::find()
        .filter(condition)
        .find_also_related(user::Entity)
        .limit(1)
}

/// [`with_owner_query`] by session id, its SQL built once per backend.
fn by_id(backend: DatabaseBackend, id: Uuid) -> Statement {
    const ID: Uuid = Uuid::from_u128(1);
    static BY_ID: Prepared = Prepared::new();
    BY_ID.statement(
        backend,
        |backend| with_owner_query(session::Column::Id.eq(ID)).build(backend),
        [(ID.into(), id.into())],
    )
}

/// A row of [`with_owner_query`]: the session's columns, then its user's
/// (none if the join found no user), read by position.
pub(super) fn session_and_user(
    row: &QueryResult,
) -> Result<(session::Model, Option<user::Model>), DbErr> {
    let session = session::Model::from_row_at(row, 0)?;
    let user = match user::Model::from_row_at(row, session::Column::iter().count()) {
        Ok(user) => Some(user),
        Err(TryGetError::Null(_)) => None,
        Err(err) => return Err(err.into()),
    };
    Ok((session, user))
}

/// The sessions of the user `user_id` (the caller when `None`; the guard
/// has allowed the other) as `caller` may see them, newest first, through
/// [`Db::reads`] (listed on every visit of the settings page): the active
/// ones, or all with `include_ended`. Someone else's are audited as viewed.
pub async fn list(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    user_id: Option<Uuid>,
    include_ended: bool,
) -> AppResult<Vec<session::Model>> {
    let owner = users::target(db, caller, user_id).await?;
    let listed = sessions_of(db.reads(), owner.id, include_ended).await?;
    audit_viewed(db, caller, meta, &owner, None).await?;
    Ok(listed
        .into_iter()
        .map(|session| as_seen_by(caller, session))
        .collect())
}

/// One session, by id, as `caller` may see it (the guard has allowed it;
/// `checked` is what the guard read), audited as viewed when it is
/// someone else's.
pub async fn view(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    checked: Option<(session::Model, user::Model)>,
) -> AppResult<session::Model> {
    let (session, owner) = target(db, caller, id, checked).await?;
    audit_viewed(db, caller, meta, &owner, Some(id)).await?;
    Ok(as_seen_by(caller, session))
}

/// One session with its owner, which a guard has allowed: the caller's
/// own, or the one the guard read (`checked`), or else read now.
pub(super) async fn target(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: Uuid,
    checked: Option<(session::Model, user::Model)>,
) -> AppResult<(session::Model, user::Model)> {
    if id == caller.session.id {
        return Ok((caller.session.clone(), caller.user.clone()));
    }
    if let Some(checked) = checked.filter(|(session, _)| session.id == id) {
        return Ok(checked);
    }
    find_with_owner(conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound("session not found".into()))
}

/// The sessions of one user, newest first: the active ones, or all of them
/// with `include_ended`. The scope is written once, here.
pub async fn sessions_of(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    include_ended: bool,
) -> AppResult<Vec<session::Model>> {
    let statement = sessions_of_statement(
        conn.get_database_backend(),
        user_id,
        include_ended,
        db::now(),
    );
    conn.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| session::Model::from_row_at(row, 0).map_err(|e| DbErr::from(e).into()))
        .collect()
}

/// [`sessions_of_query`] as a statement: listed on every settings page, so
/// its SQL is built once (see [`Prepared`]).
fn sessions_of_statement(
    backend: DatabaseBackend,
    user_id: Uuid,
    include_ended: bool,
    now: chrono::DateTime<Utc>,
) -> Statement {
    static ACTIVE: Prepared = Prepared::new();
    static ALL: Prepared = Prepared::new();
    let (user, epoch) = (Uuid::nil(), chrono::DateTime::<Utc>::UNIX_EPOCH);
    if include_ended { &ALL } else { &ACTIVE }.statement(
        backend,
        |backend| sessions_of_query(user, include_ended, epoch).build(backend),
        [(user.into(), user_id.into()), (epoch.into(), now.into())],
    )
}

fn sessions_of_query(
    user_id: Uuid,
    include_ended: bool,
    now: chrono::DateTime<Utc>,
) -> sea_orm::Select<session::Entity> {
    let mut query = session::Entity::find().filter(session::Column::UserId.eq(user_id));
    if !include_ended {
        query = query
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now));
    }
    query
        .order_by_desc(session::Column::CreatedAt)
        .order_by_desc(session::Column::Id)
}

/// Audits that `caller` looked at someone else's sessions.
pub async fn audit_viewed(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    owner: &user::Model,
    session_id: Option<Uuid>,
) -> AppResult<()> {
    if owner.id == caller.user.id {
        return Ok(());
    }
    let mut event = NewEvent::success(
        events::SESSIONS_VIEWED,
        format!("sessions of {} viewed", owner.email),
    )
    .from_request(meta)
    .by(caller)
    .subject(owner.id)
    .meta("userEmail", owner.email.clone());
    if let Some(id) = session_id {
        event = event.session(id);
    }
    audit::record_alone(db, event).await?;
    Ok(())
}

/// `session` as `caller` may see it: an impersonation session keeps the
/// admin's address and User-Agent from the impersonated user (and anyone
/// without admin rights), who see who opened it and why instead
/// (`impersonator`, `impersonationReason`).
pub fn as_seen_by(caller: &Caller, mut session: session::Model) -> session::Model {
    let admins_place = session
        .impersonator_id
        .is_some_and(|admin| admin != caller.user.id);
    if admins_place && !access::may_read_all_audit(caller) {
        session.ip_address = None;
        session.user_agent = None;
    }
    session
}

/// Sessions neither expired nor revoked, for the metrics gauge.
pub async fn count_active(conn: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(session::Entity::find()
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(db::now()))
        .count(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_statement_is_the_query_built_afresh() {
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            for include_ended in [false, true] {
                let (user, now) = (Uuid::new_v4(), db::now());
                let fresh = sessions_of_query(user, include_ended, now).build(backend);
                let cached = sessions_of_statement(backend, user, include_ended, now);
                assert_eq!(cached.sql, fresh.sql, "{backend:?} {include_ended}");
                assert_eq!(cached.values, fresh.values, "{backend:?} {include_ended}");
            }
        }
    }

    #[test]
    fn the_session_by_id_is_the_query_seaorm_builds() {
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            for id in [Uuid::new_v4(), Uuid::new_v4()] {
                // What `find_by_id(id).find_also_related(user).one()` sends.
                let fresh = session::Entity::find_by_id(id)
                    .find_also_related(user::Entity)
                    .limit(1)
                    .build(backend);
                let cached = by_id(backend, id);
                assert_eq!(cached.sql, fresh.sql, "{backend:?}");
                assert_eq!(cached.values, fresh.values, "{backend:?}");
            }
        }
    }
}
