//! Users as the schema shows them (never the password hash).

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user;
use uuid::Uuid;

use super::{
    context::{caller, deny, request_meta, session_ended, state, users as loader},
    guards::{NotImpersonating, RoleGuard, SignedIn, UserAccess},
    paging::Pagination,
    session::AuthPayload,
};
use crate::{
    auth::Caller,
    error::AppError,
    service::{
        access::{self, Action},
        account::{self, AccountChanges, NewAccount},
        password, session as sessions, user as users,
    },
};

/// Whether an account may have sessions.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserStatus {
    /// Signs in and is issued sessions.
    Active,
    /// Disabled by an admin (`disableUser`): every session ended, sign-in
    /// and `issueSession` refused until `enableUser`.
    Disabled,
}

impl From<user::UserStatus> for UserStatus {
    fn from(status: user::UserStatus) -> Self {
        match status {
            user::UserStatus::Active => UserStatus::Active,
            user::UserStatus::Disabled => UserStatus::Disabled,
        }
    }
}

/// What an account may do.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sees and ends their own sessions.
    User,
    /// Also sees and ends users' and admins' sessions, reads all audit
    /// events, and may impersonate users.
    Admin,
    /// Everything, including acting on admins and owners.
    Owner,
}

impl From<user::Role> for Role {
    fn from(role: user::Role) -> Self {
        match role {
            user::Role::User => Role::User,
            user::Role::Admin => Role::Admin,
            user::Role::Owner => Role::Owner,
        }
    }
}

impl From<Role> for user::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::User => user::Role::User,
            Role::Admin => user::Role::Admin,
            Role::Owner => user::Role::Owner,
        }
    }
}

/// An account.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct User {
    /// The account's id.
    pub id: Uuid,
    /// Lower-case, unique.
    pub email: String,
    /// The name shown for the account.
    pub name: String,
    /// What the account may do: see the rights of each role.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// The account's id in the application that provisioned it
    /// (`upsertUser`, `createUser`); null for accounts without one.
    pub external_id: Option<String>,
    /// Active, or disabled by an admin.
    pub status: UserStatus,
    /// When it was disabled; null while active.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled; null while active.
    pub disabled_reason: Option<String>,
    /// When a session was last opened for it by `signIn`, `signUp` or
    /// `issueSession`; null if never.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// Whether the request's caller may take `action` on the account `user`
/// now: false for a request with no session or whose session it has
/// ended (rights are answered, never an error that would null the
/// account).
fn may(ctx: &Context<'_>, action: Action, user: &User) -> bool {
    ctx.data_opt::<Caller>()
        .filter(|_| !session_ended(ctx))
        .is_some_and(|caller| {
            access::may_manage_user(caller, action, user.id, user.role.into()).is_ok()
        })
}

#[ComplexObject]
impl User {
    /// Whether the caller may impersonate this account now
    /// (`startImpersonation`): admins may impersonate users, owners users
    /// and admins; nobody an owner or themselves, nor from an
    /// impersonation session, nor a disabled account. The rule the
    /// mutation's guard applies.
    /// False for a request with no session (`signIn`'s answer) or whose
    /// session it has ended.
    async fn can_impersonate(&self, ctx: &Context<'_>) -> bool {
        // Not `caller()`: a request that cannot impersonate is answered
        // `false`, not with an error that would null the whole account.
        ctx.data_opt::<Caller>()
            .filter(|_| !session_ended(ctx))
            .is_some_and(|caller| {
                self.status == UserStatus::Active
                    && access::may_impersonate_account(caller, self.id, self.role.into()).is_ok()
            })
    }

    /// Whether the caller may change this account's name and email
    /// (`updateUser`): admins users', owners everyone's. The rule the
    /// mutation applies.
    async fn can_update(&self, ctx: &Context<'_>) -> bool {
        may(ctx, Action::UpdateUser, self)
    }

    /// Whether the caller may change this account's role (`setUserRole`):
    /// owners, on anyone but themselves.
    async fn can_set_role(&self, ctx: &Context<'_>) -> bool {
        may(ctx, Action::SetUserRole, self)
    }

    /// Whether the caller may disable and enable this account
    /// (`disableUser`, `enableUser`): admins users', owners everyone's,
    /// nobody their own. (The last active owner is refused by the
    /// mutation even so.)
    async fn can_disable(&self, ctx: &Context<'_>) -> bool {
        may(ctx, Action::DisableUser, self)
    }

    /// Whether the caller may delete this account (`deleteUser`): as
    /// `canDisable`.
    async fn can_delete(&self, ctx: &Context<'_>) -> bool {
        may(ctx, Action::DeleteUser, self)
    }

    /// Whether the caller may set this account's password
    /// (`setPassword`): as `canDisable`.
    async fn can_reset_password(&self, ctx: &Context<'_>) -> bool {
        may(ctx, Action::ResetPassword, self)
    }
}

