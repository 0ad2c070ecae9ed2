//! Sessions a trusted backend opens for its own users (`issueSession`):
//! the same sessions as sign-in opens, under the same policies.

use entity::user;

use super::{OpenedSession, open::open_session};
use crate::{
    auth::RequestMeta,
    config::Config,
    db::Db,
    error::{AppError, AppResult},
    service::audit::{self, NewEvent, events},
};

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
    let txn = db.transaction().await?;
    let opened = open_session(&txn, config, user, meta, lifetime, |session| {
        NewEvent::success(
            events::SESSION_ISSUED,
            format!("session issued for {} by API key {}", user.email, key.name),
        )
        .by_key(key)
        .meta("backendIp", backend.ip_address.clone())
        .meta("expiresAt", session.expires_at.to_rfc3339())
        .meta(
            "absoluteExpiresAt",
            session.absolute_expires_at.to_rfc3339(),
        )
    })
    .await;
    let opened = match opened {
        Ok(opened) => opened,
        Err(AppError::AccountDisabled) => {
            drop(txn);
            let event = NewEvent::failed(
                events::SESSION_ISSUED,
                format!(
                    "session for {} refused: the account is disabled",
                    user.email
                ),
            )
            .from_request(meta)
            .by_key(key)
            .meta("backendIp", backend.ip_address.clone())
            .subject(user.id)
            .meta("reason", "disabled");
            audit::record_alone(db, event).await?;
            return Err(AppError::AccountDisabled);
        }
        Err(err) => return Err(err),
    };
    txn.commit().await?;
    Ok(opened)
}
