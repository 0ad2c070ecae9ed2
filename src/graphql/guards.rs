//! Guards: where the rights matrix ([`crate::service::access`]) meets the
//! schema. Each refusal is answered with a coded error and audited (once
//! per action and target in a request; see `graphql::context::deny`).

use async_graphql::{Context, Guard, Result};
use entity::user::Role;
use uuid::Uuid;

use super::context::{
    CheckedSessions, SESSION_ENDED, caller, deny, key_caller, refuse_key, session_ended, state,
};
use crate::{
    error::AppError,
    service::{
        access::{self, Action},
        session as sessions, user as users,
    },
};

/// The caller must be signed in.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        caller(ctx).map(|_| ())
    }
}

/// An operation for API keys holding `scope` (`issueSession`,
/// `upsertUser`): a key without the scope, and any user's session, are
/// answered `FORBIDDEN` and audited; no credential is `UNAUTHENTICATED`.
pub struct Scoped(pub entity::api_key::ApiScope);

impl Guard for Scoped {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let needs = || format!("this needs an API key with the scope {}", self.0.as_str());
        match key_caller(ctx) {
            Some(key) if key.has(self.0) => Ok(()),
            Some(key) => Err(refuse_key(
                ctx,
                key,
                Action::KeyOperation,
                AppError::Forbidden(needs()),
            )),
            None => {
                let caller = caller(ctx)?;
                Err(deny(
                    ctx,
                    caller,
                    Action::KeyOperation,
                    None,
                    None,
                    AppError::Forbidden(needs()),
                ))
            }
        }
    }
}

/// An operation for users holding at least `role` and for API keys
/// holding `scope` (the webhook operations): a key without the scope, and
/// a user without the role, are answered `FORBIDDEN` and audited.
pub struct RoleOrScope {
    role: Role,
    scope: entity::api_key::ApiScope,
    action: Action,
}

impl RoleOrScope {
    pub fn new(role: Role, scope: entity::api_key::ApiScope, action: Action) -> Self {
        Self {
            role,
            scope,
            action,
        }
    }
}

impl Guard for RoleOrScope {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        if let Some(key) = key_caller(ctx) {
            if key.has(self.scope) {
                return Ok(());
            }
            let error = AppError::Forbidden(format!(
                "this needs an API key with the scope {}",
                self.scope.as_str()
            ));
            return Err(refuse_key(ctx, key, self.action, error));
        }
        RoleGuard::new(self.role, self.action).check(ctx).await
    }
}

/// Acting on the sessions of the user `user_id` (the caller when `None`).
pub struct SessionsOf {
    user_id: Option<Uuid>,
    action: Action,
}

impl SessionsOf {
    pub fn new(user_id: Option<Uuid>, action: Action) -> Self {
        Self { user_id, action }
    }
}

impl Guard for SessionsOf {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx)?;
        let Some(target) = self.user_id.filter(|id| *id != caller.user.id) else {
            return Ok(());
        };
        let deny = |error: AppError| deny(ctx, caller, self.action, Some(target), None, error);
        // Whether the account exists is none of a plain user's business.
        if let Err(reason) = access::may_manage_others(caller) {
            return Err(deny(AppError::Forbidden(reason.into())));
        }
        let app = state(ctx)?;
        let owner = match users::get(&app.db, target).await {
            Ok(owner) => owner,
            Err(error @ AppError::NotFound(_)) => return Err(deny(error)),
            Err(error) => return Err(error.extend()),
        };
        match access::may_manage_sessions(caller, &owner) {
            Ok(()) => Ok(()),
            Err(reason) => Err(deny(AppError::Forbidden(reason.into()))),
        }
    }
}

/// Acting on one session, by id.
pub struct SessionAccess {
    id: Uuid,
    action: Action,
}

impl SessionAccess {
    pub fn new(id: Uuid, action: Action) -> Self {
        Self { id, action }
    }
}

impl Guard for SessionAccess {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx)?;
        if self.id == caller.session.id {
            return Ok(());
        }
        let revoking = self.action == Action::RevokeSessions;
        // Like `revokeSessions`: an impersonation session may end itself
        // (`stopImpersonation`, `signOut`, or revoking its own id), never
        // another of the user's sessions.
        if revoking && let Err(reason) = access::not_impersonating(caller) {
            return Err(deny(
                ctx,
                caller,
                self.action,
                Some(caller.user.id),
                Some(self.id),
                AppError::Forbidden(reason.into()),
            ));
        }
        let app = state(ctx)?;
        let found = sessions::find_with_owner(&app.db, self.id)
            .await
            .map_err(AppError::extend)?;
        let (subject, error) = match found {
            None => (None, AppError::NotFound("session not found".into())),
            Some((session, owner)) => {
                let allowed = match session.impersonator_id {
                    // Rights on an impersonation session include rights
                    // over the impersonator (read only when they matter).
                    Some(admin_id)
                        if revoking && owner.id != caller.user.id && admin_id != caller.user.id =>
                    {
                        let admin = users::find(&app.db, admin_id)
                            .await
                            .map_err(AppError::extend)?;
                        access::may_revoke(
                            caller,
                            session.id,
                            (owner.id, owner.role),
                            admin.map(|a| (a.id, a.role)),
                        )
                    }
                    _ if revoking => {
                        access::may_revoke(caller, session.id, (owner.id, owner.role), None)
                    }
                    _ => access::may_manage_sessions(caller, &owner),
                };
                match allowed {
                    Ok(()) => {
                        if let Ok(checked) = ctx.data::<CheckedSessions>() {
                            checked.keep(session, owner);
                        }
                        return Ok(());
                    }
                    Err(reason) => (Some(owner.id), AppError::Forbidden(reason.into())),
                }
            }
        };
        Err(deny(
            ctx,
            caller,
            self.action,
            subject,
            Some(self.id),
            error,
        ))
    }
}

