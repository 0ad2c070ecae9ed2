//! The sign-in throttle reserves attempts before checking them, and keys
//! them by a keyed hash instead of the typed email.
//!
//! - `sign_in_throttle_keys`: one row per throttled key (an account's
//!   hashed email, a client address). A reservation upserts the rows of
//!   its keys first, which locks them (PostgreSQL) until it commits, so
//!   counting the window and inserting the attempt cannot interleave with
//!   another replica doing the same. `touched_at` lets maintenance forget
//!   keys not used within the window.
//! - `installation_secrets`: secrets every replica shares and that outlive
//!   restarts, such as the key of that hash. The server creates each one
//!   on first start (insert if absent, then read), from the OS's random
//!   source; no secret is ever written by a migration or in the code.
//! - `sign_in_failures` held the typed email verbatim (people type
//!   passwords into email fields); its rows are only a window's worth of
//!   throttle state, so they are deleted rather than carried over, which
//!   resets the counts once, at the upgrade.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SignInThrottleKeys {
    Table,
    Key,
    TouchedAt,
    ThrottledUntil,
}

#[derive(DeriveIden)]
enum InstallationSecrets {
    Table,
    Name,
    Value,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SignInFailures {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SignInThrottleKeys::Table)
                    .col(
                        ColumnDef::new(SignInThrottleKeys::Key)
                            .string_len(100)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SignInThrottleKeys::TouchedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SignInThrottleKeys::ThrottledUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sign_in_throttle_keys_touched")
                    .table(SignInThrottleKeys::Table)
                    .col(SignInThrottleKeys::TouchedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InstallationSecrets::Table)
                    .col(
                        ColumnDef::new(InstallationSecrets::Name)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(InstallationSecrets::Value)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InstallationSecrets::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(Query::delete().from_table(SignInFailures::Table).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The hashed keys mean nothing to the old code: start it afresh.
        manager
            .exec_stmt(Query::delete().from_table(SignInFailures::Table).to_owned())
            .await?;
        for table in [
            InstallationSecrets::Table.into_iden(),
            SignInThrottleKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
