//! The per-request token check, and whether a session checked earlier is
//! still live.

use chrono::Utc;
use entity::{session, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryTrait, SelectTwo,
    Statement, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    expiry::record_expiry_once,
    find_with_owner,
    list::{session_and_user, with_owner_query},
};
use crate::{
    auth::{self, Caller},
    config::Config,
    db::{self, Db, Prepared},
    error::{AppError, AppResult, BAD_TOKEN},
    service::access,
};

/// The token check on every authenticated request: one read on the unique
/// token-hash index, joined with the user. Revoked and expired (or idle)
/// sessions are refused here, so a revoked token fails on the very next
/// request. Last activity is written at most once per
/// `ACTIVITY_WRITE_INTERVAL`, sliding the idle expiry forward.
pub async fn authenticate(db: &Db, config: &Config, token: &str) -> AppResult<Caller> {
    let found = db
        .reads()
        .query_one_raw(token_check(
            db.get_database_backend(),
            auth::hash_token(token),
        ))
        .await?
        .map(|row| session_and_user(&row))
        .transpose()?;
    let Some((session, Some(user))) = found else {
        return Err(AppError::Unauthenticated(BAD_TOKEN));
    };
    // Disabling or deleting an account ends its sessions; this holds even
    // for one that a failure left live.
    if !user.is_active() {
        return Err(AppError::Unauthenticated(BAD_TOKEN));
    }
    // The rarer steps below are boxed: their futures (SeaORM's) are many
    // times the size of the read's, and this one is moved through every
    // layer of the server on every request.
    let now = Utc::now();
    if !session.is_active(now) {
        if session.revoked_at.is_none() && session.end_reason.is_none() {
            Box::pin(record_expiry_once(db, &session, &user)).await;
        }
        return Err(AppError::Unauthenticated(BAD_TOKEN));
    }
    if session.impersonator_id.is_some() {
        Box::pin(check_impersonation_still_valid(db, &session, &user, now)).await?;
    }
    let session = if activity_due(config, &session) {
        Box::pin(touch(db, config, session)).await?
    } else {
        session
    };
    Ok(Caller { user, session })
}

/// The stored activity is older than the write interval.
fn activity_due(config: &Config, session: &session::Model) -> bool {
    db::now() - session.last_active_at >= Config::chrono(config.activity_write_interval)
}

/// The token check: the session with this token hash, joined with its user.
fn token_check_query(token_hash: String) -> SelectTwo<session::Entity, user::Entity> {
    with_owner_query(session::Column::TokenHash.eq(token_hash))
}

/// [`token_check_query`] as a statement, its SQL built once per backend.
fn token_check(backend: DatabaseBackend, token_hash: String) -> Statement {
    const HASH: &str = "token hash";
    static TOKEN_CHECK: Prepared = Prepared::new();
    TOKEN_CHECK.statement(
        backend,
        |backend| token_check_query(HASH.to_owned()).build(backend),
        [(HASH.into(), token_hash.into())],
    )
}

/// Records activity (when [`activity_due`]): one statement executed on the [`Db`], committed on its own in its turn
/// to write, in one round trip (no transaction around it, no wait for a
/// group of the grouped writer).
async fn touch(db: &Db, config: &Config, mut session: session::Model) -> AppResult<session::Model> {
    let now = db::now();
    let expires_at = session
        .absolute_expires_at
        .min(now + Config::chrono(config.session_idle_timeout));
    session::Entity::update_many()
        .col_expr(session::Column::LastActiveAt, Expr::value(now))
        .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
        .filter(session::Column::Id.eq(session.id))
        .filter(session::Column::RevokedAt.is_null())
        // An expiry recorded meanwhile (by a request that met the session
        // just expired) stays: the session must not come back to life.
        .filter(session::Column::EndReason.is_null())
        .exec(db)
        .await?;
    session.last_active_at = now;
    session.expires_at = expires_at;
    Ok(session)
}

/// The session as it stands now if it is still live (not revoked, not
/// expired, and for an impersonation, its admin still signed in and
/// entitled): for long-lived connections that authenticated earlier.
pub async fn live_session(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<session::Model>> {
    Ok(live_caller(conn, id).await?.map(|caller| caller.session))
}

/// [`live_session`] with its owner as the account is now (its role may
/// have changed since the session was checked): the caller to act as.
pub async fn live_caller(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Caller>> {
    let Some((session, user)) = find_with_owner(conn, id).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    if !session.is_active(now) || !user.is_active() {
        return Ok(None);
    }
    if session.impersonator_id.is_some()
        && check_impersonation_still_valid(conn, &session, &user, now)
            .await
            .is_err()
    {
        return Ok(None);
    }
    Ok(Some(Caller { user, session }))
}

/// An impersonation session lives only while the admin's own session does
/// and the admin still holds a role that may impersonate this user. This
/// costs one more read, for impersonation sessions only.
async fn check_impersonation_still_valid(
    conn: &impl ConnectionTrait,
    session: &session::Model,
    target: &user::Model,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let parent = match session.impersonator_session_id {
        Some(parent_id) => find_with_owner(conn, parent_id).await?,
        None => None,
    };
    let valid = parent.is_some_and(|(parent, admin)| {
        parent.is_active(now)
            && Some(admin.id) == session.impersonator_id
            && access::may_impersonate_role(admin.role, target.role).is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(AppError::Unauthenticated(BAD_TOKEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_statement_is_the_query_built_afresh() {
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            for hash in ["a".repeat(64), "b".repeat(64)] {
                let fresh = token_check_query(hash.clone()).build(backend);
                let cached = token_check(backend, hash);
                assert_eq!(cached.sql, fresh.sql, "{backend:?}");
                assert_eq!(cached.values, fresh.values, "{backend:?}");
            }
        }
    }
}
