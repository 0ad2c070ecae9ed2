//! The schema's types of sessions: a session as shown (never its token
//! hash), how it ended, the viewer, a sign-in's answer and a list.

use async_graphql::{ComplexObject, Context, Enum, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::session;
use uuid::Uuid;

use crate::{
    auth::{self, Caller},
    error::AppError,
    graphql::{
        context::{caller, session_ended, users},
        user::{Role, User},
    },
    service::{access, device, session as sessions},
};

/// A login session. The token itself is never shown again after sign-in:
/// `sessionToken` is its first characters and an ellipsis.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Session {
    /// The session's id.
    pub id: Uuid,
    /// The token, masked: its first 8 characters and "…".
    pub session_token: String,
    /// Whose session it is.
    pub user_id: Uuid,
    /// When it was opened (signed in).
    pub created_at: DateTime<Utc>,
    /// When the session ends at the latest.
    pub expires: DateTime<Utc>,
    /// When it was last used (written at most every
    /// `ACTIVITY_WRITE_INTERVAL`).
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
    #[graphql(skip)]
    pub revoked_by_id: Option<Uuid>,
    /// How it ended, once it has (see [`EndReason`]).
    pub end_reason: Option<EndReason>,
    /// When it ended: revoked, or past its expiry (`expires` is the earlier
    /// of its absolute and its idle expiry). Null while it is active.
    pub ended_at: Option<DateTime<Utc>>,
}

/// How a session ended.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Its holder signed out.
    SignOut,
    /// Revoked on its own (`revokeSession`).
    Revoked,
    /// Revoked with the user's other sessions (`revokeSessions`).
    RevokedBulk,
    /// The user's password was changed, which ended the other sessions.
    PasswordChanged,
    /// A sign-in beyond `MAX_SESSIONS_PER_USER` ended the oldest session.
    SessionLimit,
    /// The admin stopped this impersonation (`stopImpersonation`).
    ImpersonationStopped,
    /// The admin's own session, which opened this impersonation, ended.
    ImpersonatorEnded,
    /// Unused for longer than `SESSION_IDLE_TIMEOUT`.
    IdleTimeout,
    /// Its lifetime (`SESSION_TTL`, or `IMPERSONATION_TTL`) ran out.
    Expired,
    /// Revoked for a reason this server does not know (written by another
    /// version).
    Other,
}

impl EndReason {
    /// From a stored revocation reason (`service::session::reasons`).
    fn of_revocation(reason: Option<&str>) -> Self {
        use sessions::reasons;
        match reason {
            Some(reasons::SIGN_OUT) => Self::SignOut,
            Some(reasons::REVOKE) => Self::Revoked,
            Some(reasons::BULK) => Self::RevokedBulk,
            Some(reasons::PASSWORD_CHANGED) => Self::PasswordChanged,
            Some(reasons::SESSION_LIMIT) => Self::SessionLimit,
            Some(reasons::IMPERSONATION_STOPPED) => Self::ImpersonationStopped,
            Some(reasons::IMPERSONATOR_SESSION_ENDED) => Self::ImpersonatorEnded,
            _ => Self::Other,
        }
    }

    /// Ended by a rule of the server rather than by someone's act.
    fn by_the_system(self) -> bool {
        matches!(
            self,
            Self::SessionLimit | Self::ImpersonatorEnded | Self::IdleTimeout | Self::Expired
        )
    }
}

impl From<session::Model> for Session {
    fn from(model: session::Model) -> Self {
        let (end_reason, ended_at) = if let Some(revoked_at) = model.revoked_at {
            let reason = EndReason::of_revocation(model.revoke_reason.as_deref());
            (Some(reason), Some(revoked_at))
        } else if model.expires_at <= Utc::now() {
            let reason = match sessions::expiry_reason(&model).0 {
                sessions::end_reasons::IDLE_TIMEOUT => EndReason::IdleTimeout,
                _ => EndReason::Expired,
            };
            (Some(reason), Some(model.expires_at))
        } else {
            (None, None)
        };
        let revoked_by_id = model
            .revoked_by
            .filter(|_| end_reason.is_some_and(|r| !r.by_the_system()));
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
            revoked_by_id,
            end_reason,
            ended_at,
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
        caller(ctx).is_ok_and(|c| c.session.id == self.id)
    }

    /// A readable label for the client, e.g. "Firefox 131 on Linux",
    /// parsed from `userAgent`; null when it is not recognised.
    async fn device(&self) -> Option<String> {
        self.user_agent.as_deref().and_then(device::label)
    }

