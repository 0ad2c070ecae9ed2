//! Managing accounts over the API (issue 18 §1): making, changing,
//! disabling, enabling and deleting them, roles and password resets. Apart
//! from [`super::user`] (which the session service reads accounts with)
//! because these end sessions.
//!
//! Every change runs in one write transaction that first locks the
//! account's row ([`users::lock`]) and checks the caller's right again on
//! the account as it is then (the guard checked it before, on a read that
//! a concurrent change could have made stale): a refusal found here is
//! returned `FORBIDDEN` for the resolver to audit like the guard's. The
//! change, the sessions it ends and their events commit together.
//!
//! Deletion is soft: see [`delete`].

use entity::{
    session,
    user::{self, Role, UserStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    auth::{Caller, PasswordHasherPool, RequestMeta, validate_new_password},
    db::{self, Db},
    error::{AppError, AppResult},
    metrics::Metrics,
    service::{
        access::{self, Action},
        audit::{self, NewEvent, events},
        impersonation, session as sessions, user as users,
    },
};

/// Why sessions ended by these operations ended (`revoke_reason`).
pub mod reasons {
    /// `disableUser`.
    pub const USER_DISABLED: &str = "user_disabled";
    /// `deleteUser`.
    pub const USER_DELETED: &str = "user_deleted";
    /// `setPassword`.
    pub const PASSWORD_RESET: &str = "password_reset";
    /// `setUserRole` took away the right an impersonation session needs.
    pub const ROLE_CHANGED: &str = "role_changed";
}

/// Why the last owner is kept.
pub const LAST_OWNER: &str = "the last active owner cannot be disabled, deleted or demoted";

/// What `createUser` is given.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// None: the account gets sessions only through `issueSession`.
    pub password: Option<String>,
    pub external_id: Option<String>,
}

/// What `updateUser` changes (None: unchanged).
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The account `id` under lock, and the caller's right to take `action`
/// on it as it is now.
async fn locked_target(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    action: Action,
    id: Uuid,
) -> AppResult<user::Model> {
    // Whether the account exists is none of a plain user's business.
    access::may_manage_accounts(caller).map_err(|reason| AppError::Forbidden(reason.into()))?;
    let target = users::lock(conn, id).await?;
    access::may_manage_user(caller, action, target.id, target.role)
        .map_err(|reason| AppError::Forbidden(reason.into()))?;
    Ok(target)
}

/// The active owners' ids, their rows locked on PostgreSQL until the
/// transaction ends, in id order (so two transactions taking them never
/// wait on each other crosswise). Taken first by every change that can
/// take an owner away, before the account's own row: two owners demoting
/// each other at once are then run one after the other, and the second
/// sees the first's change (SQLite's write transactions run one at a time
/// anyway).
async fn lock_owners(conn: &impl ConnectionTrait) -> AppResult<Vec<Uuid>> {
    let mut owners = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Role.eq(Role::Owner))
        .filter(user::Column::Status.eq(UserStatus::Active))
        .filter(user::Column::DeletedAt.is_null())
        .order_by_asc(user::Column::Id);
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        owners = owners.lock_exclusive();
    }
    Ok(owners.into_tuple::<Uuid>().all(conn).await?)
}

/// Refuses taking away the last active owner: `target`, if an active
/// owner, must not be the only one among `owners` (see [`lock_owners`]).
fn keep_an_owner(owners: &[Uuid], target: &user::Model) -> AppResult<()> {
    if target.role != Role::Owner || target.status != UserStatus::Active {
        return Ok(());
    }
    if owners.iter().all(|id| *id == target.id) {
        return Err(AppError::Forbidden(LAST_OWNER.into()));
    }
    Ok(())
}

