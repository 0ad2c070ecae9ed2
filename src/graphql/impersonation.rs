//! Starting and stopping impersonation.

use async_graphql::{Context, Object, Result};
use uuid::Uuid;

use super::{
    context::{caller, end_session, request_meta, state},
    guards::{Impersonation, SignedIn},
    session::AuthPayload,
};
use crate::{error::AppError, service::impersonation};

#[derive(Default)]
pub struct ImpersonationMutation;

#[Object]
impl ImpersonationMutation {
    /// Opens a short-lived session as another user, to see what they see.
    /// Admins may impersonate users; owners users and admins; nobody an
    /// owner or themselves, and not from an impersonation session. The
    /// session acts with the user's rights only, is listed in their
    /// sessions with the reason, and everything done through it is audited
    /// with the admin as the actor.
    #[graphql(guard = "Impersonation::new(user_id)")]
    async fn start_impersonation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to act as.")] user_id: Uuid,
        #[graphql(desc = "Why: required, 1 to 500 characters; shown to the user.")] reason: String,
    ) -> Result<AuthPayload> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let opened = impersonation::start(
            &app.db,
            &app.config,
            caller,
            &request_meta(ctx),
            user_id,
            &reason,
        )
        .await
        .map_err(AppError::extend)?;
        Ok(AuthPayload {
            token: opened.token,
            session: opened.session.into(),
        })
    }

    /// Ends the impersonation session making this request (the admin's own
    /// session is untouched). From an ordinary session it is an error.
    #[graphql(guard = "SignedIn")]
    async fn stop_impersonation(&self, ctx: &Context<'_>) -> Result<bool> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let out = impersonation::stop(&app.db, &app.metrics, caller, &request_meta(ctx)).await;
        // Ended, by this or (UNAUTHENTICATED) by a concurrent revocation.
        if matches!(out, Ok(()) | Err(AppError::Unauthenticated(_))) {
            end_session(ctx);
        }
        out.map_err(AppError::extend)?;
        Ok(true)
    }
}
