//! The application's shared state: what every request, transport and
//! background task needs, built once at start-up. It sits above the
//! services and below everything that serves requests, which import it
//! from here.

use std::sync::Arc;

use crate::{
    auth::PasswordHasherPool, config::Config, db, events::EventBus, metrics::Metrics, service,
};

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database: every read and write goes through it (see [`db::Db`]).
    pub db: db::Db,
    pub config: Arc<Config>,
    pub hasher: PasswordHasherPool,
    /// Every credential check reserves its attempt here first.
    pub throttle: service::throttle::Throttle,
    pub metrics: Arc<Metrics>,
    pub events: EventBus,
    /// Refused attempts per caller, for the denial rate limit (per process).
    pub denials: Arc<service::denials::DenialLimiter>,
    /// Signs audit checkpoints and purge records (`AUDIT_SIGNING_KEY`).
    pub signer: Arc<service::audit::Signer>,
    /// The keys `auditChain` accepts: the signer's and `AUDIT_PUBLIC_KEYS`.
    pub keyring: Arc<service::audit::Keyring>,
    /// The Shared Signals signing key and the published public keys.
    pub ssf_keys: Arc<service::ssf::Keyring>,
}

impl AppState {
    /// Connects to the database and runs the migrations.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url).await?;
        db::migrate(&db).await?;
        let db = database(db).await?;
        let (signer, keyring) = audit_keys(&config)?;
        let throttle = service::throttle::Throttle::new(&db, &config).await?;
        let ssf_keys = Arc::new(service::ssf::Keyring::load(
            &config.ssf_signing_key_path(),
            &config.ssf_previous_keys,
        )?);
        Ok(Self {
            throttle,
            db,
            hasher: PasswordHasherPool::new()?,
            metrics: Arc::new(Metrics::default()),
            events: EventBus::new(config.subscriber_buffer),
            denials: Arc::default(),
            signer: Arc::new(signer),
            keyring: Arc::new(keyring),
            ssf_keys,
            config: Arc::new(config),
        })
    }
}

/// The handle on the database behind `pool`, with the services' hook on
/// the grouped writer wired in: the audit log appends each group's events
/// together, just before the group commits (see
/// [`service::audit::GroupHead`]).
pub async fn database(pool: sea_orm::DatabaseConnection) -> anyhow::Result<db::Db> {
    db::Db::new(pool, Some(Arc::new(service::audit::GroupHead))).await
}

/// The audit signing key (created if missing) and the keys that verify
/// checkpoints: its own and those of `AUDIT_PUBLIC_KEYS`.
pub fn audit_keys(
    config: &Config,
) -> anyhow::Result<(service::audit::Signer, service::audit::Keyring)> {
    let signer = service::audit::Signer::load_or_create(&config.audit_signing_key_path())?;
    let mut keyring = service::audit::Keyring::default();
    keyring.add(signer.public_key().clone());
    for path in &config.audit_public_keys {
        keyring.extend(service::audit::Keyring::load(path)?);
    }
    Ok((signer, keyring))
}
