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

use chrono::{DateTime, Duration, Utc};
use entity::{
    audit_chain::{self, CHAIN_ID},
    audit_event, session,
    user::{self, Role},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    InsertMany, QueryFilter, QueryTrait, Statement,
};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    auth::{self, Actor, PasswordHasherPool},
    config::{Config, SeedArgs},
    db::{self, Db},
    error::{AppError, AppResult},
    service::{
        access::{self, Action},
        audit::{self, NewEvent, events},
        session::{self as sessions, reasons},
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
    let account = |email: String, name: String, role: Role, age: Duration| user::Model {
        id: Uuid::new_v4(),
        email,
        name,
        role,
        password_hash: password_hash.clone(),
        created_at: now - age,
        external_id: None,
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
        let model = session::Model {
            id: Uuid::new_v4(),
            token_hash: token.hash,
            token_prefix: token.display_prefix,
            user_id: user.id,
            impersonator_id: None,
            impersonation_reason: None,
            impersonator_session_id: None,
            ip_address: Some(ip_address(rng)),
            user_agent: Some(pick(rng, USER_AGENTS).to_owned()),
            created_at,
            last_active_at,
            expires_at: absolute.min(last_active_at + idle),
            absolute_expires_at: absolute,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            end_reason: None,
        };
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

/// The statements of one write transaction, built off the runtime.
struct Batch {
    statements: Vec<Statement>,
    /// For audit events: the chain head this batch extends, and its new one.
    chain: Option<ChainStep>,
}

struct ChainStep {
    from_seq: i64,
    from_hash: String,
    to_seq: i64,
    to_hash: String,
}

/// Runs `produce` on a blocking thread and writes each batch it sends in a
/// write transaction of its own. Building rows, hashes and SQL costs about
/// as much as the database's inserting them, so the two overlap.
async fn write_pipelined(
    db: &Db,
    produce: impl FnOnce(mpsc::Sender<Batch>) -> AppResult<()> + Send + 'static,
) -> AppResult<()> {
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let producer = tokio::task::spawn_blocking(move || produce(tx));
    let written = async {
        while let Some(batch) = rx.recv().await {
            write_batch(db, batch).await?;
        }
        Ok::<_, AppError>(())
    }
    .await;
    // On a write error the receiver is gone, so the producer stops too.
    let produced = producer.await.map_err(AppError::internal)?;
    written.and(produced)
}

async fn write_batch(db: &Db, batch: Batch) -> AppResult<()> {
    let txn = db.transaction().await?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        // Inserts into the random-order indexes (user, actor, session, token
        // hash) re-read pages that SQLite's default 2 MB cache has dropped.
        txn.execute_unprepared("PRAGMA cache_size = -524288")
            .await?;
    }
    if let Some(step) = &batch.chain {
        let head = audit::lock_head(&txn).await?;
        if head.head_seq != step.from_seq || head.head_hash != step.from_hash {
            return Err(AppError::internal(anyhow::anyhow!(
                "the audit chain moved while seeding (head seq {}, expected {}): \
                 seed a database that nothing else writes to",
                head.head_seq,
                step.from_seq
            )));
        }
    }
    for statement in batch.statements {
        txn.execute_raw(statement).await?;
    }
    if let Some(step) = batch.chain {
        audit_chain::Entity::update(audit_chain::ActiveModel {
            id: Set(CHAIN_ID),
            head_seq: Set(step.to_seq),
            head_hash: Set(step.to_hash),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Inserts `rows` in multi-row statements, `batch` rows per write
/// transaction.
async fn insert_rows<M, A>(
    db: &Db,
    batch: usize,
    rows: Arc<Vec<M>>,
    statement: fn(&[M]) -> InsertMany<A>,
) -> AppResult<()>
where
    M: Send + Sync + 'static,
    A: ActiveModelTrait + 'static,
{
    let backend = db.get_database_backend();
    write_pipelined(db, move |tx| {
        for chunk in rows.chunks(batch.max(1)) {
            let statements = chunk
                .chunks(ROWS_PER_STATEMENT)
                .map(|part| statement(part).build(backend))
                .collect();
            let batch = Batch {
                statements,
                chain: None,
            };
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
        Ok(())
    })
    .await
}

/// The seeded accounts and sessions the events talk about.
struct World {
    users: Arc<Vec<user::Model>>,
    sessions: Arc<Vec<session::Model>>,
    /// Index in `sessions` of the first seeded user's first session.
    seeded_sessions_from: usize,
    sessions_per_user: usize,
    /// Indexes in `users` of the admins.
    admins: Vec<usize>,
}

impl World {
    /// A session of the user at `index`, when it has any.
    fn session_of(&self, rng: &mut Rng, index: usize) -> Option<&session::Model> {
        match index {
            0 => Some(&self.sessions[rng.below(BENCH_SESSIONS as u64) as usize]),
            1 | 2 => None,
            _ if self.sessions_per_user == 0 => None,
            _ => {
                let first = self.seeded_sessions_from + (index - 3) * self.sessions_per_user;
                Some(&self.sessions[first + rng.below(self.sessions_per_user as u64) as usize])
            }
        }
    }

    /// Any seeded user (or the bench user when there are none).
    fn any_user(&self, rng: &mut Rng) -> usize {
        let seeded = self.users.len() - 3;
        if seeded == 0 {
            0
        } else {
            3 + rng.below(seeded as u64) as usize
        }
    }

    fn any_admin(&self, rng: &mut Rng) -> &user::Model {
        &self.users[self.admins[rng.below(self.admins.len() as u64) as usize]]
    }
}

/// Appends `plan.audit_events` events, spread over `span` from `start`, to
/// the chain, computing `seq`, `prev_hash` and `hash` as
/// [`audit::record`] does; returns the new head `seq`.
async fn append_events(
    db: &Db,
    world: World,
    plan: &SeedPlan,
    start: DateTime<Utc>,
    span: Duration,
    mut rng: Rng,
) -> AppResult<i64> {
    let head = chain_head(db).await?;
    let total = plan.audit_events;
    let bench_events = plan.bench_user_events.min(total / 2);
    let per_transaction = plan.batch.max(1);
    let span_us = span.num_microseconds().unwrap_or(i64::MAX) as u128;
    let backend = db.get_database_backend();
    let last_seq = head.head_seq + total as i64;
    write_pipelined(db, move |tx| {
        let mut seq = head.head_seq;
        let mut prev_hash = head.head_hash;
        let mut done = 0usize;
        let mut batch: Vec<audit_event::Model> = Vec::with_capacity(per_transaction.min(total));
        while done < total {
            let count = per_transaction.min(total - done);
            let from = (seq, prev_hash.clone());
            batch.clear();
            for i in done..done + count {
                // `bench_events` of them, evenly spaced, are about the bench user.
                let is_bench = (i + 1) * bench_events / total != i * bench_events / total;
                let subject = if is_bench {
                    0
                } else {
                    world.any_user(&mut rng)
                };
                let offset_us = (i as u128 * span_us / total as u128) as i64;
                let created_at = start + Duration::microseconds(offset_us);
                let event = loop {
                    let event = fake_event(&world, &mut rng, subject, created_at);
                    // The bench user's count is exact: skip the kinds that
                    // name no user (a sign-in with an unknown email).
                    if !is_bench || event.user_id == Some(world.users[0].id) {
                        break event;
                    }
                };
                seq += 1;
                let model = event.chained(
                    uuid_v7_at(created_at),
                    seq,
                    created_at,
                    std::mem::take(&mut prev_hash),
                );
                prev_hash = model.hash.clone();
                batch.push(model);
            }
            let statements = batch
                .chunks(ROWS_PER_STATEMENT)
                .map(|part| {
                    audit_event::Entity::insert_many(
                        part.iter().cloned().map(audit_event::ActiveModel::from),
                    )
                    .build(backend)
                })
                .collect();
            let step = ChainStep {
                from_seq: from.0,
                from_hash: from.1,
                to_seq: seq,
                to_hash: prev_hash.clone(),
            };
            let sent = tx.blocking_send(Batch {
                statements,
                chain: Some(step),
            });
            if sent.is_err() {
                break;
            }
            done += count;
        }
        Ok(())
    })
    .await?;
    Ok(last_seq)
}

async fn chain_head(conn: &impl ConnectionTrait) -> AppResult<audit_chain::Model> {
    audit_chain::Entity::find_by_id(CHAIN_ID)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("audit chain head row is missing")))
}

/// A UUIDv7 for an event made at `at`, so ids stay time-ordered like the
/// server's.
fn uuid_v7_at(at: DateTime<Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    ))
}

/// One event about the user at `subject`, of a type drawn with the rough
/// frequencies of a real log, shaped as the server writes it.
fn fake_event(world: &World, rng: &mut Rng, subject: usize, at: DateTime<Utc>) -> NewEvent {
    let user = &world.users[subject];
    let session = world.session_of(rng, subject);
    let ip = ip_address(rng);
    let agent = pick(rng, USER_AGENTS);
    let with_origin = |event: NewEvent| {
        let mut event = event;
        event.ip_address = Some(ip.clone());
        event.user_agent = Some(agent.to_owned());
        event
    };
    let with_session = |event: NewEvent| match session {
        Some(s) => event.session(s.id),
        None => event,
    };
    let roll = rng.below(100);
    let event = match roll {
        0..50 => with_session(
            NewEvent::success(events::SIGN_IN, format!("{} signed in", user.email))
                .actor(user.id)
                .subject(user.id)
                .meta("email", user.email.clone())
                .meta("expiresAt", (at + Duration::days(7)).to_rfc3339()),
        ),
        50..60 => {
            let wrong_password = rng.below(2) == 0;
            let mut event =
                NewEvent::failed(events::SIGN_IN, "sign-in failed: invalid email or password")
                    .meta("email", user.email.clone())
                    .meta(
                        "reason",
                        if wrong_password {
                            "wrong_password"
                        } else {
                            "unknown_email"
                        },
                    );
            if wrong_password {
                event = event.subject(user.id);
            }
            event
        }
        60..78 if session.is_some() => {
            let by_admin = rng.below(5) == 0;
            let actor = if by_admin {
                world.any_admin(rng).id
            } else {
                user.id
            };
            let reason = pick(
                rng,
                &[
                    reasons::SIGN_OUT,
                    reasons::REVOKE,
                    reasons::BULK,
                    reasons::PASSWORD_CHANGED,
                    reasons::SESSION_LIMIT,
                ],
            );
            let target = session.expect("matched on is_some");
            sessions::revoked_event(target, user, Actor::user(actor), at, reason)
        }
        60..86 => {
            let admin = world.any_admin(rng);
            NewEvent::success(
                events::SESSIONS_VIEWED,
                format!("sessions of {} viewed", user.email),
            )
            .actor(admin.id)
            .subject(user.id)
            .meta("userEmail", user.email.clone())
        }
        86..91 => {
            // Someone else tried to end this user's sessions.
            let intruder = &world.users[world.any_user(rng)];
            access::denial_event(
                Actor::user(intruder.id),
                intruder.role,
                Action::RevokeSessions,
                &AppError::Forbidden(access::OWN_ONLY.into()),
            )
            .subject(user.id)
            // As a request's refusals are written (`access::Denials::take`).
            .meta("count", 1u64)
        }
        91..94 => {
            let admin = world.any_admin(rng);
            with_session(
                NewEvent::success(
                    events::IMPERSONATION_STARTED,
                    format!(
                        "{} started impersonating {}: support ticket",
                        admin.email, user.email
                    ),
                )
                .actor(admin.id)
                .subject(user.id)
                .meta("reason", "support ticket")
                .meta("impersonatorEmail", admin.email.clone()),
            )
        }
        94..97 => {
            let admin = world.any_admin(rng);
            with_session(
                NewEvent::success(
                    events::IMPERSONATION_STOPPED,
                    format!("impersonation of {} stopped", user.email),
                )
                .actor(admin.id)
                .subject(user.id)
                .meta("impersonatedBy", admin.id.to_string())
                .meta("impersonatorId", admin.id.to_string())
                .meta("userEmail", user.email.clone()),
            )
        }
        _ => with_session(
            NewEvent::success(
                events::PASSWORD_CHANGED,
                format!("{} changed their password", user.email),
            )
            .actor(user.id)
            .subject(user.id)
            .meta("endedSessions", rng.below(4)),
        ),
    };
    with_origin(event)
}

/// Addresses from the documentation ranges (RFC 5737): data only.
fn ip_address(rng: &mut Rng) -> String {
    let net = pick(rng, &["192.0.2", "198.51.100", "203.0.113"]);
    format!("{net}.{}", 1 + rng.below(254))
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "curl/8.5.0",
];

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// SplitMix64: a fixed seed makes every run draw the same data, and the
/// benchmark needs no cryptographic randomness (tokens still come from the
/// OS, through [`auth::generate_token`]).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for test data (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
