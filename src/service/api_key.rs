//! API keys: how trusted backends call the service. Owners make them
//! (over GraphQL or on the command line), each with a name and scopes; a
//! key is `smk_` and 32 random bytes in base64url (43 characters), shown
//! once, stored as its SHA-256.

use entity::api_key::{self, ApiScope};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::RequestMeta,
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    service::audit::{self, NewEvent, events},
};

pub use crate::auth::{
    API_KEY_LEN as KEY_LEN, API_KEY_PREFIX as KEY_PREFIX, BAD_API_KEY as BAD_KEY,
    is_well_formed_api_key as is_well_formed_key,
};

/// Random bytes in a key (from the OS CSPRNG).
const KEY_BYTES: usize = 32;
/// How many characters of a key are kept for display: the prefix and 8
/// random characters, enough to tell a team's keys apart.
pub const DISPLAY_PREFIX_LEN: usize = 12;
/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;
/// Keys not revoked at once. Keys are for a few backends, not per user; a
/// bound keeps a compromised owner session from minting keys without end.
pub const MAX_LIVE_KEYS: u64 = 50;

/// A freshly made key: the plaintext goes to its owner once.
pub struct NewKey {
    pub plaintext: String,
    pub key: api_key::Model,
}

/// SHA-256 of the key, hex. A key is 256 random bits, so nobody can guess
/// one from its hash or search the key space against it: a slow password
/// hash (argon2) would buy nothing and cost its work on every request.
/// The key is found by this hash on a unique index; no key or hash is
/// compared in application code, so there is no comparison whose timing
/// could leak anything (an index look-up's timing tells at most about a
/// hash's first bytes, which say nothing about any key).
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn generate(name: String, scopes: &[ApiScope], created_by: Option<Uuid>) -> AppResult<NewKey> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let key = api_key::Model {
        id: Uuid::new_v4(),
        name,
        key_hash: hash_key(&plaintext),
        key_prefix: plaintext[..DISPLAY_PREFIX_LEN].to_owned(),
        scopes: api_key::Model::scopes_column(scopes),
        created_by,
        created_at: db::now(),
        last_used_at: None,
        revoked_at: None,
        revoked_by: None,
    };
    Ok(NewKey { plaintext, key })
}

