//! How a session ended by expiry, so that its end is recorded (audited as
//! `session.expired`) exactly once.
//!
//! `sessions.end_reason` is null while the session lives, and is set, by
//! a conditional update that one writer wins, to `idle_timeout` or
//! `expired` (the absolute lifetime) when the server records the expiry.
//! An index lets the maintenance pass find the expired sessions whose end
//! is unrecorded, oldest first, without reading the sessions recorded or
//! revoked already, nor the live ones. On PostgreSQL it is partial:
//! `(expires_at) WHERE end_reason IS NULL AND revoked_at IS NULL`. SQLite,
//! which plans without statistics here, prefers the equality on
//! `ix_sessions_revoked` to such an index and then reads every live
//! session; there it is `(end_reason, revoked_at, expires_at)`, one range
//! of which is the same set in the same order. (PostgreSQL, the other way
//! round, does not take `IS NULL` for an equality that keeps the order, and
//! walks `ix_sessions_expires` instead of that one.) A test checks both
//! plans.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ExpiresAt,
    AbsoluteExpiresAt,
    RevokedAt,
    EndReason,
}

const INDEX: &str = "ix_sessions_unrecorded_expiry";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::EndReason).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        // Sessions that expired before this version recorded expiries are
        // marked without an event: their end is long past, and recording
        // them now would flood the audit log (and the maintenance passes)
        // on the first start after the upgrade.
        let reason = Expr::case(
            Expr::col(Sessions::ExpiresAt).gte(Expr::col(Sessions::AbsoluteExpiresAt)),
            "expired",
        )
        .finally("idle_timeout");
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(Sessions::EndReason, reason)
                    .and_where(Expr::col(Sessions::RevokedAt).is_null())
                    .and_where(Expr::col(Sessions::ExpiresAt).lte(chrono::Utc::now()))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            // sea-query has no partial indexes.
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX \"{INDEX}\" ON \"sessions\" (\"expires_at\") \
                     WHERE \"end_reason\" IS NULL AND \"revoked_at\" IS NULL"
                ))
                .await?;
        } else {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(Sessions::Table)
                        .col(Sessions::EndReason)
                        .col(Sessions::RevokedAt)
                        .col(Sessions::ExpiresAt)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Sessions::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::EndReason)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
