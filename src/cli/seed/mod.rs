//! Bulk seeding for the load benchmark (`session-manager seed`).
//!
//! Fills a database with users, sessions and audit events in multi-row
//! inserts, a chunk per write transaction. One argon2 hash is made and
//! shared by every seeded account: argon2 is slow on purpose, and the
//! benchmark needs rows, not a million distinct hashes. The audit events
//! extend the existing chain exactly as [`audit::record`] would, `seq` by
//! `seq`, and the chain head moves at the end of each chunk in the same
//! transaction, so `session-manager audit verify` passes afterwards and an
//! interrupted seed leaves a shorter but intact chain.
//!
//! Three benchmark accounts come on top of the seeded users, with known
//! tokens printed as JSON: `bench@example.com` (a user with exactly 10
//! active sessions), `bench-admin@example.com` (an admin) and
//! `bench-revoke@example.com` (a user with many sessions to revoke, one per
//! request).

use std::{sync::Arc, time::Instant};

use chrono::Duration;
use entity::{
    session,
    user::{self, Role},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

mod fake;
mod write;

use fake::{Rng, USER_AGENTS, World, ip_address, pick};
use write::{append_events, insert_rows};

use super::args::SeedArgs;

use session_manager::{
    auth::{self, PasswordHasherPool, RequestMeta},
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    service::{
        audit::{self},
        session::{self as sessions},
    },
};

/// The password of every seeded account (one hash, shared).
pub const SEED_PASSWORD: &str = "bench-password-1";
pub const BENCH_EMAIL: &str = "bench@example.com";
pub const BENCH_ADMIN_EMAIL: &str = "bench-admin@example.com";
pub const BENCH_REVOKE_EMAIL: &str = "bench-revoke@example.com";
/// Active sessions of `bench@example.com`: the W1 inventory.
pub const BENCH_SESSIONS: usize = 10;

/// Rows per INSERT statement. SQLite allows 32 766 bound values per
/// statement, PostgreSQL 65 535; the widest table here has 17 columns.
const ROWS_PER_STATEMENT: usize = 1_000;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    /// Seeded users, besides the three benchmark accounts.
    pub users: usize,
    /// Active sessions of each seeded user.
    pub sessions_per_user: usize,
    /// Audit events appended to the chain.
    pub audit_events: usize,
    /// Sessions of `bench-revoke@example.com` to revoke one per request.
    pub revocable_sessions: usize,
    /// Audit events about `bench@example.com` (at most half of all), spread
    /// evenly through the log: the filtered page of W3.
    pub bench_user_events: usize,
    /// Rows per write transaction; the audit chain head moves once per batch.
    pub batch: usize,
}

impl From<&SeedArgs> for SeedPlan {
    fn from(args: &SeedArgs) -> Self {
        Self {
            users: args.users,
            sessions_per_user: args.sessions_per_user,
            audit_events: args.audit_events,
            revocable_sessions: args.revocable_sessions,
            bench_user_events: args.bench_user_events,
            batch: usize::try_from(args.batch).unwrap_or(usize::MAX),
        }
    }
}

/// A benchmark account and the tokens of its sessions.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchAccount {
    pub id: Uuid,
    pub email: String,
    pub role: &'static str,
    /// Bearer tokens, in the order the sessions were made.
    pub tokens: Vec<String>,
    pub session_ids: Vec<Uuid>,
}

/// What was seeded, printed as JSON by the command.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub users: u64,
    pub sessions: u64,
    pub audit_events: u64,
    /// The chain head after seeding.
    pub head_seq: i64,
    /// The password of every seeded account.
    pub password: &'static str,
    /// A seeded user with no benchmark role, for sign-ins (W5).
    pub sign_in_email: Option<String>,
    pub bench: BenchAccount,
    pub admin: BenchAccount,
    /// `tokens[0]` is the caller's own session; `revocableSessionIds` are
    /// the others, to revoke one per request.
    pub revoker: BenchAccount,
    pub revocable_session_ids: Vec<Uuid>,
    pub elapsed_ms: u64,
}

/// The `seed` command: connects, migrates, seeds and prints the report as
/// JSON on standard output; progress goes to standard error.
pub async fn run(config: &Config, args: &SeedArgs) -> anyhow::Result<()> {
    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    let db = Db::new(pool, Some(Arc::new(audit::GroupHead))).await?;
    let report = seed(&db, config, &SeedPlan::from(args))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string(&report)?);
    db.close().await.ok();
    Ok(())
}

