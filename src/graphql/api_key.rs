//! API keys as the schema shows them (never the key's hash), and the
//! owners' operations on them.

use async_graphql::{ComplexObject, Context, Enum, Object, OneofObject, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::api_key::{self, ApiScope as Scope};
use uuid::Uuid;

use super::{
    context::{caller, key_caller, request_meta, state, users},
    guards::{RoleGuard, Scoped},
    session::AuthPayload,
    user::User,
};
use crate::{
    auth::RequestMeta,
    error::AppError,
    metrics::Metrics,
    service::{
        access::{self, Action},
        api_key as api_keys, session as sessions, user as users_service,
    },
};

/// What an API key may do. A key acts with exactly its scopes: it has no
/// user's rights and cannot impersonate.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ApiScope {
    /// `issueSession`: open a session for a user the application
    /// authenticated itself.
    SessionsIssue,
    /// `POST /oauth/introspect`: check a session token.
    SessionsCheck,
    /// `upsertUser`: create and update accounts by the application's ids.
    UsersProvision,
    /// `sessionAudit`: read every audit event.
    AuditRead,
    /// `createWebhookEndpoint` and the other webhook operations.
    WebhooksManage,
    /// The OpenID Shared Signals stream-management API and poll
    /// endpoints (`/ssf/…`).
    SsfManage,
}

impl From<Scope> for ApiScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::SessionsIssue => ApiScope::SessionsIssue,
            Scope::SessionsCheck => ApiScope::SessionsCheck,
            Scope::UsersProvision => ApiScope::UsersProvision,
            Scope::AuditRead => ApiScope::AuditRead,
            Scope::WebhooksManage => ApiScope::WebhooksManage,
            Scope::SsfManage => ApiScope::SsfManage,
        }
    }
}

impl From<ApiScope> for Scope {
    fn from(scope: ApiScope) -> Self {
        match scope {
            ApiScope::SessionsIssue => Scope::SessionsIssue,
            ApiScope::SessionsCheck => Scope::SessionsCheck,
            ApiScope::UsersProvision => Scope::UsersProvision,
            ApiScope::AuditRead => Scope::AuditRead,
            ApiScope::WebhooksManage => Scope::WebhooksManage,
            ApiScope::SsfManage => Scope::SsfManage,
        }
    }
}

/// A key a trusted backend calls with (`Authorization: Bearer smk_…`).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct ApiKey {
    /// The key's id.
    pub id: Uuid,
    /// What the key is for, unique among live keys.
    pub name: String,
    /// The key's first characters and an ellipsis; the key itself is
    /// shown only once, by `createApiKey`.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<ApiScope>,
    /// The id of the owner who made it; null when made on the command line.
    pub created_by_id: Option<Uuid>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last used (updated at most once per
    /// `ACTIVITY_WRITE_INTERVAL`); null if never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; null while it is live.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The id of the owner who revoked it; null while it is live, and when
    /// revoked on the command line.
    pub revoked_by_id: Option<Uuid>,
    /// Not revoked: it authenticates.
    pub is_active: bool,
}

#[ComplexObject]
impl ApiKey {
    /// The owner who made it; null when made on the command line.
    async fn created_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.created_by_id {
            Some(id) => Ok(users(ctx)?.load_one(id).await?.map(User::from)),
            None => Ok(None),
        }
    }

    /// The owner who revoked it; null while it is live, and when revoked
    /// on the command line.
    async fn revoked_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.revoked_by_id {
            Some(id) => Ok(users(ctx)?.load_one(id).await?.map(User::from)),
            None => Ok(None),
        }
    }
}

impl From<api_key::Model> for ApiKey {
    fn from(model: api_key::Model) -> Self {
        Self {
            id: model.id,
            scopes: model.scopes().into_iter().map(ApiScope::from).collect(),
            prefix: crate::auth::mask_token(&model.key_prefix),
            is_active: model.is_active(),
            name: model.name,
            created_by_id: model.created_by,
            created_at: model.created_at,
            last_used_at: model.last_used_at,
            revoked_at: model.revoked_at,
            revoked_by_id: model.revoked_by,
        }
    }
}

/// A key just made.
#[derive(SimpleObject)]
pub struct ApiKeyPayload {
    /// The key (`smk_…`): shown this once, stored only as a hash. Keep it
    /// in the backend's secret store.
    pub key: String,
    /// The key as `apiKeys` lists it.
    pub api_key: ApiKey,
}

#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// Owners only: every API key, revoked ones too, newest first.
    #[graphql(guard = "RoleGuard::new(access::MANAGE_API_KEYS_ROLE, Action::ManageApiKeys)")]
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let app = state(ctx)?;
        let keys = api_keys::list(&app.db).await.map_err(AppError::extend)?;
        Ok(keys.into_iter().map(ApiKey::from).collect())
    }
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Owners only: makes an API key with `scopes` (at least one, none
    /// twice). The answer holds the key, shown this once. A name is 1 to
    /// 64 letters, digits, spaces, `.`, `_` or `-`, unique among live
    /// keys; at most 50 keys are live at once.
    #[graphql(guard = "RoleGuard::new(access::MANAGE_API_KEYS_ROLE, Action::ManageApiKeys)")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What the key is for, e.g. the backend using it.")] name: String,
        #[graphql(desc = "What the key may do.")] scopes: Vec<ApiScope>,
    ) -> Result<ApiKeyPayload> {
        let app = state(ctx)?;
        let owner = caller(ctx)?;
        let scopes: Vec<Scope> = scopes.into_iter().map(Scope::from).collect();
        let new = api_keys::create(
            &app.db,
            Some(owner.actor_id()),
            &name,
            &scopes,
            &request_meta(ctx),
        )
        .await
        .map_err(AppError::extend)?;
        Ok(ApiKeyPayload {
            key: new.plaintext,
            api_key: new.key.into(),
        })
    }

    /// Owners only: revokes an API key; its very next use is refused.
    /// Revoking a revoked key answers it unchanged.
    #[graphql(guard = "RoleGuard::new(access::MANAGE_API_KEYS_ROLE, Action::ManageApiKeys)")]
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's id.")] id: Uuid,
    ) -> Result<ApiKey> {
        let app = state(ctx)?;
        let owner = caller(ctx)?;
        api_keys::revoke(&app.db, id, Some(owner.actor_id()), &request_meta(ctx))
            .await
            .map(ApiKey::from)
            .map_err(AppError::extend)
    }
}

