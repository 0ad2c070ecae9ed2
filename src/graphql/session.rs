//! Sessions, sign-in and the viewer: the operations (their types, in
//! `session/types.rs`, are re-exported here).

mod types;

use async_graphql::{Context, Object, Result};
use entity::session;
use uuid::Uuid;

pub use types::{AuthPayload, EndReason, Session, SessionList, Viewer, ViewerRights};

use super::{
    context::{CheckedSessions, caller, end_session, request_meta, state},
    guards::{NotImpersonating, SessionAccess, SessionsOf, SignedIn},
};
use crate::{
    auth::Caller,
    error::AppError,
    service::{access::Action, session as sessions},
};

/// The session `id` if a guard of this request has read it already.
fn checked(ctx: &Context<'_>, id: Uuid) -> Option<(session::Model, entity::user::Model)> {
    ctx.data_opt::<CheckedSessions>()
        .and_then(|checked| checked.take(id))
}

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The signed-in user and the session of this request.
    #[graphql(guard = "SignedIn")]
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let caller = caller(ctx)?;
        Ok(Viewer {
            user: caller.user.clone().into(),
            session: sessions::as_seen_by(caller, caller.session.clone()).into(),
        })
    }

    /// Sessions of a user, newest first: the caller's own, or with `userId`
    /// another user's (admins: users' and admins'; owners: everyone's).
    /// Active ones only, unless `includeExpired` adds the expired and
    /// revoked ones.
    #[graphql(guard = "SessionsOf::new(user_id, Action::ViewSessions)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false, desc = "Also list expired and revoked sessions.")]
        include_expired: bool,
        #[graphql(desc = "Whose sessions (admins and owners); the viewer's own when null.")]
        user_id: Option<Uuid>,
    ) -> Result<SessionList> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let listed = sessions::list(
            &app.db,
            caller,
            &request_meta(ctx),
            user_id,
            include_expired,
        )
        .await
        .map_err(AppError::extend)?;
        Ok(SessionList::new(listed))
    }

    /// One session, under the same rules as `sessions`.
    #[graphql(guard = "SessionAccess::new(id, Action::ViewSessions)")]
    async fn session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's id.")] id: Uuid,
    ) -> Result<Session> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let session = sessions::view(&app.db, caller, &request_meta(ctx), id, checked(ctx, id))
            .await
            .map_err(AppError::extend)?;
        Ok(session.into())
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs in with email and password and opens a session. Unknown email
    /// and wrong password get the same `UNAUTHENTICATED` error.
    #[graphql(guard = "NotImpersonating::new(Action::Sensitive)")]
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email (any case).")] email: String,
        #[graphql(secret, desc = "The account's password.")] password: String,
    ) -> Result<AuthPayload> {
        let app = state(ctx)?;
        let opened = sessions::sign_in(
            &app.db,
            &app.metrics,
            &app.hasher,
            &app.throttle,
            &app.config,
            &email,
            password,
            &request_meta(ctx),
        )
        .await
        .map_err(AppError::extend)?;
        // Signing in again beyond the session limit may end the session
        // making this request: then it ends here for the rest of it too.
        if ctx
            .data_opt::<Caller>()
            .is_some_and(|caller| opened.ended.contains(&caller.session.id))
        {
            end_session(ctx);
        }
        Ok(AuthPayload {
            token: opened.token,
            session: opened.session.into(),
        })
    }

    /// Revokes one session; its token stops working at once. The row is
    /// kept, with `revokedAt` set. Revoking a session that has already
    /// ended changes nothing.
    #[graphql(guard = "SessionAccess::new(id, Action::RevokeSessions)")]
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session to end.")] id: Uuid,
    ) -> Result<Session> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let revoked = sessions::revoke(
            &app.db,
            &app.metrics,
            caller,
            &request_meta(ctx),
            id,
            checked(ctx, id),
        )
        .await
        .map_err(AppError::extend)?;
        if revoked.id == caller.session.id {
            end_session(ctx);
        }
        Ok(revoked.into())
    }

    /// Revokes all active sessions of a user (the caller when `userId` is
    /// omitted), except the caller's own current session unless
    /// `exceptCurrent` is false. Returns how many were ended.
    #[graphql(
        guard = "NotImpersonating::new(Action::RevokeSessions).and(SessionsOf::new(user_id, Action::RevokeSessions))"
    )]
    async fn revoke_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whose sessions (admins and owners); the viewer's own when null.")]
        user_id: Option<Uuid>,
        #[graphql(
            default = true,
            desc = "Keep the session making this request (when it is among them)."
        )]
        except_current: bool,
    ) -> Result<i32> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let ended = sessions::revoke_all(
            &app.db,
            &app.metrics,
            caller,
            &request_meta(ctx),
            user_id,
            except_current,
        )
        .await
        .map_err(AppError::extend)?;
        // The caller's own sessions, the current one among them.
        if !except_current && user_id.is_none_or(|id| id == caller.user.id) {
            end_session(ctx);
        }
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// Ends the session making this request; its token stops working at once.
    #[graphql(guard = "SignedIn")]
    async fn sign_out(&self, ctx: &Context<'_>) -> Result<bool> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let out = sessions::sign_out(&app.db, &app.metrics, caller, &request_meta(ctx)).await;
        // Ended, by this or (UNAUTHENTICATED) by a concurrent revocation.
        if matches!(out, Ok(()) | Err(AppError::Unauthenticated(_))) {
            end_session(ctx);
        }
        out.map_err(AppError::extend)?;
        Ok(true)
    }
}