/// Acting on the account `id` (`user`, `updateUser`, `disableUser`…):
/// the rule of `action` in [`access`], on the account as read now (the
/// service checks it again under lock). A plain user or an impersonation
/// session is refused before the account is looked up: whether it exists
/// is none of their business.
pub struct UserAccess {
    id: Uuid,
    action: Action,
}

impl UserAccess {
    pub fn new(id: Uuid, action: Action) -> Self {
        Self { id, action }
    }
}

impl Guard for UserAccess {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx)?;
        let deny = |subject: Option<Uuid>, error: AppError| {
            deny(ctx, caller, self.action, subject, None, error)
        };
        let early = match self.action {
            Action::ViewUser => access::may_view_user(caller, self.id),
            _ => access::may_manage_accounts(caller),
        };
        if let Err(reason) = early {
            return Err(deny(Some(self.id), AppError::Forbidden(reason.into())));
        }
        if self.action == Action::ViewUser && self.id == caller.user.id {
            return Ok(());
        }
        let app = state(ctx)?;
        let target = match users::get(&app.db, self.id).await {
            Ok(target) => target,
            Err(error @ AppError::NotFound(_)) => return Err(deny(None, error)),
            Err(error) => return Err(error.extend()),
        };
        if self.action == Action::ViewUser {
            return Ok(());
        }
        match access::may_manage_user(caller, self.action, target.id, target.role) {
            Ok(()) => Ok(()),
            Err(reason) => Err(deny(Some(target.id), AppError::Forbidden(reason.into()))),
        }
    }
}

/// The caller must hold at least `role` (never through impersonation).
pub struct RoleGuard {
    role: Role,
    action: Action,
}

impl RoleGuard {
    pub fn new(role: Role, action: Action) -> Self {
        Self { role, action }
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx)?;
        if access::has_role(caller, self.role) {
            return Ok(());
        }
        let error = AppError::Forbidden(format!("this needs the {} role", self.role.as_str()));
        Err(deny(ctx, caller, self.action, None, None, error))
    }
}

/// Reading audit events about `user_id` (unfiltered when `None`): a user
/// may name only themselves.
pub struct AuditAccess {
    user_id: Option<Uuid>,
}

impl AuditAccess {
    pub fn new(user_id: Option<Uuid>) -> Self {
        Self { user_id }
    }
}

impl Guard for AuditAccess {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        // A key with `AUDIT_READ` reads every event; any other key is
        // refused as from any operation for users.
        if let Some(key) = key_caller(ctx)
            && key.has(entity::api_key::ApiScope::AuditRead)
        {
            return Ok(());
        }
        let caller = caller(ctx)?;
        match self.user_id {
            Some(id) if id != caller.user.id && !access::may_read_all_audit(caller) => {
                let error =
                    AppError::Forbidden("you can read only the audit events about yourself".into());
                Err(deny(ctx, caller, Action::ReadAudit, Some(id), None, error))
            }
            _ => Ok(()),
        }
    }
}

/// Opening an impersonation session as `user_id`. Refusals are audited as
/// `impersonation.started` with status `failed`.
pub struct Impersonation {
    user_id: Uuid,
}

impl Impersonation {
    pub fn new(user_id: Uuid) -> Self {
        Self { user_id }
    }
}

impl Guard for Impersonation {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx)?;
        let deny = |subject: Option<Uuid>, error: AppError| {
            deny(ctx, caller, Action::Impersonate, subject, None, error)
        };
        if let Err(reason) = access::may_start_impersonating(caller) {
            return Err(deny(Some(self.user_id), AppError::Forbidden(reason.into())));
        }
        let app = state(ctx)?;
        let target = match users::get(&app.db, self.user_id).await {
            Ok(target) => target,
            Err(error @ AppError::NotFound(_)) => return Err(deny(None, error)),
            Err(error) => return Err(error.extend()),
        };
        if let Err(reason) = access::may_impersonate(caller, &target) {
            return Err(deny(Some(target.id), AppError::Forbidden(reason.into())));
        }
        // A disabled account gets no session, this one neither (checked
        // again under lock when the session is opened).
        if target.status == entity::user::UserStatus::Disabled {
            return Err(deny(Some(target.id), AppError::AccountDisabled));
        }
        Ok(())
    }
}

/// Account-wide actions (signing in again, revoking every session,
/// changing the password) are refused from an impersonation session. The
/// refusal is recorded as a refusal of `action` (a refused bulk revocation
/// is a failed `session.revoked`, like every refused revocation).
pub struct NotImpersonating {
    action: Action,
}

impl NotImpersonating {
    pub fn new(action: Action) -> Self {
        Self { action }
    }
}

impl Guard for NotImpersonating {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let Some(caller) = ctx.data_opt::<crate::auth::Caller>() else {
            // Signing in (the one operation here open to anonymous
            // requests) is no API key's business either.
            return match key_caller(ctx) {
                Some(_) => caller(ctx).map(|_| ()),
                None => Ok(()),
            };
        };
        // Signed in with a session this request has ended: not anonymous.
        if session_ended(ctx) {
            return Err(AppError::Unauthenticated(SESSION_ENDED).extend());
        }
        let Err(reason) = access::not_impersonating(caller) else {
            return Ok(());
        };
        Err(deny(
            ctx,
            caller,
            self.action,
            Some(caller.user.id),
            Some(caller.session.id),
            AppError::Forbidden(reason.into()),
        ))
    }
}
