//! Outbound delivery from the audit log (the outbox): a cursor per
//! destination, a log of delivery attempts, and webhook endpoints.
//!
//! `outbox_cursors` is shared by every kind of destination (webhook
//! endpoints now, SSF streams later): the worker finds due destinations
//! on it (enabled, behind the head, not leased or with an expired lease,
//! not backing off), so that query's columns are indexed together.
//! `outbox_attempts` pages per destination by its UUIDv7 id.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxCursors {
    Table,
    Id,
    Kind,
    CursorSeq,
    Enabled,
    DisabledAt,
    DisabledReason,
    LeaseOwner,
    LeaseUntil,
    Attempts,
    FailingSince,
    NextAttemptAt,
    LastSuccessAt,
    LastFailureAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OutboxAttempts {
    Table,
    Id,
    DestinationId,
    EventId,
    EventSeq,
    EventType,
    Attempt,
    Status,
    ResponseCode,
    LatencyMs,
    Error,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Url,
    Description,
    EventTypes,
    Secret,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

const DUE_INDEX: &str = "ix_outbox_cursors_due";
const ATTEMPTS_INDEX: &str = "ix_outbox_attempts_destination";

fn time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxCursors::Table)
                    .col(
                        ColumnDef::new(OutboxCursors::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OutboxCursors::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OutboxCursors::CursorSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxCursors::Enabled).boolean().not_null())
                    .col(time(OutboxCursors::DisabledAt))
                    .col(
                        ColumnDef::new(OutboxCursors::DisabledReason)
                            .string_len(512)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(OutboxCursors::LeaseOwner)
                            .string_len(64)
                            .null(),
                    )
                    .col(time(OutboxCursors::LeaseUntil))
                    .col(
                        ColumnDef::new(OutboxCursors::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(time(OutboxCursors::FailingSince))
                    .col(time(OutboxCursors::NextAttemptAt))
                    .col(time(OutboxCursors::LastSuccessAt))
                    .col(time(OutboxCursors::LastFailureAt))
                    .col(
                        ColumnDef::new(OutboxCursors::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(OutboxCursors::Table)
                    .col(OutboxCursors::Enabled)
                    .col(OutboxCursors::CursorSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboxAttempts::Table)
                    .col(
                        ColumnDef::new(OutboxAttempts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OutboxAttempts::DestinationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxAttempts::EventId).uuid().not_null())
                    .col(
                        ColumnDef::new(OutboxAttempts::EventSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OutboxAttempts::EventType)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxAttempts::Attempt).integer().not_null())
                    .col(
                        ColumnDef::new(OutboxAttempts::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OutboxAttempts::ResponseCode)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(OutboxAttempts::LatencyMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxAttempts::Error).string_len(512).null())
                    .col(
                        ColumnDef::new(OutboxAttempts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ATTEMPTS_INDEX)
                    .table(OutboxAttempts::Table)
                    .col(OutboxAttempts::DestinationId)
                    .col(OutboxAttempts::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(
                        ColumnDef::new(WebhookEndpoints::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::Url)
                            .string_len(2048)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::Description)
                            .string_len(256)
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::EventTypes).text().null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::Secret)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::CreatedBy).uuid().null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OutboxAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OutboxCursors::Table).to_owned())
            .await?;
        Ok(())
    }
}
