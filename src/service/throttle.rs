//! Sign-in throttling: every credential check (`signIn`, `changePassword`,
//! and any later one) is counted per account and per client address over a
//! sliding window, in the database, so the limit holds across server
//! processes. Once over, even the right password is refused until the
//! window has passed.
//!
//! An attempt is counted **before** its password is verified: [`Throttle::
//! reserve`] counts the window and inserts the attempt in one write
//! transaction that first locks both keys' rows (see below), so in any
//! burst, on any number of replicas, at most the limit is verified and the
//! rest are refused without hashing anything. A check that succeeds gives
//! its slot back ([`Attempt::release`], in the transaction of what it
//! opens); one that fails keeps it, as a failure. A request that dies
//! between the two (a crash, a dropped connection) leaves its reservation
//! counted as a failure until the window has passed: a slot lost for a
//! window, never a key blocked for good.
//!
//! Accounts are keyed by a keyed hash (HMAC-SHA256) of the lower-cased
//! email tried, with a secret of this installation kept in the database
//! (every replica shares it, restarts keep it): people type passwords into
//! email fields, so the typed text is stored nowhere, yet attempts with the
//! same text still correlate.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{installation_secret, sign_in_failure, sign_in_throttle_key};
use hmac::{Hmac, Mac};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, OnConflict, Query},
};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    auth::RequestMeta,
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    service::audit::{self, NewEvent},
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

/// The name of the email hash's key in `installation_secrets`.
const EMAIL_HASH_SECRET: &str = "sign_in_email_hmac";
/// Bytes of a freshly made secret.
const SECRET_LEN: usize = 32;

/// The throttle of credential checks, shared by every request.
#[derive(Clone)]
pub struct Throttle {
    /// HMAC-SHA256 keyed with the installation's secret, cloned per hash.
    email_mac: Hmac<Sha256>,
    max_per_account: u32,
    max_per_address: u32,
    window: Duration,
}

/// A reserved credential check: counted until released.
#[derive(Debug)]
#[must_use = "a reservation counts as a failure unless released"]
pub struct Attempt {
    id: Uuid,
}

impl Throttle {
    /// Loads (the first server creates) the installation's secret.
    pub async fn new(db: &Db, config: &Config) -> AppResult<Self> {
        let secret = installation_secret(db, EMAIL_HASH_SECRET).await?;
        let email_mac = Hmac::<Sha256>::new_from_slice(&secret).map_err(AppError::internal)?;
        Ok(Self {
            email_mac,
            max_per_account: config.signin_max_failures_per_account,
            max_per_address: config.signin_max_failures_per_ip,
            window: config.signin_failure_window,
        })
    }

