//! Accounts: creation (command line and demo), look-ups, search. (A
//! password change, which ends sessions, is [`super::password`]'s.)

use entity::user::{self, Role};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr,
    sea_query::{Func, LikeExpr},
};
use uuid::Uuid;

use crate::{
    auth::{Caller, PasswordHasherPool, RequestMeta, validate_new_password},
    db::{self, Db},
    error::{AppError, AppResult},
    service::{
        audit::{self, NewEvent, events},
        paging,
    },
};
use sea_orm::sea_query::Expr;

pub const MAX_EMAIL_LEN: usize = 320;
pub const MAX_NAME_LEN: usize = 200;

/// What it takes to make an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password: String,
}

/// The domain a deleted account's email is replaced with (`.invalid` is
/// reserved, RFC 2606: no real address has it), so its email is free for
/// a new account. Nobody may take an address there.
pub const DELETED_EMAIL_DOMAIN: &str = "deleted.invalid";

/// What a deleted account's email becomes: unique (its id), never real.
pub fn deleted_email(id: Uuid) -> String {
    format!("{}@{DELETED_EMAIL_DOMAIN}", id.simple())
}

/// Trims and lower-cases an email and checks its shape.
pub fn normalize_email(email: &str) -> AppResult<String> {
    let email = email.trim().to_lowercase();
    if email.ends_with(&format!("@{DELETED_EMAIL_DOMAIN}")) {
        return Err(AppError::bad_input(
            "email",
            format!("addresses at {DELETED_EMAIL_DOMAIN} are reserved"),
        ));
    }
    let valid = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if !valid {
        return Err(AppError::bad_input(
            "email",
            "email must look like name@example.com",
        ));
    }
    Ok(email)
}

/// Trims a name and checks it: 1 to [`MAX_NAME_LEN`] characters, no
/// control characters.
pub fn validate_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "name",
            "name must not contain control characters",
        ));
    }
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(AppError::bad_input(
            "name",
            format!("name must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Creates an account, audited as `user.created`. A taken email is
/// `BAD_USER_INPUT`, recognised by the unique constraint, not by a prior
/// look-up that a concurrent insert could race.
pub async fn create_user(
    db: &Db,
    hasher: &PasswordHasherPool,
    new: NewUser,
) -> AppResult<user::Model> {
    let email = normalize_email(&new.email)?;
    let name = validate_name(&new.name)?;
    validate_new_password("password", &new.password)?;
    let password_hash = hasher.hash(new.password).await?;

    let model = user::Model::new(
        Uuid::new_v4(),
        email,
        name,
        new.role,
        password_hash,
        db::now(),
    );
    let txn = db.transaction().await?;
    insert(&txn, &model).await?;
    audit::record(
        &txn,
        NewEvent::success(
            events::USER_CREATED,
            format!("user {} created", model.email),
        )
        .subject(model.id)
        .meta("email", model.email.clone())
        .meta("role", model.role.as_str()),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Inserts the account `model`. An email or external id another account
/// holds is `BAD_USER_INPUT` (recognised by the unique index, not by a
/// prior look-up that a concurrent insert could race).
pub async fn insert(conn: &impl ConnectionTrait, model: &user::Model) -> AppResult<()> {
    let inserted = user::Entity::insert(user::ActiveModel::from(model.clone()))
        .exec_without_returning(conn)
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(err) => Err(unique_conflict(err, model)),
    }
}

/// A unique violation writing `model`: its email or its external id
/// (told apart by the index the database names).
fn unique_conflict(err: sea_orm::DbErr, model: &user::Model) -> AppError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) if detail.contains("external_id") => {
            AppError::bad_input(
                "externalId",
                format!(
                    "another account has the externalId {}",
                    model.external_id.as_deref().unwrap_or_default()
                ),
            )
        }
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken(model.email.clone()),
        _ => AppError::from(err),
    }
}

/// The account `id` (not deleted), its row locked until the transaction
/// ends on PostgreSQL (SQLite's write transactions run one at a time), so
/// what the caller decides from it holds until it commits: a session
/// opened, the account disabled. `NOT_FOUND` when there is none.
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    let mut query = user::Entity::find_by_id(id).filter(user::Column::DeletedAt.is_null());
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound(USER_NOT_FOUND.into()))
}

/// The message of a user id that names no account.
pub const USER_NOT_FOUND: &str = "user not found";

/// The user with this id, else `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    find(conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound(USER_NOT_FOUND.into()))
}

/// The user with this id, if the account exists and is not deleted
/// (where a missing one is no error, e.g. an impersonator since deleted).
pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id)
        .filter(user::Column::DeletedAt.is_null())
        .one(conn)
        .await?)
}