/// Seeds `plan` into `db`, which must not hold the benchmark accounts yet.
pub async fn seed(db: &Db, config: &Config, plan: &SeedPlan) -> AppResult<SeedReport> {
    let started = Instant::now();
    if user::Entity::find()
        .filter(user::Column::Email.eq(BENCH_EMAIL))
        .one(db)
        .await?
        .is_some()
    {
        return Err(AppError::bad_input(
            "database",
            format!("{BENCH_EMAIL} exists already: seed an empty database"),
        ));
    }
    let password_hash = PasswordHasherPool::new()?
        .hash(SEED_PASSWORD.to_owned())
        .await?;
    let now = db::now();
    let mut rng = Rng::new(0x5eed_5eed_5eed_5eed);

    // Users: the benchmark accounts first, then the seeded ones; every
    // hundredth seeded user is an admin, so admins act in the audit log.
    let mut users: Vec<user::Model> = Vec::with_capacity(plan.users + 3);
    let account = |email: String, name: String, role: Role, age: Duration| {
        user::Model::new(
            Uuid::new_v4(),
            email,
            name,
            role,
            password_hash.clone(),
            now - age,
        )
    };
    let year = Duration::days(365);
    users.push(account(
        BENCH_EMAIL.into(),
        "Bench User".into(),
        Role::User,
        year,
    ));
    users.push(account(
        BENCH_ADMIN_EMAIL.into(),
        "Bench Admin".into(),
        Role::Admin,
        year,
    ));
    users.push(account(
        BENCH_REVOKE_EMAIL.into(),
        "Bench Revoker".into(),
        Role::User,
        year,
    ));
    for i in 0..plan.users {
        let role = if i % 100 == 99 {
            Role::Admin
        } else {
            Role::User
        };
        users.push(account(
            format!("user{i:07}@seed.example.com"),
            format!("Seeded User {i}"),
            role,
            Duration::seconds(rng.below(300 * 86_400) as i64 + 86_400),
        ));
    }
    let users = Arc::new(users);
    let step = Instant::now();
    insert_rows(db, plan.batch, users.clone(), |chunk| {
        user::Entity::insert_many(chunk.iter().cloned().map(user::ActiveModel::from))
    })
    .await?;
    progress("users", users.len(), step);

    // Sessions: all active, made within the idle timeout and the TTL.
    let ttl = Config::chrono(config.session_ttl);
    let idle = Config::chrono(config.session_idle_timeout);
    let max_age = Duration::days(6).min(ttl / 2).min(idle / 2);
    let max_age_ms = max_age.num_milliseconds().max(1) as u64;
    let mut sessions: Vec<session::Model> = Vec::new();
    let new_session = |rng: &mut Rng, user: &user::Model| -> AppResult<(session::Model, String)> {
        let token = auth::generate_token()?;
        let created_at = now - Duration::milliseconds(rng.below(max_age_ms) as i64);
        let last_active_at = created_at
            + Duration::milliseconds(
                rng.below((now - created_at).num_milliseconds() as u64 + 1) as i64
            );
        let absolute = created_at + ttl;
        let origin = RequestMeta {
            ip_address: Some(ip_address(rng)),
            user_agent: Some(pick(rng, USER_AGENTS).to_owned()),
        };
        let expires_at = absolute.min(last_active_at + idle);
        let mut model =
            sessions::new_session(&token, user.id, &origin, created_at, expires_at, absolute);
        model.last_active_at = last_active_at;
        Ok((model, token.plaintext))
    };
    let mut accounts = Vec::new();
    for (index, count) in [
        (0, BENCH_SESSIONS),
        (1, 1),
        (2, 1 + plan.revocable_sessions),
    ] {
        let user = &users[index];
        let mut account = BenchAccount {
            id: user.id,
            email: user.email.clone(),
            role: user.role.as_str(),
            tokens: Vec::new(),
            session_ids: Vec::new(),
        };
        for n in 0..count {
            let (model, token) = new_session(&mut rng, user)?;
            // The revoker's other sessions are revoked by id: no tokens.
            if index != 2 || n == 0 {
                account.tokens.push(token);
                account.session_ids.push(model.id);
            }
            sessions.push(model);
        }
        accounts.push(account);
    }
    let seeded_from = sessions.len();
    for user in &users[3..] {
        for _ in 0..plan.sessions_per_user {
            sessions.push(new_session(&mut rng, user)?.0);
        }
    }
    let revocable_session_ids: Vec<Uuid> = sessions
        .iter()
        .skip(BENCH_SESSIONS + 2)
        .take(plan.revocable_sessions)
        .map(|s| s.id)
        .collect();
    let sessions = Arc::new(sessions);
    let step = Instant::now();
    insert_rows(db, plan.batch, sessions.clone(), |chunk| {
        session::Entity::insert_many(chunk.iter().cloned().map(session::ActiveModel::from))
    })
    .await?;
    progress("sessions", sessions.len(), step);

    // Audit events, appended to the chain.
    let step = Instant::now();
    let world = World {
        users: users.clone(),
        sessions: sessions.clone(),
        seeded_sessions_from: seeded_from,
        sessions_per_user: plan.sessions_per_user,
        admins: users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.role == Role::Admin)
            .map(|(i, _)| i)
            .collect(),
    };
    let span = Duration::days(30).min(Config::chrono(config.audit_retention) / 2);
    let head_seq = append_events(db, world, plan, now - span, span, rng).await?;
    progress("audit events", plan.audit_events, step);
    // Checkpoints as a server with this configuration would have signed
    // them, so that `audit verify --public-key` checks seeded data as it
    // would a server's.
    let step = Instant::now();
    let signer = audit::Signer::load_or_create(&config.audit_signing_key_path())
        .map_err(AppError::internal)?;
    let every = i64::try_from(config.audit_checkpoint_every).unwrap_or(i64::MAX);
    let signed = audit::sign_positions(db, &signer, every).await?;
    progress("audit checkpoints", signed as usize, step);

    let mut accounts = accounts.into_iter();
    let (bench, admin, revoker) = (
        accounts.next().expect("bench account"),
        accounts.next().expect("admin account"),
        accounts.next().expect("revoker account"),
    );
    Ok(SeedReport {
        users: users.len() as u64,
        sessions: sessions.len() as u64,
        audit_events: plan.audit_events as u64,
        head_seq,
        password: SEED_PASSWORD,
        sign_in_email: users
            .iter()
            .skip(3)
            .find(|u| u.role == Role::User)
            .map(|u| u.email.clone()),
        bench,
        admin,
        revoker,
        revocable_session_ids,
        elapsed_ms: ms(started),
    })
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn progress(what: &str, rows: usize, since: Instant) {
    tracing::info!(rows, elapsed_ms = ms(since), "seed: {what}");
    eprintln!("seed: {rows} {what} in {} ms", ms(since));
}