    /// Whether the caller may revoke this session now (`revokeSession`
    /// would not refuse it): the rule the mutation's guard applies. Any
    /// session may end itself; an impersonation session no other; admins
    /// others' sessions as for `sessions`, and an impersonation session
    /// only with rights over its impersonator too. False for a request with
    /// no session (`signIn`'s answer) or whose session it has ended, and
    /// when the accounts cannot be read.
    async fn can_revoke(&self, ctx: &Context<'_>) -> bool {
        // Not `caller()`: answered `false`, never an error that would null
        // the whole session.
        let Some(caller) = ctx.data_opt::<Caller>().filter(|_| !session_ended(ctx)) else {
            return false;
        };
        // Cheap refusals first, before any account is read.
        if self.id == caller.session.id {
            return true;
        }
        if !access::may_revoke_all(caller) {
            return false;
        }
        let Ok(loader) = users(ctx) else {
            return false;
        };
        let Ok(Some(owner)) = loader.load_one(self.user_id).await else {
            return false;
        };
        let impersonator = match self.impersonator_id {
            // The guard, too, judges without the impersonator when that
            // account is gone.
            Some(id) => match loader.load_one(id).await {
                Ok(admin) => admin.map(|a| (a.id, a.role)),
                Err(_) => return false,
            },
            None => None,
        };
        access::may_revoke(caller, self.id, (owner.id, owner.role), impersonator).is_ok()
    }

    /// The session's owner.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        users(ctx)?
            .load_one(self.user_id)
            .await?
            .map(User::from)
            .ok_or_else(|| AppError::NotFound("user not found".into()).extend())
    }

    /// The admin who opened this session by impersonation, if any.
    async fn impersonator(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.impersonator_id {
            Some(id) => Ok(users(ctx)?.load_one(id).await?.map(User::from)),
            None => Ok(None),
        }
    }

    /// Who ended it: the person who signed out, revoked it or changed the
    /// password. Null while it is active, and when the server ended it by
    /// a rule (expiry, idle timeout, the session limit, the end of the
    /// impersonating admin's session).
    async fn revoked_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.revoked_by_id {
            Some(id) => Ok(users(ctx)?.load_one(id).await?.map(User::from)),
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
    /// The session the token opens.
    pub session: Session,
}

/// Who is calling.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Viewer {
    /// The signed-in account (the impersonated user's, when impersonating).
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

    /// What the server allows this caller, by the rules the guards apply,
    /// so that a client offers only what would be allowed. All false once
    /// this request has ended the session.
    async fn can(&self, ctx: &Context<'_>) -> ViewerRights {
        match ctx.data_opt::<Caller>().filter(|_| !session_ended(ctx)) {
            Some(caller) => ViewerRights::of(caller),
            None => ViewerRights::default(),
        }
    }
}

/// What the viewer may do that does not depend on a particular target
/// (for one account or session, see `User.canImpersonate` and
/// `Session.canRevoke`). Each is the rule of the guard named.
#[derive(SimpleObject, Default)]
pub struct ViewerRights {
    /// May find accounts by email or name (`users`), and so open their
    /// pages: admins and owners, not from an impersonation session.
    pub list_users: bool,
    /// May read every audit event (`sessionAudit`), and so name any
    /// account as `AuditFilter.userId`: admins and owners, not from an
    /// impersonation session. Otherwise only the events about oneself.
    pub read_all_audit: bool,
    /// May walk the audit hash chain (`auditChain`): owners, not from an
    /// impersonation session.
    pub verify_audit_chain: bool,
    /// May end sessions in bulk (`revokeSessions`, e.g. all of one's other
    /// sessions): not from an impersonation session. Whose sessions
    /// follows the rules of `sessions`.
    pub revoke_sessions: bool,
    /// May make accounts (`createUser`), and manage them (each account's
    /// `canUpdate`, `canDisable`… say which): admins and owners, not from
    /// an impersonation session.
    pub manage_users: bool,
    /// The roles the viewer may give an account (`createUser`,
    /// `setUserRole`): admins `USER`, owners all three; none otherwise.
    pub grantable_roles: Vec<Role>,
    /// May manage webhook endpoints (`webhookEndpoints`,
    /// `createWebhookEndpoint`, …): owners, not from an impersonation
    /// session.
    pub manage_webhooks: bool,
}

impl ViewerRights {
    fn of(caller: &Caller) -> Self {
        use entity::user::Role as Stored;
        Self {
            manage_users: access::may_manage_accounts(caller).is_ok(),
            grantable_roles: [Stored::User, Stored::Admin, Stored::Owner]
                .into_iter()
                .filter(|role| access::may_grant_role(caller, *role).is_ok())
                .map(Role::from)
                .collect(),
            list_users: access::may_list_users(caller),
            read_all_audit: access::may_read_all_audit(caller),
            verify_audit_chain: access::may_verify_audit(caller),
            revoke_sessions: access::may_revoke_all(caller),
            manage_webhooks: access::may_manage_webhooks(caller),
        }
    }
}

/// A user's sessions.
#[derive(SimpleObject)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<Session>,
    /// How many are listed.
    pub count: i32,
    /// How many of those listed are active (neither expired nor revoked).
    pub active_count: i32,
}

impl SessionList {
    pub(crate) fn new(models: Vec<session::Model>) -> Self {
        let now = Utc::now();
        let active_count = models.iter().filter(|s| s.is_active(now)).count();
        let sessions: Vec<Session> = models.into_iter().map(Session::from).collect();
        Self {
            count: i32::try_from(sessions.len()).unwrap_or(i32::MAX),
            active_count: i32::try_from(active_count).unwrap_or(i32::MAX),
            sessions,
        }
    }
}