/// A key's name: 1 to [`MAX_NAME_LEN`] characters of letters, digits,
/// spaces and `.`, `_`, `-`, so it reads safely in lists, logs and the
/// audit log.
pub fn validate_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(AppError::bad_input(
            "name",
            format!("a key's name must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
    {
        return Err(AppError::bad_input(
            "name",
            "a key's name may hold only letters, digits, spaces and . _ -",
        ));
    }
    Ok(name.to_owned())
}

/// At least one scope, none twice; returned sorted.
pub fn validate_scopes(scopes: &[ApiScope]) -> AppResult<Vec<ApiScope>> {
    if scopes.is_empty() {
        return Err(AppError::bad_input(
            "scopes",
            "a key needs at least one scope",
        ));
    }
    let mut sorted = scopes.to_vec();
    sorted.sort();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(AppError::bad_input(
            "scopes",
            format!("the scope {} is listed twice", pair[0].as_str()),
        ));
    }
    Ok(sorted)
}

/// Makes a key, audited as `api_key.created`. `created_by` is the owner
/// making it (none on the command line). Refused with `BAD_USER_INPUT`
/// for a bad name or scopes, a name a live key has already, or past
/// [`MAX_LIVE_KEYS`].
#[tracing::instrument(skip(db, meta))]
pub async fn create(
    db: &Db,
    created_by: Option<Uuid>,
    name: &str,
    scopes: &[ApiScope],
    meta: &RequestMeta,
) -> AppResult<NewKey> {
    let name = validate_name(name)?;
    let scopes = validate_scopes(scopes)?;
    let new = generate(name, &scopes, created_by)?;
    let txn = db.transaction().await?;
    // Under the lock (in any process), so two concurrent creations cannot
    // both pass the checks below.
    txn.exclusive("api_keys.create").await?;
    let live = live_keys()
        .filter(api_key::Column::Name.eq(new.key.name.clone()))
        .count(&txn)
        .await?;
    if live > 0 {
        return Err(AppError::bad_input(
            "name",
            format!("a live key is named {} already", new.key.name),
        ));
    }
    if live_keys().count(&txn).await? >= MAX_LIVE_KEYS {
        return Err(AppError::bad_input(
            "name",
            format!("there are {MAX_LIVE_KEYS} live keys already: revoke one first"),
        ));
    }
    api_key::Entity::insert(api_key::ActiveModel::from(new.key.clone()))
        .exec_without_returning(&txn)
        .await?;
    let mut event = key_event(
        NewEvent::success(
            events::API_KEY_CREATED,
            format!("API key {} created", new.key.name),
        ),
        &new.key,
    )
    .from_request(meta)
    .meta("scopes", new.key.scopes.clone())
    .meta("keyPrefix", new.key.key_prefix.clone());
    if let Some(owner) = created_by {
        event = event.actor(owner);
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(new)
}

/// Revokes the key `id`, audited as `api_key.revoked`; its very next use
/// is refused. Revoking a revoked key changes nothing and answers it as it
/// is. `NOT_FOUND` for an unknown id.
#[tracing::instrument(skip(db, meta))]
pub async fn revoke(
    db: &Db,
    id: Uuid,
    revoked_by: Option<Uuid>,
    meta: &RequestMeta,
) -> AppResult<api_key::Model> {
    let txn = db.transaction().await?;
    let mut key = get(&txn, id).await?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let now = db::now();
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .col_expr(api_key::Column::RevokedBy, Expr::value(revoked_by))
        .filter(api_key::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    key.revoked_at = Some(now);
    key.revoked_by = revoked_by;
    let mut event = key_event(
        NewEvent::success(
            events::API_KEY_REVOKED,
            format!("API key {} revoked", key.name),
        ),
        &key,
    )
    .from_request(meta);
    if let Some(owner) = revoked_by {
        event = event.actor(owner);
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(key)
}

/// The key `id`, else `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<api_key::Model> {
    api_key::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("API key not found".into()))
}

/// Every key, revoked ones too, newest first.
pub async fn list(conn: &impl ConnectionTrait) -> AppResult<Vec<api_key::Model>> {
    Ok(api_key::Entity::find()
        .order_by_desc(api_key::Column::CreatedAt)
        .order_by_desc(api_key::Column::Id)
        .all(conn)
        .await?)
}

fn live_keys() -> sea_orm::Select<api_key::Entity> {
    api_key::Entity::find().filter(api_key::Column::RevokedAt.is_null())
}

/// The key an event is about, in its metadata, as for the events a key
/// causes (see [`NewEvent::by_key`]).
fn key_event(event: NewEvent, key: &api_key::Model) -> NewEvent {
    event.by_key(key)
}

/// The live key `text` names, else `UNAUTHENTICATED` (unknown, malformed
/// or revoked alike). Its last use is written at most once per
/// `ACTIVITY_WRITE_INTERVAL`, like a session's activity: not a write per
/// request.
pub async fn authenticate(db: &Db, config: &Config, text: &str) -> AppResult<api_key::Model> {
    if !is_well_formed_key(text) {
        return Err(AppError::Unauthenticated(BAD_KEY));
    }
    let Some(mut key) = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash_key(text)))
        .one(db)
        .await?
        .filter(api_key::Model::is_active)
    else {
        return Err(AppError::Unauthenticated(BAD_KEY));
    };
    let now = db::now();
    let interval = Config::chrono(config.activity_write_interval);
    if key.last_used_at.is_none_or(|at| now - at >= interval) {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(key.id))
            .exec(db)
            .await?;
        key.last_used_at = Some(now);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_unique_and_hashed() {
        let a = generate("a".into(), &[ApiScope::SessionsCheck], None).unwrap();
        let b = generate("b".into(), &[ApiScope::SessionsCheck], None).unwrap();
        assert!(is_well_formed_key(&a.plaintext), "{}", a.plaintext);
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.key.key_hash, hash_key(&a.plaintext));
        assert_eq!(a.key.key_prefix, &a.plaintext[..DISPLAY_PREFIX_LEN]);
        assert!(!crate::auth::is_well_formed_token(&a.plaintext));
        assert!(!is_well_formed_key(&a.plaintext[..KEY_LEN - 1]));
        assert!(!is_well_formed_key(&format!(
            "{}=",
            &a.plaintext[..KEY_LEN - 1]
        )));
    }

    #[test]
    fn names_and_scopes_are_checked() {
        assert_eq!(
            validate_name("  billing backend ").unwrap(),
            "billing backend"
        );
        for bad in ["", "   ", "a\nb", "<script>", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_scopes(&[]).is_err(), "none");
        assert!(
            validate_scopes(&[ApiScope::AuditRead, ApiScope::AuditRead]).is_err(),
            "twice"
        );
        assert_eq!(
            validate_scopes(&[ApiScope::AuditRead, ApiScope::SessionsIssue]).unwrap(),
            [ApiScope::SessionsIssue, ApiScope::AuditRead]
        );
    }

    #[test]
    fn scopes_read_back_from_their_column() {
        let column = api_key::Model::scopes_column(&[ApiScope::SessionsIssue, ApiScope::AuditRead]);
        assert_eq!(column, "sessions:issue audit:read");
        let all: Vec<_> = ApiScope::all().collect();
        for scope in &all {
            assert_eq!(scope.as_str().parse::<ApiScope>().unwrap(), *scope);
        }
        assert!("sessions:everything".parse::<ApiScope>().is_err());
    }
}