/// Answers a refusal the service found (on the account as it was under
/// lock): audited like the guard's; other errors as they are.
fn refused(
    ctx: &Context<'_>,
    caller: &Caller,
    action: Action,
    id: Option<uuid::Uuid>,
    error: AppError,
) -> async_graphql::Error {
    match error {
        AppError::Forbidden(_) => deny(ctx, caller, action, id, None, error),
        AppError::NotFound(_) => deny(ctx, caller, action, None, None, error),
        other => other.extend(),
    }
}

/// A new account (`createUser`).
#[derive(InputObject)]
pub struct CreateUserInput {
    /// The account's email (stored lower-case; unique).
    pub email: String,
    /// The name shown for the account, 1 to 200 characters.
    pub name: String,
    /// What it may do: admins make users, owners any role.
    #[graphql(default_with = "Role::User")]
    pub role: Role,
    /// Its password (12 to 256 characters); none for an account that
    /// gets sessions only from a trusted backend (`issueSession`).
    #[graphql(secret)]
    pub password: Option<String>,
    /// Its id in the application, if any (`UserRef.externalId`).
    pub external_id: Option<String>,
}

/// Changes to an account (`updateUser`); a field left out is unchanged.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// The new name, 1 to 200 characters.
    pub name: Option<String>,
    /// The new email; one another account holds is `BAD_USER_INPUT`
    /// with `reason: EMAIL_TAKEN`.
    pub email: Option<String>,
}

impl From<user::Model> for User {
    fn from(model: user::Model) -> Self {
        Self {
            id: model.id,
            email: model.email,
            name: model.name,
            role: model.role.into(),
            created_at: model.created_at,
            external_id: model.external_id,
            status: model.status.into(),
            disabled_at: model.disabled_at,
            disabled_reason: model.disabled_reason,
            last_sign_in_at: model.last_sign_in_at,
        }
    }
}