    /// The keyed hash (hex) an email is known by to the throttle and in
    /// audit events of failed checks: the same for the same text, on every
    /// replica and across restarts, and nothing without the secret.
    pub fn email_hash(&self, email: &str) -> String {
        let mut mac = self.email_mac.clone();
        mac.update(email.trim().to_lowercase().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Reserves one credential check against the account `email_hash` and
    /// the request's address, or refuses with `RATE_LIMITED` (nothing
    /// reserved, nothing to verify) when either is at its limit; then the
    /// event `throttled(limit, retry_after_secs)` is audited in the same
    /// transaction.
    ///
    /// Atomic across replicas: the transaction begins by upserting the
    /// keys' rows, which on PostgreSQL locks them (in a fixed order, so two
    /// reservations never wait on each other crosswise) until it commits;
    /// the count then sees every reservation committed before it. On SQLite
    /// the write transaction holds the database's write lock throughout.
    /// It runs through [`Db::write_contended`], so on SQLite a burst is a
    /// few grouped commits, and nobody meets "database is locked", while
    /// on PostgreSQL each reservation holds its rows' locks for itself
    /// alone.
    pub async fn reserve(
        &self,
        db: &Db,
        email_hash: &str,
        meta: &RequestMeta,
        throttled: impl Fn(Limit, u64) -> NewEvent + Send + Sync + 'static,
    ) -> AppResult<Attempt> {
        let args = Arc::new((
            self.clone(),
            email_hash.to_owned(),
            meta.ip_address.clone(),
            throttled,
        ));
        let outcome = db
            .write_contended(move |txn| {
                let args = args.clone();
                Box::pin(async move {
                    let (throttle, email_hash, ip, throttled) = &*args;
                    // A refusal is a result, not an error: an error would
                    // make the writer run the whole group again.
                    match throttle.reserve_in(txn, email_hash, ip.as_deref()).await? {
                        Ok(id) => Ok(Ok(id)),
                        Err((limit, retry)) => {
                            let key = match limit {
                                Limit::Account => account_key(email_hash),
                                Limit::Address => address_key(ip.as_deref().unwrap_or("")),
                            };
                            if first_refusal(txn, &key, retry).await? {
                                audit::record(txn, throttled(limit, retry)).await?;
                            }
                            Ok(Err(retry))
                        }
                    }
                })
            })
            .await?;
        match outcome {
            Ok(id) => Ok(Attempt { id }),
            Err(retry_after_secs) => Err(AppError::RateLimited { retry_after_secs }),
        }
    }

    /// Inside a write transaction: locks the keys, counts, and reserves or
    /// says which limit is reached and when it frees up.
    async fn reserve_in(
        &self,
        conn: &impl ConnectionTrait,
        email_hash: &str,
        ip: Option<&str>,
    ) -> AppResult<Result<Uuid, (Limit, u64)>> {
        let now = db::now();
        let mut keys = vec![account_key(email_hash)];
        if let Some(ip) = ip {
            keys.push(address_key(ip));
        }
        keys.sort();
        let mut lock = Query::insert();
        lock.into_table(sign_in_throttle_key::Entity).columns([
            sign_in_throttle_key::Column::Key,
            sign_in_throttle_key::Column::TouchedAt,
        ]);
        for key in keys {
            lock.values_panic([key.into(), now.into()]);
        }
        // `DO UPDATE`, not `DO NOTHING`: updating an existing row locks it.
        lock.on_conflict(
            OnConflict::column(sign_in_throttle_key::Column::Key)
                .update_column(sign_in_throttle_key::Column::TouchedAt)
                .to_owned(),
        );
        conn.execute(&lock).await?;

        let since = now - Config::chrono(self.window);
        let account = sign_in_failure::Column::AccountKey.eq(email_hash);
        if let Some(retry) = self
            .over(conn, account, self.max_per_account, since, now)
            .await?
        {
            return Ok(Err((Limit::Account, retry)));
        }
        if let Some(ip) = ip {
            let address = sign_in_failure::Column::IpAddress.eq(ip);
            if let Some(retry) = self
                .over(conn, address, self.max_per_address, since, now)
                .await?
            {
                return Ok(Err((Limit::Address, retry)));
            }
        }
        let id = Uuid::new_v4();
        sign_in_failure::Entity::insert(sign_in_failure::ActiveModel::from(
            sign_in_failure::Model {
                id,
                account_key: email_hash.to_owned(),
                ip_address: ip.map(str::to_owned),
                created_at: now,
            },
        ))
        .exec_without_returning(conn)
        .await?;
        Ok(Ok(id))
    }

    /// Seconds until the window frees a slot, when the count is at the limit.
    async fn over(
        &self,
        conn: &impl ConnectionTrait,
        key: sea_orm::sea_query::SimpleExpr,
        max: u32,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<u64>> {
        let recent = sign_in_failure::Entity::find()
            .filter(key.clone())
            .filter(sign_in_failure::Column::CreatedAt.gt(since));
        if recent.clone().count(conn).await? < u64::from(max) {
            return Ok(None);
        }
        // The window frees up when the max-th newest attempt leaves it.
        let oldest_counted: Option<DateTime<Utc>> = recent
            .select_only()
            .column(sign_in_failure::Column::CreatedAt)
            .order_by_desc(sign_in_failure::Column::CreatedAt)
            .offset(u64::from(max) - 1)
            .limit(1)
            .into_tuple()
            .one(conn)
            .await?;
        let frees_at = oldest_counted.unwrap_or(now) + Config::chrono(self.window);
        Ok(Some(
            u64::try_from((frees_at - now).num_seconds())
                .unwrap_or(0)
                .max(1),
        ))
    }

    /// Gives back a reservation whose check succeeded but that opens
    /// nothing to write alongside (a write of its own).
    pub async fn release_alone(&self, db: &Db, attempt: Attempt) -> AppResult<()> {
        let attempt = Arc::new(attempt);
        db.write(move |txn| {
            let attempt = attempt.clone();
            Box::pin(async move { attempt.release(txn).await })
        })
        .await
    }
}

impl Attempt {
    /// The check succeeded: it does not count. Call it inside the
    /// transaction that writes what the check opened.
    pub async fn release(&self, conn: &impl ConnectionTrait) -> AppResult<()> {
        sign_in_failure::Entity::delete_by_id(self.id)
            .exec(conn)
            .await?;
        Ok(())
    }
}

/// The installation's secret `name`: made by the first server that asks
/// (insert if absent, so two starting at once agree), then read back.
async fn installation_secret(db: &Db, name: &str) -> AppResult<Vec<u8>> {
    let mut fresh = [0u8; SECRET_LEN];
    getrandom::fill(&mut fresh)
        .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
    {
        // One statement on the `Db`: committed alone, in its turn to write.
        let mut insert = Query::insert();
        insert
            .into_table(installation_secret::Entity)
            .columns([
                installation_secret::Column::Name,
                installation_secret::Column::Value,
                installation_secret::Column::CreatedAt,
            ])
            .values_panic([name.into(), hex::encode(fresh).into(), db::now().into()])
            .on_conflict(
                OnConflict::column(installation_secret::Column::Name)
                    .do_nothing()
                    .to_owned(),
            );
        db.execute(&insert).await?;
    }
    let stored = installation_secret::Entity::find_by_id(name.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("installation secret {name} vanished"))
        })?;
    match hex::decode(&stored.value) {
        Ok(secret) if secret.len() >= SECRET_LEN => Ok(secret),
        _ => Err(AppError::internal(anyhow::anyhow!(
            "installation secret {name} is malformed"
        ))),
    }
}

/// Forgets attempts, and keys not used, since before `before` (maintenance).
pub async fn forget_before(db: &Db, before: DateTime<Utc>) -> AppResult<u64> {
    // Two statements on the `Db`, each committed alone in its turn to write.
    let forgotten = sign_in_failure::Entity::delete_many()
        .filter(sign_in_failure::Column::CreatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected;
    // A reservation that touches a key meanwhile keeps it: on PostgreSQL
    // the delete waits for its lock and then sees the new `touched_at`.
    sign_in_throttle_key::Entity::delete_many()
        .filter(sign_in_throttle_key::Column::TouchedAt.lt(before))
        .exec(db)
        .await?;
    Ok(forgotten)
}

fn account_key(email_hash: &str) -> String {
    format!("account:{email_hash}")
}

fn address_key(ip: &str) -> String {
    format!("address:{ip}")
}

/// Whether a refusal against `key` is the first since the key was last
/// throttled (then the refusal is audited, and the key is marked throttled
/// for `retry_after_secs`). Without it, anyone, no token needed, could
/// write one audit event per refused attempt: 10 batched requests of
/// aliased `signIn`s wrote thousands. The key's row is locked by the
/// reservation's transaction, so two refusals cannot both be first.
async fn first_refusal(
    conn: &impl ConnectionTrait,
    key: &str,
    retry_after_secs: u64,
) -> AppResult<bool> {
    let now = db::now();
    let until = now + Config::chrono(std::time::Duration::from_secs(retry_after_secs));
    let updated = sign_in_throttle_key::Entity::update_many()
        .col_expr(
            sign_in_throttle_key::Column::ThrottledUntil,
            Expr::value(until),
        )
        .filter(sign_in_throttle_key::Column::Key.eq(key))
        .filter(
            Condition::any()
                .add(sign_in_throttle_key::Column::ThrottledUntil.is_null())
                .add(sign_in_throttle_key::Column::ThrottledUntil.lte(now)),
        )
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}
