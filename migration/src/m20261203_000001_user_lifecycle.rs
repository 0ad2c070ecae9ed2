//! The account lifecycle (issue 18 §1): an account can be disabled (with
//! when and why), deleted, and remembers its last sign-in.
//!
//! `status` is `active` or `disabled`, not null, `active` for every
//! account that exists. `deleted_at` marks a deleted account: it is kept
//! (soft delete) because sessions reference it twice with cascading
//! foreign keys (`user_id`, `impersonator_id`): a hard delete would take
//! with it the session rows of its history and, for an admin, the rows of
//! the sessions they opened as other users, the revocation record of
//! other accounts. Its email and external id are given up at deletion (so
//! both can be used again): see `service::account::delete`.
//!
//! SQLite adds one column per `ALTER TABLE`, hence one statement each.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Status,
    DisabledAt,
    DisabledReason,
    LastSignInAt,
    DeletedAt,
}

fn time_null(col: Users) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(Users::Status)
            .string_len(16)
            .not_null()
            .default("active")
            .to_owned(),
        time_null(Users::DisabledAt),
        ColumnDef::new(Users::DisabledReason)
            .string_len(500)
            .null()
            .to_owned(),
        time_null(Users::LastSignInAt),
        time_null(Users::DeletedAt),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Users::DeletedAt,
            Users::LastSignInAt,
            Users::DisabledReason,
            Users::DisabledAt,
            Users::Status,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
