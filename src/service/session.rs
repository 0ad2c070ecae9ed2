//! Sessions: sign-in, the per-request token check, and ending sessions.

use std::sync::Arc;

use chrono::Utc;
use entity::{session, user};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, Iterable,
    PaginatorTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, SelectTwo,
    Statement, TryGetError, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    auth::{self, Actor, Caller, MAX_PASSWORD_LEN, PasswordHasherPool, RequestMeta},
    config::Config,
    db::{self, Db, Prepared},
    error::{AppError, AppResult, BAD_TOKEN},
    service::{
        access,
        audit::{self, NewEvent, events},
        throttle::{Limit, Throttle},
        user as users,
    },
};

/// The one message for an unknown email and a wrong password.
pub const BAD_CREDENTIALS: &str = "invalid email or password";

/// Why a session ended, as stored in `revoke_reason` and the audit event.
pub mod reasons {
    pub const SIGN_OUT: &str = "sign_out";
    /// `revokeSession`.
    pub const REVOKE: &str = "revoke";
    /// `revokeSessions`.
    pub const BULK: &str = "bulk";
    /// `stopImpersonation`.
    pub const IMPERSONATION_STOPPED: &str = "impersonation_stopped";
    /// Signing in beyond `MAX_SESSIONS_PER_USER` ended the oldest.
    pub const SESSION_LIMIT: &str = "session_limit";
    /// `changePassword` ended the other sessions.
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// The admin's session that opened an impersonation ended.
    pub const IMPERSONATOR_SESSION_ENDED: &str = "impersonator_session_ended";
}

/// How a session ended by expiry, as stored in `end_reason` once recorded.
pub mod end_reasons {
    /// Not used for `SESSION_IDLE_TIMEOUT` (or longer).
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    /// Its absolute lifetime (`SESSION_TTL`, or `IMPERSONATION_TTL`) ran out.
    pub const EXPIRED: &str = "expired";
}

/// Longest User-Agent kept; longer ones are cut at a character boundary.
pub const MAX_USER_AGENT_LEN: usize = 512;
const MAX_IP_LEN: usize = 64;

fn clip(value: Option<&str>, max: usize) -> Option<String> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    let end = value
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end <= max)
        .last()
        .unwrap_or(0);
    Some(value[..end].to_owned())
}

impl RequestMeta {
    /// Builds the request's origin, bounded to what the columns hold.
    pub fn new(ip_address: Option<&str>, user_agent: Option<&str>) -> Self {
        Self {
            ip_address: clip(ip_address, MAX_IP_LEN),
            user_agent: clip(user_agent, MAX_USER_AGENT_LEN),
        }
    }
}

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
#[tracing::instrument(skip_all)]
pub async fn sign_in(
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
    let session = fresh_session(&token, user.id, config, config.session_ttl, meta);
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

/// A session for `user_id`, starting now, with the token `token`: it
/// ends `lifetime` from now at the latest, and after `SESSION_IDLE_TIMEOUT`
/// without use. (`signIn` and `issueSession` open the same kind.)
fn fresh_session(
    token: &auth::NewToken,
    user_id: Uuid,
    config: &Config,
    lifetime: std::time::Duration,
    meta: &RequestMeta,
) -> session::Model {
    let now = db::now();
    let absolute = now + Config::chrono(lifetime);
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
        created_at: now,
        last_active_at: now,
        expires_at: absolute.min(now + Config::chrono(config.session_idle_timeout)),
        absolute_expires_at: absolute,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        end_reason: None,
    }
}

/// Whom a trusted backend may open sessions for: plain users. A session
/// of an admin or owner would hand the key those rights, and a key holds
/// its scopes and nothing more; admins and owners sign in themselves.
pub fn may_be_issued_a_session(user: &user::Model) -> Result<(), &'static str> {
    match user.role {
        user::Role::User => Ok(()),
        user::Role::Admin | user::Role::Owner => {
            Err("sessions can be issued only for users; admins and owners sign in themselves")
        }
    }
}

