//! Sessions, sign-in and the viewer.

use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::session;
use uuid::Uuid;

use super::{caller, request_meta, state, user::User, users};
use crate::{auth, error::AppError, service::session as sessions};

/// A login session. The token itself is never shown again after sign-in:
/// `sessionToken` is its first characters and an ellipsis.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Session {
    pub id: Uuid,
    /// The token, masked: its first 8 characters and "…".
    pub session_token: String,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// When the session ends at the latest.
    pub expires: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Client IP address at sign-in.
    pub ip_address: Option<String>,
    /// User-Agent at sign-in.
    pub user_agent: Option<String>,
    /// Why an admin opened this session by impersonation.
    pub impersonation_reason: Option<String>,
    #[graphql(skip)]
    pub impersonator_id: Option<Uuid>,
}

impl From<session::Model> for Session {
    fn from(model: session::Model) -> Self {
        Self {
            id: model.id,
            session_token: auth::mask_token(&model.token_prefix),
            user_id: model.user_id,
            created_at: model.created_at,
            expires: model.expires_at,
            last_active_at: model.last_active_at,
            revoked_at: model.revoked_at,
            ip_address: model.ip_address,
            user_agent: model.user_agent,
            impersonation_reason: model.impersonation_reason,
            impersonator_id: model.impersonator_id,
        }
    }
}

#[ComplexObject]
impl Session {
    /// Past its expiry time.
    async fn is_expired(&self) -> bool {
        self.expires <= Utc::now()
    }

    /// Neither expired nor revoked.
    async fn is_active(&self) -> bool {
        self.revoked_at.is_none() && self.expires > Utc::now()
    }

    /// This is the session making the request.
    async fn is_current(&self, ctx: &Context<'_>) -> bool {
        super::caller(ctx).is_ok_and(|c| c.session.id == self.id)
    }

    /// The session's owner.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        users(ctx)?
            .load_one(self.user_id)
            .await?
            .ok_or_else(|| AppError::NotFound("user not found".into()).extend())
    }

    /// The admin who opened this session by impersonation, if any.
    async fn impersonator(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.impersonator_id {
            Some(id) => users(ctx)?.load_one(id).await,
            None => Ok(None),
        }
    }
}

/// The result of signing in: the token, shown this once, and its session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// The bearer token. Send it as `Authorization: Bearer <token>`. It is
    /// not stored anywhere and cannot be shown again.
    pub token: String,
    pub session: Session,
}

/// Who is calling.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Viewer {
    pub user: User,
    /// The session making this request.
    pub session: Session,
}

#[ComplexObject]
impl Viewer {
    /// The admin behind this session when it was opened by impersonation.
    async fn impersonator(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        self.session.impersonator(ctx).await
    }
}

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The signed-in user and the session of this request.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let caller = caller(ctx)?;
        Ok(Viewer {
            user: caller.user.clone().into(),
            session: caller.session.clone().into(),
        })
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs in with email and password and opens a session. Unknown email
    /// and wrong password get the same `UNAUTHENTICATED` error.
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        #[graphql(secret)] password: String,
    ) -> Result<AuthPayload> {
        let app = state(ctx)?;
        let opened = sessions::sign_in(
            &app.db,
            &app.hasher,
            &app.config,
            &email,
            password,
            &request_meta(ctx),
        )
        .await
        .map_err(AppError::extend)?;
        Ok(AuthPayload {
            token: opened.token,
            session: opened.session.into(),
        })
    }

    /// Ends the session making this request; its token stops working at once.
    async fn sign_out(&self, ctx: &Context<'_>) -> Result<bool> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        sessions::sign_out(&app.db, caller, &request_meta(ctx))
            .await
            .map_err(AppError::extend)?;
        Ok(true)
    }
}
