//! Links an impersonation session to the admin's session that opened it,
//! so it ends when that session ends.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ImpersonatorSessionId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(
                        ColumnDef::new(Sessions::ImpersonatorSessionId)
                            .uuid()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Ending an admin's session finds the impersonations it opened.
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_impersonator_session")
                    .table(Sessions::Table)
                    .col(Sessions::ImpersonatorSessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_sessions_impersonator_session")
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::ImpersonatorSessionId)
                    .to_owned(),
            )
            .await
    }
}