/// The account a trusted backend names: exactly one of its id, its email
/// or its id in the application (`externalId`).
#[derive(OneofObject)]
pub enum UserRef {
    /// The account's id here.
    Id(Uuid),
    /// The account's email (any case).
    Email(String),
    /// The account's id in the application (`upsertUser`).
    ExternalId(String),
}

/// The account `user` names, else `NOT_FOUND`.
async fn find_user(db: &crate::db::Db, user: UserRef) -> Result<entity::user::Model, AppError> {
    let found = match user {
        UserRef::Id(id) => return users_service::get(db, id).await,
        UserRef::Email(email) => {
            let email = email.trim().to_lowercase();
            if email.is_empty() || email.len() > users_service::MAX_EMAIL_LEN {
                None
            } else {
                users_service::find_by_email(db, &email).await?
            }
        }
        UserRef::ExternalId(external_id) => {
            let external_id = users_service::validate_external_id(&external_id)?;
            users_service::find_by_external_id(db, &external_id).await?
        }
    };
    found.ok_or_else(|| AppError::NotFound(users_service::USER_NOT_FOUND.into()))
}

/// The end user's address given to `issueSession`: an IP address.
fn client_meta(
    ip_address: Option<String>,
    user_agent: Option<String>,
) -> Result<RequestMeta, AppError> {
    if let Some(ip) = ip_address.as_deref().map(str::trim)
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(AppError::bad_input(
            "ipAddress",
            "ipAddress must be an IPv4 or IPv6 address",
        ));
    }
    Ok(RequestMeta::new(
        ip_address.as_deref(),
        user_agent.as_deref(),
    ))
}

#[derive(Default)]
pub struct BackendMutation;

/// The operations trusted backends call with an API key
/// (`Authorization: Bearer smk_…`), each needing one scope.
#[Object]
impl BackendMutation {
    /// API keys with `SESSIONS_ISSUE`: opens a session for a user the
    /// application authenticated itself (its own sign-in, SSO, passkeys…)
    /// and answers its token, as `signIn` does. Every policy of sign-in
    /// holds: `MAX_SESSIONS_PER_USER` (the oldest session ends), at most
    /// `SESSION_TTL`, the idle timeout. Only users get sessions this way;
    /// admins and owners sign in themselves (`FORBIDDEN`). Audited as
    /// `auth.session_issued`, naming the key.
    #[graphql(guard = "Scoped(Scope::SessionsIssue)")]
    async fn issue_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whom the session is for.")] user: UserRef,
        #[graphql(desc = "The user's IP address, as the application saw it.")] ip_address: Option<
            String,
        >,
        #[graphql(desc = "The user's User-Agent, as the application saw it.")] user_agent: Option<
            String,
        >,
        #[graphql(
            desc = "The session's lifetime, e.g. `8h` or `7d`: at most `SESSION_TTL`, \
            its default."
        )]
        ttl: Option<String>,
    ) -> Result<AuthPayload> {
        let app = state(ctx)?;
        let Some(key) = key_caller(ctx) else {
            return Err(AppError::Unauthenticated(crate::error::SIGN_IN_REQUIRED).extend());
        };
        let ttl = ttl
            .as_deref()
            .map(crate::config::parse_duration)
            .transpose()
            .map_err(|e| AppError::bad_input("ttl", e).extend())?;
        let client = client_meta(ip_address, user_agent).map_err(AppError::extend)?;
        let user = find_user(&app.db, user).await.map_err(AppError::extend)?;
        let opened = sessions::issue(
            &app.db,
            &app.config,
            &key.key,
            &user,
            ttl,
            &client,
            &request_meta(ctx),
        )
        .await
        .map_err(AppError::extend)?;
        Metrics::add(&app.metrics.sessions_revoked, opened.ended.len() as u64);
        Ok(AuthPayload {
            token: opened.token,
            session: opened.session.into(),
        })
    }

    /// API keys with `USERS_PROVISION`: creates or updates the account
    /// the application knows as `externalId`, with this email and name
    /// (a new account is a user without a password: it gets sessions
    /// through `issueSession`). An email another account holds is
    /// `BAD_USER_INPUT`. Audited as `user.created` or `user.updated`.
    #[graphql(guard = "Scoped(Scope::UsersProvision)")]
    async fn upsert_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id in the application.")] external_id: String,
        #[graphql(desc = "The account's email.")] email: String,
        #[graphql(desc = "The name shown for the account.")] name: String,
    ) -> Result<User> {
        let app = state(ctx)?;
        let Some(key) = key_caller(ctx) else {
            return Err(AppError::Unauthenticated(crate::error::SIGN_IN_REQUIRED).extend());
        };
        let (user, _) = users_service::upsert(
            &app.db,
            &key.key,
            &external_id,
            &email,
            &name,
            &request_meta(ctx),
        )
        .await
        .map_err(AppError::extend)?;
        Ok(user.into())
    }
}
