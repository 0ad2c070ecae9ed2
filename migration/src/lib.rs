//! Schema migrations. The server runs them at start-up; `session-manager
//! migrate` runs them alone.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_initial;
mod m20261201_000001_throttle;
mod m20261201_000002_session_expiry;
mod m20261202_000001_api_keys;
mod m20261203_000001_user_lifecycle;
mod m20261203_000002_audit_checkpoints;
mod m20261203_000003_webhooks;
mod m20261204_000001_ssf_streams;
mod m20261204_000002_webhook_secret_overlap;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_initial::Migration),
            Box::new(m20261201_000001_throttle::Migration),
            Box::new(m20261201_000002_session_expiry::Migration),
            Box::new(m20261202_000001_api_keys::Migration),
            Box::new(m20261203_000001_user_lifecycle::Migration),
            Box::new(m20261203_000002_audit_checkpoints::Migration),
            Box::new(m20261203_000003_webhooks::Migration),
            Box::new(m20261204_000001_ssf_streams::Migration),
            Box::new(m20261204_000002_webhook_secret_overlap::Migration),
        ]
    }
}
