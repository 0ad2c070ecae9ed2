//! Sign-in: credentials checked, a session opened within the per-user cap.

use entity::{session, user};
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use uuid::Uuid;

use super::{BAD_CREDENTIALS, end_session, reasons, sessions_of};
use crate::{
    auth::{self, Actor, MAX_PASSWORD_LEN, PasswordHasherPool, RequestMeta},
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    metrics::Metrics,
    service::{
        audit::{self, NewEvent, events},
        throttle::{Limit, Throttle},
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

/// Verifies the credentials (argon2id, off the runtime) and opens a
/// session; success and failure are both audited as `auth.sign_in`. The
/// attempt is reserved with the throttle before the password is verified
/// (refused, `RATE_LIMITED`, once the account or the address is at its
/// limit) and given back when it succeeds. Failed and throttled attempts
/// are audited with the keyed hash of the email tried (`emailHash`), never
/// the typed text.
///
/// Each attempt is counted in `metrics`: succeeded, throttled or failed.
#[allow(clippy::too_many_arguments)]
pub async fn sign_in(
    db: &Db,
    metrics: &Metrics,
    hasher: &PasswordHasherPool,
    throttle: &Throttle,
    config: &Config,
    email: &str,
    password: String,
    meta: &RequestMeta,
) -> AppResult<OpenedSession> {
    let opened = verify_and_open(db, hasher, throttle, config, email, password, meta).await;
    Metrics::inc(match &opened {
        Ok(_) => &metrics.sign_ins_succeeded,
        Err(AppError::RateLimited { .. }) => &metrics.sign_ins_throttled,
        Err(_) => &metrics.sign_ins_failed,
    });
    opened
}

#[tracing::instrument(name = "sign_in", skip_all)]
async fn verify_and_open(
    db: &Db,
    hasher: &PasswordHasherPool,
    throttle: &Throttle,
    config: &Config,
    email: &str,
    password: String,
    meta: &RequestMeta,
) -> AppResult<OpenedSession> {
    if password.chars().count() > MAX_PASSWORD_LEN {
        return Err(AppError::bad_input(
            "password",
            format!("password must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    // Control characters (NUL among them, which PostgreSQL cannot store)
    // never appear in a real address: such an email is simply unknown.
    let email: String = email.trim().to_lowercase();
    let plausible = !email.is_empty()
        && email.len() <= users::MAX_EMAIL_LEN
        && !email.chars().any(char::is_control);
    let email_hash = throttle.email_hash(&email);
    let user = if plausible {
        users::find_by_email(db, &email).await?
    } else {
        None
    };
    let subject = user.as_ref().map(|u| u.id);
    let throttled = {
        let (meta, email_hash) = (meta.clone(), email_hash.clone());
        move |limit: Limit, retry_after: u64| {
            let event = NewEvent::failed(
                events::SIGN_IN,
                format!(
                    "sign-in throttled: too many failures for this {}",
                    limit.as_str()
                ),
            )
            .from_request(&meta)
            .meta("emailHash", email_hash.clone())
            .meta("reason", "throttled")
            .meta("limit", limit.as_str())
            .meta("retryAfter", retry_after);
            match subject {
                Some(id) => event.subject(id),
                None => event,
            }
        }
    };
    let attempt = throttle.reserve(db, &email_hash, meta, throttled).await?;
    // From here on, leaving early keeps the reservation: a failure.
    let verified = hasher
        // An account without a password (provisioned by a trusted
        // backend) never signs in: checked against the dummy hash, so it
        // takes as long as any failure.
        .verify(
            password,
            user.as_ref()
                .map(|u| u.password_hash.clone())
                .filter(|hash| !hash.is_empty()),
        )
        .await?;

    let user = match user {
        Some(user) if verified => user,
        user => {
            let mut event =
                NewEvent::failed(events::SIGN_IN, "sign-in failed: invalid email or password")
                    .from_request(meta)
                    .meta("emailHash", email_hash)
                    .meta(
                        "reason",
                        if user.is_some() {
                            "wrong_password"
                        } else {
                            "unknown_email"
                        },
                    );
            if let Some(user) = &user {
                event = event.subject(user.id);
            }
            audit::record_alone(db, event).await?;
            return Err(AppError::Unauthenticated(BAD_CREDENTIALS));
        }
    };

    let token = auth::generate_token()?;
    let now = db::now();
    let absolute = now + Config::chrono(config.session_ttl);
    let session = new_session(
        &token,
        user.id,
        meta,
        now,
        absolute.min(now + Config::chrono(config.session_idle_timeout)),
        absolute,
    );
    let txn = db.transaction().await?;
    attempt.release(&txn).await?;
    let ended = if config.max_sessions_per_user > 0 {
        enforce_session_cap(&txn, config.max_sessions_per_user, &user, meta).await?
    } else {
        Vec::new()
    };
    session::Entity::insert(session::ActiveModel::from(session.clone()))
        .exec_without_returning(&txn)
        .await?;
    audit::record(
        &txn,
        NewEvent::success(events::SIGN_IN, format!("{} signed in", user.email))
            .from_request(meta)
            .actor(user.id)
            .subject(user.id)
            .session(session.id)
            .meta("email", user.email.clone())
            .meta("expiresAt", session.expires_at.to_rfc3339()),
    )
    .await?;
    txn.commit().await?;
    Ok(OpenedSession {
        token: token.plaintext,
        session,
        user,
        ended,
    })
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
pub(super) async fn enforce_session_cap(
    conn: &impl ConnectionTrait,
    cap: u32,
    user: &user::Model,
    meta: &RequestMeta,
) -> AppResult<Vec<Uuid>> {
    // Concurrent openings for one user must count each other's sessions.
    // SQLite runs one write transaction at a time; on PostgreSQL (read
    // committed) each would miss the others' uncommitted rows and the cap
    // would not hold (seen with concurrent `issueSession` calls), so the
    // user's row is locked until the transaction ends.
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        user::Entity::find_by_id(user.id)
            .lock_exclusive()
            .one(conn)
            .await?;
    }
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
