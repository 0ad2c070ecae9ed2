//! Opening a session: the one way sign-in and `issueSession` open one, so
//! the session cap and the expiry rules live in one place.

use entity::{session, user};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use super::{end_session, reasons, sessions_of};
use crate::{
    auth::{self, Actor, RequestMeta},
    config::Config,
    db,
    error::{AppError, AppResult},
    service::{
        audit::{self, NewEvent},
        user as users,
    },
};

/// A session just opened: the token is shown to the client this once.
pub struct OpenedSession {
    pub token: String,
    pub session: session::Model,
    pub user: user::Model,
    /// Sessions the sign-in ended to stay within `MAX_SESSIONS_PER_USER`.
    pub ended: Vec<Uuid>,
}

/// The row of a session opened at `created_at` for `user_id` with `token`,
/// from the request's origin, live (not revoked, its end unrecorded) and
/// active since it opened: the one constructor sign-in, impersonation and
/// the benchmark seeder share. An impersonation sets its three
/// `impersonat*` fields on the row it returns.
pub fn new_session(
    token: &auth::NewToken,
    user_id: Uuid,
    meta: &RequestMeta,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
    absolute_expires_at: chrono::DateTime<chrono::Utc>,
) -> session::Model {
    session::Model {
        id: Uuid::new_v4(),
        token_hash: token.hash.clone(),
        token_prefix: token.display_prefix.clone(),
        user_id,
        impersonator_id: None,
        impersonation_reason: None,
        impersonator_session_id: None,
        ip_address: meta.ip_address.clone(),
        user_agent: meta.user_agent.clone(),
        created_at,
        last_active_at: created_at,
        expires_at,
        absolute_expires_at,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        end_reason: None,
    }
}

/// Makes room for one more session under `MAX_SESSIONS_PER_USER`: ends the
/// user's oldest active sessions (their own, not impersonations of them),
/// each audited with reason `session_limit`.
async fn enforce_session_cap(
    conn: &impl ConnectionTrait,
    cap: u32,
    user: &user::Model,
    meta: &RequestMeta,
) -> AppResult<Vec<Uuid>> {
    // Concurrent openings for one user count each other's sessions: the
    // user's row is locked by `open_session` (see `users::lock`).
    let mut own: Vec<session::Model> = sessions_of(conn, user.id, false)
        .await?
        .into_iter()
        .filter(|s| s.impersonator_id.is_none())
        .collect();
    let keep = cap as usize - 1;
    if own.len() <= keep {
        return Ok(Vec::new());
    }
    let mut ended = Vec::new();
    // `sessions_of` lists newest first: the oldest are at the end.
    for oldest in own.split_off(keep) {
        ended.push(oldest.id);
        end_session(
            conn,
            &oldest,
            user,
            Actor::user(user.id),
            meta,
            reasons::SESSION_LIMIT,
        )
        .await?;
    }
    Ok(ended)
}

/// Opens a session for `user` from `meta`, in the caller's transaction
/// `txn`: it lasts at most `lifetime` and ends sooner when unused for
/// `SESSION_IDLE_TIMEOUT`; the user's oldest sessions end first when the
/// new one would go beyond `MAX_SESSIONS_PER_USER`. `event` names what
/// opened it (sign-in, a trusted backend) given the new row; it is
/// recorded from the request, with the user as subject, the session and
/// the user's email. The account's `lastSignInAt` is set. The caller
/// commits.
///
/// The account is read again, its row locked (see [`users::lock`]),
/// before anything is written: a disabled account is refused
/// (`AccountDisabled`), a deleted one is `NOT_FOUND`. `disableUser` locks
/// the same row before it ends the account's sessions, so a session
/// opened concurrently is either refused here or ended there: on
/// PostgreSQL, whichever locks second waits and then sees the other's
/// commit; on SQLite, write transactions run one at a time. The
/// concurrent openings of the session cap count each other's sessions for
/// the same reason.
pub(super) async fn open_session(
    txn: &impl ConnectionTrait,
    config: &Config,
    user: &user::Model,
    meta: &RequestMeta,
    lifetime: std::time::Duration,
    event: impl FnOnce(&session::Model) -> NewEvent,
) -> AppResult<OpenedSession> {
    let current = users::lock(txn, user.id).await?;
    if current.status == user::UserStatus::Disabled {
        return Err(AppError::AccountDisabled);
    }
    let token = auth::generate_token()?;
    let now = db::now();
    user::Entity::update_many()
        .col_expr(user::Column::LastSignInAt, Expr::value(now))
        .filter(user::Column::Id.eq(user.id))
        .exec(txn)
        .await?;
    let user = &user::Model {
        last_sign_in_at: Some(now),
        ..current
    };
    let absolute = now + Config::chrono(lifetime);
    let idle = now + Config::chrono(config.session_idle_timeout);
    let session = new_session(&token, user.id, meta, now, absolute.min(idle), absolute);
    let ended = if config.max_sessions_per_user > 0 {
        enforce_session_cap(txn, config.max_sessions_per_user, user, meta).await?
    } else {
        Vec::new()
    };
    session::Entity::insert(session::ActiveModel::from(session.clone()))
        .exec_without_returning(txn)
        .await?;
    let event = event(&session)
        .from_request(meta)
        .subject(user.id)
        .session(session.id)
        .meta("email", user.email.clone());
    audit::record(txn, event).await?;
    Ok(OpenedSession {
        token: token.plaintext,
        session,
        user: user.clone(),
        ended,
    })
}