/// Ends every active session of `owner` for `reason` (with the
/// impersonation sessions opened from them), each audited; returns how
/// many ended. Each ending is a `session.revoked` event, which closes the
/// session's sockets (see `transport::ws`).
async fn end_sessions_of(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    owner: &user::Model,
    meta: &RequestMeta,
    reason: &str,
) -> AppResult<u64> {
    let mut ended = 0;
    for target in sessions::sessions_of(conn, owner.id, false).await? {
        if sessions::end_session(conn, &target, owner, caller.actor(), meta, reason)
            .await?
            .is_some()
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// The event of a change `event_type` by `caller` to `target`.
fn change_event(
    event_type: &'static str,
    message: String,
    caller: &Caller,
    target: &user::Model,
    meta: &RequestMeta,
) -> NewEvent {
    NewEvent::success(event_type, message)
        .from_request(meta)
        .by(caller)
        .subject(target.id)
        .meta("email", target.email.clone())
}

/// Makes an account (`createUser`; the caller's right to give `role` is
/// the guard's): email, name, role, an optional password (checked by the
/// password rules) and an optional external id. Audited as
/// `user.created`. A taken email is `BAD_USER_INPUT` (`EMAIL_TAKEN`).
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &Db,
    hasher: &PasswordHasherPool,
    caller: &Caller,
    meta: &RequestMeta,
    new: NewAccount,
) -> AppResult<user::Model> {
    access::may_grant_role(caller, new.role).map_err(|r| AppError::Forbidden(r.into()))?;
    let email = users::normalize_email(&new.email)?;
    let name = users::validate_name(&new.name)?;
    let external_id = new
        .external_id
        .as_deref()
        .map(users::validate_external_id)
        .transpose()?;
    let password_hash = match new.password {
        Some(password) => {
            validate_new_password("password", &password)?;
            hasher.hash(password).await?
        }
        None => String::new(),
    };
    let model = user::Model {
        external_id,
        ..user::Model::new(
            Uuid::new_v4(),
            email,
            name,
            new.role,
            password_hash,
            db::now(),
        )
    };
    let txn = db.transaction().await?;
    users::insert(&txn, &model).await?;
    let mut event = change_event(
        events::USER_CREATED,
        format!("user {} created by {}", model.email, caller.user.email),
        caller,
        &model,
        meta,
    )
    .meta("role", model.role.as_str())
    .meta("hasPassword", !model.password_hash.is_empty());
    if let Some(external_id) = &model.external_id {
        event = event.meta("externalId", external_id.clone());
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(model)
}

/// Changes an account's name and email (`updateUser`). Nothing changed is
/// no write and no event; otherwise audited as `user.updated` with the
/// fields changed. A taken email is `BAD_USER_INPUT` (`EMAIL_TAKEN`).
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    changes: AccountChanges,
) -> AppResult<user::Model> {
    let name = changes
        .name
        .as_deref()
        .map(users::validate_name)
        .transpose()?;
    let email = changes
        .email
        .as_deref()
        .map(users::normalize_email)
        .transpose()?;
    let txn = db.transaction().await?;
    let target = locked_target(&txn, caller, Action::UpdateUser, id).await?;
    let mut updated = target.clone();
    let mut changed = Vec::new();
    if let Some(name) = name.filter(|n| *n != target.name) {
        updated.name = name;
        changed.push("name");
    }
    if let Some(email) = email.filter(|e| *e != target.email) {
        updated.email = email;
        changed.push("email");
    }
    if changed.is_empty() {
        return Ok(target);
    }
    let written = user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::value(updated.name.clone()))
        .col_expr(user::Column::Email, Expr::value(updated.email.clone()))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await;
    if let Err(err) = written {
        return Err(match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                AppError::EmailTaken(updated.email.clone())
            }
            _ => AppError::from(err),
        });
    }
    let mut event = change_event(
        events::USER_UPDATED,
        format!("user {} updated by {}", updated.email, caller.user.email),
        caller,
        &updated,
        meta,
    )
    .meta("changed", changed.clone());
    if changed.contains(&"email") {
        event = event.meta("previousEmail", target.email.clone());
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Gives an account another role (`setUserRole`, owners only). The same
/// role is no write and no event. Demoting the last active owner is
/// refused. Impersonation sessions the change makes wrong end at once
/// (reason `role_changed`): those the account opened that its new role
/// may not hold, and those opened as it by admins who may no longer
/// impersonate it. Audited as `user.role_changed`.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn set_role(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    role: Role,
) -> AppResult<user::Model> {
    let txn = db.transaction().await?;
    let owners = lock_owners(&txn).await?;
    let target = locked_target(&txn, caller, Action::SetUserRole, id).await?;
    access::may_grant_role(caller, role).map_err(|r| AppError::Forbidden(r.into()))?;
    if target.role == role {
        return Ok(target);
    }
    if role != Role::Owner {
        keep_an_owner(&owners, &target)?;
    }
    user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(role))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let updated = user::Model {
        role,
        ..target.clone()
    };
    let ended = end_wrong_impersonations(&txn, caller, &updated, meta).await?;
    audit::record(
        &txn,
        change_event(
            events::USER_ROLE_CHANGED,
            format!(
                "role of {} changed from {} to {} by {}",
                updated.email,
                target.role.as_str(),
                role.as_str(),
                caller.user.email
            ),
            caller,
            &updated,
            meta,
        )
        .meta("previousRole", target.role.as_str())
        .meta("role", role.as_str())
        .meta("endedSessions", ended),
    )
    .await?;
    txn.commit().await?;
    Metrics::add(&metrics.sessions_revoked, ended);
    Ok(updated)
}