/// The owner of the sessions a user-scoped operation targets: the caller
/// (`None`, or their own id), or the named user, else `NOT_FOUND`. The
/// caller's right to name them is the guard's to check.
pub async fn target(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: Option<Uuid>,
) -> AppResult<user::Model> {
    match id {
        Some(id) if id != caller.user.id => get(conn, id).await,
        _ => Ok(caller.user.clone()),
    }
}

/// The users with these ids, in one query; ids that name no account are
/// left out. Deleted accounts are included: the history (audit events,
/// ended sessions) still names them.
pub async fn get_many(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(conn)
        .await?)
}

pub async fn find_by_email(
    conn: &impl ConnectionTrait,
    email: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(conn)
        .await?)
}

/// The account with this external id (`upsertUser`), if any.
pub async fn find_by_external_id(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::ExternalId.eq(external_id))
        .one(conn)
        .await?)
}

/// Longest external id (the column's length).
pub const MAX_EXTERNAL_ID_LEN: usize = 255;

/// An application's id for an account: 1 to [`MAX_EXTERNAL_ID_LEN`]
/// characters, no control characters or surrounding spaces (taken as
/// given otherwise: it is the application's to choose).
pub fn validate_external_id(external_id: &str) -> AppResult<String> {
    let trimmed = external_id.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_EXTERNAL_ID_LEN {
        return Err(AppError::bad_input(
            "externalId",
            format!("externalId must be 1 to {MAX_EXTERNAL_ID_LEN} bytes"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "externalId",
            "externalId must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// What [`upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// Provisioning from an application's user store (`upsertUser`, by the
/// API key `key`): the account with `external_id` gets this email and
/// name, or is created (role user, no password: it gets sessions only
/// through `issueSession`). Audited as `user.created` or `user.updated`
/// (with the fields changed), the key named as the actor; nothing is
/// written when nothing changes. An email another account holds is
/// `BAD_USER_INPUT`; an admin's or owner's account is not the key's to
/// change (`FORBIDDEN`). Two concurrent upserts of a new id: the second
/// insert meets the unique index and updates the account the first made.
#[tracing::instrument(skip(db, key, meta))]
pub async fn upsert(
    db: &Db,
    key: &entity::api_key::Model,
    external_id: &str,
    email: &str,
    name: &str,
    meta: &RequestMeta,
) -> AppResult<(user::Model, Upserted)> {
    let external_id = validate_external_id(external_id)?;
    let email = normalize_email(email)?;
    let name = validate_name(name)?;
    for attempt in 0..2 {
        let txn = db.transaction().await?;
        let existing = find_by_external_id(&txn, &external_id).await?;
        let result = match existing {
            Some(mut account) => {
                if account.role != Role::User {
                    return Err(AppError::Forbidden(
                        "only users' accounts can be provisioned; this one is an admin's or owner's"
                            .into(),
                    ));
                }
                let mut changed = Vec::new();
                if account.email != email {
                    changed.push("email");
                }
                if account.name != name {
                    changed.push("name");
                }
                if changed.is_empty() {
                    return Ok((account, Upserted::Unchanged));
                }
                let updated = user::Entity::update_many()
                    .col_expr(user::Column::Email, Expr::value(email.clone()))
                    .col_expr(user::Column::Name, Expr::value(name.clone()))
                    .filter(user::Column::Id.eq(account.id))
                    .exec(&txn)
                    .await;
                if let Err(err) = updated {
                    return Err(email_conflict(err, &email));
                }
                account.email = email.clone();
                account.name = name.clone();
                let event = NewEvent::success(
                    events::USER_UPDATED,
                    format!("user {} updated by API key {}", account.email, key.name),
                )
                .from_request(meta)
                .by_key(key)
                .subject(account.id)
                .meta("email", account.email.clone())
                .meta("externalId", external_id.clone())
                .meta("changed", changed);
                Ok((account, Upserted::Updated, event))
            }
            None => {
                let account = user::Model {
                    external_id: Some(external_id.clone()),
                    ..user::Model::new(
                        Uuid::new_v4(),
                        email.clone(),
                        name.clone(),
                        Role::User,
                        String::new(),
                        db::now(),
                    )
                };
                let inserted = user::Entity::insert(user::ActiveModel::from(account.clone()))
                    .exec_without_returning(&txn)
                    .await;
                match inserted {
                    Ok(_) => {
                        let event = NewEvent::success(
                            events::USER_CREATED,
                            format!("user {} created by API key {}", account.email, key.name),
                        )
                        .from_request(meta)
                        .by_key(key)
                        .subject(account.id)
                        .meta("email", account.email.clone())
                        .meta("role", account.role.as_str())
                        .meta("externalId", external_id.clone());
                        Ok((account, Upserted::Created, event))
                    }
                    Err(err) => Err(err),
                }
            }
        };
        match result {
            Ok((account, what, event)) => {
                audit::record(&txn, event).await?;
                txn.commit().await?;
                return Ok((account, what));
            }
            Err(err) => {
                drop(txn);
                let unique = matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)));
                // Taken meanwhile by the same external id: update it.
                if unique && attempt == 0 && find_by_external_id(db, &external_id).await?.is_some()
                {
                    continue;
                }
                return Err(email_conflict(err, &email));
            }
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "upsert by external id did not settle"
    )))
}

/// A unique violation writing `email` is another account holding it.
fn email_conflict(err: sea_orm::DbErr, email: &str) -> AppError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken(email.to_owned()),
        _ => AppError::from(err),
    }
}

