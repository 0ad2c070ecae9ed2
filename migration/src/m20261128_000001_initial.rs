//! Users, sessions and the hash-chained audit log.
//!
//! Timestamps are `timestamp with time zone` (PostgreSQL reads them back as
//! UTC; a plain `timestamp` cannot be read as `DateTime<Utc>`). UUIDs are
//! native `uuid` on PostgreSQL and 16-byte BLOBs on SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    Role,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    TokenPrefix,
    UserId,
    ImpersonatorId,
    ImpersonationReason,
    ImpersonatorSessionId,
    IpAddress,
    UserAgent,
    CreatedAt,
    LastActiveAt,
    ExpiresAt,
    AbsoluteExpiresAt,
    RevokedAt,
    RevokedBy,
    RevokeReason,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    Seq,
    CreatedAt,
    EventType,
    Status,
    Message,
    ActorId,
    UserId,
    SessionId,
    IpAddress,
    UserAgent,
    Metadata,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum SignInFailures {
    Table,
    Id,
    AccountKey,
    IpAddress,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditChain {
    Table,
    Id,
    HeadSeq,
    HeadHash,
    AnchorSeq,
    AnchorHash,
}

const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn uuid_col(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().to_owned()
}

fn uuid_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().null().to_owned()
}

fn time_col(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn text_col(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

fn text_null(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).null().to_owned()
}

fn index(name: &str, table: impl IntoIden) -> IndexCreateStatement {
    Index::create().name(name).table(table).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid_col(Users::Id).primary_key())
                    .col(text_col(Users::Email, 320).unique_key())
                    .col(text_col(Users::Name, 200))
                    .col(text_col(Users::Role, 16))
                    .col(text_col(Users::PasswordHash, 255))
                    .col(time_col(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(uuid_col(Sessions::Id).primary_key())
                    .col(text_col(Sessions::TokenHash, 64))
                    .col(text_col(Sessions::TokenPrefix, 16))
                    .col(uuid_col(Sessions::UserId))
                    .col(uuid_null(Sessions::ImpersonatorId))
                    .col(text_null(Sessions::ImpersonationReason, 500))
                    .col(uuid_null(Sessions::ImpersonatorSessionId))
                    .col(text_null(Sessions::IpAddress, 64))
                    .col(text_null(Sessions::UserAgent, 512))
                    .col(time_col(Sessions::CreatedAt))
                    .col(time_col(Sessions::LastActiveAt))
                    .col(time_col(Sessions::ExpiresAt))
                    .col(time_col(Sessions::AbsoluteExpiresAt))
                    .col(
                        ColumnDef::new(Sessions::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(uuid_null(Sessions::RevokedBy))
                    .col(text_null(Sessions::RevokeReason, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_impersonator")
                            .from(Sessions::Table, Sessions::ImpersonatorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The token check: one read on a unique index.
        manager
            .create_index(
                index("ux_sessions_token_hash", Sessions::Table)
                    .col(Sessions::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A user's inventory (active ones: expires_at in the future).
        manager
            .create_index(
                index("ix_sessions_user_expires", Sessions::Table)
                    .col(Sessions::UserId)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        // Ending an admin's session finds the impersonations it opened.
        manager
            .create_index(
                index("ix_sessions_impersonator_session", Sessions::Table)
                    .col(Sessions::ImpersonatorSessionId)
                    .to_owned(),
            )
            .await?;
        // Retention clean-up of ended sessions: expired, and revoked.
        manager
            .create_index(
                index("ix_sessions_expires", Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("ix_sessions_revoked", Sessions::Table)
                    .col(Sessions::RevokedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(uuid_col(AuditEvents::Id).primary_key())
                    .col(ColumnDef::new(AuditEvents::Seq).big_integer().not_null())
                    .col(time_col(AuditEvents::CreatedAt))
                    .col(text_col(AuditEvents::EventType, 64))
                    .col(text_col(AuditEvents::Status, 16))
                    .col(text_col(AuditEvents::Message, 1000))
                    .col(uuid_null(AuditEvents::ActorId))
                    .col(uuid_null(AuditEvents::UserId))
                    .col(uuid_null(AuditEvents::SessionId))
                    .col(text_null(AuditEvents::IpAddress, 64))
                    .col(text_null(AuditEvents::UserAgent, 512))
                    .col(ColumnDef::new(AuditEvents::Metadata).json().not_null())
                    .col(text_col(AuditEvents::PrevHash, 64))
                    .col(text_col(AuditEvents::Hash, 64))
                    .to_owned(),
            )
            .await?;
        // Chain order and the default "newest first" page.
        manager
            .create_index(
                index("ux_audit_events_seq", AuditEvents::Table)
                    .col(AuditEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Each filter column paired with seq, so a filtered page is an index
        // range walked in order rather than a sort of every match.
        for (name, col) in [
            ("ix_audit_events_user_seq", AuditEvents::UserId),
            ("ix_audit_events_actor_seq", AuditEvents::ActorId),
            ("ix_audit_events_session_seq", AuditEvents::SessionId),
            ("ix_audit_events_type_seq", AuditEvents::EventType),
            ("ix_audit_events_created", AuditEvents::CreatedAt),
        ] {
            let mut idx = index(name, AuditEvents::Table).col(col).to_owned();
            if name.ends_with("_seq") {
                idx.col(AuditEvents::Seq);
            }
            manager.create_index(idx).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(SignInFailures::Table)
                    .col(uuid_col(SignInFailures::Id).primary_key())
                    .col(text_col(SignInFailures::AccountKey, 320))
                    .col(text_null(SignInFailures::IpAddress, 64))
                    .col(time_col(SignInFailures::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The throttle counts recent failures per account and per address.
        manager
            .create_index(
                index("ix_sign_in_failures_account", SignInFailures::Table)
                    .col(SignInFailures::AccountKey)
                    .col(SignInFailures::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("ix_sign_in_failures_ip", SignInFailures::Table)
                    .col(SignInFailures::IpAddress)
                    .col(SignInFailures::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("ix_sign_in_failures_created", SignInFailures::Table)
                    .col(SignInFailures::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditChain::Table)
                    .col(
                        ColumnDef::new(AuditChain::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditChain::HeadSeq).big_integer().not_null())
                    .col(text_col(AuditChain::HeadHash, 64))
                    .col(
                        ColumnDef::new(AuditChain::AnchorSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text_col(AuditChain::AnchorHash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuditChain::Table)
                    .columns([
                        AuditChain::Id,
                        AuditChain::HeadSeq,
                        AuditChain::HeadHash,
                        AuditChain::AnchorSeq,
                        AuditChain::AnchorHash,
                    ])
                    .values_panic([
                        1.into(),
                        0i64.into(),
                        GENESIS_HASH.into(),
                        0i64.into(),
                        GENESIS_HASH.into(),
                    ])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditChain::Table.into_iden(),
            SignInFailures::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