/// Opens a session for `user`, whom the application behind the API key
/// `key` has authenticated itself (`issueSession`): every policy of
/// sign-in holds (the session cap, at most `SESSION_TTL`, the idle
/// timeout), and only users get one (see [`may_be_issued_a_session`]).
/// `ttl` shortens the lifetime; longer than `SESSION_TTL` is
/// `BAD_USER_INPUT`. Audited as `auth.session_issued`, the key named as
/// the actor; a refusal too, as a failed one.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn issue(
    db: &Db,
    config: &Config,
    key: &entity::api_key::Model,
    user: &user::Model,
    ttl: Option<std::time::Duration>,
    client: &RequestMeta,
    backend: &RequestMeta,
) -> AppResult<OpenedSession> {
    // The session and its events say where the user is (as for a sign-in);
    // the backend's own address is kept beside it.
    let meta = client;
    let lifetime = match ttl {
        None => config.session_ttl,
        Some(ttl) if ttl > config.session_ttl => {
            return Err(AppError::bad_input(
                "ttl",
                format!(
                    "ttl must be at most SESSION_TTL ({})",
                    crate::config::format_duration(config.session_ttl)
                ),
            ));
        }
        Some(ttl) if ttl < std::time::Duration::from_secs(1) => {
            return Err(AppError::bad_input("ttl", "ttl must be at least 1s"));
        }
        Some(ttl) => ttl,
    };
    if let Err(reason) = may_be_issued_a_session(user) {
        let event = NewEvent::failed(
            events::SESSION_ISSUED,
            format!("session for {} refused: {reason}", user.email),
        )
        .from_request(meta)
        .by_key(key)
        .meta("backendIp", backend.ip_address.clone())
        .subject(user.id)
        .meta("reason", "role")
        .meta("role", user.role.as_str());
        audit::record_alone(db, event).await?;
        return Err(AppError::Forbidden(reason.into()));
    }
    let token = auth::generate_token()?;
    let session = fresh_session(&token, user.id, config, lifetime, meta);
    let txn = db.transaction().await?;
    let ended = if config.max_sessions_per_user > 0 {
        enforce_session_cap(&txn, config.max_sessions_per_user, user, meta).await?
    } else {
        Vec::new()
    };
    session::Entity::insert(session::ActiveModel::from(session.clone()))
        .exec_without_returning(&txn)
        .await?;
    audit::record(
        &txn,
        NewEvent::success(
            events::SESSION_ISSUED,
            format!("session issued for {} by API key {}", user.email, key.name),
        )
        .from_request(meta)
        .by_key(key)
        .meta("backendIp", backend.ip_address.clone())
        .subject(user.id)
        .session(session.id)
        .meta("email", user.email.clone())
        .meta("expiresAt", session.expires_at.to_rfc3339())
        .meta(
            "absoluteExpiresAt",
            session.absolute_expires_at.to_rfc3339(),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(OpenedSession {
        token: token.plaintext,
        session,
        user: user.clone(),
        ended,
    })
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
    let now = Utc::now();
    if !session.is_active(now) {
        if session.revoked_at.is_none() && session.end_reason.is_none() {
            record_expiry_once(db, &session, &user).await;
        }
        return Err(AppError::Unauthenticated(BAD_TOKEN));
    }
    if session.impersonator_id.is_some() {
        check_impersonation_still_valid(db, &session, &user, now).await?;
    }
    let session = touch(db, config, session).await?;
    Ok(Caller { user, session })
}

/// The token check: the session with this token hash, joined with its user.
fn token_check_query(token_hash: String) -> SelectTwo<session::Entity, user::Entity> {
    session::Entity::find()
        .filter(session::Column::TokenHash.eq(token_hash))
        .find_also_related(user::Entity)
        .limit(1)
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

/// A row of [`token_check`]: the session's columns, then its user's (none
/// if the join found no user), read by position.
fn session_and_user(row: &QueryResult) -> Result<(session::Model, Option<user::Model>), DbErr> {
    let session = session::Model::from_row_at(row, 0)?;
    let user = match user::Model::from_row_at(row, session::Column::iter().count()) {
        Ok(user) => Some(user),
        Err(TryGetError::Null(_)) => None,
        Err(err) => return Err(err.into()),
    };
    Ok((session, user))
}

/// Records activity when the stored one is older than the write interval:
/// one statement executed on the [`Db`], committed on its own in its turn
/// to write, in one round trip (no transaction around it, no wait for a
/// group of the grouped writer).
async fn touch(db: &Db, config: &Config, mut session: session::Model) -> AppResult<session::Model> {
    let now = db::now();
    if now - session.last_active_at < Config::chrono(config.activity_write_interval) {
        return Ok(session);
    }
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
async fn record_expiry_once(db: &Db, session: &session::Model, owner: &user::Model) {
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
    if !session.is_active(now) {
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
    let Some(ended) = end_one(conn, target, owner, actor, meta, reason).await? else {
        return Ok(None);
    };
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

async fn end_one(
    conn: &impl ConnectionTrait,
    target: &session::Model,
    owner: &user::Model,
    actor: Actor,
    meta: &RequestMeta,
    reason: &str,
) -> AppResult<Option<session::Model>> {
    let now = db::now();
    let revoked_by = actor.id;
    // Conditional, so two concurrent revocations end it (and audit it) once.
    let updated = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedBy, Expr::value(revoked_by))
        .col_expr(session::Column::RevokeReason, Expr::value(reason))
        .filter(session::Column::Id.eq(target.id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    audit::record(
        conn,
        revoked_event(target, owner, actor, now, reason).from_request(meta),
    )
    .await?;
    let mut ended = target.clone();
    ended.revoked_at = Some(now);
    ended.revoked_by = Some(revoked_by);
    ended.revoke_reason = Some(reason.to_owned());
    Ok(Some(ended))
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

/// Ends the caller's own session.
#[tracing::instrument(skip_all, fields(session_id = %caller.session.id))]
pub async fn sign_out(db: &Db, caller: &Caller, meta: &RequestMeta) -> AppResult<()> {
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
    ended
        .map(|_| ())
        .ok_or(AppError::Unauthenticated(BAD_TOKEN))
}

/// One session with its owner.
pub async fn find_with_owner(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<(session::Model, user::Model)>> {
    Ok(session::Entity::find_by_id(id)
        .find_also_related(user::Entity)
        .one(conn)
        .await?
        .and_then(|(session, owner)| owner.map(|owner| (session, owner))))
}

/// [`sessions_of`] for the settings page, through [`Db::reads`]: listed on
/// every visit.
pub async fn list(db: &Db, user_id: Uuid, include_ended: bool) -> AppResult<Vec<session::Model>> {
    sessions_of(db.reads(), user_id, include_ended).await
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

/// Revokes one session (already authorised). Revoking a session that has
/// already ended changes nothing and writes no event; either way the
/// session is returned as it now stands.
#[tracing::instrument(skip_all, fields(session_id = %target.id))]
pub async fn revoke(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    target: session::Model,
    owner: &user::Model,
) -> AppResult<session::Model> {
    let ended =
        end_session_written(db, &target, owner, caller.actor(), meta, reasons::REVOKE).await?;
    match ended {
        Some(ended) => Ok(ended),
        // Ended meanwhile or before: show it as stored.
        None => Ok(find_with_owner(db, target.id)
            .await?
            .map_or(target, |(s, _)| s)),
    }
}

/// Ends every active session of `owner` (already authorised), keeping the
/// caller's own session when `except_current`. One event per ended
/// session, all in one transaction. Returns how many ended.
///
/// An impersonation session of `owner` is skipped (left running) when the
/// caller has no rights over the admin who opened it (see
/// [`access::may_revoke_session`]): an admin ending another admin's
/// sessions does not end an owner's impersonation of them.
#[tracing::instrument(skip_all, fields(user_id = %owner.id))]
pub async fn revoke_all(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_statements_are_the_queries_built_afresh() {
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            for hash in ["a".repeat(64), "b".repeat(64)] {
                let fresh = token_check_query(hash.clone()).build(backend);
                let cached = token_check(backend, hash);
                assert_eq!(cached.sql, fresh.sql, "{backend:?}");
                assert_eq!(cached.values, fresh.values, "{backend:?}");
            }
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
    fn clip_keeps_whole_characters_within_the_bound() {
        assert_eq!(clip(Some("  "), 10), None);
        assert_eq!(clip(None, 10), None);
        assert_eq!(clip(Some("abc"), 10).as_deref(), Some("abc"));
        assert_eq!(clip(Some("ééé"), 5).as_deref(), Some("éé"));
        assert_eq!(clip(Some(&"x".repeat(600)), 512).unwrap().len(), 512);
    }
}