/// Largest page of `users`.
pub const MAX_USERS_PAGE: u64 = 100;
/// Deepest offset of `users`; past it, narrow the search instead.
pub const MAX_USERS_OFFSET: u64 = 1_000_000;
/// Longest search text (an email's maximum length).
pub const MAX_SEARCH_LEN: usize = MAX_EMAIL_LEN;

/// A page of accounts, with where it sits in the whole.
#[derive(Debug)]
pub struct UserPage {
    /// The accounts of the page, by email.
    pub users: Vec<user::Model>,
    /// How many accounts match.
    pub total: u64,
    /// Whether more matches follow the page.
    pub has_more: bool,
}

/// The accounts whose email or name contains `search` (any case; all
/// accounts without it), ordered by email, with the number of matches.
/// `limit` is 1 to [`MAX_USERS_PAGE`], `offset` 0 to [`MAX_USERS_OFFSET`].
/// The caller's right to list accounts is checked by the resolver's guard.
#[tracing::instrument(skip(conn))]
pub async fn search(
    conn: &impl ConnectionTrait,
    search: Option<&str>,
    limit: i32,
    offset: i32,
) -> AppResult<UserPage> {
    let limit = paging::bounded("limit", limit, 1, MAX_USERS_PAGE)?;
    let offset = paging::bounded("offset", offset, 0, MAX_USERS_OFFSET)?;
    let mut query = user::Entity::find().filter(user::Column::DeletedAt.is_null());
    if let Some(text) = search.map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() > MAX_SEARCH_LEN || text.chars().any(char::is_control) {
            return Err(AppError::bad_input(
                "search",
                format!("search must be at most {MAX_SEARCH_LEN} printable characters"),
            ));
        }
        // A substring match: the user's `%`, `_` and `\` are literal.
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = || LikeExpr::new(format!("%{escaped}%")).escape('\\');
        // Emails are stored lower-case; names are lowered in the query
        // (ASCII only on SQLite, Unicode-aware on PostgreSQL).
        query = query.filter(
            Condition::any()
                .add(user::Column::Email.like(pattern()))
                .add(Expr::expr(Func::lower(Expr::col(user::Column::Name))).like(pattern())),
        );
    }
    let total = query.clone().count(conn).await?;
    let users = if offset >= total {
        Vec::new()
    } else {
        query
            .order_by_asc(user::Column::Email)
            .limit(limit)
            .offset(offset)
            .all(conn)
            .await?
    };
    let has_more = offset + (users.len() as u64) < total;
    Ok(UserPage {
        users,
        total,
        has_more,
    })
}

/// The demo accounts: an owner, an admin and two users.
pub const DEMO_USERS: [(&str, &str, Role, &str); 4] = [
    (
        "owner@example.com",
        "Olivia Owner",
        Role::Owner,
        "owner-password-1",
    ),
    (
        "admin@example.com",
        "Adam Admin",
        Role::Admin,
        "admin-password-1",
    ),
    (
        "alice@example.com",
        "Alice User",
        Role::User,
        "alice-password-1",
    ),
    ("bob@example.com", "Bob User", Role::User, "bob-password-1"),
];

/// Creates the demo accounts that do not exist yet; returns every demo
/// account with whether it was created now.
pub async fn ensure_demo_users(
    db: &Db,
    hasher: &PasswordHasherPool,
) -> AppResult<Vec<(user::Model, bool)>> {
    let mut out = Vec::new();
    for (email, name, role, password) in DEMO_USERS {
        let existing = find_by_email(db, email).await?;
        let entry = match existing {
            Some(user) => (user, false),
            None => {
                let new = NewUser {
                    email: email.into(),
                    name: name.into(),
                    role,
                    password: password.into(),
                };
                (create_user(db, hasher, new).await?, true)
            }
        };
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for (email, why) in [
            ("", "empty"),
            ("alice", "no @"),
            ("@example.com", "no local part"),
            ("alice@", "no domain"),
            ("a@b@c", "two @"),
            ("al ice@example.com", "inner space"),
            ("alice\u{0}@example.com", "NUL"),
            ("alice@exa\u{7f}mple.com", "DEL"),
        ] {
            assert!(normalize_email(email).is_err(), "{why}: {email:?}");
        }
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN));
        assert!(normalize_email(&long).is_err(), "too long");
    }
}
