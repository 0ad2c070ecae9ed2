//! Sign-in throttling: failed credential checks are counted per account and
//! per client address over a sliding window, in the database, so the limit
//! holds across server processes. Once over, even the right password is
//! refused until the window has passed.

use chrono::{DateTime, Utc};
use entity::sign_in_failure;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    auth::RequestMeta,
    config::Config,
    db,
    error::{AppError, AppResult},
};

/// Which limit an attempt ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Account,
    Address,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Account => "account",
            Limit::Address => "address",
        }
    }
}

/// Refuses with `RATE_LIMITED` when the account or the address has failed
/// too often within the window; `Ok` otherwise.
pub async fn check(
    conn: &impl ConnectionTrait,
    config: &Config,
    account_key: &str,
    meta: &RequestMeta,
) -> Result<(), (Limit, AppError)> {
    let now = db::now();
    let since = now - Config::chrono(config.signin_failure_window);
    let account = sign_in_failure::Column::AccountKey.eq(account_key);
    if let Some(retry) = over(
        conn,
        account,
        config.signin_max_failures_per_account,
        since,
        now,
        config,
    )
    .await
    .map_err(|e| (Limit::Account, e))?
    {
        return Err((
            Limit::Account,
            AppError::RateLimited {
                retry_after_secs: retry,
            },
        ));
    }
    if let Some(ip) = &meta.ip_address {
        let address = sign_in_failure::Column::IpAddress.eq(ip.as_str());
        if let Some(retry) = over(
            conn,
            address,
            config.signin_max_failures_per_ip,
            since,
            now,
            config,
        )
        .await
        .map_err(|e| (Limit::Address, e))?
        {
            return Err((
                Limit::Address,
                AppError::RateLimited {
                    retry_after_secs: retry,
                },
            ));
        }
    }
    Ok(())
}

/// Seconds until the window frees a slot, when the count is at the limit.
async fn over(
    conn: &impl ConnectionTrait,
    key: sea_orm::sea_query::SimpleExpr,
    max: u32,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    config: &Config,
) -> AppResult<Option<u64>> {
    let recent = sign_in_failure::Entity::find()
        .filter(key.clone())
        .filter(sign_in_failure::Column::CreatedAt.gt(since));
    if recent.clone().count(conn).await? < u64::from(max) {
        return Ok(None);
    }
    // The window frees up when the max-th newest failure leaves it.
    let oldest_counted: Option<DateTime<Utc>> = recent
        .select_only()
        .column(sign_in_failure::Column::CreatedAt)
        .order_by_desc(sign_in_failure::Column::CreatedAt)
        .offset(u64::from(max) - 1)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    let frees_at = oldest_counted.unwrap_or(now) + Config::chrono(config.signin_failure_window);
    Ok(Some(
        u64::try_from((frees_at - now).num_seconds())
            .unwrap_or(0)
            .max(1),
    ))
}

/// Records a failed credential check (inside the caller's transaction).
pub async fn record_failure(
    conn: &impl ConnectionTrait,
    account_key: &str,
    meta: &RequestMeta,
) -> AppResult<()> {
    sign_in_failure::Entity::insert(sign_in_failure::ActiveModel::from(sign_in_failure::Model {
        id: Uuid::new_v4(),
        account_key: account_key.chars().take(320).collect(),
        ip_address: meta.ip_address.clone(),
        created_at: db::now(),
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Forgets failures older than `before` (maintenance).
pub async fn forget_before(db: &DatabaseConnection, before: DateTime<Utc>) -> AppResult<u64> {
    let _turn = crate::db::write_turn(db).await;
    Ok(sign_in_failure::Entity::delete_many()
        .filter(sign_in_failure::Column::CreatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
