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
    auth::{Caller, PasswordHasherPool, validate_new_password},
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

/// Trims and lower-cases an email and checks its shape.
pub fn normalize_email(email: &str) -> AppResult<String> {
    let email = email.trim().to_lowercase();
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

fn validate_name(name: &str) -> AppResult<String> {
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

    let model = user::Model {
        id: Uuid::new_v4(),
        email,
        name,
        role: new.role,
        password_hash,
        created_at: db::now(),
    };
    let txn = db.transaction().await?;
    let inserted = user::Entity::insert(user::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await;
    if let Err(err) = inserted {
        return Err(match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => AppError::bad_input(
                "email",
                format!("a user with email {} already exists", model.email),
            ),
            _ => AppError::from(err),
        });
    }
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

/// The message of a user id that names no account.
pub const USER_NOT_FOUND: &str = "user not found";

/// The user with this id, else `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    find(conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound(USER_NOT_FOUND.into()))
}

/// The user with this id, if the account exists (where a missing one is
/// no error, e.g. an impersonator since deleted).
pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(conn).await?)
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
/// left out.
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
    let mut query = user::Entity::find();
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