/// The live impersonation sessions that `account`'s role (just changed)
/// no longer allows, ended: those it opened, and those opened as it.
async fn end_wrong_impersonations(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    account: &user::Model,
    meta: &RequestMeta,
) -> AppResult<u64> {
    let now = db::now();
    let live = || {
        session::Entity::find()
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .filter(session::Column::ImpersonatorId.is_not_null())
    };
    let mut wrong: Vec<(session::Model, user::Model)> = Vec::new();
    // Opened by the account, as users it may no longer impersonate.
    for (opened, target) in live()
        .filter(session::Column::ImpersonatorId.eq(account.id))
        .find_also_related(user::Entity)
        .all(conn)
        .await?
    {
        if let Some(target) = target
            && access::may_impersonate_role(account.role, target.role).is_err()
        {
            wrong.push((opened, target));
        }
    }
    // Opened as the account, by admins who may no longer impersonate it.
    let of_account = live()
        .filter(session::Column::UserId.eq(account.id))
        .all(conn)
        .await?;
    let admins = users::get_many(conn, of_account.iter().filter_map(|s| s.impersonator_id)).await?;
    for opened in of_account {
        let allowed = admins
            .iter()
            .find(|a| Some(a.id) == opened.impersonator_id)
            .is_some_and(|admin| access::may_impersonate_role(admin.role, account.role).is_ok());
        if !allowed {
            wrong.push((opened, account.clone()));
        }
    }
    let mut ended = 0;
    for (opened, owner) in wrong {
        if sessions::end_session(
            conn,
            &opened,
            &owner,
            caller.actor(),
            meta,
            reasons::ROLE_CHANGED,
        )
        .await?
        .is_some()
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Disables an account (`disableUser`) for `reason` (1 to 500
/// characters): every session of it ends at once (its next request is
/// `UNAUTHENTICATED`, its sockets close with 4403), and sign-in,
/// `issueSession` and impersonation are refused (`FORBIDDEN`,
/// `ACCOUNT_DISABLED`) until it is enabled. Disabling the last active
/// owner is refused. Disabling a disabled account changes nothing.
/// Audited as `user.disabled`.
///
/// Race-free against sessions opened meanwhile: the account's row is
/// locked before its sessions are listed, and every opening locks it and
/// reads the status again (see `session::open`).
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn disable(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    reason: &str,
) -> AppResult<user::Model> {
    let reason = impersonation::validate_reason(reason)?;
    let txn = db.transaction().await?;
    let owners = lock_owners(&txn).await?;
    let target = locked_target(&txn, caller, Action::DisableUser, id).await?;
    if target.status == UserStatus::Disabled {
        return Ok(target);
    }
    keep_an_owner(&owners, &target)?;
    let now = db::now();
    user::Entity::update_many()
        .col_expr(user::Column::Status, Expr::value(UserStatus::Disabled))
        .col_expr(user::Column::DisabledAt, Expr::value(now))
        .col_expr(user::Column::DisabledReason, Expr::value(reason.clone()))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let ended = end_sessions_of(&txn, caller, &target, meta, reasons::USER_DISABLED).await?;
    let updated = user::Model {
        status: UserStatus::Disabled,
        disabled_at: Some(now),
        disabled_reason: Some(reason.clone()),
        ..target
    };
    audit::record(
        &txn,
        change_event(
            events::USER_DISABLED,
            format!("user {} disabled by {}", updated.email, caller.user.email),
            caller,
            &updated,
            meta,
        )
        .meta("reason", reason)
        .meta("endedSessions", ended),
    )
    .await?;
    txn.commit().await?;
    Metrics::add(&metrics.sessions_revoked, ended);
    Ok(updated)
}

/// Enables a disabled account (`enableUser`): it may sign in and be
/// issued sessions again (its ended sessions stay ended). Enabling an
/// active account changes nothing. Audited as `user.enabled`.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn enable(
    db: &Db,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
) -> AppResult<user::Model> {
    let txn = db.transaction().await?;
    let target = locked_target(&txn, caller, Action::EnableUser, id).await?;
    if target.status == UserStatus::Active {
        return Ok(target);
    }
    user::Entity::update_many()
        .col_expr(user::Column::Status, Expr::value(UserStatus::Active))
        .col_expr(
            user::Column::DisabledAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .col_expr(
            user::Column::DisabledReason,
            Expr::value(Option::<String>::None),
        )
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let updated = user::Model {
        status: UserStatus::Active,
        disabled_at: None,
        disabled_reason: None,
        ..target
    };
    audit::record(
        &txn,
        change_event(
            events::USER_ENABLED,
            format!("user {} enabled by {}", updated.email, caller.user.email),
            caller,
            &updated,
            meta,
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes an account (`deleteUser`): its sessions end (with the
/// impersonation sessions it opened), and it can no longer be found,
/// signed in to or issued sessions. Deleting the last active owner is
/// refused. Audited as `user.deleted`.
///
/// Soft: the row stays, marked `deleted_at`, its email replaced by
/// [`users::deleted_email`] (so the address can be used again), its
/// external id, password and disabled reason cleared. A hard delete would
/// cascade (the foreign keys of `sessions.user_id` and
/// `sessions.impersonator_id` are `ON DELETE CASCADE`) and take with it
/// the history of the account's sessions and of the sessions it opened as
/// other users, while the audit events, `api_keys.created_by` and
/// `revoked_by` columns would name an id that resolves to nothing. The
/// audit log is untouched: its events keep the ids and emails they were
/// written with, so the chain still verifies.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn delete(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
) -> AppResult<()> {
    let txn = db.transaction().await?;
    let owners = lock_owners(&txn).await?;
    let target = locked_target(&txn, caller, Action::DeleteUser, id).await?;
    keep_an_owner(&owners, &target)?;
    let ended = end_sessions_of(&txn, caller, &target, meta, reasons::USER_DELETED).await?;
    user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(users::deleted_email(id)))
        .col_expr(
            user::Column::ExternalId,
            Expr::value(Option::<String>::None),
        )
        .col_expr(user::Column::PasswordHash, Expr::value(String::new()))
        .col_expr(user::Column::DeletedAt, Expr::value(db::now()))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let mut event = change_event(
        events::USER_DELETED,
        format!("user {} deleted by {}", target.email, caller.user.email),
        caller,
        &target,
        meta,
    )
    .meta("name", target.name.clone())
    .meta("role", target.role.as_str())
    .meta("endedSessions", ended);
    if let Some(external_id) = &target.external_id {
        event = event.meta("externalId", external_id.clone());
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Metrics::add(&metrics.sessions_revoked, ended);
    Ok(())
}

/// Sets an account's password (`setPassword`, an admin's reset; checked
/// by the password rules) and ends all its sessions. Audited as
/// `user.password_reset` (never with the password).
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn set_password(
    db: &Db,
    metrics: &Metrics,
    hasher: &PasswordHasherPool,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    password: String,
) -> AppResult<()> {
    validate_new_password("password", &password)?;
    // Refused before hashing when the caller may not: the guard checked,
    // and this read spares the hash for a missing account.
    access::may_manage_accounts(caller).map_err(|reason| AppError::Forbidden(reason.into()))?;
    let before = users::get(db, id).await?;
    access::may_manage_user(caller, Action::ResetPassword, before.id, before.role)
        .map_err(|r| AppError::Forbidden(r.into()))?;
    let password_hash = hasher.hash(password).await?;
    let txn = db.transaction().await?;
    let target = locked_target(&txn, caller, Action::ResetPassword, id).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let ended = end_sessions_of(&txn, caller, &target, meta, reasons::PASSWORD_RESET).await?;
    audit::record(
        &txn,
        change_event(
            events::USER_PASSWORD_RESET,
            format!(
                "password of {} reset by {}",
                target.email, caller.user.email
            ),
            caller,
            &target,
            meta,
        )
        .meta("endedSessions", ended),
    )
    .await?;
    txn.commit().await?;
    Metrics::add(&metrics.sessions_revoked, ended);
    Ok(())
}
