//! The application's shared state: what every request, transport and
//! background task needs, built once at start-up. It sits above the
//! services and below everything that serves requests, which import it
//! from here.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::PasswordHasherPool, config::Config, db, events::EventBus, metrics::Metrics, service,
};

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// The reads every request makes (see [`db::Reads`]).
    pub reads: db::Reads,
    /// Write transactions that may be grouped (see [`db::Writer`]).
    pub writer: db::Writer,
    pub config: Arc<Config>,
    pub hasher: PasswordHasherPool,
    /// Every credential check reserves its attempt here first.
    pub throttle: service::throttle::Throttle,
    pub metrics: Arc<Metrics>,
    pub events: EventBus,
    /// Refused attempts per caller, for the denial rate limit (per process).
    pub denials: Arc<service::access::DenialLimiter>,
}

impl AppState {
    /// Connects to the database and runs the migrations.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url).await?;
        db::migrate(&db).await?;
        // The audit log keeps its chain head per group of grouped writes.
        let writer = db::Writer::new(db.clone(), Some(Arc::new(service::audit::GroupHead)))?;
        let throttle = service::throttle::Throttle::new(&db, writer.clone(), &config).await?;
        Ok(Self {
            reads: db::Reads::new(db.clone()).await?,
            writer,
            throttle,
            db,
            hasher: PasswordHasherPool::new()?,
            metrics: Arc::new(Metrics::default()),
            events: EventBus::new(config.subscriber_buffer),
            denials: Arc::default(),
            config: Arc::new(config),
        })
    }
}