/// A page of accounts, ordered by email (paged by offset: `nextCursor` is
/// always null).
#[derive(SimpleObject)]
pub struct UserPage {
    /// The accounts of this page, by email.
    pub users: Vec<User>,
    /// Where this page is in the whole.
    pub pagination: Pagination,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// One account: admins and owners any, everyone their own;
    /// `FORBIDDEN` otherwise (audited), `NOT_FOUND` for none (or deleted).
    #[graphql(guard = "UserAccess::new(id, Action::ViewUser)")]
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
    ) -> Result<User> {
        let app = state(ctx)?;
        users::get(&app.db, id)
            .await
            .map(User::from)
            .map_err(AppError::extend)
    }

    /// Admins and owners: accounts whose email or name contains `search`
    /// (any case), all accounts without it, ordered by email. `limit` is 1
    /// to 100, `offset` 0 to 1000000.
    #[graphql(guard = "RoleGuard::new(access::LIST_USERS_ROLE, Action::ListUsers)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Part of an email or name, any case; every account when null.")]
        search: Option<String>,
        #[graphql(default = 20, desc = "Accounts per page.")] limit: i32,
        #[graphql(default = 0, desc = "Accounts to skip.")] offset: i32,
    ) -> Result<UserPage> {
        let app = state(ctx)?;
        let page = users::search(&app.db, search.as_deref(), limit, offset)
            .await
            .map_err(AppError::extend)?;
        Ok(UserPage {
            users: page.users.into_iter().map(User::from).collect(),
            pagination: Pagination {
                total: i32::try_from(page.total).unwrap_or(i32::MAX),
                limit,
                offset,
                has_more: page.has_more,
                // Users are paged by offset only.
                next_cursor: None,
            },
        })
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Changes the caller's password. The current password must be right
    /// and the new one follow the password rules (12 to 256 characters).
    /// Ends the caller's other sessions unless `revokeOtherSessions` is
    /// false. Not allowed from an impersonation session.
    #[graphql(guard = "SignedIn.and(NotImpersonating::new(Action::Sensitive))")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret, desc = "The password in use now.")] current_password: String,
        #[graphql(secret, desc = "The new password, at least 12 characters.")] new_password: String,
        #[graphql(
            default = true,
            desc = "End every other session of the account (recommended)."
        )]
        revoke_other_sessions: bool,
    ) -> Result<bool> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        password::change(
            &app.db,
            &app.metrics,
            &app.hasher,
            &app.throttle,
            caller,
            &request_meta(ctx),
            current_password,
            new_password,
            revoke_other_sessions,
        )
        .await
        .map_err(AppError::extend)?;
        Ok(true)
    }

    /// Admins (users' accounts) and owners (any role): makes an account.
    /// Audited as `user.created`. A taken email is `BAD_USER_INPUT` with
    /// `reason: EMAIL_TAKEN`.
    #[graphql(guard = "RoleGuard::new(access::MANAGE_USERS_ROLE, Action::CreateUser)")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account to make.")] input: CreateUserInput,
    ) -> Result<User> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let new = NewAccount {
            email: input.email,
            name: input.name,
            role: input.role.into(),
            password: input.password,
            external_id: input.external_id,
        };
        account::create(&app.db, &app.hasher, caller, &request_meta(ctx), new)
            .await
            .map(User::from)
            .map_err(|e| refused(ctx, caller, Action::CreateUser, None, e))
    }

    /// Changes an account's name or email (admins: users'; owners:
    /// anyone's). Audited as `user.updated` with what changed.
    #[graphql(guard = "UserAccess::new(id, Action::UpdateUser)")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
        #[graphql(desc = "What to change.")] input: UpdateUserInput,
    ) -> Result<User> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        let changes = AccountChanges {
            name: input.name,
            email: input.email,
        };
        account::update(&app.db, caller, &request_meta(ctx), id, changes)
            .await
            .map(User::from)
            .map_err(|e| refused(ctx, caller, Action::UpdateUser, Some(id), e))
    }

    /// Owners only: gives an account another role; nobody their own, and
    /// never the last active owner's. Impersonation sessions the change
    /// makes wrong (an admin demoted to user, say) end at once. Audited
    /// as `user.role_changed`.
    #[graphql(guard = "UserAccess::new(id, Action::SetUserRole)")]
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
        #[graphql(desc = "Its new role.")] role: Role,
    ) -> Result<User> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        account::set_role(
            &app.db,
            &app.metrics,
            caller,
            &request_meta(ctx),
            id,
            role.into(),
        )
        .await
        .map(User::from)
        .map_err(|e| refused(ctx, caller, Action::SetUserRole, Some(id), e))
    }

    /// Disables an account (admins: users'; owners: anyone's but their
    /// own and the last active owner's): every session of it ends at once
    /// (sockets close with 4403), and its sign-in and `issueSession` are
    /// refused (`FORBIDDEN`, `reason: ACCOUNT_DISABLED`) until
    /// `enableUser`. Audited as `user.disabled`.
    #[graphql(guard = "UserAccess::new(id, Action::DisableUser)")]
    async fn disable_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
        #[graphql(desc = "Why, 1 to 500 characters (shown to admins).")] reason: String,
    ) -> Result<User> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        account::disable(
            &app.db,
            &app.metrics,
            caller,
            &request_meta(ctx),
            id,
            &reason,
        )
        .await
        .map(User::from)
        .map_err(|e| refused(ctx, caller, Action::DisableUser, Some(id), e))
    }

    /// Enables a disabled account: it may sign in again. Rights as
    /// `disableUser`. Audited as `user.enabled`.
    #[graphql(guard = "UserAccess::new(id, Action::EnableUser)")]
    async fn enable_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
    ) -> Result<User> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        account::enable(&app.db, caller, &request_meta(ctx), id)
            .await
            .map(User::from)
            .map_err(|e| refused(ctx, caller, Action::EnableUser, Some(id), e))
    }

    /// Deletes an account (rights as `disableUser`): its sessions end, it
    /// can no longer be found or signed in to, and its email may be used
    /// again. Its audit events stay. Audited as `user.deleted`.
    #[graphql(guard = "UserAccess::new(id, Action::DeleteUser)")]
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
    ) -> Result<bool> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        account::delete(&app.db, &app.metrics, caller, &request_meta(ctx), id)
            .await
            .map_err(|e| refused(ctx, caller, Action::DeleteUser, Some(id), e))?;
        Ok(true)
    }

    /// Sets an account's password (rights as `disableUser`; one's own is
    /// changed with `changePassword`), checked by the password rules (12
    /// to 256 characters). Every session of the account ends. Audited as
    /// `user.password_reset`.
    #[graphql(guard = "UserAccess::new(id, Action::ResetPassword)")]
    async fn set_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: uuid::Uuid,
        #[graphql(secret, desc = "The new password, at least 12 characters.")] password: String,
    ) -> Result<bool> {
        let app = state(ctx)?;
        let caller = caller(ctx)?;
        account::set_password(
            &app.db,
            &app.metrics,
            &app.hasher,
            caller,
            &request_meta(ctx),
            id,
            password,
        )
        .await
        .map_err(|e| refused(ctx, caller, Action::ResetPassword, Some(id), e))?;
        Ok(true)
    }

    /// Self-registration, with `SIGNUP=open` only (else `FORBIDDEN`):
    /// makes a user's account and signs it in, as `signIn` answers.
    /// Throttled like `signIn`; refused to API keys and impersonation
    /// sessions, as `signIn` is. An email that has an account gets the
    /// same answer, whose token does not work (no account enumeration:
    /// see the README).
    #[graphql(guard = "NotImpersonating::new(Action::Sensitive)")]
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email.")] email: String,
        #[graphql(desc = "The name shown for the account.")] name: String,
        #[graphql(secret, desc = "The password, at least 12 characters.")] password: String,
    ) -> Result<AuthPayload> {
        let app = state(ctx)?;
        let opened = sessions::sign_up(
            &app.db,
            &app.hasher,
            &app.throttle,
            &app.config,
            &email,
            &name,
            password,
            &request_meta(ctx),
        )
        .await
        .map_err(AppError::extend)?;
        // The account answered is the one just made (or, for a taken
        // email, the one that would have been): resolved from here.
        loader(ctx)?
            .feed_one(opened.user.id, opened.user.clone())
            .await;
        Ok(AuthPayload {
            token: opened.token,
            session: opened.session.into(),
        })
    }
}
