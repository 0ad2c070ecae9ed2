//! Users as the schema shows them (never the password hash).

use async_graphql::{ComplexObject, Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user;
use uuid::Uuid;

use super::{
    context::{caller, request_meta, session_ended, state},
    guards::{NotImpersonating, RoleGuard, SignedIn},
    paging::Pagination,
};
use crate::{
    auth::Caller,
    error::AppError,
    service::{
        access::{self, Action},
        password, user as users,
    },
};

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
    /// (`upsertUser`); null for accounts made here.
    pub external_id: Option<String>,
}

#[ComplexObject]
impl User {
    /// Whether the caller may impersonate this account now
    /// (`startImpersonation`): admins may impersonate users, owners users
    /// and admins; nobody an owner or themselves, nor from an
    /// impersonation session. The rule the mutation's guard applies.
    /// False for a request with no session (`signIn`'s answer) or whose
    /// session it has ended.
    async fn can_impersonate(&self, ctx: &Context<'_>) -> bool {
        // Not `caller()`: a request that cannot impersonate is answered
        // `false`, not with an error that would null the whole account.
        ctx.data_opt::<Caller>()
            .filter(|_| !session_ended(ctx))
            .is_some_and(|caller| {
                access::may_impersonate_account(caller, self.id, self.role.into()).is_ok()
            })
    }
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
}
