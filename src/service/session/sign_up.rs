//! Self-registration (`signUp`, only with `SIGNUP=open`): a user's account
//! made and signed in, answered the same whether or not the email was
//! free, so the answer tells nobody which addresses have accounts.

use entity::user::{self, Role};
use uuid::Uuid;

use super::{OpenedSession, new_session, open::open_session};
use crate::{
    auth::{self, PasswordHasherPool, RequestMeta, validate_new_password},
    config::{Config, Signup},
    db::{self, Db},
    error::{AppError, AppResult},
    service::{
        audit::{self, NewEvent, events},
        throttle::{Limit, Throttle},
        user as users,
    },
};

/// Why `signUp` is refused with `SIGNUP=closed`.
pub const SIGNUP_CLOSED: &str = "sign-up is closed: ask an administrator for an account";

/// Makes a user's account with this email, name and password and opens a
/// session for it, as `signIn` would (audited as `user.created` and
/// `auth.sign_in`, with `via: signUp`).
///
/// No account enumeration: for an email that already has an account the
/// answer has the same shape and fields, and about the same cost: the
/// password is hashed (argon2id, the bulk of the time) before the email
/// is tried, the attempt is counted by the sign-in throttle either way
/// (per email and per address, so the limit is reached alike), and the
/// session answered is a well-formed one with a fresh token, the typed
/// email and name, never stored: the token is refused at its first use
/// as any ended one is. The existing account is not touched, and the
/// attempt is audited against it (`user.created`, failed, reason
/// `email_taken`) so its owner and the admins see it. What stays
/// observable is that decoy token failing on use: each probe costs a
/// throttled sign-up and leaves an audit event (see the README).
///
/// Input is checked first (the same answer for any email): a bad email,
/// name or password is `BAD_USER_INPUT`. With `SIGNUP=closed` the answer
/// is `FORBIDDEN` and nothing is read or written.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "sign_up", skip_all)]
pub async fn sign_up(
    db: &Db,
    hasher: &PasswordHasherPool,
    throttle: &Throttle,
    config: &Config,
    email: &str,
    name: &str,
    password: String,
    meta: &RequestMeta,
) -> AppResult<OpenedSession> {
    if config.signup != Signup::Open {
        return Err(AppError::Forbidden(SIGNUP_CLOSED.into()));
    }
    let email = users::normalize_email(email)?;
    let name = users::validate_name(name)?;
    validate_new_password("password", &password)?;
    let email_hash = throttle.email_hash(&email);
    let throttled = {
        let (meta, email_hash) = (meta.clone(), email_hash.clone());
        move |limit: Limit, retry_after: u64| {
            NewEvent::failed(
                events::USER_CREATED,
                format!(
                    "sign-up throttled: too many attempts for this {}",
                    limit.as_str()
                ),
            )
            .from_request(&meta)
            .meta("via", "signUp")
            .meta("emailHash", email_hash.clone())
            .meta("reason", "throttled")
            .meta("limit", limit.as_str())
            .meta("retryAfter", retry_after)
        }
    };
    // Kept, not released, on every outcome: a sign-up is counted like a
    // failed sign-in, so new and taken emails reach the limit alike.
    let _counted = throttle.reserve(db, &email_hash, meta, throttled).await?;
    let password_hash = hasher.hash(password).await?;
    let model = user::Model::new(
        Uuid::new_v4(),
        email,
        name,
        Role::User,
        password_hash,
        db::now(),
    );

    let txn = db.transaction().await?;
    match users::insert(&txn, &model).await {
        Ok(()) => {}
        Err(AppError::EmailTaken(_)) => {
            drop(txn);
            let mut event = NewEvent::failed(
                events::USER_CREATED,
                "sign-up refused: the email has an account",
            )
            .from_request(meta)
            .meta("via", "signUp")
            .meta("emailHash", email_hash)
            .meta("reason", "email_taken");
            if let Some(existing) = users::find_by_email(db, &model.email).await? {
                event = event.subject(existing.id);
            }
            audit::record_alone(db, event).await?;
            return decoy(config, model, meta);
        }
        Err(err) => return Err(err),
    }
    audit::record(
        &txn,
        NewEvent::success(
            events::USER_CREATED,
            format!("user {} signed up", model.email),
        )
        .from_request(meta)
        .actor(model.id)
        .subject(model.id)
        .meta("email", model.email.clone())
        .meta("role", model.role.as_str())
        .meta("via", "signUp"),
    )
    .await?;
    let opened = open_session(&txn, config, &model, meta, config.session_ttl, |session| {
        NewEvent::success(events::SIGN_IN, format!("{} signed in", model.email))
            .actor(model.id)
            .meta("via", "signUp")
            .meta("expiresAt", session.expires_at.to_rfc3339())
    })
    .await?;
    txn.commit().await?;
    Ok(opened)
}

/// The answer for a taken email: what [`open_session`] would answer for
/// `typed` (the account as a new one would be), with a token that was
/// never stored.
fn decoy(config: &Config, typed: user::Model, meta: &RequestMeta) -> AppResult<OpenedSession> {
    let token = auth::generate_token()?;
    let now = db::now();
    let absolute = now + Config::chrono(config.session_ttl);
    let idle = now + Config::chrono(config.session_idle_timeout);
    let session = new_session(&token, typed.id, meta, now, absolute.min(idle), absolute);
    Ok(OpenedSession {
        token: token.plaintext,
        session,
        user: user::Model {
            last_sign_in_at: Some(now),
            ..typed
        },
        ended: Vec::new(),
    })
}
