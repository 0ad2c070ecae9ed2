//! Changing one's password: checked like a sign-in, and it ends the
//! account's other sessions. (Apart from [`super::user`], which the
//! session service reads accounts with: this one ends sessions.)

use entity::{audit_event::AuditStatus, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use crate::{
    auth::{Caller, MAX_PASSWORD_LEN, PasswordHasherPool, RequestMeta, validate_new_password},
    db::Db,
    error::{AppError, AppResult},
    metrics::Metrics,
    service::{
        audit::{self, NewEvent, events},
        session as sessions,
        throttle::{Limit, Throttle},
    },
};

/// Changes the caller's password after checking the current one, and ends
/// their other sessions unless `revoke_others` is false. Returns how many
/// sessions were ended (counted as revoked in `metrics`). The check of the current password goes through the
/// sign-in throttle like a sign-in (the caller's account and address):
/// reserved before it is verified, refused with `RATE_LIMITED` at the
/// limit, and a wrong one is audited and stays counted as a failure.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
#[allow(clippy::too_many_arguments)]
pub async fn change(
    db: &Db,
    metrics: &Metrics,
    hasher: &PasswordHasherPool,
    throttle: &Throttle,
    caller: &Caller,
    meta: &RequestMeta,
    current: String,
    new: String,
    revoke_others: bool,
) -> AppResult<u64> {
    validate_new_password("newPassword", &new)?;
    let event = |status| {
        NewEvent::new(events::PASSWORD_CHANGED, status, "")
            .from_request(meta)
            .by(caller)
            .subject(caller.user.id)
            .session(caller.session.id)
    };
    let throttled = {
        let (refused, email) = (event(AuditStatus::Failed), caller.user.email.clone());
        move |limit: Limit, retry_after: u64| {
            let mut event = refused
                .clone()
                .meta("reason", "throttled")
                .meta("limit", limit.as_str())
                .meta("retryAfter", retry_after);
            event.message = format!(
                "password change for {email} refused: too many failed credential checks for this {}",
                limit.as_str()
            );
            event
        }
    };
    // The same key as signing in to this account: one budget for both.
    let email_hash = throttle.email_hash(&caller.user.email);
    let attempt = throttle.reserve(db, &email_hash, meta, throttled).await?;
    let same = current == new;
    let verified = current.chars().count() <= MAX_PASSWORD_LEN
        && hasher
            .verify(current, Some(caller.user.password_hash.clone()))
            .await?;
    if !verified {
        let mut failed = event(AuditStatus::Failed).meta("reason", "wrong_current_password");
        failed.message = format!(
            "password change for {} refused: wrong current password",
            caller.user.email
        );
        // The reservation stays: a failed credential check, like a failed
        // sign-in, counts toward the account's throttle.
        audit::record_alone(db, failed).await?;
        return Err(AppError::bad_input(
            "currentPassword",
            "the current password is incorrect",
        ));
    }
    if same {
        throttle.release_alone(db, attempt).await?;
        return Err(AppError::bad_input(
            "newPassword",
            "the new password must differ from the current one",
        ));
    }
    let password_hash = hasher.hash(new).await?;

    let txn = db.transaction().await?;
    attempt.release(&txn).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .filter(user::Column::Id.eq(caller.user.id))
        .exec(&txn)
        .await?;
    let mut ended = 0;
    if revoke_others {
        for other in sessions::sessions_of(&txn, caller.user.id, false).await? {
            if other.id == caller.session.id {
                continue;
            }
            let actor = caller.actor();
            if sessions::end_session(
                &txn,
                &other,
                &caller.user,
                actor,
                meta,
                sessions::reasons::PASSWORD_CHANGED,
            )
            .await?
            .is_some()
            {
                ended += 1;
            }
        }
    }
    let mut done = event(AuditStatus::Success).meta("endedSessions", ended);
    done.message = format!("{} changed their password", caller.user.email);
    audit::record(&txn, done).await?;
    txn.commit().await?;
    Metrics::add(&metrics.sessions_revoked, ended);
    Ok(ended)
}
