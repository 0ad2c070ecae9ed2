//! Sign-in: credentials checked, a session opened within the per-user cap.

use super::{BAD_CREDENTIALS, OpenedSession, open::open_session};
use crate::{
    auth::{MAX_PASSWORD_LEN, PasswordHasherPool, RequestMeta},
    config::Config,
    db::Db,
    error::{AppError, AppResult},
    metrics::Metrics,
    service::{
        audit::{self, NewEvent, events},
        throttle::{Limit, Throttle},
        user as users,
    },
};

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

    let txn = db.transaction().await?;
    attempt.release(&txn).await?;
    let opened = open_session(&txn, config, &user, meta, config.session_ttl, |session| {
        NewEvent::success(events::SIGN_IN, format!("{} signed in", user.email))
            .actor(user.id)
            .meta("expiresAt", session.expires_at.to_rfc3339())
    })
    .await;
    let opened = match opened {
        Ok(opened) => opened,
        Err(err) => {
            // Rolled back, the reservation with it: a refused sign-in of
            // a disabled (or meanwhile deleted) account counts as a
            // failure. Told only to whoever knows the password.
            drop(txn);
            if matches!(err, AppError::AccountDisabled | AppError::NotFound(_)) {
                let event = NewEvent::failed(
                    events::SIGN_IN,
                    format!("sign-in of {} refused: the account is disabled", user.email),
                )
                .from_request(meta)
                .subject(user.id)
                .meta("emailHash", email_hash)
                .meta("reason", "disabled");
                audit::record_alone(db, event).await?;
                return Err(AppError::AccountDisabled);
            }
            return Err(err);
        }
    };
    txn.commit().await?;
    Ok(opened)
}
