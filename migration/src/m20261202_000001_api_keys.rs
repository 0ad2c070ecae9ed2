//! API keys for trusted backends, and the account's id in the
//! application that provisions it (`users.external_id`).
//!
//! A key is looked up by the SHA-256 of its text on a unique index, as a
//! session token is. Its scopes are one column of space-separated names
//! (`sessions:issue sessions:check`, the form OAuth's `scope` uses): a
//! key holds a handful, they are read with the key and never filtered on.
//! `users.external_id` is nullable and unique: accounts made here have
//! none, and an application's id names one account at most. (Both
//! backends let any number of rows hold NULL under a unique index. SQLite
//! cannot add a column with a UNIQUE constraint, hence the index.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    KeyPrefix,
    Scopes,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
    RevokedBy,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ExternalId,
}

const KEY_HASH_INDEX: &str = "ux_api_keys_key_hash";
const EXTERNAL_ID_INDEX: &str = "ux_users_external_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let time = |col: ApiKeys| {
            ColumnDef::new(col)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::Name).string_len(64).not_null())
                    .col(ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null())
                    .col(ColumnDef::new(ApiKeys::KeyPrefix).string_len(16).not_null())
                    .col(ColumnDef::new(ApiKeys::Scopes).string_len(512).not_null())
                    // Null for a key made on the command line.
                    .col(ColumnDef::new(ApiKeys::CreatedBy).uuid().null())
                    .col(
                        ColumnDef::new(ApiKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(time(ApiKeys::LastUsedAt))
                    .col(time(ApiKeys::RevokedAt))
                    .col(ColumnDef::new(ApiKeys::RevokedBy).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(KEY_HASH_INDEX)
                    .table(ApiKeys::Table)
                    .col(ApiKeys::KeyHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::ExternalId).string_len(255).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(EXTERNAL_ID_INDEX)
                    .table(Users::Table)
                    .col(Users::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(EXTERNAL_ID_INDEX)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::ExternalId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        Ok(())
    }
}
