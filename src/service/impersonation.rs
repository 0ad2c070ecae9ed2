//! Impersonation: an admin opens a short-lived session as a user, with a
//! reason, visible to that user and audited with both of them.

use entity::session;
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::{
    auth::{self, Caller, RequestMeta},
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    metrics::Metrics,
    service::{
        audit::{self, NewEvent, events},
        session::{OpenedSession, end_session, new_session, reasons},
        user as users,
    },
};

pub const MAX_REASON_LEN: usize = 500;

/// Trims the reason and checks its length.
pub fn validate_reason(reason: &str) -> AppResult<String> {
    let reason = reason.trim();
    let chars = reason.chars().count();
    if chars == 0 || chars > MAX_REASON_LEN {
        return Err(AppError::bad_input(
            "reason",
            format!("reason must be 1 to {MAX_REASON_LEN} characters"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "reason",
            "reason must not contain control characters (line breaks included)",
        ));
    }
    if reason.chars().any(is_bidi_control) {
        return Err(AppError::bad_input(
            "reason",
            "reason must not contain bidirectional override or isolate characters \
             (U+202A to U+202E, U+2066 to U+2069)",
        ));
    }
    Ok(reason.to_owned())
}

/// The bidirectional embeddings, overrides and isolates: invisible, they
/// make the reason shown to the user read differently from what was
/// stored ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Opens a session as the user `target_id` for `caller` (already
/// authorised), for `reason` (checked by [`validate_reason`]). It lives
/// `IMPERSONATION_TTL` at most and never longer than the caller's session.
#[tracing::instrument(skip_all, fields(target = %target_id, admin = %caller.user.id))]
pub async fn start(
    db: &Db,
    config: &Config,
    caller: &Caller,
    meta: &RequestMeta,
    target_id: Uuid,
    reason: &str,
) -> AppResult<OpenedSession> {
    let reason = validate_reason(reason)?;
    let target = users::get(db, target_id).await?;
    let token = auth::generate_token()?;
    let now = db::now();
    // Never longer than the admin's own session, idle expiry included.
    let absolute_expires_at =
        (now + Config::chrono(config.impersonation_ttl)).min(caller.session.absolute_expires_at);
    let expires_at = absolute_expires_at
        .min(now + Config::chrono(config.session_idle_timeout))
        .min(caller.session.expires_at);
    let session = session::Model {
        impersonator_id: Some(caller.user.id),
        impersonation_reason: Some(reason.clone()),
        impersonator_session_id: Some(caller.session.id),
        ..new_session(
            &token,
            target.id,
            meta,
            now,
            expires_at,
            absolute_expires_at,
        )
    };
    let txn = db.transaction().await?;
    // As for any session opened (see `session::open`): the account read
    // again under its lock, so a concurrent `disableUser` ends it or it is
    // refused here.
    if users::lock(&txn, target.id).await?.status == entity::user::UserStatus::Disabled {
        return Err(AppError::AccountDisabled);
    }
    session::Entity::insert(session::ActiveModel::from(session.clone()))
        .exec_without_returning(&txn)
        .await?;
    audit::record(
        &txn,
        NewEvent::success(
            events::IMPERSONATION_STARTED,
            format!(
                "{} started impersonating {}: {reason}",
                caller.user.email, target.email
            ),
        )
        .from_request(meta)
        .actor(caller.user.id)
        .subject(target.id)
        .session(session.id)
        .meta("reason", reason)
        .meta("impersonatorEmail", caller.user.email.clone())
        .meta("impersonatorName", caller.user.name.clone())
        .meta("impersonatorSessionId", caller.session.id.to_string())
        .meta("userEmail", target.email.clone())
        .meta("expiresAt", expires_at.to_rfc3339()),
    )
    .await?;
    txn.commit().await?;
    Ok(OpenedSession {
        token: token.plaintext,
        session,
        user: target,
        ended: Vec::new(),
    })
}

/// Ends the impersonation session making this request (counted as revoked
/// in `metrics`). The admin's own session is untouched.
#[tracing::instrument(skip_all, fields(session_id = %caller.session.id))]
pub async fn stop(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
) -> AppResult<()> {
    let Some(admin_id) = caller.session.impersonator_id else {
        return Err(AppError::bad_input(
            "session",
            "this session is not an impersonation session",
        ));
    };
    // Who it was and why, for the impersonated user's log.
    let admin = users::find(db, admin_id).await?;
    let txn = db.transaction().await?;
    let ended = end_session(
        &txn,
        &caller.session,
        &caller.user,
        caller.actor(),
        meta,
        reasons::IMPERSONATION_STOPPED,
    )
    .await?;
    if ended.is_none() {
        return Err(AppError::Unauthenticated(crate::error::BAD_TOKEN));
    }
    let mut event = NewEvent::success(
        events::IMPERSONATION_STOPPED,
        format!("impersonation of {} stopped", caller.user.email),
    )
    .from_request(meta)
    .by(caller)
    .subject(caller.user.id)
    .session(caller.session.id)
    .meta("impersonatorId", admin_id.to_string())
    .meta("userEmail", caller.user.email.clone());
    if let Some(admin) = admin {
        event = event
            .meta("impersonatorEmail", admin.email)
            .meta("impersonatorName", admin.name);
    }
    if let Some(reason) = &caller.session.impersonation_reason {
        event = event.meta("reason", reason.clone());
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Metrics::inc(&metrics.sessions_revoked);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            validate_reason("  support ticket 42 ").unwrap(),
            "support ticket 42"
        );
        for (reason, why) in [
            ("", "empty"),
            ("   ", "blank"),
            (&*"x".repeat(501), "too long"),
        ] {
            let err = validate_reason(reason).unwrap_err();
            assert!(err.to_string().contains("1 to 500"), "{why}: {err}");
        }
        assert!(
            validate_reason(&"é".repeat(500)).is_ok(),
            "500 characters, not bytes"
        );
    }

    #[test]
    fn control_and_bidirectional_characters_are_refused() {
        let bidi = ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}');
        for c in bidi {
            let err = validate_reason(&format!("ticket {c}42")).unwrap_err();
            assert!(
                err.to_string().contains("bidirectional"),
                "U+{:04X}: {err}",
                c as u32
            );
        }
        for c in ['\n', '\u{7}', '\u{0}', '\u{85}'] {
            let err = validate_reason(&format!("ticket {c}42")).unwrap_err();
            assert!(
                err.to_string().contains("control"),
                "U+{:04X}: {err}",
                c as u32
            );
        }
        for fine in ["ticket 42 (עברית)", "support — café", "\u{200F}mark"] {
            assert!(validate_reason(fine).is_ok(), "{fine:?}");
        }
    }
}
