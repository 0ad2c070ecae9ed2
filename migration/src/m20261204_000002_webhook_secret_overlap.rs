//! A rotated webhook secret keeps signing beside the new one for a while
//! (Standard Webhooks sends several signatures, space-separated), so a
//! receiver can switch secrets without refusing a delivery in between:
//! the old secret and until when it still signs. Both null when there is
//! none.
//!
//! SQLite adds one column per `ALTER TABLE`, hence one statement each.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    PreviousSecret,
    PreviousSecretUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(WebhookEndpoints::PreviousSecret)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(WebhookEndpoints::PreviousSecretUntil)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookEndpoints::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            WebhookEndpoints::PreviousSecretUntil,
            WebhookEndpoints::PreviousSecret,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookEndpoints::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
